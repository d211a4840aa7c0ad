/* The router: compiled once per config snapshot, read by every worker without
 * locks. Routes keep their file order: the first that matches wins. */
#ifndef TG_ROUTER_ROUTER_H
#define TG_ROUTER_ROUTER_H

#include <stddef.h>
#include "config/config.h"
#include "http/msg.h"
#include "util/arena.h"

typedef struct tg_router tg_router_t;

/* What a request offers to matchers. `host` is lowercase without port;
 * `path` is the normalised path (http/path.h); `query` is the raw query
 * string (without '?'). */
typedef struct tg_route_input {
    tg_str_t host;
    tg_str_t method;
    tg_str_t path;
    tg_str_t query;
    const tg_header_t *headers;
    size_t nheaders;
    /* Content-based routing (match.json). Before the body is read
     * (body_read false) a route's JSON matchers are not evaluated: such a
     * route is returned as a candidate, and the caller reads the body and
     * matches again with body_read, json (a json_t *, NULL when the body is
     * not JSON: the matchers fail) and from = the candidate's index. */
    bool body_read;
    const void *json;
    uint32_t from;             /* routes before this index are skipped */
} tg_route_input_t;

/* Builds the router for `cfg` (borrowed: it must outlive the router; the
 * runtime frees the router before releasing the config). NULL on OOM. */
tg_router_t *tg_router_build(const tg_config_t *cfg);
void tg_router_free(tg_router_t *r);

/* The first route matching `in`, or NULL (404). Allocation-free. */
const tg_route_cfg_t *tg_router_match(const tg_router_t *r, const tg_route_input_t *in);

/* Applies route->rewrite to `path` (normalised path, no query). Returns the
 * new path allocated from `a`, or `path` itself when there is no rewrite or
 * the rewrite does not apply. tg_str_t with p == NULL on OOM. */
tg_str_t tg_route_rewrite_path(const tg_route_cfg_t *route, tg_str_t path, tg_arena_t *a);

/* Splits "Host" (or :authority) into a lowercase host without port, written
 * into out[0..cap). Returns length, or -1 when invalid or too long. */
int tg_host_normalize(tg_str_t authority, char *out, size_t cap);

#endif
