/* Internals shared by the files of src/config/ (never included from outside).
 *
 * The loader walks the YAML tree (yaml_tree.h) with a tg__ctx_t that carries
 * the snapshot being filled, the key path of the current position and the
 * errors found so far. Schema files declare, per section, a table of keys
 * with one small handler each (tg__key_t); tg__apply dispatches a mapping
 * through such a table, so unknown and not-yet-supported keys are handled in
 * one place (schema.c, features.c).
 *
 * Handlers never stop on the first problem: they record it with tg__err and
 * carry on, so one run reports everything. Out of memory sets ctx->oom; the
 * load then fails with one "out of memory" error. */
#ifndef TG_CONFIG_INTERNAL_H
#define TG_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "config/yaml_tree.h"

#define TG__MAX_ERRORS 100   /* kept; later ones are counted, not stored */
#define TG__PATH_MAX 512

typedef struct tg__err {
    uint32_t line, col;      /* 0 = no position (the whole file) */
    size_t seq;              /* discovery order, to keep the sort stable */
    char *text;              /* malloc'd, final "file:line:col: path: message" */
} tg__err_t;

typedef struct tg__ctx {
    const char *file;        /* name used in messages */
    tg_config_t *cfg;        /* being filled; owns everything it points to */
    tg__err_t *errs;         /* malloc'd */
    size_t nerrs, errcap;
    size_t dropped;          /* errors past TG__MAX_ERRORS */
    size_t regcap;           /* capacity of cfg->regexes */
    bool oom;
    tg__node_t **listen_nodes;      /* server.listen entries, for cross checks */
    tg__node_t *admin_listen_node;
    const tg_upstream_cfg_t **up_sorted; /* by name, for route references */
    size_t pathlen;
    char path[TG__PATH_MAX]; /* key path of the current position */
} tg__ctx_t;

/* ---- errors (load.c) ---- */
/* Records "file:line:col: <path>: <message>" at node `at` (NULL = no position). */
void tg__err(tg__ctx_t *cx, const tg__node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with an explicit position and path (for the tree builder). */
void tg__err_at(tg__ctx_t *cx, uint32_t line, uint32_t col, const char *path, const char *msg);
/* Marks the load as failed for lack of memory; always returns NULL. */
void *tg__oom(tg__ctx_t *cx);
/* A file path from the config, relative to the config file's folder (what a
 * user editing the file expects), or the path itself when absolute. Arena
 * memory; NULL (after tg__oom) when out of memory. */
const char *tg__resolve_path(tg__ctx_t *cx, const char *p);

/* ---- key paths (schema.c): push returns the length to restore with pop ---- */
size_t tg__path_key(tg__ctx_t *cx, const char *key);
size_t tg__path_index(tg__ctx_t *cx, size_t i);
void tg__path_pop(tg__ctx_t *cx, size_t mark);

/* ---- table-driven mappings (schema.c) ---- */
typedef void (*tg__handler_fn)(tg__ctx_t *cx, tg__node_t *value, void *obj);

typedef struct tg__key {
    const char *name;
    tg__handler_fn fn;
} tg__key_t;

/* `name` identifies the section in the not-supported table (features.c) and
 * reads like a path pattern: "routes[]", "upstreams.*.retries". */
typedef struct tg__schema {
    const char *name;
    const tg__key_t *keys;   /* terminated by { NULL, NULL } */
    bool extensions;         /* keys "x-..." are skipped: they hold YAML anchors */
} tg__schema_t;

/* Runs the handler of each key of mapping `map` (null = empty mapping) with
 * `obj`, in document order. Unknown keys are errors with a "did you mean";
 * keys listed in features.c are "not supported by this build yet". Returns
 * false when `map` is not a mapping (reported). */
bool tg__apply(tg__ctx_t *cx, tg__node_t *map, const tg__schema_t *s, void *obj);
/* Looks up `key` in mapping `map` (NULL when absent or not a mapping). */
tg__node_t *tg__map_get(tg__node_t *map, const char *key);
/* Picks the closest of `cands` (NULL-terminated) to `word`, or NULL. */
const char *tg__suggest(const char *word, const char *const *cands, size_t ncands);

/* ---- features.c: the one table of recognised but unimplemented features ---- */
bool tg__feature_key_unsupported(const char *section, const char *key);
bool tg__feature_value_unsupported(const char *section, const char *key, const char *value);
/* Adds the not-supported keys of `section` to cands[*n..cap) (for suggestions). */
void tg__feature_keys(const char *section, const char **cands, size_t *n, size_t cap);

/* ---- typed values (values.c). Each returns false after reporting. ---- */
bool tg__str(tg__ctx_t *cx, tg__node_t *n, const char **out);        /* ${ENV} expanded */
bool tg__str_nonempty(tg__ctx_t *cx, tg__node_t *n, const char **out);
bool tg__bool(tg__ctx_t *cx, tg__node_t *n, bool *out);
bool tg__uint(tg__ctx_t *cx, tg__node_t *n, uint64_t min, uint64_t max, uint64_t *out);
bool tg__duration(tg__ctx_t *cx, tg__node_t *n, uint64_t min_ms, uint64_t *out);
bool tg__size(tg__ctx_t *cx, tg__node_t *n, uint64_t min, uint64_t max, uint64_t *out);
/* A list, or (when `allow_one`) a single value standing for a list of one.
 * *items points into the tree (or at `n` itself). Null = empty list. */
bool tg__list(tg__ctx_t *cx, tg__node_t *n, bool allow_one, tg__node_t ***items, size_t *count);
bool tg__is_map(tg__ctx_t *cx, tg__node_t *n);

typedef struct tg__enum {
    const char *name;
    int value;
} tg__enum_t;
/* One of `tab` (terminated by { NULL, 0 }); `section`/`key` locate it in the
 * not-supported table, so a recognised but unimplemented value says so. */
bool tg__enum(tg__ctx_t *cx, tg__node_t *n, const tg__enum_t *tab, const char *section,
              const char *key, int *out);

/* Allocation in the snapshot's arena; NULL (and cx->oom) on failure. */
void *tg__alloc(tg__ctx_t *cx, size_t n);
void *tg__alloc_array(tg__ctx_t *cx, size_t n, size_t size);
char *tg__strdup(tg__ctx_t *cx, const char *s);

/* Compiles a PCRE2 pattern owned by the snapshot (memoised on `n`); reports
 * compile errors with the pattern offset. */
bool tg__regex(tg__ctx_t *cx, tg__node_t *n, const char *src, tg_regex_t **out);
/* Number of capture groups of a compiled regex. */
uint32_t tg__regex_captures(const tg_regex_t *re);

/* ---- checks shared by sections (values.c) ---- */
bool tg__is_token(const char *s);          /* RFC 9110 token */
bool tg__is_field_value(const char *s);    /* no CR, LF, NUL or other CTL but HTAB */

/* ---- env.c ---- */
/* Expands ${NAME}, ${NAME:-default} and $$ in s[0..len) into a new string
 * from `a`. Returns 0, or -1 with a message in err[0..errcap) (an unset
 * variable, bad syntax) or with *oom set. */
int tg__env_expand(const char *s, size_t len, tg_arena_t *a, const char **out, char *err,
                   size_t errcap, bool *oom);

/* ---- units.c helpers ---- */
int tg__parse_port(const char *s, size_t len, uint16_t *out);
int tg__split_host_port(const char *s, char *host_out, size_t cap, uint16_t *port,
                        bool *bracketed);

/* ---- sections ---- */
void tg__server_defaults(tg_config_t *c);
void tg__load_server(tg__ctx_t *cx, tg__node_t *n, void *obj);   /* schema_server.c */
void tg__load_admin(tg__ctx_t *cx, tg__node_t *n, void *obj);
void tg__server_finish(tg__ctx_t *cx);      /* defaults that depend on presence, cross checks */
void tg__load_upstreams(tg__ctx_t *cx, tg__node_t *n);            /* schema_upstream.c */
const tg_upstream_cfg_t *tg__upstream_find(tg__ctx_t *cx, const char *name);
/* schema_upstream_resilience.c: upstreams.*.health_check, .outlier,
 * .circuit_breaker, .retries.non_idempotent (each fills `u`, reports errors). */
void tg__load_health_check(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u);
void tg__load_outlier(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u);
void tg__load_circuit_breaker(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u);
void tg__load_retry_non_idempotent(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u);
void tg__load_routes(tg__ctx_t *cx, tg__node_t *n);               /* schema_route.c */
/* schema_upstream_tls.c: upstreams.*.tls, protocol/TLS checks, and the route
 * keys that depend on the upstream protocol (websocket, grpc_web). */
void tg__load_upstream_tls(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u);
void tg__upstream_protocol_finish(tg__ctx_t *cx, tg__node_t *n, tg_upstream_cfg_t *u);
void tg__load_route_websocket(tg__ctx_t *cx, tg__node_t *v, tg_route_cfg_t *r);
void tg__load_route_grpc_web(tg__ctx_t *cx, tg__node_t *v, tg_route_cfg_t *r);
void tg__route_protocol_finish(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *r);
/* schema_tls.c: server.listen[].tls into l (l->tls set when usable) */
void tg__load_listen_tls(tg__ctx_t *cx, tg__node_t *v, tg_listen_cfg_t *l);
/* schema_match.c */
void tg__load_match(tg__ctx_t *cx, tg__node_t *n, void *route);
void tg__load_header_ops(tg__ctx_t *cx, tg__node_t *n, void *ops);
bool tg__header_map(tg__ctx_t *cx, tg__node_t *v, tg_kv_t **out, size_t *nout);
bool tg__check_path(tg__ctx_t *cx, tg__node_t *n, const char *path);
/* schema_security.c: top-level consumers: and htpasswd: (obj unused), route
 * auth/allow/deny/validate, match.json */
void tg__load_consumers(tg__ctx_t *cx, tg__node_t *n, void *obj);
void tg__load_htpasswd(tg__ctx_t *cx, tg__node_t *n, void *obj);
void tg__load_auth(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *r);
void tg__load_allow(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *r);
void tg__load_deny(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *r);
void tg__load_validate(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *r);
void tg__load_match_json(tg__ctx_t *cx, tg__node_t *n, tg_match_cfg_t *m);
/* dump_security.c: the security keys into tg_config_to_json's objects */
struct json_t;
void tg__dump_security_top(const tg_config_t *c, struct json_t *root);
void tg__dump_security_route(const tg_route_cfg_t *r, struct json_t *route);
/* schema_ratelimit.c: top-level redis: (obj unused) and routes[].rate_limit */
void tg__load_redis(tg__ctx_t *cx, tg__node_t *n, void *obj);
void tg__load_rate_limits(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *route);
/* ... and their part of tg_config_to_json (new references; NULL on OOM) */
struct json_t *tg__dump_redis(const tg_redis_cfg_t *r);
struct json_t *tg__dump_rate_limits(const tg_route_cfg_t *route);
/* schema_cache.c: top-level cache: (obj unused) and routes[].cache */
void tg__load_cache(tg__ctx_t *cx, tg__node_t *n, void *obj);
void tg__load_route_cache(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *route);

#endif
