/* JWK parsing (RFC 7517/7518/8037) into OpenSSL keys, and JWS signature
 * verification with OpenSSL EVP. */
#include "filters/jwks.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TG_JWKS_MAX_BYTES (1u << 20)
#define TG_JWKS_MAX_KEYS 64

static const char *const alg_names[TG_JWT_NALGS] = {
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
};

int tg_jwt_alg_from_name(const char *name, size_t len)
{
    for (int i = 0; i < TG_JWT_NALGS; i++)
        if (strlen(alg_names[i]) == len && memcmp(alg_names[i], name, len) == 0)
            return i;
    return -1;
}

const char *tg_jwt_alg_name(tg_jwt_alg_t alg) { return alg < TG_JWT_NALGS ? alg_names[alg] : "?"; }

unsigned char *tg_b64url_decode(const char *s, size_t n, size_t *out_len)
{
    unsigned char *out = malloc(n * 3 / 4 + 3);
    if (out == NULL)
        return NULL;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
              : c >= '0' && c <= '9' ? c - '0' + 52 : c == '-' ? 62 : c == '_' ? 63 : -1;
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* RFC 4648 §3.5 canonical form: no leftover bits set, no 1-char tail. */
    if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0) {
        free(out);
        return NULL;
    }
    *out_len = o;
    return out;
}

static unsigned char *member_bytes(json_t *k, const char *name, size_t *len)
{
    const char *s = json_string_value(json_object_get(k, name));
    return s ? tg_b64url_decode(s, strlen(s), len) : NULL;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) > 0)
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_key(json_t *k)
{
    size_t nl = 0, el = 0;
    unsigned char *n = member_bytes(k, "n", &nl), *e = member_bytes(k, "e", &el);
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn = n ? BN_bin2bn(n, (int)nl, NULL) : NULL, *be = e ? BN_bin2bn(e, (int)el, NULL) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    /* 2048 bits at least (NIST SP 800-131A); smaller moduli are refused. */
    if (bn && be && bld && BN_num_bits(bn) >= 2048 && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pkey = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *ec_key(json_t *k, const char *group, size_t coord)
{
    size_t xl = 0, yl = 0;
    unsigned char *x = member_bytes(k, "x", &xl), *y = member_bytes(k, "y", &yl);
    EVP_PKEY *pkey = NULL;
    unsigned char pub[1 + 2 * 66];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    /* RFC 7518 §6.2.1.2 wants full-length coordinates, but common producers
     * (PyJWT before 2.7, others) strip leading zero bytes. The integer is the
     * same, so shorter coordinates are left-padded; OpenSSL still checks
     * that the point is on the curve. */
    if (x && y && bld && xl >= 1 && xl <= coord && yl >= 1 && yl <= coord) {
        pub[0] = 0x04; /* uncompressed point (SEC 1 §2.3.3) */
        memset(pub + 1, 0, 2 * coord);
        memcpy(pub + 1 + coord - xl, x, xl);
        memcpy(pub + 1 + 2 * coord - yl, y, yl);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * coord))
            pkey = from_params("EC", bld); /* fromdata checks the point is on the curve */
    }
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

static int parse_key(json_t *k, tg_jwk_t *out, char *err, size_t errlen)
{
    const char *kty = json_string_value(json_object_get(k, "kty"));
    const char *use = json_string_value(json_object_get(k, "use"));
    const char *alg = json_string_value(json_object_get(k, "alg"));
    const char *kid = json_string_value(json_object_get(k, "kid"));
    const char *crv = json_string_value(json_object_get(k, "crv"));
    if (kty == NULL || (use && strcmp(use, "sig") != 0))
        return 1; /* skipped: not a signing key */
    out->alg = alg ? tg_jwt_alg_from_name(alg, strlen(alg)) : -1;
    if (alg && out->alg < 0)
        return 1; /* restricted to an algorithm we do not accept (RSA-OAEP, none, ...) */
    if (strcmp(kty, "RSA") == 0) {
        out->kind = TG_JWK_RSA;
        out->pkey = rsa_key(k);
    } else if (strcmp(kty, "EC") == 0 && crv && (strcmp(crv, "P-256") == 0 || strcmp(crv, "P-384") == 0)) {
        bool p256 = strcmp(crv, "P-256") == 0;
        out->kind = p256 ? TG_JWK_EC_P256 : TG_JWK_EC_P384;
        out->pkey = ec_key(k, p256 ? "P-256" : "P-384", p256 ? 32 : 48);
    } else if (strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0) {
        size_t xl = 0;
        unsigned char *x = member_bytes(k, "x", &xl);
        out->kind = TG_JWK_ED25519;
        out->pkey = x && xl == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xl) : NULL;
        free(x);
    } else if (strcmp(kty, "oct") == 0) {
        out->kind = TG_JWK_OCT;
        out->secret = member_bytes(k, "k", &out->secret_len);
        if (out->secret && out->secret_len < 32) {
            snprintf(err, errlen, "key%s%s: an oct key needs at least 32 bytes", kid ? " " : "", kid ? kid : "");
            return -1;
        }
        if (out->secret == NULL)
            goto bad;
    } else {
        return 1; /* unknown key type or curve: skipped */
    }
    if (out->kind != TG_JWK_OCT && out->pkey == NULL)
        goto bad;
    if (kid && (out->kid = strdup(kid)) == NULL)
        goto bad;
    return 0;
bad:
    snprintf(err, errlen, "key%s%s (%s): invalid or too weak key material", kid ? " " : "", kid ? kid : "", kty);
    return -1;
}

static void free_key(tg_jwk_t *k)
{
    EVP_PKEY_free(k->pkey);
    if (k->secret)
        OPENSSL_cleanse(k->secret, k->secret_len);
    free(k->secret);
    free(k->kid);
}

static tg_jwks_t *set_new(size_t cap)
{
    tg_jwks_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    if ((s->keys = calloc(cap ? cap : 1, sizeof *s->keys)) == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

tg_jwks_t *tg_jwks_parse(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    json_t *keys = doc ? json_object_get(doc, "keys") : NULL;
    if (doc == NULL || !json_is_array(keys)) {
        snprintf(err, errlen, doc ? "a JWK Set needs a \"keys\" array" : "not JSON: %s (line %d)", je.text, je.line);
        json_decref(doc);
        return NULL;
    }
    size_t n = json_array_size(keys);
    tg_jwks_t *s = n <= TG_JWKS_MAX_KEYS ? set_new(n) : NULL;
    if (s == NULL)
        snprintf(err, errlen, n > TG_JWKS_MAX_KEYS ? "more than %d keys" : "out of memory", TG_JWKS_MAX_KEYS);
    for (size_t i = 0; s && i < n; i++) {
        json_t *k = json_array_get(keys, i);
        int r = json_is_object(k) ? parse_key(k, &s->keys[s->n], err, errlen) : 1;
        if (r != 0) { /* a refused or skipped key may hold partial material */
            free_key(&s->keys[s->n]);
            memset(&s->keys[s->n], 0, sizeof s->keys[s->n]);
        }
        if (r < 0) {
            tg_jwks_release(s);
            s = NULL;
        } else if (r == 0) {
            s->n++;
        }
    }
    if (s && s->n == 0) {
        snprintf(err, errlen, "no usable signing key (RSA >= 2048 bits, EC P-256/P-384, Ed25519, oct)");
        tg_jwks_release(s);
        s = NULL;
    }
    json_decref(doc);
    return s;
}

tg_jwks_t *tg_jwks_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s", path);
        return NULL;
    }
    char *buf = malloc(TG_JWKS_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, TG_JWKS_MAX_BYTES + 1, f) : 0;
    fclose(f);
    tg_jwks_t *s = NULL;
    if (buf == NULL)
        snprintf(err, errlen, "out of memory");
    else if (n > TG_JWKS_MAX_BYTES)
        snprintf(err, errlen, "%s is larger than 1 MiB", path);
    else {
        char e2[200];
        if ((s = tg_jwks_parse(buf, n, e2, sizeof e2)) == NULL)
            snprintf(err, errlen, "%s: %s", path, e2);
    }
    free(buf);
    return s;
}

tg_jwks_t *tg_jwks_from_secret(const char *secret, char *err, size_t errlen)
{
    tg_jwks_t *s = set_new(1);
    if (s == NULL || (s->keys[0].secret = (unsigned char *)strdup(secret)) == NULL) {
        snprintf(err, errlen, "out of memory");
        tg_jwks_release(s);
        return NULL;
    }
    s->keys[0].kind = TG_JWK_OCT;
    s->keys[0].alg = -1;
    s->keys[0].secret_len = strlen(secret);
    s->n = 1;
    return s;
}

tg_jwks_t *tg_jwks_retain(tg_jwks_t *s)
{
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void tg_jwks_release(tg_jwks_t *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        free_key(&s->keys[i]);
    free(s->keys);
    free(s);
}

/* ---- verification ---- */

bool tg_jwk_fits(const tg_jwk_t *k, tg_jwt_alg_t alg)
{
    if (k->alg >= 0 && k->alg != (int)alg)
        return false;
    switch (alg) {
    case TG_JWT_HS256: case TG_JWT_HS384: case TG_JWT_HS512: return k->kind == TG_JWK_OCT;
    case TG_JWT_RS256: case TG_JWT_RS384: case TG_JWT_RS512:
    case TG_JWT_PS256: case TG_JWT_PS384: case TG_JWT_PS512: return k->kind == TG_JWK_RSA;
    case TG_JWT_ES256: return k->kind == TG_JWK_EC_P256;
    case TG_JWT_ES384: return k->kind == TG_JWK_EC_P384;
    case TG_JWT_EDDSA: return k->kind == TG_JWK_ED25519;
    default: return false;
    }
}

static const EVP_MD *alg_md(tg_jwt_alg_t alg)
{
    switch (alg) {
    case TG_JWT_HS256: case TG_JWT_RS256: case TG_JWT_PS256: case TG_JWT_ES256: return EVP_sha256();
    case TG_JWT_HS384: case TG_JWT_RS384: case TG_JWT_PS384: case TG_JWT_ES384: return EVP_sha384();
    case TG_JWT_HS512: case TG_JWT_RS512: case TG_JWT_PS512: return EVP_sha512();
    default: return NULL; /* EdDSA: the signature scheme hashes itself */
    }
}

/* JWS ECDSA signatures are r || s, fixed width (RFC 7518 §3.4); OpenSSL
 * wants DER. Returns the DER length, 0 when malformed. */
static size_t ecdsa_der(const unsigned char *sig, size_t siglen, size_t coord, unsigned char **der)
{
    if (siglen != 2 * coord)
        return 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)coord, NULL), *s = BN_bin2bn(sig + coord, (int)coord, NULL);
    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return 0;
    }
    int n = i2d_ECDSA_SIG(es, der);
    ECDSA_SIG_free(es);
    return n > 0 ? (size_t)n : 0;
}

static bool verify_hmac(const tg_jwk_t *k, const EVP_MD *md, const unsigned char *data, size_t len,
                        const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(md, k->secret, (int)k->secret_len, data, len, mac, &maclen) == NULL)
        return false;
    return maclen == siglen && CRYPTO_memcmp(mac, sig, maclen) == 0;
}

bool tg_jwk_verify(const tg_jwk_t *k, tg_jwt_alg_t alg, const unsigned char *data, size_t len,
                   const unsigned char *sig, size_t siglen)
{
    if (!tg_jwk_fits(k, alg))
        return false;
    const EVP_MD *md = alg_md(alg);
    if (k->kind == TG_JWK_OCT)
        return verify_hmac(k, md, data, len, sig, siglen);
    unsigned char *der = NULL;
    if (alg == TG_JWT_ES256 || alg == TG_JWT_ES384) {
        size_t dl = ecdsa_der(sig, siglen, alg == TG_JWT_ES256 ? 32 : 48, &der);
        if (dl == 0)
            return false;
        sig = der;
        siglen = dl;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k->pkey) == 1;
    if (ok && (alg == TG_JWT_PS256 || alg == TG_JWT_PS384 || alg == TG_JWT_PS512))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0;
    else if (ok && k->kind == TG_JWK_RSA)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    ok = ok && EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}
