/* The upstream-connection interface: what the exchange needs from a client
 * connection (or, for HTTP/2, a stream on a shared connection), whatever the
 * wire protocol. Each implementation (upstream/h1_client.c,
 * upstream/h2_client.c) embeds tg_upconn_t as its first member (`super`) and
 * reports back through tg_upstream_events_t, so the exchange is written once.
 *
 * Ownership: a tg_upconn_t belongs to its exchange from acquire until
 * release/abort; after either call it must not be touched and raises no
 * event. Everything a tg_upreq_t points to is borrowed from the exchange and
 * stays valid until release/abort. */
#ifndef TG_UPSTREAM_UPCONN_H
#define TG_UPSTREAM_UPCONN_H

#include <stdbool.h>
#include <stdint.h>
#include "http/msg.h"
#include "runtime/worker.h"
#include "upstream/upstream.h"
#include "util/arena.h"

typedef struct tg_upconn tg_upconn_t;

typedef struct tg_upstream_events {
    /* The new connection is up (status 0) or failed (< 0; UV_ETIMEDOUT on the
     * connect timeout). After a failure the connection is already detached. */
    void (*connected)(void *ctx, int status);
    /* A response head: 1xx (more follow), 101 (a tunnel follows: body() then
     * carries raw bytes until end()) or final. Slices valid for the call.
     * Return < 0 to refuse it (the client then closes: error() is not called). */
    int (*head)(void *ctx, const tg_response_t *resp);
    /* Body bytes, borrowed until taken and flushed; returns how many were
     * taken (fewer: reading pauses until resume). */
    size_t (*body)(void *ctx, const char *p, size_t n);
    /* The response is complete. The exchange then calls release. */
    void (*end)(void *ctx, const tg_header_t *trailers, size_t n);
    /* A read batch was processed: flush downstream. Return 1 when that flush
     * is pending: reading pauses until resume. */
    int (*batch_done)(void *ctx);
    /* The connection (or stream) failed or timed out (err < 0). It is already
     * detached; got_bytes says whether any response byte had arrived. */
    void (*error)(void *ctx, int err, bool got_bytes);
    /* A pending request write completed (status 0): resume the request body. */
    void (*drained)(void *ctx);
} tg_upstream_events_t;

/* One request as the exchange hands it to a connection. The header list is
 * already shaped (hop-by-hop fields removed, forwarded headers added) and
 * holds no Host: `authority` carries it (Host for HTTP/1.1, :authority for
 * HTTP/2). `h1_head` is the same request serialized for HTTP/1.1. */
typedef struct tg_upreq {
    tg_str_t method, scheme, authority, target;
    const tg_header_t *headers;
    size_t nheaders;
    const char *h1_head;
    size_t h1_head_len;
    tg_body_kind_t body;           /* request body framing as received */
    uint64_t content_length;
    bool head_request;
    bool tunnel;                   /* an Upgrade (WebSocket) request: 101 expected */
    bool te_trailers;              /* the client sent "TE: trailers" (kept for HTTP/2) */
    uint64_t response_timeout_ms;  /* head wait, then each gap between reads; 0 = none */
    uint64_t deadline_ms;          /* whole-exchange bound from begin (grpc-timeout); 0 = none */
    tg_arena_t *arena;             /* the exchange's, for per-request copies */
} tg_upreq_t;

typedef struct tg_upconn_ops {
    /* Announces the request and queues its head. 0, or < 0 (cannot: abort). */
    int (*begin)(tg_upconn_t *c, const tg_upreq_t *req);
    /* Queues request body bytes (borrowed until the flush completes). Returns
     * how many were taken; 0 when its queue is full (flush, then retry). */
    size_t (*body)(tg_upconn_t *c, const char *p, size_t n);
    /* Queues the end of the request body (trailers copied). 0 queued, 1 no
     * room (flush, then retry). */
    int (*end)(tg_upconn_t *c, const tg_header_t *trailers, size_t n);
    /* 0 written, 1 pending (drained() follows), < 0 error (error() follows
     * asynchronously, or the caller aborts). */
    int (*flush)(tg_upconn_t *c);
    /* The request has been fully sent: the response timeout starts now. */
    void (*request_sent)(tg_upconn_t *c);
    /* Resume delivering the response after a pause (downstream drained). */
    void (*resume)(tg_upconn_t *c);
    /* After end(): back to the pool when `reusable`, else closed. */
    void (*release)(tg_upconn_t *c, bool reusable);
    /* Detaches from its exchange and closes (or resets the stream) now. */
    void (*abort)(tg_upconn_t *c);
} tg_upconn_ops_t;

struct tg_upconn {
    const tg_upconn_ops_t *ops;
};

/* A connection to server `s` of upstream `u` (index `upstream_index`) for
 * `ctx`, speaking u->cfg->protocol: a ready one (*reused = true, usable at
 * once: a pooled HTTP/1.1 connection or a stream on a live HTTP/2
 * connection) or a new one (connected() follows). NULL when no address is
 * known or on OOM (*err set). */
tg_upconn_t *tg_upconn_acquire(tg_worker_t *w, size_t upstream_index, tg_upstream_t *u,
                               tg_upstream_server_t *s, const tg_upstream_events_t *ev, void *ctx,
                               bool *reused, int *err);

static inline int tg_upconn_begin(tg_upconn_t *c, const tg_upreq_t *r) { return c->ops->begin(c, r); }
static inline size_t tg_upconn_body(tg_upconn_t *c, const char *p, size_t n) { return c->ops->body(c, p, n); }
static inline int tg_upconn_end(tg_upconn_t *c, const tg_header_t *t, size_t n) { return c->ops->end(c, t, n); }
static inline int tg_upconn_flush(tg_upconn_t *c) { return c->ops->flush(c); }
static inline void tg_upconn_request_sent(tg_upconn_t *c) { c->ops->request_sent(c); }
static inline void tg_upconn_resume(tg_upconn_t *c) { c->ops->resume(c); }
static inline void tg_upconn_release(tg_upconn_t *c, bool reusable) { c->ops->release(c, reusable); }
static inline void tg_upconn_abort(tg_upconn_t *c) { c->ops->abort(c); }

#endif
