/* HTTP Basic (auth.basic, RFC 7617): users are consumers with a
 * basic_password and the users of the htpasswd file (consumers named after
 * the user). Hashes are verified with crypt_r on the libuv thread pool (a
 * bcrypt check takes tens of milliseconds: never on an event loop), and
 * verified credentials are remembered in a bounded cache keyed by
 * HMAC-SHA256(process secret, user ":" password), so the cache never holds a
 * password or an unsalted hash of one. Failed checks are not cached. */
#include "filters/auth_int.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define TG_BASIC_CACHE_SLOTS 1024  /* per route; direct-mapped */
#define TG_BASIC_MAX_CRED 1024     /* decoded user:password */
#define TG_BASIC_MAX_PENDING 64    /* hash checks queued or running per route: beyond, 503 */

typedef struct user {
    const char *name;
    const char *hash;
    const tg_consumer_cfg_t *consumer; /* NULL for htpasswd-only users */
} user_t;

typedef struct cache_slot {
    unsigned char mac[32];
    const user_t *user;                /* NULL = empty */
} cache_slot_t;

struct tg_basic_state {
    atomic_int refs;                   /* the route + every job in flight */
    atomic_int pending;                /* jobs in flight (bounded: a flood of wrong
                                          passwords must not monopolise the pool) */
    user_t *users;
    size_t nusers;
    unsigned char key[32];             /* HMAC key for the cache */
    pthread_mutex_t lock;              /* the cache: workers and pool threads */
    cache_slot_t cache[TG_BASIC_CACHE_SLOTS];
};

typedef struct job {
    uv_work_t req;
    tg_basic_state_t *s;
    tg_exchange_t *ex;                 /* NULL once cancelled */
    const user_t *user;                /* NULL: unknown user (a dummy hash runs) */
    unsigned char mac[32];
    char cred[TG_BASIC_MAX_CRED + 1];  /* "user:password", wiped after use */
    size_t ulen;
    bool ok;
} job_t;

/* Verifying a dummy hash for unknown users keeps their timing like known
 * ones (no user enumeration). bcrypt cost 10 of a random password nobody knows. */
static const char dummy_hash[] = "$2y$10$df4BMrytMVeR8cDW.D1VMeAkLQO13YjwY.YjGd.FaZ32fYvWmcq9a";

tg_basic_state_t *tg__basic_build(const tg_config_t *cfg, char *err, size_t errlen)
{
    tg_basic_state_t *s = calloc(1, sizeof *s);
    size_t cap = cfg->nconsumers + cfg->nhtpasswd_users;
    if (s == NULL || (s->users = calloc(cap ? cap : 1, sizeof *s->users)) == NULL ||
        RAND_bytes(s->key, sizeof s->key) != 1) {
        if (s)
            free(s->users);
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    atomic_init(&s->pending, 0);
    pthread_mutex_init(&s->lock, NULL);
    for (size_t i = 0; i < cfg->nconsumers; i++)
        if (cfg->consumers[i].basic_password)
            s->users[s->nusers++] = (user_t){ cfg->consumers[i].name, cfg->consumers[i].basic_password, &cfg->consumers[i] };
    /* htpasswd users: a consumer of the same name keeps its groups. */
    for (size_t i = 0; i < cfg->nhtpasswd_users; i++) {
        const tg_kv_t *u = &cfg->htpasswd_users[i];
        bool taken = false;
        for (size_t k = 0; k < s->nusers && !taken; k++)
            taken = strcmp(s->users[k].name, u->name) == 0;
        if (!taken)
            s->users[s->nusers++] = (user_t){ u->name, u->value, tg__auth_find_consumer(cfg, u->name, strlen(u->name)) };
    }
    return s;
}

static void state_release(tg_basic_state_t *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    OPENSSL_cleanse(s->cache, sizeof s->cache);
    OPENSSL_cleanse(s->key, sizeof s->key);
    pthread_mutex_destroy(&s->lock);
    free(s->users);
    free(s);
}

/* The route's state goes with its generation; jobs still on the pool keep it. */
void tg__basic_free(tg_basic_state_t *s) { state_release(s); }

static bool cache_hit(tg_basic_state_t *s, const unsigned char *mac, const user_t *u)
{
    cache_slot_t *c = &s->cache[(mac[0] | mac[1] << 8) % TG_BASIC_CACHE_SLOTS];
    pthread_mutex_lock(&s->lock);
    bool hit = c->user == u && CRYPTO_memcmp(c->mac, mac, 32) == 0;
    pthread_mutex_unlock(&s->lock);
    return hit;
}

static void cache_put(tg_basic_state_t *s, const unsigned char *mac, const user_t *u)
{
    cache_slot_t *c = &s->cache[(mac[0] | mac[1] << 8) % TG_BASIC_CACHE_SLOTS];
    pthread_mutex_lock(&s->lock);
    memcpy(c->mac, mac, 32);
    c->user = u;
    pthread_mutex_unlock(&s->lock);
}

static void work(uv_work_t *req)
{
    job_t *j = req->data;
    struct crypt_data *cd = calloc(1, sizeof *cd); /* ~32 KiB: not on a pool thread's stack */
    if (cd == NULL)
        return;
    const char *hash = j->user ? j->user->hash : dummy_hash;
    const char *out = crypt_r(j->cred + j->ulen + 1, hash, cd);
    j->ok = j->user && out && out[0] != '*' && strlen(out) == strlen(hash) &&
            CRYPTO_memcmp(out, hash, strlen(hash)) == 0;
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
}

static void after_work(uv_work_t *req, int status)
{
    job_t *j = req->data;
    OPENSSL_cleanse(j->cred, sizeof j->cred);
    if (j->ok && status == 0)
        cache_put(j->s, j->mac, j->user);
    tg_exchange_t *ex = j->ex;
    if (ex) {
        if (j->ok && status == 0)
            tg__auth_set_consumer(ex, j->user->consumer, j->user->name, "basic");
        tg__auth_done(ex, j->ok && status == 0 ? TG_AUTHR_OK : TG_AUTHR_INVALID);
    }
    atomic_fetch_sub_explicit(&j->s->pending, 1, memory_order_relaxed);
    state_release(j->s);
    free(j);
}

void tg__basic_cancel(void *job) { ((job_t *)job)->ex = NULL; }

/* Decodes "Basic <b64>" into j->cred; false when malformed. */
static bool decode(tg_str_t v, job_t *j)
{
    tg_str_t b64 = tg_str_trim_ows(tg_str(v.p + 6, v.len - 6));
    if (b64.len == 0 || b64.len > TG_BASIC_MAX_CRED * 4 / 3 || b64.len % 4 != 0)
        return false;
    int n = EVP_DecodeBlock((unsigned char *)j->cred, (const unsigned char *)b64.p, (int)b64.len);
    if (n < 0)
        return false;
    size_t len = (size_t)n;
    for (size_t i = b64.len; i > 0 && b64.p[i - 1] == '='; i--)
        len--; /* EVP_DecodeBlock counts padding as zero bytes */
    j->cred[len] = '\0';
    char *colon = memchr(j->cred, ':', len);
    if (colon == NULL || strlen(j->cred) != len)
        return false; /* no user/password split, or a NUL inside */
    j->ulen = (size_t)(colon - j->cred);
    return j->ulen > 0;
}

tg_authr_t tg__basic_check(tg_exchange_t *ex, tg_basic_state_t *s)
{
    const tg_ex_request_t *rq = tg_ex_request(ex);
    const tg_header_t *h = tg_headers_find(rq->headers, rq->nheaders, "authorization");
    if (h == NULL || h->value.len < 6 || !tg_str_ieq(tg_str(h->value.p, 6), TG_STR_LIT("basic ")))
        return TG_AUTHR_ABSENT;
    job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return TG_AUTHR_UNAVAILABLE;
    if (!decode(h->value, j)) {
        free(j);
        return TG_AUTHR_INVALID;
    }
    for (size_t i = 0; i < s->nusers && j->user == NULL; i++)
        if (strlen(s->users[i].name) == j->ulen && memcmp(s->users[i].name, j->cred, j->ulen) == 0)
            j->user = &s->users[i];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), s->key, sizeof s->key, (unsigned char *)j->cred, strlen(j->cred), j->mac, &ml);
    if (j->user && cache_hit(s, j->mac, j->user)) {
        tg__auth_set_consumer(ex, j->user->consumer, j->user->name, "basic");
        OPENSSL_cleanse(j, sizeof *j);
        free(j);
        return TG_AUTHR_OK;
    }
    tg_auth_ex_t *ax = tg__auth_ex(ex);
    if (atomic_fetch_add_explicit(&s->pending, 1, memory_order_relaxed) >= TG_BASIC_MAX_PENDING) {
        atomic_fetch_sub_explicit(&s->pending, 1, memory_order_relaxed);
        OPENSSL_cleanse(j, sizeof *j);
        free(j);
        return TG_AUTHR_UNAVAILABLE;
    }
    j->s = s;
    j->ex = ex;
    j->req.data = j;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    if (ax == NULL || uv_queue_work(&tg_ex_worker(ex)->loop, &j->req, work, after_work) != 0) {
        atomic_fetch_sub_explicit(&s->pending, 1, memory_order_relaxed);
        state_release(s);
        OPENSSL_cleanse(j, sizeof *j);
        free(j);
        return TG_AUTHR_UNAVAILABLE;
    }
    ax->pending = j;
    return TG_AUTHR_WAIT;
}
