/* JSON Web Keys (RFC 7517) as OpenSSL keys, and key sets shared between
 * threads by reference count. A key set is immutable once parsed. */
#ifndef TG_FILTERS_JWKS_H
#define TG_FILTERS_JWKS_H

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include "config/config.h"

typedef enum tg_jwk_kind { TG_JWK_RSA = 1, TG_JWK_EC_P256, TG_JWK_EC_P384, TG_JWK_ED25519,
                           TG_JWK_OCT } tg_jwk_kind_t;

typedef struct tg_jwk {
    char *kid;               /* NULL when absent */
    tg_jwk_kind_t kind;
    int alg;                 /* tg_jwt_alg_t the key is restricted to, or -1 */
    EVP_PKEY *pkey;          /* public key (not for oct) */
    unsigned char *secret;   /* oct keys */
    size_t secret_len;
} tg_jwk_t;

typedef struct tg_jwks {
    atomic_int refs;
    tg_jwk_t *keys;
    size_t n;
} tg_jwks_t;

/* Parses a JWK Set document. Keys of unknown types, private keys' extra
 * members and keys with "use" other than "sig" are skipped; a set with no
 * usable key is an error. Returns a set with refs == 1, or NULL with err. */
tg_jwks_t *tg_jwks_parse(const char *text, size_t len, char *err, size_t errlen);
tg_jwks_t *tg_jwks_load_file(const char *path, char *err, size_t errlen);
/* A set holding one shared secret (HS* with `secret:`). */
tg_jwks_t *tg_jwks_from_secret(const char *secret, char *err, size_t errlen);
tg_jwks_t *tg_jwks_retain(tg_jwks_t *s);
void tg_jwks_release(tg_jwks_t *s);

/* Whether key k may verify algorithm alg (the key type must match the
 * algorithm family and curve: no RS256 key used as an HS256 secret). */
bool tg_jwk_fits(const tg_jwk_t *k, tg_jwt_alg_t alg);
/* Verifies signature sig over data[0..len) with key k. */
bool tg_jwk_verify(const tg_jwk_t *k, tg_jwt_alg_t alg, const unsigned char *data, size_t len,
                   const unsigned char *sig, size_t siglen);
/* base64url without padding (RFC 7515 §2) of s[0..n) → malloc'd bytes
 * (*out_len set); NULL when not canonical base64url or on OOM. */
unsigned char *tg_b64url_decode(const char *s, size_t n, size_t *out_len);
/* "RS256" → TG_JWT_RS256; -1 for unknown names (and "none"). */
int tg_jwt_alg_from_name(const char *name, size_t len);
const char *tg_jwt_alg_name(tg_jwt_alg_t alg);

#endif
