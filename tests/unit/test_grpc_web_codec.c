/* Unit tests for the gRPC-Web body codec (src/http/grpc_web_codec.c):
 * base64 groups split anywhere, whitespace, per-message padding, output
 * room, the verdicts, the encoder, and the framing check. */
#include <check.h>
#include <string.h>
#include "http/grpc_web_codec.h"
#include "check_run.h"

/* Decodes s fed in pieces of `step` characters with `room` bytes of output
 * per call; returns the verdict, the bytes in out. */
static int dec(const char *s, size_t step, size_t room, unsigned char *out, size_t *olen)
{
    tg_gwc_dec_t st = { { 0 }, 0 };
    size_t n = strlen(s), pos = 0, o = 0;
    while (pos < n) {
        size_t piece = n - pos < step ? n - pos : step, off = 0;
        while (off < piece) {
            size_t used = 0;
            long r = tg_gwc_decode(&st, s + pos + off, piece - off, &used, out + o, room);
            if (r < 0)
                return (int)r;
            ck_assert_uint_gt(used, 0);
            o += (size_t)r;
            off += used;
        }
        pos += piece;
    }
    *olen = o;
    return tg_gwc_decode_end(&st);
}

START_TEST(decode_split_everywhere)
{
    /* "hello" framed, base64'd: every split and room decodes the same */
    const char *s = "AAAAAAVoZWxsbw==";
    unsigned char out[64];
    for (size_t step = 1; step <= strlen(s); step++)
        for (size_t room = 3; room <= 8; room++) {
            size_t n = 0;
            ck_assert_int_eq(dec(s, step, room, out, &n), TG_GWC_OK);
            ck_assert_uint_eq(n, 10);
            ck_assert_int_eq(memcmp(out, "\0\0\0\0\5hello", 10), 0);
        }
}
END_TEST

START_TEST(decode_whitespace_and_padding)
{
    unsigned char out[64];
    size_t n = 0;
    /* two messages, each padded, CRLF and spaces inside groups */
    ck_assert_int_eq(dec("YQ\r\n==\tYm I=\r\nYWJj", 3, 16, out, &n), TG_GWC_OK);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(memcmp(out, "abbabc", 6), 0);
    ck_assert_int_eq(dec(" \r\n\t", 1, 3, out, &n), TG_GWC_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(decode_verdicts)
{
    unsigned char out[64];
    size_t n;
    ck_assert_int_eq(dec("AAAA!AAA", 8, 16, out, &n), TG_GWC_BAD_BASE64);
    ck_assert_int_eq(dec("AB=C", 8, 16, out, &n), TG_GWC_BAD_BASE64);
    ck_assert_int_eq(dec("=AAA", 8, 16, out, &n), TG_GWC_BAD_BASE64);
    ck_assert_int_eq(dec("A===", 8, 16, out, &n), TG_GWC_BAD_BASE64);
    ck_assert_int_eq(dec("AAAA-_AA", 8, 16, out, &n), TG_GWC_BAD_BASE64); /* not base64url */
    ck_assert_int_eq(dec("AAAAQU", 2, 16, out, &n), TG_GWC_TRUNCATED);
    ck_assert_int_eq(dec("AAAAQUI=", 2, 16, out, &n), TG_GWC_OK);
}
END_TEST

START_TEST(decode_stops_when_full)
{
    tg_gwc_dec_t st = { { 0 }, 0 };
    static const char in[] = "YWJjZGVm";
    unsigned char out[8];
    size_t used = 0;
    /* room for one group: the 4th character of the second is not taken */
    ck_assert_int_eq(tg_gwc_decode(&st, in, 8, &used, out, 5), 3);
    ck_assert_uint_eq(used, 7);
    ck_assert_int_eq(tg_gwc_decode(&st, in + 7, 1, &used, out + 3, 5), 3);
    ck_assert_int_eq(memcmp(out, "abcdef", 6), 0);
}
END_TEST

START_TEST(encode_pieces)
{
    const unsigned char *p = (const unsigned char *)"abcdefg";
    char out[64];
    for (size_t cut = 0; cut <= 7; cut++) {
        tg_gwc_enc_t st = { { 0 }, 0 };
        size_t o = tg_gwc_encode(&st, p, cut, false, out);
        o += tg_gwc_encode(&st, p + cut, 7 - cut, true, out + o);
        ck_assert_uint_eq(o, 12);
        ck_assert_int_eq(memcmp(out, "YWJjZGVmZw==", 12), 0);
        ck_assert_uint_eq(st.nrem, 0);
    }
}
END_TEST

START_TEST(frames)
{
    tg_gwc_frames_t st;
    memset(&st, 0, sizeof st);
    const unsigned char two[] = { 0, 0, 0, 0, 2, 'h', 'i', 1, 0, 0, 0, 0 };
    for (size_t i = 0; i < sizeof two; i++)
        ck_assert_int_eq(tg_gwc_frames_feed(&st, two + i, 1), TG_GWC_OK);
    ck_assert_int_eq(tg_gwc_frames_end(&st), TG_GWC_OK);
    ck_assert_uint_eq(st.frames, 2);
    ck_assert_int_eq(tg_gwc_frames_feed(&st, (const unsigned char *)"\0\0\0", 3), TG_GWC_OK);
    ck_assert_int_eq(tg_gwc_frames_end(&st), TG_GWC_TRUNCATED); /* mid-header */
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(tg_gwc_frames_feed(&st, (const unsigned char *)"\0\0\0\0\3ab", 7), TG_GWC_OK);
    ck_assert_int_eq(tg_gwc_frames_end(&st), TG_GWC_TRUNCATED); /* mid-payload */
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(tg_gwc_frames_feed(&st, (const unsigned char *)"\x80", 1), TG_GWC_BAD_FRAME);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("grpc_web_codec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, decode_split_everywhere);
    tcase_add_test(tc, decode_whitespace_and_padding);
    tcase_add_test(tc, decode_verdicts);
    tcase_add_test(tc, decode_stops_when_full);
    tcase_add_test(tc, encode_pieces);
    tcase_add_test(tc, frames);
    suite_add_tcase(s, tc);
    return tg_check_run(s);
}
