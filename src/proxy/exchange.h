/* The exchange: one request/response pair between a downstream codec and an
 * upstream connection. It owns an arena for its lifetime, decides the route,
 * shapes headers, picks the server, and is the only place that moves body
 * bytes between the two sides, with backpressure both ways: bytes are passed
 * as borrowed slices, and a side whose sink is pending pauses the other.
 *
 * The downstream codec drives it through tg_exchange_* calls and is driven
 * back through tg_downstream_ops_t. The exchange never asks which protocol
 * the downstream speaks. */
#ifndef TG_PROXY_EXCHANGE_H
#define TG_PROXY_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "http/msg.h"
#include "runtime/worker.h"
#include "util/arena.h"

typedef struct tg_exchange tg_exchange_t;

typedef struct tg_downstream_ops {
    /* Queue a response head (1xx or final). The codec copies what it needs
     * (the slices may not outlive the call); it chooses the wire framing from
     * resp->body/content_length. resp->keep_alive false on a final head: the
     * stream closes after this answer (the codec says so on the wire, e.g.
     * HTTP/1.1 "Connection: close"). Returns 0 or -1 (cannot: abort). */
    int (*response_head)(void *ctx, tg_exchange_t *ex, const tg_response_t *resp);
    /* Queue body bytes, borrowed until the flush completes. Returns the
     * number of bytes taken (fewer when its queue is full: flush, then retry). */
    size_t (*response_body)(void *ctx, const char *p, size_t n);
    /* Queue the end of the response (trailers copied). */
    int (*response_end)(void *ctx, tg_exchange_t *ex, const tg_header_t *trailers, size_t n);
    /* Optional: copy the queued body bytes, so that they no longer borrow the
     * caller's buffer (whose source is going away) and can still be sent
     * before the end. 0, or -1 (cannot: the caller cuts the stream instead). */
    int (*own_body)(void *ctx);
    /* Write what is queued: 0 done, 1 pending (tg_exchange_downstream_drained
     * follows), < 0 failed (the stream is gone: the codec will call
     * tg_exchange_abort later, from its own stack). */
    int (*flush)(void *ctx);
    /* Resume delivering the request body after tg_exchange_request_body took
     * fewer bytes than offered. */
    void (*resume_request)(void *ctx);
    /* Send "100 Continue" now. */
    void (*send_continue)(void *ctx);
    /* The exchange is over and freed. ok: the response was complete, the
     * stream may carry the next request; !ok: close the stream. */
    void (*done)(void *ctx, bool ok);
} tg_downstream_ops_t;

typedef struct tg_downstream_info {
    const struct sockaddr *peer;
    bool tls;
    uint64_t head_bytes;      /* request head size on the wire */
    /* The verified TLS client certificate (mTLS), or NULL: its subject as an
     * RFC 4514 string and its SHA-256 fingerprint (lowercase hex); copied. */
    const char *client_cert_subject;
    const char *client_cert_fingerprint;
} tg_downstream_info_t;

/* Starts an exchange for a parsed request head. `req` and its slices are
 * borrowed for the duration of this call only. Always returns an exchange
 * (NULL only on OOM, after which the codec answers 503 itself and closes);
 * the exchange may already have answered (e.g. 404) and called ops->done
 * before returning, in which case the return value must not be used. */
tg_exchange_t *tg_exchange_start(tg_worker_t *w, const tg_downstream_ops_t *ops, void *ctx,
                                 const tg_downstream_info_t *info, const tg_request_t *req);
/* Request body bytes (decoded, without framing), borrowed until the next
 * resume_request/done or until tg_exchange_request_flush returned 0.
 * Returns how many were taken; fewer than n means paused until resume_request. */
size_t tg_exchange_request_body(tg_exchange_t *ex, const char *p, size_t n);
/* The request body ended (trailers borrowed for the call). */
void tg_exchange_request_end(tg_exchange_t *ex, const tg_header_t *trailers, size_t n);
/* End of a downstream read batch: write what was queued upstream.
 * 0 = written (buffers may be reused); 1 = pending (resume_request follows). */
int tg_exchange_request_flush(tg_exchange_t *ex);
/* The codec's pending flush completed (or failed: status < 0). */
void tg_exchange_downstream_drained(tg_exchange_t *ex, int status);
/* The downstream went away or timed out; the exchange ends now, without
 * calling any op. `status` is what the access log records (499, 408, ...). */
void tg_exchange_abort(tg_exchange_t *ex, int status);
/* Arena of the exchange, for codecs that serialize heads. */
tg_arena_t *tg_exchange_arena(tg_exchange_t *ex);

#endif
