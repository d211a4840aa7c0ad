/* HTTP/1.1 client connections to upstream servers, with a per-worker
 * keep-alive pool. A connection serves one exchange at a time; it reports to
 * that exchange through tg_upstream_events_t, so the exchange is written
 * against events, not against HTTP/1.1 (an h2 client can raise the same). */
#ifndef TG_UPSTREAM_H1_CLIENT_H
#define TG_UPSTREAM_H1_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include "http/msg.h"
#include "runtime/worker.h"
#include "upstream/upstream.h"

typedef struct tg_h1c tg_h1c_t;

typedef struct tg_upstream_events {
    /* The new connection is up (status 0) or failed (< 0; UV_ETIMEDOUT on the
     * connect timeout). After a failure the connection is already detached. */
    void (*connected)(void *ctx, int status);
    /* A response head: 1xx (more follow) or final. Slices valid for the call.
     * Return < 0 to refuse it (the client then closes: error() is not called). */
    int (*head)(void *ctx, const tg_response_t *resp);
    /* Body bytes, borrowed until taken and flushed; returns how many were
     * taken (fewer: reading pauses until tg_h1c_resume). */
    size_t (*body)(void *ctx, const char *p, size_t n);
    /* The response is complete. The exchange then calls tg_h1c_release. */
    void (*end)(void *ctx, const tg_header_t *trailers, size_t n);
    /* A read batch was processed: flush downstream. Return 1 when that flush
     * is pending: reading pauses until tg_h1c_resume. */
    int (*batch_done)(void *ctx);
    /* The connection failed or timed out (err < 0). It is already detached and
     * closing; got_bytes says whether any response byte had arrived. */
    void (*error)(void *ctx, int err, bool got_bytes);
    /* A pending request write completed (status 0) — resume the request body. */
    void (*drained)(void *ctx);
} tg_upstream_events_t;

/* A connection to server `s` of upstream `u` for `ctx`: an idle pooled one
 * (*reused = true, usable at once) or a new one (connected() follows).
 * NULL when no address is known or on OOM (*err set). */
tg_h1c_t *tg_h1c_acquire(tg_worker_t *w, size_t upstream_index, tg_upstream_t *u,
                         tg_upstream_server_t *s, const tg_upstream_events_t *ev, void *ctx,
                         bool *reused, int *err);
/* Announces the request about to be queued. */
void tg_h1c_begin(tg_h1c_t *c, bool head_request, uint64_t response_timeout_ms);
unsigned tg_h1c_room(const tg_h1c_t *c);
/* Queue request bytes, borrowed until the flush completes. */
void tg_h1c_push(tg_h1c_t *c, const void *p, size_t n);
void tg_h1c_push_copy(tg_h1c_t *c, const char *p, size_t n);
/* 0 written, 1 pending (drained() follows), < 0 error (error() follows asynchronously). */
int tg_h1c_flush(tg_h1c_t *c);
/* The request has been fully sent: the response timeout starts now. */
void tg_h1c_request_sent(tg_h1c_t *c);
/* Resume reading the response after a pause. */
void tg_h1c_resume(tg_h1c_t *c);
/* After end(): back to the idle pool when `reusable`, else closed. */
void tg_h1c_release(tg_h1c_t *c, bool reusable);
/* Detaches from its exchange and closes now (no event is raised after). */
void tg_h1c_abort(tg_h1c_t *c);
/* Closes every idle pooled connection of worker w (drain, shutdown). */
void tg_h1c_close_idle(tg_worker_t *w);
/* The textual address of the server, for logs. */
const char *tg_h1c_server_label(const tg_h1c_t *c);

#endif
