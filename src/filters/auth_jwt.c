/* Bearer JWTs (auth.jwt, RFC 7519/7515): compact JWS only, verified with
 * OpenSSL (jwks.c). The header's alg must be one of the route's algorithms
 * ("none" never is) and the key's type must fit it; kid selects the key.
 * Keys come from a secret, a JWKS file, or a JWKS URL (jwks_fetch.c); an
 * unknown kid asks for a refetch (rate limited) and the request waits for
 * it, as it does for the first fetch: the fetcher thread wakes the waiting
 * request's worker loop (uv_async_t) when the fetch ends, and a timer bounds
 * the wait to twice the fetch timeout.
 *
 * Verified tokens are remembered per worker thread (no locks) keyed by the
 * SHA-256 of the whole token, the route state and the key set version, so a
 * client that presents the same token again costs a hash, not an RSA
 * verification; the time claims are checked again on every use. */
#include "filters/auth_int.h"

#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include "filters/jwks_fetch.h"
#include "filters/jws.h"

#define TG_JWT_MAX_TOKEN 16384
#define TG_JWT_CACHE_SLOTS 1024      /* per worker thread, direct-mapped */

typedef enum vres { V_OK = 0, V_INVALID, V_UNAVAILABLE, V_NEED_KEYS } vres_t;

struct tg_jwt_state {
    const tg_jwt_cfg_t *cfg;
    const tg_config_t *c;
    tg_jwks_t *fixed;                /* secret or file */
    tg_jwks_src_t *src;              /* URL */
    uint64_t id;                     /* unique: keys the thread caches */
};

/* ---- per-thread cache of verified tokens ---- */

typedef struct centry {
    uint64_t state_id, version;
    unsigned char h[SHA256_DIGEST_LENGTH];
    json_t *claims;
} centry_t;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static atomic_uint_fast64_t next_state_id = 1;

static void cache_destroy(void *p)
{
    centry_t *c = p;
    for (size_t i = 0; i < TG_JWT_CACHE_SLOTS; i++)
        json_decref(c[i].claims);
    free(c);
}

static void cache_init(void) { pthread_key_create(&cache_key, cache_destroy); }

static centry_t *cache_slot(const unsigned char *h)
{
    centry_t *c = pthread_getspecific(cache_key);
    if (c == NULL) {
        if ((c = calloc(TG_JWT_CACHE_SLOTS, sizeof *c)) == NULL || pthread_setspecific(cache_key, c) != 0) {
            free(c);
            return NULL;
        }
    }
    return &c[(h[0] | h[1] << 8) % TG_JWT_CACHE_SLOTS];
}

/* ---- state ---- */

tg_jwt_state_t *tg__jwt_build(const tg_config_t *cfg, const tg_jwt_cfg_t *jc, char *err, size_t errlen)
{
    pthread_once(&cache_once, cache_init);
    tg_jwt_state_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = jc;
    s->c = cfg;
    s->id = atomic_fetch_add(&next_state_id, 1);
    if (jc->secret)
        s->fixed = tg_jwks_from_secret(jc->secret, err, errlen);
    else if (!jc->jwks_is_url)
        s->fixed = tg_jwks_load_file(jc->jwks, err, errlen);
    else
        s->src = tg_jwks_src_new(jc->jwks, jc->jwks_ca, jc->jwks_refresh_ms, err, errlen);
    if (s->fixed == NULL && s->src == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void tg__jwt_free(tg_jwt_state_t *s)
{
    if (s == NULL)
        return;
    tg_jwks_release(s->fixed);
    tg_jwks_src_free(s->src);
    free(s);
}

void tg__jwt_strip(tg_exchange_t *ex, tg_jwt_state_t *s)
{
    for (size_t i = 0; i < s->cfg->nclaims_to_headers; i++)
        tg_ex_req_header_remove(ex, s->cfg->claims_to_headers[i].value);
}

/* ---- claims ---- */

static bool aud_ok(const tg_jwt_cfg_t *jc, const json_t *aud)
{
    for (size_t i = 0; i < jc->naudiences; i++) {
        if (json_is_string(aud) && strcmp(json_string_value(aud), jc->audiences[i]) == 0)
            return true;
        size_t k;
        json_t *a;
        json_array_foreach(aud, k, a) if (json_is_string(a) && strcmp(json_string_value(a), jc->audiences[i]) == 0) return true;
    }
    return false;
}

/* Time, issuer, audience and presence checks (RFC 7519 §4.1). */
static bool claims_ok(const tg_jwt_cfg_t *jc, const json_t *cl)
{
    double now = (double)time(NULL), skew = (double)jc->clock_skew_ms / 1000.0;
    const json_t *exp = json_object_get(cl, "exp"), *nbf = json_object_get(cl, "nbf"), *iat = json_object_get(cl, "iat");
    if ((exp && (!json_is_number(exp) || now > json_number_value(exp) + skew)) ||
        (nbf && (!json_is_number(nbf) || now + skew < json_number_value(nbf))) ||
        (iat && (!json_is_number(iat) || now + skew < json_number_value(iat))))
        return false;
    const json_t *iss = json_object_get(cl, "iss");
    if (jc->issuer && !(json_is_string(iss) && strcmp(json_string_value(iss), jc->issuer) == 0))
        return false;
    if (jc->naudiences && !aud_ok(jc, json_object_get(cl, "aud")))
        return false;
    for (size_t i = 0; i < jc->nrequire; i++)
        if (json_object_get(cl, jc->require[i]) == NULL)
            return false;
    return true;
}

/* A claim as header text: strings as is, numbers and booleans in JSON,
 * arrays of strings joined by spaces (like `scope`). NULL when unusable. */
static char *claim_text(tg_exchange_t *ex, const json_t *v)
{
    tg_arena_t *a = tg_exchange_arena(ex);
    if (json_is_string(v))
        return tg_arena_strdup(a, json_string_value(v));
    if (json_is_integer(v))
        return tg_arena_printf(a, "%lld", (long long)json_integer_value(v));
    if (json_is_boolean(v))
        return tg_arena_strdup(a, json_is_true(v) ? "true" : "false");
    if (!json_is_array(v))
        return NULL;
    size_t len = 0, i;
    json_t *e;
    json_array_foreach(v, i, e) len += json_is_string(e) ? json_string_length(e) + 1 : 0;
    char *out = tg_arena_alloc(a, len + 1), *o = out;
    if (out == NULL)
        return NULL;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e))
            continue;
        if (o != out)
            *o++ = ' ';
        memcpy(o, json_string_value(e), json_string_length(e));
        o += json_string_length(e);
    }
    *o = '\0';
    return out;
}

static bool safe_header_value(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* Scopes: `scope` (space-separated string, RFC 8693) or `scp` (array). */
static void set_scopes(tg_exchange_t *ex, const json_t *cl, tg_identity_t *id)
{
    const json_t *scope = json_object_get(cl, "scope"), *scp = json_object_get(cl, "scp");
    char *text = json_is_string(scope) ? claim_text(ex, scope) : json_is_array(scp) ? claim_text(ex, scp) : NULL;
    if (text == NULL)
        return;
    size_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ' ';
    const char **v = tg_arena_alloc(tg_exchange_arena(ex), n * sizeof *v);
    if (v == NULL)
        return;
    id->nscopes = 0;
    for (char *save = NULL, *t = strtok_r(text, " ", &save); t; t = strtok_r(NULL, " ", &save))
        v[id->nscopes++] = t;
    id->scopes = v;
}

static void apply_identity(tg_exchange_t *ex, tg_jwt_state_t *s, json_t *cl)
{
    tg_identity_t *id = tg_ex_identity(ex);
    tg_auth_ex_t *ax = tg__auth_ex(ex);
    id->method = "jwt";
    if (ax) { /* the exchange holds a reference until on_end */
        ax->claims = json_incref(cl);
        id->claims = cl;
    }
    const json_t *who = s->cfg->consumer_claim ? json_object_get(cl, s->cfg->consumer_claim) : NULL;
    if (json_is_string(who) && json_string_length(who) > 0 && json_string_length(who) <= 256 &&
        safe_header_value(json_string_value(who)) && !strchr(json_string_value(who), ',')) {
        const char *name = json_string_value(who);
        const tg_consumer_cfg_t *c = tg__auth_find_consumer(s->c, name, strlen(name));
        tg__auth_set_consumer(ex, c, c ? NULL : tg_arena_strdup(tg_exchange_arena(ex), name), "jwt");
    }
    set_scopes(ex, cl, id);
    for (size_t i = 0; i < s->cfg->nclaims_to_headers; i++) {
        const tg_kv_t *m = &s->cfg->claims_to_headers[i];
        char *v = claim_text(ex, json_object_get(cl, m->name));
        if (v && safe_header_value(v))
            tg_ex_req_header_set(ex, m->value, tg_str_c(v));
    }
}

/* ---- verification ---- */

/* The whole check of `tok`. On V_OK the identity is set. */
static vres_t verify(tg_exchange_t *ex, tg_jwt_state_t *s, tg_str_t tok)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tok.p, tok.len, h);
    uint64_t version = 0;
    tg_jwks_t *set = s->fixed ? tg_jwks_retain(s->fixed) : tg_jwks_src_get(s->src, &version);
    centry_t *ce = cache_slot(h);
    if (ce && ce->claims && ce->state_id == s->id && ce->version == version && memcmp(ce->h, h, sizeof h) == 0) {
        tg_jwks_release(set);
        if (!claims_ok(s->cfg, ce->claims))
            return V_INVALID;
        apply_identity(ex, s, ce->claims);
        return V_OK;
    }
    if (!tg_jws_header_ok(s->cfg->algorithms, tok.p, tok.len)) {
        tg_jwks_release(set);
        return V_INVALID;
    }
    if (set == NULL)
        return V_NEED_KEYS;
    json_t *cl = NULL;
    tg_jws_res_t jr = tg_jws_verify(set, s->cfg->algorithms, tok.p, tok.len, &cl);
    tg_jwks_release(set);
    if (jr != TG_JWS_OK)
        return jr == TG_JWS_NO_KEY ? V_NEED_KEYS : V_INVALID;
    if (!claims_ok(s->cfg, cl)) {
        json_decref(cl);
        return V_INVALID;
    }
    if (ce) {
        json_decref(ce->claims);
        *ce = (centry_t){ s->id, version, { 0 }, json_incref(cl) };
        memcpy(ce->h, h, sizeof h);
    }
    apply_identity(ex, s, cl);
    json_decref(cl);
    return V_OK;
}

/* ---- waiting for keys ---- */

typedef struct wait_job {
    uv_timer_t timer;                /* the bound on the wait */
    uv_async_t wake;                 /* sent by the fetcher thread */
    tg_jwks_waiter_t waiter;         /* registered while open */
    int open;                        /* handles not closed yet */
    bool watching;
    tg_exchange_t *ex;               /* NULL once settled or cancelled */
    tg_jwt_state_t *s;
    uint64_t version;
    size_t len;
    char tok[];
} wait_job_t;

static void job_closed(uv_handle_t *h)
{
    wait_job_t *j = h->data;
    if (--j->open == 0)
        free(j);
}

/* Unregisters (so the fetcher thread sends no more) and closes both
 * handles; the job is freed when the last close completes. */
static void job_close(wait_job_t *j)
{
    j->ex = NULL;
    if (j->watching)
        tg_jwks_src_unwatch(j->s->src, &j->waiter);
    j->watching = false;
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, job_closed);
    uv_close((uv_handle_t *)&j->wake, job_closed);
}

static tg_authr_t final_verdict(tg_exchange_t *ex, tg_jwt_state_t *s, tg_str_t tok)
{
    vres_t r = verify(ex, s, tok);
    if (r == V_NEED_KEYS) { /* still no key for it: never fetched → 503, unknown kid → 401 */
        uint64_t v;
        tg_jwks_t *set = s->src ? tg_jwks_src_get(s->src, &v) : tg_jwks_retain(s->fixed);
        r = set ? V_INVALID : V_UNAVAILABLE;
        tg_jwks_release(set);
    }
    return r == V_OK ? TG_AUTHR_OK : r == V_UNAVAILABLE ? TG_AUTHR_UNAVAILABLE : TG_AUTHR_INVALID;
}

/* A fetch ended (or the bound passed): decide unless a newer fetch that
 * may still bring the key is running. Wake-ups may be coalesced or come
 * from a fetch other than the awaited one; the state is read again. */
static void settle(wait_job_t *j, bool timed_out)
{
    if (j->ex == NULL)
        return;
    uint64_t v = 0;
    tg_jwks_release(tg_jwks_src_get(j->s->src, &v));
    if (!timed_out && v == j->version && tg_jwks_src_busy(j->s->src))
        return; /* the awaited fetch is still due or running */
    tg_exchange_t *ex = j->ex;
    job_close(j); /* j is freed by the close callbacks, on a later loop turn */
    tg__auth_ex(ex)->pending = NULL;
    tg__auth_done(ex, final_verdict(ex, j->s, tg_str(j->tok, j->len)));
}

static void on_wake(uv_async_t *a) { settle(a->data, false); }
static void on_deadline(uv_timer_t *t) { settle(t->data, true); }

void tg__jwt_cancel(void *job) { job_close(job); }

/* Waits for the fetch that is due or running; decides at once when it
 * ended between the kick and the registration. */
static tg_authr_t start_wait(tg_exchange_t *ex, tg_jwt_state_t *s, tg_str_t tok)
{
    tg_auth_ex_t *ax = tg__auth_ex(ex);
    wait_job_t *j = ax ? calloc(1, sizeof *j + tok.len) : NULL;
    if (j == NULL)
        return TG_AUTHR_UNAVAILABLE;
    uv_loop_t *loop = &tg_ex_worker(ex)->loop;
    if (uv_async_init(loop, &j->wake, on_wake) != 0) {
        free(j);
        return TG_AUTHR_UNAVAILABLE;
    }
    uv_timer_init(loop, &j->timer);
    j->timer.data = j->wake.data = j;
    j->open = 2;
    j->ex = ex;
    j->s = s;
    j->len = tok.len;
    memcpy(j->tok, tok.p, tok.len);
    j->waiter.wake = &j->wake;
    if (!(j->watching = tg_jwks_src_watch(s->src, &j->waiter, &j->version))) {
        job_close(j);
        return final_verdict(ex, s, tok);
    }
    uv_timer_start(&j->timer, on_deadline, TG_JWKS_FETCH_TIMEOUT_MS * 2, 0);
    ax->pending = j;
    return TG_AUTHR_WAIT;
}

tg_authr_t tg__jwt_check(tg_exchange_t *ex, tg_jwt_state_t *s)
{
    const tg_ex_request_t *rq = tg_ex_request(ex);
    const tg_header_t *h = tg_headers_find(rq->headers, rq->nheaders, "authorization");
    if (h == NULL || h->value.len < 7 || !tg_str_ieq(tg_str(h->value.p, 7), TG_STR_LIT("bearer ")))
        return TG_AUTHR_ABSENT;
    tg_str_t tok = tg_str_trim_ows(tg_str(h->value.p + 7, h->value.len - 7));
    if (tok.len == 0 || tok.len > TG_JWT_MAX_TOKEN)
        return TG_AUTHR_INVALID;
    vres_t r = verify(ex, s, tok);
    if (r == V_NEED_KEYS && s->src && tg_jwks_src_kick(s->src))
        return start_wait(ex, s, tok);
    if (r == V_NEED_KEYS)
        return final_verdict(ex, s, tok);
    return r == V_OK ? TG_AUTHR_OK : r == V_UNAVAILABLE ? TG_AUTHR_UNAVAILABLE : TG_AUTHR_INVALID;
}
