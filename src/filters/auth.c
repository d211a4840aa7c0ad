/* The authentication filter (route `auth`): runs the route's methods in the
 * order of `any`; the first whose credential is present decides (a present
 * but invalid credential is 401 with no fall-through); no credential at all
 * is 401 unless `optional: true`. Every 401 carries one WWW-Authenticate
 * challenge per method. The methods live in auth_key.c, auth_basic.c and
 * auth_jwt.c. */
#include "filters/auth_int.h"
#include "filters/security.h"

#include <jansson.h>
#include "observe/metrics.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct auth_state {
    const tg_auth_cfg_t *cfg;
    const tg_route_cfg_t *route;
    tg_key_state_t *key;
    tg_basic_state_t *basic;
    tg_jwt_state_t *jwt;
    tg_header_t challenges[3];  /* WWW-Authenticate, one per method */
    size_t nchallenges;
} auth_state_t;

/* 401s by route and by the method that refused ("none": no credential). */
static tg_metric_def_t auth_failures = TG_METRIC_COUNTER("tollgate_auth_failures_total",
    "Requests refused 401 by authentication, by route and method.", "route", "method");

static const char *method_name(tg_auth_method_t m)
{
    return m == TG_AUTH_JWT ? "jwt" : m == TG_AUTH_API_KEY ? "api_key" : m == TG_AUTH_BASIC ? "basic" : "none";
}

static size_t filter_index(void)
{
    for (size_t i = 0; i < tg_nfilters; i++)
        if (tg_filters[i] == &tg_filter_auth)
            return i;
    return 0; /* unreachable: the filter is registered */
}

tg_auth_ex_t *tg__auth_ex(tg_exchange_t *ex)
{
    void **slot = tg_ex_filter_slot(ex, filter_index());
    if (*slot == NULL)
        *slot = tg_arena_calloc(tg_exchange_arena(ex), sizeof(tg_auth_ex_t));
    return *slot;
}

const tg_consumer_cfg_t *tg__auth_find_consumer(const tg_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->nconsumers; i++)
        if (strlen(cfg->consumers[i].name) == len && memcmp(cfg->consumers[i].name, name, len) == 0)
            return &cfg->consumers[i];
    return NULL;
}

void tg__auth_set_consumer(tg_exchange_t *ex, const tg_consumer_cfg_t *c, const char *name, const char *method)
{
    tg_identity_t *id = tg_ex_identity(ex);
    id->consumer = c ? c->name : name;
    id->groups = c ? c->groups : NULL;
    id->ngroups = c ? c->ngroups : 0;
    id->method = method;
}

static void free_state(void *p)
{
    auth_state_t *s = p;
    if (s == NULL)
        return;
    tg__key_free(s->key);
    tg__basic_free(s->basic);
    tg__jwt_free(s->jwt);
    for (size_t i = 0; i < s->nchallenges; i++)
        free((char *)s->challenges[i].value.p);
    free(s);
}

static int add_challenge(auth_state_t *s, const char *scheme, const char *realm)
{
    char *v = NULL;
    if (asprintf(&v, "%s realm=\"%s\"", scheme, realm) < 0)
        return -1;
    s->challenges[s->nchallenges++] = (tg_header_t){ TG_STR_LIT("WWW-Authenticate"), tg_str_c(v) };
    return 0;
}

static int build(const tg_config_t *cfg, const tg_route_cfg_t *route, void **state, char *err, size_t errlen)
{
    *state = NULL;
    if (!route->auth.enabled)
        return 0;
    tg_metric_register(&auth_failures); /* listed from the start, at 0 */
    auth_state_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = &route->auth;
    s->route = route;
    int rc = 0;
    for (size_t i = 0; i < s->cfg->nmethods && rc == 0; i++) {
        switch (s->cfg->methods[i]) {
        case TG_AUTH_API_KEY:
            rc = (s->key = tg__key_build(cfg, &s->cfg->api_key, err, errlen)) ? add_challenge(s, "ApiKey", s->cfg->api_key.realm) : -1;
            break;
        case TG_AUTH_BASIC:
            rc = (s->basic = tg__basic_build(cfg, err, errlen)) ? add_challenge(s, "Basic", s->cfg->basic.realm) : -1;
            break;
        case TG_AUTH_JWT:
            rc = (s->jwt = tg__jwt_build(cfg, &s->cfg->jwt, err, errlen)) ? add_challenge(s, "Bearer", s->cfg->jwt.realm) : -1;
            break;
        }
    }
    if (rc < 0) {
        free_state(s);
        return -1;
    }
    *state = s;
    return 0;
}

/* Answers for a verdict; CONTINUE lets the request through. `async`: the
 * filter is resuming from a WAIT, which must end before the answer (the
 * answer may finish and free the exchange). */
static tg_filter_ret_t verdict(tg_exchange_t *ex, auth_state_t *s, tg_authr_t r, tg_auth_method_t m, bool async)
{
    if (r == TG_AUTHR_OK || (r == TG_AUTHR_ABSENT && s->cfg->optional)) {
        if (async)
            tg_ex_filter_resume(ex, TG_FILTER_CONTINUE);
        return TG_FILTER_CONTINUE;
    }
    if (async)
        tg_ex_filter_resume(ex, TG_FILTER_DONE);
    if (r == TG_AUTHR_UNAVAILABLE) {
        tg_ex_respond_error(ex, 503, "auth_unavailable", NULL, 0);
        return TG_FILTER_DONE;
    }
    tg_str_t labels[] = { tg_str_c(s->route->name), tg_str_c(method_name(r == TG_AUTHR_ABSENT ? 0 : m)) };
    tg_metric_inc(tg_ex_worker(ex)->metrics, &auth_failures, labels);
    tg_ex_respond_error(ex, 401, r == TG_AUTHR_ABSENT ? "unauthorized" : "invalid_credentials", s->challenges,
                        s->nchallenges);
    return TG_FILTER_DONE;
}

static tg_authr_t run_method(tg_exchange_t *ex, auth_state_t *s, tg_auth_method_t m)
{
    switch (m) {
    case TG_AUTH_API_KEY: return tg__key_check(ex, s->key);
    case TG_AUTH_BASIC: return tg__basic_check(ex, s->basic);
    case TG_AUTH_JWT: return tg__jwt_check(ex, s->jwt);
    }
    return TG_AUTHR_ABSENT;
}

static tg_filter_ret_t on_request(tg_exchange_t *ex, void *state)
{
    auth_state_t *s = state;
    if (s->jwt)
        tg__jwt_strip(ex, s->jwt);
    for (size_t i = 0; i < s->cfg->nmethods; i++) {
        tg_authr_t r = run_method(ex, s, s->cfg->methods[i]);
        if (r == TG_AUTHR_WAIT) {
            tg_auth_ex_t *ax = tg__auth_ex(ex);
            if (ax == NULL) { /* the method's job holds the exchange: it cannot be dropped */
                tg_ex_respond_error(ex, 503, "out_of_memory", NULL, 0);
                return TG_FILTER_DONE;
            }
            ax->waiting = s->cfg->methods[i];
            ax->route_state = s;
            return TG_FILTER_WAIT;
        }
        if (r != TG_AUTHR_ABSENT)
            return verdict(ex, s, r, s->cfg->methods[i], false);
    }
    return verdict(ex, s, TG_AUTHR_ABSENT, 0, false);
}

void tg__auth_done(tg_exchange_t *ex, tg_authr_t r)
{
    tg_auth_ex_t *ax = tg__auth_ex(ex); /* exists: the WAIT created it */
    tg_auth_method_t m = ax->waiting;
    ax->pending = NULL;
    ax->waiting = 0;
    verdict(ex, ax->route_state, r, m, true);
}

static void on_end(tg_exchange_t *ex, void *state, bool complete)
{
    void **slot = tg_ex_filter_slot(ex, filter_index());
    tg_auth_ex_t *ax = *slot;
    if (ax == NULL)
        return;
    if (ax->pending) {
        if (ax->waiting == TG_AUTH_BASIC)
            tg__basic_cancel(ax->pending);
        else if (ax->waiting == TG_AUTH_JWT)
            tg__jwt_cancel(ax->pending);
        ax->pending = NULL;
    }
    if (ax->claims) {
        json_decref(ax->claims);
        ax->claims = NULL;
        tg_ex_identity(ex)->claims = NULL;
    }
}

const tg_filter_t tg_filter_auth = {
    .name = "auth",
    .build = build,
    .free_state = free_state,
    .on_request = on_request,
    .on_end = on_end,
};
