/* HTTP/2 streams: each one is an exchange. Field lines become a tg_request_t
 * (:authority → authority, cookies joined, body framed by DATA frames);
 * request DATA is buffered per stream within its flow-control window and
 * released (WINDOW_UPDATE) only as the exchange consumes it; responses are
 * borrowed slices that nghttp2 pulls as the peer's windows allow, so a slow
 * stream never holds up the others. Re-entrancy rules: h2_int.h. */
#include "proxy/h2_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/log.h"

#define RING H2_STREAM_WINDOW
#define MAX_DATA_FRAME 16384

static const tg_downstream_ops_t h2_ops;

enum { P_METHOD, P_SCHEME, P_AUTHORITY, P_PATH, P_PROTOCOL, P_COUNT };

static uint64_t now_ms(tg_h2s_t *h) { return uv_now(&h->w->loop); }

h2_stream_t *h2__stream_new(tg_h2s_t *h, int32_t id)
{
    h2_stream_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->h = h;
    s->id = id;
    tg_list_insert_tail(&h->streams, &s->node);
    h->nstreams++;
    return s;
}

static void stream_free(h2_stream_t *s)
{
    tg_h2s_t *h = s->h;
    tg_list_remove(&s->node);
    if (s->queued)
        tg_list_remove(&s->work);
    h->nstreams--;
    h->last_active = now_ms(h);
    free(s->hb);
    free(s->hf);
    free(s->rb);
    free(s->trailers);
    free(s->errbody);
    free(s->kept);
    free(s);
}

void h2__stream_kill(h2_stream_t *s)
{
    if (s->ex) {
        tg_exchange_t *ex = s->ex;
        s->ex = NULL;
        tg_exchange_abort(ex, 499);
    }
    stream_free(s);
}

/* ---- request field lines ---- */

static int hb_append(h2_stream_t *s, const void *p, size_t n, uint32_t *off)
{
    if (s->hb_len + n > s->hb_cap) {
        size_t cap = s->hb_cap ? s->hb_cap : 512;
        while (cap < s->hb_len + n)
            cap *= 2;
        char *nb = realloc(s->hb, cap);
        if (nb == NULL)
            return -1;
        s->hb = nb;
        s->hb_cap = cap;
    }
    *off = (uint32_t)s->hb_len;
    memcpy(s->hb + s->hb_len, p, n);
    s->hb_len += n;
    return 0;
}

static int pseudo_index(const uint8_t *name, size_t nl)
{
    static const char *const names[P_COUNT] = { ":method", ":scheme", ":authority", ":path", ":protocol" };
    for (int i = 0; i < P_COUNT; i++)
        if (strlen(names[i]) == nl && memcmp(names[i], name, nl) == 0)
            return i;
    return -1;
}

int h2__stream_field(h2_stream_t *s, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl)
{
    if (s->reject)
        return 0;
    const tg_limits_cfg_t *lim = h2__limits(s->h);
    uint32_t no, vo;
    if (!s->in_trailers && nl > 0 && name[0] == ':') {
        int k = pseudo_index(name, nl);
        if (k < 0)
            return 0; /* nghttp2 refuses unknown pseudo-headers already */
        if (k == P_PATH && vl > lim->max_uri_bytes) {
            s->reject = 414;
            return 0;
        }
        if (hb_append(s, value, vl, &vo) < 0)
            return -1;
        s->pseudo[k][0] = vo;
        s->pseudo[k][1] = (uint32_t)vl + 1;
        return 0;
    }
    size_t count = s->nh - (s->in_trailers ? s->nhead : 0);
    if (count >= lim->max_headers || s->hb_len + nl + vl > lim->max_header_bytes) {
        if (!s->in_trailers)
            s->reject = 431;
        return 0; /* trailers beyond the limits are dropped */
    }
    if (s->nh == s->hf_cap) {
        size_t cap = s->hf_cap ? s->hf_cap * 2 : 16;
        void *nf = realloc(s->hf, cap * sizeof *s->hf);
        if (nf == NULL)
            return -1;
        s->hf = nf;
        s->hf_cap = cap;
    }
    if (hb_append(s, name, nl, &no) < 0 || hb_append(s, value, vl, &vo) < 0)
        return -1;
    s->hf[s->nh][0] = no;
    s->hf[s->nh][1] = (uint32_t)nl;
    s->hf[s->nh][2] = vo;
    s->hf[s->nh][3] = (uint32_t)vl;
    s->nh++;
    return 0;
}

static tg_str_t field_str(const h2_stream_t *s, uint32_t off, uint32_t len) { return tg_str(s->hb + off, len); }

static tg_str_t pseudo(const h2_stream_t *s, int k)
{
    return s->pseudo[k][1] ? field_str(s, s->pseudo[k][0], s->pseudo[k][1] - 1) : TG_STR_NULL;
}

/* Fills hs[0..*n) with fields [from, to), cookies joined into one field
 * (RFC 9113 §8.2.3) appended to hb. -1 on OOM. */
static int collect_fields(h2_stream_t *s, size_t from, size_t to, tg_header_t *hs, size_t cap, size_t *n)
{
    size_t join = 0, crumbs = 0;
    for (size_t i = from; i < to; i++)
        if (tg_str_ieq_c(field_str(s, s->hf[i][0], s->hf[i][1]), "cookie")) {
            join += s->hf[i][3] + 2;
            crumbs++;
        }
    uint32_t joff = 0, jlen = 0;
    if (crumbs > 1) {
        char *tmp = malloc(join);
        if (tmp == NULL)
            return -1;
        for (size_t i = from; i < to; i++) {
            if (!tg_str_ieq_c(field_str(s, s->hf[i][0], s->hf[i][1]), "cookie"))
                continue;
            if (jlen) {
                memcpy(tmp + jlen, "; ", 2);
                jlen += 2;
            }
            memcpy(tmp + jlen, s->hb + s->hf[i][2], s->hf[i][3]);
            jlen += s->hf[i][3];
        }
        int r = hb_append(s, tmp, jlen, &joff);
        free(tmp);
        if (r < 0)
            return -1;
    }
    *n = 0;
    bool cookie_done = false;
    for (size_t i = from; i < to && *n < cap; i++) {
        tg_str_t name = field_str(s, s->hf[i][0], s->hf[i][1]);
        tg_str_t value = field_str(s, s->hf[i][2], s->hf[i][3]);
        if (crumbs > 1 && tg_str_ieq_c(name, "cookie")) {
            if (cookie_done)
                continue;
            cookie_done = true;
            value = field_str(s, joff, jlen);
        }
        hs[(*n)++] = (tg_header_t){ name, value };
    }
    return 0;
}

/* ---- codec-made answers (no exchange: limits, out of memory) ---- */

static const char *reject_word(int status)
{
    return status == 431 ? "headers_too_large" : status == 414 ? "uri_too_long"
         : status == 503 ? "out_of_memory" : status == 501 ? "connect_not_supported" : "bad_request";
}

static void respond_codec(h2_stream_t *s, int status)
{
    tg_h2s_t *h = s->h;
    s->started = s->done = true;
    char rid[33];
    tg_worker_request_id(h->w, rid);
    rid[32] = '\0';
    s->errbody = malloc(200);
    if (s->errbody == NULL) {
        nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    int bl = snprintf(s->errbody, 200, "{\"error\":\"%s\",\"status\":%d,\"request_id\":\"%s\"}\n",
                      reject_word(status), status, rid);
    char st[4], cl[16];
    snprintf(st, sizeof st, "%d", status);
    snprintf(cl, sizeof cl, "%d", bl);
#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }
    nghttp2_nv nva[] = { NV(":status", st), NV("content-type", "application/json"),
                         NV("content-length", cl), NV("x-request-id", rid) };
#undef NV
    s->q[0] = uv_buf_init(s->errbody, (unsigned)bl);
    s->qn = 1;
    s->resp_head = s->resp_end = true;
    nghttp2_data_provider prd = { .source.ptr = s, .read_callback = h2__read_data };
    nghttp2_submit_response(h->ng, s->id, nva, 4, &prd);
    tg_log_debug("http2 stream %d: %d %s", s->id, status, reject_word(status));
}

/* ---- the exchange ---- */

/* CONNECT: only RFC 8441's extended form with `:protocol: websocket` (only
 * possible when SETTINGS_ENABLE_CONNECT_PROTOCOL was advertised; nghttp2
 * refuses :protocol otherwise). It goes to the exchange as exchange_tunnel.c
 * expects it: `upgrade`, an `Upgrade: <:protocol>` field (hs has one spare
 * entry: w->hcap is max_headers + 1), and no request body: the DATA frames
 * that follow the 200 are tunnel bytes, offered like the h1 codec offers the
 * bytes after a 101. Returns the codec answer owed (501), or 0. */
static int extended_connect(h2_stream_t *s, tg_request_t *req, size_t *n)
{
    tg_str_t proto = pseudo(s, P_PROTOCOL);
    if (!tg_str_eq(req->method, TG_STR_LIT("CONNECT")))
        return 0;
    if (!tg_str_ieq_c(proto, "websocket"))
        return 501; /* plain CONNECT proxying, or another protocol */
    s->h->w->hscratch[(*n)++] = (tg_header_t){ TG_STR_LIT("Upgrade"), proto };
    req->nheaders = *n;
    req->upgrade = true;
    req->body = TG_BODY_NONE;
    s->tunnel = true;
    return 0;
}

static void start(h2_stream_t *s)
{
    tg_h2s_t *h = s->h;
    tg_worker_t *w = h->w;
    if (s->reject) {
        respond_codec(s, s->reject);
        return;
    }
    tg_request_t req = { .method = pseudo(s, P_METHOD), .target = pseudo(s, P_PATH),
                         .authority = pseudo(s, P_AUTHORITY), .version_major = 2,
                         .keep_alive = true };
    size_t n = 0;
    if (collect_fields(s, 0, s->nhead, w->hscratch, w->hcap, &n) < 0) {
        respond_codec(s, 503);
        return;
    }
    req.headers = w->hscratch;
    req.nheaders = n;
    if (req.authority.len == 0) {
        const tg_header_t *host = tg_headers_find(req.headers, n, "host");
        if (host)
            req.authority = host->value;
    }
    const char *q = memchr(req.target.p, '?', req.target.len);
    req.path = q ? tg_str(req.target.p, (size_t)(q - req.target.p)) : req.target;
    req.query = q ? tg_str(q + 1, req.target.len - (size_t)(q - req.target.p) - 1) : TG_STR_NULL;
    const tg_header_t *cl = tg_headers_find(req.headers, n, "content-length");
    if (s->req_eof && s->rlen == 0) {
        req.body = TG_BODY_NONE;
    } else if (cl) { /* nghttp2 checked it is a number that DATA will match */
        req.body = TG_BODY_LENGTH;
        req.content_length = strtoull(cl->value.p, NULL, 10);
    } else {
        req.body = TG_BODY_STREAM;
    }
    int refuse = extended_connect(s, &req, &n);
    if (refuse) {
        respond_codec(s, refuse);
        return;
    }
    s->resp_nobody = tg_str_eq(req.method, TG_STR_LIT("HEAD"));
    tg_downstream_info_t info = { .peer = h->io.peer, .tls = h->io.tls, .head_bytes = s->hb_len,
                                  .client_cert_subject = h->io.cert_subject,
                                  .client_cert_fingerprint = h->io.cert_fingerprint };
    s->started = true;
    if (!s->req_eof && !s->tunnel)
        s->deadline = now_ms(h) + h2__limits(h)->body_timeout_ms;
    tg_exchange_t *ex = tg_exchange_start(w, &h2_ops, s, &info, &req);
    if (s->done)
        return; /* answered and over already (404, respond:, ...) */
    if (ex == NULL) {
        respond_codec(s, 503);
        return;
    }
    s->ex = ex;
    if (req.body == TG_BODY_NONE) {
        s->end_delivered = true;
        tg_exchange_request_end(ex, NULL, 0);
        if (s->ex == ex)
            (void)tg_exchange_request_flush(ex);
    }
}

/* Returns the bytes the exchange is done with to the flow-control windows. */
static void release(h2_stream_t *s)
{
    size_t n = s->roff;
    if (n == 0)
        return;
    s->rhead = (s->rhead + n) % RING;
    s->rlen -= n;
    s->roff = 0;
    if (s->closed)
        nghttp2_session_consume_connection(s->h->ng, n);
    else
        nghttp2_session_consume(s->h->ng, s->id, n);
}

static void deliver_end(h2_stream_t *s)
{
    tg_worker_t *w = s->h->w;
    size_t nt = 0;
    s->end_delivered = true;
    s->deadline = 0;
    if (s->nh > s->nhead && collect_fields(s, s->nhead, s->nh, w->hscratch, w->hcap, &nt) < 0)
        nt = 0;
    tg_exchange_request_end(s->ex, w->hscratch, nt);
}

/* Offers buffered body bytes (and then the end) to the exchange. */
static void deliver(h2_stream_t *s)
{
    tg_exchange_t *ex = s->ex;
    bool offered = false;
    while (!s->paused && s->roff < s->rlen) {
        size_t start_at = (s->rhead + s->roff) % RING;
        size_t n = s->rlen - s->roff;
        if (n > RING - start_at)
            n = RING - start_at;
        size_t t = tg_exchange_request_body(ex, s->rb + start_at, n);
        if (s->ex != ex)
            return;
        s->roff += t;
        offered = true;
        if (t < n)
            s->paused = true;
    }
    if (!s->paused && s->req_eof && s->roff == s->rlen && !s->end_delivered) {
        deliver_end(s);
        if (s->ex != ex)
            return;
        offered = true;
    }
    if (s->paused) {
        s->deadline = 0; /* our window is closed: the client cannot be late */
        return;
    }
    if (!offered)
        return;
    int r = tg_exchange_request_flush(ex);
    if (s->ex != ex)
        return;
    if (r == 0)
        release(s);
    else
        s->paused = true;
}

int h2__stream_data(h2_stream_t *s, const uint8_t *p, size_t n)
{
    tg_h2s_t *h = s->h;
    if (s->reject || s->done) {
        nghttp2_session_consume(h->ng, s->id, n); /* answered already: drop */
        return 0;
    }
    if (s->rb == NULL && (s->rb = malloc(RING)) == NULL)
        return -1;
    if (s->rlen + n > RING)
        return -1; /* more than the window we gave: nghttp2 should have refused it */
    size_t at = (s->rhead + s->rlen) % RING;
    size_t first = n < RING - at ? n : RING - at;
    memcpy(s->rb + at, p, first);
    memcpy(s->rb, p + first, n - first);
    s->rlen += n;
    if (s->started && !s->tunnel) /* a tunnel's silence is the upstream's idle timeout */
        s->deadline = now_ms(h) + h2__limits(h)->body_timeout_ms;
    h2__queue(s);
    return 0;
}

void h2__stream_expire(h2_stream_t *s)
{
    if (!s->closed)
        nghttp2_submit_rst_stream(s->h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    if (s->ex)
        s->abort_owed = true;
    h2__queue(s);
}

void h2__stream_work(h2_stream_t *s)
{
    if (s->abort_owed) {
        s->abort_owed = false;
        if (s->ex) {
            tg_exchange_t *ex = s->ex;
            s->ex = NULL;
            s->done = true;
            tg_exchange_abort(ex, s->closed ? 499 : 408);
        }
    }
    if (!s->started && s->head_done && !s->closed && !s->h->fatal)
        start(s);
    if (s->ex && s->drain_ready) {
        s->drain_ready = false;
        tg_exchange_downstream_drained(s->ex, 0);
    }
    if (s->ex && !s->paused)
        deliver(s);
    if (s->closed && s->ex == NULL)
        stream_free(s);
}

int h2__stream_from_h1(h2_stream_t *s, const tg_request_t *req)
{
    uint32_t off;
    const tg_str_t ps[4] = { req->method, TG_STR_LIT("http"), req->authority, req->target };
    for (int k = 0; k < 4; k++) {
        if (hb_append(s, ps[k].p, ps[k].len, &off) < 0)
            return -1;
        s->pseudo[k][0] = off;
        s->pseudo[k][1] = (uint32_t)ps[k].len + 1;
    }
    for (size_t i = 0; i < req->nheaders; i++)
        if (h2__stream_field(s, (const uint8_t *)req->headers[i].name.p, req->headers[i].name.len,
                             (const uint8_t *)req->headers[i].value.p, req->headers[i].value.len) < 0)
            return -1;
    s->head_done = s->req_eof = true;
    s->nhead = s->nh;
    return 0;
}

/* ---- responses (downstream ops) ---- */

/* Fields HTTP/2 forbids (RFC 9113 §8.2.2); the exchange drops most already. */
static bool connection_specific(tg_str_t name)
{
    return tg_str_ieq_c(name, "connection") || tg_str_ieq_c(name, "keep-alive") ||
           tg_str_ieq_c(name, "proxy-connection") || tg_str_ieq_c(name, "transfer-encoding") ||
           tg_str_ieq_c(name, "upgrade");
}

/* name/value as an nghttp2_nv with the name lowercased into `a`. */
static bool make_nv(tg_arena_t *a, nghttp2_nv *nv, tg_str_t name, tg_str_t value)
{
    char *lc = tg_arena_alloc(a, name.len + 1);
    if (lc == NULL)
        return false;
    for (size_t i = 0; i < name.len; i++)
        lc[i] = (char)(name.p[i] >= 'A' && name.p[i] <= 'Z' ? name.p[i] + 32 : name.p[i]);
    *nv = (nghttp2_nv){ (uint8_t *)lc, (uint8_t *)value.p, name.len, value.len, NGHTTP2_NV_FLAG_NONE };
    return true;
}

/* A 1xx (103 Early Hints, 102): a HEADERS frame without END_STREAM before
 * the final head (RFC 9113 §8.1). Dropped (0) when it cannot be made. */
static int informational(h2_stream_t *s, tg_exchange_t *ex, const tg_response_t *resp)
{
    tg_arena_t *a = tg_exchange_arena(ex);
    nghttp2_nv *nva = tg_arena_alloc(a, (resp->nheaders + 1) * sizeof *nva);
    char *st = tg_arena_alloc(a, 4);
    if (nva == NULL || st == NULL || s->resp_head || resp->status == 101)
        return 0;
    snprintf(st, 4, "%d", resp->status);
    size_t n = 0;
    nva[n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE };
    for (size_t i = 0; i < resp->nheaders; i++) {
        tg_str_t name = resp->headers[i].name;
        if (connection_specific(name) || tg_str_ieq_c(name, "content-length"))
            continue;
        if (!make_nv(a, &nva[n++], name, resp->headers[i].value))
            return 0;
    }
    nghttp2_submit_headers(s->h->ng, NGHTTP2_FLAG_NONE, s->id, NULL, nva, n, NULL);
    h2__pump(s->h);
    return 0;
}

static int op_response_head(void *ctx, tg_exchange_t *ex, const tg_response_t *resp)
{
    h2_stream_t *s = ctx;
    if (s->closed)
        return -1;
    if (resp->status < 200)
        return informational(s, ex, resp);
    tg_arena_t *a = tg_exchange_arena(ex);
    nghttp2_nv *nva = tg_arena_alloc(a, (resp->nheaders + 2) * sizeof *nva);
    char *st = tg_arena_alloc(a, 4), *cl = tg_arena_alloc(a, 24);
    if (nva == NULL || st == NULL || cl == NULL)
        return -1;
    int code = resp->status < 100 || resp->status > 999 ? 502 : resp->status;
    st[0] = (char)('0' + code / 100);
    st[1] = (char)('0' + code / 10 % 10);
    st[2] = (char)('0' + code % 10);
    size_t n = 0;
    nva[n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE };
    bool bodyless = resp->status == 204 || resp->status == 304;
    bool nobody = s->resp_nobody || bodyless;
    bool has_cl = false;
    for (size_t i = 0; i < resp->nheaders; i++) {
        tg_str_t name = resp->headers[i].name;
        if (connection_specific(name))
            continue;
        if (tg_str_ieq_c(name, "content-length")) {
            if (!nobody)
                continue; /* the framing below says it */
            has_cl = true;
        }
        if (!make_nv(a, &nva[n++], name, resp->headers[i].value))
            return -1;
    }
    if (resp->body == TG_BODY_LENGTH && !bodyless && !(nobody && has_cl)) {
        int l = snprintf(cl, 24, "%llu", (unsigned long long)resp->content_length);
        nva[n++] = (nghttp2_nv){ (uint8_t *)"content-length", (uint8_t *)cl, 14, (size_t)l,
                                 NGHTTP2_NV_FLAG_NONE };
    }
    s->resp_nobody = nobody;
    nghttp2_data_provider prd = { .source.ptr = s, .read_callback = h2__read_data };
    if (nghttp2_submit_response(s->h->ng, s->id, nva, n, nobody ? NULL : &prd) != 0)
        return -1;
    s->resp_head = true;
    return 0;
}

static size_t op_response_body(void *ctx, const char *p, size_t n)
{
    h2_stream_t *s = ctx;
    if (s->resp_nobody || s->closed || n == 0)
        return n; /* nothing goes out (a closed stream is aborted from our side) */
    if (s->qn == H2_RESP_SLICES)
        return 0;
    s->q[s->qn++] = uv_buf_init((char *)p, (unsigned)n);
    return n;
}

static int op_response_end(void *ctx, tg_exchange_t *ex, const tg_header_t *trailers, size_t n)
{
    h2_stream_t *s = ctx;
    s->resp_end = true;
    if (s->resp_nobody) {
        s->resp_complete = true; /* HEADERS carried END_STREAM */
        return 0;
    }
    size_t bytes = 0, keep = 0;
    for (size_t i = 0; i < n; i++)
        if (!connection_specific(trailers[i].name)) {
            bytes += trailers[i].name.len + trailers[i].value.len;
            keep++;
        }
    if (keep == 0)
        return 0;
    /* Copied: the trailers are sent after the last DATA frame, maybe after
     * the exchange is gone. One block: the array, then the bytes. */
    s->trailers = malloc(keep * sizeof *s->trailers + bytes);
    if (s->trailers == NULL)
        return 0;
    char *o = (char *)(s->trailers + keep);
    for (size_t i = 0; i < n; i++) {
        tg_str_t nm = trailers[i].name, v = trailers[i].value;
        if (connection_specific(nm))
            continue;
        nghttp2_nv *nv = &s->trailers[s->ntrailers++];
        for (size_t k = 0; k < nm.len; k++)
            o[k] = (char)(nm.p[k] >= 'A' && nm.p[k] <= 'Z' ? nm.p[k] + 32 : nm.p[k]);
        memcpy(o + nm.len, v.p, v.len);
        *nv = (nghttp2_nv){ (uint8_t *)o, (uint8_t *)o + nm.len, nm.len, v.len, NGHTTP2_NV_FLAG_NONE };
        o += nm.len + v.len;
    }
    return 0;
}

/* Everything borrowed has been copied out (and the end handed over). */
static bool flushed(const h2_stream_t *s) { return s->qn == 0 && (!s->resp_end || s->resp_complete); }

static int op_flush(void *ctx)
{
    h2_stream_t *s = ctx;
    tg_h2s_t *h = s->h;
    if (s->closed)
        return -1; /* the stream is gone: an abort is queued */
    if (s->resp_head && !s->resp_nobody)
        nghttp2_session_resume_data(h->ng, s->id);
    h2__pump(h);
    if (flushed(s))
        return 0;
    s->drain_wanted = true;
    if (!s->deadline)
        s->deadline = now_ms(h) + h2__limits(h)->idle_timeout_ms; /* a peer that opens no window */
    return 1;
}

static void op_resume_request(void *ctx)
{
    h2_stream_t *s = ctx;
    s->paused = false;
    release(s);
    if (!s->req_eof && !s->tunnel)
        s->deadline = now_ms(s->h) + h2__limits(s->h)->body_timeout_ms;
    h2__queue(s);
}

static void op_send_continue(void *ctx) { (void)ctx; /* HTTP/2 clients do not wait for 100 */ }

static void op_done(void *ctx, bool ok)
{
    h2_stream_t *s = ctx;
    tg_h2s_t *h = s->h;
    s->ex = NULL;
    s->done = true;
    s->drain_wanted = s->drain_ready = s->paused = false;
    if (!s->closed) {
        if (!s->resp_complete)
            nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        else if (!s->req_eof) /* answered before the body ended: stop the upload */
            nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    }
    s->roff = s->rlen; /* nobody will read the rest */
    release(s);
    s->deadline = 0;
    h2__queue(s);
}

/* Body bytes queued and not yet framed. */
static size_t queued(const h2_stream_t *s)
{
    size_t n = 0;
    for (unsigned i = 0; i < s->qn; i++)
        n += s->q[i].len;
    return n - s->qoff;
}

/* The queued slices become one copy the stream owns (a gRPC deadline ends
 * the upstream stream whose buffer they point into, while they still wait
 * for the client's window). */
static int op_own_body(void *ctx)
{
    h2_stream_t *s = ctx;
    size_t n = queued(s);
    char *b = n ? malloc(n) : NULL;
    if (n && b == NULL)
        return -1;
    for (size_t i = 0, o = 0; i < s->qn; i++) {
        size_t from = i == 0 ? s->qoff : 0;
        memcpy(b + o, s->q[i].base + from, s->q[i].len - from);
        o += s->q[i].len - from;
    }
    free(s->kept);
    s->kept = b;
    s->q[0] = uv_buf_init(b, (unsigned)n);
    s->qn = n ? 1 : 0;
    s->qoff = 0;
    return 0;
}

static const tg_downstream_ops_t h2_ops = {
    .response_head = op_response_head,
    .response_body = op_response_body,
    .response_end = op_response_end,
    .own_body = op_own_body,
    .flush = op_flush,
    .resume_request = op_resume_request,
    .send_continue = op_send_continue,
    .done = op_done,
};

/* ---- nghttp2's side of the response body ---- */

static void end_of_response(h2_stream_t *s, uint32_t *flags)
{
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->ntrailers) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_submit_trailer(s->h->ng, s->id, s->trailers, s->ntrailers);
    }
    s->resp_complete = true;
}

ssize_t h2__read_data(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *user)
{
    h2_stream_t *s = src->ptr;
    size_t avail = queued(s);
    if (avail == 0 && !s->resp_end)
        return NGHTTP2_ERR_DEFERRED; /* resumed by op_flush */
    size_t n = avail < len ? avail : len;
    if (n > MAX_DATA_FRAME)
        n = MAX_DATA_FRAME;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == avail && s->resp_end)
        end_of_response(s, flags);
    if (n == 0 && s->drain_wanted) { /* nothing left to copy: the end is handed over */
        s->drain_wanted = false;
        s->drain_ready = true;
        h2__queue(s);
    }
    return (ssize_t)n;
}

int h2__send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd, size_t len,
                  nghttp2_data_source *src, void *user)
{
    tg_h2s_t *h = user;
    h2_stream_t *s = src->ptr;
    if (h->out_pending || h->out_len + 9 + len > h->out_cap)
        return NGHTTP2_ERR_WOULDBLOCK;
    memcpy(h->out + h->out_len, framehd, 9);
    h->out_len += 9;
    while (len > 0) {
        size_t take = s->q[0].len - s->qoff;
        if (take > len)
            take = len;
        memcpy(h->out + h->out_len, s->q[0].base + s->qoff, take);
        h->out_len += take;
        s->qoff += take;
        len -= take;
        if (s->qoff == s->q[0].len) {
            memmove(&s->q[0], &s->q[1], (s->qn - 1) * sizeof s->q[0]);
            s->qn--;
            s->qoff = 0;
        }
    }
    s->deadline = s->qn ? now_ms(h) + h2__limits(h)->idle_timeout_ms : 0;
    if (flushed(s) && s->drain_wanted) {
        s->drain_wanted = false;
        s->drain_ready = true;
        h2__queue(s);
    }
    return 0;
}
