/* Internals of the HTTP/2 downstream codec (h2_server.c: session, frames,
 * timers, attack bounds; h2_stream.c: one stream = one exchange).
 *
 * Re-entrancy rules, which keep every call chain one-directional:
 *  - nghttp2 callbacks only record state (buffer bytes, set flags, queue
 *    the stream on h->work); they never call into an exchange.
 *  - exchange ops (tg_downstream_ops_t) may write frames (h2__pump) but
 *    never call back into an exchange either: what they owe another
 *    exchange (drained, abort, resume) is queued.
 *  - only h2__run, entered from the codec's own top-level events (input,
 *    sink drain, timers), calls into exchanges and frees streams. */
#ifndef TG_PROXY_H2_INT_H
#define TG_PROXY_H2_INT_H

#include <nghttp2/nghttp2.h>
#include "proxy/exchange.h"
#include "proxy/h2_server.h"
#include "util/list.h"

/* Bounds (docs/protocols.md). */
#define H2_MAX_STREAMS 100            /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define H2_STREAM_WINDOW 65535        /* per-stream receive window = its body buffer */
#define H2_CONN_WINDOW (1024 * 1024)  /* connection receive window: all buffered bodies */
#define H2_OUTBUF (64 * 1024)         /* frames waiting for the socket */
#define H2_RESP_SLICES 8              /* borrowed response slices per stream */
#define H2_MAX_CONTINUATIONS 8        /* CONTINUATION frames per header block (as nghttp2 >= 1.61) */
#define H2_FLOOD_WINDOW_MS 10000      /* the window of the two counters below */
#define H2_MAX_CONTROL 5000           /* PING/SETTINGS/PRIORITY/RST_STREAM/empty DATA per window */
#define H2_MAX_RESETS 500             /* streams the client cancelled mid-exchange per window */
#define H2_BOMB_FACTOR 4              /* decoded header block > 4 x max_header_bytes: GOAWAY */

typedef struct h2_stream h2_stream_t;

typedef struct tg_h2s {
    tg_worker_t *w;
    tg_h2s_conn_t io;
    nghttp2_session *ng;
    uv_timer_t tick;              /* deadlines of streams and of the connection */
    uv_timer_t kick;              /* zero-delay: run owed work from a fresh stack */
    uv_check_t flush;             /* end of loop iteration: write `out` (coalesces streams) */
    int handles;                  /* timers not yet closed */
    tg_list_t streams;            /* every live h2_stream_t */
    tg_list_t work;               /* streams with owed work */
    size_t nstreams;
    char *out;                    /* frames not yet handed to the sink */
    size_t out_len, out_cap;
    bool out_pending;             /* the sink holds `out`: wait for tg_h2s_drained */
    bool in_ng;                   /* inside nghttp2_session_mem_recv/send */
    bool running, rerun;
    bool dead;                    /* tg_h2s_free was called */
    bool draining;                /* GOAWAY sent for shutdown */
    bool fatal;                   /* an attack or protocol error: GOAWAY, then close */
    uint64_t last_active;         /* uv_now of the last stream activity (idle timeout) */
    uint64_t stall_since;         /* uv_now since when out_pending (0 = not) */
    uint64_t window_start;        /* flood counters' window */
    uint32_t ctrl_frames, resets;
} tg_h2s_t;

struct h2_stream {
    tg_h2s_t *h;
    int32_t id;
    tg_exchange_t *ex;            /* set from start until ops->done or abort */
    tg_list_t node;               /* h->streams */
    tg_list_t work;               /* h->work while queued */
    /* received field lines: the head, then (after nhead) the trailers */
    char *hb;
    size_t hb_len, hb_cap;
    uint32_t (*hf)[4];            /* name off, name len, value off, value len */
    size_t nh, hf_cap, nhead;
    uint32_t pseudo[5][2];        /* :method :scheme :authority :path :protocol (off, len+1; 0 = absent) */
    size_t block_bytes;           /* decoded size of the current header block */
    unsigned conts;               /* CONTINUATION frames of the current block */
    int reject;                   /* a codec answer owed instead of an exchange (431, 414, 400) */
    bool head_done, started, req_eof, end_delivered, in_trailers;
    bool tunnel;                  /* RFC 8441 extended CONNECT: no body-gap deadline */
    bool queued, closed, done, paused, drain_wanted, drain_ready, abort_owed;
    /* request body ring (capacity H2_STREAM_WINDOW: flow control bounds it) */
    char *rb;
    size_t rhead, rlen, roff;     /* roff: bytes offered to the exchange, not released */
    uint64_t content_length;
    bool has_length;
    /* response */
    bool resp_head, resp_end, resp_nobody, resp_complete;
    uv_buf_t q[H2_RESP_SLICES];   /* borrowed body slices, q[0] from qoff */
    unsigned qn;
    size_t qoff;
    nghttp2_nv *trailers;         /* copied at response_end (malloc'd with their bytes) */
    size_t ntrailers;
    char *errbody;                /* a codec-made answer's body */
    char *kept;                   /* body bytes copied by own_body, q[0] points into it */
    uint64_t deadline;            /* uv_now ms: body gap or send stall; 0 = none */
};

/* h2_server.c */
void h2__queue(h2_stream_t *s);   /* owe work to s (runs from h2__run) */
void h2__pump(tg_h2s_t *h);       /* writes frames nghttp2 has ready (no exchange calls) */
void h2__attack(tg_h2s_t *h, const char *what);
const tg_limits_cfg_t *h2__limits(tg_h2s_t *h);

/* h2_stream.c */
h2_stream_t *h2__stream_new(tg_h2s_t *h, int32_t id);
/* Records one field line of the current header block; < 0: fatal. */
int h2__stream_field(h2_stream_t *s, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl);
/* Buffers request body bytes; < 0 when they do not fit (flow control broken). */
int h2__stream_data(h2_stream_t *s, const uint8_t *p, size_t n);
/* The owed work of s; may free it (never touch s after). */
void h2__stream_work(h2_stream_t *s);
/* The connection is closing: aborts the exchange, frees s. */
void h2__stream_kill(h2_stream_t *s);
/* Deadline passed: reset the stream, end its exchange. */
void h2__stream_expire(h2_stream_t *s);
/* nghttp2's data source for responses (NO_COPY) and its frame writer. */
ssize_t h2__read_data(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user);
int h2__send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd, size_t len,
                  nghttp2_data_source *src, void *user);
/* Starts stream 1 of an h2c upgrade from an HTTP/1.1 request (copied). */
int h2__stream_from_h1(h2_stream_t *s, const tg_request_t *req);

#endif
