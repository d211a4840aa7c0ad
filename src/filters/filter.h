/* Filters: one policy each (auth, allow/deny, validate, rate limit, cache,
 * CORS, ...), run by the exchange in the fixed phase order of the config
 * contract. A filter is a small vtable registered in one table
 * (filters/registry.c); adding a policy is one new file and one line there.
 *
 * Lifetimes: `build` compiles per-route state when a config generation is
 * created (off the event loops) and `free_state` releases it with the
 * generation; per-exchange state lives in the exchange arena. */
#ifndef TG_FILTERS_FILTER_H
#define TG_FILTERS_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include "config/config.h"
#include "http/msg.h"

typedef struct tg_exchange tg_exchange_t;

typedef enum tg_filter_ret {
    TG_FILTER_CONTINUE = 0, /* go on with the next filter */
    TG_FILTER_DONE,         /* the filter answered (tg_ex_respond*); stop */
    TG_FILTER_WAIT,         /* asynchronous: tg_ex_filter_resume() follows exactly once */
} tg_filter_ret_t;

typedef struct tg_filter {
    const char *name;
    /* Compiles the route's state. *state = NULL means "not used on this
     * route" (the filter is skipped). Returns 0, or -1 with a message in err. */
    int (*build)(const tg_config_t *cfg, const tg_route_cfg_t *route, void **state, char *err,
                 size_t errlen);
    void (*free_state)(void *state);
    /* Request phase. May read the request, edit the upstream-bound headers,
     * set the identity, answer, or wait. */
    tg_filter_ret_t (*on_request)(tg_exchange_t *ex, void *state);
    /* Optional: the whole request body, when `wants_body` (validation,
     * content-based decisions). Same returns as on_request. */
    tg_filter_ret_t (*on_request_body)(tg_exchange_t *ex, void *state, const char *body, size_t len);
    bool (*wants_body)(void *state);
    /* Optional: the final response head (from upstream or the gateway) before
     * it goes downstream; may edit it through tg_ex_resp_header_*. */
    void (*on_response_head)(tg_exchange_t *ex, void *state, int status);
    /* Optional: response body bytes as they stream (observe only). */
    void (*on_response_body)(tg_exchange_t *ex, void *state, const char *p, size_t n);
    /* Optional: the upstream's response arrived whole. Called before its end
     * goes downstream, so that what a filter records from it (a cache entry)
     * is in place by the time the client can send its next request. */
    void (*on_response_complete)(tg_exchange_t *ex, void *state);
    /* Optional: the exchange ends; complete = the response was sent whole. */
    void (*on_end)(tg_exchange_t *ex, void *state, bool complete);
} tg_filter_t;

/* The registry, in phase order. */
extern const tg_filter_t *const tg_filters[];
extern const size_t tg_nfilters;

/* Per-route filter states of a generation: states[route * tg_nfilters + f]. */
typedef struct tg_filter_states {
    void **v;
    size_t nroutes;
} tg_filter_states_t;

/* Builds every filter for every route; on failure fills err (naming the
 * route) and returns -1 with nothing left allocated. */
int tg_filter_states_build(tg_filter_states_t *fs, const tg_config_t *cfg, char *err, size_t errlen);
void tg_filter_states_free(tg_filter_states_t *fs);
static inline void *tg_filter_state(const tg_filter_states_t *fs, size_t route, size_t f)
{
    return fs->v ? fs->v[route * tg_nfilters + f] : NULL;
}

#endif
