/* Header shaping for both directions: forwarded headers, hop-by-hop removal,
 * identity headers and the route's header operations. */
#include "proxy/exchange_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include "http/h1.h"

typedef struct hlist {
    tg_header_t *v;
    size_t n, cap;
} hlist_t;

static int hl_init(tg_exchange_t *ex, hlist_t *l, size_t cap)
{
    l->v = tg_arena_alloc(&ex->arena, cap * sizeof *l->v);
    l->n = 0;
    l->cap = cap;
    return l->v ? 0 : -1;
}

static void hl_add(hlist_t *l, tg_str_t name, tg_str_t value)
{
    if (l->n < l->cap)
        l->v[l->n++] = (tg_header_t){ name, value };
}

static void hl_remove(hlist_t *l, tg_str_t name)
{
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++)
        if (!tg_str_ieq(l->v[i].name, name))
            l->v[o++] = l->v[i];
    l->n = o;
}

/* Framing fields belong to the codec; routes cannot override them. */
static bool is_framing(tg_str_t name)
{
    return tg_str_ieq_c(name, "content-length") || tg_str_ieq_c(name, "transfer-encoding");
}

static void apply_ops(hlist_t *l, const tg_header_ops_cfg_t *ops)
{
    for (size_t i = 0; i < ops->nremove; i++)
        if (!is_framing(tg_str_c(ops->remove[i])))
            hl_remove(l, tg_str_c(ops->remove[i]));
    for (size_t i = 0; i < ops->nset; i++) {
        tg_str_t name = tg_str_c(ops->set[i].name);
        if (is_framing(name))
            continue;
        hl_remove(l, name);
        hl_add(l, name, tg_str_c(ops->set[i].value));
    }
    for (size_t i = 0; i < ops->nadd; i++)
        if (!is_framing(tg_str_c(ops->add[i].name)))
            hl_add(l, tg_str_c(ops->add[i].name), tg_str_c(ops->add[i].value));
}

static size_t ops_count(const tg_header_ops_cfg_t *ops) { return ops->nset + ops->nadd; }

/* Is `name` listed in any Connection field of h[0..n)? (RFC 9110 §7.6.1) */
static bool connection_listed(const tg_header_t *h, size_t n, tg_str_t name)
{
    for (size_t i = 0; i < n; i++) {
        if (!tg_str_ieq_c(h[i].name, "connection"))
            continue;
        char tok[128];
        if (name.len >= sizeof tok)
            return false;
        memcpy(tok, name.p, name.len);
        tok[name.len] = '\0';
        if (tg_str_list_has_token(h[i].value, tok))
            return true;
    }
    return false;
}

static bool has_connection_field(const tg_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].name.len == 10 && tg_str_ieq_c(h[i].name, "connection"))
            return true;
    return false;
}

/* `conn`: the message has a Connection field (rare with HTTP/1.1 clients), so
 * the fields it lists are hop-by-hop too. */
static bool drop_hop(const tg_header_t *h, size_t n, tg_str_t name, bool conn)
{
    return tg_http_is_hop_by_hop(name) || (conn && connection_listed(h, n, name));
}

/* Joins several field lines of one name with ", ", in order. */
static tg_str_t join_values(tg_exchange_t *ex, const tg_request_t *req, tg_str_t name)
{
    size_t total = 0, count = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (tg_str_ieq(req->headers[i].name, name)) {
            total += req->headers[i].value.len + 2;
            count++;
        }
    if (count == 0)
        return TG_STR_NULL;
    char *buf = tg_arena_alloc(&ex->arena, total);
    if (buf == NULL)
        return TG_STR_NULL;
    size_t o = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!tg_str_ieq(req->headers[i].name, name))
            continue;
        if (o) {
            memcpy(buf + o, ", ", 2);
            o += 2;
        }
        memcpy(buf + o, req->headers[i].value.p, req->headers[i].value.len);
        o += req->headers[i].value.len;
    }
    return tg_str(buf, o);
}

/* prev + sep + value (or value alone when prev is empty), in the arena. */
static tg_str_t concat(tg_exchange_t *ex, tg_str_t prev, const char *sep, const char *value)
{
    size_t sl = prev.len ? strlen(sep) : 0, vl = strlen(value);
    char *p = tg_arena_alloc(&ex->arena, prev.len + sl + vl);
    if (p == NULL)
        return TG_STR_NULL;
    memcpy(p, prev.p ? prev.p : "", prev.len);
    memcpy(p + prev.len, sep, sl);
    memcpy(p + prev.len + sl, value, vl);
    return tg_str(p, prev.len + sl + vl);
}

/* Headers the gateway owns on the way up: client copies are replaced. */
static bool replaced_upstream(tg_str_t name)
{
    static const tg_str_t names[] = {
        TG_STR_LIT("host"), TG_STR_LIT("content-length"), TG_STR_LIT("transfer-encoding"),
        TG_STR_LIT("expect"), TG_STR_LIT("x-request-id"), TG_STR_LIT("x-forwarded-for"),
        TG_STR_LIT("x-forwarded-proto"), TG_STR_LIT("x-forwarded-host"), TG_STR_LIT("x-real-ip"),
        TG_STR_LIT("forwarded"), TG_STR_LIT("via"), TG_STR_LIT("x-consumer-name"),
        TG_STR_LIT("x-consumer-groups"), TG_STR_LIT("x-client-cert-subject"),
        TG_STR_LIT("x-client-cert-fingerprint"),
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].len == name.len && tg_str_ieq(name, names[i]))
            return true;
    return false;
}

static tg_str_t target_for_upstream(tg_exchange_t *ex)
{
    tg_str_t path = tg_route_rewrite_path(ex->route, ex->path, &ex->arena);
    if (path.p == NULL)
        return TG_STR_NULL;
    tg_str_t query = ex->query_set ? ex->up_query : ex->req.query;
    if (query.len == 0)
        return path;
    char *t = tg_arena_alloc(&ex->arena, path.len + 1 + query.len);
    if (t == NULL)
        return TG_STR_NULL;
    memcpy(t, path.p, path.len);
    t[path.len] = '?';
    memcpy(t + path.len + 1, query.p, query.len);
    return tg_str(t, path.len + 1 + query.len);
}

static void apply_edits(tg_exchange_t *ex, hlist_t *l)
{
    for (size_t i = 0; i < ex->nedits; i++) {
        tg_str_t name = tg_str_c(ex->edits[i].name);
        if (is_framing(name))
            continue;
        hl_remove(l, name);
        if (!ex->edits[i].remove)
            hl_add(l, name, ex->edits[i].value);
    }
}

/* X-Consumer-Name / X-Consumer-Groups for authenticated requests. */
static void add_identity(tg_exchange_t *ex, hlist_t *l)
{
    const tg_identity_t *id = &ex->identity;
    if (id->consumer == NULL)
        return;
    hl_add(l, TG_STR_LIT("X-Consumer-Name"), tg_str_c(id->consumer));
    size_t len = 0;
    for (size_t i = 0; i < id->ngroups; i++)
        len += strlen(id->groups[i]) + 1;
    char *g = tg_arena_alloc(&ex->arena, len + 1);
    if (g == NULL)
        return;
    size_t o = 0;
    for (size_t i = 0; i < id->ngroups; i++) {
        if (o)
            g[o++] = ',';
        size_t n = strlen(id->groups[i]);
        memcpy(g + o, id->groups[i], n);
        o += n;
    }
    if (o)
        hl_add(l, TG_STR_LIT("X-Consumer-Groups"), tg_str(g, o));
}

static tg_str_t header_or_null(const tg_request_t *req, const char *name)
{
    const tg_header_t *h = tg_headers_find(req->headers, req->nheaders, name);
    return h ? h->value : TG_STR_NULL;
}

/* Appends n bytes at *o (callers size the buffer for the worst case). */
static void put(char **o, const char *p, size_t n)
{
    memcpy(*o, p, n);
    *o += n;
}

/* This hop's RFC 7239 element, NUL-terminated in elem (384 bytes):
 * for=IP;host="authority";proto=http|https. IPv6 nodes are bracketed and
 * quoted; an authority of 256 bytes or more is left empty. Built by hand:
 * it is on every request and snprintf's format parsing showed in profiles. */
static const char *forwarded_element(const tg_exchange_t *ex, char elem[static 384])
{
    size_t ipl = strnlen(ex->peer_ip, 64);
    bool v6 = memchr(ex->peer_ip, ':', ipl) != NULL;
    size_t hl = ex->authority.len < 256 ? ex->authority.len : 0;
    char *o = elem;
    put(&o, v6 ? "for=\"[" : "for=", v6 ? 6 : 4);
    put(&o, ex->peer_ip, ipl);
    put(&o, v6 ? "]\";host=\"" : ";host=\"", v6 ? 9 : 7);
    put(&o, ex->authority.p ? ex->authority.p : "", hl);
    put(&o, ex->tls ? "\";proto=https" : "\";proto=http", ex->tls ? 13 : 12);
    *o = '\0';
    return elem;
}

static void add_forwarded(tg_exchange_t *ex, const tg_request_t *req, hlist_t *l)
{
    bool trust = ex->peer_trusted;
    tg_str_t xff = join_values(ex, req, TG_STR_LIT("x-forwarded-for"));
    hl_add(l, TG_STR_LIT("X-Forwarded-For"), concat(ex, xff, ", ", ex->peer_ip));
    tg_str_t proto = trust ? header_or_null(req, "x-forwarded-proto") : TG_STR_NULL;
    hl_add(l, TG_STR_LIT("X-Forwarded-Proto"), proto.len ? proto : ex->tls ? TG_STR_LIT("https") : TG_STR_LIT("http"));
    tg_str_t fhost = trust ? header_or_null(req, "x-forwarded-host") : TG_STR_NULL;
    hl_add(l, TG_STR_LIT("X-Forwarded-Host"), fhost.len ? fhost : ex->authority);
    hl_add(l, TG_STR_LIT("X-Real-IP"), tg_str_c(ex->client_ip));
    char elem[384];
    tg_str_t prev = trust ? join_values(ex, req, TG_STR_LIT("forwarded")) : TG_STR_NULL;
    hl_add(l, TG_STR_LIT("Forwarded"), concat(ex, prev, ", ", forwarded_element(ex, elem)));
    tg_str_t via = join_values(ex, req, TG_STR_LIT("via"));
    hl_add(l, TG_STR_LIT("Via"), concat(ex, via, ", ", req->version_major == 2 ? "2 tollgate"
                                                       : req->version_minor ? "1.1 tollgate" : "1.0 tollgate"));
    hl_add(l, TG_STR_LIT("X-Request-Id"), tg_str(ex->request_id, ex->rid_len));
}

int tg__ex_build_upstream_head(tg_exchange_t *ex)
{
    const tg_request_t *req = &ex->req;
    hlist_t l;
    size_t cap = req->nheaders + 16 + ops_count(&ex->route->request_headers) + ex->nedits;
    if (hl_init(ex, &l, cap) < 0)
        return -1;
    if (req->authority.len)
        hl_add(&l, TG_STR_LIT("Host"), ex->authority);
    bool conn = has_connection_field(req->headers, req->nheaders);
    for (size_t i = 0; i < req->nheaders; i++) {
        tg_str_t name = req->headers[i].name;
        if (replaced_upstream(name) || drop_hop(req->headers, req->nheaders, name, conn))
            continue;
        hl_add(&l, name, req->headers[i].value);
    }
    add_forwarded(ex, req, &l);
    add_identity(ex, &l);
    if (ex->cert_subject && ex->cert_fingerprint) { /* mTLS: client copies were dropped above */
        hl_add(&l, TG_STR_LIT("X-Client-Cert-Subject"), tg_str_c(ex->cert_subject));
        hl_add(&l, TG_STR_LIT("X-Client-Cert-Fingerprint"), tg_str_c(ex->cert_fingerprint));
    }
    char clen[24];
    if (req->body == TG_BODY_LENGTH) {
        size_t n = tg_u64_dec(clen, req->content_length);
        hl_add(&l, TG_STR_LIT("Content-Length"), tg_arena_str_dup(&ex->arena, tg_str(clen, n)));
    } else if (req->body == TG_BODY_CHUNKED || req->body == TG_BODY_STREAM) {
        /* A body of unknown length (HTTP/2 DATA frames) goes chunked on HTTP/1.1. */
        hl_add(&l, TG_STR_LIT("Transfer-Encoding"), TG_STR_LIT("chunked"));
    }
    apply_ops(&l, &ex->route->request_headers);
    apply_edits(ex, &l);
    tg_str_t target = target_for_upstream(ex);
    if (target.p == NULL)
        return -1;
    size_t size = tg_h1_head_size(req->method, target, l.v, l.n);
    char *head = tg_arena_alloc(&ex->arena, size);
    if (head == NULL)
        return -1;
    ssize_t n = tg_h1_write_request_head(head, size, req->method, target, l.v, l.n);
    if (n < 0)
        return -1;
    /* The same fields for codecs that frame heads themselves (HTTP/2): they
     * skip Host (the authority) and the HTTP/1.1 framing fields. */
    tg_upreq_t *u = &ex->upreq;
    u->method = req->method;
    u->scheme = TG_STR_LIT("http");
    u->authority = ex->authority;
    u->target = target;
    u->headers = l.v;
    u->nheaders = l.n;
    u->h1_head = head;
    u->h1_head_len = (size_t)n;
    u->body = req->body;
    u->content_length = req->content_length;
    const tg_header_t *te = tg_headers_find(req->headers, req->nheaders, "te");
    u->te_trailers = te && tg_str_list_has_token(te->value, "trailers");
    return 0;
}

int tg__ex_copy_request(tg_exchange_t *ex, const tg_request_t *in)
{
    tg_request_t *r = &ex->req;
    *r = *in;
    size_t total = in->method.len + in->target.len + in->authority.len;
    for (size_t i = 0; i < in->nheaders; i++)
        total += in->headers[i].name.len + in->headers[i].value.len;
    char *buf = tg_arena_alloc(&ex->arena, total + 1);
    r->headers = tg_arena_alloc(&ex->arena, (in->nheaders + 1) * sizeof *r->headers);
    if (buf == NULL || r->headers == NULL)
        return -1;
    size_t o = 0;
    /* Empty slices may be {NULL, 0} (HTTP/1.0 without Host): memcpy from NULL is UB. */
#define COPY(dst, src) do { if ((src).len) memcpy(buf + o, (src).p, (src).len); (dst) = tg_str(buf + o, (src).len); o += (src).len; } while (0)
    COPY(r->method, in->method);
    COPY(r->target, in->target);
    COPY(r->authority, in->authority);
    for (size_t i = 0; i < in->nheaders; i++) {
        COPY(r->headers[i].name, in->headers[i].name);
        COPY(r->headers[i].value, in->headers[i].value);
    }
#undef COPY
    /* path and query are slices of the target; re-point them into the copy. */
    r->path = in->path.p >= in->target.p && in->path.p <= in->target.p + in->target.len
                  ? tg_str(r->target.p + (in->path.p - in->target.p), in->path.len)
                  : tg_arena_str_dup(&ex->arena, in->path);
    r->query = in->query.len && in->query.p >= in->target.p && in->query.p <= in->target.p + in->target.len
                   ? tg_str(r->target.p + (in->query.p - in->target.p), in->query.len)
                   : tg_arena_str_dup(&ex->arena, in->query);
    return r->path.p || in->path.len == 0 ? 0 : -1;
}

int tg__ex_response_headers(tg_exchange_t *ex, const tg_response_t *in, tg_response_t *out)
{
    hlist_t l;
    const tg_header_ops_cfg_t *ops = ex->route ? &ex->route->response_headers : NULL;
    /* Room for filters' edits (tg_ex_resp_header_*), too. */
    if (hl_init(ex, &l, in->nheaders + 20 + (ops ? ops_count(ops) : 0)) < 0)
        return -1;
    /* A HEAD or 304 answer keeps the Content-Length that describes the
     * representation; everywhere else the codec writes the framing. */
    bool keep_length = ex->head_req || in->status == 304;
    tg_str_t via = TG_STR_NULL;
    bool conn = has_connection_field(in->headers, in->nheaders);
    for (size_t i = 0; i < in->nheaders; i++) {
        tg_str_t name = in->headers[i].name;
        if (drop_hop(in->headers, in->nheaders, name, conn) || tg_str_ieq_c(name, "x-request-id"))
            continue;
        if (tg_str_ieq_c(name, "content-length") && !keep_length)
            continue;
        if (tg_str_ieq_c(name, "via")) {
            via = in->headers[i].value;
            continue;
        }
        hl_add(&l, name, in->headers[i].value);
    }
    hl_add(&l, TG_STR_LIT("Via"), concat(ex, via, ", ", in->version_major == 2 ? "2 tollgate"
                                                        : in->version_minor ? "1.1 tollgate" : "1.0 tollgate"));
    hl_add(&l, TG_STR_LIT("X-Request-Id"), tg_str(ex->request_id, ex->rid_len));
    if (ops)
        apply_ops(&l, ops);
    *out = *in;
    out->keep_alive = true; /* the upstream's is per hop; the exchange decides downstream */
    out->headers = l.v;
    out->nheaders = l.n;
    ex->resp_h = l.v;
    ex->resp_n = l.n;
    ex->resp_cap = l.cap;
    if (in->body == TG_BODY_CHUNKED || in->body == TG_BODY_UNTIL_CLOSE)
        out->body = TG_BODY_STREAM;
    tg__ex_grpc_web_head(ex, out); /* gRPC-Web: content type back, streamed */
    return 0;
}

/* ---- client identity ---- */

static bool addr_trusted(const tg_config_t *cfg, const struct sockaddr *sa)
{
    for (size_t i = 0; i < cfg->server.ntrusted_proxies; i++)
        if (tg_cidr_contains(&cfg->server.trusted_proxies[i], sa))
            return true;
    return false;
}

/* Dotted quad of 4 bytes into out (>= 16 bytes). By hand: it runs on every
 * request, and glibc's inet_ntop formats IPv4 with sprintf. */
static void ipv4_string(const unsigned char b[4], char *out)
{
    char *o = out;
    for (int i = 0; i < 4; i++) {
        if (i)
            *o++ = '.';
        o += tg_u64_dec(o, b[i]);
    }
    *o = '\0';
}

static void addr_string(const struct sockaddr *sa, char *out, size_t cap)
{
    out[0] = '\0';
    if (sa->sa_family == AF_INET) {
        ipv4_string((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr, out);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            ipv4_string(s6->sin6_addr.s6_addr + 12, out);
        else
            inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)cap);
    } else {
        snprintf(out, cap, "unix");
    }
}

/* Parses one X-Forwarded-For element into a sockaddr; false when not an IP. */
static bool parse_ip(tg_str_t s, struct sockaddr_storage *ss)
{
    char buf[64];
    s = tg_str_trim_ows(s);
    if (s.len == 0 || s.len >= sizeof buf)
        return false;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, buf, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

void tg__ex_client_ip(tg_exchange_t *ex, const struct sockaddr *peer, const tg_request_t *req)
{
    const tg_config_t *cfg = ex->gen->cfg;
    addr_string(peer, ex->peer_ip, sizeof ex->peer_ip);
    memcpy(ex->client_ip, ex->peer_ip, sizeof ex->client_ip);
    size_t plen = peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : peer->sa_family == AF_INET ? sizeof(struct sockaddr_in) : 0;
    memcpy(&ex->client_addr, peer, plen);
    ex->peer_trusted = addr_trusted(cfg, peer);
    if (!ex->peer_trusted)
        return;
    /* The rightmost address that is not itself a trusted proxy. */
    tg_str_t xff = join_values(ex, req, TG_STR_LIT("x-forwarded-for"));
    size_t end = xff.len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff.p[start - 1] != ',')
            start--;
        struct sockaddr_storage ss;
        if (!parse_ip(tg_str(xff.p + start, end - start), &ss))
            return; /* garbage: keep the last address we could believe */
        addr_string((struct sockaddr *)&ss, ex->client_ip, sizeof ex->client_ip);
        ex->client_addr = ss;
        if (!addr_trusted(cfg, (struct sockaddr *)&ss))
            return;
        end = start ? start - 1 : 0;
    }
}

static bool request_id_ok(tg_str_t v)
{
    if (v.len == 0 || v.len > 128)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '/' || c == '=';
        if (!ok)
            return false;
    }
    return true;
}

void tg__ex_request_id(tg_exchange_t *ex, const tg_request_t *req)
{
    const tg_header_t *h = tg_headers_find(req->headers, req->nheaders, "x-request-id");
    if (h && request_id_ok(h->value)) {
        memcpy(ex->request_id, h->value.p, h->value.len);
        ex->rid_len = h->value.len;
    } else {
        tg_worker_request_id(ex->w, ex->request_id);
        ex->rid_len = 32;
    }
    ex->request_id[ex->rid_len] = '\0';
}
