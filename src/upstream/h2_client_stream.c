/* HTTP/2 upstream streams: the tg_upconn_ops_t of one exchange, and the
 * nghttp2 callbacks that fill them. Callbacks only record; tg__h2u_dispatch
 * raises the events (see h2_int.h for why). */
#include "upstream/h2_client_int.h"

#include <stdlib.h>
#include <string.h>

static const tg_upconn_ops_t h2us_ops;

static void on_stream_timer_closed(uv_handle_t *h) { free(h->data); }

static void free_retired(tg_h2us_t *s)
{
    for (size_t i = 0; i < s->nretired; i++)
        free(s->retired[i]);
    s->nretired = 0;
    s->retired_given = 0;
}

/* Frees a detached stream once nghttp2 is done with it. */
static void stream_maybe_free(tg_h2us_t *s)
{
    tg_h2uconn_t *c = s->conn;
    if (s->ctx != NULL || (s->id >= 0 && !s->closed && c->state != H2_CLOSED))
        return;
    if (c->ng && s->id >= 0) {
        nghttp2_session_set_stream_user_data(c->ng, s->id, NULL);
        if (s->dlen + s->retired_given) /* bytes never released: give the connection window back */
            nghttp2_session_consume_connection(c->ng, s->dlen + s->retired_given);
    }
    free_retired(s);
    tg_list_remove(&s->node);
    if (tg_list_linked(&s->rnode))
        tg_list_remove(&s->rnode);
    free(s->dbuf);
    s->dbuf = NULL;
    uv_close((uv_handle_t *)&s->timer, on_stream_timer_closed);
    tg__h2c_stream_gone(c);
}

/* Leaves the exchange: no event is raised after this. */
static void detach(tg_h2us_t *s)
{
    s->ctx = NULL;
    s->arena = NULL;
    /* The body slice is the exchange's (its downstream's buffer): never read
     * once detached, should nghttp2 ask for DATA before our RST_STREAM. */
    s->bp = NULL;
    s->bn = 0;
    uv_timer_stop(&s->timer);
}

static void fail_stream(tg_h2us_t *s, int err)
{
    void *ctx = s->ctx;
    bool got = s->got_bytes;
    detach(s);
    if (s->conn->ng && s->id >= 0 && !s->closed)
        nghttp2_submit_rst_stream(s->conn->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    stream_maybe_free(s);
    if (ctx)
        s->ev->error(ctx, err, got);
}

void tg__h2u_conn_failed(tg_h2us_t *s, int err)
{
    s->closed = true;
    if (s->ctx == NULL) {
        stream_maybe_free(s);
        return;
    }
    fail_stream(s, err);
}

static void arm_timer(tg_h2us_t *s);

static void on_stream_timer(uv_timer_t *t)
{
    tg_h2us_t *s = t->data;
    tg_h2uconn_t *c = s->conn;
    fail_stream(s, UV_ETIMEDOUT);
    tg__h2c_send(c);
}

/* The next gap bound (once the request is sent, not while paused by the
 * client), capped by the deadline. */
static void arm_timer(tg_h2us_t *s)
{
    uint64_t ms = 0;
    if (s->sent && !s->paused && s->response_timeout_ms)
        ms = s->response_timeout_ms;
    if (s->deadline_at) {
        uint64_t now = uv_now(&s->conn->w->loop);
        uint64_t left = s->deadline_at > now ? s->deadline_at - now : 1;
        if (ms == 0 || left < ms)
            ms = left;
    }
    if (ms)
        uv_timer_start(&s->timer, on_stream_timer, ms, 0);
    else
        uv_timer_stop(&s->timer);
}

tg_h2us_t *tg__h2u_new(tg_h2uconn_t *c, const tg_upstream_events_t *ev, void *ctx)
{
    tg_h2us_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->super.ops = &h2us_ops;
    s->conn = c;
    s->ev = ev;
    s->ctx = ctx;
    s->id = -1;
    tg_list_init(&s->rnode);
    tg_list_insert_tail(&c->streams, &s->node);
    uv_timer_init(&c->w->loop, &s->timer);
    s->timer.data = s;
    c->nstreams++;
    return s;
}

/* ---- events ---- */

/* Gives body bytes the exchange has released back to the flow-control
 * windows (the exchange's downstream flush completed). */
static void release_given(tg_h2us_t *s)
{
    if (s->dgiven + s->retired_given == 0)
        return;
    if (s->conn->ng && s->id >= 0)
        nghttp2_session_consume(s->conn->ng, s->id, s->dgiven + s->retired_given);
    free_retired(s);
    memmove(s->dbuf, s->dbuf + s->dgiven, s->dlen - s->dgiven);
    s->dlen -= s->dgiven;
    s->dgiven = 0;
}

/* Room for len more bytes in dbuf. Bytes lent to the exchange never move:
 * with some lent, a buffer twice the size takes the rest and the old one is
 * kept (retired) until release_given. Unreleased bytes never exceed the
 * stream window, so from 16 KiB the doublings stop within H2U_RETIRED.
 * 0, or -1 (out of memory). */
static int grow_dbuf(tg_h2us_t *s, size_t len)
{
    if (s->dlen + len <= s->dcap)
        return 0;
    size_t keep = s->dlen - s->dgiven; /* the bytes not lent */
    size_t cap = s->dcap ? s->dcap * 2 : 16384;
    while (cap < keep + len)
        cap *= 2;
    if (s->dgiven == 0) {
        char *p = realloc(s->dbuf, cap);
        if (p == NULL)
            return -1;
        s->dbuf = p;
        s->dcap = cap;
        return 0;
    }
    char *p = s->nretired < H2U_RETIRED ? malloc(cap) : NULL;
    if (p == NULL)
        return -1;
    memcpy(p, s->dbuf + s->dgiven, keep);
    s->retired[s->nretired++] = s->dbuf;
    s->retired_given += s->dgiven;
    s->dbuf = p;
    s->dcap = cap;
    s->dlen = keep;
    s->dgiven = 0;
    return 0;
}

static bool is_grpc_trailer(tg_str_t n)
{
    return tg_str_ieq_c(n, "grpc-status") || tg_str_ieq_c(n, "grpc-message") ||
           tg_str_ieq_c(n, "grpc-status-details-bin");
}

/* A gRPC "trailers-only" answer (one HEADERS frame with END_STREAM and
 * grpc-status) is split into a head and trailers, the general form every
 * downstream can carry (HTTP/2 trailers, gRPC-Web trailer frame, chunked
 * trailers). */
static void split_trailers_only(tg_h2us_t *s)
{
    if (!s->remote_end || s->dlen || s->nrt || !tg_headers_find(s->hdrs, s->nh, "grpc-status"))
        return;
    tg_header_t *t = tg_arena_alloc(s->arena, s->nh * sizeof *t);
    if (t == NULL)
        return;
    size_t o = 0;
    for (size_t i = 0; i < s->nh; i++) {
        if (is_grpc_trailer(s->hdrs[i].name))
            t[s->nrt++] = s->hdrs[i];
        else
            s->hdrs[o++] = s->hdrs[i];
    }
    s->nh = o;
    s->rtrailers = t;
    s->split = true;
}

static int give_head(tg_h2us_t *s)
{
    split_trailers_only(s);
    tg_response_t r = { .status = s->status, .version_major = 2, .version_minor = 0,
                        .headers = s->hdrs, .nheaders = s->nh, .keep_alive = true };
    const tg_header_t *cl = tg_headers_find(s->hdrs, s->nh, "content-length");
    if (s->remote_end && s->dlen == 0 && !s->split) {
        r.body = TG_BODY_LENGTH; /* HEADERS with END_STREAM: no body at all */
    } else if (cl) {
        char tmp[24];
        size_t n = cl->value.len < sizeof tmp - 1 ? cl->value.len : sizeof tmp - 1;
        memcpy(tmp, cl->value.p, n);
        tmp[n] = '\0';
        r.body = TG_BODY_LENGTH;
        r.content_length = strtoull(tmp, NULL, 10); /* nghttp2 checked it against DATA */
    } else {
        r.body = TG_BODY_STREAM;
    }
    s->head_given = true;
    return s->ev->head(s->ctx, &r);
}

/* Delivers what s has for its exchange; stops as soon as it is detached. */
static void deliver(tg_h2us_t *s)
{
    if (!s->connected_given && s->conn->state == H2_READY) {
        s->connected_given = true;
        s->ev->connected(s->ctx, 0);
        return;
    }
    if (s->failed) {
        fail_stream(s, s->fail_err);
        return;
    }
    if (s->head_ready && !s->head_given && give_head(s) < 0) {
        detach(s); /* refused: the exchange answered itself */
        if (s->conn->ng && !s->closed)
            nghttp2_submit_rst_stream(s->conn->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        stream_maybe_free(s);
        return;
    }
    if (s->ctx == NULL || !s->head_given)
        return;
    bool gave = false;
    while (!s->paused && s->dgiven < s->dlen) {
        size_t n = s->dlen - s->dgiven;
        size_t t = s->ev->body(s->ctx, s->dbuf + s->dgiven, n);
        if (s->ctx == NULL)
            return;
        s->dgiven += t;
        gave = true;
        if (t < n)
            s->paused = true;
    }
    if (!s->paused && s->remote_end && s->dgiven == s->dlen && !s->end_given) {
        s->end_given = true;
        uv_timer_stop(&s->timer);
        s->ev->end(s->ctx, s->rtrailers, s->nrt); /* the exchange releases us */
        return;
    }
    if (gave) {
        if (s->ev->batch_done(s->ctx) == 1)
            s->paused = true;
        if (s->ctx == NULL)
            return;
        if (!s->paused)
            release_given(s);
        arm_timer(s);
    }
}

void tg__h2u_check_drain(tg_h2us_t *s)
{
    tg_h2uconn_t *c = s->conn;
    if (s->owe_drain && s->bn == 0 && !(c->writing && c->qbuf.len > TG_H2_OUT_HIGH))
        tg__h2c_mark_ready(c, s);
}

void tg__h2u_dispatch(tg_h2uconn_t *c)
{
    while (!tg_list_empty(&c->ready)) {
        tg_h2us_t *s = tg_container_of(c->ready.next, tg_h2us_t, rnode);
        tg_list_remove(&s->rnode);
        if (s->ctx == NULL) {
            stream_maybe_free(s);
            continue;
        }
        bool drain = s->owe_drain && s->bn == 0;
        deliver(s);
        if (drain && s->ctx && s->owe_drain) {
            s->owe_drain = false;
            s->ev->drained(s->ctx);
        }
    }
}

/* ---- nghttp2 callbacks ---- */

static tg_h2us_t *stream_of(nghttp2_session *ng, int32_t id)
{
    return nghttp2_session_get_stream_user_data(ng, id);
}

static int cb_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    tg_h2us_t *s = stream_of(ng, f->hd.stream_id);
    if (s && s->final_seen)
        s->in_trailers = true;
    return 0;
}

static int add_field(tg_h2us_t *s, tg_header_t **v, size_t *n, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl)
{
    if (*n >= TG_H2_MAX_HEADERS || s->hbytes + nl + vl > TG_H2_MAX_HEADER_BYTES)
        return -1;
    if (*v == NULL && (*v = tg_arena_alloc(s->arena, TG_H2_MAX_HEADERS * sizeof **v)) == NULL)
        return -1;
    tg_str_t nm = tg_arena_str_dup(s->arena, tg_str((const char *)name, nl));
    tg_str_t vv = tg_arena_str_dup(s->arena, tg_str((const char *)value, vl));
    if ((nl && nm.p == NULL) || (vl && vv.p == NULL))
        return -1;
    (*v)[(*n)++] = (tg_header_t){ nm, vv };
    s->hbytes += nl + vl;
    return 0;
}

static int cb_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    tg_h2us_t *s = stream_of(ng, f->hd.stream_id);
    if (s == NULL || s->ctx == NULL || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    int r = 0;
    if (s->in_trailers) {
        if (nl && name[0] != ':')
            r = add_field(s, &s->rtrailers, &s->nrt, name, nl, value, vl);
    } else if (nl == 7 && memcmp(name, ":status", 7) == 0) {
        s->status = vl == 3 ? (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0') : 0;
    } else if (nl && name[0] != ':') {
        r = add_field(s, &s->hdrs, &s->nh, name, nl, value, vl);
    }
    if (r < 0) {
        s->failed = true;
        s->fail_err = UV_E2BIG;
        tg__h2c_mark_ready(s->conn, s);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    return 0;
}

static int cb_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    tg_h2uconn_t *c = user;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true; /* streams above last_stream_id close as refused */
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    tg_h2us_t *s = stream_of(ng, f->hd.stream_id);
    if (s == NULL || s->ctx == NULL)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && !s->in_trailers) {
        if (s->status >= 100 && s->status < 200) {
            s->nh = 0; /* informational: dropped (the gateway answers 100 itself) */
            s->hbytes = 0;
        } else {
            s->final_seen = true;
            s->head_ready = true;
            s->got_bytes = true;
        }
    }
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        s->remote_end = true;
    tg__h2c_mark_ready(c, s);
    return 0;
}

static int cb_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *user)
{
    tg_h2us_t *s = stream_of(ng, id);
    if (s == NULL || s->ctx == NULL) {
        nghttp2_session_consume(ng, id, len); /* nobody reads it */
        return 0;
    }
    if (grow_dbuf(s, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    memcpy(s->dbuf + s->dlen, data, len);
    s->dlen += len;
    s->got_bytes = true;
    tg__h2c_mark_ready(s->conn, s);
    return 0;
}

static int cb_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    tg_h2us_t *s = stream_of(ng, id);
    if (s == NULL)
        return 0;
    s->closed = true;
    if (s->ctx && (!s->remote_end || code != NGHTTP2_NO_ERROR) && !s->end_given) {
        s->failed = true;
        /* A refused stream never reached the application: safe to replay.
         * Any other reset is an answer: never replayed. */
        s->fail_err = UV_ECONNRESET;
        if (code != NGHTTP2_REFUSED_STREAM)
            s->got_bytes = true;
    }
    tg__h2c_mark_ready(s->conn, s);
    return 0;
}

static ssize_t cb_read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *user)
{
    tg_h2us_t *s = src->ptr;
    if (s->bn) {
        size_t n = s->bn < length ? s->bn : length;
        memcpy(buf, s->bp, n);
        s->bp += n;
        s->bn -= n;
        if (s->bn == 0 && s->owe_drain)
            tg__h2c_mark_ready(s->conn, s);
        return (ssize_t)n;
    }
    if (!s->req_end) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    s->data_eof = true;
    if (s->ntrailers && nghttp2_submit_trailer(ng, id, s->trailers, s->ntrailers) == 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    return 0;
}

int tg__h2u_session_new(tg_h2uconn_t *c)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return -1;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
    /* Windows open only as the exchange releases bytes: end-to-end backpressure. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, TG_H2_MAX_STREAMS);
    int r = nghttp2_session_client_new2(&c->ng, cbs, c, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (r != 0)
        return -1;
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, TG_H2_STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, TG_H2_MAX_HEADER_BYTES },
    };
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv) != 0 ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, TG_H2_CONN_WINDOW) != 0)
        return -1;
    return 0;
}

/* ---- tg_upconn_ops_t ---- */

/* Fields HTTP/2 forbids (RFC 9113 §8.2.2); TE survives only as "trailers". */
static bool connection_specific(tg_str_t n)
{
    return tg_str_ieq_c(n, "connection") || tg_str_ieq_c(n, "keep-alive") ||
           tg_str_ieq_c(n, "proxy-connection") || tg_str_ieq_c(n, "transfer-encoding") ||
           tg_str_ieq_c(n, "upgrade") || tg_str_ieq_c(n, "host") || tg_str_ieq_c(n, "te");
}

static nghttp2_nv mknv(tg_arena_t *a, tg_str_t name, tg_str_t value, bool lower)
{
    char *n = tg_arena_alloc(a, name.len + 1);
    for (size_t i = 0; n && i < name.len; i++) {
        char ch = name.p[i];
        n[i] = lower && ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    return (nghttp2_nv){ (uint8_t *)(n ? n : ""), (uint8_t *)(value.p ? value.p : ""),
                         n ? name.len : 0, value.len, NGHTTP2_NV_FLAG_NONE };
}

static int op_begin(tg_upconn_t *uc, const tg_upreq_t *r)
{
    tg_h2us_t *s = (tg_h2us_t *)uc;
    tg_h2uconn_t *c = s->conn;
    if (c->state != H2_READY || r->tunnel)
        return -1;
    s->arena = r->arena;
    s->response_timeout_ms = r->response_timeout_ms;
    s->deadline_at = r->deadline_ms ? uv_now(&c->w->loop) + r->deadline_ms : 0;
    nghttp2_nv *nv = tg_arena_alloc(r->arena, (r->nheaders + 5) * sizeof *nv);
    if (nv == NULL)
        return -1;
    size_t n = 0;
    tg_str_t auth = r->authority.len ? r->authority : tg_str_c(c->srv->cfg->address);
    nv[n++] = mknv(r->arena, TG_STR_LIT(":method"), r->method, false);
    nv[n++] = mknv(r->arena, TG_STR_LIT(":scheme"), c->ssl ? TG_STR_LIT("https") : TG_STR_LIT("http"), false);
    nv[n++] = mknv(r->arena, TG_STR_LIT(":authority"), auth, false);
    nv[n++] = mknv(r->arena, TG_STR_LIT(":path"), r->target, false);
    bool te = r->te_trailers || c->ucfg->protocol == TG_PROTO_GRPC; /* gRPC servers require it */
    for (size_t i = 0; i < r->nheaders; i++) {
        tg_str_t name = r->headers[i].name;
        if (!connection_specific(name))
            nv[n++] = mknv(r->arena, name, r->headers[i].value, true);
    }
    if (te)
        nv[n++] = mknv(r->arena, TG_STR_LIT("te"), TG_STR_LIT("trailers"), false);
    s->has_body = r->body == TG_BODY_CHUNKED || r->body == TG_BODY_STREAM ||
                  (r->body == TG_BODY_LENGTH && r->content_length > 0);
    nghttp2_data_provider dp = { .source.ptr = s, .read_callback = cb_read_body };
    int32_t id = nghttp2_submit_request(c->ng, NULL, nv, n, s->has_body ? &dp : NULL, s);
    if (id < 0)
        return -1;
    s->id = id;
    arm_timer(s);
    return 0;
}

static size_t op_body(tg_upconn_t *uc, const char *p, size_t n)
{
    tg_h2us_t *s = (tg_h2us_t *)uc;
    if (n == 0 || s->bn > 0 || !s->has_body || s->data_eof)
        return 0;
    s->bp = p;
    s->bn = n;
    if (s->deferred && s->conn->ng) {
        s->deferred = false;
        nghttp2_session_resume_data(s->conn->ng, s->id);
    }
    return n;
}

static int op_end(tg_upconn_t *uc, const tg_header_t *trailers, size_t n)
{
    tg_h2us_t *s = (tg_h2us_t *)uc;
    if (!s->has_body || s->req_end)
        return 0;
    s->req_end = true;
    if (n && s->arena && (s->trailers = tg_arena_alloc(s->arena, n * sizeof *s->trailers)) != NULL) {
        for (size_t i = 0; i < n; i++)
            if (!connection_specific(trailers[i].name))
                s->trailers[s->ntrailers++] = mknv(s->arena, trailers[i].name, trailers[i].value, true);
    }
    if (s->deferred && s->conn->ng) {
        s->deferred = false;
        nghttp2_session_resume_data(s->conn->ng, s->id);
    }
    return 0;
}

static int op_flush(tg_upconn_t *uc)
{
    tg_h2us_t *s = (tg_h2us_t *)uc;
    tg_h2uconn_t *c = s->conn;
    if (c->state != H2_READY || c->pending_err)
        return UV_ECANCELED;
    tg__h2c_send(c);
    if (c->pending_err)
        return UV_ECANCELED;
    if (s->bn > 0 || (c->writing && c->qbuf.len > TG_H2_OUT_HIGH)) {
        s->owe_drain = true; /* the window or the socket must move first */
        return 1;
    }
    return 0;
}

static void op_request_sent(tg_upconn_t *uc)
{
    tg_h2us_t *s = (tg_h2us_t *)uc;
    s->sent = true;
    if (!s->end_given)
        arm_timer(s);
}

static void op_resume(tg_upconn_t *uc)
{
    tg_h2us_t *s = (tg_h2us_t *)uc;
    tg_h2uconn_t *c = s->conn;
    if (!s->paused || s->ctx == NULL)
        return;
    s->paused = false;
    release_given(s); /* the downstream wrote what it took */
    tg__h2c_mark_ready(c, s);
    tg__h2u_dispatch(c);
    tg__h2c_send(c);
}

static void op_release(tg_upconn_t *uc, bool reusable)
{
    tg_h2us_t *s = (tg_h2us_t *)uc;
    tg_h2uconn_t *c = s->conn;
    bool open = c->ng && s->id >= 0 && !s->closed;
    detach(s);
    if (open) /* the response ended but our side did not: stop sending */
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    stream_maybe_free(s);
    if (open)
        tg__h2c_send(c);
}

static void op_abort(tg_upconn_t *uc)
{
    tg_h2us_t *s = (tg_h2us_t *)uc;
    tg_h2uconn_t *c = s->conn;
    bool open = c->ng && s->id >= 0 && !s->closed;
    detach(s);
    if (open)
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    stream_maybe_free(s);
    if (open)
        tg__h2c_send(c);
}

static const tg_upconn_ops_t h2us_ops = {
    .begin = op_begin,
    .body = op_body,
    .end = op_end,
    .flush = op_flush,
    .request_sent = op_request_sent,
    .resume = op_resume,
    .release = op_release,
    .abort = op_abort,
};
