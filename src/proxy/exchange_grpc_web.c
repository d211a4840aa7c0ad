/* gRPC-Web (route `grpc_web: true`) translated to gRPC in the exchange.
 *
 * Requests with Content-Type application/grpc-web[+proto] ("binary") or
 * application/grpc-web-text[+proto] ("text", base64) go upstream as
 * application/grpc[+proto]; message framing is the same, so binary bodies
 * pass through and text bodies are decoded as they stream. The answer gets
 * the client's content type back, and its trailers become the gRPC-Web
 * trailer frame (flag 0x80, "name: value\r\n" lines) at the end of the body
 * (base64 like the rest in text mode). Other requests on the route are
 * native gRPC and untouched.
 *
 * Buffers: text mode holds two decode buffers and one encode buffer of
 * TG_GW_BUF bytes, from the exchange arena, allocated on first use. */
#include "proxy/exchange_int.h"

#include <string.h>

#define TG_GW_BUF 16384
#define TG_GW_IN_MAX (TG_GW_BUF / 4 * 3) /* input per encode step: TG_GW_BUF of output */

enum { GW_NONE = 0, GW_BINARY, GW_TEXT };

typedef struct tg_gw {
    int mode;
    tg_str_t ctype;             /* the client's content type, echoed in the answer */
    char *dec[2];               /* decoded request slices, alternating */
    unsigned cur;
    char in_rem[4];             /* request base64 not yet a whole quad */
    size_t nin_rem;
    bool inner;                 /* tg_exchange_request_body called from here */
    char *enc;                  /* encoded answer bytes (text mode) */
    unsigned char out_rem[2];   /* answer bytes not yet a whole base64 group */
    size_t nout_rem;
} tg_gw_t;

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : c == '=' ? 64 : -1;
}

/* One quad → up to 3 bytes ('=' padding allowed: gRPC-Web text may pad each
 * message). Returns the byte count or -1. */
static int decode_quad(const char *q, char *out)
{
    int v[4];
    for (int i = 0; i < 4; i++)
        if ((v[i] = b64val(q[i])) < 0 || (i < 2 && v[i] == 64))
            return -1;
    out[0] = (char)(v[0] << 2 | v[1] >> 4);
    if (v[2] == 64)
        return v[3] == 64 ? 1 : -1;
    out[1] = (char)((v[1] & 15) << 4 | v[2] >> 2);
    if (v[3] == 64)
        return 2;
    out[2] = (char)((v[2] & 3) << 6 | v[3]);
    return 3;
}

static tg_gw_t *gw(tg_exchange_t *ex) { return ex->gw; }

int tg__ex_grpc_web_setup(tg_exchange_t *ex)
{
    const tg_header_t *h = tg_headers_find(ex->req.headers, ex->req.nheaders, "content-type");
    if (!ex->route->grpc_web || h == NULL || !tg_str_has_prefix(h->value, TG_STR_LIT("application/grpc-web")))
        return 0;
    tg_gw_t *g = tg_arena_calloc(&ex->arena, sizeof *g);
    if (g == NULL)
        return -1;
    tg_str_t rest = tg_str(h->value.p + 20, h->value.len - 20); /* after "application/grpc-web" */
    g->mode = GW_BINARY;
    if (tg_str_has_prefix(rest, TG_STR_LIT("-text"))) {
        g->mode = GW_TEXT;
        rest = tg_str(rest.p + 5, rest.len - 5);
        g->dec[0] = tg_arena_alloc(&ex->arena, TG_GW_BUF);
        g->dec[1] = tg_arena_alloc(&ex->arena, TG_GW_BUF);
        g->enc = tg_arena_alloc(&ex->arena, TG_GW_BUF + 8);
        if (g->dec[0] == NULL || g->dec[1] == NULL || g->enc == NULL)
            return -1;
        ex->req.body = ex->req.body == TG_BODY_NONE ? TG_BODY_NONE : TG_BODY_STREAM; /* length changes */
    }
    g->ctype = h->value;
    ex->gw = g;
    /* "+proto" and other suffixes carry over: application/grpc+proto. */
    char *up = tg_arena_printf(&ex->arena, "application/grpc%.*s", (int)rest.len, rest.p);
    if (up == NULL)
        return -1;
    return tg_ex_req_header_set(ex, "Content-Type", tg_str_c(up));
}

/* ---- request: base64 text → bytes ---- */

size_t tg__ex_grpc_web_request(tg_exchange_t *ex, const char *p, size_t n)
{
    tg_gw_t *g = gw(ex);
    if (g == NULL || g->mode != GW_TEXT || g->inner)
        return SIZE_MAX; /* not ours: the caller goes on */
    size_t take = n < TG_GW_IN_MAX - 4 ? n : TG_GW_IN_MAX - 4;
    char *out = g->dec[g->cur];
    char quad[4];
    size_t nq = g->nin_rem, o = 0;
    memcpy(quad, g->in_rem, nq);
    for (size_t i = 0; i < take; i++) {
        quad[nq++] = p[i];
        if (nq < 4)
            continue;
        int r = decode_quad(quad, out + o);
        if (r < 0) {
            ex->close_after = true;
            tg__ex_respond_error(ex, 400, "bad_grpc_web_text");
            return 0;
        }
        o += (size_t)r;
        nq = 0;
    }
    size_t t = o;
    if (o) {
        g->inner = true;
        t = tg_exchange_request_body(ex, out, o);
        g->inner = false;
    }
    if (t < o)
        return 0; /* not taken (all or nothing upstream): decoded again later */
    memcpy(g->in_rem, quad, nq); /* commit */
    g->nin_rem = nq;
    if (o)
        g->cur ^= 1u; /* the other buffer is free: its slice was consumed */
    return take;
}

/* ---- answer ---- */

void tg__ex_grpc_web_head(tg_exchange_t *ex, tg_response_t *out)
{
    tg_gw_t *g = gw(ex);
    if (g == NULL || out->status < 200)
        return;
    for (size_t i = 0; i < ex->resp_n; i++)
        if (tg_str_ieq_c(ex->resp_h[i].name, "content-type"))
            ex->resp_h[i].value = g->ctype;
    /* The trailer frame (and base64) change the length: always streamed. */
    size_t o = 0;
    for (size_t i = 0; i < ex->resp_n; i++)
        if (!tg_str_ieq_c(ex->resp_h[i].name, "content-length"))
            ex->resp_h[o++] = ex->resp_h[i];
    ex->resp_n = o;
    out->headers = ex->resp_h;
    out->nheaders = ex->resp_n;
    if (!ex->head_req)
        out->body = TG_BODY_STREAM;
}

/* Encodes g->out_rem + p[0..n) into enc; the last 0-2 bytes are kept
 * in rem and nrem unless `final` (then padded). Returns the output length. */
static size_t encode(const tg_gw_t *g, char *enc, const unsigned char *p, size_t n, bool final,
                     unsigned char *rem, size_t *nrem)
{
    unsigned char t[3];
    size_t nt = g->nout_rem, o = 0;
    memcpy(t, g->out_rem, nt);
    for (size_t i = 0; i <= n; i++) {
        if (nt == 3 || (i == n && final && nt > 0)) {
            enc[o++] = b64[t[0] >> 2];
            enc[o++] = b64[(t[0] & 3) << 4 | (nt > 1 ? t[1] >> 4 : 0)];
            enc[o++] = nt > 1 ? b64[(t[1] & 15) << 2 | (nt > 2 ? t[2] >> 6 : 0)] : '=';
            enc[o++] = nt > 2 ? b64[t[2] & 63] : '=';
            nt = 0;
        }
        if (i < n)
            t[nt++] = p[i];
    }
    memcpy(rem, t, nt);
    *nrem = nt;
    return o;
}

/* Pushes bytes of the answer (encoded into `enc` in text mode, at most
 * `cap` input bytes) and flushes, so that `enc` is free again unless the
 * flush is pending. Returns how many input bytes went out. */
static size_t push(tg_exchange_t *ex, char *enc, size_t cap, const char *p, size_t n, bool final)
{
    tg_gw_t *g = gw(ex);
    if (g->mode == GW_BINARY)
        return ex->ops->response_body(ex->ctx, p, n);
    size_t take = n < cap ? n : cap;
    unsigned char rem[3];
    size_t nrem;
    size_t o = encode(g, enc, (const unsigned char *)p, take, final && take == n, rem, &nrem);
    if (o && ex->ops->response_body(ex->ctx, enc, o) < o)
        return 0; /* no room: nothing committed */
    memcpy(g->out_rem, rem, nrem);
    g->nout_rem = nrem;
    if (o) {
        int r = ex->ops->flush(ex->ctx);
        if (r == 1)
            ex->down_pending = true; /* the encode buffer is borrowed until drained */
    }
    return take;
}

size_t tg__ex_grpc_web_body(tg_exchange_t *ex, const char *p, size_t n)
{
    tg_gw_t *g = gw(ex);
    if (g == NULL || g->mode != GW_TEXT)
        return SIZE_MAX; /* binary passes through the ordinary path */
    size_t taken = 0;
    while (taken < n && !ex->down_pending) {
        size_t t = push(ex, g->enc, TG_GW_IN_MAX - 3, p + taken, n - taken, false);
        if (t == 0) {
            if (ex->ops->flush(ex->ctx) != 0)
                break;
            continue;
        }
        taken += t;
    }
    ex->bytes_out += taken;
    if (taken < n)
        ex->up_paused = true;
    return taken;
}

void tg__ex_grpc_web_end(tg_exchange_t *ex, const tg_header_t **trailers, size_t *n)
{
    tg_gw_t *g = gw(ex);
    if (g == NULL || ex->head_req)
        return;
    size_t len = 0;
    for (size_t i = 0; i < *n; i++)
        len += (*trailers)[i].name.len + (*trailers)[i].value.len + 4;
    char *f = tg_arena_alloc(&ex->arena, len + 5);
    if (f == NULL)
        return;
    f[0] = (char)0x80;
    f[1] = (char)(len >> 24);
    f[2] = (char)(len >> 16);
    f[3] = (char)(len >> 8);
    f[4] = (char)len;
    size_t o = 5;
    for (size_t i = 0; i < *n; i++) {
        const tg_header_t *h = &(*trailers)[i];
        for (size_t k = 0; k < h->name.len; k++) /* gRPC-Web: lowercase names */
            f[o++] = h->name.p[k] >= 'A' && h->name.p[k] <= 'Z' ? (char)(h->name.p[k] + 32) : h->name.p[k];
        memcpy(f + o, ": ", 2);
        memcpy(f + o + 2, h->value.p, h->value.len);
        o += h->value.len + 2;
        memcpy(f + o, "\r\n", 2);
        o += 2;
    }
    /* The frame goes out whole, flushing if needed, encoded into its own
     * buffer: the body's may still be borrowed by a pending write. In text
     * mode the encoder then pads the stream's end. */
    char *enc = g->mode == GW_TEXT ? tg_arena_alloc(&ex->arena, (o + 4) / 3 * 4 + 8) : NULL;
    if (g->mode == GW_TEXT && enc == NULL)
        return;
    size_t sent = 0;
    for (int tries = 0; sent < o && tries < 4; tries++) {
        size_t t = push(ex, enc, o, f + sent, o - sent, true);
        sent += t;
        ex->bytes_out += t;
        if (t == 0 && ex->ops->flush(ex->ctx) < 0)
            break;
    }
    *trailers = NULL; /* the frame replaces the HTTP trailers */
    *n = 0;
}
