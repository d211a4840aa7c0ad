/* gRPC-Web (route `grpc_web: true`) translated to gRPC in the exchange.
 *
 * Requests with Content-Type application/grpc-web[+proto] ("binary") or
 * application/grpc-web-text[+proto] ("text", base64) go upstream as
 * application/grpc[+proto]; message framing is the same, so binary bodies
 * pass through and text bodies are decoded as they stream (the pure codec
 * is http/grpc_web_codec.c: whitespace between base64 characters skipped,
 * padding allowed at every group). Both check the request's framing: a bad
 * base64 group, a frame flag other than 0/1, or a body that ends inside a
 * group or a frame is answered 3 INVALID_ARGUMENT. The answer gets
 * the client's content type back, and its trailers become the gRPC-Web
 * trailer frame (flag 0x80, "name: value\r\n" lines) at the end of the body
 * (base64 like the rest in text mode). Other requests on the route are
 * native gRPC and untouched.
 *
 * Buffers: text mode holds two decode buffers and one encode buffer of
 * TG_GW_BUF bytes, from the exchange arena, allocated on first use. */
#include "proxy/exchange_int.h"
#include "http/grpc_web_codec.h"

#include <string.h>

#define TG_GW_BUF 16384
#define TG_GW_IN_MAX (TG_GW_BUF / 4 * 3) /* input per encode step: TG_GW_BUF of output */

enum { GW_NONE = 0, GW_BINARY, GW_TEXT };

typedef struct tg_gw {
    int mode;
    tg_str_t ctype;             /* the client's content type, echoed in the answer */
    char *dec[2];               /* decoded request slices, alternating */
    unsigned cur;
    tg_gwc_dec_t in;            /* request base64 not yet a whole group */
    tg_gwc_frames_t frames;     /* request framing, as far as taken upstream */
    bool inner;                 /* tg_exchange_request_body called from here */
    char *enc;                  /* encoded answer bytes (text mode) */
    tg_gwc_enc_t out;           /* answer bytes not yet a whole base64 group */
    bool failed;                /* the request body was rejected (answered) */
} tg_gw_t;

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

/* ---- request: base64 text → bytes; framing checked ---- */

/* The body is not gRPC-Web: 3 INVALID_ARGUMENT, our mapping of 400 and what
 * grpc-web's reference proxy answers to bad base64 (Envoy's filter answers
 * 400, which its gRPC mapping turns into 13 INTERNAL). Before the answer
 * began, a gateway-made gRPC error; after it, the answer ends with that
 * status in its trailers (or is cut). ex may be gone on return. */
static void reject(tg_exchange_t *ex, tg_gw_t *g, const char *word)
{
    g->failed = true;
    ex->close_after = true; /* the rest of the body is not worth reading */
    if (ex->uc) { /* RST_STREAM CANCEL: the upstream must not answer too */
        tg_upconn_abort(ex->uc);
        ex->uc = NULL;
        ex->uc_ready = false;
        tg__ex_server_release(ex);
    }
    if (!ex->resp_head_sent)
        tg__ex_respond_error(ex, 400, word);
    else if (!tg__ex_grpc_end_status(ex, 3 /* INVALID_ARGUMENT */, word))
        tg__ex_finish(ex, false);
}

/* Hands p[0..n) to the ordinary body path. The nested call clears g->inner
 * itself: when it returns 0 the exchange may have ended (an error answered,
 * the upstream failed) and must not be touched; > 0 means it lives on. */
static size_t forward(tg_exchange_t *ex, tg_gw_t *g, const char *p, size_t n)
{
    g->inner = true;
    return tg_exchange_request_body(ex, p, n);
}

static size_t request_text(tg_exchange_t *ex, tg_gw_t *g, const char *p, size_t n)
{
    /* At most TG_GW_IN_MAX characters: their bytes always fit one buffer. */
    size_t take = n < TG_GW_IN_MAX ? n : TG_GW_IN_MAX, used = 0;
    unsigned char *out = (unsigned char *)g->dec[g->cur];
    tg_gwc_dec_t in = g->in; /* committed once the bytes are taken */
    long o = tg_gwc_decode(&in, p, take, &used, out, TG_GW_BUF);
    if (o < 0) {
        reject(ex, g, "bad_grpc_web_text");
        return 0;
    }
    tg_gwc_frames_t fr = g->frames;
    if (tg_gwc_frames_feed(&fr, out, (size_t)o) < 0) {
        reject(ex, g, "bad_grpc_web_frame");
        return 0;
    }
    if (o > 0 && forward(ex, g, (const char *)out, (size_t)o) < (size_t)o)
        return 0; /* not taken (all or nothing upstream): decoded again later */
    g->in = in;
    g->frames = fr;
    if (o)
        g->cur ^= 1u; /* the other buffer is free: its slice was consumed */
    return used;
}

static size_t request_binary(tg_exchange_t *ex, tg_gw_t *g, const char *p, size_t n)
{
    tg_gwc_frames_t fr = g->frames;
    if (tg_gwc_frames_feed(&fr, (const unsigned char *)p, n) < 0) {
        reject(ex, g, "bad_grpc_web_frame");
        return 0;
    }
    size_t t = forward(ex, g, p, n);
    if (t > 0) /* a prefix of bytes checked above: cannot fail */
        (void)tg_gwc_frames_feed(&g->frames, (const unsigned char *)p, t);
    return t;
}

size_t tg__ex_grpc_web_request(tg_exchange_t *ex, const char *p, size_t n)
{
    tg_gw_t *g = gw(ex);
    if (g == NULL)
        return SIZE_MAX; /* not ours: the caller goes on */
    if (g->inner) {
        g->inner = false; /* the nested call from forward(): goes on as usual */
        return SIZE_MAX;
    }
    if (g->failed)
        return n; /* answered already: the rest is dropped */
    return g->mode == GW_TEXT ? request_text(ex, g, p, n) : request_binary(ex, g, p, n);
}

bool tg__ex_grpc_web_request_end(tg_exchange_t *ex)
{
    tg_gw_t *g = gw(ex);
    if (g == NULL)
        return false;
    if (g->failed)
        return true;
    if (tg_gwc_decode_end(&g->in) != TG_GWC_OK)
        reject(ex, g, "bad_grpc_web_text"); /* padding is mandatory */
    else if (tg_gwc_frames_end(&g->frames) != TG_GWC_OK)
        reject(ex, g, "truncated_grpc_web_frame");
    else
        return false;
    return true;
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

/* Pushes bytes of the answer (encoded into `enc` in text mode, at most
 * `cap` input bytes) and flushes, so that `enc` is free again unless the
 * flush is pending. Returns how many input bytes went out. */
static size_t push(tg_exchange_t *ex, char *enc, size_t cap, const char *p, size_t n, bool final)
{
    tg_gw_t *g = gw(ex);
    if (g->mode == GW_BINARY)
        return ex->ops->response_body(ex->ctx, p, n);
    size_t take = n < cap ? n : cap;
    tg_gwc_enc_t st = g->out; /* committed once the output is taken */
    size_t o = tg_gwc_encode(&st, (const unsigned char *)p, take, final && take == n, enc);
    if (o && ex->ops->response_body(ex->ctx, enc, o) < o)
        return 0; /* no room: nothing committed */
    g->out = st;
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
    char *enc = g->mode == GW_TEXT ? tg_arena_alloc(&ex->arena, TG_GWC_ENCODED_MAX(o)) : NULL;
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
