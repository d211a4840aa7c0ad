/* Internals of the cache filter (filters/cache.c: request side, lookups,
 * hits, collapsing; filters/cache_fill.c: response side, storing,
 * revalidation, invalidation). Design: docs/caching.md. */
#ifndef TG_FILTERS_CACHE_INT_H
#define TG_FILTERS_CACHE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "proxy/exchange.h"
#include "proxy/filter_api.h"
#include "store/cache.h"
#include "store/cache_policy.h"

#define TG_CACHE_MAX_VARIANT 2048  /* bytes of a Vary fingerprint; longer: not cached */
#define TG_CACHE_MAX_TAGS 64

/* Per-route state, built with the config generation. */
typedef struct tg_cache_route {
    const tg_cache_cfg_t *cfg;
    const char *route_name;
    tg_cache_t *store;
    uint64_t wait_ms;        /* the longest a collapsed request waits for its leader */
} tg_cache_route_t;

typedef enum {
    TG_CM_BYPASS = 0,        /* not a cached method: nothing to do */
    TG_CM_INVALIDATE,        /* unsafe method: invalidate the target URI on success */
    TG_CM_SERVE,             /* answered from the store */
    TG_CM_FETCH,             /* miss: fetch and maybe store */
    TG_CM_REVALIDATE,        /* a stored response is revalidated with the origin */
    TG_CM_PASS,              /* forwarded, never stored (HEAD miss, no-store) */
} tg_cache_mode_t;

typedef struct tg_cache_waiter_ctx tg_cache_waiter_ctx_t;

/* Per-exchange state (exchange arena). */
typedef struct tg_cache_ex {
    const tg_cache_route_t *rt;
    tg_exchange_t *ex;
    tg_cache_mode_t mode;
    tg_str_t key;            /* primary key (arena) */
    tg_str_t uri;            /* path[?query] (arena) */
    tg_cc_t req_cc;
    bool req_auth;           /* the request carries Authorization */
    int64_t t_req;           /* ms epoch: the request reached the cache */
    tg_cobj_t *obj;          /* stored response under revalidation (owned ref) */
    const tg_cobj_t *served; /* the object being answered (Age, Cache-Status) */
    const char *status_text; /* Cache-Status value for the answer */
    tg_cache_fill_t *fill;   /* leader of a collapsed fetch */
    tg_cache_waiter_ctx_t *waiter;
    /* capture of a response to store */
    bool capture;
    tg_header_t *hdrs;       /* snapshot of the stored fields (arena) */
    size_t nhdrs;
    int status;
    char *buf;               /* malloc'd body so far */
    size_t len, cap;
    tg_cobj_init_t init;     /* everything but headers/body, decided at the head */
    tg_str_t tags[TG_CACHE_MAX_TAGS];
    /* 304 from the origin: its fields, to refresh the stored ones */
    tg_header_t *h304;
    size_t n304;
    int claimed_status;      /* the upstream status that was replaced; 0 = failure */
    bool background;         /* this exchange is a background refresh */
} tg_cache_ex_t;

/* cache.c */
int64_t tg__cache_now(void);
/* Answers `o` (a retained reference is taken for the answer), honouring the
 * client's conditional headers; `text` is the Cache-Status value. */
void tg__cache_serve(tg_cache_ex_t *st, const tg_cobj_t *o, const char *text);
/* The Vary fingerprint of the request for `vary` names into out; false when
 * it does not fit. */
bool tg__cache_variant(tg_exchange_t *ex, const char *vary, char *out, size_t cap, size_t *len);
bool tg__cache_status_ok(const tg_cache_cfg_t *c, int status);
/* Counts one lookup result (metrics + store counters). */
void tg__cache_count(tg_cache_ex_t *st, const char *result);

/* cache_fill.c */
void tg__cache_on_response_head(tg_exchange_t *ex, void *state, int status);
void tg__cache_on_response_body(tg_exchange_t *ex, void *state, const char *p, size_t n);
/* Stores what was captured (complete responses only), ends the fill. */
void tg__cache_finish(tg_cache_ex_t *st, bool complete);
/* Sets the revalidation request headers and the substitution hook. */
void tg__cache_revalidate(tg_cache_ex_t *st);
/* Ends a collapsed fetch: waiters are woken (once). */
void tg__cache_fill_end(tg_cache_ex_t *st);

#endif
