/* gRPC in the exchange: errors the gateway makes on gRPC routes become gRPC
 * errors (HTTP 200 + grpc-status, "trailers-only"), grpc-timeout becomes
 * the upstream deadline, and a timeout after the answer's head ends the
 * answer with grpc-status 4 in its trailers instead of a reset.
 * gRPC-Web framing lives in exchange_grpc_web.c. */
#include "proxy/exchange_int.h"

#include <stdio.h>
#include <string.h>

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum {
    GRPC_UNKNOWN = 2, GRPC_INVALID_ARGUMENT = 3, GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_PERMISSION_DENIED = 7, GRPC_RESOURCE_EXHAUSTED = 8, GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13, GRPC_UNAVAILABLE = 14, GRPC_UNAUTHENTICATED = 16,
};

bool tg__ex_is_grpc_route(const tg_exchange_t *ex)
{
    return ex->route && ex->route->upstream && ex->route->upstream->protocol == TG_PROTO_GRPC;
}

/* The contract's mapping (shared/spec/config.md, "gRPC routes"), completed
 * for the statuses it does not name. */
static int grpc_code(int status)
{
    switch (status) {
    case 400: case 415: return GRPC_INVALID_ARGUMENT;
    case 401: return GRPC_UNAUTHENTICATED;
    case 403: return GRPC_PERMISSION_DENIED;
    case 404: case 405: case 501: return GRPC_UNIMPLEMENTED;
    case 408: case 504: return GRPC_DEADLINE_EXCEEDED;
    case 413: case 414: case 429: case 431: return GRPC_RESOURCE_EXHAUSTED;
    case 500: return GRPC_INTERNAL;
    case 502: case 503: return GRPC_UNAVAILABLE;
    default: return GRPC_UNKNOWN;
    }
}

/* The request's gRPC content type (application/grpc, +proto, grpc-web...),
 * or application/grpc when the client sent none that fits. */
static tg_str_t grpc_content_type(const tg_exchange_t *ex)
{
    const tg_header_t *h = tg_headers_find(ex->req.headers, ex->req.nheaders, "content-type");
    if (h && tg_str_has_prefix(h->value, TG_STR_LIT("application/grpc")))
        return h->value;
    return TG_STR_LIT("application/grpc");
}

/* Sends head + (empty body) + trailers, like tg__ex_respond does for
 * ordinary answers. */
static void answer(tg_exchange_t *ex, tg_header_t *h, size_t n, size_t cap, const tg_header_t *t,
                   size_t nt)
{
    ex->status = 200;
    ex->resp_h = h;
    ex->resp_n = n;
    ex->resp_cap = cap;
    if (ex->filter_ran && ex->route)
        tg__ex_filters_response_head(ex, 200);
    tg_response_t resp = { .status = 200, .reason = TG_STR_LIT("OK"), .version_major = 1,
                           .version_minor = 1, .headers = ex->resp_h, .nheaders = ex->resp_n,
                           .body = TG_BODY_STREAM, .keep_alive = !ex->close_after };
    if (ex->ops->response_head(ex->ctx, ex, &resp) < 0) {
        tg__ex_finish(ex, false);
        return;
    }
    ex->resp_head_sent = true;
    ex->resp_done = true;
    tg__ex_grpc_web_end(ex, &t, &nt);
    ex->ops->response_end(ex->ctx, ex, t, nt);
    int r = ex->ops->flush(ex->ctx);
    if (r == 1) {
        ex->down_pending = true;
        return;
    }
    if (r == 0) /* on failure the codec aborts us from its own stack */
        tg__ex_finish(ex, !ex->close_after);
}

bool tg__ex_grpc_error(tg_exchange_t *ex, int status, const char *word, const tg_header_t *extra,
                       size_t nextra)
{
    if (status < 400 || !tg__ex_is_grpc_route(ex) || ex->ops == NULL || ex->resp_head_sent)
        return false;
    size_t cap = nextra + 4 + 16; /* + filters' edits */
    tg_header_t *h = tg_arena_alloc(&ex->arena, cap * sizeof *h);
    tg_header_t *t = tg_arena_alloc(&ex->arena, 2 * sizeof *t);
    char *code = tg_arena_printf(&ex->arena, "%d", grpc_code(status));
    if (h == NULL || t == NULL || code == NULL)
        return false; /* the JSON answer still goes out */
    /* The word is [a-z_]: no percent-encoding needed (gRPC HTTP/2 spec). */
    t[0] = (tg_header_t){ TG_STR_LIT("grpc-status"), tg_str_c(code) };
    t[1] = (tg_header_t){ TG_STR_LIT("grpc-message"), tg_str_c(word) };
    size_t n = 0;
    h[n++] = (tg_header_t){ TG_STR_LIT("Content-Type"), grpc_content_type(ex) };
    /* The status in the head too: an HTTP/1.1 client that reads no
     * trailers still sees it (gRPC's "trailers-only" form). */
    h[n++] = t[0];
    h[n++] = t[1];
    h[n++] = (tg_header_t){ TG_STR_LIT("X-Request-Id"), tg_str(ex->request_id, ex->rid_len) };
    for (size_t i = 0; i < nextra; i++)
        if (!tg_str_ieq_c(extra[i].name, "content-type"))
            h[n++] = extra[i];
    answer(ex, h, n, cap, t, 2);
    return true;
}

/* grpc-timeout: 1 to 8 digits and a unit (H M S m u n). Returns the bound
 * in milliseconds (rounded up, at least 1), or 0 when absent or invalid. */
uint64_t tg__ex_grpc_deadline_ms(const tg_exchange_t *ex)
{
    const tg_header_t *h = tg_headers_find(ex->req.headers, ex->req.nheaders, "grpc-timeout");
    if (h == NULL || h->value.len < 2 || h->value.len > 9)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i + 1 < h->value.len; i++) {
        char c = h->value.p[i];
        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (uint64_t)(c - '0');
    }
    uint64_t ms;
    switch (h->value.p[h->value.len - 1]) {
    case 'H': ms = v * 3600000; break;
    case 'M': ms = v * 60000; break;
    case 'S': ms = v * 1000; break;
    case 'm': ms = v; break;
    case 'u': ms = (v + 999) / 1000; break;
    case 'n': ms = (v + 999999) / 1000000; break;
    default: return 0;
    }
    return ms ? ms : 1;
}

uint64_t tg__ex_grpc_deadline_left(tg_exchange_t *ex)
{
    if (!tg__ex_is_grpc_route(ex))
        return 0;
    uint64_t now = uv_now(&ex->w->loop);
    if (ex->grpc_deadline_at == 0) {
        uint64_t ms = tg__ex_grpc_deadline_ms(ex);
        if (ms == 0)
            return 0;
        ex->grpc_deadline_at = now + ms;
    }
    /* A retry gets what is left; one already late fails at once (1 ms). */
    return ex->grpc_deadline_at > now ? ex->grpc_deadline_at - now : 1;
}

bool tg__ex_grpc_end_status(tg_exchange_t *ex, int code, const char *msg)
{
    /* Trailers reach an HTTP/2 client, or a gRPC-Web one in the body; an
     * HTTP/1.1 native gRPC client may not read them: cut instead. A
     * Content-Length answer cannot end early. */
    if (!tg__ex_is_grpc_route(ex) || ex->ops == NULL || !ex->resp_head_sent || ex->resp_done ||
        ex->head_req || (ex->req.version_major != 2 && ex->gw == NULL) ||
        tg_headers_find(ex->resp_h, ex->resp_n, "content-length") != NULL)
        return false;
    /* Body bytes still queued for a slow client point into the upstream
     * stream's buffer, which goes with it: the codec copies them (HTTP/2), or
     * the stream is cut (HTTP/1.1 writes already hold them). */
    if (ex->down_pending && (ex->ops->own_body == NULL || ex->ops->own_body(ex->ctx) < 0))
        return false;
    tg_header_t *t = tg_arena_alloc(&ex->arena, 2 * sizeof *t);
    char *c = tg_arena_printf(&ex->arena, "%d", code);
    if (t == NULL || c == NULL)
        return false;
    if (ex->uc) { /* RST_STREAM CANCEL: nobody reads the rest */
        tg_upconn_abort(ex->uc);
        ex->uc = NULL;
        tg__ex_server_release(ex);
    }
    /* grpc-message is percent-encoded: msg is printable ASCII without '%'. */
    t[0] = (tg_header_t){ TG_STR_LIT("grpc-status"), tg_str_c(c) };
    t[1] = (tg_header_t){ TG_STR_LIT("grpc-message"), tg_str_c(msg) };
    const tg_header_t *tr = t;
    size_t nt = 2;
    ex->resp_done = true;
    tg__ex_grpc_web_end(ex, &tr, &nt); /* gRPC-Web: the trailer frame */
    ex->ops->response_end(ex->ctx, ex, tr, nt);
    int r = ex->ops->flush(ex->ctx);
    if (r == 1) {
        ex->down_pending = true; /* tg_exchange_downstream_drained finishes */
        return true;
    }
    if (r == 0) /* on failure the codec aborts us from its own stack */
        tg__ex_finish(ex, !ex->close_after);
    return true;
}

bool tg__ex_grpc_timed_out(tg_exchange_t *ex)
{
    bool deadline = ex->grpc_deadline_at && uv_now(&ex->w->loop) >= ex->grpc_deadline_at;
    return tg__ex_grpc_end_status(ex, GRPC_DEADLINE_EXCEEDED,
                                  deadline ? "deadline exceeded" : "upstream_timeout");
}
