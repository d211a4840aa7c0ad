/* HTTP/1.1 wire codec pieces: strict parsers (pure functions over bytes: no I/O,
 * no allocation, no globals) and serializers into caller buffers.
 * RFC 9112 framing rules are enforced here so that every caller gets them. */
#ifndef TG_HTTP_H1_H
#define TG_HTTP_H1_H

#include <stddef.h>
#include <sys/types.h>
#include "http/msg.h"

/* Parse results. >0 = bytes of the head consumed (through the blank line). */
enum {
    TG_H1_INCOMPLETE = 0,          /* need more bytes */
    TG_H1_ERR_BAD = -1,            /* 400 (502 on responses) */
    TG_H1_ERR_HEADERS_TOO_LARGE = -2, /* 431: max_header_bytes or max_headers */
    TG_H1_ERR_URI_TOO_LONG = -3,   /* 414 */
    TG_H1_ERR_NOT_IMPLEMENTED = -4, /* 501: unknown transfer coding */
    TG_H1_ERR_VERSION = -5,        /* 505 */
};

typedef struct tg_h1_limits {
    size_t max_header_bytes; /* whole head incl. request line */
    size_t max_headers;      /* field lines */
    size_t max_uri_bytes;    /* request-target */
} tg_h1_limits_t;

/* Parses a request head from buf[0..len). `hdrs` has room for `cap` fields
 * (cap >= lim->max_headers). On success fills *req (slices into buf) including
 * body framing, keep_alive, expect_continue, upgrade; validates Host rules.
 * Returns bytes consumed, TG_H1_INCOMPLETE, or a TG_H1_ERR_* code. When the
 * head is still incomplete but already longer than a limit, returns the error. */
int tg_h1_parse_request(const char *buf, size_t len, const tg_h1_limits_t *lim,
                        tg_header_t *hdrs, size_t cap, tg_request_t *req);

/* Parses a response head. `head_request`: the request was HEAD (no body).
 * Body framing per RFC 9112 §6.3 (1xx/204/304/HEAD: none; chunked; length;
 * else until close). Errors are TG_H1_ERR_* (callers answer 502). */
int tg_h1_parse_response(const char *buf, size_t len, bool head_request, size_t max_header_bytes,
                         tg_header_t *hdrs, size_t cap, tg_response_t *resp);

/* Maps a TG_H1_ERR_* to the HTTP status the gateway answers downstream. */
int tg_h1_err_status(int err);
/* Short machine word for logs and JSON bodies ("bad_request", …). */
const char *tg_h1_err_name(int err);

/* Incremental chunked-body decoder. Pure; holds at most TG_CHUNKED_MAX_TRAILER
 * bytes of trailer fields. */
#define TG_CHUNKED_MAX_TRAILER 8192
#define TG_CHUNKED_MAX_EXT 1024

typedef struct tg_chunked {
    int state;
    uint64_t remaining;   /* data bytes left in the current chunk */
    size_t line_len;      /* bytes of the current size line seen so far */
    size_t ndigits;
    bool done;            /* last chunk and trailer section consumed */
    size_t trailer_len;
    char trailer[TG_CHUNKED_MAX_TRAILER]; /* raw trailer field lines, CRLF-separated */
} tg_chunked_t;

void tg_chunked_init(tg_chunked_t *c);
/* Consumes bytes from in[0..len). Returns bytes consumed (>= 0) or TG_H1_ERR_BAD.
 * *data receives the body bytes found (a slice of `in`, possibly empty); at
 * most one slice per call, so callers loop until all input is consumed or
 * c->done. Bytes after the end of the body are never consumed. */
ssize_t tg_chunked_decode(tg_chunked_t *c, const char *in, size_t len, tg_str_t *data);
/* After c->done: the trailer fields as headers (slices into c->trailer). */
int tg_chunked_trailers(const tg_chunked_t *c, tg_header_t *hdrs, size_t cap, size_t *n);
/* True when in[0..len), the start of a chunked body, already breaks the
 * framing. Codecs run it over the body bytes that arrived with a head, so a
 * message already known to be bad is refused before any of it is passed on. */
bool tg_chunked_prefix_bad(const char *in, size_t len);

/* Serializers. Each writes into dst[0..cap) and returns the bytes written,
 * or -1 when it does not fit (nothing useful is left in dst then). */
ssize_t tg_h1_write_request_head(char *dst, size_t cap, tg_str_t method, tg_str_t target,
                                 const tg_header_t *h, size_t n);
ssize_t tg_h1_write_response_head(char *dst, size_t cap, int status, tg_str_t reason,
                                  const tg_header_t *h, size_t n);
/* "<hex>\r\n" */
ssize_t tg_h1_write_chunk_size(char *dst, size_t cap, size_t len);
/* "0\r\n" trailers "\r\n" */
ssize_t tg_h1_write_last_chunk(char *dst, size_t cap, const tg_header_t *trailers, size_t n);
/* Exact serialized size of a head, for sizing buffers. */
size_t tg_h1_head_size(tg_str_t start_a, tg_str_t start_b, const tg_header_t *h, size_t n);

#endif
