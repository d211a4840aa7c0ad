#include "net/sink.h"

#include <string.h>
#include "http/h1.h"
#include "net/tls.h"

void tg_sink_init(tg_sink_t *s, uv_stream_t *stream, tg_sink_drain_cb on_drain, void *data)
{
    memset(s, 0, sizeof *s);
    s->stream = stream;
    s->on_drain = on_drain;
    s->data = data;
}

void tg_sink_push(tg_sink_t *s, const void *p, size_t n)
{
    if (n == 0)
        return;
    s->iov[s->niov++] = uv_buf_init((char *)p, (unsigned)n);
}

void tg_sink_push_copy(tg_sink_t *s, const char *p, size_t n)
{
    char *dst = s->scratch[s->nscratch++];
    memcpy(dst, p, n);
    tg_sink_push(s, dst, n);
}

void tg_sink_push_body(tg_sink_t *s, const char *p, size_t n, bool chunked)
{
    if (chunked) {
        char line[24];
        ssize_t l = tg_h1_write_chunk_size(line, sizeof line, n);
        tg_sink_push_copy(s, line, (size_t)l);
        tg_sink_push(s, p, n);
        tg_sink_push(s, "\r\n", 2);
    } else {
        tg_sink_push(s, p, n);
    }
}

static int flush_queue(tg_sink_t *s);
static int flush_tls(tg_sink_t *s);

/* The in-flight part is written. Slices queued meanwhile go out now; the
 * owner hears of the drain only once nothing is in flight. */
static void write_done(uv_write_t *req, int status)
{
    tg_sink_t *s = req->data;
    s->pending = false;
    if (status == 0 && s->niov > 0) {
        int r = s->tls ? flush_tls(s) : flush_queue(s);
        if (r == 1)
            return;
        if (r < 0)
            status = r;
    }
    if (s->niov == 0)
        s->nscratch = 0;
    s->on_drain(s, status);
}

static int flush_queue(tg_sink_t *s)
{
    size_t total = 0;
    for (unsigned i = 0; i < s->niov; i++)
        total += s->iov[i].len;
    int n = uv_try_write(s->stream, s->iov, s->niov);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0)
        return n;
    s->bytes_written += (uint64_t)n;
    if ((size_t)n == total) {
        s->niov = 0;
        s->nscratch = 0;
        return 0;
    }
    /* Skip what went out and hand the rest to libuv, which copies the iovec
     * array (not the bytes). The queue is free for new slices at once; the
     * scratch slots in flight stay reserved until the queue empties. */
    unsigned first = 0;
    size_t left = (size_t)n;
    while (left >= s->iov[first].len) {
        left -= s->iov[first].len;
        first++;
    }
    s->iov[first].base += left;
    s->iov[first].len -= (unsigned)left;
    s->req.data = s;
    int r = uv_write(&s->req, s->stream, s->iov + first, s->niov - first, write_done);
    if (r < 0)
        return r;
    s->bytes_written += total - (size_t)n;
    s->niov = 0;
    s->pending = true;
    return 1;
}

void tg_sink_use_tls(tg_sink_t *s, struct tg_tls_conn *t) { s->tls = t; }

static void tls_write_done(void *arg, int status) { write_done(&((tg_sink_t *)arg)->req, status); }

/* TLS: the slices are encrypted into records at once (so they are free when
 * this returns); only the socket write may be pending. */
static int flush_tls(tg_sink_t *s)
{
    size_t total = 0;
    for (unsigned i = 0; i < s->niov; i++)
        total += s->iov[i].len;
    s->req.data = s;
    int r = tg_tls_write(s->tls, s->iov, s->niov, tls_write_done, s);
    s->niov = 0;
    s->nscratch = 0;
    if (r < 0)
        return r;
    s->bytes_written += total;
    s->pending = r == 1;
    return r;
}

int tg_sink_flush(tg_sink_t *s)
{
    if (s->pending)
        return 1; /* write_done sends what was queued meanwhile */
    if (s->niov == 0)
        return 0;
    return s->tls ? flush_tls(s) : flush_queue(s);
}
