/* gRPC-Web body codec (contracts in grpc_web_codec.h). */
#include "http/grpc_web_codec.h"

#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum { PAD = 64, SKIP = 65, BAD = 66 };

/* A character's 6-bit value, PAD, SKIP (whitespace) or BAD. */
static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    switch (c) {
    case '+': return 62;
    case '/': return 63;
    case '=': return PAD;
    case ' ': case '\t': case '\r': case '\n': return SKIP;
    default: return BAD;
    }
}

/* One group (characters already known to be in the alphabet or '=') → 1 to 3
 * bytes, or -1 for a misplaced '='. */
static int decode_group(const char *q, unsigned char *out)
{
    int v[4];
    for (int i = 0; i < 4; i++)
        v[i] = b64val((unsigned char)q[i]);
    if (v[0] == PAD || v[1] == PAD || (v[2] == PAD && v[3] != PAD))
        return -1;
    out[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
    if (v[2] == PAD)
        return 1;
    out[1] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
    if (v[3] == PAD)
        return 2;
    out[2] = (unsigned char)((v[2] & 3) << 6 | v[3]);
    return 3;
}

long tg_gwc_decode(tg_gwc_dec_t *st, const char *in, size_t n, size_t *used, unsigned char *out,
                   size_t cap)
{
    size_t o = 0, i = 0;
    for (; i < n; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v == SKIP)
            continue;
        if (v == BAD)
            return TG_GWC_BAD_BASE64;
        if (st->nq == 3 && cap - o < 3)
            break; /* this character completes a group with no room for it */
        st->q[st->nq++] = in[i];
        if (st->nq < 4)
            continue;
        int r = decode_group(st->q, out + o);
        if (r < 0)
            return TG_GWC_BAD_BASE64;
        o += (size_t)r;
        st->nq = 0;
    }
    *used = i;
    return (long)o;
}

int tg_gwc_decode_end(const tg_gwc_dec_t *st)
{
    return st->nq ? TG_GWC_TRUNCATED : TG_GWC_OK;
}

static void encode_group(const unsigned char *t, size_t nt, char *o)
{
    o[0] = b64[t[0] >> 2];
    o[1] = b64[(t[0] & 3) << 4 | (nt > 1 ? t[1] >> 4 : 0)];
    o[2] = nt > 1 ? b64[(t[1] & 15) << 2 | (nt > 2 ? t[2] >> 6 : 0)] : '=';
    o[3] = nt > 2 ? b64[t[2] & 63] : '=';
}

size_t tg_gwc_encode(tg_gwc_enc_t *st, const unsigned char *p, size_t n, bool final, char *out)
{
    size_t o = 0, i = 0;
    /* Complete the held group first, then whole groups straight from p. */
    while (st->nrem && st->nrem < 3 && i < n)
        st->rem[st->nrem++] = p[i++];
    if (st->nrem == 3) {
        encode_group(st->rem, 3, out);
        o = 4;
        st->nrem = 0;
    }
    for (; n - i >= 3; i += 3, o += 4)
        encode_group(p + i, 3, out + o);
    while (i < n)
        st->rem[st->nrem++] = p[i++];
    if (final && st->nrem) {
        encode_group(st->rem, st->nrem, out + o);
        o += 4;
        st->nrem = 0;
    }
    return o;
}

int tg_gwc_frames_feed(tg_gwc_frames_t *st, const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (st->left) {
            size_t k = n - i < st->left ? n - i : st->left;
            st->left -= (uint32_t)k;
            i += k;
            continue;
        }
        st->hdr[st->nhdr++] = p[i++];
        if (st->nhdr == 1 && st->hdr[0] > 1)
            return TG_GWC_BAD_FRAME;
        if (st->nhdr < 5)
            continue;
        st->left = (uint32_t)st->hdr[1] << 24 | (uint32_t)st->hdr[2] << 16 |
                   (uint32_t)st->hdr[3] << 8 | st->hdr[4];
        st->nhdr = 0;
        st->frames++;
    }
    return TG_GWC_OK;
}

int tg_gwc_frames_end(const tg_gwc_frames_t *st)
{
    return st->nhdr || st->left ? TG_GWC_TRUNCATED : TG_GWC_OK;
}
