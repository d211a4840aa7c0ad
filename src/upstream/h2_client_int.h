/* Internals of the HTTP/2 upstream client (upstream/h2_client.c: the
 * connection, its transport and the pool; upstream/h2_client_stream.c: streams and
 * the nghttp2 callbacks).
 *
 * Rules that keep re-entrancy simple:
 *  - nghttp2 callbacks only record state in the stream and queue it on the
 *    connection's `ready` list; events reach the exchange from
 *    tg__h2u_dispatch, which runs after nghttp2_session_mem_recv returned.
 *  - Connections and streams are freed in libuv close callbacks only, so a
 *    pointer stays valid for the whole call chain that dropped it.
 *  - Failures found while the exchange calls us (flush) are reported later,
 *    from the connection's timer, never on the caller's stack. */
#ifndef TG_UPSTREAM_H2_CLIENT_INT_H
#define TG_UPSTREAM_H2_CLIENT_INT_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include "upstream/h2_client.h"
#include "util/list.h"

/* Per-stream receive window: the most response bytes one stream buffers
 * while its client is slow (a slow client never stalls other streams). */
#define TG_H2_STREAM_WINDOW (256 * 1024)
#define H2U_RETIRED 5 /* log2(TG_H2_STREAM_WINDOW / 16 KiB) + 1 */
/* Connection receive window: room for many slow streams at once. */
#define TG_H2_CONN_WINDOW (16 * 1024 * 1024)
/* Streams per connection (fewer when the server says so; nghttp2 queues the
 * rest until a slot frees). */
#define TG_H2_MAX_STREAMS 100
/* Queued output beyond which a flush reports "pending" (backpressure). */
#define TG_H2_OUT_HIGH (256 * 1024)
/* Response head limits per stream (beyond: the stream fails with EPROTO). */
#define TG_H2_MAX_HEADERS 200
#define TG_H2_MAX_HEADER_BYTES (64 * 1024)

enum { H2_CONNECTING, H2_HANDSHAKE, H2_READY, H2_CLOSED };

typedef struct tg_h2buf {
    char *p;
    size_t len, cap;
} tg_h2buf_t;

/* Per worker: connections by (upstream, server) slot. (TLS contexts belong
 * to the generation: tg_upstream_t.tls_ctx.) */
typedef struct tg_h2pool {
    const tg_gen_t *gen;        /* the slot layout is this generation's */
    tg_list_t *conns;           /* nslots lists of tg_h2uconn_t */
    size_t nslots;
} tg_h2pool_t;

typedef struct tg_h2uconn {
    uv_tcp_t tcp;
    uv_timer_t timer;           /* connect/handshake, idle, deferred failure */
    uv_connect_t creq;
    uv_write_t wreq;
    tg_worker_t *w;
    tg_upstream_server_t *srv;
    const tg_upstream_cfg_t *ucfg;
    tg_list_t node;             /* in the pool slot */
    tg_list_t streams;          /* every stream not yet freed */
    tg_list_t ready;            /* streams with events to deliver */
    nghttp2_session *ng;
    SSL *ssl;                   /* NULL for h2c */
    int state;
    int closing;                /* handles still closing */
    int pending_err;            /* a failure to report from the timer */
    uint32_t nstreams;
    bool goaway, writing, reading;
    tg_h2buf_t wbuf;            /* being written by uv_write */
    tg_h2buf_t qbuf;            /* queued behind it */
} tg_h2uconn_t;

typedef struct tg_h2us {
    tg_upconn_t super;          /* first: the exchange holds a tg_upconn_t * */
    tg_h2uconn_t *conn;
    tg_list_t node;             /* conn->streams */
    tg_list_t rnode;            /* conn->ready while queued */
    uv_timer_t timer;           /* response gaps and the deadline */
    const tg_upstream_events_t *ev;
    void *ctx;                  /* NULL once detached */
    int32_t id;                 /* -1 until begin */
    tg_arena_t *arena;          /* the exchange's, while attached */
    bool connected_given;
    /* request */
    const char *bp;             /* borrowed body slice not yet framed */
    size_t bn;
    bool has_body, req_end, deferred, data_eof, owe_drain, sent;
    nghttp2_nv *trailers;
    size_t ntrailers;
    /* response */
    tg_header_t *hdrs;
    size_t nh, hbytes;
    int status;
    tg_header_t *rtrailers;
    size_t nrt;
    bool final_seen, head_ready, head_given, in_trailers, remote_end, end_given;
    bool paused, got_bytes, closed, failed;
    bool split;                 /* a trailers-only answer, split (h2_client_stream.c) */
    int fail_err;
    char *dbuf;                 /* received DATA, malloc'd, <= TG_H2_STREAM_WINDOW */
    size_t dlen, dcap, dgiven;  /* dgiven: taken by the exchange, not yet released */
    /* Buffers outgrown while the exchange still held bytes in them: those
     * bytes must not move (its downstream writes them later), so growth
     * copies the rest into a new dbuf and keeps the old one until release.
     * Doubling from 16 KiB to the window: at most H2U_RETIRED at a time. */
    char *retired[H2U_RETIRED];
    size_t nretired, retired_given; /* retired_given: their lent bytes, not yet consumed */
    uint64_t response_timeout_ms;
    uint64_t deadline_at;       /* uv_now ms; 0 = none */
} tg_h2us_t;

/* h2_client.c */
/* Writes what nghttp2 has to send (and TLS records); failures are deferred. */
void tg__h2c_send(tg_h2uconn_t *c);
/* Reports failure `err` to every stream from the timer, then closes. */
void tg__h2c_fail_later(tg_h2uconn_t *c, int err);
/* A stream left the connection: idle timer, or close when draining. */
void tg__h2c_stream_gone(tg_h2uconn_t *c);
/* Queues s for tg__h2u_dispatch. */
void tg__h2c_mark_ready(tg_h2uconn_t *c, tg_h2us_t *s);

/* h2_client_stream.c */
/* Creates the client session (settings, windows) for a connected transport. */
int tg__h2u_session_new(tg_h2uconn_t *c);
/* Delivers queued stream events to their exchanges. */
void tg__h2u_dispatch(tg_h2uconn_t *c);
/* A new stream attached to c for ctx. NULL on OOM. */
tg_h2us_t *tg__h2u_new(tg_h2uconn_t *c, const tg_upstream_events_t *ev, void *ctx);
/* Connection-wide failure: the stream fails with err (event or free). */
void tg__h2u_conn_failed(tg_h2us_t *s, int err);
/* Streams waiting for a flush to complete get drained() if they can go on. */
void tg__h2u_check_drain(tg_h2us_t *s);

#endif
