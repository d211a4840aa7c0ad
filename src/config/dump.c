/* tg_config_to_json: the effective configuration as JSON (GET /config).
 *
 * The output uses the file's own key names and units (durations as "30s",
 * sizes in bytes) with every default filled in, so it is itself a valid
 * configuration file that loads to the same snapshot — except that secrets
 * are replaced by "[redacted]": admin.token, and header values whose name
 * suggests a credential (Authorization, Cookie, *token*, *key*, ...). */
#include "config/config.h"
#include "config/internal.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define REDACTED "[redacted]"

typedef struct out {
    bool ok; /* false after any allocation failure */
} out_t;

static json_t *put(out_t *o, json_t *obj, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(obj, key, v) != 0) /* set_new drops v on failure */
        o->ok = false;
    return v;
}

static void append(out_t *o, json_t *arr, json_t *v)
{
    if (v == NULL || json_array_append_new(arr, v) != 0)
        o->ok = false;
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *duration(uint64_t ms)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
    };
    char buf[32];
    for (size_t i = 0; i < 4; i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, sizeof buf, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return json_string(buf);
        }
    }
    snprintf(buf, sizeof buf, ms ? "%llums" : "%llus", (unsigned long long)ms);
    return json_string(buf);
}

static bool sensitive(const char *name)
{
    static const char *const words[] = { "auth", "token", "secret", "passw", "key", "cookie", "session",
                                         "credential", "signature" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(name, words[i]) != NULL)
            return true;
    return false;
}

static json_t *header_value(const char *name, const char *value)
{
    return json_string(sensitive(name) ? REDACTED : value);
}

static json_t *kv_object(out_t *o, const tg_kv_t *kv, size_t n)
{
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < n; i++)
        put(o, obj, kv[i].name, header_value(kv[i].name, kv[i].value));
    return obj;
}

static json_t *str_array(out_t *o, const char *const *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        append(o, arr, json_string(v[i]));
    return arr;
}

/* ---- server, admin ---- */

static json_t *cidr(const tg_cidr_t *c)
{
    char addr[64], buf[80];
    if (inet_ntop(c->family, c->addr, addr, sizeof addr) == NULL)
        return NULL;
    snprintf(buf, sizeof buf, "%s/%u", addr, c->prefix_len);
    return json_string(buf);
}

static json_t *limits(out_t *o, const tg_limits_cfg_t *l)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    put(o, j, "header_timeout", duration(l->header_timeout_ms));
    put(o, j, "idle_timeout", duration(l->idle_timeout_ms));
    put(o, j, "body_timeout", duration(l->body_timeout_ms));
    put(o, j, "max_header_bytes", json_integer((json_int_t)l->max_header_bytes));
    put(o, j, "max_headers", json_integer(l->max_headers));
    put(o, j, "max_uri_bytes", json_integer((json_int_t)l->max_uri_bytes));
    put(o, j, "max_body_bytes", json_integer((json_int_t)l->max_body_bytes));
    put(o, j, "max_connections", json_integer(l->max_connections));
    return j;
}

/* A listen entry: the bare address, or an object with tls/protocols. */
static json_t *listen_entry(out_t *o, const tg_listen_cfg_t *l)
{
    if (l->tls == NULL && l->nprotocols == 0)
        return json_string(l->address);
    json_t *j = json_object(), *arr, *sub;
    if (j == NULL)
        return NULL;
    put(o, j, "address", json_string(l->address));
    if (l->tls && (sub = put(o, j, "tls", json_object())) != NULL) {
        if ((arr = put(o, sub, "certificates", json_array())) != NULL)
            for (size_t i = 0; i < l->tls->ncerts; i++) {
                const tg_tls_cert_cfg_t *c = &l->tls->certs[i];
                json_t *e = json_object();
                if (e) {
                    put(o, e, "cert", json_string(c->cert));
                    put(o, e, "key", json_string(c->key));
                    if (c->ocsp)
                        put(o, e, "ocsp", json_string(c->ocsp));
                }
                append(o, arr, e);
            }
        if (l->tls->client_ca)
            put(o, sub, "client_ca", json_string(l->tls->client_ca));
    }
    if (l->nprotocols && (arr = put(o, j, "protocols", json_array())) != NULL)
        for (uint8_t i = 0; i < l->nprotocols; i++)
            append(o, arr, json_string(l->protocols[i] == TG_ALPN_H2 ? "h2" : "http/1.1"));
    return j;
}

static json_t *server(out_t *o, const tg_server_cfg_t *s)
{
    static const char *const formats[] = { "json", "combined", "off" };
    static const char *const levels[] = { "debug", "info", "warn", "error" };
    json_t *j = json_object(), *arr, *sub;
    if (j == NULL)
        return NULL;
    if ((arr = put(o, j, "listen", json_array())) != NULL)
        for (size_t i = 0; i < s->nlisten; i++)
            append(o, arr, listen_entry(o, &s->listen[i]));
    put(o, j, "workers", json_integer(s->workers));
    put(o, j, "limits", limits(o, &s->limits));
    if ((arr = put(o, j, "trusted_proxies", json_array())) != NULL)
        for (size_t i = 0; i < s->ntrusted_proxies; i++)
            append(o, arr, cidr(&s->trusted_proxies[i]));
    if ((sub = put(o, j, "access_log", json_object())) != NULL) {
        put(o, sub, "path", json_string(s->access_log_path));
        put(o, sub, "format", json_string(formats[s->access_log_format]));
    }
    if ((sub = put(o, j, "error_log", json_object())) != NULL) {
        put(o, sub, "path", json_string(s->error_log_path));
        put(o, sub, "level", json_string(levels[s->error_log_level]));
    }
    put(o, j, "shutdown_grace", duration(s->shutdown_grace_ms));
    return j;
}

static json_t *admin(out_t *o, const tg_admin_cfg_t *a)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    put(o, j, "listen", json_string(a->listen.address));
    if (a->token)
        put(o, j, "token", json_string(REDACTED));
    return j;
}

/* ---- upstreams ---- */

static json_t *retry_on(out_t *o, uint32_t bits)
{
    static const char *const names[] = { "connect_failure", "reset", "timeout", "502", "503", "504" };
    json_t *arr = json_array();
    for (unsigned i = 0; arr && i < 6; i++)
        if (bits & (1u << i))
            append(o, arr, json_string(names[i]));
    return arr;
}

/* health_check, outlier, circuit_breaker: only the sections that were given. */
static void resilience(out_t *o, json_t *j, const tg_upstream_cfg_t *u)
{
    json_t *sub, *arr;
    if (u->has_health_check && (sub = put(o, j, "health_check", json_object())) != NULL) {
        const tg_health_check_cfg_t *hc = &u->health_check;
        put(o, sub, "path", json_string(hc->path));
        put(o, sub, "interval", duration(hc->interval_ms));
        put(o, sub, "timeout", duration(hc->timeout_ms));
        put(o, sub, "healthy", json_integer(hc->healthy));
        put(o, sub, "unhealthy", json_integer(hc->unhealthy));
        if (u->protocol == TG_PROTO_GRPC)
            put(o, sub, "service", json_string(hc->service));
        if ((arr = put(o, sub, "expect", json_array())) != NULL) {
            for (size_t i = 0; i < hc->nexpect; i++) {
                char r[16];
                snprintf(r, sizeof r, "%u-%u", hc->expect[i].lo, hc->expect[i].hi);
                append(o, arr, json_string(r));
            }
        }
    }
    if (u->outlier.consecutive_failures && (sub = put(o, j, "outlier", json_object())) != NULL) {
        put(o, sub, "consecutive_failures", json_integer(u->outlier.consecutive_failures));
        put(o, sub, "eject", duration(u->outlier.eject_ms));
    }
    if ((u->breaker.max_connections || u->breaker.max_pending) &&
        (sub = put(o, j, "circuit_breaker", json_object())) != NULL) {
        put(o, sub, "max_connections", json_integer(u->breaker.max_connections));
        put(o, sub, "max_pending", json_integer(u->breaker.max_pending));
    }
}

static json_t *upstream(out_t *o, const tg_upstream_cfg_t *u)
{
    static const char *const balances[] = { "round_robin", "least_conn", "random", "p2c", "hash" };
    static const char *const protos[] = { "http1", "h2c", "h2", "grpc" };
    char budget[8];
    json_t *j = json_object(), *arr, *sub;
    if (j == NULL)
        return NULL;
    if ((arr = put(o, j, "servers", json_array())) != NULL) {
        for (size_t i = 0; i < u->nservers; i++) {
            json_t *sv = json_object();
            append(o, arr, sv);
            if (sv) {
                put(o, sv, "address", json_string(u->servers[i].address));
                put(o, sv, "weight", json_integer(u->servers[i].weight));
                put(o, sv, "backup", json_boolean(u->servers[i].backup));
            }
        }
    }
    put(o, j, "balance", json_string(balances[u->balance]));
    if (u->hash_key)
        put(o, j, "hash_key", json_string(u->hash_key));
    put(o, j, "protocol", json_string(protos[u->protocol]));
    if (u->tls.enabled && (sub = put(o, j, "tls", json_object())) != NULL) {
        put(o, sub, "verify", json_boolean(u->tls.verify));
        if (u->tls.ca)
            put(o, sub, "ca", json_string(u->tls.ca));
        if (u->tls.sni)
            put(o, sub, "sni", json_string(u->tls.sni));
        if (u->tls.cert) {
            put(o, sub, "cert", json_string(u->tls.cert));
            put(o, sub, "key", json_string(u->tls.key));
        }
    }
    if ((sub = put(o, j, "keepalive", json_object())) != NULL) {
        put(o, sub, "max_idle", json_integer(u->keepalive_max_idle));
        put(o, sub, "idle_timeout", duration(u->keepalive_idle_timeout_ms));
    }
    if ((sub = put(o, j, "timeouts", json_object())) != NULL) {
        put(o, sub, "connect", duration(u->connect_timeout_ms));
        put(o, sub, "response", duration(u->response_timeout_ms));
        put(o, sub, "idle", duration(u->idle_timeout_ms));
    }
    if ((sub = put(o, j, "retries", json_object())) != NULL) {
        snprintf(budget, sizeof budget, "%u%%", u->retry_budget_pct);
        put(o, sub, "attempts", json_integer(u->retry_attempts));
        put(o, sub, "on", retry_on(o, u->retry_on));
        put(o, sub, "budget", json_string(budget));
        put(o, sub, "non_idempotent", json_boolean(u->retry_non_idempotent));
    }
    resilience(o, j, u);
    put(o, j, "dns_refresh", duration(u->dns_refresh_ms));
    return j;
}

/* ---- routes ---- */

static json_t *value_match(tg_hmatch_kind_t kind, const char *name, const char *value)
{
    if (kind == TG_HMATCH_PRESENT)
        return json_string("present");
    if (sensitive(name))
        return json_string(REDACTED);
    if (kind == TG_HMATCH_EXACT)
        return json_string(value);
    size_t n = strlen(value);
    char *s = malloc(n + 2);
    if (s == NULL)
        return NULL;
    s[0] = '~';
    memcpy(s + 1, value, n + 1);
    json_t *j = json_string(s);
    free(s);
    return j;
}

static json_t *methods(out_t *o, const tg_match_cfg_t *m)
{
    static const char *const names[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE" };
    json_t *arr = json_array();
    for (unsigned i = 0; arr && i < 9; i++)
        if (m->methods & (1u << i))
            append(o, arr, json_string(names[i]));
    for (size_t i = 0; arr && i < m->nother_methods; i++)
        append(o, arr, json_string(m->other_methods[i]));
    return arr;
}

static json_t *match(out_t *o, const tg_match_cfg_t *m)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    if (m->nhosts)
        put(o, j, "host", str_array(o, m->hosts, m->nhosts));
    if (m->path)
        put(o, j, "path", json_string(m->path));
    if (m->path_exact)
        put(o, j, "path_exact", json_string(m->path_exact));
    if (m->path_regex_src)
        put(o, j, "path_regex", json_string(m->path_regex_src));
    if (m->methods || m->nother_methods)
        put(o, j, "methods", methods(o, m));
    if (m->nheaders) {
        json_t *h = put(o, j, "headers", json_object());
        for (size_t i = 0; h && i < m->nheaders; i++)
            put(o, h, m->headers[i].name, value_match(m->headers[i].kind, m->headers[i].name, m->headers[i].value));
    }
    if (m->nquery) {
        json_t *q = put(o, j, "query", json_object());
        for (size_t i = 0; q && i < m->nquery; i++)
            put(o, q, m->query[i].name, value_match(m->query[i].kind, m->query[i].name, m->query[i].value));
    }
    return j;
}

static json_t *header_ops(out_t *o, const tg_header_ops_cfg_t *h)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    if (h->nset)
        put(o, j, "set", kv_object(o, h->set, h->nset));
    if (h->nadd)
        put(o, j, "add", kv_object(o, h->add, h->nadd));
    if (h->nremove)
        put(o, j, "remove", str_array(o, h->remove, h->nremove));
    return j;
}

static json_t *rewrite(out_t *o, const tg_rewrite_cfg_t *rw)
{
    json_t *j = json_object(), *sub;
    if (j == NULL)
        return NULL;
    switch (rw->kind) {
    case TG_REWRITE_STRIP_PREFIX:
        put(o, j, "strip_prefix", json_string(rw->from));
        break;
    case TG_REWRITE_REPLACE_PREFIX:
        if ((sub = put(o, j, "replace_prefix", json_object())) != NULL) {
            put(o, sub, "from", json_string(rw->from));
            put(o, sub, "to", json_string(rw->to));
        }
        break;
    case TG_REWRITE_REGEX:
        if ((sub = put(o, j, "regex", json_object())) != NULL) {
            put(o, sub, "pattern", json_string(rw->pattern_src));
            put(o, sub, "replace", json_string(rw->replace));
        }
        break;
    default:
        break;
    }
    return j;
}

static json_t *respond(out_t *o, const tg_respond_cfg_t *r)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    put(o, j, "status", json_integer(r->status));
    put(o, j, "body", r->body ? json_stringn(r->body, r->body_len) : json_string(""));
    if (r->nheaders)
        put(o, j, "headers", kv_object(o, r->headers, r->nheaders));
    return j;
}

static void route_extras(out_t *o, json_t *j, const tg_route_cfg_t *r)
{
    json_t *sub;
    if (r->response_timeout_ms && (sub = put(o, j, "timeouts", json_object())) != NULL)
        put(o, sub, "response", duration(r->response_timeout_ms));
    if (r->max_body_bytes && (sub = put(o, j, "limits", json_object())) != NULL)
        put(o, sub, "max_body_bytes", json_integer((json_int_t)r->max_body_bytes));
    if (r->has_retries && (sub = put(o, j, "retries", json_object())) != NULL)
        put(o, sub, "attempts", json_integer(r->retry_attempts));
    if (r->nrate_limits)
        put(o, j, "rate_limit", tg__dump_rate_limits(r));
    if (r->websocket)
        put(o, j, "websocket", json_true());
    if (r->grpc_web)
        put(o, j, "grpc_web", json_true());
}

static json_t *route(out_t *o, const tg_route_cfg_t *r)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    put(o, j, "name", str_or_null(r->name));
    put(o, j, "match", match(o, &r->match));
    if (r->has_respond)
        put(o, j, "respond", respond(o, &r->respond));
    else
        put(o, j, "upstream", str_or_null(r->upstream ? r->upstream->name : NULL));
    if (r->rewrite.kind != TG_REWRITE_NONE)
        put(o, j, "rewrite", rewrite(o, &r->rewrite));
    if (r->request_headers.nset || r->request_headers.nadd || r->request_headers.nremove)
        put(o, j, "request_headers", header_ops(o, &r->request_headers));
    if (r->response_headers.nset || r->response_headers.nadd || r->response_headers.nremove)
        put(o, j, "response_headers", header_ops(o, &r->response_headers));
    route_extras(o, j, r);
    tg__dump_security_route(r, j); /* dump_security.c */
    return j;
}

char *tg_config_to_json(const tg_config_t *c)
{
    out_t o = { true };
    json_t *root = json_object(), *ups, *routes;
    if (root == NULL)
        return NULL;
    put(&o, root, "server", server(&o, &c->server));
    if (c->admin.enabled)
        put(&o, root, "admin", admin(&o, &c->admin));
    if (c->redis.enabled)
        put(&o, root, "redis", tg__dump_redis(&c->redis));
    tg__dump_security_top(c, root); /* dump_security.c */
    if ((ups = put(&o, root, "upstreams", json_object())) != NULL)
        for (size_t i = 0; i < c->nupstreams; i++)
            put(&o, ups, c->upstreams[i].name, upstream(&o, &c->upstreams[i]));
    if ((routes = put(&o, root, "routes", json_array())) != NULL)
        for (size_t i = 0; i < c->nroutes; i++)
            append(&o, routes, route(&o, &c->routes[i]));
    char *s = o.ok ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    return s;
}
