/* Internals of the exchange shared by its source files (proxy/ only). */
#ifndef TG_PROXY_EXCHANGE_INT_H
#define TG_PROXY_EXCHANGE_INT_H

#include "proxy/exchange.h"
#include "proxy/filter_api.h"
#include "upstream/upconn.h"

struct tg_exchange {
    tg_arena_t arena;              /* everything below that is not inline */
    tg_worker_t *w;
    tg_gen_t *gen;
    const tg_downstream_ops_t *ops;
    void *ctx;
    /* request, copied into the arena (headers too: filters may wait) */
    tg_request_t req;
    tg_ex_request_t view;
    struct sockaddr_storage client_addr;
    tg_identity_t identity;
    /* filters */
    void **filter_slots;           /* tg_nfilters per-exchange states */
    uint8_t *filter_ran;           /* on_request was called: on_end is owed */
    size_t filter_idx;
    bool filter_waiting;
    struct tg_hdr_edit *edits;     /* upstream-bound header edits, in order */
    size_t nedits, edits_cap;
    tg_str_t up_query;
    bool query_set;
    tg_header_t *resp_h;           /* final response head being shaped */
    size_t resp_n, resp_cap;
    bool tls;
    bool tunnel_req;               /* a WebSocket handshake to relay (exchange_tunnel.c) */
    bool tunnel_h2;                /* ... that came as an HTTP/2 extended CONNECT */
    bool tunnel;                   /* the upstream said 101: opaque bytes both ways */
    struct tg_gw *gw;              /* gRPC-Web translation state, or NULL (exchange_grpc_web.c) */
    uint64_t grpc_deadline_at;     /* uv_now ms: the grpc-timeout bound (exchange_grpc.c); 0 = none */
    const char *cert_subject, *cert_fingerprint; /* verified client certificate (arena), or NULL */
    tg_str_t method, target, host, authority, path, query, user_agent, referer;
    char request_id[129];
    size_t rid_len;
    char peer_ip[64];
    char client_ip[64];
    bool peer_trusted;
    uint8_t minor;
    bool head_req, expect_continue, continue_sent;
    tg_body_kind_t req_body;
    uint64_t req_cl;
    uint64_t max_body, body_seen;
    bool req_done;                 /* the downstream delivered the whole body */
    bool req_end_queued;           /* the body's end went to the upstream queue */
    bool req_sent;                 /* the request is fully written upstream */
    bool body_started;             /* body bytes were queued upstream: no retry */
    bool req_paused;               /* the downstream waits for resume_request */
    tg_upreq_t upreq;              /* the request as the upstream connection gets it */
    tg_header_t *req_trailers;     /* copied at request end (arena) */
    size_t nreq_trailers;
    /* route and upstream */
    const tg_route_cfg_t *route;
    size_t up_index;
    tg_upstream_t *up;
    tg_upstream_server_t *srv;     /* counted in srv->active while set */
    bool srv_pending;              /* counted in up->pending (connecting) */
    uint8_t srv_outcome;           /* this try's outlier outcome: 0 none, 1 ok, 2 failed */
    uint8_t *tried;
    unsigned tries, max_tries;
    tg_upconn_t *uc;
    struct tg__ex_body *rbody;     /* body buffering (exchange_body.c); NULL: it streams */
    bool uc_reused, uc_ready, up_pending;
    const char *up_label;
    /* response */
    bool resp_head_sent, resp_done, down_pending, up_paused;
    bool close_after;              /* the downstream must close after this answer */
    int status, up_status;
    uint64_t bytes_in, bytes_out;
    uint64_t t0, t_up;             /* ns, uv_hrtime: start, upstream start */
    double up_ms;
    uint64_t response_timeout_ms;
    /* upstream-answer substitution and borrowed bodies (exchange_cache_hooks.c) */
    const tg_ex_subst_t *subst;
    void *subst_arg;
    bool subst_claimed;            /* the upstream's answer is being replaced */
    void (*body_release)(void *);  /* tg_ex_respond_borrowed: called in tg__ex_finish */
    void *body_release_arg;
};

typedef struct tg_hdr_edit {
    const char *name;
    tg_str_t value;
    bool remove;
} tg_hdr_edit_t;

/* exchange_pool.c: per-worker recycling of exchanges and their first arena block */
tg_exchange_t *tg__ex_alloc(tg_worker_t *w);
void tg__ex_recycle(tg_exchange_t *ex);

/* exchange.c */
/* Runs the request filters from ex->filter_idx on; then goes upstream. */
void tg__ex_run_filters(tg_exchange_t *ex);
/* Response hooks of the filters that ran. */
void tg__ex_filters_response_head(tg_exchange_t *ex, int status);
void tg__ex_filters_response_body(tg_exchange_t *ex, const char *p, size_t n);
void tg__ex_filters_response_complete(tg_exchange_t *ex);
/* Runs on_end of every filter that ran (once). */
void tg__ex_filters_end(tg_exchange_t *ex, bool complete);

/* exchange_headers.c */
int tg__ex_build_upstream_head(tg_exchange_t *ex);
int tg__ex_response_headers(tg_exchange_t *ex, const tg_response_t *in, tg_response_t *out);
void tg__ex_client_ip(tg_exchange_t *ex, const struct sockaddr *peer, const tg_request_t *req);
/* Copies the request head (and its headers) into the arena. */
int tg__ex_copy_request(tg_exchange_t *ex, const tg_request_t *in);
void tg__ex_request_id(tg_exchange_t *ex, const tg_request_t *req);

/* exchange_retry.c: server choice, try accounting and retry policy */
enum { TG__PICK_NONE = -1, TG__PICK_OVERLOADED = -2 };
/* The server for the next try (not yet taken): an index, TG__PICK_NONE
 * (no usable server) or TG__PICK_OVERLOADED (circuit breaker open). */
int tg__ex_pick(tg_exchange_t *ex);
/* Binds the try to server i (after ex->tries++): active and request counts. */
void tg__ex_take_server(tg_exchange_t *ex, int i);
/* Marks the try as waiting for a new connection (breaker max_pending), or not. */
void tg__ex_set_pending(tg_exchange_t *ex, bool pending);
/* The try's outcome for outlier detection (failed: connect failure, reset,
 * timeout or 5xx); a success is recorded once, a failure once. */
void tg__ex_server_outcome(tg_exchange_t *ex, bool failed);
/* Ends the try's hold on its server (idempotent). */
void tg__ex_server_release(tg_exchange_t *ex);
/* Whether a failed try may be retried (TG_RETRY_* cause); when true the retry
 * is counted in the budget and the request is reset to be sent again. */
bool tg__ex_may_retry(tg_exchange_t *ex, uint32_t cause);
/* Resets the request's send state for a new connection (nothing of the body sent). */
void tg__ex_reset_for_retry(tg_exchange_t *ex);
/* The TG_RETRY_* cause of a connection error. */
uint32_t tg__ex_failure_cause(int err, bool connecting);
/* A final response status arrived: records the outcome; true when the
 * answer must be dropped and the request retried (502/503/504 per retries.on). */
bool tg__ex_retry_status(tg_exchange_t *ex, int status);

/* exchange_tunnel.c */
/* Marks a WebSocket handshake on a websocket route and adds the upgrade
 * fields for the upstream. 0, -1 on OOM, or 1: answered already (501 to an
 * HTTP/2 extended CONNECT on a route without `websocket: true`). */
int tg__ex_tunnel_setup(tg_exchange_t *ex);
/* Relays the upstream's 101 (as 101, or 200 to an HTTP/2 client). 0 or -1. */
int tg__ex_tunnel_head(tg_exchange_t *ex, const tg_response_t *resp);

/* exchange_grpc_web.c: all no-ops unless the request is gRPC-Web. */
/* Recognises a gRPC-Web request on a grpc_web route; sets the upstream
 * content type. 0, or -1 on OOM. */
int tg__ex_grpc_web_setup(tg_exchange_t *ex);
/* gRPC-Web: checks the framing of request bytes (decoding them first in
 * text mode) and forwards them, returning how many were taken; SIZE_MAX for
 * other requests (the caller goes on as usual). */
size_t tg__ex_grpc_web_request(tg_exchange_t *ex, const char *p, size_t n);
/* The downstream delivered the whole body: true when it ended inside a
 * base64 group or a message frame (then answered, ex may be gone). */
bool tg__ex_grpc_web_request_end(tg_exchange_t *ex);
/* Gives the response head the client's content type, and a streamed body. */
void tg__ex_grpc_web_head(tg_exchange_t *ex, tg_response_t *out);
/* Text mode: encodes and forwards response bytes (SIZE_MAX otherwise). */
size_t tg__ex_grpc_web_body(tg_exchange_t *ex, const char *p, size_t n);
/* Writes the trailers as the trailer frame and clears them. */
void tg__ex_grpc_web_end(tg_exchange_t *ex, const tg_header_t **trailers, size_t *n);

/* exchange_grpc.c */
bool tg__ex_is_grpc_route(const tg_exchange_t *ex);
/* On a gRPC route, answers an error as HTTP 200 + grpc-status (true);
 * elsewhere returns false and the caller answers as usual. */
bool tg__ex_grpc_error(tg_exchange_t *ex, int status, const char *word, const tg_header_t *extra,
                       size_t nextra);
/* The request's grpc-timeout in ms (0 = none). */
uint64_t tg__ex_grpc_deadline_ms(const tg_exchange_t *ex);
/* The upstream deadline for this try in ms: grpc-timeout counted from the
 * first try (remembered in ex->grpc_deadline_at); 0 = none. */
uint64_t tg__ex_grpc_deadline_left(tg_exchange_t *ex);
/* After the answer's head went out on a gRPC route: ends it with trailers
 * grpc-status `code` and grpc-message `msg` (cancelling the upstream stream)
 * when the client can read them (HTTP/2, or gRPC-Web's trailer frame).
 * true: done (ex may be gone); false: not possible, the caller cuts. */
bool tg__ex_grpc_end_status(tg_exchange_t *ex, int code, const char *msg);
/* An upstream timeout after the head: tg__ex_grpc_end_status with 4
 * DEADLINE_EXCEEDED, "deadline exceeded" when grpc-timeout's bound passed. */
bool tg__ex_grpc_timed_out(tg_exchange_t *ex);

/* exchange_respond.c */
/* Answers with a JSON error {"error":word,"status":N,"request_id":...}. */
void tg__ex_respond_error(tg_exchange_t *ex, int status, const char *word);
/* Answers with explicit headers and body (copied by the codec/arena). */
void tg__ex_respond(tg_exchange_t *ex, int status, const tg_header_t *extra, size_t nextra,
                    const char *body, size_t body_len, const tg_header_ops_cfg_t *ops);
/* Answers a route's `respond:`. */
void tg__ex_respond_direct(tg_exchange_t *ex);
/* Logs and frees the exchange, then tells the downstream (last action). */
void tg__ex_finish(tg_exchange_t *ex, bool ok);

/* exchange.c: the route is chosen (or NULL: 404); limits, then filters. */
void tg__ex_routed(tg_exchange_t *ex);
/* exchange.c: after the request filters: a direct answer, or the upstream. */
void tg__ex_proceed(tg_exchange_t *ex);

/* exchange_body.c: buffering the request body for match.json and for
 * filters that want the whole body; then replaying it upstream. */
/* The route has JSON matchers: read the body, then match again from it.
 * false: the body is too large to look into (the caller matches on). */
bool tg__ex_body_route(tg_exchange_t *ex);
/* After on_request: true when a filter that ran wants the body (the body
 * step then runs the body filters and proceeds), false to proceed now. */
bool tg__ex_body_filters(tg_exchange_t *ex);
bool tg__ex_body_collecting(const tg_exchange_t *ex);
size_t tg__ex_body_collect(tg_exchange_t *ex, const char *p, size_t n);
/* The downstream delivered the whole body while collecting. */
void tg__ex_body_end(tg_exchange_t *ex);
void tg__ex_body_complete(tg_exchange_t *ex);
/* A body filter's WAIT ended with CONTINUE: true when handled here. */
bool tg__ex_body_resume(tg_exchange_t *ex);
void tg__ex_body_replay(tg_exchange_t *ex);
bool tg__ex_body_replaying(const tg_exchange_t *ex);
/* Feeds the buffered body to the upstream side (the source's resume). */
void tg__ex_body_pump(tg_exchange_t *ex);
/* Frees the buffer (tg__ex_finish). */
void tg__ex_body_free(tg_exchange_t *ex);

/* exchange_cache_hooks.c (filter_api.h tg_ex_subst_t). */
/* A final upstream head: true when a filter claimed it (send nothing; the
 * body is discarded; call tg__ex_subst_respond after the upstream's end). */
bool tg__ex_subst_head(tg_exchange_t *ex, const tg_response_t *resp);
/* Answers a claimed exchange (the upstream connection is already gone). */
void tg__ex_subst_respond(tg_exchange_t *ex);
/* An upstream failure about to be answered 502/503/504: true when a filter
 * answered instead. */
bool tg__ex_subst_error(tg_exchange_t *ex, int err);
/* Calls the borrowed body's release (once). */
void tg__ex_release_borrowed(tg_exchange_t *ex);

#endif
