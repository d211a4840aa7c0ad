/* The upstreams: section: named pools of servers. */
#include "config/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TG__MAX_RETRIES 10
#define TG__MAX_WEIGHT 10000

typedef struct up_obj {
    tg_upstream_cfg_t *u;
    tg__node_t *servers;     /* the servers: value, or NULL */
    tg__node_t *hash_key;    /* the hash_key: value, or NULL */
    tg__node_t *ka_idle;     /* keepalive.idle_timeout, or NULL */
    tg__node_t *to_idle;     /* timeouts.idle, or NULL */
    bool balance_hash;       /* balance: hash was written (supported or not) */
} up_obj_t;

static void set_defaults(tg_upstream_cfg_t *u)
{
    u->balance = TG_BALANCE_ROUND_ROBIN;
    u->protocol = TG_PROTO_HTTP1;
    u->keepalive_max_idle = 64;
    u->keepalive_idle_timeout_ms = 60000;
    u->connect_timeout_ms = 2000;
    u->response_timeout_ms = 30000;
    u->idle_timeout_ms = 60000;
    u->retry_attempts = 0;
    /* Safe for any method: the request never reached a server, or the
     * connection broke before any response byte. */
    u->retry_on = TG_RETRY_CONNECT_FAILURE | TG_RETRY_RESET;
    u->retry_budget_pct = 20;
    u->dns_refresh_ms = 30000;
}

/* ---- servers ---- */

static bool valid_hostname(const char *h)
{
    size_t len = strlen(h), label = 0;
    if (len == 0 || len > 253)
        return false;
    for (const char *p = h; *p; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

static bool server_address(tg__ctx_t *cx, tg__node_t *n, tg_server_addr_cfg_t *sv)
{
    const char *s;
    char host[300];
    uint16_t port;
    bool br;
    unsigned char a6[16];
    if (!tg__str_nonempty(cx, n, &s))
        return false;
    if (strncmp(s, "unix:", 5) == 0) {
        tg__err(cx, n, "unix socket upstreams are not supported by this build yet");
        return false;
    }
    if (tg__split_host_port(s, host, sizeof host, &port, &br) != 0 || host[0] == '\0' ||
        (br ? inet_pton(AF_INET6, host, a6) != 1 : !valid_hostname(host))) {
        tg__err(cx, n, "expected a server address like \"users-1:8000\", \"10.0.0.5:8000\" or "
                       "\"[2001:db8::5]:8000\", got \"%s\"", s);
        return false;
    }
    sv->address = s;
    sv->host = tg__strdup(cx, host);
    sv->port = port;
    return sv->host != NULL;
}

static void srv_address(tg__ctx_t *cx, tg__node_t *v, void *obj) { server_address(cx, v, obj); }

static void srv_weight(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t w;
    if (tg__uint(cx, v, 1, TG__MAX_WEIGHT, &w))
        ((tg_server_addr_cfg_t *)obj)->weight = (uint32_t)w;
}

static void srv_backup(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__bool(cx, v, &((tg_server_addr_cfg_t *)obj)->backup);
}

static const tg__key_t server_keys[] = {
    { "address", srv_address }, { "weight", srv_weight }, { "backup", srv_backup }, { NULL, NULL },
};
static const tg__schema_t server_schema = { "upstreams.*.servers[]", server_keys, false };

static void server_entry(tg__ctx_t *cx, tg__node_t *n, tg_server_addr_cfg_t *sv)
{
    sv->weight = 1;
    if (n->kind == TG__NODE_SCALAR) {
        server_address(cx, n, sv);
        return;
    }
    if (tg__apply(cx, n, &server_schema, sv) && tg__map_get(n, "address") == NULL)
        tg__err(cx, n, "missing required key \"address\"");
}

typedef struct srv_ref {
    const tg_server_addr_cfg_t *sv;
    size_t index;
} srv_ref_t;

static int cmp_srv(const void *pa, const void *pb)
{
    const srv_ref_t *a = pa, *b = pb;
    int c = strcasecmp(a->sv->host, b->sv->host);
    if (c == 0 && a->sv->port != b->sv->port)
        c = a->sv->port < b->sv->port ? -1 : 1;
    if (c == 0)
        c = a->index < b->index ? -1 : a->index > b->index;
    return c;
}

/* Reports servers listed twice (sorting keeps this O(n log n)). */
static void check_duplicate_servers(tg__ctx_t *cx, tg__node_t **items, const tg_upstream_cfg_t *u)
{
    srv_ref_t *refs = malloc((u->nservers ? u->nservers : 1) * sizeof *refs);
    size_t n = 0;
    if (refs == NULL) {
        tg__oom(cx);
        return;
    }
    for (size_t i = 0; i < u->nservers; i++)
        if (u->servers[i].host != NULL)
            refs[n++] = (srv_ref_t){ &u->servers[i], i };
    qsort(refs, n, sizeof *refs, cmp_srv);
    for (size_t i = 1; i < n; i++) {
        if (strcasecmp(refs[i].sv->host, refs[i - 1].sv->host) != 0 || refs[i].sv->port != refs[i - 1].sv->port)
            continue;
        size_t mark = tg__path_index(cx, refs[i].index);
        tg__err(cx, items[refs[i].index], "duplicate server \"%s\" (also servers[%zu])",
                refs[i].sv->address, refs[i - 1].index);
        tg__path_pop(cx, mark);
    }
    free(refs);
}

static void up_servers(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    up_obj_t *o = obj;
    tg_upstream_cfg_t *u = o->u;
    tg__node_t **items;
    size_t n;
    o->servers = v;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    u->servers = tg__alloc_array(cx, n, sizeof *u->servers);
    if (u->servers == NULL)
        return;
    u->nservers = n;
    bool primary = false;
    for (size_t i = 0; i < n; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        server_entry(cx, items[i], &u->servers[i]);
        primary |= !u->servers[i].backup;
        tg__path_pop(cx, mark);
    }
    if (n == 0)
        tg__err(cx, v, "needs at least one server");
    else if (!primary)
        tg__err(cx, v, "needs at least one server that is not a backup");
    if (v->kind == TG__NODE_SEQ)
        check_duplicate_servers(cx, items, u);
}

/* ---- balance, hash_key, protocol ---- */

static void up_balance(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    static const tg__enum_t tab[] = {
        { "round_robin", TG_BALANCE_ROUND_ROBIN }, { "least_conn", TG_BALANCE_LEAST_CONN },
        { "random", TG_BALANCE_RANDOM }, { "p2c", TG_BALANCE_P2C }, { "hash", TG_BALANCE_HASH },
        { NULL, 0 },
    };
    up_obj_t *o = obj;
    int b;
    if (tg__enum(cx, v, tab, "upstreams.*", "balance", &b))
        o->u->balance = (tg_balance_t)b;
    /* Known even when this build refuses it, to keep hash_key errors apt. */
    o->balance_hash = v->kind == TG__NODE_SCALAR && v->memo_str && strcmp(v->memo_str, "hash") == 0;
}

/* client_ip | path | header:NAME | cookie:NAME | query:NAME */
static bool valid_hash_key(const char *k)
{
    if (strcmp(k, "client_ip") == 0 || strcmp(k, "path") == 0)
        return true;
    if (strncmp(k, "header:", 7) == 0)
        return tg__is_token(k + 7);
    if (strncmp(k, "cookie:", 7) == 0)
        return tg__is_token(k + 7);
    if (strncmp(k, "query:", 6) == 0)
        return k[6] != '\0' && strpbrk(k + 6, "&=# ") == NULL && tg__is_field_value(k + 6);
    return false;
}

static void up_hash_key(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    up_obj_t *o = obj;
    const char *k;
    o->hash_key = v;
    if (!tg__str(cx, v, &k))
        return;
    if (!valid_hash_key(k)) {
        tg__err(cx, v, "expected client_ip, path, header:NAME, cookie:NAME or query:NAME, got \"%s\"", k);
        return;
    }
    o->u->hash_key = k;
}

static void up_protocol(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    static const tg__enum_t tab[] = {
        { "http1", TG_PROTO_HTTP1 }, { "h2c", TG_PROTO_H2C }, { "h2", TG_PROTO_H2 },
        { "grpc", TG_PROTO_GRPC }, { NULL, 0 },
    };
    int p;
    if (tg__enum(cx, v, tab, "upstreams.*", "protocol", &p))
        ((up_obj_t *)obj)->u->protocol = (tg_up_protocol_t)p;
}

static void up_dns_refresh(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 1000, &((up_obj_t *)obj)->u->dns_refresh_ms);
}

/* ---- keepalive, timeouts ---- */

static void ka_max_idle(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t n;
    if (tg__uint(cx, v, 0, 100000, &n))
        ((up_obj_t *)obj)->u->keepalive_max_idle = (uint32_t)n;
}

static void ka_idle_timeout(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    up_obj_t *o = obj;
    o->ka_idle = v;
    tg__duration(cx, v, 1, &o->u->keepalive_idle_timeout_ms);
}

static const tg__key_t keepalive_keys[] = {
    { "max_idle", ka_max_idle }, { "idle_timeout", ka_idle_timeout }, { NULL, NULL },
};
static const tg__schema_t keepalive_schema = { "upstreams.*.keepalive", keepalive_keys, false };

static void to_connect(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 1, &((up_obj_t *)obj)->u->connect_timeout_ms);
}

static void to_response(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 1, &((up_obj_t *)obj)->u->response_timeout_ms);
}

static void to_idle(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    up_obj_t *o = obj;
    o->to_idle = v;
    tg__duration(cx, v, 1, &o->u->idle_timeout_ms);
}

static const tg__key_t timeouts_keys[] = {
    { "connect", to_connect }, { "response", to_response }, { "idle", to_idle }, { NULL, NULL },
};
static const tg__schema_t timeouts_schema = { "upstreams.*.timeouts", timeouts_keys, false };

static void up_keepalive(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__apply(cx, v, &keepalive_schema, obj); }
static void up_timeouts(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__apply(cx, v, &timeouts_schema, obj); }

/* ---- retries ---- */

static void re_attempts(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t n;
    if (tg__uint(cx, v, 0, TG__MAX_RETRIES, &n))
        ((up_obj_t *)obj)->u->retry_attempts = (uint32_t)n;
}

static void re_on(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    static const tg__enum_t tab[] = {
        { "connect_failure", TG_RETRY_CONNECT_FAILURE }, { "reset", TG_RETRY_RESET },
        { "timeout", TG_RETRY_TIMEOUT }, { "502", TG_RETRY_502 }, { "503", TG_RETRY_503 },
        { "504", TG_RETRY_504 }, { NULL, 0 },
    };
    tg__node_t **items;
    size_t n;
    uint32_t bits = 0;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    for (size_t i = 0; i < n; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        int b;
        if (tg__enum(cx, items[i], tab, "upstreams.*.retries", "on", &b))
            bits |= (uint32_t)b;
        tg__path_pop(cx, mark);
    }
    ((up_obj_t *)obj)->u->retry_on = bits;
}

static void re_budget(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s;
    if (!tg__str(cx, v, &s))
        return;
    size_t digits = strspn(s, "0123456789");
    unsigned pct = 0;
    for (size_t i = 0; i < digits && i < 4; i++)
        pct = pct * 10 + (unsigned)(s[i] - '0');
    if (digits == 0 || digits > 3 || strcmp(s + digits, "%") != 0 || pct > 100) {
        tg__err(cx, v, "expected a percentage from 0%% to 100%% like 20%%, got \"%s\"", s);
        return;
    }
    ((up_obj_t *)obj)->u->retry_budget_pct = pct;
}

static void re_non_idempotent(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_retry_non_idempotent(cx, v, ((up_obj_t *)obj)->u);
}

static const tg__key_t retries_keys[] = {
    { "attempts", re_attempts }, { "on", re_on }, { "budget", re_budget },
    { "non_idempotent", re_non_idempotent }, { NULL, NULL },
};
static const tg__schema_t retries_schema = { "upstreams.*.retries", retries_keys, false };

static void up_retries(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    up_obj_t *o = obj;
    /* Writing retries: at all means "retry": 2 retries unless attempts says. */
    if (tg__is_map(cx, v) && tg__map_get(v, "attempts") == NULL)
        o->u->retry_attempts = 2;
    tg__apply(cx, v, &retries_schema, obj);
}

/* ---- one upstream ---- */

/* Resilience sections: parsed in schema_upstream_resilience.c. */
static void up_health_check(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_health_check(cx, v, ((up_obj_t *)obj)->u);
}

static void up_outlier(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_outlier(cx, v, ((up_obj_t *)obj)->u);
}

static void up_circuit_breaker(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_circuit_breaker(cx, v, ((up_obj_t *)obj)->u);
}

static void up_tls(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_upstream_tls(cx, v, ((up_obj_t *)obj)->u); /* schema_upstream_tls.c */
}

static const tg__key_t upstream_keys[] = {
    { "servers", up_servers },
    { "balance", up_balance },
    { "hash_key", up_hash_key },
    { "protocol", up_protocol },
    { "tls", up_tls },
    { "keepalive", up_keepalive },
    { "timeouts", up_timeouts },
    { "retries", up_retries },
    { "dns_refresh", up_dns_refresh },
    { "health_check", up_health_check },
    { "outlier", up_outlier },
    { "circuit_breaker", up_circuit_breaker },
    { NULL, NULL },
};
static const tg__schema_t upstream_schema = { "upstreams.*", upstream_keys, false };

static void upstream_finish(tg__ctx_t *cx, tg__node_t *n, up_obj_t *o)
{
    tg_upstream_cfg_t *u = o->u;
    if (o->servers == NULL)
        tg__err(cx, n, "missing required key \"servers\"");
    if (o->balance_hash && o->hash_key == NULL)
        tg__err(cx, n, "balance: hash needs hash_key (client_ip, header:NAME, cookie:NAME, query:NAME or path)");
    if (!o->balance_hash && o->hash_key != NULL) {
        size_t mark = tg__path_key(cx, "hash_key");
        tg__err(cx, o->hash_key, "only used with balance: hash");
        tg__path_pop(cx, mark);
    }
    if (!o->balance_hash)
        u->hash_key = NULL;
    /* keepalive.idle_timeout and timeouts.idle are one setting under two
     * names (the contract shows both): one given sets both. */
    if (o->ka_idle && !o->to_idle)
        u->idle_timeout_ms = u->keepalive_idle_timeout_ms;
    else if (o->to_idle && !o->ka_idle)
        u->keepalive_idle_timeout_ms = u->idle_timeout_ms;
    else if (o->to_idle && o->ka_idle && u->idle_timeout_ms != u->keepalive_idle_timeout_ms) {
        size_t mark = tg__path_key(cx, "timeouts");
        tg__path_key(cx, "idle");
        tg__err(cx, o->to_idle, "differs from keepalive.idle_timeout; both set how long a pooled "
                                "connection may stay unused: give one");
        tg__path_pop(cx, mark);
    }
}

static bool valid_upstream_name(const char *s)
{
    if (*s == '\0' || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

static void load_upstream(tg__ctx_t *cx, tg__pair_t *p, tg_upstream_cfg_t *u, size_t index)
{
    set_defaults(u);
    u->index = index;
    u->name = tg__strdup(cx, p->key->sc.s);
    if (u->name == NULL)
        return;
    if (!valid_upstream_name(u->name))
        tg__err(cx, p->key, "an upstream name is 1 to 64 letters, digits, '_', '-' or '.'");
    up_obj_t o = { .u = u };
    if (p->value->kind != TG__NODE_MAP) {
        tg__err(cx, p->value, "expected a mapping with servers:");
        return;
    }
    tg__apply(cx, p->value, &upstream_schema, &o);
    upstream_finish(cx, p->value, &o);
    tg__upstream_protocol_finish(cx, p->value, u);
}

static int cmp_up_name(const void *pa, const void *pb)
{
    const tg_upstream_cfg_t *const *a = pa, *const *b = pb;
    return strcmp((*a)->name, (*b)->name);
}

void tg__load_upstreams(tg__ctx_t *cx, tg__node_t *n)
{
    if (tg__node_is_null(n))
        return;
    if (n->kind != TG__NODE_MAP) {
        tg__err(cx, n, "expected a mapping of upstream names to upstreams");
        return;
    }
    tg_config_t *c = cx->cfg;
    c->upstreams = tg__alloc_array(cx, n->map.n, sizeof *c->upstreams);
    cx->up_sorted = tg__alloc_array(cx, n->map.n, sizeof *cx->up_sorted);
    if (c->upstreams == NULL || cx->up_sorted == NULL)
        return;
    for (size_t i = 0; i < n->map.n && !cx->oom; i++) {
        size_t mark = tg__path_key(cx, n->map.v[i].key->sc.s);
        load_upstream(cx, &n->map.v[i], &c->upstreams[i], i);
        tg__path_pop(cx, mark);
        c->nupstreams = i + 1;
    }
    for (size_t i = 0; i < c->nupstreams; i++)
        cx->up_sorted[i] = &c->upstreams[i];
    if (!cx->oom)
        qsort(cx->up_sorted, c->nupstreams, sizeof *cx->up_sorted, cmp_up_name);
}

const tg_upstream_cfg_t *tg__upstream_find(tg__ctx_t *cx, const char *name)
{
    size_t lo = 0, hi = cx->oom ? 0 : cx->cfg->nupstreams;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, cx->up_sorted[mid]->name);
        if (c == 0)
            return cx->up_sorted[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
