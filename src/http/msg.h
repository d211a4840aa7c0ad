/* The protocol-neutral HTTP message model. Every codec (HTTP/1.1 now, HTTP/2
 * later) produces and consumes these; the exchange never asks which protocol
 * it speaks. Field slices point into a buffer owned by whoever parsed the
 * message (the codec's read buffer or the exchange arena). */
#ifndef TG_HTTP_MSG_H
#define TG_HTTP_MSG_H

#include <stdbool.h>
#include <stdint.h>
#include "util/str.h"

typedef struct tg_header {
    tg_str_t name;
    tg_str_t value;
} tg_header_t;

typedef enum tg_body_kind {
    TG_BODY_NONE = 0,    /* no body at all */
    TG_BODY_LENGTH,      /* content_length bytes */
    TG_BODY_CHUNKED,     /* HTTP/1.1 chunked coding (h1 wire only) */
    TG_BODY_UNTIL_CLOSE, /* responses only: read until the server closes */
    TG_BODY_STREAM,      /* framed by the codec itself (h2 DATA frames) */
} tg_body_kind_t;

typedef struct tg_request {
    tg_str_t method;
    tg_str_t target;    /* request-target as received */
    tg_str_t path;      /* path part of the target (absolute-form: path after authority) */
    tg_str_t query;     /* after '?', without it; empty when absent */
    tg_str_t authority; /* Host header or absolute-form authority (lowercase not guaranteed) */
    uint8_t version_major;
    uint8_t version_minor;
    tg_header_t *headers;
    size_t nheaders;
    tg_body_kind_t body;
    uint64_t content_length; /* valid when body == TG_BODY_LENGTH */
    bool keep_alive;         /* connection may stay open after this exchange */
    bool expect_continue;    /* Expect: 100-continue */
    bool upgrade;            /* Connection: upgrade + Upgrade present */
} tg_request_t;

typedef struct tg_response {
    int status;
    tg_str_t reason;
    uint8_t version_major;
    uint8_t version_minor;
    tg_header_t *headers;
    size_t nheaders;
    tg_body_kind_t body;
    uint64_t content_length;
    bool keep_alive;
} tg_response_t;

/* Returns the first header named `name` (case-insensitive) or NULL. */
const tg_header_t *tg_headers_find_s(const tg_header_t *h, size_t n, tg_str_t name);
/* Inline so that strlen of a literal name folds to a constant. */
static inline const tg_header_t *tg_headers_find(const tg_header_t *h, size_t n, const char *name)
{
    return tg_headers_find_s(h, n, tg_str_c(name));
}
/* The standard reason phrase for a status ("Unknown" when none). */
const char *tg_http_reason(int status);
/* True for hop-by-hop fields (RFC 9110 §7.6.1 list plus Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade). */
bool tg_http_is_hop_by_hop(tg_str_t name);

#endif
