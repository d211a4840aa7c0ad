/* Response cache keys: the top-level `cache:` section and `routes[].cache`
 * (shared/spec/config.md; semantics in docs/caching.md). */
#include "config/internal.h"

#include <stdio.h>
#include <string.h>

#define TG__CACHE_MIN_MEMORY (64 * 1024ull)
#define TG__CACHE_MAX_KEY_PARTS 16
#define TG__CACHE_MAX_STATUSES 64

/* ---- top level ---- */

static void c_memory(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    (void)obj;
    uint64_t m;
    if (tg__size(cx, v, TG__CACHE_MIN_MEMORY, 1ull << 46, &m))
        cx->cfg->cache_memory = m;
}

static const tg__key_t top_keys[] = { { "memory", c_memory }, { NULL, NULL } };
static const tg__schema_t top_schema = { "cache", top_keys, false };

void tg__load_cache(tg__ctx_t *cx, tg__node_t *n, void *obj)
{
    cx->cfg->has_cache = true;
    cx->cfg->cache_memory = TG_CACHE_DEFAULT_MEMORY;
    tg__apply(cx, n, &top_schema, obj);
}

/* ---- routes[].cache ---- */

static void rc_ttl(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 0, &((tg_cache_cfg_t *)obj)->ttl_ms);
}

static void rc_max_object_bytes(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__size(cx, v, 1, 1ull << 40, &((tg_cache_cfg_t *)obj)->max_object_bytes);
}

static void rc_swr(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 0, &((tg_cache_cfg_t *)obj)->stale_while_revalidate_ms);
}

static void rc_sie(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 0, &((tg_cache_cfg_t *)obj)->stale_if_error_ms);
}

static void rc_respect_origin(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__bool(cx, v, &((tg_cache_cfg_t *)obj)->respect_origin);
}

static void rc_store_set_cookie(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__bool(cx, v, &((tg_cache_cfg_t *)obj)->store_set_cookie);
}

static void rc_collapse(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__bool(cx, v, &((tg_cache_cfg_t *)obj)->collapse);
}

static void rc_tags_header(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    if (!tg__is_token(s))
        tg__err(cx, v, "expected a header name, got \"%.60s\"", s);
    else
        ((tg_cache_cfg_t *)obj)->tags_header = s;
}

static void rc_methods(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    static const struct { const char *name; uint32_t bit; } known[] = {
        { "GET", TG_M_GET }, { "HEAD", TG_M_HEAD }, { "POST", TG_M_POST },
    };
    tg_cache_cfg_t *c = obj;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    if (n == 0) {
        tg__err(cx, v, "needs at least one method (leave methods out for [GET, HEAD])");
        return;
    }
    c->methods = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        if (!tg__str_nonempty(cx, items[i], &s))
            continue;
        size_t k = 0;
        while (k < sizeof known / sizeof *known && strcmp(known[k].name, s) != 0)
            k++;
        if (k == sizeof known / sizeof *known)
            tg__err(cx, items[i], "cacheable methods are GET, HEAD and POST, got \"%.40s\"", s);
        else
            c->methods |= known[k].bit;
    }
    if (c->methods & TG_M_POST)
        tg__err(cx, v, "caching POST responses is not supported by this build yet");
}

static void rc_statuses(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_cache_cfg_t *c = obj;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    if (n == 0 || n > TG__CACHE_MAX_STATUSES) {
        tg__err(cx, v, "expected 1 to %d statuses", TG__CACHE_MAX_STATUSES);
        return;
    }
    c->statuses = tg__alloc_array(cx, n, sizeof *c->statuses);
    if (c->statuses == NULL)
        return;
    c->nstatuses = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t s;
        size_t mark = tg__path_index(cx, i);
        if (tg__uint(cx, items[i], 200, 599, &s)) {
            if (s == 206 || s == 304)
                tg__err(cx, items[i], "%u cannot be stored (partial and not-modified answers "
                        "complete a stored response, they are not one)", (unsigned)s);
            else
                c->statuses[c->nstatuses++] = (uint16_t)s;
        }
        tg__path_pop(cx, mark);
    }
}

static bool key_part(tg__ctx_t *cx, tg__node_t *n, tg_ckey_part_t *out)
{
    static const struct { const char *name; tg_ckey_kind_t kind; } plain[] = {
        { "method", TG_CKEY_METHOD }, { "scheme", TG_CKEY_SCHEME }, { "host", TG_CKEY_HOST },
        { "path", TG_CKEY_PATH },     { "query", TG_CKEY_QUERY },   { "consumer", TG_CKEY_CONSUMER },
    };
    static const struct { const char *prefix; tg_ckey_kind_t kind; } arg[] = {
        { "header:", TG_CKEY_HEADER }, { "cookie:", TG_CKEY_COOKIE }, { "query:", TG_CKEY_QUERY_ARG },
    };
    const char *s;
    if (!tg__str_nonempty(cx, n, &s))
        return false;
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        if (strcmp(s, plain[i].name) == 0) {
            *out = (tg_ckey_part_t){ plain[i].kind, NULL };
            return true;
        }
    for (size_t i = 0; i < sizeof arg / sizeof *arg; i++) {
        size_t pl = strlen(arg[i].prefix);
        if (strncmp(s, arg[i].prefix, pl) == 0) {
            if (s[pl] == '\0' || (arg[i].kind == TG_CKEY_HEADER && !tg__is_token(s + pl))) {
                tg__err(cx, n, "expected %sNAME, got \"%.60s\"", arg[i].prefix, s);
                return false;
            }
            *out = (tg_ckey_part_t){ arg[i].kind, s + pl };
            return true;
        }
    }
    tg__err(cx, n, "unknown key part \"%.60s\" (expected method, scheme, host, path, query, "
            "consumer, header:N, cookie:N or query:N)", s);
    return false;
}

static void rc_key(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_cache_cfg_t *c = obj;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    if (n == 0 || n > TG__CACHE_MAX_KEY_PARTS) {
        tg__err(cx, v, "expected 1 to %d key parts", TG__CACHE_MAX_KEY_PARTS);
        return;
    }
    c->key = tg__alloc_array(cx, n, sizeof *c->key);
    if (c->key == NULL)
        return;
    c->nkey = 0;
    for (size_t i = 0; i < n; i++) {
        size_t mark = tg__path_index(cx, i);
        if (key_part(cx, items[i], &c->key[c->nkey]))
            c->nkey++;
        tg__path_pop(cx, mark);
    }
}

static const tg__key_t route_keys[] = {
    { "ttl", rc_ttl },
    { "max_object_bytes", rc_max_object_bytes },
    { "key", rc_key },
    { "methods", rc_methods },
    { "statuses", rc_statuses },
    { "respect_origin", rc_respect_origin },
    { "stale_while_revalidate", rc_swr },
    { "stale_if_error", rc_sie },
    { "tags_header", rc_tags_header },
    { "store_set_cookie", rc_store_set_cookie },
    { "collapse", rc_collapse },
    { NULL, NULL },
};
static const tg__schema_t route_schema = { "routes[].cache", route_keys, false };

void tg__load_route_cache(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *route)
{
    static const uint16_t default_statuses[] = { 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501 };
    static const tg_ckey_part_t default_key[] = {
        { TG_CKEY_METHOD, NULL }, { TG_CKEY_HOST, NULL }, { TG_CKEY_PATH, NULL }, { TG_CKEY_QUERY, NULL },
    };
    tg_cache_cfg_t *c = &route->cache;
    *c = (tg_cache_cfg_t){ .enabled = true, .max_object_bytes = 1024 * 1024,
                           .methods = TG_M_GET | TG_M_HEAD, .respect_origin = true, .collapse = true };
    c->key = tg__alloc_array(cx, 4, sizeof *c->key);
    c->statuses = tg__alloc_array(cx, sizeof default_statuses / sizeof *default_statuses, sizeof *c->statuses);
    if (c->key == NULL || c->statuses == NULL)
        return;
    memcpy(c->key, default_key, sizeof default_key);
    c->nkey = 4;
    memcpy(c->statuses, default_statuses, sizeof default_statuses);
    c->nstatuses = sizeof default_statuses / sizeof *default_statuses;
    tg__apply(cx, n, &route_schema, c);
}
