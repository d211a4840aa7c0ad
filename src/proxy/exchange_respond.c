/* Answers the gateway makes itself (errors, `respond:`), and the end of every
 * exchange: the access log line and the release of its memory. */
#include "proxy/exchange_int.h"
#include "proxy/exchange_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void tg__ex_respond(tg_exchange_t *ex, int status, const tg_header_t *extra, size_t nextra,
                    const char *body, size_t body_len, const tg_header_ops_cfg_t *ops)
{
    ex->status = status;
    if (ex->ops == NULL)
        return;
    size_t cap = nextra + 2 + (ops ? ops->nset + ops->nadd : 0) + 16; /* + filters' edits */
    tg_header_t *h = tg_arena_alloc(&ex->arena, cap * sizeof *h);
    if (h == NULL) {
        tg__ex_finish(ex, false);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < nextra; i++)
        h[n++] = extra[i];
    h[n++] = (tg_header_t){ TG_STR_LIT("X-Request-Id"), tg_str(ex->request_id, ex->rid_len) };
    if (ops) {
        for (size_t i = 0; i < ops->nremove; i++) {
            size_t o = 0;
            for (size_t j = 0; j < n; j++)
                if (!tg_str_ieq_c(h[j].name, ops->remove[i]))
                    h[o++] = h[j];
            n = o;
        }
        for (size_t i = 0; i < ops->nset; i++)
            h[n++] = (tg_header_t){ tg_str_c(ops->set[i].name), tg_str_c(ops->set[i].value) };
        for (size_t i = 0; i < ops->nadd; i++)
            h[n++] = (tg_header_t){ tg_str_c(ops->add[i].name), tg_str_c(ops->add[i].value) };
    }
    ex->resp_h = h;
    ex->resp_n = n;
    ex->resp_cap = cap;
    if (ex->filter_ran && ex->route)
        tg__ex_filters_response_head(ex, status);
    h = ex->resp_h;
    n = ex->resp_n;
    tg_response_t resp = { .status = status, .reason = tg_str_c(tg_http_reason(status)),
                           .version_major = 1, .version_minor = 1, .headers = h, .nheaders = n,
                           .body = TG_BODY_LENGTH, .content_length = body_len,
                           .keep_alive = !ex->close_after };
    if (ex->ops->response_head(ex->ctx, ex, &resp) < 0) {
        tg__ex_finish(ex, false);
        return;
    }
    ex->resp_head_sent = true;
    ex->resp_done = true;
    if (!ex->head_req && body_len) {
        size_t t = ex->ops->response_body(ex->ctx, body, body_len);
        ex->bytes_out += t;
    }
    ex->ops->response_end(ex->ctx, ex, NULL, 0);
    int r = ex->ops->flush(ex->ctx);
    if (r == 1) {
        ex->down_pending = true;
        return;
    }
    /* On failure the codec aborts us from its own stack; r == 0 ends here. */
    if (r == 0)
        tg__ex_finish(ex, !ex->close_after);
}

void tg__ex_respond_error(tg_exchange_t *ex, int status, const char *word)
{
    if (tg__ex_grpc_error(ex, status, word, NULL, 0))
        return; /* a gRPC route: HTTP 200 + grpc-status */
    char *body = tg_arena_printf(&ex->arena, "{\"error\":\"%s\",\"status\":%d,\"request_id\":\"%s\"}\n",
                                 word, status, ex->request_id);
    tg_header_t h[] = { { TG_STR_LIT("Content-Type"), TG_STR_LIT("application/json") },
                        { TG_STR_LIT("Cache-Control"), TG_STR_LIT("no-store") } };
    tg__ex_respond(ex, status, h, 2, body ? body : "", body ? strlen(body) : 0, NULL);
}

void tg__ex_respond_direct(tg_exchange_t *ex)
{
    const tg_respond_cfg_t *r = &ex->route->respond;
    tg_header_t *h = tg_arena_alloc(&ex->arena, (r->nheaders + 1) * sizeof *h);
    if (h == NULL) {
        tg__ex_respond_error(ex, 503, "out_of_memory");
        return;
    }
    size_t n = 0;
    bool has_type = false;
    for (size_t i = 0; i < r->nheaders; i++) {
        h[n++] = (tg_header_t){ tg_str_c(r->headers[i].name), tg_str_c(r->headers[i].value) };
        has_type |= tg_str_ieq_c(h[n - 1].name, "content-type");
    }
    if (!has_type && r->body_len)
        h[n++] = (tg_header_t){ TG_STR_LIT("Content-Type"), TG_STR_LIT("text/plain; charset=utf-8") };
    tg__ex_respond(ex, r->status, h, n, r->body ? r->body : "", r->body_len, &ex->route->response_headers);
}

static uint64_t now_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* `now` is the end (uv_hrtime). The wall-clock start is derived here, only
 * when a line is written, rather than read on every request. */
static void log_exchange(tg_exchange_t *ex, uint64_t now)
{
    if (!tg_alog_on(&ex->w->alog))
        return;
    tg_alog_entry_t e = {
        .time_ns = now_real_ns() - (now - ex->t0),
        .request_id = tg_str(ex->request_id, ex->rid_len),
        .client_ip = ex->client_ip,
        .method = ex->method,
        .host = ex->host,
        .path = ex->target,
        .minor_version = ex->minor,
        .status = ex->status,
        .bytes_in = ex->bytes_in,
        .bytes_out = ex->bytes_out,
        .duration_ms = (double)(now - ex->t0) / 1e6,
        .route = ex->route ? ex->route->name : NULL,
        .upstream_addr = ex->up_label,
        .upstream_status = ex->up_status,
        .upstream_ms = ex->up_ms,
        .user_agent = ex->user_agent,
        .referer = ex->referer,
    };
    tg_alog_write(&ex->w->alog, &e);
}

void tg__ex_finish(tg_exchange_t *ex, bool ok)
{
    if (ex->uc) {
        tg_upconn_abort(ex->uc);
        ex->uc = NULL;
    }
    tg__ex_server_release(ex);
    tg__ex_filters_end(ex, ok && ex->resp_done);
    tg__ex_release_borrowed(ex); /* the codec no longer reads a borrowed body */
    tg__ex_body_free(ex);
    uint64_t now = uv_hrtime();
    log_exchange(ex, now);
    tg__ex_count(ex, now);
    /* Last use of the generation (route names, filters): a reload may free it now. */
    tg_worker_gen_drop(ex->w, ex->gen);
    const tg_downstream_ops_t *ops = ex->ops;
    void *ctx = ex->ctx;
    tg__ex_recycle(ex);
    if (ops)
        ops->done(ctx, ok);
}
