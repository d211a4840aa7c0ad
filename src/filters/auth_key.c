/* API keys (auth.api_key): from a header and/or a query parameter. Every
 * configured key, plain or "sha256:", is kept only as its SHA-256 digest; a
 * presented key is hashed and looked up by digest, and the digests are
 * compared with CRYPTO_memcmp, so the time taken depends on neither the
 * key's bytes nor how many of them match. */
#include "filters/auth_int.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TG_API_KEY_MAX 1024   /* longer presented keys are invalid without hashing */

typedef struct key_entry {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    const tg_consumer_cfg_t *consumer; /* NULL = empty slot */
} key_entry_t;

struct tg_key_state {
    const tg_api_key_cfg_t *cfg;
    key_entry_t *slots;     /* open addressing, power-of-two size, load <= 1/2 */
    size_t mask;
};

static int hex_val(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static size_t slot_of(const unsigned char *d, size_t mask)
{
    size_t h;
    memcpy(&h, d, sizeof h); /* a digest is uniformly distributed already */
    return h & mask;
}

static void insert(tg_key_state_t *s, const unsigned char *d, const tg_consumer_cfg_t *c)
{
    size_t i = slot_of(d, s->mask);
    while (s->slots[i].consumer)
        i = (i + 1) & s->mask;
    memcpy(s->slots[i].digest, d, SHA256_DIGEST_LENGTH);
    s->slots[i].consumer = c;
}

tg_key_state_t *tg__key_build(const tg_config_t *cfg, const tg_api_key_cfg_t *kc, char *err, size_t errlen)
{
    size_t n = 0, size = 8;
    for (size_t i = 0; i < cfg->nconsumers; i++)
        n += cfg->consumers[i].napi_keys;
    while (size < 2 * n)
        size <<= 1;
    tg_key_state_t *s = calloc(1, sizeof *s);
    if (s == NULL || (s->slots = calloc(size, sizeof *s->slots)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = kc;
    s->mask = size - 1;
    for (size_t i = 0; i < cfg->nconsumers; i++) {
        const tg_consumer_cfg_t *c = &cfg->consumers[i];
        for (size_t k = 0; k < c->napi_keys; k++) {
            unsigned char d[SHA256_DIGEST_LENGTH];
            const char *key = c->api_keys[k];
            if (strncmp(key, "sha256:", 7) == 0) {
                for (size_t b = 0; b < SHA256_DIGEST_LENGTH; b++)
                    d[b] = (unsigned char)(hex_val(key[7 + 2 * b]) << 4 | hex_val(key[8 + 2 * b]));
            } else {
                SHA256((const unsigned char *)key, strlen(key), d);
            }
            insert(s, d, c);
        }
    }
    return s;
}

void tg__key_free(tg_key_state_t *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s->slots, (s->mask + 1) * sizeof *s->slots);
    free(s->slots);
    free(s);
}

static const tg_consumer_cfg_t *lookup(const tg_key_state_t *s, const char *key, size_t len)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, d);
    for (size_t i = slot_of(d, s->mask); s->slots[i].consumer; i = (i + 1) & s->mask)
        if (CRYPTO_memcmp(s->slots[i].digest, d, sizeof d) == 0)
            return s->slots[i].consumer;
    return NULL;
}

/* The value of query parameter `name` in q (percent-decoded into buf), with
 * its [start, end) span in q for removal. Returns the length, -1 when absent,
 * -2 when present more than once or too long. */
static int query_param(tg_str_t q, const char *name, char *buf, size_t cap, size_t *start, size_t *end)
{
    size_t nl = strlen(name);
    int found = -1;
    for (size_t i = 0; i <= q.len;) {
        size_t j = i;
        while (j < q.len && q.p[j] != '&')
            j++;
        if (j - i > nl && memcmp(q.p + i, name, nl) == 0 && q.p[i + nl] == '=') {
            if (found != -1)
                return -2;
            size_t o = 0;
            for (size_t k = i + nl + 1; k < j; k++) {
                char c = q.p[k];
                if (c == '%' && k + 2 < j + 1 && hex_val(q.p[k + 1]) >= 0 && hex_val(q.p[k + 2]) >= 0) {
                    c = (char)(hex_val(q.p[k + 1]) << 4 | hex_val(q.p[k + 2]));
                    k += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (o + 1 >= cap)
                    return -2;
                buf[o++] = c;
            }
            found = (int)o;
            *start = i;
            *end = j;
        }
        i = j + 1;
    }
    return found;
}

/* The query without the parameter at [start, end) and its separator. */
static void strip_param(tg_exchange_t *ex, tg_str_t q, size_t start, size_t end)
{
    char *out = tg_arena_alloc(tg_exchange_arena(ex), q.len + 1);
    if (out == NULL)
        return;
    size_t o = 0;
    memcpy(out, q.p, start);
    o = start;
    size_t rest = end < q.len ? end + 1 : end; /* skip the '&' after it */
    memcpy(out + o, q.p + rest, q.len - rest);
    o += q.len - rest;
    if (o && out[o - 1] == '&')
        o--;
    tg_ex_set_query(ex, tg_str(out, o));
}

tg_authr_t tg__key_check(tg_exchange_t *ex, tg_key_state_t *s)
{
    const tg_ex_request_t *rq = tg_ex_request(ex);
    const tg_api_key_cfg_t *kc = s->cfg;
    char qbuf[TG_API_KEY_MAX + 1];
    tg_str_t key = TG_STR_NULL;
    size_t qs = 0, qe = 0;
    bool in_query = false;
    if (kc->header) {
        const tg_header_t *h = tg_headers_find(rq->headers, rq->nheaders, kc->header);
        if (h) {
            const tg_header_t *again = tg_headers_find(h + 1, rq->nheaders - (size_t)(h + 1 - rq->headers), kc->header);
            if (again)
                return TG_AUTHR_INVALID; /* two keys: ambiguous, refuse */
            key = h->value;
        }
    }
    if (key.p == NULL && kc->query) {
        int n = query_param(rq->query, kc->query, qbuf, sizeof qbuf, &qs, &qe);
        if (n == -2)
            return TG_AUTHR_INVALID;
        if (n >= 0) {
            key = tg_str(qbuf, (size_t)n);
            in_query = true;
        }
    }
    if (key.p == NULL)
        return TG_AUTHR_ABSENT;
    const tg_consumer_cfg_t *c = key.len && key.len <= TG_API_KEY_MAX ? lookup(s, key.p, key.len) : NULL;
    if (c == NULL)
        return TG_AUTHR_INVALID;
    tg__auth_set_consumer(ex, c, NULL, "api_key");
    if (kc->hide) {
        if (!in_query && kc->header)
            tg_ex_req_header_remove(ex, kc->header);
        /* A copy in the query (used or not) is a credential too. */
        if (!in_query && kc->query && query_param(rq->query, kc->query, qbuf, sizeof qbuf, &qs, &qe) >= 0)
            in_query = true;
        if (in_query)
            strip_param(ex, rq->query, qs, qe);
    }
    return TG_AUTHR_OK;
}
