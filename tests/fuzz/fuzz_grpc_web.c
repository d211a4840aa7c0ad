/* libFuzzer harness for the gRPC-Web body codec (http/grpc_web_codec.c).
 *
 * Input: byte 0 seeds the split points and output room, the rest is a
 * request body as a grpc-web-text client would send it. Checked:
 *  - decoding in pieces (split points and output room chosen from the seed,
 *    as the network and a full upstream queue would choose them) agrees with
 *    a one-shot reference decoder written here independently: same verdict
 *    (ok / bad base64 / ends mid-group), same bytes;
 *  - the framing check agrees with a one-shot reference parse, fed whole or
 *    in the same pieces;
 *  - encoding the body's raw bytes in pieces and decoding them back gives
 *    the bytes again, and the encoder never writes past TG_GWC_ENCODED_MAX. */
/* The checks are the point of the harness: keep assert() on in every build. */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "http/grpc_web_codec.h"

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* ---- reference: one shot, no state ---- */

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int ref_val(unsigned char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : c == '=' ? 64 : -1;
}

/* Returns TG_GWC_OK / BAD_BASE64 / TRUNCATED; the bytes in out, *olen. */
static int ref_decode(const uint8_t *in, size_t n, uint8_t *out, size_t *olen)
{
    uint8_t *clean = malloc(n + 1);
    size_t m = 0, o = 0;
    int r = TG_GWC_OK;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' || in[i] == '\n')
            continue;
        if (ref_val(in[i]) < 0)
            r = TG_GWC_BAD_BASE64;
        clean[m++] = in[i];
    }
    for (size_t g = 0; r == TG_GWC_OK && g + 4 <= m; g += 4) {
        int v0 = ref_val(clean[g]), v1 = ref_val(clean[g + 1]);
        int v2 = ref_val(clean[g + 2]), v3 = ref_val(clean[g + 3]);
        if (v0 == 64 || v1 == 64 || (v2 == 64 && v3 != 64)) {
            r = TG_GWC_BAD_BASE64;
            break;
        }
        uint32_t bits = (uint32_t)v0 << 18 | (uint32_t)v1 << 12 | (uint32_t)(v2 & 63) << 6 |
                        (uint32_t)(v3 & 63);
        out[o++] = (uint8_t)(bits >> 16);
        if (v2 != 64)
            out[o++] = (uint8_t)(bits >> 8);
        if (v3 != 64)
            out[o++] = (uint8_t)bits;
    }
    if (r == TG_GWC_OK && m % 4)
        r = TG_GWC_TRUNCATED;
    free(clean);
    *olen = o;
    return r;
}

/* Framing verdict of a whole body: OK, BAD_FRAME or TRUNCATED; frames seen. */
static int ref_frames(const uint8_t *p, size_t n, uint64_t *frames)
{
    size_t i = 0;
    *frames = 0;
    while (i < n) {
        if (p[i] > 1)
            return TG_GWC_BAD_FRAME;
        if (n - i < 5)
            return TG_GWC_TRUNCATED;
        uint64_t len = (uint64_t)p[i + 1] << 24 | (uint64_t)p[i + 2] << 16 | (uint64_t)p[i + 3] << 8 | p[i + 4];
        (*frames)++;
        if (n - i - 5 < len)
            return TG_GWC_TRUNCATED;
        i += 5 + (size_t)len;
    }
    return TG_GWC_OK;
}

/* ---- the codec, in pieces ---- */

static int pieces_decode(const uint8_t *in, size_t n, uint32_t seed, uint8_t *out, size_t *olen)
{
    tg_gwc_dec_t st = { { 0 }, 0 };
    size_t pos = 0, o = 0;
    while (pos < n) {
        size_t piece = 1 + next(&seed) % (n - pos < 64 ? n - pos : 64);
        size_t off = 0;
        while (off < piece) {
            size_t room = 3 + next(&seed) % 14, used = 0;
            long r = tg_gwc_decode(&st, (const char *)in + pos + off, piece - off, &used, out + o, room);
            if (r < 0) {
                *olen = o;
                return TG_GWC_BAD_BASE64;
            }
            assert((size_t)r <= room && used <= piece - off);
            assert(used > 0); /* room >= 3: always progress */
            assert(used == piece - off || room - (size_t)r < 3); /* stops only when full */
            o += (size_t)r;
            off += used;
        }
        pos += piece;
    }
    *olen = o;
    return tg_gwc_decode_end(&st);
}

static int pieces_frames(const uint8_t *p, size_t n, uint32_t seed, uint64_t *frames)
{
    tg_gwc_frames_t st;
    memset(&st, 0, sizeof st);
    for (size_t pos = 0; pos < n;) {
        size_t piece = 1 + next(&seed) % (n - pos);
        if (tg_gwc_frames_feed(&st, p + pos, piece) < 0)
            return TG_GWC_BAD_FRAME;
        pos += piece;
    }
    *frames = st.frames;
    return tg_gwc_frames_end(&st);
}

static void check_frames(const uint8_t *p, size_t n, uint32_t seed)
{
    uint64_t f1 = 0, f2 = 0;
    int a = ref_frames(p, n, &f1);
    int b = pieces_frames(p, n, seed, &f2);
    assert(a == b);
    if (a != TG_GWC_BAD_FRAME)
        assert(f1 == f2);
}

static void check_roundtrip(const uint8_t *p, size_t n, uint32_t seed)
{
    char *enc = malloc(TG_GWC_ENCODED_MAX(n) + 64);
    tg_gwc_enc_t st = { { 0 }, 0 };
    size_t o = 0;
    for (size_t pos = 0;;) { /* the last piece (maybe empty) is final */
        size_t piece = n - pos ? 1 + next(&seed) % (n - pos) : 0;
        bool final = pos + piece == n;
        size_t w = tg_gwc_encode(&st, p + pos, piece, final, enc + o);
        assert(w % 4 == 0 && w <= TG_GWC_ENCODED_MAX(piece));
        o += w;
        pos += piece;
        if (final)
            break;
    }
    assert(st.nrem == 0 && o == (n + 2) / 3 * 4);
    uint8_t *back = malloc(n + 1);
    size_t blen = 0;
    assert(pieces_decode((const uint8_t *)enc, o, seed, back, &blen) == TG_GWC_OK);
    assert(blen == n && memcmp(back, p, n) == 0);
    free(back);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t seed = 0x9e3779b9u ^ data[0] * 0x01000193u;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    uint8_t *want = malloc(n + 1), *got = malloc(n + 1);
    size_t wlen = 0, glen = 0;
    int a = ref_decode(body, n, want, &wlen);
    int b = pieces_decode(body, n, seed, got, &glen);
    assert(a == b);
    if (a != TG_GWC_BAD_BASE64) {
        assert(wlen == glen && memcmp(want, got, wlen) == 0);
        check_frames(want, wlen, seed); /* the decoded body's framing */
    }
    check_frames(body, n, seed); /* a binary grpc-web body */
    check_roundtrip(body, n, seed);
    free(want);
    free(got);
    return 0;
}
