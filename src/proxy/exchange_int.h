/* Internals of the exchange shared by its source files (proxy/ only). */
#ifndef TG_PROXY_EXCHANGE_INT_H
#define TG_PROXY_EXCHANGE_INT_H

#include "proxy/exchange.h"
#include "proxy/filter_api.h"
#include "upstream/h1_client.h"

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
    char *up_head;                 /* serialized request head for the upstream */
    size_t up_head_len;
    /* route and upstream */
    const tg_route_cfg_t *route;
    size_t up_index;
    tg_upstream_t *up;
    tg_upstream_server_t *srv;     /* counted in srv->active while set */
    uint8_t *tried;
    unsigned tries, max_tries;
    tg_h1c_t *uc;
    bool uc_reused, uc_ready, up_pending;
    const char *up_label;
    /* response */
    bool resp_head_sent, resp_done, down_pending, up_paused;
    bool close_after;              /* the downstream must close after this answer */
    int status, up_status;
    uint64_t bytes_in, bytes_out;
    uint64_t t0, t0_real, t_up;    /* ns: monotonic start, wall start, upstream start */
    double up_ms;
    uint64_t response_timeout_ms;
};

typedef struct tg_hdr_edit {
    const char *name;
    tg_str_t value;
    bool remove;
} tg_hdr_edit_t;

/* exchange.c */
/* Runs the request filters from ex->filter_idx on; then goes upstream. */
void tg__ex_run_filters(tg_exchange_t *ex);
/* Response hooks of the filters that ran. */
void tg__ex_filters_response_head(tg_exchange_t *ex, int status);
void tg__ex_filters_response_body(tg_exchange_t *ex, const char *p, size_t n);
/* Runs on_end of every filter that ran (once). */
void tg__ex_filters_end(tg_exchange_t *ex, bool complete);

/* exchange_headers.c */
int tg__ex_build_upstream_head(tg_exchange_t *ex);
int tg__ex_response_headers(tg_exchange_t *ex, const tg_response_t *in, tg_response_t *out);
void tg__ex_client_ip(tg_exchange_t *ex, const struct sockaddr *peer, const tg_request_t *req);
/* Copies the request head (and its headers) into the arena. */
int tg__ex_copy_request(tg_exchange_t *ex, const tg_request_t *in);
void tg__ex_request_id(tg_exchange_t *ex, const tg_request_t *req);

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

#endif
