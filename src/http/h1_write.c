/* HTTP/1.1 serializers: heads, chunk-size lines, the last chunk.
 *
 * Each writer sizes its output first (tg_h1_head_size), then copies with
 * memcpy. Fields are checked against the same rules the parser enforces
 * (token names; values without CR, LF, NUL or other CTLs), so a value that
 * came from a JWT claim or a config string can never split a message: an
 * invalid field makes the writer return -1, exactly like a buffer that is too
 * small. Callers that size the buffer with tg_h1_head_size therefore read -1
 * as "invalid field". */
#include <limits.h>
#include "http/h1_int.h"

static bool fields_valid(const tg_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!tg__h1_is_token(h[i].name) || !tg__h1_is_field_value(h[i].value))
            return false;
    return true;
}

static char *put(char *p, const char *s, size_t n)
{
    if (n > 0) /* an empty slice may be TG_STR_NULL; memcpy(NULL) is UB */
        memcpy(p, s, n);
    return p + n;
}

static char *put_fields(char *p, const tg_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p = put(p, h[i].name.p, h[i].name.len);
        *p++ = ':';
        *p++ = ' ';
        p = put(p, h[i].value.p, h[i].value.len);
        *p++ = '\r';
        *p++ = '\n';
    }
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Request:  start_a SP start_b SP "HTTP/1.1" CRLF   (method, target)
 * Response: "HTTP/1.1" SP start_a SP start_b CRLF   (3-digit status, reason)
 * Both are start_a + start_b + 12 bytes; each field adds name + value + 4
 * (": " and CRLF); the empty line adds 2. */
size_t tg_h1_head_size(tg_str_t start_a, tg_str_t start_b, const tg_header_t *h, size_t n)
{
    size_t size = start_a.len + start_b.len + 12 + 2;
    for (size_t i = 0; i < n; i++)
        size += h[i].name.len + h[i].value.len + 4;
    return size;
}

ssize_t tg_h1_write_request_head(char *dst, size_t cap, tg_str_t method, tg_str_t target,
                                 const tg_header_t *h, size_t n)
{
    if (!tg__h1_is_token(method) || target.len == 0 ||
        tg__h1_scan_target(target.p, 0, target.len) != target.len || !fields_valid(h, n))
        return -1;
    size_t size = tg_h1_head_size(method, target, h, n);
    if (size > cap || size > SSIZE_MAX)
        return -1;
    char *p = put(dst, method.p, method.len);
    *p++ = ' ';
    p = put(p, target.p, target.len);
    p = put(p, " HTTP/1.1\r\n", 11);
    put_fields(p, h, n);
    return (ssize_t)size;
}

ssize_t tg_h1_write_response_head(char *dst, size_t cap, int status, tg_str_t reason, const tg_header_t *h,
                                  size_t n)
{
    /* 100-599 only: the range our own parser (and RFC 9110 §15) accepts. */
    if (status < 100 || status > 599 || !tg__h1_is_field_value(reason) || !fields_valid(h, n))
        return -1;
    char code[3] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10), (char)('0' + status % 10)};
    size_t size = tg_h1_head_size(tg_str(code, 3), reason, h, n);
    if (size > cap || size > SSIZE_MAX)
        return -1;
    char *p = put(dst, "HTTP/1.1 ", 9);
    p = put(p, code, 3);
    *p++ = ' ';
    p = put(p, reason.p, reason.len);
    *p++ = '\r';
    *p++ = '\n';
    put_fields(p, h, n);
    return (ssize_t)size;
}

/* len == 0 is refused: "0\r\n" is the last-chunk marker and would end the
 * body; an empty write must produce no chunk at all. The caller writes the
 * data and then "\r\n". */
ssize_t tg_h1_write_chunk_size(char *dst, size_t cap, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t digits = 0;
    for (size_t v = len; v != 0; v >>= 4)
        digits++;
    if (len == 0 || digits + 2 > cap)
        return -1;
    for (size_t i = digits, v = len; i-- > 0; v >>= 4)
        dst[i] = hex[v & 0xf];
    dst[digits] = '\r';
    dst[digits + 1] = '\n';
    return (ssize_t)(digits + 2);
}

ssize_t tg_h1_write_last_chunk(char *dst, size_t cap, const tg_header_t *trailers, size_t n)
{
    if (!fields_valid(trailers, n))
        return -1;
    size_t size = 3 + 2;
    for (size_t i = 0; i < n; i++)
        size += trailers[i].name.len + trailers[i].value.len + 4;
    if (size > cap || size > SSIZE_MAX)
        return -1;
    char *p = put(dst, "0\r\n", 3);
    put_fields(p, trailers, n);
    return (ssize_t)size;
}
