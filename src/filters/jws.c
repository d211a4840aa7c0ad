/* Compact JWS verification (jws.h). */
#include "filters/jws.h"

#include <stdlib.h>
#include <string.h>

#define TG_JWS_MAX_KID 255

typedef struct parsed {
    const char *tok;
    size_t hlen, plen, slen;          /* the three parts' lengths */
    int alg;
    char kid[TG_JWS_MAX_KID + 1];
    bool has_kid;
} parsed_t;

/* A base64url part holding a JSON object, or NULL. */
static json_t *decode_json(const char *p, size_t n)
{
    size_t len = 0;
    unsigned char *raw = tg_b64url_decode(p, n, &len);
    json_t *j = raw ? json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static bool parse_header(uint32_t algs, const char *tok, size_t len, parsed_t *pt)
{
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL)
        return false; /* a JWE (5 parts) or garbage */
    pt->tok = tok;
    pt->hlen = (size_t)(d1 - tok);
    pt->plen = (size_t)(d2 - d1 - 1);
    pt->slen = len - (size_t)(d2 + 1 - tok);
    json_t *h = decode_json(tok, pt->hlen);
    const json_t *alg = json_object_get(h, "alg"), *kid = json_object_get(h, "kid");
    /* crit names extensions that must be understood: none are (RFC 7515 §4.1.11). */
    bool ok = json_is_string(alg) && json_object_get(h, "crit") == NULL && (kid == NULL || json_is_string(kid));
    if (ok) {
        pt->alg = tg_jwt_alg_from_name(json_string_value(alg), json_string_length(alg));
        ok = pt->alg >= 0 && (algs & (1u << pt->alg));
    }
    if (ok && kid) {
        size_t kl = json_string_length(kid);
        ok = kl <= TG_JWS_MAX_KID && memchr(json_string_value(kid), '\0', kl) == NULL;
        if (ok)
            memcpy(pt->kid, json_string_value(kid), kl + 1);
        pt->has_kid = true;
    }
    json_decref(h);
    return ok;
}

bool tg_jws_header_ok(uint32_t algs, const char *tok, size_t len)
{
    parsed_t pt = { 0 };
    return parse_header(algs, tok, len, &pt);
}

static tg_jws_res_t check_signature(const tg_jwks_t *set, const parsed_t *pt)
{
    size_t siglen = 0;
    unsigned char *sig = tg_b64url_decode(pt->tok + pt->hlen + pt->plen + 2, pt->slen, &siglen);
    if (sig == NULL)
        return TG_JWS_INVALID;
    bool kid_known = false, ok = false;
    for (size_t i = 0; i < set->n && !ok; i++) {
        const tg_jwk_t *k = &set->keys[i];
        if (pt->has_kid && (k->kid == NULL || strcmp(k->kid, pt->kid) != 0))
            continue;
        kid_known = true;
        ok = tg_jwk_verify(k, (tg_jwt_alg_t)pt->alg, (const unsigned char *)pt->tok, pt->hlen + 1 + pt->plen,
                           sig, siglen);
    }
    free(sig);
    return ok ? TG_JWS_OK : (pt->has_kid && !kid_known) ? TG_JWS_NO_KEY : TG_JWS_INVALID;
}

tg_jws_res_t tg_jws_verify(const tg_jwks_t *set, uint32_t algs, const char *tok, size_t len, json_t **claims)
{
    parsed_t pt = { 0 };
    *claims = NULL;
    if (!parse_header(algs, tok, len, &pt))
        return TG_JWS_INVALID;
    tg_jws_res_t r = check_signature(set, &pt);
    if (r != TG_JWS_OK)
        return r;
    if ((*claims = decode_json(tok + pt.hlen + 1, pt.plen)) == NULL)
        return TG_JWS_INVALID;
    return TG_JWS_OK;
}
