#include "runtime/worker.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "net/listener.h"
#include "proxy/h1_server.h"
#include "observe/gateway_metrics.h"
#include "runtime/reload.h"
#include "runtime/runtime.h"
#include "runtime/worker_int.h"
#include "store/redis.h"
#include "upstream/h1_client.h"
#include "upstream/h2_client.h"
#include "util/log.h"

/* Read buffers hold a whole request head; never smaller than 16 KiB. */
static size_t buffer_size(const tg_config_t *cfg)
{
    size_t need = (size_t)cfg->server.limits.max_header_bytes + 1;
    return need < 16384 ? 16384 : need;
}

int tg__worker_pools_init(tg_worker_t *w)
{
    const tg_upstreams_t *ups = &w->gen->ups;
    size_t total = 0;
    w->idle_base = calloc(ups->n + 1, sizeof *w->idle_base);
    w->swrr = calloc(ups->n + 1, sizeof *w->swrr);
    if (w->idle_base == NULL || w->swrr == NULL)
        return -1;
    for (size_t i = 0; i < ups->n; i++) {
        w->idle_base[i] = total;
        total += ups->v[i].nservers;
        w->swrr[i] = calloc(ups->v[i].nservers + 1, sizeof **w->swrr);
        if (w->swrr[i] == NULL)
            return -1;
    }
    w->idle = calloc(total + 1, sizeof *w->idle);
    w->idle_count = calloc(total + 1, sizeof *w->idle_count);
    if (w->idle == NULL || w->idle_count == NULL)
        return -1;
    for (size_t i = 0; i < total; i++)
        tg_list_init(&w->idle[i]);
    return 0;
}

void tg__worker_on_connection(uv_stream_t *server, int status)
{
    tg_worker_t *w = server->data;
    if (status < 0)
        return;
    tg_runtime_t *rt = w->rt;
    uint32_t max = w->gen->cfg->server.limits.max_connections;
    if ((uint32_t)atomic_load_explicit(&rt->conns, memory_order_relaxed) >= max) {
        /* Over the limit: take the connection off the queue and close it, so
         * that the client sees a clean close and existing ones are served. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (t == NULL)
            return;
        uv_tcp_init(&w->loop, t);
        if (uv_accept(server, (uv_stream_t *)t) == 0)
            tg_log_warn("max_connections (%u) reached: connection refused", max);
        uv_close((uv_handle_t *)t, (uv_close_cb)free);
        return;
    }
    atomic_fetch_add_explicit(&rt->conns, 1, memory_order_relaxed);
    size_t before = w->nconns;
    tg_h1s_accept(w, server);
    if (w->nconns == before)
        atomic_fetch_sub_explicit(&rt->conns, 1, memory_order_relaxed);
    else
        tg_metric_inc(w->metrics, &tg_m_connections, NULL);
}

static void close_listeners(tg_worker_t *w) { tg__listeners_close(w); }

static void finish(tg_worker_t *w)
{
    close_listeners(w);
    tg_h1s_close_all(w);
    tg_h1c_close_idle(w);
    tg_h2c_close_idle(w);
    tg_alog_worker_close(&w->alog);
    tg_redis_worker_close(w);
    uv_close((uv_handle_t *)&w->wake, NULL);
}

static void maybe_finished(tg_worker_t *w)
{
    if (w->draining && w->nconns == 0 && !uv_is_closing((uv_handle_t *)&w->wake))
        finish(w);
}

void tg_worker_conn_closed(tg_worker_t *w)
{
    atomic_fetch_sub_explicit(&w->rt->conns, 1, memory_order_relaxed);
    maybe_finished(w);
}

static void on_wake(uv_async_t *a)
{
    tg_worker_t *w = a->data;
    tg__worker_apply_swap(w); /* a reload, between two callbacks */
    int cmd = atomic_exchange(&w->command, TG_CMD_NONE);
    if (cmd == TG_CMD_DRAIN && !w->draining) {
        w->draining = true;
        close_listeners(w);
        tg_h1s_drain(w);
        tg_h1c_close_idle(w);
        tg_h2c_close_idle(w);
        maybe_finished(w);
    } else if (cmd == TG_CMD_STOP) {
        w->draining = true;
        if (!uv_is_closing((uv_handle_t *)&w->wake))
            finish(w);
    }
}

int tg_worker_init(tg_worker_t *w, struct tg_runtime *rt, int id, tg_gen_t *gen)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->rt = rt;
    w->gen = gen;
    atomic_fetch_add(&gen->refs, 1); /* the worker's own: a reload hands it back */
    w->pool_epoch = 1;
    tg_list_init(&w->listeners);
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    tg_list_init(&w->conns);
    w->metrics = tg_metrics_shard_new();
    const tg_config_t *cfg = gen->cfg;
    tg_bufpool_init(&w->bufs, buffer_size(cfg), 256);
    w->hcap = cfg->server.limits.max_headers + 1;
    w->hscratch = calloc(w->hcap, sizeof *w->hscratch);
    if (w->hscratch == NULL || tg__worker_pools_init(w) < 0)
        return -1;
    if (getrandom(w->rng, sizeof w->rng, 0) != sizeof w->rng || (w->rng[0] | w->rng[1]) == 0) {
        w->rng[0] = uv_hrtime() ^ (uint64_t)(uintptr_t)w;
        w->rng[1] = 0x9E3779B97F4A7C15ull ^ (uint64_t)id;
    }
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    tg_alog_worker_init(&w->alog, rt->alog, &w->loop);
    return tg__listeners_open(w);
}

static void worker_main(void *arg)
{
    tg_worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    atomic_fetch_sub(&w->rt->workers_left, 1);
    uv_async_send(&w->rt->worker_exit);
}

int tg_worker_start(tg_worker_t *w) { return uv_thread_create(&w->thread, worker_main, w); }

void tg_worker_command(tg_worker_t *w, int cmd)
{
    atomic_store(&w->command, cmd);
    uv_async_send(&w->wake);
}

static void free_worker(tg_worker_t *w)
{
    uv_loop_close(&w->loop);
    tg_bufpool_destroy(&w->bufs);
    for (size_t i = 0; w->swrr && i < w->gen->ups.n; i++)
        free(w->swrr[i]);
    free(w->swrr);
    free(w->idle_base);
    free(w->idle);
    free(w->idle_count);
    tg_h2c_pool_free(w);
    tg_exchange_pool_free(w);
    free(w->hscratch);
    while (w->old_gens) { /* left only when the loop stopped with exchanges on them */
        tg_gen_old_t *o = w->old_gens;
        w->old_gens = o->next;
        tg_gen_release(o->gen);
        free(o);
    }
    tg_gen_release(w->gen);
}

void tg_worker_join(tg_worker_t *w)
{
    uv_thread_join(&w->thread);
    free_worker(w);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void tg_worker_abandon(tg_worker_t *w)
{
    tg__listeners_close(w); /* with the callbacks that free them */
    uv_walk(&w->loop, close_any, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    free_worker(w);
}

void tg_worker_request_id(tg_worker_t *w, char out[32])
{
    static const char hex[] = "0123456789abcdef";
    for (int k = 0; k < 2; k++) {
        /* xorshift128+: fast, and unpredictable enough for correlation ids */
        uint64_t s1 = w->rng[0];
        const uint64_t s0 = w->rng[1];
        w->rng[0] = s0;
        s1 ^= s1 << 23;
        w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        uint64_t v = w->rng[1] + s0;
        for (int i = 0; i < 16; i++)
            out[k * 16 + i] = hex[(v >> (i * 4)) & 15];
    }
}
