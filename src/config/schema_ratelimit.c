/* Rate limiting keys: the top-level `redis:` section and `routes[].rate_limit`
 * (shared/spec/config.md; semantics in docs/rate-limiting.md).
 *
 * Cross checks made here: `store: redis` needs a `redis:` section (the
 * top-level keys are read before the routes), and entries sharing a `name:`
 * must agree on key, rate, burst and store, since they are one bucket. */
#include "config/internal.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define TG__RL_MAX_ENTRIES 16         /* per route */
#define TG__RL_MAX_BURST 1000000000ull
#define TG__RL_MIN_INTERVAL_NS 1000ull /* at most 1,000,000 requests per second */

/* ---- rates ---- */

int tg_parse_rate(const char *s, uint64_t *requests, uint64_t *window_ms)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL || slash == s || slash - s > 12 || slash[1] == '\0' || slash[2] != '\0')
        return -1;
    uint64_t n = 0;
    for (const char *p = s; p < slash; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    static const struct { char unit; uint64_t ms; } units[] = {
        { 's', 1000 }, { 'm', 60000 }, { 'h', 3600000 }, { 'd', 86400000 },
    };
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (slash[1] == units[i].unit && n > 0) {
            *requests = n;
            *window_ms = units[i].ms;
            return 0;
        }
    }
    return -1;
}

/* ---- redis: ---- */

static void rd_address(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_redis_cfg_t *r = obj;
    const char *s;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    if (strncmp(s, "unix:", 5) == 0) {
        if (s[5] != '/' || strlen(s + 5) >= 108) {
            tg__err(cx, v, "expected unix:/absolute/path (at most 107 bytes)");
            return;
        }
        r->address = s;
        r->host = s + 5;
        r->port = 0;
        return;
    }
    char host[256];
    bool bracketed;
    uint16_t port;
    if (tg__split_host_port(s, host, sizeof host, &port, &bracketed) != 0 || host[0] == '\0') {
        tg__err(cx, v, "expected host:port, [v6]:port or unix:/path, got \"%.60s\"", s);
        return;
    }
    r->address = s;
    r->host = tg__strdup(cx, host);
    r->port = port;
}

static void rd_password(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s;
    if (tg__str(cx, v, &s))
        ((tg_redis_cfg_t *)obj)->password = s[0] ? s : NULL; /* an unset ${VAR:-} = no AUTH */
}

static void rd_timeout(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t ms;
    if (!tg__duration(cx, v, 1, &ms))
        return;
    if (ms > 60000)
        tg__err(cx, v, "at most 60s (a request waits this long for Redis)");
    else
        ((tg_redis_cfg_t *)obj)->timeout_ms = ms;
}

static void rd_on_error(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    static const tg__enum_t tab[] = { { "allow", 1 }, { "deny", 0 }, { NULL, 0 } };
    int open;
    if (tg__enum(cx, v, tab, "redis", "on_error", &open))
        ((tg_redis_cfg_t *)obj)->fail_open = open != 0;
}

static const tg__key_t redis_keys[] = {
    { "address", rd_address },
    { "password", rd_password },
    { "timeout", rd_timeout },
    { "on_error", rd_on_error },
    { NULL, NULL },
};
static const tg__schema_t redis_schema = { "redis", redis_keys, false };

void tg__load_redis(tg__ctx_t *cx, tg__node_t *n, void *obj)
{
    tg_redis_cfg_t *r = &cx->cfg->redis;
    *r = (tg_redis_cfg_t){ .enabled = true, .address = "127.0.0.1:6379", .host = "127.0.0.1",
                           .port = 6379, .timeout_ms = 50, .fail_open = true };
    tg__apply(cx, n, &redis_schema, r);
}

/* ---- routes[].rate_limit[] ---- */

typedef struct entry_obj {
    tg_rate_limit_cfg_t *e;
    tg__node_t *key, *rate, *store;
} entry_obj_t;

static bool key_name_ok(const char *s, tg_rl_key_t kind)
{
    if (s[0] == '\0' || strlen(s) > 128)
        return false;
    if (kind == TG_RL_KEY_HEADER)
        return tg__is_token(s);
    for (const char *p = s; *p; p++) /* query parameters and claims: printable, no spaces */
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

static void e_key(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    entry_obj_t *o = obj;
    static const struct { const char *word; tg_rl_key_t kind; bool arg; } kinds[] = {
        { "consumer", TG_RL_KEY_CONSUMER, false }, { "client_ip", TG_RL_KEY_CLIENT_IP, false },
        { "route", TG_RL_KEY_ROUTE, false },       { "header:", TG_RL_KEY_HEADER, true },
        { "query:", TG_RL_KEY_QUERY, true },       { "jwt:", TG_RL_KEY_JWT, true },
    };
    const char *s;
    o->key = v;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        size_t wl = strlen(kinds[i].word);
        if (kinds[i].arg ? strncmp(s, kinds[i].word, wl) != 0 : strcmp(s, kinds[i].word) != 0)
            continue;
        if (kinds[i].arg && !key_name_ok(s + wl, kinds[i].kind)) {
            tg__err(cx, v, "\"%.60s\": expected a %s name after \"%s\"", s,
                    kinds[i].kind == TG_RL_KEY_HEADER ? "header" : kinds[i].kind == TG_RL_KEY_QUERY ? "parameter" : "claim",
                    kinds[i].word);
            return;
        }
        o->e->key = kinds[i].kind;
        o->e->key_arg = kinds[i].arg ? s + wl : NULL;
        o->e->key_text = s;
        return;
    }
    tg__err(cx, v, "expected consumer, client_ip, route, header:NAME, query:NAME or jwt:CLAIM, got \"%.60s\"", s);
}

static void e_rate(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    entry_obj_t *o = obj;
    const char *s;
    uint64_t n, w;
    o->rate = v;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    if (tg_parse_rate(s, &n, &w) != 0) {
        tg__err(cx, v, "expected a rate like 100/s, 600/m, 10000/h or 100000/d, got \"%.60s\"", s);
        return;
    }
    if (w * 1000000ull / n < TG__RL_MIN_INTERVAL_NS) {
        tg__err(cx, v, "at most 1000000/s");
        return;
    }
    o->e->requests = n;
    o->e->window_ms = w;
}

static void e_burst(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__uint(cx, v, 0, TG__RL_MAX_BURST, &((entry_obj_t *)obj)->e->burst);
}

static void e_store(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    static const tg__enum_t tab[] = { { "local", TG_RL_STORE_LOCAL }, { "redis", TG_RL_STORE_REDIS }, { NULL, 0 } };
    entry_obj_t *o = obj;
    int st;
    o->store = v;
    if (!tg__enum(cx, v, tab, "routes[].rate_limit[]", "store", &st))
        return;
    o->e->store = (tg_rl_store_t)st;
    if (st == TG_RL_STORE_REDIS && !cx->cfg->redis.enabled)
        tg__err(cx, v, "store: redis needs a top-level redis: section (address, timeout, on_error)");
}

static void e_name(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    if (strlen(s) > 128 || !tg__is_token(s))
        tg__err(cx, v, "a rate limit name is a token (letters, digits, -._~ and the like) of at most 128 bytes");
    else
        ((entry_obj_t *)obj)->e->name = s;
}

static const tg__key_t entry_keys[] = {
    { "key", e_key },     { "rate", e_rate }, { "burst", e_burst },
    { "store", e_store }, { "name", e_name }, { NULL, NULL },
};
static const tg__schema_t entry_schema = { "routes[].rate_limit[]", entry_keys, false };

static bool same_bucket_shape(const tg_rate_limit_cfg_t *a, const tg_rate_limit_cfg_t *b)
{
    return a->key == b->key && strcmp(a->key_text, b->key_text) == 0 && a->requests == b->requests &&
           a->window_ms == b->window_ms && a->burst == b->burst && a->store == b->store;
}

/* A named entry must match every earlier entry of that name (this route's
 * earlier entries and every earlier route's). */
static void check_named(tg__ctx_t *cx, tg__node_t *at, const tg_route_cfg_t *r, const tg_rate_limit_cfg_t *e)
{
    const tg_config_t *c = cx->cfg;
    for (size_t i = 0; i <= r->index && i < c->nroutes + 1; i++) {
        const tg_route_cfg_t *o = i == r->index ? r : &c->routes[i];
        for (size_t j = 0; j < o->nrate_limits && &o->rate_limits[j] != e; j++) {
            const tg_rate_limit_cfg_t *p = &o->rate_limits[j];
            if (p->name == NULL || strcmp(p->name, e->name) != 0)
                continue;
            if (o == r)
                tg__err(cx, at, "name \"%s\" is used twice on this route", e->name);
            else if (!same_bucket_shape(p, e))
                tg__err(cx, at, "entries named \"%s\" share one bucket, so key, rate, burst and store must "
                        "be the same as on routes[%zu]", e->name, i);
            return;
        }
    }
}

static void load_entry(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *r, tg_rate_limit_cfg_t *e)
{
    entry_obj_t o = { .e = e };
    if (n->kind != TG__NODE_MAP) {
        tg__err(cx, n, "expected a mapping { key, rate, burst, store, name }");
        return;
    }
    tg__apply(cx, n, &entry_schema, &o);
    if (o.key == NULL)
        tg__err(cx, n, "key: is required (consumer, client_ip, route, header:NAME, query:NAME or jwt:CLAIM)");
    if (o.rate == NULL)
        tg__err(cx, n, "rate: is required (e.g. 100/s)");
    if (e->name && e->key_text && e->requests)
        check_named(cx, n, r, e);
}

void tg__load_rate_limits(tg__ctx_t *cx, tg__node_t *v, tg_route_cfg_t *r)
{
    tg__node_t **items;
    size_t count;
    if (!tg__list(cx, v, true, &items, &count))
        return;
    if (count > TG__RL_MAX_ENTRIES) {
        tg__err(cx, v, "at most %d rate limits per route", TG__RL_MAX_ENTRIES);
        return;
    }
    r->rate_limits = tg__alloc_array(cx, count, sizeof *r->rate_limits);
    if (r->rate_limits == NULL)
        return;
    for (size_t i = 0; i < count && !cx->oom; i++) {
        size_t mark = tg__path_index(cx, i);
        r->nrate_limits = i + 1;
        load_entry(cx, items[i], r, &r->rate_limits[i]);
        tg__path_pop(cx, mark);
    }
}

/* ---- the effective configuration (dump.c) ---- */

struct json_t *tg__dump_redis(const tg_redis_cfg_t *r)
{
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%llums", (unsigned long long)r->timeout_ms);
    return json_pack("{s:s, s:s, s:s, s:s}", "address", r->address, "password", r->password ? "[redacted]" : "",
                     "timeout", timeout, "on_error", r->fail_open ? "allow" : "deny");
}

struct json_t *tg__dump_rate_limits(const tg_route_cfg_t *route)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < route->nrate_limits; i++) {
        const tg_rate_limit_cfg_t *e = &route->rate_limits[i];
        const char unit = e->window_ms == 1000 ? 's' : e->window_ms == 60000 ? 'm' : e->window_ms == 3600000 ? 'h' : 'd';
        char rate[40];
        snprintf(rate, sizeof rate, "%llu/%c", (unsigned long long)e->requests, unit);
        json_t *j = json_pack("{s:s, s:s, s:I, s:s}", "key", e->key_text, "rate", rate, "burst", (json_int_t)e->burst,
                              "store", e->store == TG_RL_STORE_REDIS ? "redis" : "local");
        if (j && e->name && json_object_set_new(j, "name", json_string(e->name)) != 0) {
            json_decref(j);
            j = NULL;
        }
        if (j == NULL || json_array_append_new(arr, j) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
