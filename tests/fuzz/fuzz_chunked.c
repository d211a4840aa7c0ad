/* libFuzzer harness for the chunked decoder. The input is decoded three ways:
 * in one piece, in two pieces cut at a point derived from the data, and byte
 * by byte (small inputs). All three must agree on the outcome, the bytes
 * consumed, the decoded data and the stored trailer section: the decoder's
 * result may not depend on how the network split the body. The codecs'
 * early check, tg_chunked_prefix_bad, must agree with the decoder too. */
/* The checks are the point of the harness: keep assert() on in every build. */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "http/h1.h"

typedef struct outcome {
    int status; /* 1 done, 0 needs more, -1 bad */
    size_t consumed;
    size_t outlen;
    unsigned char *out; /* decoded data, at most the input size */
} outcome_t;

/* Feeds data in pieces of `step` bytes (the first piece is `first` bytes). */
static void decode(tg_chunked_t *c, const uint8_t *data, size_t size, size_t first, size_t step, outcome_t *o)
{
    size_t pos = 0;
    tg_str_t d;
    tg_chunked_init(c);
    o->status = 0;
    o->consumed = 0;
    o->outlen = 0;
    /* An empty piece consumes nothing and yields nothing. */
    assert(tg_chunked_decode(c, (const char *)data, 0, &d) == 0 && d.len == 0);
    for (bool first_piece = true; pos < size && !c->done; first_piece = false) {
        size_t piece = first_piece ? first : step;
        if (piece > size - pos)
            piece = size - pos;
        size_t off = 0;
        while (off < piece && !c->done) {
            ssize_t r = tg_chunked_decode(c, (const char *)data + pos + off, piece - off, &d);
            if (r < 0) {
                o->status = -1;
                return;
            }
            assert(r > 0); /* progress whenever input is offered and not done */
            assert((size_t)r <= piece - off);
            assert(d.len == 0 || (d.p >= (const char *)data + pos + off &&
                                  d.p + d.len <= (const char *)data + pos + off + r));
            assert(o->outlen + d.len <= size);
            memcpy(o->out + o->outlen, d.p, d.len);
            o->outlen += d.len;
            off += (size_t)r;
        }
        pos += off;
        o->consumed = pos;
    }
    o->status = c->done ? 1 : 0;
}

static void same(const outcome_t *a, const tg_chunked_t *ca, const outcome_t *b, const tg_chunked_t *cb)
{
    assert(a->status == b->status);
    if (a->status < 0)
        return;
    assert(a->consumed == b->consumed && a->outlen == b->outlen);
    assert(memcmp(a->out, b->out, a->outlen) == 0);
    if (a->status == 1) {
        assert(ca->trailer_len == cb->trailer_len);
        assert(memcmp(ca->trailer, cb->trailer, ca->trailer_len) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tg_chunked_t c1, c2;
    static tg_header_t h[TG_CHUNKED_MAX_TRAILER / 4];
    outcome_t whole = {.out = malloc(size + 1)}, split = {.out = malloc(size + 1)};

    decode(&c1, data, size, size, size, &whole);
    assert(tg_chunked_prefix_bad((const char *)data, size) == (whole.status < 0));
    if (whole.status == 1) {
        size_t n;
        assert(tg_chunked_trailers(&c1, h, sizeof h / sizeof h[0], &n) == 0);
        for (size_t i = 0; i < n; i++)
            assert(h[i].name.len > 0);
    }
    uint32_t hash = 2166136261u; /* FNV-1a picks the cut point */
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ data[i]) * 16777619u;
    size_t cut = size ? hash % (size + 1) : 0;
    decode(&c2, data, size, cut, size, &split);
    same(&whole, &c1, &split, &c2);
    if (size <= 4096) {
        decode(&c2, data, size, 1, 1, &split);
        same(&whole, &c1, &split, &c2);
    }
    free(whole.out);
    free(split.out);
    return 0;
}
