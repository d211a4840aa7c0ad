/* Unit tests for src/http: HTTP/1.1 request/response parsers, chunked decoder,
 * serializers, path normalisation and the message helpers. Table-driven: each
 * table row is one message and what the codec must say about it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http/h1.h"
#include "http/msg.h"
#include "http/path.h"
#include "check_run.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MAXH 128

static const tg_h1_limits_t LIM = {16384, 100, 8192};

static bool str_is(tg_str_t s, const char *c)
{
    return s.len == strlen(c) && (s.len == 0 || memcmp(s.p, c, s.len) == 0);
}

#define ck_str(s, c)                                                                                         \
    ck_assert_msg(str_is((s), (c)), "got \"%.*s\", want \"%s\"", (int)(s).len, (s).p ? (s).p : "", (c))

static int preq_lim(const char *s, size_t len, const tg_h1_limits_t *lim, tg_request_t *req)
{
    static tg_header_t h[MAXH];
    return tg_h1_parse_request(s, len, lim, h, MAXH, req);
}

static int preq(const char *s, tg_request_t *req)
{
    return preq_lim(s, strlen(s), &LIM, req);
}

/* ---------------------------------------------------------------- requests */

static const struct req_ok {
    const char *raw;
    const char *method, *target, *path, *query, *authority;
    int minor;
    tg_body_kind_t body;
    uint64_t cl;
    bool keep_alive, expect, upgrade;
    size_t nheaders;
} req_ok[] = {
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", "/", "", "a", 1, TG_BODY_NONE, 0, true, false, false,
     1},
    {"GET /p/q?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\n", "GET", "/p/q?x=1&y=2",
     "/p/q", "x=1&y=2", "example.com:8080", 1, TG_BODY_NONE, 0, true, false, false, 2},
    {"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", "POST", "/submit", "/submit", "",
     "a", 1, TG_BODY_LENGTH, 5, true, false, false, 2},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "POST", "/", "/", "", "a", 1, TG_BODY_LENGTH,
     0, true, false, false, 2},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\ncontent-length: 7\r\n\r\n", "POST", "/", "/", "",
     "a", 1, TG_BODY_LENGTH, 7, true, false, false, 3},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", "POST", "/", "/", "", "a",
     1, TG_BODY_LENGTH, 9223372036854775807ull, true, false, false, 2},
    {"PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "PUT", "/u", "/u", "", "a", 1,
     TG_BODY_CHUNKED, 0, true, false, false, 2},
    {"PUT /u HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  CHUNKED \r\n\r\n", "PUT", "/u", "/u", "", "a", 1,
     TG_BODY_CHUNKED, 0, true, false, false, 2},
    {"GET / HTTP/1.0\r\n\r\n", "GET", "/", "/", "", "", 0, TG_BODY_NONE, 0, false, false, false, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET", "/", "/", "", "", 0, TG_BODY_NONE, 0, true,
     false, false, 1},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", "GET", "/", "/", "", "", 0, TG_BODY_NONE, 0,
     false, false, false, 1},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET", "/", "/", "", "a", 1, TG_BODY_NONE, 0,
     false, false, false, 2},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: CLOSE\r\n\r\n", "GET", "/", "/", "", "a", 1,
     TG_BODY_NONE, 0, false, false, false, 3},
    {"GET http://Example.com:80/x?y HTTP/1.1\r\nHost: example.COM:80\r\n\r\n", "GET",
     "http://Example.com:80/x?y", "/x", "y", "Example.com:80", 1, TG_BODY_NONE, 0, true, false, false, 1},
    {"GET https://h HTTP/1.1\r\nHost: h\r\n\r\n", "GET", "https://h", "/", "", "h", 1, TG_BODY_NONE, 0, true,
     false, false, 1},
    {"GET http://h?q=1 HTTP/1.0\r\n\r\n", "GET", "http://h?q=1", "/", "q=1", "h", 0, TG_BODY_NONE, 0, false,
     false, false, 0},
    {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", "*", "*", "", "a", 1, TG_BODY_NONE, 0, true, false,
     false, 1},
    {"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n", "CONNECT", "db.internal:5432", "",
     "", "db.internal:5432", 1, TG_BODY_NONE, 0, true, false, false, 1},
    {"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", "CONNECT", "[::1]:443", "", "", "[::1]:443", 1,
     TG_BODY_NONE, 0, true, false, false, 1},
    {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", "POST", "/", "/", "",
     "a", 1, TG_BODY_LENGTH, 3, true, true, false, 3},
    {"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", "POST", "/", "/", "", "", 0,
     TG_BODY_LENGTH, 3, false, false, false, 2},
    {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", "GET",
     "/ws", "/ws", "", "a", 1, TG_BODY_NONE, 0, true, false, true, 3},
    {"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", "GET", "/ws", "/ws", "", "a", 1,
     TG_BODY_NONE, 0, true, false, false, 2},
    {"GET / HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n", "GET", "/", "/", "", "[2001:db8::1]:8443", 1,
     TG_BODY_NONE, 0, true, false, false, 1},
    {"GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n", "GET", "/", "/", "", "10.0.0.1", 1, TG_BODY_NONE, 0, true,
     false, false, 1},
    {"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", "/", "", "a", 1, TG_BODY_NONE, 0, true, false,
     false, 1},
    {"M-SEARCH! /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n", "M-SEARCH!", "/a?b?c", "/a", "b?c", "a", 1, TG_BODY_NONE,
     0, true, false, false, 1},
    {"GET /\"{x}\"|^` HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Tab:\tv\tw\t\r\n\r\n", "GET", "/\"{x}\"|^`",
     "/\"{x}\"|^`", "", "a", 1, TG_BODY_NONE, 0, true, false, false, 3},
};

START_TEST(request_valid)
{
    const struct req_ok *t = &req_ok[_i];
    tg_request_t req;
    size_t head = strlen(t->raw);
    const char *body = strstr(t->raw, "\r\n\r\n");
    /* rows whose raw text carries a body: the head ends at the first blank line
     * that follows a request line. */
    if (strncmp(t->raw, "\r\n", 2) != 0 && body != NULL)
        head = (size_t)(body - t->raw) + 4;
    int r = preq(t->raw, &req);
    ck_assert_msg(r == (int)head, "row %d: got %d want %zu", _i, r, head);
    ck_str(req.method, t->method);
    ck_str(req.target, t->target);
    ck_str(req.path, t->path);
    ck_str(req.query, t->query);
    ck_str(req.authority, t->authority);
    ck_assert_int_eq(req.version_major, 1);
    ck_assert_int_eq(req.version_minor, t->minor);
    ck_assert_int_eq(req.body, t->body);
    if (t->body == TG_BODY_LENGTH)
        ck_assert_uint_eq(req.content_length, t->cl);
    ck_assert_int_eq(req.keep_alive, t->keep_alive);
    ck_assert_int_eq(req.expect_continue, t->expect);
    ck_assert_int_eq(req.upgrade, t->upgrade);
    ck_assert_uint_eq(req.nheaders, t->nheaders);
    ck_assert_ptr_nonnull(req.path.p);
    ck_assert_ptr_nonnull(req.query.p);
}
END_TEST

START_TEST(request_fields)
{
    tg_request_t req;
    const char *raw = "GET / HTTP/1.1\r\nHost:   a  \r\nX-A: \t one two \t\r\nX-Obs: caf\xc3\xa9\r\n"
                      "X-E:\r\nX-Q: \"a,b\"\r\n\r\n";
    ck_assert_int_eq(preq(raw, &req), (int)strlen(raw));
    ck_assert_uint_eq(req.nheaders, 5);
    ck_str(req.headers[0].name, "Host");
    ck_str(req.headers[0].value, "a");
    ck_str(req.headers[1].value, "one two");
    ck_str(req.headers[2].value, "caf\xc3\xa9");
    ck_str(req.headers[3].value, "");
    ck_str(req.headers[4].value, "\"a,b\"");
    ck_str(req.authority, "a");
    const tg_header_t *h = tg_headers_find(req.headers, req.nheaders, "x-q");
    ck_assert_ptr_eq(h, &req.headers[4]);
    ck_assert_ptr_null(tg_headers_find(req.headers, req.nheaders, "X-Nope"));
}
END_TEST

static const struct req_bad {
    const char *raw;
    int code;
} req_bad[] = {
    /* request line */
    {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET /\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / http/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/11\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\rHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", TG_H1_ERR_VERSION},
    {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", TG_H1_ERR_VERSION},
    {"GET / HTTP/0.9\r\nHost: a\r\n\r\n", TG_H1_ERR_VERSION},
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", TG_H1_ERR_VERSION},
    /* target forms */
    {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET a:80 HTTP/1.1\r\nHost: a:80\r\n\r\n", TG_H1_ERR_BAD},
    {"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"CONNECT a:99999 HTTP/1.1\r\nHost: a:99999\r\n\r\n", TG_H1_ERR_BAD},
    {"CONNECT a:443 HTTP/1.1\r\nHost: b:443\r\n\r\n", TG_H1_ERR_BAD},
    {"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET http:/a/ HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", TG_H1_ERR_BAD},
    {"GET http://a:81/ HTTP/1.1\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET http://a/ HTTP/1.1\r\n\r\n", TG_H1_ERR_BAD},
    /* field lines */
    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX v\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX(: v\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: v\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\nX: v\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: v\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: v\r\n\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: v\rw\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: v\r\n\rx", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: v\x01w\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: v\x7fw\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789abcdef\x0bw\r\n\r\n", TG_H1_ERR_BAD},
    /* Host */
    {"GET / HTTP/1.1\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a:\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a:x\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: %61\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: []\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: [v1.x]\r\n\r\n", TG_H1_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", TG_H1_ERR_BAD},
    /* framing */
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,1\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1.0\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", TG_H1_ERR_BAD}, /* §6.3 rule 4 */
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", TG_H1_ERR_NOT_IMPLEMENTED},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", TG_H1_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
     TG_H1_ERR_NOT_IMPLEMENTED},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked, chunked\r\n\r\n", TG_H1_ERR_BAD},
};

START_TEST(request_reject)
{
    const struct req_bad *t = &req_bad[_i];
    tg_request_t req;
    int r = preq(t->raw, &req);
    ck_assert_msg(r == t->code, "row %d (%s): got %d want %d", _i, t->raw, r, t->code);
}
END_TEST

/* Every proper prefix of a valid head is INCOMPLETE; an invalid byte is
 * reported as soon as it arrives (checked for one case). */
START_TEST(request_incomplete_prefixes)
{
    const struct req_ok *t = &req_ok[_i];
    const char *end = strstr(t->raw + (strncmp(t->raw, "\r\n", 2) == 0 ? 4 : 0), "\r\n\r\n");
    size_t head = (size_t)(end - t->raw) + 4;
    char *copy = malloc(head); /* exact-size copy: ASan sees any over-read */
    memcpy(copy, t->raw, head);
    for (size_t n = 0; n < head; n++) {
        tg_request_t req;
        int r = preq_lim(copy, n, &LIM, &req);
        ck_assert_msg(r == TG_H1_INCOMPLETE, "row %d prefix %zu: got %d", _i, n, r);
    }
    free(copy);
}
END_TEST

START_TEST(request_early_errors)
{
    tg_request_t req;
    /* No blank line yet, but the head is already known to be bad. */
    ck_assert_int_eq(preq("GET / HTTP/1.1\r\nBad Name: x\r\n", &req), TG_H1_ERR_BAD);
    ck_assert_int_eq(preq("GET / HTTP/1.1\r\n ", &req), TG_H1_ERR_BAD);
    ck_assert_int_eq(preq("GET / HTTPS", &req), TG_H1_ERR_BAD);
    ck_assert_int_eq(preq("GE\x01", &req), TG_H1_ERR_BAD);
    ck_assert_int_eq(preq("GET /\n", &req), TG_H1_ERR_BAD);
    ck_assert_int_eq(preq("GET / HTTP/1.1\r\nA: b\x00", &req), TG_H1_INCOMPLETE);
    const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    ck_assert_int_eq(preq_lim(nul, sizeof nul - 1, &LIM, &req), TG_H1_ERR_BAD);
}
END_TEST

START_TEST(request_pipelined)
{
    const char *two = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /b HTTP/1.1\r\nHost: b\r\n\r\nGET /c";
    tg_request_t req;
    size_t first = strlen("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n");
    ck_assert_int_eq(preq(two, &req), (int)first);
    ck_str(req.path, "/a");
    ck_assert_uint_eq(req.content_length, 3);
    const char *next = two + first + 3;
    size_t second = strlen("GET /b HTTP/1.1\r\nHost: b\r\n\r\n");
    ck_assert_int_eq(preq(next, &req), (int)second);
    ck_str(req.path, "/b");
    ck_str(req.authority, "b");
    ck_assert_int_eq(preq(next + second, &req), TG_H1_INCOMPLETE);
}
END_TEST

static char *repeat_line(const char *prefix, const char *line, size_t count, const char *suffix)
{
    size_t n = strlen(prefix) + strlen(line) * count + strlen(suffix) + 1;
    char *s = malloc(n), *p = s;
    p += sprintf(p, "%s", prefix);
    for (size_t i = 0; i < count; i++)
        p += sprintf(p, "%s", line);
    sprintf(p, "%s", suffix);
    return s;
}

START_TEST(request_limits)
{
    tg_request_t req;
    tg_h1_limits_t lim = {64, 3, 10};
    /* 64 bytes exactly, then one more. */
    const char *h64 = "GET /012345678 HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789012345678\r\n\r\n";
    ck_assert_uint_eq(strlen(h64), 64);
    ck_assert_int_eq(preq_lim(h64, 64, &lim, &req), 64);
    const char *h65 = "GET /012345678 HTTP/1.1\r\nHost: a\r\nX-Pad: 01234567890123456789\r\n\r\n";
    ck_assert_int_eq(preq_lim(h65, 65, &lim, &req), TG_H1_ERR_HEADERS_TOO_LARGE);
    /* Incomplete but already over the limit. */
    ck_assert_int_eq(preq_lim(h65, 64, &lim, &req), TG_H1_ERR_HEADERS_TOO_LARGE);
    ck_assert_int_eq(preq_lim(h65, 63, &lim, &req), TG_H1_INCOMPLETE);
    /* The limit applies to the head only: a body after it does not count. */
    char withbody[128];
    snprintf(withbody, sizeof withbody, "%sbody-bytes-beyond-the-limit", h64);
    ck_assert_int_eq(preq_lim(withbody, strlen(withbody), &lim, &req), 64);

    /* Target: 10 bytes OK, 11 → 414, even before its end arrived. */
    ck_assert_int_eq(preq_lim("GET /123456789 HTTP/1.1\r\nHost: a\r\n\r\n", 36, &lim, &req), 36);
    ck_assert_int_eq(preq_lim("GET /1234567890 HTTP/1.1\r\nHost: a\r\n\r\n", 37, &lim, &req),
                     TG_H1_ERR_URI_TOO_LONG);
    ck_assert_int_eq(preq_lim("GET /1234567890", 15, &lim, &req), TG_H1_ERR_URI_TOO_LONG);
    ck_assert_int_eq(preq_lim("GET /123456789", 14, &lim, &req), TG_H1_INCOMPLETE);

    /* Field count: 3 fine, 4 → 431 as soon as the 4th line starts. */
    ck_assert_int_eq(preq_lim("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n", 39, &lim, &req), 39);
    ck_assert_int_eq(preq_lim("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD", 38, &lim, &req),
                     TG_H1_ERR_HEADERS_TOO_LARGE);

    /* Defaults: 100 fields fine, 101 not; 16 KiB head. */
    char *s = repeat_line("GET / HTTP/1.1\r\nHost: a\r\n", "X: y\r\n", 99, "\r\n");
    ck_assert_int_eq(preq(s, &req), (int)strlen(s));
    free(s);
    s = repeat_line("GET / HTTP/1.1\r\nHost: a\r\n", "X: y\r\n", 100, "\r\n");
    ck_assert_int_eq(preq(s, &req), TG_H1_ERR_HEADERS_TOO_LARGE);
    free(s);
    s = repeat_line("GET / HTTP/1.1\r\nHost: a\r\nX: ", "y", 16384, "\r\n\r\n");
    ck_assert_int_eq(preq(s, &req), TG_H1_ERR_HEADERS_TOO_LARGE);
    free(s);
    s = repeat_line("GET /", "y", 8192, " HTTP/1.1\r\nHost: a\r\n\r\n");
    ck_assert_int_eq(preq(s, &req), TG_H1_ERR_URI_TOO_LONG);
    free(s);

    /* A caller array smaller than max_headers is never overrun. */
    tg_header_t small[2];
    const char *three = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n";
    ck_assert_int_eq(tg_h1_parse_request(three, strlen(three), &LIM, small, 2, &req),
                     TG_H1_ERR_HEADERS_TOO_LARGE);
}
END_TEST

/* --------------------------------------------------------------- responses */

static const struct resp_ok {
    const char *raw;
    bool head;
    int status;
    const char *reason;
    int minor;
    tg_body_kind_t body;
    uint64_t cl;
    bool keep_alive;
} resp_ok[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", false, 200, "OK", 1, TG_BODY_LENGTH, 12, true},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 200, "OK", 1, TG_BODY_CHUNKED, 0, true},
    {"HTTP/1.1 200 OK\r\n\r\n", false, 200, "OK", 1, TG_BODY_UNTIL_CLOSE, 0, false},
    {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false, 404, "Not Found", 1,
     TG_BODY_LENGTH, 0, false},
    {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false, 200, "OK", 0, TG_BODY_LENGTH, 2, false},
    {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n", false, 200, "OK", 0,
     TG_BODY_LENGTH, 2, true},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false, 200, "OK", 0, TG_BODY_UNTIL_CLOSE, 0, false},
    {"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, 200, "OK", 1, TG_BODY_NONE, 0, true},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, 200, "OK", 1, TG_BODY_NONE, 0, true},
    {"HTTP/1.1 204 No Content\r\n\r\n", false, 204, "No Content", 1, TG_BODY_NONE, 0, true},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, 304, "Not Modified", 1, TG_BODY_NONE,
     0, true},
    {"HTTP/1.1 100 Continue\r\n\r\n", false, 100, "Continue", 1, TG_BODY_NONE, 0, true},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false, 101,
     "Switching Protocols", 1, TG_BODY_NONE, 0, true},
    {"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", false, 103, "Early Hints", 1,
     TG_BODY_NONE, 0, true},
    {"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", false, 200, "", 1, TG_BODY_LENGTH, 1, true},
    {"HTTP/1.1 204\r\n\r\n", false, 204, "", 1, TG_BODY_NONE, 0, true},
    {"HTTP/1.1 599 Odd \t reason\xff\r\nContent-Length: 1, 1\r\n\r\n", false, 599, "Odd \t reason\xff", 1,
     TG_BODY_LENGTH, 1, true},
};

static int presp_n(const char *s, size_t len, bool head, tg_response_t *resp)
{
    static tg_header_t h[MAXH];
    return tg_h1_parse_response(s, len, head, 16384, h, MAXH, resp);
}

START_TEST(response_valid)
{
    const struct resp_ok *t = &resp_ok[_i];
    tg_response_t resp;
    size_t len = strlen(t->raw);
    ck_assert_int_eq(presp_n(t->raw, len, t->head, &resp), (int)len);
    ck_assert_int_eq(resp.status, t->status);
    ck_str(resp.reason, t->reason);
    ck_assert_int_eq(resp.version_minor, t->minor);
    ck_assert_int_eq(resp.body, t->body);
    if (t->body == TG_BODY_LENGTH)
        ck_assert_uint_eq(resp.content_length, t->cl);
    ck_assert_int_eq(resp.keep_alive, t->keep_alive);
    char *copy = malloc(len);
    memcpy(copy, t->raw, len);
    for (size_t n = 0; n < len; n++)
        ck_assert_int_eq(presp_n(copy, n, t->head, &resp), TG_H1_INCOMPLETE);
    free(copy);
}
END_TEST

static const struct resp_bad {
    const char *raw;
    int code;
} resp_bad[] = {
    {"HTTP/1.1 99 OK\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 099 OK\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 600 OK\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 2000 OK\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 20x OK\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1  200 OK\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 O\x01K\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 OK\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nX: a\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1\t200 OK\r\n\r\n", TG_H1_ERR_BAD},
    {"http/1.1 200 OK\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1200 OK\r\n\r\n", TG_H1_ERR_BAD},
    {"\r\nHTTP/1.1 200 OK\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/2 200\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/2.0 200 OK\r\n\r\n", TG_H1_ERR_VERSION},
    {"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", TG_H1_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", TG_H1_ERR_NOT_IMPLEMENTED},
};

START_TEST(response_reject)
{
    tg_response_t resp;
    const struct resp_bad *t = &resp_bad[_i];
    int r = presp_n(t->raw, strlen(t->raw), false, &resp);
    ck_assert_msg(r == t->code, "row %d (%s): got %d want %d", _i, t->raw, r, t->code);
}
END_TEST

START_TEST(response_limits)
{
    tg_response_t resp;
    tg_header_t h[2];
    const char *ok = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    const char *three = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    size_t n = strlen(ok);
    ck_assert_int_eq(tg_h1_parse_response(ok, n, false, n, h, 2, &resp), (int)n);
    ck_assert_int_eq(tg_h1_parse_response(ok, n, false, n - 1, h, 2, &resp), TG_H1_ERR_HEADERS_TOO_LARGE);
    ck_assert_int_eq(tg_h1_parse_response(three, strlen(three), false, 1000, h, 2, &resp),
                     TG_H1_ERR_HEADERS_TOO_LARGE);
    /* Pipelined / body bytes after the head are left alone. */
    const char *more = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
    ck_assert_int_eq(tg_h1_parse_response(more, strlen(more), false, 1000, h, 2, &resp), 25);
    ck_assert_int_eq(resp.status, 100);
    ck_assert_int_eq(tg_h1_parse_response(more + 25, strlen(more) - 25, false, 1000, h, 2, &resp),
                     (int)strlen(more) - 26);
    ck_assert_int_eq(resp.status, 200);
}
END_TEST

START_TEST(error_mapping)
{
    static const struct {
        int err, status;
        const char *name;
    } m[] = {
        {TG_H1_ERR_BAD, 400, "bad_request"},
        {TG_H1_ERR_HEADERS_TOO_LARGE, 431, "headers_too_large"},
        {TG_H1_ERR_URI_TOO_LONG, 414, "uri_too_long"},
        {TG_H1_ERR_NOT_IMPLEMENTED, 501, "not_implemented"},
        {TG_H1_ERR_VERSION, 505, "version_not_supported"},
    };
    for (size_t i = 0; i < NELEM(m); i++) {
        ck_assert_int_eq(tg_h1_err_status(m[i].err), m[i].status);
        ck_assert_str_eq(tg_h1_err_name(m[i].err), m[i].name);
    }
}
END_TEST

START_TEST(msg_helpers)
{
    ck_assert_str_eq(tg_http_reason(200), "OK");
    ck_assert_str_eq(tg_http_reason(404), "Not Found");
    ck_assert_str_eq(tg_http_reason(431), "Request Header Fields Too Large");
    ck_assert_str_eq(tg_http_reason(503), "Service Unavailable");
    ck_assert_str_eq(tg_http_reason(299), "Unknown");
    ck_assert_str_eq(tg_http_reason(-1), "Unknown");
    static const char *hop[] = {"Connection", "keep-alive",        "Proxy-Connection", "TE",
                                "Trailer",    "transfer-encoding", "UPGRADE"};
    static const char *e2e[] = {
        "Host", "Content-Length", "Trailers", "T", "Upgrade-Insecure-Requests", "Proxy-Authorization", ""};
    for (size_t i = 0; i < NELEM(hop); i++)
        ck_assert_msg(tg_http_is_hop_by_hop(tg_str_c(hop[i])), "%s", hop[i]);
    for (size_t i = 0; i < NELEM(e2e); i++)
        ck_assert_msg(!tg_http_is_hop_by_hop(tg_str_c(e2e[i])), "%s", e2e[i]);
    tg_header_t h[] = {{TG_STR_LIT("A"), TG_STR_LIT("1")},
                       {TG_STR_LIT("b"), TG_STR_LIT("2")},
                       {TG_STR_LIT("B"), TG_STR_LIT("3")}};
    ck_assert_ptr_eq(tg_headers_find(h, 3, "B"), &h[1]);
    ck_assert_ptr_null(tg_headers_find(h, 0, "A"));
}
END_TEST

/* ------------------------------------------------------------------ chunked */

typedef struct feed_result {
    int status; /* 1 done, 0 needs more, -1 bad */
    size_t consumed;
    char out[512];
    size_t outlen;
} feed_result_t;

/* Feeds in[0..len) to a fresh decoder in pieces cut at `cuts` (sorted
 * offsets); collects the data. */
static void feed(tg_chunked_t *c, const char *in, size_t len, const size_t *cuts, size_t ncuts,
                 feed_result_t *res)
{
    size_t pos = 0;
    tg_chunked_init(c);
    memset(res, 0, sizeof *res);
    for (size_t k = 0; k <= ncuts && !c->done; k++) {
        size_t stop = k < ncuts ? cuts[k] : len;
        char *piece = malloc(stop - pos + 1); /* own allocation: ASan catches over-reads */
        memcpy(piece, in + pos, stop - pos);
        size_t off = 0;
        while (off < stop - pos && !c->done) {
            tg_str_t d;
            ssize_t r = tg_chunked_decode(c, piece + off, stop - pos - off, &d);
            if (r < 0) {
                res->status = -1;
                free(piece);
                return;
            }
            ck_assert_msg(r > 0, "no progress at %zu", pos + off);
            ck_assert(d.len == 0 || (d.p >= piece + off && d.p + d.len <= piece + off + (size_t)r));
            ck_assert(res->outlen + d.len <= sizeof res->out);
            memcpy(res->out + res->outlen, d.p, d.len);
            res->outlen += d.len;
            off += (size_t)r;
        }
        res->consumed += off;
        pos = stop;
        free(piece);
    }
    res->status = c->done ? 1 : 0;
}

static const struct chunk_case {
    const char *in;
    const char *data; /* NULL: must be rejected */
    size_t consumed;  /* 0: the whole input */
    size_t ntrailers;
} chunk_cases[] = {
    {"0\r\n\r\n", "", 0, 0},
    {"5\r\nhello\r\n0\r\n\r\n", "hello", 0, 0},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0, 0},
    {"A\r\n0123456789\r\na\r\nabcdefghij\r\n000\r\n\r\n", "0123456789abcdefghij", 0, 0},
    {"0000000000000003\r\nabc\r\n0\r\n\r\n", "abc", 0, 0},
    {"3;name=value\r\nabc\r\n0;last\r\n\r\n", "abc", 0, 0},
    {"3;a;b=c;d=\"q \\\" ;x\"\r\nabc\r\n0\r\n\r\n", "abc", 0, 0},
    {"3 ;a = b\t; c\r\nabc\r\n0\r\n\r\n", "abc", 0, 0},
    {"3;a=\"\"\r\nabc\r\n0\r\n\r\n", "abc", 0, 0},
    {"4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", 0, 0},
    {"0\r\nExpires: never\r\nX-Sum:  abc \r\n\r\n", "", 0, 2},
    {"0\r\n\r\nGET / HTTP/1.1\r\n", "", 5, 0},
    {"1\r\nx\r\n0\r\nA: b\r\n\r\nleftover", "x", 17, 1},
    /* rejected */
    {"", "", 0, 0}, /* (incomplete, see the status check) */
    {"x\r\n", NULL, 0, 0},
    {" 5\r\nhello\r\n0\r\n\r\n", NULL, 0, 0},
    {"+5\r\nhello\r\n0\r\n\r\n", NULL, 0, 0},
    {"0x5\r\nhello\r\n0\r\n\r\n", NULL, 0, 0},
    {"5 \r\nhello\r\n0\r\n\r\n", NULL, 0, 0},
    {"5x\r\nhello\r\n0\r\n\r\n", NULL, 0, 0},
    {"\r\n5\r\nhello\r\n0\r\n\r\n", NULL, 0, 0},
    {"5\nhello\r\n0\r\n\r\n", NULL, 0, 0},
    {"5\rhello\r\n0\r\n\r\n", NULL, 0, 0},
    {"5\r\nhelloX\r\n0\r\n\r\n", NULL, 0, 0},
    {"5\r\nhello\n0\r\n\r\n", NULL, 0, 0},
    {"5\r\nhello\r0\r\n\r\n", NULL, 0, 0},
    {"5\r\nhello0\r\n\r\n", NULL, 0, 0},
    {"00000000000000001\r\nx\r\n0\r\n\r\n", NULL, 0, 0},
    {"FFFFFFFFFFFFFFFFF\r\n", NULL, 0, 0},
    {"3;\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;=v\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a=\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a=b c\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a=b \r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a \r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a=\"x\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a=\"x\"y\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a=\"x\x01\"\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a=\"\\\x7f\"\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a(\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"3;a\n\r\nabc\r\n0\r\n\r\n", NULL, 0, 0},
    {"0\r\n\n", NULL, 0, 0},
    {"0\r\n\rx", NULL, 0, 0},
    {"0\r\nA: b\n\r\n", NULL, 0, 0},
    {"0\r\nA: b\rx\r\n\r\n", NULL, 0, 0},
    {"0\r\nA : b\r\n\r\n", NULL, 0, 0},
    {"0\r\n A: b\r\n\r\n", NULL, 0, 0},
    {"0\r\nA: b\r\n folded\r\n\r\n", NULL, 0, 0},
    {"0\r\nA: b\x01\r\n\r\n", NULL, 0, 0},
    {"0\r\nNoColon\r\n\r\n", NULL, 0, 0},
    {"0\r\n: v\r\n\r\n", NULL, 0, 0},
    {"0\r\n\r\r\n", NULL, 0, 0},
};

static void check_chunk_case(const struct chunk_case *t, const feed_result_t *res, int row, const char *how)
{
    size_t len = strlen(t->in);
    if (t->data == NULL) {
        ck_assert_msg(res->status == -1, "row %d %s: accepted", row, how);
        return;
    }
    int want = len == 0 ? 0 : 1;
    ck_assert_msg(res->status == want, "row %d %s: status %d", row, how, res->status);
    ck_assert_uint_eq(res->consumed, t->consumed ? t->consumed : len);
    ck_assert_uint_eq(res->outlen, strlen(t->data));
    ck_assert(memcmp(res->out, t->data, res->outlen) == 0);
}

START_TEST(chunked_whole_and_split)
{
    const struct chunk_case *t = &chunk_cases[_i];
    size_t len = strlen(t->in);
    tg_chunked_t *c = malloc(sizeof *c);
    feed_result_t res;
    feed(c, t->in, len, NULL, 0, &res);
    check_chunk_case(t, &res, _i, "whole");
    if (res.status == 1) {
        tg_header_t h[4];
        size_t n;
        ck_assert_int_eq(tg_chunked_trailers(c, h, 4, &n), 0);
        ck_assert_uint_eq(n, t->ntrailers);
    }
    /* Byte by byte. */
    size_t cuts[256];
    ck_assert(len <= NELEM(cuts));
    for (size_t k = 0; k < len; k++)
        cuts[k] = k + 1;
    feed(c, t->in, len, cuts, len ? len - 1 : 0, &res);
    check_chunk_case(t, &res, _i, "bytewise");
    /* Two pieces, cut at every offset. */
    for (size_t k = 0; k <= len; k++) {
        feed(c, t->in, len, &k, 1, &res);
        check_chunk_case(t, &res, _i, "split");
    }
    free(c);
}
END_TEST

START_TEST(chunked_trailers_and_limits)
{
    tg_chunked_t *c = malloc(sizeof *c);
    feed_result_t res;
    const char *in = "0\r\nExpires: never\r\nX-Sum:  abc \r\n\r\n";
    feed(c, in, strlen(in), NULL, 0, &res);
    ck_assert_int_eq(res.status, 1);
    tg_header_t h[2];
    size_t n;
    ck_assert_int_eq(tg_chunked_trailers(c, h, 2, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_str(h[0].name, "Expires");
    ck_str(h[0].value, "never");
    ck_str(h[1].name, "X-Sum");
    ck_str(h[1].value, "abc");
    ck_assert_int_eq(tg_chunked_trailers(c, h, 1, &n), TG_H1_ERR_HEADERS_TOO_LARGE);
    /* Not done yet: no trailers to give. */
    tg_chunked_init(c);
    ck_assert_int_eq(tg_chunked_trailers(c, h, 2, &n), TG_H1_ERR_BAD);
    /* After done nothing more is consumed; after an error every call fails. */
    tg_str_t d;
    feed(c, "0\r\n\r\n", 5, NULL, 0, &res);
    ck_assert_int_eq(tg_chunked_decode(c, "5\r\n", 3, &d), 0);
    ck_assert_int_eq(tg_chunked_decode(c, "x", 1, &d), 0);
    tg_chunked_init(c);
    ck_assert_int_eq(tg_chunked_decode(c, "z", 1, &d), TG_H1_ERR_BAD);
    ck_assert_int_eq(tg_chunked_decode(c, "0\r\n\r\n", 5, &d), TG_H1_ERR_BAD);

    /* Extension bytes: TG_CHUNKED_MAX_EXT after the digits is the most. */
    size_t big = TG_CHUNKED_MAX_EXT + 64;
    char *s = malloc(big + 32);
    for (size_t ext = TG_CHUNKED_MAX_EXT - 1; ext <= TG_CHUNKED_MAX_EXT + 1; ext++) {
        memset(s, 'e', big + 32);
        s[0] = '1';
        s[1] = ';';
        memcpy(s + 1 + ext, "\r\nx\r\n0\r\n\r\n", 11);
        tg_chunked_init(c);
        ssize_t r = tg_chunked_decode(c, s, strlen(s), &d);
        ck_assert_msg(ext <= TG_CHUNKED_MAX_EXT ? r > 0 : r == TG_H1_ERR_BAD, "ext %zu: %zd", ext, r);
    }
    free(s);

    /* Trailer bytes: TG_CHUNKED_MAX_TRAILER stored (lines with CRLF) at most. */
    size_t tmax = TG_CHUNKED_MAX_TRAILER;
    s = malloc(tmax + 64);
    for (size_t total = tmax - 1; total <= tmax + 1; total++) {
        /* "0\r\n" + "X: vvv…\r\n" of `total` bytes + "\r\n" */
        memcpy(s, "0\r\nX: ", 6);
        memset(s + 6, 'v', total - 5);
        memcpy(s + 1 + total, "\r\n\r\n", 5);
        feed(c, s, strlen(s), NULL, 0, &res);
        ck_assert_int_eq(res.status, total <= tmax ? 1 : -1);
        if (res.status == 1) {
            ck_assert_int_eq(tg_chunked_trailers(c, h, 2, &n), 0);
            ck_assert_uint_eq(h[0].value.len, total - 5);
        }
    }
    free(s);

    /* The biggest size that fits; the decoder hands out what it has. */
    tg_chunked_init(c);
    ck_assert_int_eq(tg_chunked_decode(c, "FFFFFFFFFFFFFFFF\r\nabc", 21, &d), 21);
    ck_assert_uint_eq(d.len, 3);
    ck_assert_uint_eq(c->remaining, UINT64_MAX - 3);
    ck_assert_int_eq(tg_chunked_decode(c, "abc", 3, &d), 3);
    ck_assert_uint_eq(c->remaining, UINT64_MAX - 6);
    free(c);
}
END_TEST

/* ------------------------------------------------------------- serializers */

START_TEST(write_request_roundtrip)
{
    tg_header_t h[] = {{TG_STR_LIT("Host"), TG_STR_LIT("api.example.com")},
                       {TG_STR_LIT("Content-Length"), TG_STR_LIT("3")},
                       {TG_STR_LIT("X-Empty"), TG_STR_LIT("")},
                       {TG_STR_LIT("X-Obs"), TG_STR_LIT("caf\xc3\xa9 \t x")}};
    tg_str_t m = TG_STR_LIT("POST"), t = TG_STR_LIT("/v1/items?x=1");
    char buf[256];
    size_t size = tg_h1_head_size(m, t, h, NELEM(h));
    ck_assert_int_eq(tg_h1_write_request_head(buf, sizeof buf, m, t, h, NELEM(h)), (ssize_t)size);
    const char *want = "POST /v1/items?x=1 HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 3"
                       "\r\nX-Empty: \r\nX-Obs: caf\xc3\xa9 \t x\r\n\r\n";
    ck_assert_uint_eq(size, strlen(want));
    ck_assert(memcmp(buf, want, size) == 0);
    tg_request_t req;
    tg_header_t out[8];
    ck_assert_int_eq(tg_h1_parse_request(buf, size, &LIM, out, 8, &req), (int)size);
    ck_assert(tg_str_eq(req.method, m) && tg_str_eq(req.target, t));
    ck_assert_uint_eq(req.nheaders, NELEM(h));
    for (size_t i = 0; i < NELEM(h); i++)
        ck_assert(tg_str_eq(out[i].name, h[i].name) && tg_str_eq(out[i].value, h[i].value));
    ck_assert_int_eq(req.body, TG_BODY_LENGTH);
    /* Every smaller buffer is refused. */
    for (size_t cap = 0; cap < size; cap++)
        ck_assert_int_eq(tg_h1_write_request_head(buf, cap, m, t, h, NELEM(h)), -1);
    ck_assert_int_eq(tg_h1_write_request_head(buf, size, m, t, h, NELEM(h)), (ssize_t)size);
    ck_assert_int_eq(tg_h1_write_request_head(buf, size, m, t, NULL, 0),
                     (ssize_t)tg_h1_head_size(m, t, NULL, 0));
}
END_TEST

START_TEST(write_response_roundtrip)
{
    tg_header_t h[] = {{TG_STR_LIT("Content-Type"), TG_STR_LIT("application/json")},
                       {TG_STR_LIT("Transfer-Encoding"), TG_STR_LIT("chunked")}};
    char buf[256];
    static const struct {
        int status;
        const char *reason;
    } rows[] = {
        {200, "OK"}, {404, "Not Found"}, {599, ""}, {100, "Continue"}, {302, "Found"},
    };
    for (size_t k = 0; k < NELEM(rows); k++) {
        tg_str_t reason = tg_str_c(rows[k].reason);
        char code[4];
        snprintf(code, sizeof code, "%d", rows[k].status);
        size_t size = tg_h1_head_size(tg_str(code, 3), reason, h, NELEM(h));
        ssize_t w = tg_h1_write_response_head(buf, sizeof buf, rows[k].status, reason, h, NELEM(h));
        ck_assert_int_eq(w, (ssize_t)size);
        ck_assert(memcmp(buf, "HTTP/1.1 ", 9) == 0 && memcmp(buf + 9, code, 3) == 0);
        tg_response_t resp;
        tg_header_t out[4];
        ck_assert_int_eq(tg_h1_parse_response(buf, size, false, 1000, out, 4, &resp), (int)size);
        ck_assert_int_eq(resp.status, rows[k].status);
        ck_assert(tg_str_eq(resp.reason, reason));
        ck_assert_uint_eq(resp.nheaders, 2);
        ck_assert(tg_str_eq(out[0].value, h[0].value) && tg_str_eq(out[1].name, h[1].name));
        for (size_t cap = 0; cap < size; cap++)
            ck_assert_int_eq(tg_h1_write_response_head(buf, cap, rows[k].status, reason, h, 2), -1);
    }
    ck_assert_int_eq(tg_h1_write_response_head(buf, sizeof buf, 204, TG_STR_NULL, NULL, 0), 17);
    ck_assert(memcmp(buf, "HTTP/1.1 204 \r\n\r\n", 17) == 0);
}
END_TEST

START_TEST(write_rejects_invalid_fields)
{
    char buf[256];
    static const tg_header_t bad[] = {
        {TG_STR_LIT("X"), TG_STR_LIT("a\r\nInjected: 1")},
        {TG_STR_LIT("X"), TG_STR_LIT("a\nb")},
        {TG_STR_LIT("X"), {"a\0b", 3}},
        {TG_STR_LIT("X"), TG_STR_LIT("a\x7f")},
        {TG_STR_LIT("Bad Name"), TG_STR_LIT("v")},
        {TG_STR_LIT("X:"), TG_STR_LIT("v")},
        {TG_STR_LIT(""), TG_STR_LIT("v")},
    };
    tg_str_t m = TG_STR_LIT("GET"), t = TG_STR_LIT("/");
    for (size_t i = 0; i < NELEM(bad); i++) {
        ck_assert_int_eq(tg_h1_write_request_head(buf, sizeof buf, m, t, &bad[i], 1), -1);
        ck_assert_int_eq(tg_h1_write_response_head(buf, sizeof buf, 200, TG_STR_LIT("OK"), &bad[i], 1), -1);
        ck_assert_int_eq(tg_h1_write_last_chunk(buf, sizeof buf, &bad[i], 1), -1);
    }
    ck_assert_int_eq(tg_h1_write_request_head(buf, sizeof buf, TG_STR_LIT("G T"), t, NULL, 0), -1);
    ck_assert_int_eq(tg_h1_write_request_head(buf, sizeof buf, TG_STR_NULL, t, NULL, 0), -1);
    ck_assert_int_eq(tg_h1_write_request_head(buf, sizeof buf, m, TG_STR_LIT("/a b"), NULL, 0), -1);
    ck_assert_int_eq(tg_h1_write_request_head(buf, sizeof buf, m, TG_STR_NULL, NULL, 0), -1);
    ck_assert_int_eq(tg_h1_write_response_head(buf, sizeof buf, 99, TG_STR_LIT("x"), NULL, 0), -1);
    ck_assert_int_eq(tg_h1_write_response_head(buf, sizeof buf, 600, TG_STR_LIT("x"), NULL, 0), -1);
    ck_assert_int_eq(tg_h1_write_response_head(buf, sizeof buf, 200, TG_STR_LIT("O\r\nK"), NULL, 0), -1);
}
END_TEST

START_TEST(write_chunks)
{
    static const struct {
        size_t len;
        const char *out;
    } rows[] = {
        {1, "1\r\n"},
        {15, "f\r\n"},
        {16, "10\r\n"},
        {255, "ff\r\n"},
        {4096, "1000\r\n"},
        {0xabcdef, "abcdef\r\n"},
        {SIZE_MAX, "ffffffffffffffff\r\n"},
    };
    char buf[64];
    for (size_t i = 0; i < NELEM(rows); i++) {
        size_t n = strlen(rows[i].out);
        ck_assert_int_eq(tg_h1_write_chunk_size(buf, sizeof buf, rows[i].len), (ssize_t)n);
        ck_assert(memcmp(buf, rows[i].out, n) == 0);
        ck_assert_int_eq(tg_h1_write_chunk_size(buf, n - 1, rows[i].len), -1);
        ck_assert_int_eq(tg_h1_write_chunk_size(buf, n, rows[i].len), (ssize_t)n);
    }
    ck_assert_int_eq(tg_h1_write_chunk_size(buf, sizeof buf, 0), -1);

    /* A whole body written with the serializers decodes back. */
    tg_header_t tr[] = {{TG_STR_LIT("X-Checksum"), TG_STR_LIT("abc")}};
    char body[128];
    size_t o = 0;
    o += (size_t)tg_h1_write_chunk_size(body + o, sizeof body - o, 5);
    memcpy(body + o, "hello\r\n", 7);
    o += 7;
    ssize_t w = tg_h1_write_last_chunk(body + o, sizeof body - o, tr, 1);
    ck_assert_int_eq(w, 3 + 17 + 2);
    for (size_t cap = 0; cap < (size_t)w; cap++)
        ck_assert_int_eq(tg_h1_write_last_chunk(buf, cap, tr, 1), -1);
    o += (size_t)w;
    ck_assert_int_eq(tg_h1_write_last_chunk(buf, sizeof buf, NULL, 0), 5);
    ck_assert(memcmp(buf, "0\r\n\r\n", 5) == 0);

    tg_chunked_t *c = malloc(sizeof *c);
    feed_result_t res;
    feed(c, body, o, NULL, 0, &res);
    ck_assert_int_eq(res.status, 1);
    ck_assert_uint_eq(res.consumed, o);
    ck_assert(res.outlen == 5 && memcmp(res.out, "hello", 5) == 0);
    tg_header_t h[2];
    size_t n;
    ck_assert_int_eq(tg_chunked_trailers(c, h, 2, &n), 0);
    ck_assert(n == 1 && tg_str_eq(h[0].name, tr[0].name) && tg_str_eq(h[0].value, tr[0].value));
    free(c);
}
END_TEST

/* -------------------------------------------------------------------- path */

#define P_BAD ((const char *)1)
#define P_FORBID ((const char *)2)

static const struct path_case {
    const char *in;
    const char *out; /* or P_BAD / P_FORBID */
} path_cases[] = {
    {"/", "/"},
    {"/a/b/c", "/a/b/c"},
    {"/a/b/", "/a/b/"},
    {"//admin", "/admin"},
    {"///a//b///", "/a/b/"},
    {"/./admin", "/admin"},
    {"/x/../admin", "/admin"},
    {"/a/b/../../c", "/c"},
    {"/a/./b/./", "/a/b/"},
    {"/a/.", "/a/"},
    {"/a/..", "/"},
    {"/a/b/..", "/a/"},
    {"/.", "/"},
    {"/..a/.b/...", "/..a/.b/..."},
    {"/%61dmin", "/admin"},
    {"/%41%5a%30%2D%2e%5F%7e", "/AZ0-._~"},
    {"/a%7Eb", "/a~b"},
    {"/a%3fb", "/a%3Fb"},
    {"/a%3Fb", "/a%3Fb"},
    {"/%e2%82%ac", "/%E2%82%AC"},
    {"/a%20b", "/a%20b"},
    {"/%25", "/%25"},
    {"/%2e/admin", "/admin"},
    {"/x/%2e%2e/admin", "/admin"},
    {"/x/.%2E/admin", "/admin"},
    {"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="},
    {"/a\"<>^`{|}[]", "/a\"<>^`{|}[]"},
    {"/a?b", P_BAD},
    {"/a#b", P_BAD},
    {"", P_BAD},
    {"a/b", P_BAD},
    {"*", P_BAD},
    {"/a b", P_BAD},
    {"/a\tb", P_BAD},
    {"/a\x01", P_BAD},
    {"/a\x7f", P_BAD},
    {"/caf\xc3\xa9", P_BAD},
    {"/%", P_BAD},
    {"/%4", P_BAD},
    {"/%4g", P_BAD},
    {"/%g4", P_BAD},
    {"/a%", P_BAD},
    {"/admin;x", P_FORBID},
    {"/admin;", P_FORBID},
    {"/a;b/c", P_FORBID},
    {"/admin%20", P_FORBID},
    {"/admin%09/x", P_FORBID},
    {"/admin%0a", P_FORBID},
    {"/admin%20%2e", "/admin%20."},
    {"/a%2fb", P_FORBID},
    {"/a%2Fb", P_FORBID},
    {"/a%5cb", P_FORBID},
    {"/a%5Cb", P_FORBID},
    {"/a\\b", P_FORBID},
    {"/a%00b", P_FORBID},
    {"/../a", P_FORBID},
    {"/..", P_FORBID},
    {"/a/../../b", P_FORBID},
    {"/%2e%2e/a", P_FORBID},
    {"/a/./../..", P_FORBID},
};

START_TEST(path_normalize)
{
    const struct path_case *t = &path_cases[_i];
    size_t len = strlen(t->in);
    char *in = malloc(len + 1), *out = malloc(len + 1);
    memcpy(in, t->in, len);
    size_t n = 0;
    int r = tg_path_normalize(in, len, out, len, &n);
    if (t->out == P_BAD) {
        ck_assert_msg(r == TG_PATH_ERR_BAD, "row %d (%s): got %d", _i, t->in, r);
    } else if (t->out == P_FORBID) {
        ck_assert_msg(r == TG_PATH_ERR_FORBIDDEN, "row %d (%s): got %d", _i, t->in, r);
    } else {
        ck_assert_msg(r == TG_PATH_OK, "row %d (%s): got %d", _i, t->in, r);
        ck_assert_msg(n == strlen(t->out) && memcmp(out, t->out, n) == 0,
                      "row %d (%s): got \"%.*s\" want \"%s\"", _i, t->in, (int)n, out, t->out);
        /* Idempotent, and in-place normalisation gives the same result. */
        size_t n2 = 0;
        char *again = malloc(n);
        ck_assert_int_eq(tg_path_normalize(out, n, again, n, &n2), TG_PATH_OK);
        ck_assert(n2 == n && memcmp(again, out, n) == 0);
        free(again);
        ck_assert_int_eq(tg_path_normalize(in, len, in, len, &n2), TG_PATH_OK);
        ck_assert(n2 == n && memcmp(in, out, n) == 0);
    }
    free(in);
    free(out);
}
END_TEST

START_TEST(path_small_cap)
{
    char out[8];
    size_t n;
    ck_assert_int_eq(tg_path_normalize("/abc", 4, out, 0, &n), TG_PATH_ERR_BAD);
    ck_assert_int_eq(tg_path_normalize("/abc", 4, out, 3, &n), TG_PATH_ERR_BAD);
    ck_assert_int_eq(tg_path_normalize("/abc/", 5, out, 4, &n), TG_PATH_ERR_BAD);
    ck_assert_int_eq(tg_path_normalize("/%41%41", 7, out, 3, &n), TG_PATH_OK); /* shrinks */
    ck_assert(n == 3 && memcmp(out, "/AA", 3) == 0);
    ck_assert_int_eq(tg_path_normalize("/%3F", 4, out, 3, &n), TG_PATH_ERR_BAD);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("request");
    tcase_add_loop_test(tc, request_valid, 0, NELEM(req_ok));
    tcase_add_test(tc, request_fields);
    tcase_add_loop_test(tc, request_reject, 0, NELEM(req_bad));
    tcase_add_loop_test(tc, request_incomplete_prefixes, 0, NELEM(req_ok));
    tcase_add_test(tc, request_early_errors);
    tcase_add_test(tc, request_pipelined);
    tcase_add_test(tc, request_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("response");
    tcase_add_loop_test(tc, response_valid, 0, NELEM(resp_ok));
    tcase_add_loop_test(tc, response_reject, 0, NELEM(resp_bad));
    tcase_add_test(tc, response_limits);
    tcase_add_test(tc, error_mapping);
    tcase_add_test(tc, msg_helpers);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunked");
    tcase_add_loop_test(tc, chunked_whole_and_split, 0, NELEM(chunk_cases));
    tcase_add_test(tc, chunked_trailers_and_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("write");
    tcase_add_test(tc, write_request_roundtrip);
    tcase_add_test(tc, write_response_roundtrip);
    tcase_add_test(tc, write_rejects_invalid_fields);
    tcase_add_test(tc, write_chunks);
    suite_add_tcase(s, tc);

    tc = tcase_create("path");
    tcase_add_loop_test(tc, path_normalize, 0, NELEM(path_cases));
    tcase_add_test(tc, path_small_cap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tg_check_run(http_suite());
}
