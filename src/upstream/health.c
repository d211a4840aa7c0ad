#include "upstream/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/tls.h"
#include "upstream/health_h2.h"
#include "upstream/tls_client.h"
#include "util/log.h"

#define REQ_MAX 1024     /* the check's request head */
#define STATUS_MAX 1024  /* bytes read looking for the status line */

typedef struct checker {
    struct tg_health *h;
    tg_upstream_t *u;
    tg_upstream_server_t *s;
    uv_timer_t tick;          /* every interval */
    uv_timer_t deadline;      /* the timeout of the check in flight */
    uv_tcp_t tcp;             /* one connection per check (Connection: close) */
    uv_connect_t creq;
    uv_write_t wreq;
    tg_tls_conn_t *tls;       /* a tls: upstream: the check goes over TLS */
    tg_hh2_t *hh2;            /* an HTTP/2 upstream: the check's session (health_h2.h) */
    char req[REQ_MAX];
    size_t reqlen;
    char resp[STATUS_MAX];
    size_t resplen;
    bool in_flight;           /* from connect until the tcp handle's close callback */
    bool done;                /* this check's verdict is recorded */
    uint32_t ok_run, fail_run;
} checker_t;

struct tg_health {
    checker_t *v;
    size_t n;
    int open_handles;         /* freed when the last one has closed after stop */
    bool stopped;
};

static void on_handle_closed(uv_handle_t *hd)
{
    checker_t *c = hd->data;
    struct tg_health *h = c->h;
    if (hd == (uv_handle_t *)&c->tcp)
        c->in_flight = false;
    if (--h->open_handles == 0 && h->stopped) {
        free(h->v);
        free(h);
    }
}

static void close_handle(checker_t *c, uv_handle_t *hd)
{
    if (!uv_is_closing(hd))
        uv_close(hd, on_handle_closed);
}

/* The check's connection (TLS session first: it hands tcp.data back). */
static void close_conn(checker_t *c)
{
    tg_tls_conn_free(c->tls);
    c->tls = NULL;
    tg_hh2_free(c->hh2);
    c->hh2 = NULL;
    close_handle(c, (uv_handle_t *)&c->tcp);
}

static bool status_expected(const tg_health_check_cfg_t *hc, int status)
{
    for (size_t i = 0; i < hc->nexpect; i++)
        if (status >= hc->expect[i].lo && status <= hc->expect[i].hi)
            return true;
    return false;
}

/* The verdict of one check: updates the runs and, at a threshold, the
 * published state (logged and counted once per transition). */
static void record(checker_t *c, bool ok, const char *why)
{
    const tg_health_check_cfg_t *hc = &c->u->cfg->health_check;
    tg_upstream_server_t *s = c->s;
    int state = atomic_load_explicit(&s->health, memory_order_relaxed);
    if (ok) {
        c->fail_run = 0;
        c->ok_run++;
        if (state == TG_HEALTH_DOWN && c->ok_run >= hc->healthy) {
            atomic_store_explicit(&s->health, TG_HEALTH_UP, memory_order_relaxed);
            atomic_fetch_add_explicit(&s->health_changes, 1, memory_order_relaxed);
            tg_log_info("upstream %s: server %s is up (%u health check(s) passed)", c->u->cfg->name,
                        s->cfg->address, c->ok_run);
        }
        return;
    }
    c->ok_run = 0;
    c->fail_run++;
    if (state == TG_HEALTH_UP && c->fail_run >= hc->unhealthy) {
        atomic_store_explicit(&s->health, TG_HEALTH_DOWN, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->health_changes, 1, memory_order_relaxed);
        tg_log_info("upstream %s: server %s is down (%u health check(s) failed, last: %s)",
                    c->u->cfg->name, s->cfg->address, c->fail_run, why);
    }
}

/* Ends the check in flight (once): verdict, then close the connection. */
static void finish(checker_t *c, bool ok, const char *why)
{
    if (c->done)
        return;
    c->done = true;
    uv_timer_stop(&c->deadline);
    if (!c->h->stopped)
        record(c, ok, why);
    close_conn(c);
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *buf)
{
    checker_t *c = hd->data;
    *buf = uv_buf_init(c->resp + c->resplen, (unsigned)(sizeof c->resp - c->resplen));
}

/* "HTTP/1.x NNN" at the start of the response: the status, or -1. */
static int parse_status(const char *p, size_t n)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        st = st * 10 + (p[i] - '0');
    }
    return st >= 100 && st <= 599 ? st : -1;
}

static int h2_flush(checker_t *c);

/* An HTTP/2 check: the bytes go to the session, which may answer (SETTINGS
 * ACK, WINDOW_UPDATE) or reach the verdict. */
static void h2_read(checker_t *c, size_t n)
{
    int r = tg_hh2_input(c->hh2, c->resp, n);
    c->resplen = 0; /* the session keeps what it needs: the buffer is reused */
    if (r < 0) {
        finish(c, false, "HTTP/2 protocol error");
    } else if (r > 0) {
        char why[64];
        bool ok = tg_hh2_verdict(c->hh2, why, sizeof why);
        finish(c, ok, why);
    } else if (h2_flush(c) < 0) {
        finish(c, false, "cannot send");
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    checker_t *c = st->data;
    if (nread >= 0 && c->hh2 != NULL) {
        h2_read(c, (size_t)nread);
        return;
    }
    if (nread < 0) {
        finish(c, false, nread != UV_EOF ? uv_strerror((int)nread)
                                : c->hh2 ? "closed before the response" : "closed without a status line");
        return;
    }
    c->resplen += (size_t)nread;
    if (memchr(c->resp, '\n', c->resplen) == NULL) {
        if (c->resplen == sizeof c->resp)
            finish(c, false, "no status line");
        return;
    }
    int status = parse_status(c->resp, c->resplen);
    char why[48];
    snprintf(why, sizeof why, status < 0 ? "not an HTTP response" : "status %d", status);
    finish(c, status >= 0 && status_expected(&c->u->cfg->health_check, status), why);
}

static void on_written(uv_write_t *w, int status)
{
    checker_t *c = w->data;
    if (status < 0 && !c->done)
        finish(c, false, uv_strerror(status));
}

/* An HTTP/2 check writes more than once (request, then acknowledgements):
 * each write owns its bytes. */
typedef struct h2_write {
    uv_write_t w;
    char *data;
} h2_write_t;

static void on_h2_written(uv_write_t *w, int status)
{
    h2_write_t *hw = (h2_write_t *)w;
    checker_t *c = w->data;
    free(hw->data);
    free(hw);
    if (status < 0 && !c->done)
        finish(c, false, uv_strerror(status));
}

static void on_h2_tls_written(void *arg, int status)
{
    checker_t *c = arg;
    if (status < 0 && !c->done)
        finish(c, false, uv_strerror(status));
}

/* Sends what the HTTP/2 session has queued. 0, or a libuv error (the check fails). */
static int h2_flush(checker_t *c)
{
    char *data;
    size_t len;
    if (tg_hh2_output(c->hh2, &data, &len) < 0)
        return UV_ENOMEM; /* OOM, or a session nghttp2 gave up on */
    if (len == 0)
        return 0;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    if (c->tls != NULL) {
        int r = tg_tls_write(c->tls, &b, 1, on_h2_tls_written, c); /* copies the bytes */
        free(data);
        return r < 0 ? r : 0;
    }
    h2_write_t *hw = malloc(sizeof *hw);
    if (hw == NULL) {
        free(data);
        return UV_ENOMEM;
    }
    hw->data = data;
    hw->w.data = c;
    int r = uv_write(&hw->w, (uv_stream_t *)&c->tcp, &b, 1, on_h2_written);
    if (r < 0) {
        free(data);
        free(hw);
    }
    return r;
}

/* tls: the handshake is over: send the request through the session. */
static void on_handshake(void *arg, int status)
{
    checker_t *c = arg;
    if (c->done)
        return;
    if (status == 0 && c->hh2 != NULL) {
        if (!tg_tls_alpn_h2(c->tls))
            finish(c, false, "server did not select h2 (ALPN)");
        else if (h2_flush(c) < 0)
            finish(c, false, "cannot send");
        return;
    }
    uv_buf_t b = uv_buf_init(c->req, (unsigned)c->reqlen);
    if (status < 0 || (status = tg_tls_write(c->tls, &b, 1, NULL, NULL)) < 0)
        finish(c, false, status == UV_EPROTO ? "TLS handshake failed" : uv_strerror(status));
}

static void tls_start(checker_t *c)
{
    SSL *ssl = tg_tlsc_ssl_new(c->u, c->s);
    c->tls = ssl ? tg_tls_conn_new_client(ssl, c->tcp.loop, (uv_stream_t *)&c->tcp, on_handshake, c) : NULL;
    int r = c->tls ? tg_tls_read_start(c->tls, on_alloc, on_read) : UV_ENOMEM;
    if (r < 0)
        finish(c, false, c->tls ? uv_strerror(r) : "no TLS session");
}

static void on_connect(uv_connect_t *cr, int status)
{
    checker_t *c = cr->data;
    if (c->done)
        return; /* timed out or stopped: the handle is closing */
    if (status < 0) {
        finish(c, false, uv_strerror(status));
        return;
    }
    if (c->u->cfg->tls.enabled) {
        tls_start(c);
        return;
    }
    uv_buf_t b = uv_buf_init(c->req, (unsigned)c->reqlen);
    int r = c->hh2 != NULL ? h2_flush(c) : uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (r == 0)
        r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0)
        finish(c, false, uv_strerror(r));
}

static void on_deadline(uv_timer_t *t)
{
    finish(t->data, false, "timeout");
}

static void on_tick(uv_timer_t *t)
{
    checker_t *c = t->data;
    if (c->in_flight || c->h->stopped)
        return; /* the previous check still closes: skip this round */
    struct sockaddr_storage sa;
    socklen_t len;
    if (!tg_upstream_server_addr(c->s, &sa, &len)) {
        record(c, false, "no address");
        return;
    }
    if (c->u->cfg->protocol != TG_PROTO_HTTP1 && (c->hh2 = tg_hh2_new(c->u->cfg, c->s->cfg)) == NULL) {
        record(c, false, "out of memory");
        return;
    }
    if (uv_tcp_init(t->loop, &c->tcp) != 0) {
        tg_hh2_free(c->hh2);
        c->hh2 = NULL;
        return;
    }
    c->tcp.data = c;
    c->h->open_handles++;
    c->in_flight = true;
    c->done = false;
    c->resplen = 0;
    uv_tcp_nodelay(&c->tcp, 1);
    int r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, on_connect);
    if (r < 0) {
        finish(c, false, uv_strerror(r));
        return;
    }
    uv_timer_start(&c->deadline, on_deadline, c->u->cfg->health_check.timeout_ms, 0);
}

static int checker_init(uv_loop_t *loop, struct tg_health *h, checker_t *c, tg_upstream_t *u,
                        tg_upstream_server_t *s)
{
    const tg_health_check_cfg_t *hc = &u->cfg->health_check;
    bool v6 = strchr(s->cfg->host, ':') != NULL;
    int l = snprintf(c->req, sizeof c->req,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUser-Agent: tollgate-health-check\r\n"
                     "Connection: close\r\n\r\n",
                     hc->path, v6 ? "[" : "", s->cfg->host, v6 ? "]" : "", s->cfg->port);
    if (l < 0 || (size_t)l >= sizeof c->req) {
        tg_log_error("upstream %s: health_check.path too long for a check request", u->cfg->name);
        return -1;
    }
    c->reqlen = (size_t)l;
    c->h = h;
    c->u = u;
    c->s = s;
    c->creq.data = c;
    c->wreq.data = c;
    uv_timer_init(loop, &c->tick);
    uv_timer_init(loop, &c->deadline);
    c->tick.data = c->deadline.data = c;
    h->open_handles += 2;
    /* First check at once, so that a dead server is found within
     * `unhealthy` intervals of start-up. */
    uv_timer_start(&c->tick, on_tick, 0, hc->interval_ms);
    return 0;
}

tg_health_t *tg_health_start(uv_loop_t *loop, tg_upstreams_t *ups)
{
    size_t n = 0;
    for (size_t i = 0; i < ups->n; i++)
        if (ups->v[i].cfg->has_health_check)
            n += ups->v[i].nservers;
    if (n == 0)
        return NULL;
    struct tg_health *h = calloc(1, sizeof *h);
    checker_t *v = calloc(n, sizeof *v);
    if (h == NULL || v == NULL) {
        free(h);
        free(v);
        tg_log_error("out of memory starting health checks: servers stay unchecked");
        return NULL;
    }
    h->v = v;
    for (size_t i = 0; i < ups->n; i++) {
        tg_upstream_t *u = &ups->v[i];
        for (size_t j = 0; u->cfg->has_health_check && j < u->nservers; j++) {
            if (checker_init(loop, h, &v[h->n], u, &u->servers[j]) < 0)
                continue;
            h->n++;
        }
    }
    if (h->n == 0) {
        free(v);
        free(h);
        return NULL;
    }
    return h;
}

void tg_health_stop(tg_health_t *h)
{
    if (h == NULL)
        return;
    h->stopped = true;
    for (size_t i = 0; i < h->n; i++) {
        checker_t *c = &h->v[i];
        c->done = true; /* connect/write callbacks (UV_ECANCELED) now do nothing */
        close_handle(c, (uv_handle_t *)&c->tick);
        close_handle(c, (uv_handle_t *)&c->deadline);
        if (c->in_flight)
            close_conn(c);
    }
}
