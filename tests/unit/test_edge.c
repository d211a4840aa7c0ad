/* Unit tests for the edge-hardening rules of src/http that the codecs rely on
 * (docs/security.md): the Transfer-Encoding verdict (chunked must be final,
 * RFC 9112 §6.3 rule 4; unknown codings before it are 501), the same rules on
 * responses, and tg_chunked_prefix_bad, the early check that lets a codec
 * refuse a message whose body bytes came with its head before passing
 * anything on. Table-driven: one row per message. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http/h1.h"
#include "check_run.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MAXH 64

static const tg_h1_limits_t LIM = {16384, 100, 8192};

static int preq(const char *s, tg_request_t *req)
{
    static tg_header_t h[MAXH];
    return tg_h1_parse_request(s, strlen(s), &LIM, h, MAXH, req);
}

static int presp(const char *s, tg_response_t *resp)
{
    static tg_header_t h[MAXH];
    return tg_h1_parse_response(s, strlen(s), false, 16384, h, MAXH, resp);
}

/* Transfer-Encoding values and the verdict: 0 = accepted as chunked. */
static const struct te_row {
    const char *te;
    int want;
} te_rows[] = {
    {"chunked", 0},
    {"Chunked", 0},
    {"CHUNKED", 0},
    {"  chunked\t", 0},
    {"chunked, identity", TG_H1_ERR_BAD},  /* chunked not final: §6.3 rule 4 */
    {"xchunked", TG_H1_ERR_BAD},
    {"chunkedx", TG_H1_ERR_BAD},
    {"gzip", TG_H1_ERR_BAD},
    {"identity", TG_H1_ERR_BAD},
    {"chunked, gzip", TG_H1_ERR_BAD},
    {"chunked, chunked", TG_H1_ERR_BAD},   /* §6.1: never twice */
    {"gzip, chunked", TG_H1_ERR_NOT_IMPLEMENTED},
    {"identity, chunked", TG_H1_ERR_NOT_IMPLEMENTED},
    {"gzip, chunked, chunked", TG_H1_ERR_BAD},
    {", chunked", TG_H1_ERR_BAD},
    {"chunked;q=1", TG_H1_ERR_BAD},
    {"", TG_H1_ERR_BAD},
};

START_TEST(request_te_verdict)
{
    const struct te_row *t = &te_rows[_i];
    char buf[256];
    snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: %s\r\n\r\n", t->te);
    tg_request_t req;
    int r = preq(buf, &req);
    if (t->want == 0) {
        ck_assert_msg(r > 0, "TE \"%s\": got %d", t->te, r);
        ck_assert_int_eq(req.body, TG_BODY_CHUNKED);
    } else {
        ck_assert_msg(r == t->want, "TE \"%s\": got %d want %d", t->te, r, t->want);
    }
}
END_TEST

START_TEST(response_te_verdict)
{
    const struct te_row *t = &te_rows[_i];
    char buf[256];
    snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n", t->te);
    tg_response_t resp;
    int r = presp(buf, &resp);
    if (t->want == 0) {
        ck_assert_msg(r > 0, "TE \"%s\": got %d", t->te, r);
        ck_assert_int_eq(resp.body, TG_BODY_CHUNKED);
    } else {
        ck_assert_msg(r < 0, "TE \"%s\": accepted on a response", t->te); /* any error: 502 */
    }
}
END_TEST

/* The last of several Transfer-Encoding fields decides what is final. */
START_TEST(te_over_several_fields)
{
    tg_request_t req;
    ck_assert_int_eq(preq("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n", &req),
                     TG_H1_ERR_NOT_IMPLEMENTED);
    ck_assert_int_eq(preq("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                          "Transfer-Encoding: gzip\r\n\r\n", &req),
                     TG_H1_ERR_BAD);
    ck_assert_int_eq(preq("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n", &req),
                     TG_H1_ERR_BAD);
}
END_TEST

/* Body prefixes: true = already broken, false = fine so far (complete or not). */
static const struct prefix_row {
    const char *in;
    bool bad;
} prefix_rows[] = {
    {"", false},
    {"5", false},
    {"5\r\nhel", false},
    {"5\r\nhello\r\n0\r\n\r\n", false},
    {"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", false}, /* bytes after the end are not body */
    {"5;a=\"q\\\"x\"\r\nhello\r\n", false},
    {"0\r\nX-T: a\r\n\r\n", false},
    {"zz\r\n", true},
    {"-5\r\n", true},
    {" 5\r\n", true},
    {"5x\r\n", true},
    {"5\nhello", true},
    {"5\r\nhelloXX", true},
    {"10000000000000005\r\n", true},
    {"0\r\nX-T : a\r\n\r\n", true},
    {"0\r\nX-T: a\r\n b\r\n\r\n", true},
    {"0\r\n\n", true},
};

START_TEST(chunked_prefix)
{
    const struct prefix_row *t = &prefix_rows[_i];
    ck_assert_msg(tg_chunked_prefix_bad(t->in, strlen(t->in)) == t->bad, "row %d \"%s\"", _i, t->in);
}
END_TEST

START_TEST(chunked_prefix_limits)
{
    /* Extensions over TG_CHUNKED_MAX_EXT and trailers over TG_CHUNKED_MAX_TRAILER. */
    static char buf[TG_CHUNKED_MAX_TRAILER + 64];
    memset(buf, 'e', sizeof buf);
    memcpy(buf, "5;", 2);
    ck_assert(!tg_chunked_prefix_bad(buf, TG_CHUNKED_MAX_EXT - 8));
    ck_assert(tg_chunked_prefix_bad(buf, TG_CHUNKED_MAX_EXT + 8));
    memcpy(buf, "0\r\nX-T: ", 8);
    ck_assert(!tg_chunked_prefix_bad(buf, 1000));
    ck_assert(tg_chunked_prefix_bad(buf, sizeof buf));
}
END_TEST

static Suite *edge_suite(void)
{
    Suite *s = suite_create("edge");
    TCase *tc = tcase_create("transfer-encoding");
    tcase_add_loop_test(tc, request_te_verdict, 0, NELEM(te_rows));
    tcase_add_loop_test(tc, response_te_verdict, 0, NELEM(te_rows));
    tcase_add_test(tc, te_over_several_fields);
    suite_add_tcase(s, tc);
    tc = tcase_create("chunked-prefix");
    tcase_add_loop_test(tc, chunked_prefix, 0, NELEM(prefix_rows));
    tcase_add_test(tc, chunked_prefix_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tg_check_run(edge_suite());
}
