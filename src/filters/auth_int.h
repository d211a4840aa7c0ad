/* Internals of the authentication filter (auth.c) shared with its methods
 * (auth_key.c, auth_basic.c, auth_jwt.c). filters/ only.
 *
 * A method looks for its credential and answers one of tg_authr_t. A method
 * that must wait (a password hash on the thread pool, a JWKS fetch) returns
 * TG_AUTHR_WAIT and later calls tg__auth_done exactly once, unless the
 * exchange ended first: then auth.c calls the method's cancel hook from
 * on_end, and the method must never touch the exchange again. */
#ifndef TG_FILTERS_AUTH_INT_H
#define TG_FILTERS_AUTH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include "filters/filter.h"
#include "proxy/exchange.h"
#include "proxy/filter_api.h"

typedef enum tg_authr {
    TG_AUTHR_ABSENT = 0,    /* no credential of this kind: try the next method */
    TG_AUTHR_OK,            /* identity set */
    TG_AUTHR_INVALID,       /* credential present but wrong: 401, no fall-through */
    TG_AUTHR_UNAVAILABLE,   /* cannot decide now (JWKS never fetched): 503 */
    TG_AUTHR_WAIT,          /* tg__auth_done follows */
} tg_authr_t;

typedef struct tg_key_state tg_key_state_t;
typedef struct tg_basic_state tg_basic_state_t;
typedef struct tg_jwt_state tg_jwt_state_t;

/* Per-exchange state of the auth filter (exchange arena). */
typedef struct tg_auth_ex {
    void *pending;          /* the waiting method's job, for cancel */
    tg_auth_method_t waiting;
    void *route_state;      /* the auth filter's route state, while waiting */
    void *claims;           /* json_t * the exchange holds a reference to */
} tg_auth_ex_t;

/* auth.c: the waiting method's verdict. */
void tg__auth_done(tg_exchange_t *ex, tg_authr_t r);
/* auth.c: the auth filter's per-exchange state (created on first use). */
tg_auth_ex_t *tg__auth_ex(tg_exchange_t *ex);
/* auth.c: identity of a configured consumer (groups from the config). */
void tg__auth_set_consumer(tg_exchange_t *ex, const tg_consumer_cfg_t *c, const char *name, const char *method);
/* auth.c: the configured consumer called `name`, or NULL. */
const tg_consumer_cfg_t *tg__auth_find_consumer(const tg_config_t *cfg, const char *name, size_t len);

/* auth_key.c */
tg_key_state_t *tg__key_build(const tg_config_t *cfg, const tg_api_key_cfg_t *kc, char *err, size_t errlen);
void tg__key_free(tg_key_state_t *s);
tg_authr_t tg__key_check(tg_exchange_t *ex, tg_key_state_t *s);

/* auth_basic.c */
tg_basic_state_t *tg__basic_build(const tg_config_t *cfg, char *err, size_t errlen);
void tg__basic_free(tg_basic_state_t *s);
tg_authr_t tg__basic_check(tg_exchange_t *ex, tg_basic_state_t *s);
void tg__basic_cancel(void *job);

/* auth_jwt.c */
tg_jwt_state_t *tg__jwt_build(const tg_config_t *cfg, const tg_jwt_cfg_t *jc, char *err, size_t errlen);
void tg__jwt_free(tg_jwt_state_t *s);
tg_authr_t tg__jwt_check(tg_exchange_t *ex, tg_jwt_state_t *s);
void tg__jwt_cancel(void *job);
/* Removes client-sent copies of the claims_to_headers targets. */
void tg__jwt_strip(tg_exchange_t *ex, tg_jwt_state_t *s);

#endif
