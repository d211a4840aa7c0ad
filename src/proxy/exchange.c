#include "proxy/exchange_int.h"
#include "proxy/exchange_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "http/h1.h"
#include "http/path.h"
#include "util/log.h"

static void connect_upstream(tg_exchange_t *ex);
static const tg_upstream_events_t up_events;

tg_arena_t *tg_exchange_arena(tg_exchange_t *ex) { return &ex->arena; }

static tg_str_t header_value(const tg_request_t *req, const char *name)
{
    const tg_header_t *h = tg_headers_find(req->headers, req->nheaders, name);
    return h ? h->value : TG_STR_NULL;
}

/* Copies what the exchange keeps of the request; the codec's slices die with
 * the call that delivered them. */
static int capture_request(tg_exchange_t *ex, const tg_downstream_info_t *info, const tg_request_t *in)
{
    if (tg__ex_copy_request(ex, in) < 0)
        return -1;
    const tg_request_t *req = &ex->req;
    ex->method = req->method;
    ex->target = req->target;
    ex->authority = req->authority;
    ex->query = req->query;
    ex->user_agent = header_value(req, "user-agent");
    ex->referer = header_value(req, "referer");
    ex->minor = req->version_minor;
    ex->head_req = tg_str_eq(req->method, TG_STR_LIT("HEAD"));
    ex->expect_continue = req->expect_continue && req->version_minor >= 1;
    ex->req_body = req->body;
    ex->req_cl = req->content_length;
    ex->req_done = req->body == TG_BODY_NONE || (req->body == TG_BODY_LENGTH && req->content_length == 0);
    ex->bytes_in = info->head_bytes;
    ex->tls = info->tls;
    if (info->client_cert_subject && info->client_cert_fingerprint) {
        ex->cert_subject = tg_arena_strdup(&ex->arena, info->client_cert_subject);
        ex->cert_fingerprint = tg_arena_strdup(&ex->arena, info->client_cert_fingerprint);
    }
    char hostbuf[256];
    int hl = tg_host_normalize(req->authority, hostbuf, sizeof hostbuf);
    ex->host = hl > 0 ? tg_arena_str_dup(&ex->arena, tg_str(hostbuf, (size_t)hl)) : TG_STR_LIT("");
    tg__ex_request_id(ex, req);
    tg__ex_client_ip(ex, info->peer, req);
    return ex->host.p ? 0 : -1;
}

static int normalize_path(tg_exchange_t *ex, const tg_request_t *req)
{
    if (req->path.len == 0 || req->path.p[0] != '/')
        return req->path.len == 0 && tg_str_eq(req->target, TG_STR_LIT("*")) ? 1 : -1;
    char *out = tg_arena_alloc(&ex->arena, req->path.len + 1);
    size_t n = 0;
    if (out == NULL || tg_path_normalize(req->path.p, req->path.len, out, req->path.len + 1, &n) != TG_PATH_OK)
        return -1;
    ex->path = tg_str(out, n);
    return 0;
}

tg_exchange_t *tg_exchange_start(tg_worker_t *w, const tg_downstream_ops_t *ops, void *ctx,
                                 const tg_downstream_info_t *info, const tg_request_t *req)
{
    tg_exchange_t *ex = tg__ex_alloc(w);
    if (ex == NULL)
        return NULL;
    ex->w = w;
    ex->gen = tg_worker_gen_hold(w); /* kept across a reload until the end */
    ex->ops = ops;
    ex->ctx = ctx;
    ex->t0 = uv_hrtime();
    ex->up_ms = -1;
    w->requests++;
    if (capture_request(ex, info, req) < 0) {
        tg__ex_respond_error(ex, 503, "out_of_memory");
        return ex;
    }
    int pr = normalize_path(ex, req);
    if (pr != 0) {
        /* "OPTIONS *" has no path to route; everything else must be a clean path. */
        tg__ex_respond_error(ex, 400, pr > 0 ? "no_route" : "bad_path");
        return ex;
    }
    tg_route_input_t in = { .host = ex->host, .method = req->method, .path = ex->path,
                            .query = req->query, .headers = req->headers, .nheaders = req->nheaders };
    ex->route = tg_router_match(ex->gen->router, &in);
    while (ex->route && ex->route->match.njson) {
        /* Content-based routing: the body decides (exchange_body.c). */
        if (tg__ex_body_route(ex))
            return ex;
        in.from = (uint32_t)ex->route->index + 1; /* over its body limit: its JSON matchers fail */
        ex->route = tg_router_match(ex->gen->router, &in);
    }
    tg__ex_routed(ex);
    return ex;
}

void tg__ex_routed(tg_exchange_t *ex)
{
    const tg_request_t *req = &ex->req;
    if (ex->route == NULL) {
        tg__ex_respond_error(ex, 404, "no_route");
        return;
    }
    const tg_config_t *cfg = ex->gen->cfg;
    ex->max_body = ex->route->max_body_bytes ? ex->route->max_body_bytes : cfg->server.limits.max_body_bytes;
    if (req->body == TG_BODY_LENGTH && req->content_length > ex->max_body) {
        tg__ex_respond_error(ex, 413, "body_too_large");
        return;
    }
    ex->filter_slots = tg_arena_calloc(&ex->arena, (tg_nfilters + 1) * sizeof(void *));
    ex->filter_ran = tg_arena_calloc(&ex->arena, tg_nfilters + 1);
    if (ex->filter_slots == NULL || ex->filter_ran == NULL) {
        tg__ex_respond_error(ex, 503, "out_of_memory");
        return;
    }
    ex->view = (tg_ex_request_t){ .method = ex->method, .target = ex->target, .path = ex->path,
                                  .host = ex->host, .authority = ex->authority, .query = ex->query,
                                  .headers = ex->req.headers, .nheaders = ex->req.nheaders,
                                  .client_ip = ex->client_ip,
                                  .client_addr = (struct sockaddr *)&ex->client_addr,
                                  .route = ex->route, .cfg = cfg, .tls = ex->tls,
                                  .client_cert_subject = ex->cert_subject,
                                  .client_cert_fingerprint = ex->cert_fingerprint };
    tg__ex_run_filters(ex);
}

void tg__ex_proceed(tg_exchange_t *ex)
{
    if (ex->route->has_respond) {
        tg__ex_respond_direct(ex);
        return;
    }
    const tg_upstream_cfg_t *ucfg = ex->route->upstream;
    ex->up_index = ucfg->index;
    ex->up = &ex->gen->ups.v[ucfg->index];
    ex->response_timeout_ms = ex->route->response_timeout_ms ? ex->route->response_timeout_ms
                                                             : ucfg->response_timeout_ms;
    uint32_t attempts = ex->route->has_retries ? ex->route->retry_attempts : ucfg->retry_attempts;
    ex->max_tries = 1 + attempts;
    ex->tried = tg_arena_calloc(&ex->arena, ex->up->nservers ? ex->up->nservers : 1);
    int tun = ex->tried ? tg__ex_tunnel_setup(ex) : -1;
    if (tun > 0)
        return; /* answered: an HTTP/2 extended CONNECT this route does not take */
    if (tun < 0 || tg__ex_grpc_web_setup(ex) < 0 || tg__ex_build_upstream_head(ex) < 0) {
        tg__ex_respond_error(ex, 503, "out_of_memory");
        return;
    }
    connect_upstream(ex);
}

void tg__ex_run_filters(tg_exchange_t *ex)
{
    size_t route = ex->route->index;
    for (; ex->filter_idx < tg_nfilters; ex->filter_idx++) {
        const tg_filter_t *f = tg_filters[ex->filter_idx];
        void *state = tg_filter_state(&ex->gen->filters, route, ex->filter_idx);
        if (state == NULL || f->on_request == NULL)
            continue;
        ex->filter_ran[ex->filter_idx] = 1;
        tg_filter_ret_t r = f->on_request(ex, state);
        if (r == TG_FILTER_DONE)
            return;
        if (r == TG_FILTER_WAIT) {
            ex->filter_waiting = true;
            return;
        }
    }
    if (tg__ex_body_filters(ex))
        return; /* a filter wants the whole body first (exchange_body.c) */
    tg__ex_proceed(ex);
}

void tg_ex_filter_resume(tg_exchange_t *ex, tg_filter_ret_t r)
{
    ex->filter_waiting = false;
    if (r == TG_FILTER_DONE)
        return;
    if (tg__ex_body_resume(ex))
        return; /* it was a body filter that waited */
    ex->filter_idx++;
    tg__ex_run_filters(ex);
}

void tg__ex_filters_response_head(tg_exchange_t *ex, int status)
{
    for (size_t f = 0; f < tg_nfilters; f++)
        if (ex->filter_ran[f] && tg_filters[f]->on_response_head)
            tg_filters[f]->on_response_head(ex, tg_filter_state(&ex->gen->filters, ex->route->index, f), status);
}

void tg__ex_filters_response_body(tg_exchange_t *ex, const char *p, size_t n)
{
    for (size_t f = 0; f < tg_nfilters; f++)
        if (ex->filter_ran[f] && tg_filters[f]->on_response_body)
            tg_filters[f]->on_response_body(ex, tg_filter_state(&ex->gen->filters, ex->route->index, f), p, n);
}

void tg__ex_filters_response_complete(tg_exchange_t *ex)
{
    for (size_t f = 0; f < tg_nfilters; f++)
        if (ex->filter_ran[f] && tg_filters[f]->on_response_complete)
            tg_filters[f]->on_response_complete(ex, tg_filter_state(&ex->gen->filters, ex->route->index, f));
}

void tg__ex_filters_end(tg_exchange_t *ex, bool complete)
{
    if (ex->filter_ran == NULL || ex->route == NULL)
        return;
    for (size_t f = 0; f < tg_nfilters; f++) {
        if (!ex->filter_ran[f])
            continue;
        ex->filter_ran[f] = 0;
        if (tg_filters[f]->on_end)
            tg_filters[f]->on_end(ex, tg_filter_state(&ex->gen->filters, ex->route->index, f), complete);
    }
}

static void drop_server(tg_exchange_t *ex, bool failed)
{
    if (failed)
        tg__ex_server_outcome(ex, true);
    tg__ex_server_release(ex);
}

static void upstream_failed(tg_exchange_t *ex, int err, bool got_bytes)
{
    bool was_reused = ex->uc_reused;
    bool connecting = !ex->uc_ready;
    int srv_index = ex->srv ? (int)ex->srv->index : -1;
    ex->uc = NULL;
    ex->uc_ready = false;
    ex->up_pending = false;
    /* A pooled connection that the server closed as we reused it: the request
     * never reached the application, so it is safe to send it again on a new
     * connection (nginx and Envoy do the same); not the server's fault. */
    bool stale_pooled = was_reused && !ex->body_started && !got_bytes && err != UV_ETIMEDOUT;
    if (!stale_pooled)
        tg__ex_count_try(ex, 0, err, 0);
    drop_server(ex, !stale_pooled);
    if (ex->resp_head_sent) {
        if (err == UV_ETIMEDOUT && tg__ex_grpc_timed_out(ex))
            return; /* gRPC: ended with grpc-status 4 in trailers */
        tg__ex_finish(ex, false); /* a half-sent response can only be cut */
        return;
    }
    if (stale_pooled) {
        if (srv_index >= 0)
            ex->tried[srv_index] = 0;
        ex->tries--; /* does not use up a retry */
        tg__ex_reset_for_retry(ex);
        connect_upstream(ex);
        return;
    }
    /* Other failures retry per retries: (exchange_retry.c), on another server
     * when there is one. */
    if (tg__ex_may_retry(ex, tg__ex_failure_cause(err, connecting))) {
        connect_upstream(ex);
        return;
    }
    if (tg__ex_subst_error(ex, err))
        return; /* a filter answered (stale-if-error) */
    if (err == UV_ETIMEDOUT)
        tg__ex_respond_error(ex, 504, "upstream_timeout");
    else
        tg__ex_respond_error(ex, 502, "bad_gateway");
}

static void queue_request_end(tg_exchange_t *ex);

/* The request body's source may go on: the downstream codec, or the buffered
 * body being replayed (exchange_body.c). */
static void resume_source(tg_exchange_t *ex)
{
    if (tg__ex_body_replaying(ex))
        tg__ex_body_pump(ex);
    else
        ex->ops->resume_request(ex->ctx);
}

/* Everything queued upstream so far is written: mark the request sent once its
 * end went out, answer an Expect: 100-continue, and let the client's body flow
 * again (last: it may deliver body right away). */
static void upstream_written(tg_exchange_t *ex)
{
    if (ex->req_end_queued && !ex->req_sent) {
        ex->req_sent = true;
        tg_upconn_request_sent(ex->uc);
    }
    if (ex->expect_continue && !ex->continue_sent && !ex->req_done) {
        ex->continue_sent = true;
        ex->ops->send_continue(ex->ctx);
    }
    if (ex->req_paused) {
        ex->req_paused = false;
        resume_source(ex);
    }
}

/* The upstream connection can take the request now. */
static void upstream_ready(tg_exchange_t *ex)
{
    tg__ex_set_pending(ex, false);
    ex->uc_ready = true;
    ex->t_up = uv_hrtime();
    ex->upreq.head_request = ex->head_req;
    ex->upreq.response_timeout_ms = ex->response_timeout_ms;
    ex->upreq.deadline_ms = tg__ex_grpc_deadline_left(ex);
    ex->upreq.arena = &ex->arena;
    if (tg_upconn_begin(ex->uc, &ex->upreq) < 0) {
        tg_upconn_abort(ex->uc);
        upstream_failed(ex, UV_ENOMEM, false);
        return;
    }
    if (ex->req_done)
        queue_request_end(ex);
    int r = tg_upconn_flush(ex->uc);
    if (r < 0) {
        tg_upconn_abort(ex->uc);
        upstream_failed(ex, r, false);
        return;
    }
    if (r == 1) {
        ex->up_pending = true;
        return;
    }
    upstream_written(ex);
}

static void connect_upstream(tg_exchange_t *ex)
{
    tg_worker_t *w = ex->w;
    int pick = tg__ex_pick(ex);
    if (pick < 0) {
        if (tg__ex_subst_error(ex, UV_ECONNREFUSED))
            return; /* a filter answered (stale-if-error) */
        if (pick == TG__PICK_OVERLOADED)
            tg__ex_respond_error(ex, 503, "upstream_overloaded");
        else if (ex->tries == 0)
            tg__ex_respond_error(ex, 503, "no_server_available");
        else
            tg__ex_respond_error(ex, 502, "bad_gateway");
        return;
    }
    ex->tried[pick] = 1;
    ex->tries++;
    tg__ex_take_server(ex, pick);
    int err = 0;
    bool reused = false;
    ex->uc = tg_upconn_acquire(w, ex->up_index, ex->up, ex->srv, &up_events, ex, &reused, &err);
    ex->uc_reused = reused;
    if (ex->uc == NULL) {
        upstream_failed(ex, err, false);
        return;
    }
    if (reused)
        upstream_ready(ex);
    else
        tg__ex_set_pending(ex, true); /* until connected (breaker max_pending) */
}

/* ---- request body, downstream → upstream ---- */

/* Flushes the request bytes queued on the upstream connection: FLUSH_DONE,
 * FLUSH_PENDING (a write is in flight; ev_drained follows) or FLUSH_FAILED —
 * then the exchange has answered, retried or been recycled, and the caller
 * must not touch it again. */
enum { FLUSH_FAILED = -1, FLUSH_PENDING = 0, FLUSH_DONE = 1 };

static int upstream_flush(tg_exchange_t *ex)
{
    int r = tg_upconn_flush(ex->uc);
    if (r == 1) {
        ex->up_pending = true;
        return FLUSH_PENDING;
    }
    if (r < 0) {
        tg_upconn_abort(ex->uc);
        upstream_failed(ex, r, false);
        return FLUSH_FAILED;
    }
    return FLUSH_DONE;
}

size_t tg_exchange_request_body(tg_exchange_t *ex, const char *p, size_t n)
{
    if (tg__ex_body_collecting(ex))
        return tg__ex_body_collect(ex, p, n);
    size_t gw = tg__ex_grpc_web_request(ex, p, n); /* gRPC-Web text: decoded first */
    if (gw != SIZE_MAX)
        return gw;
    if (!ex->uc_ready || ex->up_pending) {
        ex->req_paused = true;
        return 0;
    }
    if (ex->body_seen + n > ex->max_body && !ex->tunnel) { /* a tunnel has no body limit */
        if (!ex->resp_head_sent) {
            if (ex->uc) {
                tg_upconn_abort(ex->uc);
                ex->uc = NULL;
                drop_server(ex, false);
            }
            ex->close_after = true; /* the rest of the body is not worth reading */
            tg__ex_respond_error(ex, 413, "body_too_large");
        }
        return 0;
    }
    size_t taken = tg_upconn_body(ex->uc, p, n);
    if (taken == 0 && n > 0) {
        int f = upstream_flush(ex);
        if (f != FLUSH_DONE) {
            if (f == FLUSH_PENDING)
                ex->req_paused = true;
            return 0;
        }
        taken = tg_upconn_body(ex->uc, p, n);
    }
    ex->body_seen += taken;
    ex->bytes_in += taken;
    ex->body_started |= taken > 0;
    if (taken < n)
        ex->req_paused = true;
    return taken;
}

/* Queues the end of the request body (with the trailers kept in
 * ex->req_trailers); when the queue is full it stays owed, and the drain
 * queues it. */
static void queue_request_end(tg_exchange_t *ex)
{
    if (ex->req_end_queued || ex->uc == NULL)
        return;
    if (tg_upconn_end(ex->uc, ex->req_trailers, ex->nreq_trailers) == 0)
        ex->req_end_queued = true;
}

/* Copies the request trailers: a full upstream queue may delay their use. */
static void keep_trailers(tg_exchange_t *ex, const tg_header_t *trailers, size_t n)
{
    tg_header_t *t = n ? tg_arena_alloc(&ex->arena, n * sizeof *t) : NULL;
    if (t == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        t[i].name = tg_arena_str_dup(&ex->arena, trailers[i].name);
        t[i].value = tg_arena_str_dup(&ex->arena, trailers[i].value);
    }
    ex->req_trailers = t;
    ex->nreq_trailers = n;
}

void tg_exchange_request_end(tg_exchange_t *ex, const tg_header_t *trailers, size_t n)
{
    ex->req_done = true;
    if (tg__ex_body_collecting(ex)) {
        keep_trailers(ex, trailers, n); /* replayed after the buffered body */
        tg__ex_body_end(ex);
        return;
    }
    keep_trailers(ex, trailers, n);
    if (tg__ex_grpc_web_request_end(ex))
        return; /* gRPC-Web: the body ended mid-group or mid-frame (answered) */
    if (!ex->uc_ready)
        return; /* queued by upstream_ready */
    queue_request_end(ex);
    if (!ex->req_end_queued && upstream_flush(ex) == FLUSH_DONE)
        queue_request_end(ex);
}

int tg_exchange_request_flush(tg_exchange_t *ex)
{
    if (ex->uc == NULL || !ex->uc_ready)
        return 0;
    if (!ex->up_pending && upstream_flush(ex) == FLUSH_FAILED)
        return 0; /* the exchange answered, retried or is gone */
    if (ex->up_pending) {
        ex->req_paused = true; /* resume_request follows the drain */
        return 1;
    }
    if (ex->req_end_queued && !ex->req_sent) {
        ex->req_sent = true;
        tg_upconn_request_sent(ex->uc);
    }
    return 0;
}

/* ---- upstream events ---- */

static void ev_connected(void *ctx, int status)
{
    tg_exchange_t *ex = ctx;
    if (status < 0) {
        ex->uc = NULL;
        upstream_failed(ex, status, false);
        return;
    }
    upstream_ready(ex);
}

static int ev_head(void *ctx, const tg_response_t *resp)
{
    tg_exchange_t *ex = ctx;
    if (resp->status == 101 && ex->tunnel_req) {
        if (tg__ex_tunnel_head(ex, resp) == 0)
            return 0; /* exchange_tunnel.c: bytes both ways from here on */
        ex->uc = NULL;
        drop_server(ex, false);
        tg__ex_respond_error(ex, 502, "bad_gateway");
        return -1;
    }
    if (resp->status < 200) {
        /* 100 was answered by the gateway itself; other 1xx go to HTTP/1.1
         * and HTTP/2 clients (not to HTTP/1.0 ones). */
        if (resp->status == 100 || (ex->req.version_major == 1 && ex->minor == 0))
            return 0;
        tg_response_t out;
        if (tg__ex_response_headers(ex, resp, &out) == 0)
            ex->ops->response_head(ex->ctx, ex, &out);
        return 0; /* an informational head that cannot be relayed is dropped */
    }
    uint64_t now = uv_hrtime(); /* one clock read for the metric and the log */
    tg__ex_count_try(ex, resp->status, 0, now);
    if (tg__ex_retry_status(ex, resp->status)) {
        /* A retryable 502/503/504: dropped with its connection (refusing the
         * head closes it), the request goes to another server. */
        ex->uc = NULL;
        ex->uc_ready = false;
        ex->up_pending = false;
        drop_server(ex, false);
        connect_upstream(ex);
        return -1;
    }
    ex->up_status = resp->status;
    ex->status = resp->status;
    ex->up_ms = (double)(now - ex->t_up) / 1e6;
    if (tg__ex_subst_head(ex, resp))
        return 0; /* replaced (exchange_cache_hooks.c): answered after the end */
    tg_response_t out;
    int ok = tg__ex_response_headers(ex, resp, &out);
    if (ok == 0) {
        tg__ex_filters_response_head(ex, resp->status);
        out.headers = ex->resp_h;
        out.nheaders = ex->resp_n;
    }
    if (ok < 0 || ex->ops->response_head(ex->ctx, ex, &out) < 0) {
        /* Nothing was sent yet: answer 502 instead of cutting the stream. */
        ex->uc = NULL;
        drop_server(ex, false);
        tg__ex_respond_error(ex, 502, "bad_gateway");
        return -1;
    }
    ex->resp_head_sent = true;
    return 0;
}

static size_t ev_body(void *ctx, const char *p, size_t n)
{
    tg_exchange_t *ex = ctx;
    size_t taken = 0;
    if (ex->subst_claimed)
        return n; /* the body of a replaced answer is discarded */
    size_t gw = tg__ex_grpc_web_body(ex, p, n); /* gRPC-Web text: encoded */
    if (gw != SIZE_MAX)
        return gw;
    while (taken < n && !ex->down_pending) {
        size_t t = ex->ops->response_body(ex->ctx, p + taken, n - taken);
        taken += t;
        if (taken == n)
            break;
        int r = ex->ops->flush(ex->ctx);
        if (r == 1)
            ex->down_pending = true;
        else if (r < 0)
            break; /* the downstream is gone; it aborts us from its side */
    }
    ex->bytes_out += taken;
    if (taken)
        tg__ex_filters_response_body(ex, p, taken);
    if (taken < n)
        ex->up_paused = true;
    return taken;
}

/* Returns the upstream connection to its pool (or closes it). Only once the
 * downstream has written everything: queued body slices point into the
 * upstream connection's read buffer, which goes back to the worker's pool. */
static void release_upstream(tg_exchange_t *ex)
{
    if (ex->uc == NULL)
        return;
    tg_upconn_release(ex->uc, ex->req_sent);
    ex->uc = NULL;
    drop_server(ex, false);
}

static void ev_end(void *ctx, const tg_header_t *trailers, size_t n)
{
    tg_exchange_t *ex = ctx;
    if (ex->subst_claimed) {
        release_upstream(ex);
        tg__ex_subst_respond(ex);
        return;
    }
    ex->resp_done = true;
    /* The server's part is over: least_conn and the breakers count it free
     * before the client can see the answer, not after the last write (a
     * client's next request could otherwise still find it busy). The
     * connection itself is released after the flush: pending body slices
     * may point into its read buffer. */
    tg__ex_server_release(ex);
    tg__ex_filters_response_complete(ex); /* e.g. a cache entry: stored before it is seen */
    tg__ex_grpc_web_end(ex, &trailers, &n); /* gRPC-Web: trailers into the body */
    ex->ops->response_end(ex->ctx, ex, trailers, n);
    int r = ex->ops->flush(ex->ctx);
    if (r == 1) {
        ex->down_pending = true;
        return;
    }
    release_upstream(ex);
    if (r == 0)
        tg__ex_finish(ex, true);
}

static int ev_batch_done(void *ctx)
{
    tg_exchange_t *ex = ctx;
    if (ex->down_pending)
        return 1;
    int r = ex->ops->flush(ex->ctx);
    if (r == 1) {
        ex->down_pending = true;
        ex->up_paused = true;
        return 1;
    }
    return 0;
}

static void ev_error(void *ctx, int err, bool got_bytes)
{
    upstream_failed(ctx, err, got_bytes);
}

static void ev_drained(void *ctx)
{
    tg_exchange_t *ex = ctx;
    ex->up_pending = false;
    if (ex->req_done && !ex->req_end_queued) {
        queue_request_end(ex);
        if (upstream_flush(ex) != FLUSH_DONE)
            return;
    }
    upstream_written(ex);
}

static const tg_upstream_events_t up_events = {
    .connected = ev_connected,
    .head = ev_head,
    .body = ev_body,
    .end = ev_end,
    .batch_done = ev_batch_done,
    .error = ev_error,
    .drained = ev_drained,
};

/* ---- downstream events ---- */

void tg_exchange_downstream_drained(tg_exchange_t *ex, int status)
{
    ex->down_pending = false;
    if (status < 0)
        return; /* the codec aborts us */
    if (ex->resp_done) {
        release_upstream(ex);
        tg__ex_finish(ex, !ex->close_after);
        return;
    }
    if (ex->up_paused && ex->uc) {
        ex->up_paused = false;
        tg_upconn_resume(ex->uc);
    }
}

void tg_exchange_abort(tg_exchange_t *ex, int status)
{
    if (ex->uc) {
        tg_upconn_abort(ex->uc);
        ex->uc = NULL;
    }
    drop_server(ex, false);
    if (!ex->resp_head_sent || ex->status == 0)
        ex->status = status;
    ex->ops = NULL; /* no op may be called from here on */
    tg__ex_finish(ex, false);
}
