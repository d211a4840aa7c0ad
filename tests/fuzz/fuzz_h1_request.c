/* libFuzzer harness for tg_h1_parse_request. Besides "no crash, no over-read"
 * it checks the contract: every slice lies inside the head, a head that parses
 * is INCOMPLETE one byte short, and serializing the parsed request gives bytes
 * that parse back to the same request. */
/* The checks are the point of the harness: keep assert() on in every build. */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "http/h1.h"

#define CAP 64

static void check_slice(tg_str_t s, const char *base, size_t len)
{
    assert(s.len == 0 || (s.p >= base && s.p + s.len <= base + len));
}

static void check_request(const tg_request_t *req, const char *buf, int r)
{
    size_t n = (size_t)r;
    check_slice(req->method, buf, n);
    check_slice(req->target, buf, n);
    check_slice(req->query, buf, n);
    if (!(req->path.len == 1 && req->path.p[0] == '/'))
        check_slice(req->path, buf, n);
    check_slice(req->authority, buf, n);
    assert(req->method.len > 0 && req->target.len > 0);
    assert(req->version_major == 1 && req->version_minor <= 1);
    assert(req->nheaders <= CAP);
    for (size_t i = 0; i < req->nheaders; i++) {
        check_slice(req->headers[i].name, buf, n);
        check_slice(req->headers[i].value, buf, n);
        assert(req->headers[i].name.len > 0);
    }
    assert(req->body == TG_BODY_NONE || req->body == TG_BODY_LENGTH || req->body == TG_BODY_CHUNKED);
    assert(req->version_minor == 1 || req->body != TG_BODY_CHUNKED);
}

/* Serialize and parse again: an HTTP/1.1 request must survive unchanged. */
static void roundtrip(const tg_request_t *req, const tg_h1_limits_t *lim)
{
    size_t size = tg_h1_head_size(req->method, req->target, req->headers, req->nheaders);
    char *out = malloc(size);
    ssize_t w = tg_h1_write_request_head(out, size, req->method, req->target, req->headers, req->nheaders);
    assert(w == (ssize_t)size);
    tg_header_t h2[CAP];
    tg_request_t req2;
    tg_h1_limits_t big = *lim;
    big.max_header_bytes = size; /* leading empty lines and OWS are gone: never longer */
    int r2 = tg_h1_parse_request(out, size, &big, h2, CAP, &req2);
    assert(r2 == (int)size);
    assert(tg_str_eq(req2.method, req->method) && tg_str_eq(req2.target, req->target));
    assert(tg_str_eq(req2.path, req->path) && tg_str_eq(req2.query, req->query));
    assert(tg_str_eq(req2.authority, req->authority));
    assert(req2.nheaders == req->nheaders);
    for (size_t i = 0; i < req->nheaders; i++)
        assert(tg_str_eq(h2[i].name, req->headers[i].name) && tg_str_eq(h2[i].value, req->headers[i].value));
    assert(req2.body == req->body && req2.content_length == req->content_length);
    assert(req2.keep_alive == req->keep_alive && req2.upgrade == req->upgrade &&
           req2.expect_continue == req->expect_continue);
    free(out);
}

static void run(const char *buf, size_t size, const tg_h1_limits_t *lim)
{
    tg_header_t h[CAP];
    tg_request_t req;
    int r = tg_h1_parse_request(buf, size, lim, h, CAP, &req);
    assert(r >= TG_H1_ERR_VERSION && r <= (int)size);
    if (r <= 0)
        return;
    assert((size_t)r <= lim->max_header_bytes);
    check_request(&req, buf, r);
    /* One byte short of a complete head is never an error. */
    tg_request_t part;
    assert(tg_h1_parse_request(buf, (size_t)r - 1, lim, h, CAP, &part) == TG_H1_INCOMPLETE);
    tg_h1_parse_request(buf, size, lim, h, CAP, &req); /* restore slices in h */
    if (req.version_minor == 1)
        roundtrip(&req, lim);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const tg_h1_limits_t def = {16384, CAP, 8192};
    static const tg_h1_limits_t small = {128, 4, 32};
    run((const char *)data, size, &def);
    run((const char *)data, size, &small);
    return 0;
}
