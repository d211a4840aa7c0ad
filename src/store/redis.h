/* A Redis client per worker: hiredis's async API on the worker's libuv loop.
 *
 * Commands issued in one loop iteration leave in one write (hiredis buffers
 * them), so concurrent requests are pipelined on one connection. Every call
 * has a deadline (redis.timeout): the caller hears back by then, with the
 * reply or with TG_REDIS_TIMEOUT, whatever Redis does. While the connection is
 * down a call fails at once; the client reconnects by itself (every
 * RECONNECT_MS) and logs one line per state change of the process (up/down).
 *
 * Threading: a client belongs to one worker thread; only tg_redis_stats may
 * be called from anywhere. */
#ifndef TG_STORE_REDIS_H
#define TG_STORE_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include "config/config.h"

struct redisReply;
struct tg_worker;

typedef struct tg_redis tg_redis_t;
typedef struct tg_redis_call tg_redis_call_t;

typedef enum tg_redis_err {
    TG_REDIS_OK = 0,
    TG_REDIS_DOWN,        /* not connected, or the connection broke */
    TG_REDIS_TIMEOUT,     /* no answer within redis.timeout */
    TG_REDIS_ERROR_REPLY, /* Redis answered with an error */
    TG_REDIS_OVERLOAD,    /* too many calls in flight on this worker */
    TG_REDIS_NOMEM,
} tg_redis_err_t;

/* A Lua script run by EVALSHA, sent again with EVAL when Redis answers
 * NOSCRIPT (after a restart or SCRIPT FLUSH), which also reloads it. */
typedef struct tg_redis_script {
    const char *text;
    char sha1[41];        /* filled by tg_redis_script_init */
} tg_redis_script_t;

void tg_redis_script_init(tg_redis_script_t *s);

/* reply: the answer (valid for the call only; never an error reply) or NULL
 * with err != TG_REDIS_OK. */
typedef void (*tg_redis_cb)(void *arg, const struct redisReply *reply, tg_redis_err_t err);

/* The worker's client for `cfg`, created (and connecting) on first use, or
 * replaced when the address or password changed with a new config. NULL on
 * OOM. */
tg_redis_t *tg_redis_for_worker(struct tg_worker *w, const tg_redis_cfg_t *cfg);
/* Runs `script` with keys and args (copied). Returns the call, whose `cb`
 * runs exactly once later (never from inside this function) unless
 * cancelled; or NULL with *err set, and then cb never runs. */
tg_redis_call_t *tg_redis_eval(tg_redis_t *r, const tg_redis_script_t *script, size_t nkeys,
                               const char *const *keys, const size_t *keylen, size_t nargs,
                               const char *const *args, const size_t *arglen, tg_redis_cb cb, void *arg,
                               tg_redis_err_t *err);
/* The caller no longer wants the answer: cb will not run. */
void tg_redis_cancel(tg_redis_call_t *c);
/* Closes the worker's client (worker shutdown): pending calls are dropped
 * (their owners cancelled them already) and the handles closed on the loop. */
void tg_redis_worker_close(struct tg_worker *w);

typedef struct tg_redis_stats {
    int64_t connections_up;   /* workers whose connection is up now */
    uint64_t calls, timeouts, failures, state_changes;
} tg_redis_stats_t;
void tg_redis_stats(tg_redis_stats_t *out);

#endif
