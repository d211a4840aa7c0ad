/* libFuzzer harness for tg_h1_parse_response: slices inside the head, framing
 * consistent with the status, INCOMPLETE one byte short, and a serialize /
 * parse round trip that keeps status, reason, fields and framing. */
/* The checks are the point of the harness: keep assert() on in every build. */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "http/h1.h"

#define CAP 64
#define MAX_HEAD 16384

static void check_slice(tg_str_t s, const char *base, size_t len)
{
    assert(s.len == 0 || (s.p >= base && s.p + s.len <= base + len));
}

static void roundtrip(const tg_response_t *resp, bool head)
{
    char code[3] = {(char)('0' + resp->status / 100), (char)('0' + resp->status / 10 % 10),
                    (char)('0' + resp->status % 10)};
    size_t size = tg_h1_head_size(tg_str(code, 3), resp->reason, resp->headers, resp->nheaders);
    char *out = malloc(size);
    ssize_t w =
        tg_h1_write_response_head(out, size, resp->status, resp->reason, resp->headers, resp->nheaders);
    assert(w == (ssize_t)size);
    tg_header_t h2[CAP];
    tg_response_t r2;
    assert(tg_h1_parse_response(out, size, head, size, h2, CAP, &r2) == (int)size);
    assert(r2.status == resp->status && tg_str_eq(r2.reason, resp->reason));
    assert(r2.nheaders == resp->nheaders);
    for (size_t i = 0; i < resp->nheaders; i++)
        assert(tg_str_eq(h2[i].name, resp->headers[i].name) &&
               tg_str_eq(h2[i].value, resp->headers[i].value));
    assert(r2.body == resp->body && r2.content_length == resp->content_length);
    assert(r2.keep_alive == resp->keep_alive);
    free(out);
}

static void run(const char *buf, size_t size, bool head)
{
    tg_header_t h[CAP];
    tg_response_t resp;
    int r = tg_h1_parse_response(buf, size, head, MAX_HEAD, h, CAP, &resp);
    assert(r >= TG_H1_ERR_VERSION && r <= (int)size && r <= MAX_HEAD);
    if (r <= 0)
        return;
    assert(resp.status >= 100 && resp.status <= 599);
    check_slice(resp.reason, buf, (size_t)r);
    for (size_t i = 0; i < resp.nheaders; i++) {
        check_slice(resp.headers[i].name, buf, (size_t)r);
        check_slice(resp.headers[i].value, buf, (size_t)r);
    }
    if (head || resp.status < 200 || resp.status == 204 || resp.status == 304)
        assert(resp.body == TG_BODY_NONE);
    if (resp.body == TG_BODY_UNTIL_CLOSE)
        assert(!resp.keep_alive);
    tg_response_t part;
    assert(tg_h1_parse_response(buf, (size_t)r - 1, head, MAX_HEAD, h, CAP, &part) == TG_H1_INCOMPLETE);
    tg_h1_parse_response(buf, size, head, MAX_HEAD, h, CAP, &resp);
    if (resp.version_minor == 1)
        roundtrip(&resp, head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run((const char *)data, size, false);
    run((const char *)data, size, true);
    return 0;
}
