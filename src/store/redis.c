/* The per-worker Redis client (redis.h).
 *
 * A call has two holders: hiredis (until it runs the reply callback, which it
 * always does exactly once: with the reply, or with NULL when the connection
 * dies or the context is freed) and the caller (until the answer is
 * delivered, the deadline passes, or it cancels). The call is freed when both
 * have let go. Calls waiting for the caller sit in `waiting` in issue order;
 * they all have the same timeout, so that order is deadline order and one
 * timer on the head serves them all.
 *
 * States: DOWN (no context; calls fail at once; a retry timer reconnects),
 * CONNECTING (calls queue in hiredis's buffer, bounded by their deadline and
 * by CONNECT_MS for the connection itself), UP. */
#include "store/redis.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/worker.h"
#include "util/list.h"
#include "util/log.h"

#define RECONNECT_MS 200     /* Redis back → connected within this (the contract says 1s) */
#define CONNECT_MS 1000      /* a connect that hangs is abandoned after this */
#define MAX_INFLIGHT 8192    /* calls held by hiredis per worker; more fail as OVERLOAD */

enum { ST_DOWN = 0, ST_CONNECTING, ST_UP };

struct tg_redis {
    uv_loop_t *loop;
    redisAsyncContext *ac;
    int state;
    uv_timer_t deadline;     /* the head of `waiting` */
    uv_timer_t retry;        /* reconnect, or the connect deadline */
    int open_handles;        /* freed when both timers are closed */
    bool closing;
    bool retiring;           /* replaced after a reload: closes from its own timer */
    tg_list_t waiting;
    size_t inflight;
    char *host, *password;
    uint16_t port;
    uint64_t timeout_ms;
};

struct tg_redis_call {
    tg_redis_t *r;
    tg_list_t link;          /* in r->waiting while the caller waits */
    uint64_t deadline;       /* uv_now ms */
    tg_redis_cb cb;
    void *arg;
    bool caller_waits, hiredis_holds, retried;
    const tg_redis_script_t *script;
    int argc;
    char **argv;             /* argv[0] = "EVALSHA", argv[1] = sha; one block */
    size_t *argvlen;
};

static atomic_llong g_up;
static atomic_ullong g_calls, g_timeouts, g_failures, g_changes;
static atomic_int g_state = -1; /* the process's last logged state: 0 down, 1 up, -1 none yet */

static void connect_now(tg_redis_t *r);
static void on_deadline(uv_timer_t *t);

void tg_redis_script_init(tg_redis_script_t *s)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)s->text, strlen(s->text), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(s->sha1 + 2 * i, 3, "%02x", md[i]);
}

void tg_redis_stats(tg_redis_stats_t *out)
{
    out->connections_up = atomic_load(&g_up);
    out->calls = atomic_load(&g_calls);
    out->timeouts = atomic_load(&g_timeouts);
    out->failures = atomic_load(&g_failures);
    out->state_changes = atomic_load(&g_changes);
}

/* One log line per change of the process's state: up when a first worker
 * connects, down when a connected worker loses Redis. */
static void set_state(tg_redis_t *r, int st, const char *why)
{
    int was = r->state;
    r->state = st;
    if (st == ST_UP && was != ST_UP)
        atomic_fetch_add(&g_up, 1);
    if (was == ST_UP && st != ST_UP)
        atomic_fetch_sub(&g_up, 1);
    int want = st == ST_UP;
    if ((st == ST_UP || st == ST_DOWN) && atomic_exchange(&g_state, want) != want) {
        atomic_fetch_add(&g_changes, 1);
        if (want)
            tg_log_info("redis: up (%s:%u)", r->host, r->port);
        else
            tg_log_warn("redis: down (%s:%u): %s", r->host, r->port, why);
    }
}

/* ---- calls ---- */

static void call_free_if_done(tg_redis_call_t *c)
{
    if (c->caller_waits || c->hiredis_holds)
        return;
    free(c->argv);
    free(c);
}

static void arm_deadline(tg_redis_t *r)
{
    if (r->closing)
        return;
    if (tg_list_empty(&r->waiting)) {
        uv_timer_stop(&r->deadline);
        return;
    }
    tg_redis_call_t *c = tg_container_of(r->waiting.next, tg_redis_call_t, link);
    uint64_t now = uv_now(r->loop);
    uv_timer_start(&r->deadline, on_deadline, c->deadline > now ? c->deadline - now : 0, 0);
}

/* Hands the outcome to the caller (once), then lets go of the caller's hold. */
static void deliver(tg_redis_call_t *c, const redisReply *reply, tg_redis_err_t err)
{
    if (!c->caller_waits)
        return;
    c->caller_waits = false;
    tg_list_remove(&c->link);
    if (err == TG_REDIS_TIMEOUT)
        atomic_fetch_add(&g_timeouts, 1);
    else if (err != TG_REDIS_OK)
        atomic_fetch_add(&g_failures, 1);
    c->cb(c->arg, reply, err);
}

static void on_deadline(uv_timer_t *t)
{
    tg_redis_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    while (!tg_list_empty(&r->waiting)) {
        tg_redis_call_t *c = tg_container_of(r->waiting.next, tg_redis_call_t, link);
        if (c->deadline > now)
            break;
        deliver(c, NULL, TG_REDIS_TIMEOUT);
        call_free_if_done(c);
    }
    arm_deadline(r);
}

static int send_call(tg_redis_t *r, tg_redis_call_t *c);

static bool is_noscript(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    tg_redis_call_t *c = privdata;
    tg_redis_t *r = c->r;
    const redisReply *rep = reply;
    c->hiredis_holds = false;
    r->inflight--;
    if (is_noscript(rep) && !c->retried && c->caller_waits && r->ac == ac && r->state != ST_DOWN) {
        /* The script cache was emptied: EVAL carries the text and reloads it. */
        c->retried = true;
        c->argv[0] = "EVAL";
        c->argvlen[0] = 4;
        c->argv[1] = (char *)c->script->text;
        c->argvlen[1] = strlen(c->script->text);
        if (send_call(r, c) == 0)
            return;
    }
    if (rep == NULL)
        deliver(c, NULL, TG_REDIS_DOWN);
    else if (rep->type == REDIS_REPLY_ERROR) {
        if (c->caller_waits)
            tg_log_warn("redis: script error: %.200s", rep->str);
        deliver(c, NULL, TG_REDIS_ERROR_REPLY);
    } else
        deliver(c, rep, TG_REDIS_OK);
    call_free_if_done(c);
    arm_deadline(r);
}

static int send_call(tg_redis_t *r, tg_redis_call_t *c)
{
    if (r->ac == NULL || redisAsyncCommandArgv(r->ac, on_reply, c, c->argc, (const char **)c->argv, c->argvlen) != REDIS_OK)
        return -1;
    c->hiredis_holds = true;
    r->inflight++;
    return 0;
}

/* argv = EVALSHA sha nkeys keys... args..., copied into one block. */
static tg_redis_call_t *call_new(const tg_redis_script_t *script, size_t nkeys, const char *const *keys,
                                 const size_t *keylen, size_t nargs, const char *const *args, const size_t *arglen)
{
    size_t argc = 3 + nkeys + nargs, bytes = 0;
    for (size_t i = 0; i < nkeys; i++)
        bytes += keylen[i] + 1;
    for (size_t i = 0; i < nargs; i++)
        bytes += arglen[i] + 1;
    tg_redis_call_t *c = calloc(1, sizeof *c);
    char *block = malloc(argc * (sizeof(char *) + sizeof(size_t)) + bytes + 24);
    if (c == NULL || block == NULL) {
        free(c);
        free(block);
        return NULL;
    }
    c->argv = (char **)block;
    c->argvlen = (size_t *)(block + argc * sizeof(char *));
    char *p = block + argc * (sizeof(char *) + sizeof(size_t));
    c->argc = (int)argc;
    c->argv[0] = "EVALSHA";
    c->argvlen[0] = 7;
    c->argv[1] = (char *)script->sha1;
    c->argvlen[1] = 40;
    c->argvlen[2] = (size_t)snprintf(p, 24, "%zu", nkeys);
    c->argv[2] = p;
    p += c->argvlen[2] + 1;
    for (size_t i = 0; i < nkeys + nargs; i++) {
        const char *s = i < nkeys ? keys[i] : args[i - nkeys];
        size_t n = i < nkeys ? keylen[i] : arglen[i - nkeys];
        memcpy(p, s, n);
        p[n] = '\0';
        c->argv[3 + i] = p;
        c->argvlen[3 + i] = n;
        p += n + 1;
    }
    c->script = script;
    return c;
}

tg_redis_call_t *tg_redis_eval(tg_redis_t *r, const tg_redis_script_t *script, size_t nkeys,
                               const char *const *keys, const size_t *keylen, size_t nargs,
                               const char *const *args, const size_t *arglen, tg_redis_cb cb, void *arg,
                               tg_redis_err_t *err)
{
    atomic_fetch_add(&g_calls, 1);
    *err = r->state == ST_DOWN || r->ac == NULL ? TG_REDIS_DOWN : r->inflight >= MAX_INFLIGHT ? TG_REDIS_OVERLOAD : TG_REDIS_OK;
    tg_redis_call_t *c = *err ? NULL : call_new(script, nkeys, keys, keylen, nargs, args, arglen);
    if (c == NULL) {
        *err = *err ? *err : TG_REDIS_NOMEM;
        atomic_fetch_add(&g_failures, 1);
        return NULL;
    }
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    if (send_call(r, c) < 0) {
        free(c->argv);
        free(c);
        *err = TG_REDIS_DOWN;
        atomic_fetch_add(&g_failures, 1);
        return NULL;
    }
    c->caller_waits = true;
    c->deadline = uv_now(r->loop) + r->timeout_ms;
    bool first = tg_list_empty(&r->waiting);
    tg_list_insert_tail(&r->waiting, &c->link);
    if (first)
        arm_deadline(r);
    return c;
}

void tg_redis_cancel(tg_redis_call_t *c)
{
    if (c == NULL || !c->caller_waits)
        return;
    c->caller_waits = false;
    tg_list_remove(&c->link);
    call_free_if_done(c);
}

/* ---- connection ---- */

static void schedule_retry(tg_redis_t *r, uint64_t ms);

static void on_connect(const redisAsyncContext *ac, int status)
{
    tg_redis_t *r = ac->data;
    if (r == NULL)
        return;
    if (status != REDIS_OK) {
        r->ac = NULL; /* hiredis frees it after this callback */
        set_state(r, ST_DOWN, ac->errstr[0] ? ac->errstr : "connect failed");
        schedule_retry(r, RECONNECT_MS);
        return;
    }
    if (r->password == NULL) { /* else up once AUTH is accepted; the connect deadline runs on */
        uv_timer_stop(&r->retry);
        set_state(r, ST_UP, NULL);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    tg_redis_t *r = ac->data;
    if (r == NULL)
        return;
    r->ac = NULL;
    set_state(r, ST_DOWN, ac->errstr[0] ? ac->errstr : "connection closed");
    schedule_retry(r, RECONNECT_MS);
}

/* Drops the context now: hiredis fails its pending calls (DOWN). */
static void drop_context(tg_redis_t *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    if (ac == NULL)
        return;
    ac->data = NULL; /* its callbacks during the free are not news */
    r->ac = NULL;
    set_state(r, ST_DOWN, why);
    redisAsyncFree(ac);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    tg_redis_t *r = privdata;
    const redisReply *rep = reply;
    if (r->ac != ac || rep == NULL)
        return; /* the connection is gone; on_disconnect said so */
    if (rep->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "AUTH refused: %.120s", rep->str);
        drop_context(r, why);
        schedule_retry(r, RECONNECT_MS);
        return;
    }
    uv_timer_stop(&r->retry);
    set_state(r, ST_UP, NULL);
}

static void client_close(tg_redis_t *r);

static void on_retry(uv_timer_t *t)
{
    tg_redis_t *r = t->data;
    if (r->retiring) {
        client_close(r);
        return;
    }
    if (r->state == ST_CONNECTING && r->ac != NULL) { /* the connect hangs */
        drop_context(r, "connect timed out");
        schedule_retry(r, RECONNECT_MS);
        return;
    }
    if (r->ac == NULL)
        connect_now(r);
}

static void schedule_retry(tg_redis_t *r, uint64_t ms)
{
    if (!r->closing && !r->retiring)
        uv_timer_start(&r->retry, on_retry, ms, 0);
}

static void connect_now(tg_redis_t *r)
{
    redisAsyncContext *ac = r->port ? redisAsyncConnect(r->host, r->port) : redisAsyncConnectUnix(r->host);
    if (ac == NULL || ac->err) {
        set_state(r, ST_DOWN, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(r, RECONNECT_MS);
        return;
    }
    ac->data = r;
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(r, RECONNECT_MS);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->state = ST_CONNECTING;
    if (r->password) /* first on the wire, before any queued call */
        redisAsyncCommand(ac, on_auth, r, "AUTH %s", r->password);
    schedule_retry(r, CONNECT_MS);
}

/* ---- lifetime ---- */

static void on_timer_closed(uv_handle_t *h)
{
    tg_redis_t *r = h->data;
    if (--r->open_handles > 0)
        return;
    free(r->host);
    free(r->password);
    free(r);
}

static void client_close(tg_redis_t *r)
{
    if (r == NULL)
        return;
    r->closing = true;
    /* Callers still waiting hear DOWN from the free below; a worker closes
     * its client only after its exchanges are gone, so normally none. */
    drop_context(r, "closed");
    while (!tg_list_empty(&r->waiting)) {
        tg_redis_call_t *c = tg_container_of(r->waiting.next, tg_redis_call_t, link);
        deliver(c, NULL, TG_REDIS_DOWN);
        call_free_if_done(c);
    }
    uv_close((uv_handle_t *)&r->deadline, on_timer_closed);
    uv_close((uv_handle_t *)&r->retry, on_timer_closed);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static tg_redis_t *client_new(uv_loop_t *loop, const tg_redis_cfg_t *cfg)
{
    tg_redis_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->host = strdup(cfg->host);
    r->password = dup_or_null(cfg->password);
    if (r->host == NULL || (cfg->password && r->password == NULL)) {
        free(r->host);
        free(r->password);
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->port = cfg->port;
    r->timeout_ms = cfg->timeout_ms;
    tg_list_init(&r->waiting);
    uv_timer_init(loop, &r->deadline);
    uv_timer_init(loop, &r->retry);
    r->deadline.data = r->retry.data = r;
    r->open_handles = 2;
    connect_now(r);
    return r;
}

static bool same_target(const tg_redis_t *r, const tg_redis_cfg_t *cfg)
{
    bool pw_same = (r->password == NULL && cfg->password == NULL) ||
                   (r->password && cfg->password && strcmp(r->password, cfg->password) == 0);
    return r->port == cfg->port && strcmp(r->host, cfg->host) == 0 && pw_same;
}

tg_redis_t *tg_redis_for_worker(tg_worker_t *w, const tg_redis_cfg_t *cfg)
{
    tg_redis_t *r = w->redis;
    if (r && !same_target(r, cfg)) {
        /* A reload moved Redis: start over. The old client closes from its own
         * timer, so its callers hear DOWN from a clean stack, not from inside
         * this caller's filter. */
        r->retiring = true;
        uv_timer_start(&r->retry, on_retry, 0, 0);
        r = w->redis = NULL;
    }
    if (r == NULL)
        r = w->redis = client_new(&w->loop, cfg);
    if (r)
        r->timeout_ms = cfg->timeout_ms;
    return r;
}

void tg_redis_worker_close(tg_worker_t *w)
{
    client_close(w->redis);
    w->redis = NULL;
}
