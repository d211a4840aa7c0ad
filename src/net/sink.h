/* tg_sink_t: the write side of a stream. Callers queue slices (gather I/O),
 * then flush once per batch: one writev when the socket takes it all, else one
 * uv_write for the rest and a drain callback when it completes. Queued bytes
 * are borrowed: they must stay valid until the flush is complete (which is
 * why a source pauses while its sink is pending: that is the backpressure). */
#ifndef TG_NET_SINK_H
#define TG_NET_SINK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define TG_SINK_MAX_IOV 16
#define TG_SINK_MAX_SCRATCH 8 /* framing copies: at most one per three slots */
#define TG_SINK_SCRATCH 24

typedef struct tg_sink tg_sink_t;
/* status 0 = all written; < 0 = libuv error (UV_ECANCELED when the stream closed). */
typedef void (*tg_sink_drain_cb)(tg_sink_t *s, int status);

struct tg_sink {
    uv_stream_t *stream;
    uv_buf_t iov[TG_SINK_MAX_IOV];
    unsigned niov;
    char scratch[TG_SINK_MAX_SCRATCH][TG_SINK_SCRATCH]; /* framing bytes (chunk sizes, CRLF) */
    unsigned nscratch;
    uv_write_t req;
    bool pending;         /* an async write is in flight */
    tg_sink_drain_cb on_drain;
    void *data;
    uint64_t bytes_written;
    struct tg_tls_conn *tls;  /* set: slices are encrypted (copied) at flush, see net/tls.h */
};

void tg_sink_init(tg_sink_t *s, uv_stream_t *stream, tg_sink_drain_cb on_drain, void *data);
/* Slots left in the queue. Callers that need k slots flush first when fewer. */
static inline unsigned tg_sink_room(const tg_sink_t *s)
{
    return s->nscratch >= TG_SINK_MAX_SCRATCH ? 0 : TG_SINK_MAX_IOV - s->niov;
}
/* Queues n borrowed bytes. The caller has checked tg_sink_room. */
void tg_sink_push(tg_sink_t *s, const void *p, size_t n);
/* Queues a copy of a small string (<= TG_SINK_SCRATCH bytes). */
void tg_sink_push_copy(tg_sink_t *s, const char *p, size_t n);
/* Queues n > 0 body bytes (borrowed), framed as one HTTP/1.1 chunk
 * ("<hex>\r\n" data "\r\n") when `chunked`. Needs 3 slots when chunked, else 1. */
void tg_sink_push_body(tg_sink_t *s, const char *p, size_t n, bool chunked);
/* Writes the queue. Returns 0 when everything was written now, 1 when a write
 * is pending (on_drain follows), or a negative libuv error (on_drain is then
 * never called for this flush). While a write is pending, new slices may be
 * queued; they go out when it completes, before on_drain is called. */
int tg_sink_flush(tg_sink_t *s);
/* From now on, flushes go through TLS session t (plaintext streams never
 * take this path: their flush is one writev, without copies). */
void tg_sink_use_tls(tg_sink_t *s, struct tg_tls_conn *t);

#endif
