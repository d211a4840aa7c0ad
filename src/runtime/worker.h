/* A worker: one thread, one libuv loop, its own SO_REUSEPORT listeners, its
 * own connections, buffers and upstream connection pools. A connection lives
 * and dies on one worker; nothing here is touched by another thread except
 * through `wake` (an async handle) and the atomics it reads. */
#ifndef TG_RUNTIME_WORKER_H
#define TG_RUNTIME_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "config/config.h"
#include "filters/filter.h"
#include "http/msg.h"
#include "net/bufpool.h"
#include "observe/access_log.h"
#include "router/router.h"
#include "upstream/upstream.h"
#include "util/list.h"

/* A config generation: the snapshot with everything compiled from it. */
typedef struct tg_gen {
    atomic_int refs;
    tg_config_t *cfg;
    tg_router_t *router;
    tg_upstreams_t ups;
    tg_filter_states_t filters;
    struct tg_tls_ctx **tls;       /* per server.listen entry: TLS context or NULL (net/tls.h) */
} tg_gen_t;

struct tg_runtime;

typedef struct tg_worker {
    int id;
    uv_loop_t loop;
    uv_thread_t thread;
    struct tg_runtime *rt;
    tg_gen_t *gen;                 /* borrowed from the runtime */
    tg_list_t listeners;           /* tg_wlistener_t (runtime/listeners.c) */
    uv_async_t wake;               /* the runtime's commands: drain, stop */
    atomic_int command;            /* TG_CMD_* last requested */
    tg_bufpool_t bufs;             /* I/O buffers, size = read buffer size */
    tg_list_t conns;               /* downstream connections */
    size_t nconns;
    tg_list_t *idle;               /* idle upstream connections per server (flattened) */
    size_t *idle_base;             /* first idle[] slot of each upstream */
    size_t *idle_count;            /* per slot */
    int64_t **swrr;                /* per upstream: smooth WRR state */
    tg_alog_worker_t alog;
    uint64_t rng[2];               /* xorshift128+ for request ids */
    tg_header_t *hscratch;         /* parse scratch, max_headers entries */
    size_t hcap;
    bool draining;                 /* stop accepting, close idle, finish in-flight */
    struct tg_h2pool *h2pool;      /* HTTP/2 upstream connections (upstream/h2_client.c) */
    uint64_t requests;
    struct tg_redis *redis;        /* store/redis.h: this worker's Redis client, made on first use */
    struct tg_metrics_shard *metrics; /* this worker's counters (observe/metrics.h) */
    /* Reload (runtime/reload.c, runtime/worker_swap.c): the main thread posts
     * the next generation in `swap`; the worker switches between callbacks. */
    _Atomic(struct tg_gen_swap *) swap;
    size_t gen_live;               /* exchanges running on `gen` */
    struct tg_gen_old *old_gens;   /* older generations with exchanges left */
    uint64_t pool_epoch;           /* bumped when the pool layout is rebuilt */
    void *ex_free;                 /* recycled exchanges (proxy/exchange_pool.c) */
    unsigned nex_free;
} tg_worker_t;

enum { TG_CMD_NONE = 0, TG_CMD_DRAIN, TG_CMD_STOP };

/* Sets up a worker for `gen` (listeners are bound here: errors → -1 and a log line). */
int tg_worker_init(tg_worker_t *w, struct tg_runtime *rt, int id, tg_gen_t *gen);
int tg_worker_start(tg_worker_t *w);
/* Asks the worker thread to drain or stop; thread-safe. */
void tg_worker_command(tg_worker_t *w, int cmd);
void tg_worker_join(tg_worker_t *w);
/* Releases a worker whose thread never started (start-up failed). */
void tg_worker_abandon(tg_worker_t *w);
/* Frees the worker's recycled exchanges (proxy/exchange_pool.c). */
void tg_exchange_pool_free(tg_worker_t *w);

/* For connections: the idle list of (upstream u, server s). */
static inline tg_list_t *tg_worker_idle_list(tg_worker_t *w, size_t u, size_t s)
{
    return &w->idle[w->idle_base[u] + s];
}
/* Exchanges hold the generation they started on: hold at start, drop at
 * the end (the worker's current one, or an older one kept for them). */
static inline tg_gen_t *tg_worker_gen_hold(tg_worker_t *w)
{
    w->gen_live++;
    return w->gen;
}
void tg__worker_gen_drop_old(tg_worker_t *w, tg_gen_t *g);
static inline void tg_worker_gen_drop(tg_worker_t *w, tg_gen_t *g)
{
    if (g == w->gen)
        w->gen_live--;
    else
        tg__worker_gen_drop_old(w, g);
}
/* 32 random hex characters into out (for X-Request-Id). */
void tg_worker_request_id(tg_worker_t *w, char out[32]);
/* Called by connections when they close, so a draining worker can stop. */
void tg_worker_conn_closed(tg_worker_t *w);

#endif
