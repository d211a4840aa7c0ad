/* The server: and admin: sections. */
#include "config/internal.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define TG__MAX_WORKERS 1024

void tg__server_defaults(tg_config_t *c)
{
    tg_server_cfg_t *s = &c->server;
    s->workers = 0; /* resolved in tg__server_finish: absent = auto */
    s->limits = (tg_limits_cfg_t){
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 75000,
        .body_timeout_ms = 60000,
        .max_header_bytes = 16 * 1024,
        .max_headers = 100,
        .max_uri_bytes = 8 * 1024,
        .max_body_bytes = 10 * 1024 * 1024,
        .max_connections = 100000,
    };
    s->access_log_path = "stdout";
    s->access_log_format = TG_LOG_JSON;
    s->error_log_path = "stderr";
    s->error_log_level = TG_LEVEL_INFO;
    s->shutdown_grace_ms = 30000;
    c->admin.listen.address = "127.0.0.1:9901";
    (void)tg_parse_listen_address(c->admin.listen.address, &c->admin.listen.addr,
                                  &c->admin.listen.addr_len);
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > TG__MAX_WORKERS ? TG__MAX_WORKERS : (int)n;
}

/* ---- listen ---- */

/* Parses a listen address into l, explaining what is wrong otherwise. */
static bool listen_address(tg__ctx_t *cx, tg__node_t *n, tg_listen_cfg_t *l)
{
    const char *s;
    if (!tg__str_nonempty(cx, n, &s))
        return false;
    l->address = s;
    if (tg_parse_listen_address(s, &l->addr, &l->addr_len) == 0)
        return true;
    char host[300];
    uint16_t port;
    bool br;
    if (strspn(s, "0123456789") == strlen(s))
        tg__err(cx, n, "expected an address like \":%s\": a bare port needs a leading colon", s);
    else if (strncmp(s, "unix:", 5) == 0)
        tg__err(cx, n, "unix socket path is empty or longer than %zu bytes",
                sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    else if (tg__split_host_port(s, host, sizeof host, &port, &br) == 0)
        tg__err(cx, n, "the host of \"%s\" must be an IP address, localhost, or empty for all "
                       "interfaces (\":8080\")", s);
    else
        tg__err(cx, n, "expected an address like \":8080\", \"127.0.0.1:8080\", \"[::1]:8080\" "
                       "or \"unix:/path\", got \"%s\"", s);
    return false;
}

typedef struct listen_obj {
    tg_listen_cfg_t *l;
    bool have_address;
} listen_obj_t;

static void listen_addr_key(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    listen_obj_t *o = obj;
    o->have_address = true;
    listen_address(cx, v, o->l);
}

static const tg__enum_t protocols[] = { { "http/1.1", TG_ALPN_HTTP11 }, { "h2", TG_ALPN_H2 }, { NULL, 0 } };

/* The ALPN list, in preference order (duplicates are errors). */
static void listen_protocols(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_listen_cfg_t *l = ((listen_obj_t *)obj)->l;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, false, &items, &n))
        return;
    if (n == 0)
        tg__err(cx, v, "needs at least one protocol");
    for (size_t i = 0; i < n; i++) {
        size_t mark = tg__path_index(cx, i);
        int p;
        if (tg__enum(cx, items[i], protocols, "server.listen[]", "protocols", &p)) {
            bool dup = false;
            for (uint8_t k = 0; k < l->nprotocols; k++)
                dup |= l->protocols[k] == p;
            if (dup)
                tg__err(cx, items[i], "listed twice");
            else if (l->nprotocols < sizeof l->protocols)
                l->protocols[l->nprotocols++] = (uint8_t)p;
        }
        tg__path_pop(cx, mark);
    }
}

static void listen_tls(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_listen_tls(cx, v, ((listen_obj_t *)obj)->l); /* schema_tls.c */
}

static const tg__key_t listen_keys[] = {
    { "address", listen_addr_key },
    { "protocols", listen_protocols },
    { "tls", listen_tls },
    { NULL, NULL },
};
static const tg__schema_t listen_schema = { "server.listen[]", listen_keys, false };

static void listen_entry(tg__ctx_t *cx, tg__node_t *n, tg_listen_cfg_t *l)
{
    if (n->kind == TG__NODE_SCALAR) {
        listen_address(cx, n, l);
        return;
    }
    listen_obj_t o = { l, false };
    if (tg__apply(cx, n, &listen_schema, &o) && !o.have_address)
        tg__err(cx, n, "missing required key \"address\"");
}

static void server_listen(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_server_cfg_t *s = obj;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    if (n == 0) {
        tg__err(cx, v, "needs at least one address (leave listen out for \":8080\")");
        return;
    }
    s->listen = tg__alloc_array(cx, n, sizeof *s->listen);
    if (s->listen == NULL)
        return;
    s->nlisten = n;
    cx->listen_nodes = tg__alloc_array(cx, n, sizeof *cx->listen_nodes);
    if (cx->listen_nodes == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        cx->listen_nodes[i] = items[i];
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        listen_entry(cx, items[i], &s->listen[i]);
        tg__path_pop(cx, mark);
    }
}

/* ---- scalars of server: ---- */

static void server_workers(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_server_cfg_t *s = obj;
    const char *str;
    uint64_t n;
    if (v->kind != TG__NODE_SCALAR || v->sc.null) {
        tg__err(cx, v, "expected a number of threads or \"auto\"");
        return;
    }
    if (!tg__str(cx, v, &str))
        return;
    if (strcmp(str, "auto") == 0)
        s->workers = cpu_count();
    else if (str[0] == '\0' || strspn(str, "0123456789") != strlen(str))
        tg__err(cx, v, "expected a number of threads or \"auto\", got \"%.40s\"", str);
    else if (tg__uint(cx, v, 1, TG__MAX_WORKERS, &n))
        s->workers = (int)n;
}

static void server_shutdown_grace(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 0, &((tg_server_cfg_t *)obj)->shutdown_grace_ms);
}

static void server_trusted_proxies(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_server_cfg_t *s = obj;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    s->trusted_proxies = tg__alloc_array(cx, n, sizeof *s->trusted_proxies);
    if (s->trusted_proxies == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        const char *str;
        if (tg__str(cx, items[i], &str)) {
            if (tg_parse_cidr(str, &s->trusted_proxies[s->ntrusted_proxies]) == 0)
                s->ntrusted_proxies++;
            else
                tg__err(cx, items[i], "expected an IP address or CIDR like 10.0.0.0/8, got \"%s\"", str);
        }
        tg__path_pop(cx, mark);
    }
}

/* ---- limits ---- */

#define LIMIT_DURATION(field)                                                   \
    static void limit_##field(tg__ctx_t *cx, tg__node_t *v, void *obj)          \
    {                                                                           \
        tg__duration(cx, v, 1, &((tg_limits_cfg_t *)obj)->field##_ms);          \
    }
LIMIT_DURATION(header_timeout)
LIMIT_DURATION(idle_timeout)
LIMIT_DURATION(body_timeout)

static void limit_max_header_bytes(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__size(cx, v, 1024, 1024 * 1024, &((tg_limits_cfg_t *)obj)->max_header_bytes);
}

static void limit_max_uri_bytes(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__size(cx, v, 256, 1024 * 1024, &((tg_limits_cfg_t *)obj)->max_uri_bytes);
}

static void limit_max_body_bytes(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__size(cx, v, 1, UINT64_MAX >> 1, &((tg_limits_cfg_t *)obj)->max_body_bytes);
}

static void limit_max_headers(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t n;
    if (tg__uint(cx, v, 1, 10000, &n))
        ((tg_limits_cfg_t *)obj)->max_headers = (uint32_t)n;
}

static void limit_max_connections(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t n;
    if (tg__uint(cx, v, 1, 10000000, &n))
        ((tg_limits_cfg_t *)obj)->max_connections = (uint32_t)n;
}

static const tg__key_t limits_keys[] = {
    { "header_timeout", limit_header_timeout },
    { "idle_timeout", limit_idle_timeout },
    { "body_timeout", limit_body_timeout },
    { "max_header_bytes", limit_max_header_bytes },
    { "max_headers", limit_max_headers },
    { "max_uri_bytes", limit_max_uri_bytes },
    { "max_body_bytes", limit_max_body_bytes },
    { "max_connections", limit_max_connections },
    { NULL, NULL },
};
static const tg__schema_t limits_schema = { "server.limits", limits_keys, false };

static void server_limits(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__apply(cx, v, &limits_schema, &((tg_server_cfg_t *)obj)->limits);
}

/* ---- logs ---- */

static void log_path(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__str_nonempty(cx, v, (const char **)obj);
}

static void access_log_format(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    static const tg__enum_t tab[] = {
        { "json", TG_LOG_JSON }, { "combined", TG_LOG_COMBINED }, { "off", TG_LOG_OFF }, { NULL, 0 },
    };
    tg_server_cfg_t *s = obj;
    int f;
    if (tg__enum(cx, v, tab, "server.access_log", "format", &f))
        s->access_log_format = (tg_log_format_t)f;
}

static void access_log_path(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    log_path(cx, v, &((tg_server_cfg_t *)obj)->access_log_path);
}

static void error_log_path(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    log_path(cx, v, &((tg_server_cfg_t *)obj)->error_log_path);
}

static void error_log_level(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    static const tg__enum_t tab[] = {
        { "debug", TG_LEVEL_DEBUG }, { "info", TG_LEVEL_INFO }, { "warn", TG_LEVEL_WARN },
        { "error", TG_LEVEL_ERROR }, { NULL, 0 },
    };
    tg_server_cfg_t *s = obj;
    int l;
    if (tg__enum(cx, v, tab, "server.error_log", "level", &l))
        s->error_log_level = (tg_log_level_t)l;
}

static const tg__key_t access_log_keys[] = {
    { "path", access_log_path }, { "format", access_log_format }, { NULL, NULL },
};
static const tg__schema_t access_log_schema = { "server.access_log", access_log_keys, false };
static const tg__key_t error_log_keys[] = {
    { "path", error_log_path }, { "level", error_log_level }, { NULL, NULL },
};
static const tg__schema_t error_log_schema = { "server.error_log", error_log_keys, false };

static void server_access_log(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__apply(cx, v, &access_log_schema, obj);
}

static void server_error_log(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__apply(cx, v, &error_log_schema, obj);
}

/* ---- server: ---- */

static const tg__key_t server_keys[] = {
    { "listen", server_listen },
    { "workers", server_workers },
    { "limits", server_limits },
    { "trusted_proxies", server_trusted_proxies },
    { "access_log", server_access_log },
    { "error_log", server_error_log },
    { "shutdown_grace", server_shutdown_grace },
    { NULL, NULL },
};
static const tg__schema_t server_schema = { "server", server_keys, false };

void tg__load_server(tg__ctx_t *cx, tg__node_t *n, void *obj)
{
    tg__apply(cx, n, &server_schema, &cx->cfg->server);
}

/* ---- admin: ---- */

static void admin_listen(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_admin_cfg_t *a = obj;
    if (v->kind == TG__NODE_SEQ || v->kind == TG__NODE_MAP) {
        tg__err(cx, v, "expected one address like \"127.0.0.1:9901\"");
        return;
    }
    cx->admin_listen_node = v;
    listen_address(cx, v, &a->listen);
}

static void admin_token(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_admin_cfg_t *a = obj;
    const char *t;
    /* An empty token (say, an unset variable behind ${T:-}) must not quietly
     * turn into "no token": that would open the write endpoints. */
    if (!tg__str_nonempty(cx, v, &t))
        return;
    if (!tg__is_field_value(t) || strpbrk(t, " \t") != NULL) {
        tg__err(cx, v, "the token must not contain spaces or control characters");
        return;
    }
    a->token = t;
}

static const tg__key_t admin_keys[] = {
    { "listen", admin_listen }, { "token", admin_token }, { NULL, NULL },
};
static const tg__schema_t admin_schema = { "admin", admin_keys, false };

void tg__load_admin(tg__ctx_t *cx, tg__node_t *n, void *obj)
{
    cx->cfg->admin.enabled = true;
    cx->admin_listen_node = n; /* until a listen: key gives a closer place */
    tg__apply(cx, n, &admin_schema, &cx->cfg->admin);
}

/* ---- after the sections: defaults that depend on presence, cross checks ---- */

/* True when binding both would collide (same endpoint, or a wildcard and
 * anything on the same family and port). */
static bool same_endpoint(const tg_listen_cfg_t *a, const tg_listen_cfg_t *b)
{
    const struct sockaddr *sa = (const struct sockaddr *)&a->addr, *sb = (const struct sockaddr *)&b->addr;
    if (sa->sa_family != sb->sa_family)
        return false;
    if (sa->sa_family == AF_UNIX)
        return strcmp(((const struct sockaddr_un *)sa)->sun_path, ((const struct sockaddr_un *)sb)->sun_path) == 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)sa, *y = (const void *)sb;
        return x->sin_port == y->sin_port &&
               (x->sin_addr.s_addr == y->sin_addr.s_addr || x->sin_addr.s_addr == htonl(INADDR_ANY) ||
                y->sin_addr.s_addr == htonl(INADDR_ANY));
    }
    const struct sockaddr_in6 *x = (const void *)sa, *y = (const void *)sb;
    return x->sin6_port == y->sin6_port &&
           (memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0 ||
            memcmp(&x->sin6_addr, &in6addr_any, 16) == 0 || memcmp(&y->sin6_addr, &in6addr_any, 16) == 0);
}

static void check_listen_clashes(tg__ctx_t *cx)
{
    tg_server_cfg_t *s = &cx->cfg->server;
    const tg_listen_cfg_t *admin = &cx->cfg->admin.listen;
    bool admin_ok = cx->cfg->admin.enabled && admin->addr_len != 0;
    size_t mark = cx->pathlen;
    for (size_t i = 0; i < s->nlisten; i++) {
        const tg_listen_cfg_t *l = &s->listen[i];
        for (size_t j = 0; j < i && l->addr_len && cx->listen_nodes; j++) {
            if (s->listen[j].addr_len && same_endpoint(l, &s->listen[j])) {
                tg__path_key(cx, "server");
                tg__path_key(cx, "listen");
                tg__path_index(cx, i);
                tg__err(cx, cx->listen_nodes[i], "\"%s\" overlaps server.listen[%zu] \"%s\"",
                        l->address, j, s->listen[j].address);
                tg__path_pop(cx, mark);
                break;
            }
        }
        if (admin_ok && l->addr_len && same_endpoint(l, admin)) {
            tg__path_key(cx, "admin");
            tg__path_key(cx, "listen");
            tg__err(cx, cx->admin_listen_node, "\"%s\" overlaps server.listen[%zu] \"%s\"",
                    admin->address, i, l->address);
            tg__path_pop(cx, mark);
        }
    }
}

void tg__server_finish(tg__ctx_t *cx)
{
    tg_server_cfg_t *s = &cx->cfg->server;
    if (s->workers == 0)
        s->workers = cpu_count();
    if (s->listen == NULL) {
        s->listen = tg__alloc(cx, sizeof *s->listen);
        if (s->listen == NULL)
            return;
        s->listen[0].address = ":8080";
        (void)tg_parse_listen_address(":8080", &s->listen[0].addr, &s->listen[0].addr_len);
        s->nlisten = 1;
    }
    check_listen_clashes(cx);
}
