/* Internal subrequests (proxy/subrequest.h): a headless downstream. */
#include "proxy/subrequest.h"

#include <stdlib.h>
#include "proxy/exchange_int.h"

#define MAX_SUB_HEADERS 128

static int hl_response_head(void *ctx, tg_exchange_t *ex, const tg_response_t *resp)
{
    (void)ctx, (void)ex, (void)resp;
    return 0;
}

static size_t hl_response_body(void *ctx, const char *p, size_t n)
{
    (void)ctx, (void)p;
    return n; /* consumed at once: nothing is kept, so nothing is borrowed */
}

static int hl_response_end(void *ctx, tg_exchange_t *ex, const tg_header_t *t, size_t n)
{
    (void)ctx, (void)ex, (void)t, (void)n;
    return 0;
}

static int hl_flush(void *ctx)
{
    (void)ctx;
    return 0;
}

static void hl_nothing(void *ctx) { (void)ctx; }

static void hl_done(void *ctx, bool ok) { (void)ctx, (void)ok; }

static const tg_downstream_ops_t headless_ops = {
    .response_head = hl_response_head,
    .response_body = hl_response_body,
    .response_end = hl_response_end,
    .flush = hl_flush,
    .resume_request = hl_nothing,
    .send_continue = hl_nothing,
    .done = hl_done,
};

static bool dropped(tg_str_t name, const tg_header_t *extra, size_t nextra)
{
    static const char *const drop[] = { "content-length", "transfer-encoding", "expect",
                                        "if-none-match", "if-modified-since", "if-match",
                                        "if-unmodified-since", "if-range", "range" };
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
        if (tg_str_ieq_c(name, drop[i]))
            return true;
    for (size_t i = 0; i < nextra; i++)
        if (tg_str_ieq(name, extra[i].name))
            return true;
    return false;
}

int tg_subrequest_start(tg_exchange_t *ex, const tg_header_t *extra, size_t nextra)
{
    const tg_request_t *in = &ex->req;
    tg_header_t h[MAX_SUB_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < in->nheaders && n + nextra < MAX_SUB_HEADERS; i++)
        if (!dropped(in->headers[i].name, extra, nextra))
            h[n++] = in->headers[i];
    for (size_t i = 0; i < nextra && n < MAX_SUB_HEADERS; i++)
        h[n++] = extra[i];
    tg_request_t req = {
        .method = TG_STR_LIT("GET"), .target = in->target, .path = in->path, .query = in->query,
        .authority = in->authority, .version_major = 1, .version_minor = 1,
        .headers = h, .nheaders = n, .body = TG_BODY_NONE, .keep_alive = true,
    };
    tg_downstream_info_t info = { .peer = (const struct sockaddr *)&ex->client_addr, .tls = ex->tls };
    /* The new exchange copies what it keeps before returning; it may even
     * have finished (answered from memory) by then. */
    return tg_exchange_start(ex->w, &headless_ops, NULL, &info, &req) ? 0 : -1;
}
