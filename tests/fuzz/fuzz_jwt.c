/* libFuzzer harness for JWT verification and JWK Set parsing.
 *
 * Input: the first byte picks the mode. Even: the rest is a compact JWS,
 * verified (every algorithm allowed) against a fixed key set holding an oct
 * key (kid "h", the secret below) and an RSA key (kid "r"); a token that
 * verifies must carry a JSON object payload. Odd: the rest is a JWK Set
 * document, parsed, and every key checked against every algorithm. Nothing
 * may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/jwks.h"
#include "filters/jws.h"

static const char fixed_jwks[] =
    "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
    "{\"kty\":\"RSA\",\"kid\":\"r\",\"e\":\"AQAB\",\"n\":\"vuubutwpSV-wjgrnpTwCw8eptWcUBOojVTGy2O15ipUNKMFIuX8yAsYFv_vXXotGtkixny0TK7DCqQpczwnwznfq0IEq93YadJ78"
    "mwtfOUIBY983XjyvyW-XSU1j1u0ZnJHcbLvHdC1cuoenQTt3n_nXG0ueUWpmWW5cQdQLYt0jPuNsmOeE4VoqMdS7QhSa5gOf9_Mf"
    "dGeXq6U7HjWkqGxEkZcV3AqPjKnBKSrXeb5EbntafgzER5qrDIBSmX0cmB-_QPPN2NiP1AzLCCrV53FeyI82FvtV2QWYEcR1aqzn"
    "_ZFFPEwVVCJ0wE1O9OSASYjfzClTm1tH_drS6Pb_Lw"
    "\"}]}";

static tg_jwks_t *keys;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (keys == NULL) {
        char err[200];
        if ((keys = tg_jwks_parse(fixed_jwks, strlen(fixed_jwks), err, sizeof err)) == NULL)
            abort();
    }
    if (size == 0)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        json_t *claims = NULL;
        tg_jws_res_t r = tg_jws_verify(keys, (1u << TG_JWT_NALGS) - 1, p, n, &claims);
        if ((r == TG_JWS_OK) != (claims != NULL) || (claims && !json_is_object(claims)))
            abort();
        json_decref(claims);
        (void)tg_jws_header_ok((1u << TG_JWT_NALGS) - 1, p, n);
        return 0;
    }
    char err[200];
    tg_jwks_t *set = tg_jwks_parse(p, n, err, sizeof err);
    for (size_t i = 0; set && i < set->n; i++)
        for (int a = 0; a < TG_JWT_NALGS; a++)
            (void)tg_jwk_fits(&set->keys[i], (tg_jwt_alg_t)a);
    tg_jwks_release(set);
    return 0;
}
