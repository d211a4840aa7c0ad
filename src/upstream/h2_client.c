/* HTTP/2 upstream connections: transport (TCP, optional TLS over memory
 * BIOs), the per-worker pool, and the byte pumps around nghttp2. Streams and
 * the protocol callbacks live in h2_client_stream.c. */
#include "upstream/h2_client_int.h"

#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include "upstream/tls_client.h"
#include "util/log.h"

static void conn_close(tg_h2uconn_t *c);

/* ---- pool ---- */

static size_t total_slots(tg_worker_t *w)
{
    tg_gen_t *g = w->gen;
    return g->ups.n ? w->idle_base[g->ups.n - 1] + g->ups.v[g->ups.n - 1].nservers : 0;
}

/* After a reload the slot layout changed: the old pool's connections take
 * no new stream and close when their last one ends; they leave its lists so
 * that the pool can go now. */
static void pool_retire(tg_worker_t *w)
{
    tg_h2pool_t *p = w->h2pool;
    for (size_t i = 0; i < p->nslots; i++)
        while (!tg_list_empty(&p->conns[i])) {
            tg_h2uconn_t *c = tg_container_of(p->conns[i].next, tg_h2uconn_t, node);
            tg_list_remove(&c->node);
            c->goaway = true;
            if (c->nstreams == 0)
                conn_close(c);
        }
    tg_h2c_pool_free(w);
}

static tg_h2pool_t *pool_get(tg_worker_t *w)
{
    if (w->h2pool && w->h2pool->gen != w->gen)
        pool_retire(w);
    if (w->h2pool)
        return w->h2pool;
    tg_h2pool_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->gen = w->gen;
    p->nslots = total_slots(w);
    p->conns = calloc(p->nslots + 1, sizeof *p->conns);
    if (p->conns == NULL) {
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < p->nslots; i++)
        tg_list_init(&p->conns[i]);
    w->h2pool = p;
    return p;
}

void tg_h2c_pool_free(tg_worker_t *w)
{
    tg_h2pool_t *p = w->h2pool;
    if (p == NULL)
        return;
    free(p->conns);
    free(p);
    w->h2pool = NULL;
}

void tg_h2c_close_idle(tg_worker_t *w)
{
    tg_h2pool_t *p = w->h2pool;
    if (p == NULL)
        return;
    if (p->gen != w->gen) {
        pool_retire(w);
        return;
    }
    for (size_t i = 0; i < p->nslots; i++) {
        tg_list_t *l = &p->conns[i];
        for (tg_list_t *n = l->next, *next; n != l; n = next) {
            next = n->next;
            tg_h2uconn_t *c = tg_container_of(n, tg_h2uconn_t, node);
            c->goaway = true;
            if (c->nstreams == 0)
                conn_close(c);
        }
    }
}

/* ---- output ---- */

static int buf_append(tg_h2buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int put_qbuf(void *arg, const void *p, size_t n) { return buf_append(arg, p, n); }

/* Moves TLS records from the write BIO to the output queue. */
static int drain_wbio(tg_h2uconn_t *c) { return tg_tlsc_drain(c->ssl, put_qbuf, &c->qbuf); }

static void start_write(tg_h2uconn_t *c);

static void on_write(uv_write_t *req, int status)
{
    tg_h2uconn_t *c = req->data;
    c->writing = false;
    c->wbuf.len = 0;
    if (c->state == H2_CLOSED)
        return;
    if (status < 0) {
        tg__h2c_fail_later(c, status);
        return;
    }
    start_write(c);
    /* Streams that waited for the queue to shrink may go on. */
    for (tg_list_t *n = c->streams.next; n != &c->streams; n = n->next)
        tg__h2u_check_drain(tg_container_of(n, tg_h2us_t, node));
    tg__h2u_dispatch(c);
}

static void start_write(tg_h2uconn_t *c)
{
    if (c->writing || c->qbuf.len == 0 || c->state == H2_CLOSED)
        return;
    tg_h2buf_t t = c->wbuf;
    c->wbuf = c->qbuf;
    c->qbuf = t;
    c->qbuf.len = 0;
    uv_buf_t b = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
    c->wreq.data = c;
    int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        tg__h2c_fail_later(c, r);
        return;
    }
    c->writing = true;
}

void tg__h2c_send(tg_h2uconn_t *c)
{
    if (c->state != H2_READY)
        return;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->ng, &data);
        if (n < 0) {
            tg__h2c_fail_later(c, UV_EPROTO);
            return;
        }
        if (n == 0)
            break;
        int r = c->ssl ? (tg_tlsc_write(c->ssl, data, (size_t)n) == 0 ? drain_wbio(c) : -1)
                       : buf_append(&c->qbuf, data, (size_t)n);
        if (r < 0) {
            tg__h2c_fail_later(c, UV_ENOMEM);
            return;
        }
    }
    start_write(c);
    if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) && !c->writing)
        tg__h2c_fail_later(c, UV_ECONNRESET); /* GOAWAY exchanged and everything done */
}

/* ---- lifetime ---- */

static void on_closed(uv_handle_t *h)
{
    tg_h2uconn_t *c = h->data;
    if (--c->closing == 0) {
        free(c->wbuf.p);
        free(c->qbuf.p);
        free(c);
    }
}

/* Closes the transport. Streams must already be gone or failed. */
static void conn_close(tg_h2uconn_t *c)
{
    if (c->state == H2_CLOSED)
        return;
    c->state = H2_CLOSED;
    tg_list_remove(&c->node);
    if (c->ng) {
        nghttp2_session_del(c->ng);
        c->ng = NULL;
    }
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    c->closing = 2;
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void fail_now(tg_h2uconn_t *c, int err)
{
    if (c->state == H2_CLOSED)
        return;
    if (c->ssl)
        ERR_clear_error();
    c->goaway = true;
    /* Each failed stream leaves the list (freed, or detached and freed). */
    while (!tg_list_empty(&c->streams))
        tg__h2u_conn_failed(tg_container_of(c->streams.next, tg_h2us_t, node), err);
    conn_close(c);
}

static void on_timer(uv_timer_t *t)
{
    tg_h2uconn_t *c = t->data;
    if (c->pending_err) {
        fail_now(c, c->pending_err);
        return;
    }
    if (c->state == H2_READY && c->nstreams == 0) {
        conn_close(c); /* idle too long */
        return;
    }
    fail_now(c, UV_ETIMEDOUT); /* connect or handshake */
}

void tg__h2c_fail_later(tg_h2uconn_t *c, int err)
{
    if (c->state == H2_CLOSED || c->pending_err)
        return;
    c->pending_err = err;
    c->goaway = true;
    uv_timer_start(&c->timer, on_timer, 0, 0);
}

void tg__h2c_stream_gone(tg_h2uconn_t *c)
{
    c->nstreams--;
    /* A connection still being set up keeps its connect timer; session_start
     * makes it idle if nobody waits any more. */
    if (c->nstreams > 0 || c->state != H2_READY || c->pending_err)
        return;
    if (c->goaway || c->w->draining) {
        conn_close(c);
        return;
    }
    uint64_t idle = c->ucfg->idle_timeout_ms;
    if (idle)
        uv_timer_start(&c->timer, on_timer, idle, 0);
}

void tg__h2c_mark_ready(tg_h2uconn_t *c, tg_h2us_t *s)
{
    if (!tg_list_linked(&s->rnode))
        tg_list_insert_tail(&c->ready, &s->rnode);
}

/* ---- input ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    tg_h2uconn_t *c = h->data;
    char *p = tg_bufpool_get(&c->w->bufs);
    *buf = uv_buf_init(p, p ? (unsigned)c->w->bufs.size : 0);
}

static void ready_all(tg_h2uconn_t *c)
{
    for (tg_list_t *n = c->streams.next; n != &c->streams; n = n->next)
        tg__h2c_mark_ready(c, tg_container_of(n, tg_h2us_t, node));
}

/* The transport is up (TCP connected, TLS done): start the session. */
static void session_start(tg_h2uconn_t *c)
{
    uv_timer_stop(&c->timer);
    if (tg__h2u_session_new(c) < 0) {
        fail_now(c, UV_ENOMEM);
        return;
    }
    c->state = H2_READY;
    tg__h2c_send(c);
    ready_all(c); /* connected() for the streams that waited */
    tg__h2u_dispatch(c);
    if (c->nstreams == 0 && c->state == H2_READY && c->ucfg->idle_timeout_ms)
        uv_timer_start(&c->timer, on_timer, c->ucfg->idle_timeout_ms, 0);
}

static void handshake(tg_h2uconn_t *c)
{
    int r = tg_tlsc_handshake(c->ssl, c->ucfg, c->srv);
    if (drain_wbio(c) < 0) {
        fail_now(c, UV_ENOMEM);
        return;
    }
    start_write(c);
    if (r == 1) {
        const unsigned char *proto = NULL;
        unsigned len = 0;
        SSL_get0_alpn_selected(c->ssl, &proto, &len);
        if (len != 2 || memcmp(proto, "h2", 2) != 0) {
            tg_log_warn("upstream %s: %s did not agree to h2 (ALPN)", c->ucfg->name, c->srv->cfg->address);
            fail_now(c, UV_EPROTO);
            return;
        }
        session_start(c);
        return;
    }
    if (r < 0)
        fail_now(c, UV_EPROTO); /* logged */
}

static int feed(tg_h2uconn_t *c, const char *p, size_t n)
{
    ssize_t r = nghttp2_session_mem_recv(c->ng, (const uint8_t *)p, n);
    return r < 0 ? -1 : 0;
}

/* Decrypts what the read BIO holds into buf and feeds nghttp2. */
static int feed_tls(tg_h2uconn_t *c, char *buf, size_t cap)
{
    for (;;) {
        long n = tg_tlsc_read(c->ssl, buf, cap);
        if (n > 0) {
            if (feed(c, buf, (size_t)n) < 0)
                return -1;
            continue;
        }
        return n == 0 ? 0 : n == TG_TLSC_CLOSED ? 1 : -1;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    tg_h2uconn_t *c = st->data;
    int r = 0;
    if (nread > 0 && c->state != H2_CLOSED) {
        if (c->ssl) {
            BIO_write(SSL_get_rbio(c->ssl), buf->base, (int)nread);
            if (c->state == H2_HANDSHAKE)
                handshake(c);
            if (c->state == H2_READY)
                r = feed_tls(c, buf->base, c->w->bufs.size);
        } else if (c->state == H2_READY) {
            r = feed(c, buf->base, (size_t)nread);
        }
    }
    if (buf->base)
        tg_bufpool_put(&c->w->bufs, buf->base);
    if (c->state == H2_CLOSED || nread == 0)
        return;
    if (nread < 0 || r != 0) {
        fail_now(c, nread == UV_EOF || r > 0 ? UV_ECONNRESET : nread < 0 ? (int)nread : UV_EPROTO);
        return;
    }
    tg__h2u_dispatch(c);
    tg__h2c_send(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    tg_h2uconn_t *c = req->data;
    if (c->state == H2_CLOSED)
        return;
    if (status < 0) {
        fail_now(c, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        fail_now(c, UV_EIO);
        return;
    }
    c->reading = true;
    if (c->ssl) {
        c->state = H2_HANDSHAKE;
        handshake(c);
        return;
    }
    session_start(c);
}

static tg_h2uconn_t *conn_new(tg_worker_t *w, tg_h2pool_t *p, size_t slot, tg_upstream_t *u,
                             tg_upstream_server_t *s, int *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (!tg_upstream_server_addr(s, &ss, &len)) {
        *err = UV_EAI_NONAME;
        return NULL;
    }
    tg_h2uconn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        *err = UV_ENOMEM;
        return NULL;
    }
    if (u->cfg->tls.enabled && (c->ssl = tg_tlsc_ssl_new(u, s)) == NULL) {
        free(c);
        *err = UV_EPROTO;
        return NULL;
    }
    c->w = w;
    c->srv = s;
    c->ucfg = u->cfg;
    tg_list_init(&c->streams);
    tg_list_init(&c->ready);
    tg_list_insert_head(&p->conns[slot], &c->node);
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->creq.data = c;
    c->state = H2_CONNECTING;
    int r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, on_connect);
    if (r < 0) {
        conn_close(c);
        *err = r;
        return NULL;
    }
    if (u->cfg->connect_timeout_ms) /* bounds the TLS handshake too */
        uv_timer_start(&c->timer, on_timer, u->cfg->connect_timeout_ms, 0);
    return c;
}

static bool has_room(const tg_h2uconn_t *c)
{
    if (c->state == H2_CLOSED || c->goaway || c->pending_err)
        return false;
    uint32_t max = TG_H2_MAX_STREAMS;
    if (c->ng) {
        uint32_t remote = nghttp2_session_get_remote_settings(c->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (remote < max)
            max = remote;
    }
    return c->nstreams < max;
}

tg_upconn_t *tg_h2c_acquire(tg_worker_t *w, size_t upstream_index, tg_upstream_t *u,
                            tg_upstream_server_t *s, const tg_upstream_events_t *ev, void *ctx,
                            bool *reused, int *err)
{
    *reused = false;
    tg_h2pool_t *p = pool_get(w);
    if (p == NULL) {
        *err = UV_ENOMEM;
        return NULL;
    }
    size_t slot = w->idle_base[upstream_index] + s->index;
    tg_h2uconn_t *c = NULL;
    for (tg_list_t *n = p->conns[slot].next; n != &p->conns[slot]; n = n->next) {
        tg_h2uconn_t *cand = tg_container_of(n, tg_h2uconn_t, node);
        if (has_room(cand)) {
            c = cand;
            break;
        }
    }
    if (c == NULL && (c = conn_new(w, p, slot, u, s, err)) == NULL)
        return NULL;
    tg_h2us_t *st = tg__h2u_new(c, ev, ctx);
    if (st == NULL) {
        if (c->nstreams == 0 && c->state == H2_CONNECTING)
            conn_close(c);
        *err = UV_ENOMEM;
        return NULL;
    }
    if (c->state == H2_READY) {
        uv_timer_stop(&c->timer); /* no longer idle */
        st->connected_given = true;
        *reused = true;
    }
    return &st->super;
}
