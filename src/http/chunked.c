/* Incremental chunked transfer-coding decoder (RFC 9112 §7.1).
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *
 * A byte-at-a-time state machine for the framing lines (they are a few bytes
 * each) and a bulk slice for chunk data. All state lives in tg_chunked_t, so
 * the result does not depend on how the input is split across calls: every
 * decision is taken on the byte that makes it, and trailer lines are
 * validated when their CRLF arrives, whatever call that is.
 *
 * Strictness, for the same reason as in the head parser (a proxy and the
 * server behind it must agree on where the body ends): CRLF only, no
 * whitespace inside or after the size except BWS before ';' and around '='
 * (which the grammar allows), chunk size at most 16 hex digits (so it fits
 * 64 bits), at most TG_CHUNKED_MAX_EXT bytes of extensions per size line.
 * Extensions are checked and dropped; trailer fields are kept for the caller,
 * who decides which of them may be merged or forwarded (RFC 9110 §6.5). */
#include "http/h1_int.h"

enum {
    S_SIZE,        /* hex digits of chunk-size */
    S_EXT_WS,      /* BWS that must be followed by ';' */
    S_EXT_NAME0,   /* after ';': BWS, then the first name byte */
    S_EXT_NAME,    /* in ext-name */
    S_EXT_NAME_WS, /* BWS after the name: '=' or ';' follows */
    S_EXT_VAL0,    /* after '=': BWS, then token or quoted-string */
    S_EXT_TOKEN,   /* in a token ext-val */
    S_EXT_QS,      /* in a quoted-string ext-val */
    S_EXT_QS_ESC,  /* after '\' in a quoted-string */
    S_EXT_QS_END,  /* after the closing DQUOTE */
    S_SIZE_LF,     /* CR of the size line seen */
    S_DATA,        /* chunk-data, `remaining` bytes left */
    S_DATA_CR,     /* CRLF after chunk-data */
    S_DATA_LF,
    S_TRAILER,    /* in a trailer line (or at the start of one) */
    S_TRAILER_LF, /* CR of a non-empty trailer line seen */
    S_END_LF,     /* CR of the final empty line seen */
    S_DONE,
    S_ERROR,
};

void tg_chunked_init(tg_chunked_t *c)
{
    /* trailer[] is deliberately left alone: only trailer[0..trailer_len) is
     * ever read, and clearing 8 KiB per body would be pure cost. */
    c->state = S_SIZE;
    c->remaining = 0;
    c->line_len = 0;
    c->ndigits = 0;
    c->done = false;
    c->trailer_len = 0;
}

/* Byte classes for the extension grammar. */
enum { K_BAD = 0, K_WS, K_TOK, K_SEMI, K_EQ, K_DQ, K_BS, K_CR, K_QD, K_NCLASS };

static const uint8_t ext_class[256] = {
    ['\t'] = K_WS,  [' '] = K_WS,  ['\r'] = K_CR,         [';'] = K_SEMI,         ['='] = K_EQ,
    ['"'] = K_DQ,   ['\\'] = K_BS, ['0' ... '9'] = K_TOK, ['A' ... 'Z'] = K_TOK,  ['a' ... 'z'] = K_TOK,
    ['!'] = K_TOK,  ['#'] = K_TOK, ['$'] = K_TOK,         ['%'] = K_TOK,          ['&'] = K_TOK,
    ['\''] = K_TOK, ['*'] = K_TOK, ['+'] = K_TOK,         ['-'] = K_TOK,          ['.'] = K_TOK,
    ['^'] = K_TOK,  ['_'] = K_TOK, ['`'] = K_TOK,         ['|'] = K_TOK,          ['~'] = K_TOK,
    ['('] = K_QD,   [')'] = K_QD,  [','] = K_QD,          ['/'] = K_QD,           [':'] = K_QD,
    ['<'] = K_QD,   ['>'] = K_QD,  ['?'] = K_QD,          ['@'] = K_QD,           ['['] = K_QD,
    [']'] = K_QD,   ['{'] = K_QD,  ['}'] = K_QD,          [0x80 ... 0xff] = K_QD, /* obs-text */
};

/* Transitions of the extension grammar, one row per state S_EXT_WS ..
 * S_EXT_QS_END; a missing entry (0, which is S_SIZE and never a target here)
 * is an error.
 *   ext-name = token; ext-val = token / quoted-string;
 *   qdtext = HTAB / SP / VCHAR except DQUOTE and '\\' / obs-text;
 *   quoted-pair = "\\" ( HTAB / SP / VCHAR / obs-text ). */
#define ROW(state) ((state)-S_EXT_WS)
static const uint8_t ext_next[ROW(S_EXT_QS_END) + 1][K_NCLASS] = {
    [ROW(S_EXT_WS)] = {[K_WS] = S_EXT_WS, [K_SEMI] = S_EXT_NAME0},
    [ROW(S_EXT_NAME0)] = {[K_WS] = S_EXT_NAME0, [K_TOK] = S_EXT_NAME},
    [ROW(S_EXT_NAME)] = {[K_WS] = S_EXT_NAME_WS,
                         [K_TOK] = S_EXT_NAME,
                         [K_SEMI] = S_EXT_NAME0,
                         [K_EQ] = S_EXT_VAL0,
                         [K_CR] = S_SIZE_LF},
    [ROW(S_EXT_NAME_WS)] = {[K_WS] = S_EXT_NAME_WS, [K_SEMI] = S_EXT_NAME0, [K_EQ] = S_EXT_VAL0},
    [ROW(S_EXT_VAL0)] = {[K_WS] = S_EXT_VAL0, [K_TOK] = S_EXT_TOKEN, [K_DQ] = S_EXT_QS},
    [ROW(S_EXT_TOKEN)] =
        {[K_WS] = S_EXT_WS, [K_TOK] = S_EXT_TOKEN, [K_SEMI] = S_EXT_NAME0, [K_CR] = S_SIZE_LF},
    [ROW(S_EXT_QS)] = {[K_WS] = S_EXT_QS,
                       [K_TOK] = S_EXT_QS,
                       [K_SEMI] = S_EXT_QS,
                       [K_EQ] = S_EXT_QS,
                       [K_DQ] = S_EXT_QS_END,
                       [K_BS] = S_EXT_QS_ESC,
                       [K_QD] = S_EXT_QS},
    [ROW(S_EXT_QS_ESC)] = {[K_WS] = S_EXT_QS,
                           [K_TOK] = S_EXT_QS,
                           [K_SEMI] = S_EXT_QS,
                           [K_EQ] = S_EXT_QS,
                           [K_DQ] = S_EXT_QS,
                           [K_BS] = S_EXT_QS,
                           [K_QD] = S_EXT_QS},
    [ROW(S_EXT_QS_END)] = {[K_WS] = S_EXT_WS, [K_SEMI] = S_EXT_NAME0, [K_CR] = S_SIZE_LF},
};

/* The size line after its digits: one table lookup per byte. */
static inline int ext_step(int state, uint8_t ch)
{
    int next = ext_next[ROW(state)][ext_class[ch]];
    return next == S_SIZE ? S_ERROR : next;
}
#undef ROW

/* One byte of the size line. */
static inline int size_step(tg_chunked_t *c, uint8_t ch)
{
    int state = c->state;
    if (state == S_SIZE) {
        int h = tg__h1_hex((char)ch);
        if (h >= 0) {
            if (c->ndigits == 16) /* more would not fit 64 bits */
                return S_ERROR;
            c->ndigits++;
            c->remaining = c->remaining << 4 | (uint64_t)h;
            return S_SIZE;
        }
        if (c->ndigits == 0)
            return S_ERROR; /* no leading junk, no empty size */
        if (ch == '\r')
            return S_SIZE_LF;
        state = S_EXT_WS; /* only BWS or ';' may follow the digits */
    }
    int next = ext_step(state, ch);
    /* Extension bytes are bounded (the CR ending the line is not one). */
    if (next != S_SIZE_LF && ++c->line_len > TG_CHUNKED_MAX_EXT)
        return S_ERROR;
    return next;
}

/* A byte of the trailer section. Lines are stored raw (with their CRLF) and
 * validated as field lines once complete; line_len is the current line's
 * length so far. */
static inline int trailer_step(tg_chunked_t *c, uint8_t ch)
{
    switch (c->state) {
    case S_TRAILER:
        if (ch == '\r')
            return c->line_len == 0 ? S_END_LF : S_TRAILER_LF;
        if (ch == '\n' || c->trailer_len >= TG_CHUNKED_MAX_TRAILER - 2)
            return S_ERROR; /* bare LF, or no room left for this line's CRLF */
        c->trailer[c->trailer_len++] = (char)ch;
        c->line_len++;
        return S_TRAILER;
    case S_TRAILER_LF: {
        if (ch != '\n')
            return S_ERROR;
        size_t start = c->trailer_len - c->line_len;
        tg_header_t f;
        c->trailer[c->trailer_len++] = '\r';
        c->trailer[c->trailer_len++] = '\n';
        if (tg__h1_parse_field(c->trailer, start, c->trailer_len, &f) != (ssize_t)c->trailer_len)
            return S_ERROR;
        c->line_len = 0;
        return S_TRAILER;
    }
    case S_END_LF:
        if (ch != '\n')
            return S_ERROR;
        c->done = true;
        return S_DONE;
    default:
        return S_ERROR;
    }
}

/* One framing byte (anything but chunk-data). Returns the next state. */
static inline int step(tg_chunked_t *c, uint8_t ch)
{
    switch (c->state) {
    case S_SIZE_LF:
        if (ch != '\n')
            return S_ERROR;
        c->ndigits = 0;
        c->line_len = 0;
        return c->remaining == 0 ? S_TRAILER : S_DATA;
    case S_DATA_CR:
        return ch == '\r' ? S_DATA_LF : S_ERROR;
    case S_DATA_LF:
        return ch == '\n' ? S_SIZE : S_ERROR;
    case S_TRAILER:
    case S_TRAILER_LF:
    case S_END_LF:
        return trailer_step(c, ch);
    default:
        return size_step(c, ch);
    }
}

ssize_t tg_chunked_decode(tg_chunked_t *c, const char *in, size_t len, tg_str_t *data)
{
    size_t i = 0;
    *data = tg_str(in, 0);
    if (c->state == S_ERROR)
        return TG_H1_ERR_BAD;
    while (i < len && c->state != S_DONE) {
        if (c->state == S_DATA) {
            /* One data slice per call: hand it out and let the caller loop. */
            size_t take = c->remaining < len - i ? (size_t)c->remaining : len - i;
            *data = tg_str(in + i, take);
            c->remaining -= take;
            if (c->remaining == 0)
                c->state = S_DATA_CR;
            return (ssize_t)(i + take);
        }
        c->state = step(c, (uint8_t)in[i]);
        if (c->state == S_ERROR)
            return TG_H1_ERR_BAD;
        i++;
    }
    return (ssize_t)i;
}

bool tg_chunked_prefix_bad(const char *in, size_t len)
{
    tg_chunked_t probe; /* a scratch decoder: ~8 KiB of stack, no allocation */
    tg_chunked_init(&probe);
    while (len > 0 && !probe.done) {
        tg_str_t data;
        ssize_t r = tg_chunked_decode(&probe, in, len, &data);
        if (r < 0)
            return true;
        if (r == 0)
            break;
        in += r;
        len -= (size_t)r;
    }
    return false;
}

int tg_chunked_trailers(const tg_chunked_t *c, tg_header_t *hdrs, size_t cap, size_t *n)
{
    *n = 0;
    if (!c->done)
        return TG_H1_ERR_BAD;
    size_t pos = 0, k = 0;
    while (pos < c->trailer_len) {
        if (k == cap)
            return TG_H1_ERR_HEADERS_TOO_LARGE;
        /* Every stored line was validated when it was received. */
        ssize_t r = tg__h1_parse_field(c->trailer, pos, c->trailer_len, &hdrs[k]);
        if (r <= 0)
            return TG_H1_ERR_BAD;
        pos = (size_t)r;
        k++;
    }
    *n = k;
    return 0;
}
