/* Internals of the HTTP/1.1 codec shared by the files of src/http/ (request and
 * response parsers, chunked decoder, serializers, path normaliser). Not a
 * public interface: nothing outside src/http/ includes this header.
 *
 * Everything here is pure: no allocation, no I/O, no mutable globals. Positions
 * are size_t offsets into the caller's buffer; functions that may need more
 * input return 0 for "incomplete", a TG_H1_ERR_* (< 0) for a definite error, or
 * a positive offset/length on success. */
#ifndef TG_HTTP_H1_INT_H
#define TG_HTTP_H1_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include "http/h1.h"

/* Character classes, indexed by the unsigned byte value (non-zero = member).
 * Tables, not functions, because they run once per byte of every head. */
extern const uint8_t tg__h1_tchar[256];    /* tchar, RFC 9110 §5.6.2 */
extern const uint8_t tg__h1_fvchar[256];   /* field-vchar / SP / HTAB, RFC 9110 §5.5 */
extern const uint8_t tg__h1_hostchar[256]; /* unreserved / sub-delims, RFC 3986 §3.2.2 */
extern const uint8_t tg__h1_hexv[256];     /* HEXDIG value + 1; 0 = not a hex digit */

static inline bool tg__h1_is_tchar(char c)
{
    return tg__h1_tchar[(uint8_t)c] != 0;
}
/* Hex value of c, or -1 when c is not a HEXDIG. */
static inline int tg__h1_hex(char c)
{
    return (int)tg__h1_hexv[(uint8_t)c] - 1;
}
static inline bool tg__h1_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

#define TG__H1_ONES 0x0101010101010101ull
#define TG__H1_HIGH 0x8080808080808080ull

/* Word-at-a-time byte tests (the classic "haszero"/"hasless" bit tricks).
 * They may report a hit that is not one (a borrow can only create a false
 * positive above a real hit), never miss a real one, so callers use them only
 * to decide when to fall back to the exact per-byte loop. */
static inline uint64_t tg__h1_has_less(uint64_t v, uint8_t n)
{
    return (v - TG__H1_ONES * n) & ~v & TG__H1_HIGH;
}
static inline uint64_t tg__h1_has_byte(uint64_t v, uint8_t b)
{
    return tg__h1_has_less(v ^ (TG__H1_ONES * b), 1);
}

/* First offset >= i in p[..end) whose byte is not allowed in a field value
 * (anything but HTAB, SP, VCHAR and obs-text), or end. Eight bytes at a time
 * while no byte is below 0x20 or equal to DEL. */
static inline size_t tg__h1_scan_value(const char *p, size_t i, size_t end)
{
    while (end - i >= 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (tg__h1_has_less(v, 0x20) | tg__h1_has_byte(v, 0x7f))
            break;
        i += 8;
    }
    while (i < end && tg__h1_fvchar[(uint8_t)p[i]])
        i++;
    return i;
}

/* First offset >= i in p[..end) whose byte is not visible ASCII (0x21-0x7E),
 * or end: the characters a request-target may hold. */
static inline size_t tg__h1_scan_target(const char *p, size_t i, size_t end)
{
    while (end - i >= 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (tg__h1_has_less(v, 0x21) | tg__h1_has_byte(v, 0x7f) | (v & TG__H1_HIGH))
            break;
        i += 8;
    }
    while (i < end && (uint8_t)(p[i] - 0x21) < 0x5e)
        i++;
    return i;
}

/* True when s is a non-empty token / a valid (possibly empty) field value. */
bool tg__h1_is_token(tg_str_t s);
bool tg__h1_is_field_value(tg_str_t s);

/* "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3) at p[0..n). Returns 8 and the digits
 * when it matches, 0 when p[0..n) is a proper prefix of a match, else
 * TG_H1_ERR_BAD. The caller decides which versions it supports. */
int tg__h1_parse_version(const char *p, size_t n, uint8_t *major, uint8_t *minor);

/* One field line at buf[pos..end): field-name ":" OWS field-value OWS CRLF
 * (RFC 9112 §5). Fills *f with the name and the OWS-trimmed value. Returns the
 * offset just after the CRLF, 0 when more bytes are needed, or TG_H1_ERR_BAD
 * (whitespace before the colon, obs-fold, CTL/NUL in the value, bare CR/LF). */
ssize_t tg__h1_parse_field(const char *buf, size_t pos, size_t end, tg_header_t *f);

/* Field lines from *pos up to and including the empty line that ends the
 * section. At most `max` fields; one more → TG_H1_ERR_HEADERS_TOO_LARGE. On
 * success (returns 1) *pos is just past the empty line and *n the field count;
 * returns 0 when incomplete or a TG_H1_ERR_* code. */
int tg__h1_parse_fields(const char *buf, size_t *pos, size_t end, tg_header_t *hdrs, size_t max, size_t *n);

/* What the message-level fields say, collected in one pass over the fields. */
typedef struct tg__h1_info {
    uint64_t content_length;
    size_t ncl;           /* Content-Length fields */
    size_t nte;           /* Transfer-Encoding fields */
    int te_verdict;       /* over all TE fields: 0 = exactly "chunked", else TG_H1_ERR_* */
    size_t nhost;         /* Host fields */
    tg_str_t host;        /* the first Host value */
    bool conn_close;      /* Connection: close */
    bool conn_keep_alive; /* Connection: keep-alive */
    bool conn_upgrade;    /* Connection: upgrade */
    bool has_upgrade;     /* an Upgrade field is present */
    bool expect_continue; /* Expect: 100-continue */
} tg__h1_info_t;

/* Fills *info from the fields. Returns 0, or TG_H1_ERR_BAD for an invalid or
 * conflicting Content-Length (RFC 9112 §6.3 rule 5). */
int tg__h1_scan_fields(const tg_header_t *h, size_t n, tg__h1_info_t *info);

/* Framing checks common to requests and responses (RFC 9112 §6.1, §6.3):
 * Content-Length together with Transfer-Encoding, Transfer-Encoding in an
 * HTTP/1.0 message, and any coding but a single "chunked" are errors.
 * Returns 0 or a TG_H1_ERR_* code. */
int tg__h1_check_framing(const tg__h1_info_t *info, bool http10);

/* authority = host [ ":" port ], host = IP-literal / reg-name (RFC 3986
 * §3.2.2), with the narrowing the gateway wants: no userinfo, no
 * percent-encoding, no IPvFuture or zone id, port 1-5 digits <= 65535.
 * `need_port`: the port must be present (CONNECT authority-form). */
bool tg__h1_valid_authority(tg_str_t a, bool need_port);

#endif
