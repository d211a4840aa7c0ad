/* HTTP/2 downstream codec: the session, its frames, timers and attack bounds.
 * Streams (one exchange each) live in h2_stream.c; the re-entrancy rules
 * are in h2_int.h. */
#include "proxy/h2_int.h"

#include <stdlib.h>
#include <string.h>
#include "util/log.h"

#define OUTBUF_MAX (1024 * 1024) /* one frame larger than H2_OUTBUF (a huge head) */

const tg_limits_cfg_t *h2__limits(tg_h2s_t *h) { return &h->w->gen->cfg->server.limits; }

static uint64_t now_ms(tg_h2s_t *h) { return uv_now(&h->w->loop); }

static void run(tg_h2s_t *h);

/* Whether the connection should close now: the session is over (GOAWAY
 * sent after an error), or a drain finished its last stream. Waits while
 * frames are still on their way out. */
static bool over(tg_h2s_t *h)
{
    if (h->dead)
        return false;
    if (h->fatal && h->out_pending)
        return true; /* an attacker that does not read gets no GOAWAY: do not wait */
    if (h->out_pending || h->out_len)
        return false;
    bool want_write = nghttp2_session_want_write(h->ng) != 0;
    if (!nghttp2_session_want_read(h->ng) && !want_write)
        return true;
    return (h->draining || h->fatal) && h->nstreams == 0 && !want_write;
}

/* Ends a top-level event: close the connection when it is over. */
static void settle(tg_h2s_t *h)
{
    if (!h->dead && over(h))
        h->io.close(h->io.conn); /* calls tg_h2s_free */
}

static void on_kick(uv_timer_t *t)
{
    tg_h2s_t *h = t->data;
    if (h->dead)
        return;
    run(h);
    settle(h);
}

void h2__queue(h2_stream_t *s)
{
    tg_h2s_t *h = s->h;
    if (!s->queued) {
        s->queued = true;
        tg_list_insert_tail(&h->work, &s->work);
    }
    if (!h->running && !h->dead)
        uv_timer_start(&h->kick, on_kick, 0, 0);
}

void h2__attack(tg_h2s_t *h, const char *what)
{
    if (h->fatal)
        return;
    h->fatal = true;
    tg_log_warn("http2: %s from a client: GOAWAY ENHANCE_YOUR_CALM", what);
    nghttp2_session_terminate_session(h->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* ---- output ---- */

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *user)
{
    tg_h2s_t *h = user;
    if (h->out_pending)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (h->out_len + len > h->out_cap) {
        if (h->out_len > 0)
            return NGHTTP2_ERR_WOULDBLOCK;
        char *nb = len <= OUTBUF_MAX ? realloc(h->out, len) : NULL;
        if (nb == NULL)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        h->out = nb;
        h->out_cap = len;
    }
    memcpy(h->out + h->out_len, data, len);
    h->out_len += len;
    return (ssize_t)len;
}

/* Hands `out` to the sink: one write when the socket takes it. */
static void write_out(tg_h2s_t *h)
{
    if (h->out_pending || h->out_len == 0)
        return;
    tg_sink_t *sk = h->io.out;
    if (tg_sink_room(sk) < 1 && tg_sink_flush(sk) != 0) {
        h->out_pending = true; /* our slice goes out after what is queued */
        h->stall_since = now_ms(h);
        return;
    }
    tg_sink_push(sk, h->out, h->out_len);
    int r = tg_sink_flush(sk);
    if (r == 1) {
        h->out_pending = true;
        h->stall_since = now_ms(h);
    } else {
        h->out_len = 0;
        if (r < 0)
            h->fatal = true;
    }
}

static void on_flush(uv_check_t *chk);

/* Frames go to `out`; the socket write waits for the end of the loop
 * iteration (on_flush), so the responses of every stream that became ready
 * in one iteration leave in one write (one TLS record run, one syscall).
 * A full `out` is written at once to make room. */
void h2__pump(tg_h2s_t *h)
{
    if (h->in_ng || h->dead)
        return;
    while (!h->out_pending && nghttp2_session_want_write(h->ng)) {
        size_t before = h->out_len;
        h->in_ng = true;
        int rv = nghttp2_session_send(h->ng);
        h->in_ng = false;
        if (rv < 0) {
            tg_log_debug("http2: send: %s", nghttp2_strerror(rv));
            h->fatal = true;
            break;
        }
        if (!nghttp2_session_want_write(h->ng) || (h->out_len == before && before == 0))
            break; /* done, or no progress even with room */
        write_out(h); /* `out` is full: write it to make room */
    }
    if (h->out_len && !h->out_pending)
        uv_check_start(&h->flush, on_flush);
}

/* ---- input callbacks: record state only (h2_int.h) ---- */

static h2_stream_t *stream_of(tg_h2s_t *h, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(h->ng, id) : NULL;
}

static void count_control(tg_h2s_t *h, bool reset)
{
    uint64_t now = now_ms(h);
    if (now - h->window_start >= H2_FLOOD_WINDOW_MS) {
        h->window_start = now;
        h->ctrl_frames = h->resets = 0;
    }
    if (reset && ++h->resets > H2_MAX_RESETS)
        h2__attack(h, "rapid reset (CVE-2023-44487)");
    else if (++h->ctrl_frames > H2_MAX_CONTROL)
        h2__attack(h, "control frame flood");
}

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    tg_h2s_t *h = user;
    if (h->dead || h->fatal || hd->type != NGHTTP2_CONTINUATION)
        return 0;
    h2_stream_t *s = stream_of(h, hd->stream_id);
    if (s && ++s->conts > H2_MAX_CONTINUATIONS)
        h2__attack(h, "CONTINUATION flood");
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    tg_h2s_t *h = user;
    if (h->dead || h->fatal || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        h2_stream_t *s = h2__stream_new(h, f->hd.stream_id);
        if (s == NULL)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM: out of memory */
        nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, s);
        h->last_active = now_ms(h);
        return 0;
    }
    h2_stream_t *s = stream_of(h, f->hd.stream_id);
    if (s) { /* trailers */
        s->in_trailers = true;
        s->block_bytes = 0;
        s->conts = 0;
    }
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    tg_h2s_t *h = user;
    if (h->dead || h->fatal)
        return 0;
    h2_stream_t *s = stream_of(h, f->hd.stream_id);
    if (s == NULL)
        return 0;
    s->block_bytes += nl + vl + 32; /* RFC 9113 §6.5.2 accounting */
    if (s->block_bytes > H2_BOMB_FACTOR * h2__limits(h)->max_header_bytes + 4096) {
        h2__attack(h, "HPACK bomb (header block too large once decoded)");
        return 0;
    }
    return h2__stream_field(s, name, nl, value, vl) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    tg_h2s_t *h = user;
    if (h->dead || h->fatal)
        return 0;
    h2_stream_t *s = stream_of(h, f->hd.stream_id);
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (f->hd.type) {
    case NGHTTP2_DATA:
        if (f->hd.length == 0 && !end)
            count_control(h, false); /* empty DATA frames cost work, carry nothing */
        if (s && end) {
            s->req_eof = true;
            h2__queue(s);
        }
        break;
    case NGHTTP2_HEADERS:
        if (s == NULL)
            break;
        if (!s->head_done) {
            s->head_done = true;
            s->nhead = s->nh;
        }
        s->conts = 0;
        s->block_bytes = 0;
        if (end)
            s->req_eof = true;
        h2__queue(s);
        break;
    case NGHTTP2_PING:
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            count_control(h, false);
        break;
    case NGHTTP2_PRIORITY:
        count_control(h, false);
        break;
    case NGHTTP2_RST_STREAM:
        count_control(h, s != NULL && !s->resp_complete);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *user)
{
    tg_h2s_t *h = user;
    if (h->dead)
        return 0;
    h2_stream_t *s = stream_of(h, id);
    if (s == NULL || h->fatal) {
        nghttp2_session_consume(ng, id, len); /* nobody wants it: keep windows open */
        return 0;
    }
    return h2__stream_data(s, data, len) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    tg_h2s_t *h = user;
    if (h->dead)
        return 0;
    h2_stream_t *s = stream_of(h, id);
    if (s == NULL)
        return 0;
    s->closed = true;
    if (s->ex && !s->resp_complete)
        s->abort_owed = true;
    h2__queue(s);
    return 0;
}

/* ---- the owed-work loop (the only caller into exchanges) ---- */

static void run(tg_h2s_t *h)
{
    if (h->running || h->dead)
        return;
    h->running = true;
    for (;;) {
        while (!tg_list_empty(&h->work) && !h->dead) {
            h2_stream_t *s = tg_container_of(h->work.next, h2_stream_t, work);
            tg_list_remove(&s->work);
            s->queued = false;
            h2__stream_work(s);
        }
        if (h->dead)
            break;
        h2__pump(h);
        if (tg_list_empty(&h->work))
            break;
    }
    h->running = false;
}

/* ---- timers ---- */

static void on_tick(uv_timer_t *t)
{
    tg_h2s_t *h = t->data;
    if (h->dead)
        return;
    const tg_limits_cfg_t *lim = h2__limits(h);
    uint64_t now = now_ms(h);
    /* A client that does not read what we write (a zero TCP window). */
    if (h->out_pending && now - h->stall_since >= lim->idle_timeout_ms) {
        h->io.close(h->io.conn);
        return;
    }
    if (h->nstreams == 0 && now - h->last_active >= lim->idle_timeout_ms) {
        if (!h->draining)
            tg_h2s_drain(h); /* GOAWAY, then close */
        if (!h->dead && now - h->last_active >= lim->idle_timeout_ms + 1000)
            h->io.close(h->io.conn);
        return;
    }
    tg_list_t *n = h->streams.next;
    while (n != &h->streams) {
        h2_stream_t *s = tg_container_of(n, h2_stream_t, node);
        n = n->next;
        if (s->deadline && now >= s->deadline) {
            s->deadline = 0;
            h2__stream_expire(s);
        }
    }
    run(h);
    settle(h);
}

static void on_flush(uv_check_t *chk)
{
    tg_h2s_t *h = chk->data;
    uv_check_stop(chk);
    if (h->dead)
        return;
    h2__pump(h);
    write_out(h);
    if (h->out_len == 0)
        uv_check_stop(chk);
    settle(h);
}

static void on_timer_closed(uv_handle_t *t)
{
    tg_h2s_t *h = t->data;
    if (--h->handles == 0) {
        free(h->out);
        free(h);
    }
}

/* ---- public ---- */

static nghttp2_session_callbacks *make_callbacks(void)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(cb, h2__send_data);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    return cb;
}

/* RFC 8441 extended CONNECT is advertised only when some route can take it
 * (`websocket: true`); without the setting nghttp2 refuses `:protocol`. */
static bool websocket_possible(tg_h2s_t *h)
{
    const tg_config_t *cfg = h->w->gen->cfg;
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].websocket)
            return true;
    return false;
}

static int session_new(tg_h2s_t *h)
{
    nghttp2_session_callbacks *cb = make_callbacks();
    nghttp2_option *opt = NULL;
    if (cb == NULL || nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cb);
        return -1;
    }
    /* Window updates only as exchanges consume body bytes: backpressure. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, 1000); /* SETTINGS/PING ack flood */
    nghttp2_option_set_max_settings(opt, 32);
    int rv = nghttp2_session_server_new2(&h->ng, cb, h, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0)
        return -1;
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)h2__limits(h)->max_header_bytes },
        { NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 }, /* RFC 8441: only if sent (below) */
    };
    size_t niv = sizeof iv / sizeof *iv - (websocket_possible(h) ? 0 : 1);
    if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, niv) != 0 ||
        nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0)
        return -1;
    return 0;
}

tg_h2s_t *tg_h2s_new(tg_worker_t *w, const tg_h2s_conn_t *io)
{
    tg_h2s_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->w = w;
    h->io = *io;
    h->out_cap = H2_OUTBUF;
    h->out = malloc(h->out_cap);
    tg_list_init(&h->streams);
    tg_list_init(&h->work);
    if (h->out == NULL || session_new(h) < 0) {
        if (h->ng)
            nghttp2_session_del(h->ng);
        free(h->out);
        free(h);
        return NULL;
    }
    h->last_active = h->window_start = uv_now(&w->loop);
    const tg_limits_cfg_t *lim = h2__limits(h);
    uint64_t g = lim->idle_timeout_ms < lim->body_timeout_ms ? lim->idle_timeout_ms : lim->body_timeout_ms;
    g = g / 4 < 50 ? 50 : g / 4 > 1000 ? 1000 : g / 4;
    uv_timer_init(&w->loop, &h->tick);
    uv_timer_init(&w->loop, &h->kick);
    uv_check_init(&w->loop, &h->flush);
    h->tick.data = h->kick.data = h->flush.data = h;
    h->handles = 3;
    uv_timer_start(&h->tick, on_tick, g, g);
    return h;
}

int tg_h2s_input(tg_h2s_t *h, const char *p, size_t n)
{
    if (n && !h->fatal) {
        h->in_ng = true;
        ssize_t rv = nghttp2_session_mem_recv(h->ng, (const uint8_t *)p, n);
        h->in_ng = false;
        if (rv < 0) {
            tg_log_debug("http2: %s", nghttp2_strerror((int)rv));
            if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
                return -1;
            h->fatal = true;
            nghttp2_session_terminate_session(h->ng, NGHTTP2_PROTOCOL_ERROR);
        }
    }
    run(h);
    return over(h) ? -1 : 0;
}

void tg_h2s_drained(tg_h2s_t *h, int status)
{
    if (h->dead)
        return;
    h->out_pending = false;
    h->out_len = 0;
    h->stall_since = 0;
    if (status < 0) {
        h->io.close(h->io.conn);
        return;
    }
    run(h);
    settle(h);
}

void tg_h2s_drain(tg_h2s_t *h)
{
    if (h->dead || h->draining)
        return;
    h->draining = true;
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    if (!h->running) {
        run(h);
        settle(h);
    }
}

void tg_h2s_free(tg_h2s_t *h)
{
    if (h == NULL || h->dead)
        return;
    h->dead = true;
    while (!tg_list_empty(&h->streams))
        h2__stream_kill(tg_container_of(h->streams.next, h2_stream_t, node));
    nghttp2_session_del(h->ng);
    h->ng = NULL;
    uv_close((uv_handle_t *)&h->tick, on_timer_closed);
    uv_close((uv_handle_t *)&h->kick, on_timer_closed);
    uv_close((uv_handle_t *)&h->flush, on_timer_closed);
}

int tg_h2s_upgrade(tg_h2s_t *h, tg_str_t settings, const tg_request_t *req)
{
    /* HTTP2-Settings is base64url without padding (RFC 7540 §3.2.1). */
    uint8_t buf[512];
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < settings.len; i++) {
        char c = settings.p[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
              : c >= '0' && c <= '9' ? c - '0' + 52 : c == '-' ? 62 : c == '_' ? 63 : c == '=' ? -2 : -1;
        if (v == -2)
            break;
        if (v < 0 || n >= sizeof buf)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (uint8_t)(acc >> bits);
        }
    }
    h2_stream_t *s = h2__stream_new(h, 1);
    if (s == NULL)
        return -1;
    bool head = tg_str_eq(req->method, TG_STR_LIT("HEAD"));
    if (nghttp2_session_upgrade2(h->ng, buf, n, head, s) != 0 || h2__stream_from_h1(s, req) < 0) {
        h2__stream_kill(s);
        return -1;
    }
    h2__queue(s);
    return 0;
}
