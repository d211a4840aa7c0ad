/* Compact JWS (RFC 7515 §7.1) verification: pure functions over the token's
 * bytes and an immutable key set, no I/O (the fuzzer links them directly). */
#ifndef TG_FILTERS_JWS_H
#define TG_FILTERS_JWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "filters/jwks.h"

typedef enum tg_jws_res {
    TG_JWS_OK = 0,
    TG_JWS_INVALID,    /* malformed, refused algorithm, crit, bad signature, no fitting key */
    TG_JWS_NO_KEY,     /* the header names a kid the set does not hold */
} tg_jws_res_t;

/* Header checks only: three base64url parts, a JSON object header whose
 * "alg" is in `algs` (bit set of 1u << tg_jwt_alg_t; "none" never is), no
 * "crit", "kid" a string when present. */
bool tg_jws_header_ok(uint32_t algs, const char *tok, size_t len);
/* The full check with the keys of `set`: the key must fit the algorithm
 * (tg_jwk_fits) and match the kid when the header has one (without a kid
 * every fitting key is tried). On TG_JWS_OK, *claims is the payload (a JSON
 * object, a new reference for the caller). Claims are not checked here. */
tg_jws_res_t tg_jws_verify(const tg_jwks_t *set, uint32_t algs, const char *tok, size_t len, json_t **claims);

#endif
