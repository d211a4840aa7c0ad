#include "proxy/h1_server.h"

#include <stdlib.h>
#include <string.h>
#include "http/h1.h"
#include "net/sink.h"
#include "observe/gateway_metrics.h"
#include "proxy/dconn.h"
#include "proxy/exchange.h"
#include "runtime/deadline.h"
#include "util/log.h"

/* S_TUNNEL: after a 101 (WebSocket), every byte either way is opaque data
 * until one side closes. */
enum { S_HEAD, S_BODY, S_WAIT, S_DISCARD, S_TUNNEL, S_CLOSING, S_CLOSED };

/* Request bodies left unread after an early answer are read and dropped up to
 * this many bytes so the connection can be reused; beyond it, it is closed. */
#define DISCARD_MAX (1024 * 1024)

typedef struct tg_h1s {
    uv_tcp_t tcp;
    tg_deadline_t timer;       /* read side: header, idle, body timeouts; deferred work */
    tg_deadline_t wtimer;      /* write side: a client that does not read */
    tg_worker_t *w;
    tg_list_t node;
    tg_sink_t out;
    struct sockaddr_storage peer;
    char *rbuf;                /* from w->bufs while holding bytes */
    size_t rlen, rpos;
    tg_exchange_t *ex;
    int state;
    int closing;
    bool reading, paused, again, in_process, ex_done, keep_alive, head_req, broken;
    bool deferred, header_timer, resp_chunked, resp_nobody, resp_close;
    bool resp_started;         /* a final response head was queued for this request */
    uint8_t minor;
    tg_body_kind_t body;
    uint64_t left;
    uint64_t discarded;        /* body bytes dropped after an early answer */
    tg_chunked_t *chunked;
    tg_str_t pend;             /* decoded chunk data not yet taken */
    char *errbuf;              /* a codec-made error response, malloc'd */
    uint64_t out_counted;      /* of out.bytes_written, already in the metrics */
    tg_gen_t *gen;             /* pinned from accept to close: c->d.listen points into it */
    tg_dconn_t d;              /* TLS under this codec; HTTP/2 once handed over (dconn.h) */
    bool any_request;          /* an HTTP/1.1 request was read: no HTTP/2 preface any more */
} tg_h1s_t;

static void process(tg_h1s_t *c);
static const tg_downstream_ops_t h1s_ops;

static const tg_limits_cfg_t *limits(tg_h1s_t *c) { return &c->w->gen->cfg->server.limits; }

static void on_closed(uv_handle_t *h)
{
    tg_h1s_t *c = h->data;
    if (--c->closing > 0)
        return;
    tg_worker_t *w = c->w;
    tg_worker_gen_drop(w, c->gen);
    free(c);
    tg_worker_conn_closed(w);
}

/* Bytes sent are counted per response and at close (observe/gateway_metrics.h). */
static void count_sent(tg_h1s_t *c)
{
    uint64_t d = c->out.bytes_written - c->out_counted;
    c->out_counted += d;
    if (d)
        tg_metric_add(c->w->metrics, &tg_m_bytes_sent, NULL, (int64_t)d);
}

static void c_close(tg_h1s_t *c)
{
    if (c->state == S_CLOSED)
        return;
    c->state = S_CLOSED;
    count_sent(c);
    if (c->ex) {
        tg_exchange_t *ex = c->ex;
        c->ex = NULL;
        tg_exchange_abort(ex, 499);
    }
    tg_list_remove(&c->node);
    c->w->nconns--;
    if (c->rbuf) {
        tg_bufpool_put(&c->w->bufs, c->rbuf);
        c->rbuf = NULL;
    }
    free(c->chunked);
    c->chunked = NULL;
    free(c->errbuf);
    c->errbuf = NULL;
    tg_dconn_free(&c->d);
    c->closing = 3;
    uv_close(tg_deadline_handle(&c->timer), on_closed);
    uv_close(tg_deadline_handle(&c->wtimer), on_closed);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    tg_h1s_t *c = h->data;
    size_t size = c->w->bufs.size;
    if (c->rbuf == NULL) {
        c->rbuf = tg_bufpool_get(&c->w->bufs);
        c->rlen = c->rpos = 0;
        if (c->rbuf == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
    }
    /* Compact only where no queued write can still point into the buffer. */
    if (c->rlen == size && c->rpos > 0 && c->ex == NULL && c->state == S_HEAD) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(size - c->rlen));
}

static void stop_reading(tg_h1s_t *c)
{
    if (c->reading) {
        tg_dconn_read_stop(&c->d, (uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void start_reading(tg_h1s_t *c)
{
    if (!c->reading && c->state < S_CLOSING &&
        tg_dconn_read_start(&c->d, (uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

/* ---- timers ---- */

static void send_error(tg_h1s_t *c, int status, const char *word);

static void on_timer(tg_deadline_t *t)
{
    tg_h1s_t *c = tg_deadline_data(t);
    if (c->deferred) {
        c->deferred = false;
        if (c->broken) {
            c_close(c);
            return;
        }
        process(c);
        return;
    }
    switch (c->state) {
    case S_HEAD:
        if (c->rlen > c->rpos && c->ex == NULL) {
            send_error(c, 408, "request_timeout");
            return;
        }
        c_close(c); /* idle keep-alive or a connection that never spoke */
        return;
    case S_BODY:
        if (c->ex) {
            tg_exchange_t *ex = c->ex;
            c->ex = NULL;
            tg_exchange_abort(ex, 408);
        }
        if (!c->resp_started) { /* nothing answered yet: say why before closing */
            send_error(c, 408, "request_timeout");
            return;
        }
        c_close(c);
        return;
    default:
        c_close(c);
    }
}

static void on_wtimer(tg_deadline_t *t) { c_close(tg_deadline_data(t)); }

static void defer(tg_h1s_t *c)
{
    c->deferred = true;
    tg_deadline_set(&c->timer, 0);
}

static void arm_head_timer(tg_h1s_t *c, bool have_bytes)
{
    if (have_bytes && !c->header_timer) {
        c->header_timer = true;
        tg_deadline_set(&c->timer, limits(c)->header_timeout_ms);
    } else if (!have_bytes && !c->deferred) {
        c->header_timer = false;
        tg_deadline_set(&c->timer, limits(c)->idle_timeout_ms);
    }
}

/* ---- codec-made answers (before any exchange exists) ---- */

static void send_error(tg_h1s_t *c, int status, const char *word)
{
    char rid[33];
    tg_worker_request_id(c->w, rid);
    rid[32] = '\0';
    char body[160];
    int bl = snprintf(body, sizeof body, "{\"error\":\"%s\",\"status\":%d,\"request_id\":\"%s\"}\n",
                      word, status, rid);
    free(c->errbuf);
    c->errbuf = malloc(512);
    if (c->errbuf == NULL) {
        c_close(c);
        return;
    }
    int n = snprintf(c->errbuf, 512,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "X-Request-Id: %s\r\nConnection: close\r\n\r\n%s",
                     status, tg_http_reason(status), bl, rid, body);
    stop_reading(c);
    c->state = S_CLOSING;
    tg_sink_push(&c->out, c->errbuf, (size_t)n);
    if (tg_sink_flush(&c->out) != 1)
        c_close(c);
    tg_log_debug("downstream %d %s", status, word);
}

/* ---- request heads and bodies ---- */

static bool h2_turn(tg_h1s_t *c, const tg_request_t *upgrade);

static void begin_exchange(tg_h1s_t *c, const tg_request_t *req, size_t head_len)
{
    c->rpos += head_len;
    c->any_request = true;
    if (req->upgrade && h2_turn(c, req))
        return;
    c->keep_alive = req->keep_alive && !c->w->draining;
    c->head_req = tg_str_eq(req->method, TG_STR_LIT("HEAD"));
    c->minor = req->version_minor;
    c->body = req->body;
    c->left = req->content_length;
    c->resp_chunked = c->resp_nobody = c->resp_close = c->resp_started = false;
    bool has_body = req->body == TG_BODY_CHUNKED || (req->body == TG_BODY_LENGTH && req->content_length > 0);
    if (req->body == TG_BODY_CHUNKED) {
        c->chunked = malloc(sizeof *c->chunked);
        if (c->chunked == NULL) {
            send_error(c, 503, "out_of_memory");
            return;
        }
        tg_chunked_init(c->chunked);
    }
    c->state = has_body ? S_BODY : S_WAIT;
    c->header_timer = false;
    if (has_body)
        tg_deadline_set(&c->timer, limits(c)->body_timeout_ms);
    else
        tg_deadline_clear(&c->timer);
    tg_downstream_info_t info = { .peer = (struct sockaddr *)&c->peer, .head_bytes = head_len };
    tg_dconn_info(&c->d, &info);
    c->ex_done = false;
    tg_exchange_t *ex = tg_exchange_start(c->w, &h1s_ops, c, &info, req);
    if (c->ex_done)
        return; /* answered already (404, respond:, ...) */
    if (ex == NULL) {
        send_error(c, 503, "out_of_memory");
        return;
    }
    c->ex = ex;
    if (!has_body)
        tg_exchange_request_end(ex, NULL, 0);
}

static void parse_head(tg_h1s_t *c)
{
    const tg_limits_cfg_t *lim = limits(c);
    tg_h1_limits_t hl = { .max_header_bytes = lim->max_header_bytes, .max_headers = lim->max_headers,
                          .max_uri_bytes = lim->max_uri_bytes };
    tg_request_t req;
    int n = tg_h1_parse_request(c->rbuf + c->rpos, c->rlen - c->rpos, &hl, c->w->hscratch,
                                c->w->hcap, &req);
    if (n == TG_H1_INCOMPLETE) {
        if (c->rlen - c->rpos >= c->w->bufs.size) {
            send_error(c, 431, "headers_too_large");
            return;
        }
        arm_head_timer(c, true);
        c->again = false;
        return;
    }
    if (n < 0) {
        send_error(c, tg_h1_err_status(n), tg_h1_err_name(n));
        return;
    }
    /* Body bytes that came with the head and already break the framing: refuse
     * before any exchange starts, so the backend never sees a request known to
     * be bad (nginx gets this by buffering bodies); later errors cut mid-body. */
    if (req.body == TG_BODY_CHUNKED &&
        tg_chunked_prefix_bad(c->rbuf + c->rpos + n, c->rlen - c->rpos - (size_t)n)) {
        send_error(c, 400, "bad_chunked_body");
        return;
    }
    begin_exchange(c, &req, (size_t)n);
}

/* Offers body bytes; false when the exchange paused us. */
static bool offer(tg_h1s_t *c, const char *p, size_t n, size_t *taken)
{
    if (c->ex == NULL) { /* S_DISCARD */
        *taken = n;
        c->discarded += n;
        if (c->discarded > DISCARD_MAX)
            c_close(c);
        return c->state == S_DISCARD;
    }
    *taken = tg_exchange_request_body(c->ex, p, n);
    if (*taken < n && c->ex) {
        c->paused = true;
        return false;
    }
    return true;
}

/* `trailers` may point into c->chunked: it is freed only after they were used. */
static void body_done(tg_h1s_t *c, const tg_header_t *trailers, size_t n)
{
    if (c->state == S_DISCARD) {
        c->state = S_HEAD;
    } else {
        c->state = S_WAIT;
        tg_deadline_clear(&c->timer);
        if (c->ex)
            tg_exchange_request_end(c->ex, trailers, n);
    }
    free(c->chunked);
    c->chunked = NULL;
}

static void parse_body_chunked(tg_h1s_t *c)
{
    size_t taken;
    if (c->pend.len) {
        bool go = offer(c, c->pend.p, c->pend.len, &taken);
        c->pend.p += taken;
        c->pend.len -= taken;
        if (!go)
            return;
    }
    while (c->rpos < c->rlen && !c->chunked->done) {
        tg_str_t data = TG_STR_NULL;
        ssize_t r = tg_chunked_decode(c->chunked, c->rbuf + c->rpos, c->rlen - c->rpos, &data);
        if (r < 0) {
            if (c->ex) {
                tg_exchange_t *ex = c->ex;
                c->ex = NULL;
                tg_exchange_abort(ex, 400);
            }
            send_error(c, 400, "bad_chunked_body");
            return;
        }
        c->rpos += (size_t)r;
        if (data.len && !offer(c, data.p, data.len, &taken)) {
            c->pend = tg_str(data.p + taken, data.len - taken);
            return;
        }
        if (c->state != S_BODY && c->state != S_DISCARD)
            return; /* the exchange answered and ended meanwhile */
    }
    if (c->chunked->done) {
        size_t nt = 0;
        tg_chunked_trailers(c->chunked, c->w->hscratch, c->w->hcap, &nt);
        body_done(c, c->w->hscratch, nt);
    } else {
        c->again = false;
    }
}

static void parse_body(tg_h1s_t *c)
{
    if (c->body == TG_BODY_CHUNKED) {
        parse_body_chunked(c);
        return;
    }
    size_t avail = c->rlen - c->rpos;
    size_t n = avail < c->left ? avail : (size_t)c->left;
    size_t taken;
    bool go = offer(c, c->rbuf + c->rpos, n, &taken);
    c->rpos += taken;
    c->left -= taken;
    if (c->left == 0 && (c->state == S_BODY || c->state == S_DISCARD))
        body_done(c, NULL, 0);
    else if (go)
        c->again = false;
}

/* Tunnel bytes go to the exchange as they come. */
static void parse_tunnel(tg_h1s_t *c)
{
    size_t taken;
    bool go = offer(c, c->rbuf + c->rpos, c->rlen - c->rpos, &taken);
    c->rpos += taken;
    if (go)
        c->again = false;
}

static void end_batch(tg_h1s_t *c)
{
    if (c->ex && c->state == S_BODY && !c->paused) {
        if (c->state == S_BODY)
            tg_deadline_set(&c->timer, limits(c)->body_timeout_ms);
    }
    if (c->ex && !c->paused && (c->state == S_BODY || c->state == S_WAIT || c->state == S_TUNNEL)) {
        tg_exchange_t *ex = c->ex;
        if (tg_exchange_request_flush(ex) == 1 && c->ex == ex)
            c->paused = true;
    }
    if (c->state >= S_CLOSING)
        return;
    if (c->paused) {
        stop_reading(c);
        return;
    }
    if (c->rpos == c->rlen && c->state != S_HEAD)
        c->rpos = c->rlen = 0; /* everything was written: the buffer is free again */
}

static void process(tg_h1s_t *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    do {
        c->again = true;
        while (c->again && !c->paused && c->state < S_CLOSING) {
            if (c->state == S_HEAD) {
                if (c->ex)
                    break;
                if (c->rpos == c->rlen) {
                    if (c->rbuf) {
                        tg_bufpool_put(&c->w->bufs, c->rbuf);
                        c->rbuf = NULL;
                        c->rlen = c->rpos = 0;
                    }
                    arm_head_timer(c, false);
                    break;
                }
                parse_head(c);
            } else if (c->state == S_TUNNEL) {
                if (c->rpos == c->rlen)
                    break;
                parse_tunnel(c);
            } else if (c->state == S_BODY || c->state == S_DISCARD) {
                if (c->rpos == c->rlen && c->pend.len == 0)
                    break;
                parse_body(c);
            } else {
                break; /* S_WAIT: the next request waits for this response */
            }
        }
        if (c->state < S_CLOSING)
            end_batch(c);
    } while (!c->paused && c->state < S_CLOSING && c->again && c->state == S_HEAD &&
             c->ex == NULL && c->rpos < c->rlen);
    c->in_process = false;
}

/* ---- HTTP/2 on this connection: ALPN h2, preface, h2c upgrade (dconn.h) ---- */

static void h2_close(void *conn) { c_close(conn); }

/* true when HTTP/2 took the bytes (or the connection), false for HTTP/1.1. */
static bool h2_turn(tg_h1s_t *c, const tg_request_t *upgrade)
{
    tg_h2s_conn_t io = { .out = &c->out, .close = h2_close, .conn = c, .peer = (struct sockaddr *)&c->peer };
    bool had = c->d.h2 != NULL;
    int r = tg_dconn_h2(&c->d, c->w, &io, upgrade, c->rbuf + c->rpos, c->rlen - c->rpos, c->any_request);
    if (r == 0 || r == 2)
        return r == 2;
    if (!had) {
        c->state = S_WAIT; /* no HTTP/1.1 path runs any more: the codec has its own timers */
        tg_deadline_clear(&c->timer);
    }
    tg_bufpool_put(&c->w->bufs, c->rbuf); /* the codec copied what it keeps */
    c->rbuf = NULL;
    c->rlen = c->rpos = 0;
    if (r < 0)
        c_close(c);
    return true;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tg_h1s_t *c = s->data;
    if (nread == 0)
        return;
    if (nread == UV_ENOBUFS) {
        stop_reading(c); /* full buffer while a response is pending: wait for it */
        return;
    }
    if (nread < 0) {
        /* EOF or error. A client gone mid-exchange aborts it (nginx's 499). */
        c_close(c);
        return;
    }
    c->rlen += (size_t)nread;
    tg_metric_add(c->w->metrics, &tg_m_bytes_received, NULL, nread);
    if ((c->d.h2 || !c->any_request) && h2_turn(c, NULL))
        return;
    if (c->state == S_HEAD && !c->header_timer && c->ex == NULL)
        arm_head_timer(c, true);
    process(c);
}

/* ---- responses (downstream ops) ---- */

static int op_response_head(void *ctx, tg_exchange_t *ex, const tg_response_t *resp)
{
    tg_h1s_t *c = ctx;
    tg_arena_t *a = tg_exchange_arena(ex);
    bool info = resp->status < 200;
    if (resp->status == 101 && c->state == S_WAIT) {
        /* The exchange accepted an Upgrade: the connection becomes a tunnel
         * and ends with it. Bytes the client sent early are parsed later. */
        c->state = S_TUNNEL;
        c->keep_alive = false;
        start_reading(c);
        if (c->rpos < c->rlen && !c->in_process)
            defer(c);
    }
    c->resp_started |= !info;
    if (!info && !resp->keep_alive)
        c->keep_alive = false; /* the exchange closes after this answer: say so */
    size_t extra = 2;
    tg_header_t *h = tg_arena_alloc(a, (resp->nheaders + extra) * sizeof *h);
    if (h == NULL)
        return -1;
    memcpy(h, resp->headers, resp->nheaders * sizeof *h);
    size_t n = resp->nheaders;
    char clen[24];
    if (!info) {
        bool bodyless_status = resp->status == 204 || resp->status == 304;
        c->resp_nobody = c->head_req || bodyless_status;
        if (resp->body == TG_BODY_LENGTH && !bodyless_status &&
            (!c->resp_nobody || !tg_headers_find(resp->headers, resp->nheaders, "content-length"))) {
            size_t l = tg_u64_dec(clen, resp->content_length);
            h[n++] = (tg_header_t){ TG_STR_LIT("Content-Length"), tg_arena_str_dup(a, tg_str(clen, l)) };
        } else if (!c->resp_nobody && resp->body != TG_BODY_LENGTH && resp->body != TG_BODY_NONE) {
            if (c->minor >= 1) {
                c->resp_chunked = true;
                h[n++] = (tg_header_t){ TG_STR_LIT("Transfer-Encoding"), TG_STR_LIT("chunked") };
            } else {
                c->resp_close = true; /* HTTP/1.0: the end of the body is the close */
            }
        }
        if (!c->keep_alive || c->resp_close || c->w->draining) {
            c->keep_alive = false;
            h[n++] = (tg_header_t){ TG_STR_LIT("Connection"), TG_STR_LIT("close") };
        } else if (c->minor == 0) {
            h[n++] = (tg_header_t){ TG_STR_LIT("Connection"), TG_STR_LIT("keep-alive") };
        }
    }
    char status[4] = { (char)('0' + resp->status / 100 % 10), (char)('0' + resp->status / 10 % 10),
                       (char)('0' + resp->status % 10), 0 };
    tg_str_t reason = resp->reason.len ? resp->reason : tg_str_c(tg_http_reason(resp->status));
    size_t size = tg_h1_head_size(tg_str(status, 3), reason, h, n);
    char *buf = tg_arena_alloc(a, size);
    if (buf == NULL)
        return -1;
    ssize_t l = tg_h1_write_response_head(buf, size, resp->status, reason, h, n);
    if (l < 0)
        return -1;
    if (tg_sink_room(&c->out) < 1 && tg_sink_flush(&c->out) != 0)
        return -1;
    tg_sink_push(&c->out, buf, (size_t)l);
    return 0;
}

static size_t op_response_body(void *ctx, const char *p, size_t n)
{
    tg_h1s_t *c = ctx;
    if (c->resp_nobody || n == 0)
        return n;
    /* One slot stays free for the response's end. */
    if (tg_sink_room(&c->out) < (c->resp_chunked ? 4u : 2u))
        return 0;
    tg_sink_push_body(&c->out, p, n, c->resp_chunked);
    return n;
}

static int op_response_end(void *ctx, tg_exchange_t *ex, const tg_header_t *trailers, size_t n)
{
    tg_h1s_t *c = ctx;
    if (!c->resp_chunked)
        return 0;
    if (n == 0) {
        tg_sink_push(&c->out, "0\r\n\r\n", 5);
        return 0;
    }
    size_t size = tg_h1_head_size(TG_STR_NULL, TG_STR_NULL, trailers, n) + 8;
    char *buf = tg_arena_alloc(tg_exchange_arena(ex), size);
    ssize_t l = buf ? tg_h1_write_last_chunk(buf, size, trailers, n) : -1;
    if (l < 0) {
        tg_sink_push(&c->out, "0\r\n\r\n", 5);
        return 0;
    }
    tg_sink_push(&c->out, buf, (size_t)l);
    return 0;
}

static int op_flush(void *ctx)
{
    tg_h1s_t *c = ctx;
    int r = tg_sink_flush(&c->out);
    if (r == 1) {
        tg_deadline_set(&c->wtimer, limits(c)->idle_timeout_ms);
    } else if (r < 0) {
        /* The client is gone. The exchange is on the stack: end it from ours. */
        c->broken = true;
        defer(c);
    }
    return r;
}

static void op_resume_request(void *ctx)
{
    tg_h1s_t *c = ctx;
    c->paused = false;
    c->again = true;
    start_reading(c);
    if (!c->in_process)
        defer(c);
}

static void op_send_continue(void *ctx)
{
    tg_h1s_t *c = ctx;
    if (tg_sink_room(&c->out) < 1)
        return;
    tg_sink_push(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    op_flush(c);
}

static void op_done(void *ctx, bool ok)
{
    tg_h1s_t *c = ctx;
    c->ex = NULL;
    c->ex_done = true;
    count_sent(c);
    tg_deadline_clear(&c->wtimer);
    if (!ok || !c->keep_alive || c->resp_close || c->broken) {
        c_close(c);
        return;
    }
    if (c->state == S_BODY) {
        /* Answered before the body was read: read and drop the rest, bounded. */
        if (c->body == TG_BODY_LENGTH && c->left > DISCARD_MAX) {
            c_close(c);
            return;
        }
        c->state = S_DISCARD;
        c->discarded = 0;
        tg_deadline_set(&c->timer, limits(c)->body_timeout_ms);
    } else {
        c->state = S_HEAD;
        c->header_timer = false;
    }
    c->paused = false;
    c->again = true;
    start_reading(c);
    if (!c->in_process) {
        if (c->rpos < c->rlen || c->pend.len)
            defer(c); /* pipelined bytes: parse them on a fresh stack */
        else
            process(c);
    }
}

static const tg_downstream_ops_t h1s_ops = {
    .response_head = op_response_head,
    .response_body = op_response_body,
    .response_end = op_response_end,
    .flush = op_flush,
    .resume_request = op_resume_request,
    .send_continue = op_send_continue,
    .done = op_done,
};

static void on_drain(tg_sink_t *s, int status)
{
    tg_h1s_t *c = s->data;
    tg_deadline_clear(&c->wtimer);
    if (c->state == S_CLOSED)
        return;
    if (c->d.h2) {
        tg_h2s_drained(c->d.h2, status);
        return;
    }
    if (status < 0) {
        c_close(c);
        return;
    }
    if (c->state == S_CLOSING) {
        c_close(c);
        return;
    }
    if (c->ex)
        tg_exchange_downstream_drained(c->ex, 0);
}

/* ---- accept, drain ---- */

void tg_h1s_accept(tg_worker_t *w, uv_stream_t *listener)
{
    tg_h1s_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = 1;
        c->state = S_CLOSED;
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    tg_deadline_init(&c->timer, &w->loop, on_timer, c);
    tg_deadline_init(&c->wtimer, &w->loop, on_wtimer, c);
    tg_list_insert_tail(&w->conns, &c->node);
    w->nconns++;
    c->gen = tg_worker_gen_hold(w); /* a reload keeps it alive until the close */
    int len = sizeof c->peer;
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len);
    uv_tcp_nodelay(&c->tcp, 1);
    tg_sink_init(&c->out, (uv_stream_t *)&c->tcp, on_drain, c);
    if (tg_dconn_init(&c->d, w, listener, (uv_stream_t *)&c->tcp, &c->out) < 0) {
        c_close(c);
        return;
    }
    c->state = S_HEAD;
    c->keep_alive = true;
    /* The first head's deadline runs from accept (as nginx's
     * client_header_timeout), not from its first byte: header_timer is set
     * so that the first read does not restart it. */
    c->header_timer = true;
    tg_deadline_set(&c->timer, limits(c)->header_timeout_ms);
    start_reading(c);
}

void tg_h1s_drain(tg_worker_t *w)
{
    tg_list_t *n = w->conns.next;
    while (n != &w->conns) {
        tg_h1s_t *c = tg_container_of(n, tg_h1s_t, node);
        n = n->next;
        c->keep_alive = false;
        if (c->d.h2)
            tg_h2s_drain(c->d.h2); /* GOAWAY; closes after its last stream */
        else if (c->state == S_HEAD && c->ex == NULL && c->rpos == c->rlen)
            c_close(c); /* idle keep-alive */
    }
}

void tg_h1s_reloaded(tg_worker_t *w)
{
    tg_list_t *n = w->conns.next;
    while (n != &w->conns) {
        tg_h1s_t *c = tg_container_of(n, tg_h1s_t, node);
        n = n->next; /* tg_h2s_drain may close an idle connection */
        if (c->d.h2)
            tg_h2s_drain(c->d.h2);
    }
}

void tg_h1s_close_all(tg_worker_t *w)
{
    while (!tg_list_empty(&w->conns))
        c_close(tg_container_of(w->conns.next, tg_h1s_t, node));
}
