/* Pieces shared by the HTTP/1.1 request and response parsers: character
 * tables, the field-line parser, and the message-level field rules (framing,
 * Connection, Host syntax). See h1_int.h for the contracts. */
#include <arpa/inet.h>
#include "http/h1_int.h"

/* The tables use GNU range designators; ranges never overlap. */
const uint8_t tg__h1_tchar[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1,
    ['%'] = 1,         ['&'] = 1,         ['\''] = 1,        ['*'] = 1, ['+'] = 1, ['-'] = 1,
    ['.'] = 1,         ['^'] = 1,         ['_'] = 1,         ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

/* HTAB, SP, VCHAR and obs-text: NUL, CR, LF, the other CTLs and DEL are out. */
const uint8_t tg__h1_fvchar[256] = {
    ['\t'] = 1,
    [0x20 ... 0x7e] = 1,
    [0x80 ... 0xff] = 1,
};

const uint8_t tg__h1_hostchar[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['-'] = 1, ['.'] = 1,  ['_'] = 1,
    ['~'] = 1,         ['!'] = 1,         ['$'] = 1,         ['&'] = 1, ['\''] = 1, ['('] = 1,
    [')'] = 1,         ['*'] = 1,         ['+'] = 1,         [','] = 1, [';'] = 1,  ['='] = 1,
};

const uint8_t tg__h1_hexv[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
    ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

bool tg__h1_is_token(tg_str_t s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!tg__h1_is_tchar(s.p[i]))
            return false;
    return true;
}

bool tg__h1_is_field_value(tg_str_t s)
{
    return s.len == 0 || tg__h1_scan_value(s.p, 0, s.len) == s.len;
}

int tg__h1_parse_version(const char *p, size_t n, uint8_t *major, uint8_t *minor)
{
    static const char pat[8] = "HTTP/0.0";
    if (n >= 8 && memcmp(p, "HTTP/1.1", 8) == 0) { /* the common case */
        *major = 1;
        *minor = 1;
        return 8;
    }
    for (size_t k = 0; k < 8; k++) {
        if (k == n)
            return TG_H1_INCOMPLETE;
        if (k == 5 || k == 7) {
            if (p[k] < '0' || p[k] > '9')
                return TG_H1_ERR_BAD;
        } else if (p[k] != pat[k]) {
            return TG_H1_ERR_BAD;
        }
    }
    *major = (uint8_t)(p[5] - '0');
    *minor = (uint8_t)(p[7] - '0');
    return 8;
}

ssize_t tg__h1_parse_field(const char *buf, size_t pos, size_t end, tg_header_t *f)
{
    size_t i = pos;
    while (i < end && tg__h1_tchar[(uint8_t)buf[i]])
        i++;
    if (i == end)
        return TG_H1_INCOMPLETE;
    /* A non-token byte before the colon covers "Name : v" (RFC 9112 §5.1:
     * MUST reject), obs-fold and a leading SP/HTAB (§5.2: we reject rather than
     * unfold), and a bare LF where a line should start. */
    if (buf[i] != ':' || i == pos)
        return TG_H1_ERR_BAD;
    f->name = tg_str(buf + pos, i - pos);
    i++;
    while (i < end && tg__h1_is_ows(buf[i]))
        i++;
    size_t vstart = i;
    i = tg__h1_scan_value(buf, i, end);
    if (i == end)
        return TG_H1_INCOMPLETE;
    /* Lines end in CRLF only. A bare LF is rejected instead of accepted as a
     * line end (RFC 9112 §2.2 allows either): a front end that splits lines
     * differently from the servers behind it is how requests get smuggled,
     * and no real client sends bare LF. A bare CR must not be accepted (§2.2). */
    if (buf[i] != '\r')
        return TG_H1_ERR_BAD;
    if (i + 1 == end)
        return TG_H1_INCOMPLETE;
    if (buf[i + 1] != '\n')
        return TG_H1_ERR_BAD;
    size_t vend = i;
    while (vend > vstart && tg__h1_is_ows(buf[vend - 1]))
        vend--;
    f->value = tg_str(buf + vstart, vend - vstart);
    return (ssize_t)(i + 2);
}

int tg__h1_parse_fields(const char *buf, size_t *pos, size_t end, tg_header_t *hdrs, size_t max, size_t *n)
{
    size_t i = *pos, k = 0;
    for (;;) {
        if (i >= end)
            return TG_H1_INCOMPLETE;
        if (buf[i] == '\r') {
            if (i + 1 >= end)
                return TG_H1_INCOMPLETE;
            if (buf[i + 1] != '\n')
                return TG_H1_ERR_BAD;
            *pos = i + 2;
            *n = k;
            return 1;
        }
        if (k >= max) /* a field line beyond the limit has started */
            return TG_H1_ERR_HEADERS_TOO_LARGE;
        ssize_t r = tg__h1_parse_field(buf, i, end, &hdrs[k]);
        if (r <= 0)
            return (int)r;
        i = (size_t)r;
        k++;
    }
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6). A list ("5, 5") or repeated
 * field is accepted only when every member has the same value (§8.6 allows a
 * recipient to do so); anything else is unrecoverable framing (RFC 9112 §6.3
 * rule 5). Values above INT64_MAX are rejected so that every accepted length
 * also fits off_t arithmetic downstream. */
static int parse_content_length(tg_str_t v, tg__h1_info_t *info)
{
    size_t i = 0;
    do {
        while (i < v.len && tg__h1_is_ows(v.p[i]))
            i++;
        size_t start = i;
        uint64_t n = 0;
        for (; i < v.len && v.p[i] >= '0' && v.p[i] <= '9'; i++) {
            unsigned d = (unsigned)(v.p[i] - '0');
            if (n > ((uint64_t)INT64_MAX - d) / 10)
                return TG_H1_ERR_BAD;
            n = n * 10 + d;
        }
        if (i == start)
            return TG_H1_ERR_BAD;
        while (i < v.len && tg__h1_is_ows(v.p[i]))
            i++;
        if (i < v.len && v.p[i] != ',')
            return TG_H1_ERR_BAD;
        if (info->ncl > 0 && n != info->content_length)
            return TG_H1_ERR_BAD;
        info->content_length = n;
        info->ncl++;
    } while (i++ < v.len);
    return 0;
}

/* Transfer-Encoding (RFC 9112 §6.1). The only coding the gateway implements
 * is chunked, so the whole list over every TE field must be exactly one
 * "chunked". A malformed member, an empty member, chunked twice, or a list
 * whose final member is not chunked ("chunked, identity", "xchunked", "gzip":
 * the length cannot be determined, §6.3 rule 4 says 400 and close) is a bad
 * message; a well-formed coding we do not implement before a final chunked
 * ("gzip, chunked") is 501 (§6.1). Bad wins over unimplemented. `*last`
 * ends up telling whether the last member seen so far is chunked. */
static void scan_transfer_encoding(tg_str_t v, tg__h1_info_t *info, size_t *nchunked, bool *bad,
                                   bool *unknown, bool *last)
{
    size_t start = 0;
    for (size_t i = 0; i <= v.len; i++) {
        if (i < v.len && v.p[i] != ',')
            continue;
        tg_str_t m = tg_str_trim_ows(tg_str(v.p + start, i - start));
        start = i + 1;
        *last = false;
        if (!tg__h1_is_token(m)) {
            *bad = true; /* empty member, or parameters / junk */
        } else if (tg_str_ieq_c(m, "chunked")) {
            (*nchunked)++;
            *last = true;
        } else {
            *unknown = true;
        }
    }
    info->nte++;
}

static void scan_connection(tg_str_t v, tg__h1_info_t *info)
{
    size_t start = 0;
    for (size_t i = 0; i <= v.len; i++) {
        if (i < v.len && v.p[i] != ',')
            continue;
        tg_str_t m = tg_str_trim_ows(tg_str(v.p + start, i - start));
        start = i + 1;
        if (tg_str_ieq_c(m, "close"))
            info->conn_close = true;
        else if (tg_str_ieq_c(m, "keep-alive"))
            info->conn_keep_alive = true;
        else if (tg_str_ieq_c(m, "upgrade"))
            info->conn_upgrade = true;
    }
}

int tg__h1_scan_fields(const tg_header_t *h, size_t n, tg__h1_info_t *info)
{
    size_t nchunked = 0;
    bool te_bad = false, te_unknown = false, te_last_chunked = false;
    memset(info, 0, sizeof *info);
    for (size_t k = 0; k < n; k++) {
        tg_str_t name = h[k].name, v = h[k].value;
        /* Dispatch on length first: one compare rejects most fields. */
        switch (name.len) {
        case 4:
            if (tg_str_ieq_c(name, "host") && info->nhost++ == 0)
                info->host = v;
            break;
        case 6:
            if (tg_str_ieq_c(name, "expect") && tg_str_ieq_c(v, "100-continue"))
                info->expect_continue = true;
            break;
        case 7:
            if (tg_str_ieq_c(name, "upgrade"))
                info->has_upgrade = true;
            break;
        case 10:
            if (tg_str_ieq_c(name, "connection"))
                scan_connection(v, info);
            break;
        case 14:
            if (tg_str_ieq_c(name, "content-length") && parse_content_length(v, info) < 0)
                return TG_H1_ERR_BAD;
            break;
        case 17:
            if (tg_str_ieq_c(name, "transfer-encoding"))
                scan_transfer_encoding(v, info, &nchunked, &te_bad, &te_unknown, &te_last_chunked);
            break;
        default:
            break;
        }
    }
    if (info->nte > 0) {
        if (te_bad || nchunked > 1 || !te_last_chunked)
            info->te_verdict = TG_H1_ERR_BAD;
        else if (te_unknown)
            info->te_verdict = TG_H1_ERR_NOT_IMPLEMENTED;
        else
            info->te_verdict = 0; /* exactly one member, "chunked" */
    }
    return 0;
}

int tg__h1_check_framing(const tg__h1_info_t *info, bool http10)
{
    if (info->nte == 0)
        return 0;
    /* RFC 9112 §6.1: CL with TE "ought to be handled as an error"; TE in an
     * HTTP/1.0 message means the framing is faulty. Both are how smuggling
     * starts, so neither is ever passed on. */
    if (info->ncl > 0 || http10)
        return TG_H1_ERR_BAD;
    return info->te_verdict;
}

static bool valid_port(const char *p, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535;
}

bool tg__h1_valid_authority(tg_str_t a, bool need_port)
{
    size_t i = 0;
    if (a.len == 0)
        return false;
    if (a.p[0] == '[') {
        /* IP-literal: only IPv6address; inet_pton is the strict validator. */
        const char *close = memchr(a.p, ']', a.len);
        char tmp[INET6_ADDRSTRLEN];
        struct in6_addr addr;
        size_t n = close ? (size_t)(close - a.p) - 1 : 0;
        if (n < 2 || n >= sizeof tmp)
            return false;
        memcpy(tmp, a.p + 1, n);
        tmp[n] = '\0';
        if (inet_pton(AF_INET6, tmp, &addr) != 1)
            return false;
        i = n + 2;
    } else {
        while (i < a.len && tg__h1_hostchar[(uint8_t)a.p[i]])
            i++;
        if (i == 0)
            return false;
    }
    if (i == a.len)
        return !need_port;
    return a.p[i] == ':' && valid_port(a.p + i + 1, a.len - i - 1);
}

int tg_h1_err_status(int err)
{
    switch (err) {
    case TG_H1_ERR_HEADERS_TOO_LARGE:
        return 431;
    case TG_H1_ERR_URI_TOO_LONG:
        return 414;
    case TG_H1_ERR_NOT_IMPLEMENTED:
        return 501;
    case TG_H1_ERR_VERSION:
        return 505;
    default: /* TG_H1_ERR_BAD and anything unexpected */
        return 400;
    }
}

const char *tg_h1_err_name(int err)
{
    switch (err) {
    case TG_H1_ERR_HEADERS_TOO_LARGE:
        return "headers_too_large";
    case TG_H1_ERR_URI_TOO_LONG:
        return "uri_too_long";
    case TG_H1_ERR_NOT_IMPLEMENTED:
        return "not_implemented";
    case TG_H1_ERR_VERSION:
        return "version_not_supported";
    default:
        return "bad_request";
    }
}
