/* HTTP/1.1 response head parser (RFC 9112 §4, §5, §6.3). Same field rules as
 * requests; the caller answers any error with 502, so the finer error codes
 * are for logs. The parser never reads past the head: interim (1xx) responses
 * are returned like any other head, and the caller parses again for the final
 * response after them. */
#include <limits.h>
#include "http/h1_int.h"

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF.
 * The SP before an empty reason is often omitted by servers; since the reason
 * is ignored anyway (RFC 9112 §4), "HTTP/1.1 204\r\n" is accepted. */
static int parse_status_line(const char *buf, size_t end, size_t *pos, tg_response_t *resp)
{
    int r = tg__h1_parse_version(buf, end, &resp->version_major, &resp->version_minor);
    if (r <= 0)
        return r;
    size_t i = 8;
    int status = 0;
    if (i == end)
        return TG_H1_INCOMPLETE;
    if (buf[i++] != ' ')
        return TG_H1_ERR_BAD;
    for (int k = 0; k < 3; k++, i++) { /* status-code = 3DIGIT */
        if (i == end)
            return TG_H1_INCOMPLETE;
        if (buf[i] < '0' || buf[i] > '9')
            return TG_H1_ERR_BAD;
        status = status * 10 + (buf[i] - '0');
    }
    if (i == end)
        return TG_H1_INCOMPLETE;
    size_t rs = i;
    if (buf[i] == ' ') {
        rs = i + 1;
        i = tg__h1_scan_value(buf, rs, end);
    }
    if (i == end || (buf[i] == '\r' && i + 1 == end))
        return TG_H1_INCOMPLETE;
    if (buf[i] != '\r' || buf[i + 1] != '\n')
        return TG_H1_ERR_BAD;
    if (status < 100 || status > 599)
        return TG_H1_ERR_BAD;
    if (resp->version_major != 1 || resp->version_minor > 1)
        return TG_H1_ERR_VERSION;
    resp->status = status;
    resp->reason = tg_str(buf + rs, i - rs);
    *pos = i + 2;
    return 1;
}

/* Body framing, RFC 9112 §6.3 in its order, after the common checks. A
 * Transfer-Encoding other than exactly "chunked" is refused rather than read
 * until close as §6.3 rule 4 would allow: the gateway could not remove the
 * other codings, so it could not pass the body on faithfully. */
static int finish_response(tg_response_t *resp, bool head_request)
{
    tg__h1_info_t info;
    bool http10 = resp->version_minor == 0;
    int r = tg__h1_scan_fields(resp->headers, resp->nheaders, &info);
    if (r < 0)
        return r;
    if ((r = tg__h1_check_framing(&info, http10)) < 0)
        return r;
    int s = resp->status;
    if (head_request || s < 200 || s == 204 || s == 304)
        resp->body = TG_BODY_NONE; /* rule 1; CL/TE only describe the GET */
    else if (info.nte > 0)
        resp->body = TG_BODY_CHUNKED;
    else if (info.ncl > 0) {
        resp->body = TG_BODY_LENGTH;
        resp->content_length = info.content_length;
    } else
        resp->body = TG_BODY_UNTIL_CLOSE;
    resp->keep_alive = resp->body != TG_BODY_UNTIL_CLOSE &&
                       (http10 ? info.conn_keep_alive && !info.conn_close : !info.conn_close);
    return 0;
}

int tg_h1_parse_response(const char *buf, size_t len, bool head_request, size_t max_header_bytes,
                         tg_header_t *hdrs, size_t cap, tg_response_t *resp)
{
    size_t max = max_header_bytes < INT_MAX ? max_header_bytes : INT_MAX;
    size_t end = len < max ? len : max;
    size_t pos = 0;
    memset(resp, 0, sizeof *resp);

    int r = parse_status_line(buf, end, &pos, resp);
    if (r == TG_H1_INCOMPLETE)
        goto incomplete;
    if (r < 0)
        return r;
    resp->headers = hdrs;
    r = tg__h1_parse_fields(buf, &pos, end, hdrs, cap, &resp->nheaders);
    if (r == TG_H1_INCOMPLETE)
        goto incomplete;
    if (r < 0)
        return r;
    r = finish_response(resp, head_request);
    return r < 0 ? r : (int)pos;

incomplete:
    return len >= max ? TG_H1_ERR_HEADERS_TOO_LARGE : TG_H1_INCOMPLETE;
}
