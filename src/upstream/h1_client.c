#include "upstream/h1_client.h"

#include <stdlib.h>
#include <string.h>
#include "http/h1.h"
#include "net/sink.h"
#include "net/tls.h"
#include "runtime/deadline.h"
#include "upstream/tls_client.h"
#include "util/log.h"

enum { C_CONNECTING, C_ACTIVE, C_IDLE, C_CLOSED };
enum { P_HEAD, P_BODY, P_DONE };

struct tg_h1c {
    tg_upconn_t super;           /* first: the exchange holds a tg_upconn_t * */
    uv_tcp_t tcp;
    tg_deadline_t timer;
    uv_connect_t creq;
    tg_worker_t *w;
    tg_upstream_server_t *srv;
    size_t slot;                 /* idle list index in the worker */
    uint64_t epoch;              /* w->pool_epoch of `slot`; 0 = never pooled (reload) */
    uint32_t max_idle;
    uint64_t idle_timeout_ms;
    uint64_t connect_timeout_ms;
    tg_list_t node;              /* idle list membership */
    tg_sink_t out;
    /* tls: (docs/tls.md): the session, through which reads and the sink go;
     * NULL on plain TCP. ssl is its SSL (ours until the TCP connect hands
     * it over); ucfg names the upstream for the handshake's log. */
    tg_tls_conn_t *tls;
    SSL *ssl;
    const tg_upstream_cfg_t *ucfg;
    const tg_upstream_events_t *ev;
    void *ctx;                   /* the exchange served; NULL when detached */
    char *rbuf;                  /* from w->bufs while holding bytes */
    size_t rlen, rpos;
    int state, phase;
    int closing;                 /* handles still closing */
    bool head_request, got_bytes, paused, reading, keep_alive, sent;
    bool req_chunked;            /* the request body goes out chunked */
    bool tunnel_req, tunnel;     /* an Upgrade request; 101 received: raw bytes */
    tg_arena_t *arena;           /* the exchange's, while attached */
    tg_body_kind_t body;
    uint64_t left;
    uint64_t response_timeout_ms;
    tg_chunked_t *chunked;       /* only for chunked responses */
    tg_str_t pend;               /* decoded chunk data not yet taken */
};

static void process(tg_h1c_t *c);
static const tg_upconn_ops_t h1c_ops;

static void stop_reading(tg_h1c_t *c)
{
    if (!c->reading)
        return;
    if (c->tls)
        tg_tls_read_stop(c->tls);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void on_closed(uv_handle_t *h)
{
    tg_h1c_t *c = h->data;
    if (--c->closing == 0)
        free(c);
}

static void release_rbuf(tg_h1c_t *c)
{
    if (c->rbuf && c->rpos == c->rlen) {
        tg_bufpool_put(&c->w->bufs, c->rbuf);
        c->rbuf = NULL;
        c->rlen = c->rpos = 0;
    }
}

static void c_close(tg_h1c_t *c)
{
    if (c->state == C_CLOSED)
        return;
    if (c->state == C_IDLE) {
        tg_list_remove(&c->node);
        c->w->idle_count[c->slot]--;
    }
    c->state = C_CLOSED;
    c->ctx = NULL;
    if (c->rbuf) {
        tg_bufpool_put(&c->w->bufs, c->rbuf);
        c->rbuf = NULL;
    }
    free(c->chunked);
    c->chunked = NULL;
    if (c->tls)
        tg_tls_conn_free(c->tls); /* hands tcp.data back before the close */
    else
        SSL_free(c->ssl);         /* never handed over (NULL on plain TCP) */
    c->tls = NULL;
    c->ssl = NULL;
    c->closing = 2;
    uv_close(tg_deadline_handle(&c->timer), on_closed);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Detaches from the exchange, closes, then tells the exchange. */
static void fail(tg_h1c_t *c, int err)
{
    void *ctx = c->ctx;
    bool got = c->got_bytes;
    c_close(c);
    if (ctx)
        c->ev->error(ctx, err, got);
}

static void on_timeout(tg_deadline_t *t)
{
    tg_h1c_t *c = tg_deadline_data(t);
    if (c->state == C_IDLE) {
        c_close(c);
        return;
    }
    fail(c, UV_ETIMEDOUT);
}

static void arm_response_timer(tg_h1c_t *c)
{
    if (c->sent && !c->paused && c->response_timeout_ms)
        tg_deadline_set(&c->timer, c->response_timeout_ms);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    tg_h1c_t *c = h->data;
    if (c->rbuf == NULL) {
        c->rbuf = tg_bufpool_get(&c->w->bufs);
        c->rlen = c->rpos = 0;
        if (c->rbuf == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
    }
    if (c->rlen == c->w->bufs.size && c->rpos > 0 && c->pend.len == 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->w->bufs.size - c->rlen));
}

static void complete(tg_h1c_t *c, const tg_header_t *trailers, size_t ntrailers)
{
    c->phase = P_DONE;
    tg_deadline_clear(&c->timer);
    /* Bytes after a complete response mean the server is out of step: never reuse. */
    if (c->rpos != c->rlen)
        c->keep_alive = false;
    c->ev->end(c->ctx, trailers, ntrailers);
}

static bool deliver(tg_h1c_t *c, const char *p, size_t n, size_t *taken)
{
    *taken = c->ev->body(c->ctx, p, n);
    if (*taken < n) {
        c->paused = true;
        return false;
    }
    return true;
}

/* Returns false when processing must stop (paused, failed or completed). */
static bool parse_head(tg_h1c_t *c)
{
    tg_response_t resp;
    tg_worker_t *w = c->w;
    int n = tg_h1_parse_response(c->rbuf + c->rpos, c->rlen - c->rpos, c->head_request,
                                 w->bufs.size, w->hscratch, w->hcap, &resp);
    /* The server answered something: the request must never be replayed. */
    c->got_bytes = true;
    if (n == TG_H1_INCOMPLETE) {
        if (c->rlen - c->rpos >= w->bufs.size)
            fail(c, UV_E2BIG);
        return false;
    }
    if (n < 0) {
        fail(c, UV_EPROTO);
        return false;
    }
    /* A chunked body already bad in the bytes that came with the head: refuse
     * it now, while nothing was passed on and the client can still get a 502. */
    if (resp.body == TG_BODY_CHUNKED &&
        tg_chunked_prefix_bad(c->rbuf + c->rpos + n, c->rlen - c->rpos - (size_t)n)) {
        fail(c, UV_EPROTO);
        return false;
    }
    c->rpos += (size_t)n;
    if (resp.status == 101 && !c->tunnel_req) { /* an upgrade nobody asked for */
        fail(c, UV_EPROTO);
        return false;
    }
    if (c->ev->head(c->ctx, &resp) < 0) {
        c_close(c);
        return false;
    }
    if (resp.status == 101) {
        /* Switching protocols: from here on both directions are opaque bytes
         * until either side closes. The gap timer becomes the idle timeout. */
        c->tunnel = true;
        c->keep_alive = false;
        c->body = TG_BODY_UNTIL_CLOSE;
        c->phase = P_BODY;
        c->response_timeout_ms = c->idle_timeout_ms;
        return true;
    }
    if (resp.status < 200)
        return true; /* informational: the final head follows */
    c->keep_alive = resp.keep_alive;
    c->body = resp.body;
    c->left = resp.content_length;
    if (resp.body == TG_BODY_NONE || (resp.body == TG_BODY_LENGTH && resp.content_length == 0)) {
        complete(c, NULL, 0);
        return false;
    }
    if (resp.body == TG_BODY_CHUNKED) {
        c->chunked = malloc(sizeof *c->chunked);
        if (c->chunked == NULL) {
            fail(c, UV_ENOMEM);
            return false;
        }
        tg_chunked_init(c->chunked);
    }
    if (resp.body == TG_BODY_UNTIL_CLOSE)
        c->keep_alive = false;
    c->phase = P_BODY;
    return true;
}

static bool body_chunked(tg_h1c_t *c)
{
    size_t taken;
    if (c->pend.len) {
        bool go = deliver(c, c->pend.p, c->pend.len, &taken);
        c->pend.p += taken;
        c->pend.len -= taken;
        if (!go)
            return false;
    }
    while (c->rpos < c->rlen && !c->chunked->done) {
        tg_str_t data = TG_STR_NULL;
        ssize_t r = tg_chunked_decode(c->chunked, c->rbuf + c->rpos, c->rlen - c->rpos, &data);
        if (r < 0) {
            fail(c, UV_EPROTO);
            return false;
        }
        c->rpos += (size_t)r;
        if (data.len && !deliver(c, data.p, data.len, &taken)) {
            c->pend = tg_str(data.p + taken, data.len - taken);
            return false;
        }
    }
    if (c->chunked->done) {
        size_t nt = 0;
        tg_chunked_trailers(c->chunked, c->w->hscratch, c->w->hcap, &nt);
        complete(c, c->w->hscratch, nt);
        return false;
    }
    return true;
}

static bool parse_body(tg_h1c_t *c)
{
    size_t taken;
    size_t avail = c->rlen - c->rpos;
    if (c->body == TG_BODY_CHUNKED)
        return body_chunked(c);
    size_t n = avail;
    if (c->body == TG_BODY_LENGTH && c->left < n)
        n = (size_t)c->left;
    bool go = deliver(c, c->rbuf + c->rpos, n, &taken);
    c->rpos += taken;
    if (c->body == TG_BODY_LENGTH) {
        c->left -= taken;
        if (c->left == 0) {
            complete(c, NULL, 0);
            return false;
        }
    }
    return go;
}

static void process(tg_h1c_t *c)
{
    while (c->ctx && c->rpos < c->rlen && !c->paused && c->phase != P_DONE) {
        bool go = c->phase == P_HEAD ? parse_head(c) : parse_body(c);
        if (!go)
            break;
    }
    if (c->state != C_ACTIVE || c->phase == P_DONE)
        return;
    if (c->ctx && c->ev->batch_done(c->ctx) == 1)
        c->paused = true;
    if (c->state != C_ACTIVE)
        return;
    if (c->paused) {
        tg_deadline_clear(&c->timer); /* a slow client is not a slow server */
        stop_reading(c);
        return;
    }
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    arm_response_timer(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tg_h1c_t *c = s->data;
    if (nread == 0) {
        if (c->state == C_IDLE)
            release_rbuf(c); /* TLS: a session ticket, no bytes for us */
        return;
    }
    if (c->state == C_IDLE) {
        /* The server closed (or spoke out of turn) while pooled: never reuse. */
        c_close(c);
        return;
    }
    if (c->state != C_ACTIVE)
        return;
    if (c->phase == P_DONE) {
        /* Bytes or a close after a complete response, before the exchange
         * released us: the response stands; the connection is not reused. */
        c->keep_alive = false;
        stop_reading(c);
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && c->phase == P_BODY && c->body == TG_BODY_UNTIL_CLOSE && c->ctx) {
            c->keep_alive = false;
            complete(c, NULL, 0);
            return;
        }
        fail(c, nread == UV_EOF ? UV_ECONNRESET : (int)nread);
        return;
    }
    c->rlen += (size_t)nread;
    process(c);
    if (c->state == C_IDLE)
        release_rbuf(c);
}

static void start_reading(tg_h1c_t *c)
{
    if (!c->reading && (c->tls ? tg_tls_read_start(c->tls, on_alloc, on_read)
                               : uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) == 0)
        c->reading = true;
}

static void on_drain(tg_sink_t *s, int status)
{
    tg_h1c_t *c = s->data;
    if (c->state == C_CLOSED || c->ctx == NULL)
        return;
    if (status < 0) {
        fail(c, status);
        return;
    }
    c->ev->drained(c->ctx);
}

/* TLS: the handshake that followed the TCP connect is over. The connect
 * timer bounded it (a timeout fails as a connect timeout would: 504). */
static void on_handshake(void *arg, int status)
{
    tg_h1c_t *c = arg;
    if (c->state != C_CONNECTING)
        return;
    if (status < 0) {
        if (status == UV_EPROTO)
            tg_tlsc_log_failure(c->ssl, c->ucfg, c->srv);
        fail(c, status == UV_EOF ? UV_ECONNRESET : status);
        return;
    }
    tg_deadline_clear(&c->timer);
    c->state = C_ACTIVE;
    tg_sink_use_tls(&c->out, c->tls);
    c->ev->connected(c->ctx, 0);
}

static void tls_start(tg_h1c_t *c)
{
    c->tls = tg_tls_conn_new_client(c->ssl, &c->w->loop, (uv_stream_t *)&c->tcp, on_handshake, c);
    if (c->tls == NULL) {
        c->ssl = NULL; /* freed by the failed constructor */
        fail(c, UV_ENOMEM);
        return;
    }
    start_reading(c); /* the handshake reads; plaintext waits for on_handshake */
    if (!c->reading)
        fail(c, UV_EIO);
}

static void on_connect(uv_connect_t *req, int status)
{
    tg_h1c_t *c = req->data;
    if (c->state == C_CLOSED)
        return; /* aborted while connecting */
    if (c->ssl == NULL)
        tg_deadline_clear(&c->timer); /* with TLS it bounds the handshake too */
    if (status < 0) {
        fail(c, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->ssl) {
        tls_start(c);
        return;
    }
    c->state = C_ACTIVE;
    start_reading(c);
    c->ev->connected(c->ctx, 0);
}

static tg_h1c_t *c_new(tg_worker_t *w, size_t slot, tg_upstream_t *u, tg_upstream_server_t *s)
{
    tg_h1c_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->w = w;
    c->srv = s;
    c->slot = slot;
    c->max_idle = u->cfg->keepalive_max_idle;
    c->idle_timeout_ms = u->cfg->keepalive_idle_timeout_ms;
    if (u->cfg->idle_timeout_ms && u->cfg->idle_timeout_ms < c->idle_timeout_ms)
        c->idle_timeout_ms = u->cfg->idle_timeout_ms;
    c->connect_timeout_ms = u->cfg->connect_timeout_ms;
    tg_list_init(&c->node);
    uv_tcp_init(&w->loop, &c->tcp);
    tg_deadline_init(&c->timer, &w->loop, on_timeout, c);
    c->super.ops = &h1c_ops;
    c->tcp.data = c;
    tg_sink_init(&c->out, (uv_stream_t *)&c->tcp, on_drain, c);
    return c;
}

tg_upconn_t *tg_h1c_acquire(tg_worker_t *w, size_t upstream_index, tg_upstream_t *u,
                            tg_upstream_server_t *s, const tg_upstream_events_t *ev, void *ctx,
                            bool *reused, int *err)
{
    /* An exchange that started before a reload holds an upstream of the old
     * generation: the pool layout is the new one's, so it gets a connection
     * of its own, closed after use (epoch 0). */
    bool current = u == &w->gen->ups.v[upstream_index];
    size_t slot = current ? w->idle_base[upstream_index] + s->index : 0;
    tg_list_t *idle = &w->idle[slot];
    *reused = false;
    if (current && !tg_list_empty(idle)) {
        tg_h1c_t *c = tg_container_of(idle->next, tg_h1c_t, node);
        tg_list_remove(&c->node);
        w->idle_count[slot]--;
        tg_deadline_clear(&c->timer);
        c->state = C_ACTIVE;
        c->ev = ev;
        c->ctx = ctx;
        *reused = true;
        return &c->super;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    if (!tg_upstream_server_addr(s, &ss, &len)) {
        *err = UV_EAI_NONAME;
        return NULL;
    }
    tg_h1c_t *c = c_new(w, slot, u, s);
    if (c == NULL) {
        *err = UV_ENOMEM;
        return NULL;
    }
    if (u->cfg->tls.enabled && (c->ssl = tg_tlsc_ssl_new(u, s)) == NULL) {
        c_close(c);
        *err = UV_EPROTO; /* no TLS context (setup failed: logged) or OOM */
        return NULL;
    }
    c->ucfg = u->cfg;
    c->epoch = current ? w->pool_epoch : 0;
    c->ev = ev;
    c->ctx = ctx;
    c->state = C_CONNECTING;
    c->creq.data = c;
    int r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, on_connect);
    if (r < 0) {
        c->ctx = NULL;
        c_close(c);
        *err = r;
        return NULL;
    }
    if (c->connect_timeout_ms)
        tg_deadline_set(&c->timer, c->connect_timeout_ms);
    return &c->super;
}

/* ---- tg_upconn_ops_t ---- */

static int op_begin(tg_upconn_t *uc, const tg_upreq_t *r)
{
    tg_h1c_t *c = (tg_h1c_t *)uc;
    c->head_request = r->head_request;
    c->response_timeout_ms = r->response_timeout_ms;
    c->arena = r->arena;
    c->req_chunked = r->body == TG_BODY_CHUNKED || r->body == TG_BODY_STREAM; /* h2 downstream */
    c->tunnel_req = r->tunnel;
    c->tunnel = false;
    c->phase = P_HEAD;
    c->got_bytes = false;
    c->paused = false;
    c->sent = false;
    c->keep_alive = false;
    c->pend = TG_STR_NULL;
    start_reading(c);
    tg_sink_push(&c->out, r->h1_head, r->h1_head_len);
    return 0;
}

/* Chunked request bodies are framed here: size line, data, CRLF. */
static size_t op_body(tg_upconn_t *uc, const char *p, size_t n)
{
    tg_h1c_t *c = (tg_h1c_t *)uc;
    bool chunked = c->req_chunked && !c->tunnel;
    if (n == 0 || tg_sink_room(&c->out) < (chunked ? 3u : 1u))
        return 0;
    tg_sink_push_body(&c->out, p, n, chunked);
    return n;
}

static int op_end(tg_upconn_t *uc, const tg_header_t *trailers, size_t n)
{
    tg_h1c_t *c = (tg_h1c_t *)uc;
    if (!c->req_chunked || c->tunnel)
        return 0;
    if (tg_sink_room(&c->out) < 1)
        return 1;
    if (n > 0) {
        size_t size = tg_h1_head_size(TG_STR_NULL, TG_STR_NULL, trailers, n) + 8;
        char *buf = tg_arena_alloc(c->arena, size);
        ssize_t l = buf ? tg_h1_write_last_chunk(buf, size, trailers, n) : -1;
        if (l > 0) {
            tg_sink_push(&c->out, buf, (size_t)l);
            return 0;
        }
    }
    tg_sink_push(&c->out, "0\r\n\r\n", 5);
    return 0;
}

static int op_flush(tg_upconn_t *uc)
{
    tg_h1c_t *c = (tg_h1c_t *)uc;
    if (c->state != C_ACTIVE)
        return UV_ECANCELED;
    if (c->tunnel && !c->paused)
        arm_response_timer(c); /* traffic either way keeps a tunnel alive */
    return tg_sink_flush(&c->out);
}

static void op_request_sent(tg_upconn_t *uc)
{
    tg_h1c_t *c = (tg_h1c_t *)uc;
    c->sent = true;
    if (c->phase != P_DONE)
        arm_response_timer(c);
}

static void op_resume(tg_upconn_t *uc)
{
    tg_h1c_t *c = (tg_h1c_t *)uc;
    if (c->state != C_ACTIVE || !c->paused)
        return;
    c->paused = false;
    start_reading(c);
    process(c);
}

static void op_release(tg_upconn_t *uc, bool reusable)
{
    tg_h1c_t *c = (tg_h1c_t *)uc;
    tg_worker_t *w = c->w;
    c->ctx = NULL;
    c->arena = NULL;
    free(c->chunked);
    c->chunked = NULL;
    if (c->state != C_ACTIVE)
        return;
    if (!reusable || !c->keep_alive || c->tunnel || c->phase != P_DONE || c->out.pending ||
        w->draining || c->epoch != w->pool_epoch || w->idle_count[c->slot] >= c->max_idle) {
        c_close(c);
        return;
    }
    c->state = C_IDLE;
    tg_list_insert_head(&w->idle[c->slot], &c->node);
    w->idle_count[c->slot]++;
    release_rbuf(c);
    start_reading(c); /* to see the server close an idle connection */
    if (c->idle_timeout_ms)
        tg_deadline_set(&c->timer, c->idle_timeout_ms);
}

static void op_abort(tg_upconn_t *uc) { c_close((tg_h1c_t *)uc); }

static const tg_upconn_ops_t h1c_ops = {
    .begin = op_begin,
    .body = op_body,
    .end = op_end,
    .flush = op_flush,
    .request_sent = op_request_sent,
    .resume = op_resume,
    .release = op_release,
    .abort = op_abort,
};

void tg_h1c_close_idle(tg_worker_t *w)
{
    tg_gen_t *g = w->gen;
    size_t total = g->ups.n ? w->idle_base[g->ups.n - 1] + g->ups.v[g->ups.n - 1].nservers : 0;
    for (size_t i = 0; i < total; i++) {
        while (!tg_list_empty(&w->idle[i]))
            c_close(tg_container_of(w->idle[i].next, tg_h1c_t, node));
    }
}

void tg_h1c_close_idle_list(tg_worker_t *w, tg_list_t *list)
{
    while (!tg_list_empty(list))
        c_close(tg_container_of(list->next, tg_h1c_t, node));
}

void tg_h1c_pool_adopt(tg_worker_t *w, tg_list_t *list, size_t slot, tg_upstream_server_t *s)
{
    while (!tg_list_empty(list)) {
        tg_h1c_t *c = tg_container_of(list->next, tg_h1c_t, node);
        tg_list_remove(&c->node);
        c->slot = slot;
        c->srv = s;
        c->epoch = w->pool_epoch;
        tg_list_insert_tail(&w->idle[slot], &c->node);
        w->idle_count[slot]++;
    }
}
