/* HTTP/1.1 request head parser (RFC 9112 §3, §5, §6; RFC 9110 §7.2).
 *
 * One pass over the bytes, no allocation: the request line and field lines are
 * scanned with table lookups (word-at-a-time for field values and the target),
 * then the message-level rules run over the collected fields. Where the RFC
 * lets a recipient choose, the choice is the safer one for an edge proxy:
 * bare LF, obs-fold, CL+TE, TE on HTTP/1.0, Host mismatches are all rejected.
 *
 * Pipelining: the return value is the length of the first head only; bytes
 * after it (a body or the next request) are the caller's. */
#include <limits.h>
#include "http/h1_int.h"

static const char slash[] = "/";

/* request-line = method SP request-target SP HTTP-version CRLF.
 * Sets method/target/version; returns 1 with *pos after the CRLF, 0 when
 * incomplete, or an error. The target limit is checked while scanning, so a
 * long target is refused before its end has arrived. */
static int parse_request_line(const char *buf, size_t end, size_t *pos, size_t max_uri, tg_request_t *req)
{
    size_t i = *pos;
    /* RFC 9112 §2.2: a server SHOULD ignore empty lines before the request
     * line (clients may send an extra CRLF after a body). */
    while (i < end && buf[i] == '\r') {
        if (i + 1 == end)
            return TG_H1_INCOMPLETE;
        if (buf[i + 1] != '\n')
            return TG_H1_ERR_BAD;
        i += 2;
    }
    size_t m = i;
    while (i < end && tg__h1_tchar[(uint8_t)buf[i]])
        i++;
    if (i == end)
        return TG_H1_INCOMPLETE;
    if (buf[i] != ' ' || i == m)
        return TG_H1_ERR_BAD;
    req->method = tg_str(buf + m, i - m);

    size_t t = ++i;
    i = tg__h1_scan_target(buf, i, end);
    if (i - t > max_uri)
        return TG_H1_ERR_URI_TOO_LONG;
    if (i == end)
        return TG_H1_INCOMPLETE;
    if (buf[i] != ' ' || i == t)
        return TG_H1_ERR_BAD;
    req->target = tg_str(buf + t, i - t);
    i++;

    int r = tg__h1_parse_version(buf + i, end - i, &req->version_major, &req->version_minor);
    if (r <= 0)
        return r;
    i += 8;
    if (i == end || (buf[i] == '\r' && i + 1 == end))
        return TG_H1_INCOMPLETE;
    if (buf[i] != '\r' || buf[i + 1] != '\n')
        return TG_H1_ERR_BAD;
    /* RFC 9110 §2.5 lets a 1.x server treat 1.2+ as 1.1; we only speak what
     * we can name, and answer 505 to the rest. */
    if (req->version_major != 1 || req->version_minor > 1)
        return TG_H1_ERR_VERSION;
    *pos = i + 2;
    return 1;
}

/* Splits "path[?query]" at the first '?'. */
static void split_query(tg_request_t *req, const char *p, size_t n)
{
    const char *q = memchr(p, '?', n);
    if (q == NULL) {
        req->path = tg_str(p, n);
        req->query = tg_str(p + n, 0);
    } else {
        req->path = tg_str(p, (size_t)(q - p));
        req->query = tg_str(q + 1, n - (size_t)(q - p) - 1);
    }
}

/* absolute-form (RFC 9112 §3.2.2): "http" or "https" "://" authority
 * [path-abempty] ["?" query]. Userinfo is refused (RFC 9110 §4.2.4). An empty
 * path becomes "/" (a static string, not a slice of the buffer). */
static int parse_absolute_form(tg_request_t *req, tg_str_t *authority)
{
    tg_str_t t = req->target;
    size_t skip;
    if (t.len >= 7 && tg_str_ieq_c(tg_str(t.p, 7), "http://"))
        skip = 7;
    else if (t.len >= 8 && tg_str_ieq_c(tg_str(t.p, 8), "https://"))
        skip = 8;
    else
        return TG_H1_ERR_BAD;
    size_t i = skip;
    while (i < t.len && t.p[i] != '/' && t.p[i] != '?')
        i++;
    *authority = tg_str(t.p + skip, i - skip);
    if (!tg__h1_valid_authority(*authority, false))
        return TG_H1_ERR_BAD;
    if (i < t.len && t.p[i] == '/') {
        split_query(req, t.p + i, t.len - i);
    } else {
        req->path = tg_str(slash, 1);
        req->query = i < t.len ? tg_str(t.p + i + 1, t.len - i - 1) : tg_str(t.p + t.len, 0);
    }
    return 0;
}

/* Classifies the request-target (RFC 9112 §3.2) and fills path/query. Sets
 * *authority (non-empty) for absolute-form and authority-form. */
static int parse_target(tg_request_t *req, tg_str_t *authority)
{
    tg_str_t t = req->target;
    *authority = TG_STR_NULL;
    /* A fragment is never part of a request-target (RFC 9112 §3.2). */
    if (memchr(t.p, '#', t.len) != NULL)
        return TG_H1_ERR_BAD;
    if (tg_str_eq(req->method, TG_STR_LIT("CONNECT"))) {
        /* authority-form, and only for CONNECT (§3.2.3): host ":" port. */
        if (!tg__h1_valid_authority(t, true))
            return TG_H1_ERR_BAD;
        *authority = t;
        req->path = tg_str(t.p + t.len, 0);
        req->query = tg_str(t.p + t.len, 0);
        return 0;
    }
    if (t.p[0] == '/') { /* origin-form */
        split_query(req, t.p, t.len);
        return 0;
    }
    if (t.len == 1 && t.p[0] == '*') { /* asterisk-form, OPTIONS only (§3.2.4) */
        if (!tg_str_eq(req->method, TG_STR_LIT("OPTIONS")))
            return TG_H1_ERR_BAD;
        req->path = t;
        req->query = tg_str(t.p + t.len, 0);
        return 0;
    }
    return parse_absolute_form(req, authority);
}

/* Host rules (RFC 9112 §3.2, RFC 9110 §7.2): HTTP/1.1 requires exactly one
 * Host; it must be a valid authority; a target that carries an authority must
 * name the same one (the RFC says to ignore Host then; a gateway that routes
 * on one and forwards the other is confusable, so we refuse the mismatch). */
static int check_host(tg_request_t *req, const tg__h1_info_t *info, tg_str_t target_authority)
{
    if (info->nhost > 1)
        return TG_H1_ERR_BAD;
    if (info->nhost == 0 && req->version_minor >= 1)
        return TG_H1_ERR_BAD;
    if (info->nhost == 1 && !tg__h1_valid_authority(info->host, false))
        return TG_H1_ERR_BAD;
    if (target_authority.len > 0) {
        if (info->nhost == 1 && !tg_str_ieq(info->host, target_authority))
            return TG_H1_ERR_BAD;
        req->authority = target_authority;
    } else {
        req->authority = info->host;
    }
    return 0;
}

/* Everything decided from the whole head: target form, Host, framing and the
 * connection flags. */
static int finish_request(tg_request_t *req)
{
    tg__h1_info_t info;
    tg_str_t target_authority;
    bool http10 = req->version_minor == 0;
    int r = parse_target(req, &target_authority);
    if (r < 0)
        return r;
    if ((r = tg__h1_scan_fields(req->headers, req->nheaders, &info)) < 0)
        return r;
    if ((r = check_host(req, &info, target_authority)) < 0)
        return r;
    if ((r = tg__h1_check_framing(&info, http10)) < 0)
        return r;
    if (info.nte > 0) {
        req->body = TG_BODY_CHUNKED;
    } else if (info.ncl > 0) {
        req->body = TG_BODY_LENGTH;
        req->content_length = info.content_length;
    } else {
        req->body = TG_BODY_NONE; /* RFC 9112 §6.3 rule 7 */
    }
    req->keep_alive = http10 ? info.conn_keep_alive && !info.conn_close : !info.conn_close;
    /* RFC 9110 §10.1.1 and §7.8: an HTTP/1.0 request's 100-continue
     * expectation and Upgrade are ignored. */
    req->expect_continue = !http10 && info.expect_continue;
    req->upgrade = !http10 && info.conn_upgrade && info.has_upgrade;
    return 0;
}

int tg_h1_parse_request(const char *buf, size_t len, const tg_h1_limits_t *lim, tg_header_t *hdrs, size_t cap,
                        tg_request_t *req)
{
    /* The return type is int, so no head can be longer than INT_MAX. */
    size_t max = lim->max_header_bytes < INT_MAX ? lim->max_header_bytes : INT_MAX;
    size_t end = len < max ? len : max;
    size_t pos = 0;
    memset(req, 0, sizeof *req);

    int r = parse_request_line(buf, end, &pos, lim->max_uri_bytes, req);
    if (r == TG_H1_INCOMPLETE)
        goto incomplete;
    if (r < 0)
        return r;
    req->headers = hdrs;
    r = tg__h1_parse_fields(buf, &pos, end, hdrs, lim->max_headers < cap ? lim->max_headers : cap,
                            &req->nheaders);
    if (r == TG_H1_INCOMPLETE)
        goto incomplete;
    if (r < 0)
        return r;
    r = finish_request(req);
    return r < 0 ? r : (int)pos;

incomplete:
    /* Only max bytes were looked at; if they are all there and the head is
     * still not complete, it can only end beyond the limit. */
    return len >= max ? TG_H1_ERR_HEADERS_TOO_LARGE : TG_H1_INCOMPLETE;
}
