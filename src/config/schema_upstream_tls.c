/* upstreams.*.tls, the protocol/TLS cross checks, and the route keys that
 * depend on the upstream's protocol (websocket, grpc_web). */
#include "config/internal.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>

typedef struct tls_obj {
    tg_upstream_tls_cfg_t *t;
    tg__node_t *cert, *key;
} tls_obj_t;

/* A readable PEM file with at least one object OpenSSL accepts. `what`:
 * "certificate" (a chain or CA bundle) or "key". */
static const char *pem_file(tg__ctx_t *cx, tg__node_t *v, const char *what)
{
    const char *s;
    if (!tg__str_nonempty(cx, v, &s))
        return NULL;
    const char *path = tg__resolve_path(cx, s);
    if (path == NULL)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return tg__oom(cx);
    bool ok = strcmp(what, "key") == 0 ? SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) == 1
              : strcmp(what, "ca") == 0 ? SSL_CTX_load_verify_locations(ctx, path, NULL) == 1
                                        : SSL_CTX_use_certificate_chain_file(ctx, path) == 1;
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    SSL_CTX_free(ctx);
    if (!ok) {
        tg__err(cx, v, "cannot load %s from \"%s\": %s", what, path,
                e ? ERR_reason_error_string(e) : "unreadable");
        return NULL;
    }
    return path;
}

static void t_verify(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__bool(cx, v, &((tls_obj_t *)obj)->t->verify);
}

static void t_ca(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    ((tls_obj_t *)obj)->t->ca = pem_file(cx, v, "ca");
}

static void t_sni(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    if (strlen(s) > 253 || strpbrk(s, " /:@\t") != NULL) {
        tg__err(cx, v, "expected a server name like users.internal, got \"%s\"", s);
        return;
    }
    ((tls_obj_t *)obj)->t->sni = s;
}

static void t_cert(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tls_obj_t *o = obj;
    o->cert = v;
    o->t->cert = pem_file(cx, v, "certificate");
}

static void t_key(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tls_obj_t *o = obj;
    o->key = v;
    o->t->key = pem_file(cx, v, "key");
}

static const tg__key_t tls_keys[] = {
    { "verify", t_verify }, { "ca", t_ca }, { "sni", t_sni },
    { "cert", t_cert }, { "key", t_key }, { NULL, NULL },
};
static const tg__schema_t tls_schema = { "upstreams.*.tls", tls_keys, false };

void tg__load_upstream_tls(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u)
{
    tls_obj_t o = { .t = &u->tls };
    u->tls.enabled = true;
    u->tls.verify = true; /* never silently trust: verify unless told not to */
    if (tg__node_is_null(v))
        return; /* tls: {} or tls: with no value: defaults */
    if (v->kind == TG__NODE_SCALAR) {
        /* tls: true | false as a shorthand */
        bool on;
        if (tg__bool(cx, v, &on))
            u->tls.enabled = on;
        return;
    }
    if (!tg__apply(cx, v, &tls_schema, &o))
        return;
    if ((o.cert == NULL) != (o.key == NULL))
        tg__err(cx, v, "cert and key go together: give both or neither");
}

void tg__upstream_protocol_finish(tg__ctx_t *cx, tg__node_t *n, tg_upstream_cfg_t *u)
{
    if (u->protocol == TG_PROTO_H2 && !u->tls.enabled) {
        size_t mark = tg__path_key(cx, "protocol");
        tg__err(cx, tg__map_get(n, "protocol"), "h2 is HTTP/2 over TLS and needs tls: "
                                                "(use h2c for cleartext HTTP/2)");
        tg__path_pop(cx, mark);
    }
    tg__node_t *hc = u->has_health_check ? tg__map_get(n, "health_check") : NULL;
    tg__node_t *svc = hc && hc->kind == TG__NODE_MAP ? tg__map_get(hc, "service") : NULL;
    if (svc && u->protocol != TG_PROTO_GRPC) {
        size_t mark = tg__path_key(cx, "health_check");
        size_t mark2 = tg__path_key(cx, "service");
        tg__err(cx, svc, "service names the gRPC health service: it needs protocol: grpc "
                         "(other protocols are checked with path and expect)");
        tg__path_pop(cx, mark2);
        tg__path_pop(cx, mark);
    }
    if (u->protocol == TG_PROTO_H2C && u->tls.enabled) {
        size_t mark = tg__path_key(cx, "tls");
        tg__err(cx, tg__map_get(n, "tls"), "h2c is cleartext HTTP/2 (use protocol: h2 for "
                                           "HTTP/2 over TLS)");
        tg__path_pop(cx, mark);
    }
}

/* ---- routes[].websocket, routes[].grpc_web ---- */

void tg__load_route_websocket(tg__ctx_t *cx, tg__node_t *v, tg_route_cfg_t *r)
{
    tg__bool(cx, v, &r->websocket);
}

void tg__load_route_grpc_web(tg__ctx_t *cx, tg__node_t *v, tg_route_cfg_t *r)
{
    tg__bool(cx, v, &r->grpc_web);
}

void tg__route_protocol_finish(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *r)
{
    const tg_upstream_cfg_t *u = r->upstream;
    if (u == NULL)
        return;
    if (r->websocket && u->protocol != TG_PROTO_HTTP1) {
        size_t mark = tg__path_key(cx, "websocket");
        tg__err(cx, tg__map_get(n, "websocket"), "WebSocket is tunnelled to HTTP/1.1 upstreams "
                                                 "only; upstream \"%s\" speaks another protocol", u->name);
        tg__path_pop(cx, mark);
    }
    if (r->grpc_web && u->protocol != TG_PROTO_GRPC) {
        size_t mark = tg__path_key(cx, "grpc_web");
        tg__err(cx, tg__map_get(n, "grpc_web"), "needs an upstream with protocol: grpc; "
                                                "upstream \"%s\" is not one", u->name);
        tg__path_pop(cx, mark);
    }
}
