/* Request body buffering, for the routes that need the whole body before
 * going upstream: content-based routing (match.json) and filters that
 * declare wants_body (validate.json_schema). Other routes stream.
 *
 * Collecting: the downstream codec's body bytes are copied into one malloc'd
 * buffer, bounded by the route's max_body_bytes (413 beyond, as streaming
 * does). When the body is complete, the router resumes (match.json) or the
 * filters' on_request_body run in phase order. Replaying: the buffered body
 * then goes upstream through the ordinary body path, with the exchange
 * itself as the source: the request is sent with Content-Length (a chunked
 * request becomes a Content-Length one), unless it ended with trailers:
 * those keep chunked framing (HTTP/1.1) or go as a trailer HEADERS frame
 * (HTTP/2), since a Content-Length message cannot carry them (RFC 9112
 * §7.1.2) and trailers such as a body checksum or grpc-status must reach
 * the backend. */
#include "proxy/exchange_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef enum body_next { NEXT_ROUTE = 1, NEXT_FILTERS } body_next_t;

struct tg__ex_body {
    char *buf;                 /* malloc'd, freed by tg__ex_body_free */
    size_t len, cap;
    body_next_t next;
    bool collecting, complete, replaying, end_sent;
    size_t sent;               /* replayed bytes taken by the upstream side */
    size_t filter;             /* next filter index for on_request_body */
    bool *alive;               /* cleared when the exchange is freed mid-pump */
};

static struct tg__ex_body *body_of(tg_exchange_t *ex)
{
    if (ex->rbody == NULL)
        ex->rbody = tg_arena_calloc(&ex->arena, sizeof *ex->rbody);
    return ex->rbody;
}

/* Starts collecting (sends 100 Continue when the client waits for it).
 * The body may already be complete (none, or Content-Length: 0). */
static void start(tg_exchange_t *ex, body_next_t next)
{
    struct tg__ex_body *b = body_of(ex);
    if (b == NULL) {
        tg__ex_respond_error(ex, 503, "out_of_memory");
        return;
    }
    b->next = next;
    b->collecting = true;
    if (ex->req_done) {
        b->collecting = false;
        b->complete = true;
        tg__ex_body_complete(ex);
        return;
    }
    if (ex->expect_continue && !ex->continue_sent) {
        ex->continue_sent = true;
        ex->ops->send_continue(ex->ctx);
    }
    if (ex->req_paused) {
        ex->req_paused = false;
        ex->ops->resume_request(ex->ctx); /* last: it may deliver the body at once */
    }
}

static uint64_t route_limit(const tg_exchange_t *ex, const tg_route_cfg_t *r)
{
    return r->max_body_bytes ? r->max_body_bytes : ex->gen->cfg->server.limits.max_body_bytes;
}

bool tg__ex_body_route(tg_exchange_t *ex)
{
    uint64_t limit = route_limit(ex, ex->route);
    if (ex->req.body == TG_BODY_LENGTH && ex->req.content_length > limit)
        return false; /* too big to look into: the JSON matchers fail */
    ex->max_body = limit;
    start(ex, NEXT_ROUTE);
    return true;
}

bool tg__ex_body_filters(tg_exchange_t *ex)
{
    bool want = false;
    for (size_t f = 0; f < tg_nfilters && !want; f++) {
        void *st = tg_filter_state(&ex->gen->filters, ex->route->index, f);
        want = ex->filter_ran[f] && st && tg_filters[f]->on_request_body && tg_filters[f]->wants_body &&
               tg_filters[f]->wants_body(st);
    }
    struct tg__ex_body *b = ex->rbody;
    if (!want) {
        if (b == NULL || !b->complete)
            return false; /* streams */
        tg__ex_body_replay(ex); /* read for routing: it goes upstream from the buffer */
        return true;
    }
    b = body_of(ex);
    if (b && b->complete) { /* read already for routing */
        b->next = NEXT_FILTERS;
        tg__ex_body_complete(ex);
    } else {
        start(ex, NEXT_FILTERS);
    }
    return true;
}

size_t tg__ex_body_collect(tg_exchange_t *ex, const char *p, size_t n)
{
    struct tg__ex_body *b = ex->rbody;
    if (b->len + n > ex->max_body) {
        ex->close_after = true; /* the rest of the body is not worth reading */
        tg__ex_respond_error(ex, 413, "body_too_large");
        return 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > ex->max_body)
            cap = ex->max_body;
        char *nb = realloc(b->buf, cap);
        if (nb == NULL) {
            ex->close_after = true;
            tg__ex_respond_error(ex, 503, "out_of_memory");
            return 0;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    ex->bytes_in += n;
    return n;
}

bool tg__ex_body_collecting(const tg_exchange_t *ex) { return ex->rbody && ex->rbody->collecting; }

void tg__ex_body_end(tg_exchange_t *ex)
{
    ex->rbody->collecting = false;
    ex->rbody->complete = true;
    tg__ex_body_complete(ex);
}

/* Matching again from the candidate on, with the body's JSON. */
static void resume_routing(tg_exchange_t *ex)
{
    struct tg__ex_body *b = ex->rbody;
    json_t *doc = b->len ? json_loadb(b->buf, b->len, JSON_DECODE_ANY, NULL) : NULL;
    tg_route_input_t in = { .host = ex->host, .method = ex->method, .path = ex->path, .query = ex->query,
                            .headers = ex->req.headers, .nheaders = ex->req.nheaders,
                            .body_read = true, .json = doc, .from = (uint32_t)ex->route->index };
    /* A JSON matcher fails on a body over its route's limit (as it does when
     * Content-Length announces one): the next routes are tried. */
    while ((ex->route = tg_router_match(ex->gen->router, &in)) != NULL && ex->route->match.njson &&
           b->len > route_limit(ex, ex->route))
        in.from = (uint32_t)ex->route->index + 1;
    json_decref(doc);
    if (ex->route && b->len > route_limit(ex, ex->route)) { /* read for a larger limit */
        tg__ex_respond_error(ex, 413, "body_too_large");
        return;
    }
    tg__ex_routed(ex);
}

/* Runs on_request_body of the filters that want it, from b->filter on. */
static void run_body_filters(tg_exchange_t *ex)
{
    struct tg__ex_body *b = ex->rbody;
    for (; b->filter < tg_nfilters; b->filter++) {
        const tg_filter_t *f = tg_filters[b->filter];
        void *st = tg_filter_state(&ex->gen->filters, ex->route->index, b->filter);
        if (!ex->filter_ran[b->filter] || st == NULL || f->on_request_body == NULL || f->wants_body == NULL ||
            !f->wants_body(st))
            continue;
        tg_filter_ret_t r = f->on_request_body(ex, st, b->buf ? b->buf : "", b->len);
        if (r == TG_FILTER_DONE)
            return;
        if (r == TG_FILTER_WAIT) {
            ex->filter_waiting = true;
            return;
        }
    }
    tg__ex_body_replay(ex);
}

bool tg__ex_body_resume(tg_exchange_t *ex)
{
    struct tg__ex_body *b = ex->rbody;
    if (b == NULL || b->next != NEXT_FILTERS || !b->complete || b->replaying)
        return false;
    b->filter++;
    run_body_filters(ex);
    return true;
}

void tg__ex_body_complete(tg_exchange_t *ex)
{
    struct tg__ex_body *b = ex->rbody;
    if (b->next == NEXT_ROUTE)
        resume_routing(ex);
    else
        run_body_filters(ex);
}

/* Sends the buffered body upstream: with Content-Length, or chunked when
 * the request had trailers (kept in ex->req_trailers by request_end; the
 * pump's request_end with none leaves them in place). */
void tg__ex_body_replay(tg_exchange_t *ex)
{
    struct tg__ex_body *b = ex->rbody;
    b->replaying = true;
    if (ex->nreq_trailers > 0)
        ex->req.body = TG_BODY_CHUNKED;
    else
        ex->req.body = b->len ? TG_BODY_LENGTH : TG_BODY_NONE;
    ex->req.content_length = b->len;
    ex->req_body = ex->req.body;
    ex->req_cl = b->len;
    ex->bytes_in -= b->len; /* counted again as they are replayed */
    ex->req_done = false;   /* the pump delivers the body and its end */
    ex->req_paused = true;  /* upstream_ready resumes the pump */
    tg__ex_proceed(ex);
}

bool tg__ex_body_replaying(const tg_exchange_t *ex) { return ex->rbody && ex->rbody->replaying; }

static void pump_steps(tg_exchange_t *ex, struct tg__ex_body *b, const bool *alive)
{
    while (b->sent < b->len) {
        size_t t = tg_exchange_request_body(ex, b->buf + b->sent, b->len - b->sent);
        if (!*alive)
            return;
        b->sent += t;
        if (ex->req_paused || t == 0)
            return; /* resumed by the upstream side's drain */
    }
    if (!b->end_sent) {
        b->end_sent = true;
        tg_exchange_request_end(ex, NULL, 0);
        if (!*alive)
            return;
    }
    tg_exchange_request_flush(ex);
}

void tg__ex_body_pump(tg_exchange_t *ex)
{
    struct tg__ex_body *b = ex->rbody;
    bool alive = true; /* any call below may end and free the exchange */
    b->alive = &alive;
    pump_steps(ex, b, &alive);
    if (alive)
        b->alive = NULL;
}

void tg__ex_body_free(tg_exchange_t *ex)
{
    struct tg__ex_body *b = ex->rbody;
    if (b == NULL)
        return;
    if (b->alive)
        *b->alive = false;
    free(b->buf);
    b->buf = NULL;
}
