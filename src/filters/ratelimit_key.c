/* The value a rate-limit entry counts under (filters/ratelimit_int.h).
 *
 * Values are "tagged" so that kinds never collide: 'c' + consumer, 'i' +
 * client address (also the fallback of key: consumer for anonymous
 * requests), 'v' + a header, parameter or claim value. A request without
 * the value gets the single byte '-': all such requests of one entry share
 * one bucket, so leaving a header out is never a way around a limit. */
#include "filters/ratelimit_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out (at least n bytes); returns the length. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* The first value of parameter `name` in a query string (decoded). */
static bool query_value(tg_arena_t *a, tg_str_t q, const char *name, tg_str_t *out)
{
    size_t nl = strlen(name);
    const char *p = q.p, *end = q.p + q.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ne = eq ? eq : pe;
        char *nbuf = tg_arena_alloc(a, (size_t)(ne - p) + 1);
        if (nbuf == NULL)
            return false;
        size_t dn = pct_decode(p, (size_t)(ne - p), nbuf);
        if (dn == nl && memcmp(nbuf, name, nl) == 0) {
            const char *v = eq ? eq + 1 : pe;
            char *vbuf = tg_arena_alloc(a, (size_t)(pe - v) + 1);
            if (vbuf == NULL)
                return false;
            *out = tg_str(vbuf, pct_decode(v, (size_t)(pe - v), vbuf));
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

/* A claim as text: strings as they are, anything else as compact JSON. */
static bool claim_value(tg_arena_t *a, void *claims, const char *name, tg_str_t *out)
{
    json_t *v = claims ? json_object_get((json_t *)claims, name) : NULL;
    if (v == NULL || json_is_null(v))
        return false;
    if (json_is_string(v)) {
        *out = tg_str(json_string_value(v), json_string_length(v));
        return true;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (text == NULL)
        return false;
    char *copy = tg_arena_strdup(a, text);
    free(text);
    if (copy == NULL)
        return false;
    *out = tg_str_c(copy);
    return true;
}

/* The raw value for entry `c` (not tagged), or false when the request has none. */
static bool raw_value(tg_exchange_t *ex, const tg_rate_limit_cfg_t *c, char *tag, tg_str_t *out)
{
    const tg_ex_request_t *rq = tg_ex_request(ex);
    const tg_identity_t *id = tg_ex_identity(ex);
    tg_arena_t *a = tg_exchange_arena(ex);
    *tag = 'v';
    switch (c->key) {
    case TG_RL_KEY_CONSUMER:
        if (id->consumer) {
            *tag = 'c';
            *out = tg_str_c(id->consumer);
            return true;
        }
        /* anonymous: counted per client address (docs/rate-limiting.md) */
        /* fall through */
    case TG_RL_KEY_CLIENT_IP:
        *tag = 'i';
        *out = tg_str_c(rq->client_ip);
        return out->len > 0;
    case TG_RL_KEY_ROUTE:
        *out = TG_STR_LIT("");
        return true;
    case TG_RL_KEY_HEADER: {
        const tg_header_t *h = tg_headers_find(rq->headers, rq->nheaders, c->key_arg);
        if (h == NULL || h->value.len == 0)
            return false;
        *out = h->value;
        return true;
    }
    case TG_RL_KEY_QUERY:
        return query_value(a, rq->query, c->key_arg, out) && out->len > 0;
    case TG_RL_KEY_JWT:
        return claim_value(a, id->claims, c->key_arg, out) && out->len > 0;
    }
    return false;
}

int tg__rl_key(tg_exchange_t *ex, const tg_rate_limit_cfg_t *c, tg_str_t *out)
{
    char tag;
    tg_str_t v = TG_STR_NULL;
    if (!raw_value(ex, c, &tag, &v)) {
        *out = TG_STR_LIT("-");
        return 0;
    }
    char *buf = tg_arena_alloc(tg_exchange_arena(ex), v.len + 1);
    if (buf == NULL)
        return -1;
    buf[0] = tag;
    memcpy(buf + 1, v.p, v.len);
    *out = tg_str(buf, v.len + 1);
    return 0;
}
