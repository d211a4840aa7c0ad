/* Hot reload (runtime/reload.h).
 *
 *   main loop                  thread pool                 workers
 *   request ──▶ build() ─────▶ load + validate + compile
 *                              open new listen sockets
 *   built() ◀───────────────── (or the errors)
 *     carry upstream state, restart health checks,
 *     post a tg_gen_swap_t to each worker ───────────────▶ switch (worker_swap.c)
 *   on_async ◀──────────────────────────────────────────── switched / gen done
 *     all switched: answer the waiters, release the old generation
 *
 * Only one reload runs at a time; requests made meanwhile are answered by
 * the next one, which starts as soon as this one is over. */
#include "runtime/reload.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "net/listener.h"
#include "runtime/worker_int.h"
#include "upstream/health.h"
#include "util/log.h"

typedef struct waiter {
    tg_reload_cb cb;
    void *arg;
    struct waiter *next;
} waiter_t;

typedef struct tg_reload {
    tg_runtime_t *rt;
    uv_async_t async;              /* workers: switched, or done with a generation */
    uv_work_t work;
    bool busy, again, closed;
    bool posted;                   /* swaps went out: waiting for the workers */
    bool async_closed;
    waiter_t *current, *next;      /* answered by this reload, by the next one */
    atomic_int pending;            /* workers that have not switched yet */
    tg_gen_t *prev;                /* the generation being replaced */
    /* filled by build() on the thread pool */
    tg_gen_t *gen;
    int *carry;                    /* new upstream index → old index or -1 */
    int **fds;                     /* [worker][listen entry] */
    char **errors;
    size_t nerrors;
    /* generations handed back by workers (any thread) */
    pthread_mutex_t lock;
    tg_gen_t **done;
    size_t ndone, capdone;
    atomic_uint_fast64_t ok, failed;
} tg_reload_t;

static tg_reload_t *R(const tg_runtime_t *rt) { return rt->reload; }

static void add_error(tg_reload_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_error(tg_reload_t *r, const char *fmt, ...)
{
    char **v = realloc(r->errors, (r->nerrors + 1) * sizeof *v);
    if (v == NULL)
        return;
    r->errors = v;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&v[r->nerrors], fmt, ap) >= 0)
        r->nerrors++;
    va_end(ap);
}

/* ---- build (thread pool) ---- */

/* new upstream index → index of the old upstream with the same name and the
 * same definition (compared as the effective JSON, which names every key). */
static int *carry_map(const tg_config_t *old, const tg_config_t *cfg)
{
    int *map = malloc((cfg->nupstreams + 1) * sizeof *map);
    char *a = tg_config_to_json(old), *b = tg_config_to_json(cfg);
    json_t *ja = a ? json_loads(a, 0, NULL) : NULL, *jb = b ? json_loads(b, 0, NULL) : NULL;
    json_t *ua = json_object_get(ja, "upstreams"), *ub = json_object_get(jb, "upstreams");
    for (size_t i = 0; map && i < cfg->nupstreams; i++) {
        map[i] = -1;
        const char *name = cfg->upstreams[i].name;
        json_t *x = json_object_get(ua, name), *y = json_object_get(ub, name);
        for (size_t j = 0; x && y && j < old->nupstreams; j++)
            if (strcmp(old->upstreams[j].name, name) == 0 && json_equal(x, y))
                map[i] = (int)j;
    }
    json_decref(ja);
    json_decref(jb);
    free(a);
    free(b);
    return map;
}

static const tg_listen_cfg_t *find_listen(const tg_config_t *c, const tg_listen_cfg_t *l)
{
    for (size_t i = 0; i < c->server.nlisten; i++)
        if (tg__same_sockaddr(&c->server.listen[i].addr, c->server.listen[i].addr_len, &l->addr, l->addr_len))
            return &c->server.listen[i];
    return NULL;
}

static void close_fds(tg_reload_t *r)
{
    for (int k = 0; r->fds && k < r->rt->nworkers; k++) {
        for (size_t i = 0; r->fds[k] && r->gen && i < r->gen->cfg->server.nlisten; i++)
            if (r->fds[k][i] >= 0)
                close(r->fds[k][i]);
        free(r->fds[k]);
    }
    free(r->fds);
    r->fds = NULL;
}

/* One socket per worker for every address the running config does not have. */
static void open_listeners(tg_reload_t *r, const tg_config_t *old, const tg_config_t *cfg)
{
    int n = r->rt->nworkers;
    r->fds = calloc((size_t)n, sizeof *r->fds);
    for (int k = 0; r->fds && k < n; k++) {
        r->fds[k] = malloc((cfg->server.nlisten + 1) * sizeof(int));
        if (r->fds[k] == NULL)
            break;
        for (size_t i = 0; i < cfg->server.nlisten; i++)
            r->fds[k][i] = -1;
    }
    if (r->fds == NULL || (n > 0 && r->fds[n - 1] == NULL)) {
        add_error(r, "out of memory");
        return;
    }
    for (size_t i = 0; i < cfg->server.nlisten && r->nerrors == 0; i++) {
        const tg_listen_cfg_t *l = &cfg->server.listen[i];
        if (find_listen(old, l))
            continue;
        for (int k = 0; k < n; k++) {
            int fd = tg_listener_socket((const struct sockaddr *)&l->addr, l->addr_len);
            if (fd < 0) {
                add_error(r, "%s: server.listen[%zu]: cannot listen on %s: %s", cfg->path, i, l->address,
                          uv_strerror(fd));
                break;
            }
            r->fds[k][i] = fd;
        }
    }
}

/* What a running process cannot change: refused, or applied at restart. */
static void restart_only(tg_reload_t *r, const tg_config_t *old, const tg_config_t *cfg)
{
    if (cfg->server.workers != old->server.workers)
        add_error(r, "%s: server.workers: changing the number of workers (%d to %d) needs a restart",
                  cfg->path, old->server.workers, cfg->server.workers);
    const char *o = old->server.access_log_path, *n = cfg->server.access_log_path;
    if ((o && n && strcmp(o, n) != 0) || old->server.access_log_format != cfg->server.access_log_format)
        tg_log_warn("reload: server.access_log changes take effect at the next restart");
    if (old->admin.enabled != cfg->admin.enabled ||
        !tg__same_sockaddr(&old->admin.listen.addr, old->admin.listen.addr_len, &cfg->admin.listen.addr,
                           cfg->admin.listen.addr_len))
        tg_log_warn("reload: admin.listen changes take effect at the next restart");
    if (cfg->server.limits.max_header_bytes > old->server.limits.max_header_bytes &&
        cfg->server.limits.max_header_bytes >= 16384)
        tg_log_warn("reload: read buffers keep their size until the next restart: request heads "
                    "are limited to %llu bytes meanwhile",
                    (unsigned long long)(old->server.limits.max_header_bytes > 16383
                                             ? old->server.limits.max_header_bytes : 16383));
}

static void build(uv_work_t *req)
{
    tg_reload_t *r = req->data;
    const tg_config_t *old = r->prev->cfg;
    tg_config_errors_t errs = { 0 };
    tg_config_t *cfg = tg_config_load(old->path, &errs);
    for (size_t i = 0; i < errs.n; i++)
        add_error(r, "%s", errs.v[i].text);
    tg_config_errors_free(&errs);
    if (cfg == NULL)
        return;
    restart_only(r, old, cfg);
    tg_filter_states_t fs; /* policies compile per route: their errors count too (as tollgate -t) */
    char err[512];
    if (r->nerrors == 0 && tg_filter_states_build(&fs, cfg, err, sizeof err) < 0)
        add_error(r, "%s: %s", cfg->path, err);
    else if (r->nerrors == 0)
        tg_filter_states_free(&fs);
    if (r->nerrors) {
        tg_config_release(cfg);
        return;
    }
    r->gen = tg_gen_create(cfg); /* takes cfg */
    if (r->gen == NULL) {
        add_error(r, "%s: the configuration could not be built (see the error log)", old->path);
        return;
    }
    r->carry = carry_map(old, r->gen->cfg);
    if (r->carry == NULL)
        add_error(r, "out of memory");
    else
        open_listeners(r, old, r->gen->cfg);
}

/* ---- main loop ---- */

static void start(tg_reload_t *r);

static void answer(tg_reload_t *r, waiter_t **list, int status)
{
    tg_reload_result_t res = { .status = status, .generation = r->rt->gen->cfg->generation,
                               .errors = (const char *const *)r->errors, .nerrors = r->nerrors };
    waiter_t *w = *list;
    *list = NULL;
    while (w) {
        waiter_t *next = w->next;
        if (w->cb)
            w->cb(w->arg, &res);
        free(w);
        w = next;
    }
}

static void clear_build(tg_reload_t *r)
{
    close_fds(r);
    if (r->gen)
        tg_gen_release(r->gen);
    r->gen = NULL;
    free(r->carry);
    r->carry = NULL;
    for (size_t i = 0; i < r->nerrors; i++)
        free(r->errors[i]);
    free(r->errors);
    r->errors = NULL;
    r->nerrors = 0;
}

static void free_reload(tg_reload_t *r)
{
    clear_build(r);
    pthread_mutex_destroy(&r->lock);
    free(r->done);
    free(r);
}

/* The reload is over (switched everywhere, or refused): answer, go on. */
static void over(tg_reload_t *r, int status)
{
    if (status == 200)
        atomic_fetch_add(&r->ok, 1);
    else
        atomic_fetch_add(&r->failed, 1);
    if (status == 200) {
        tg_log_info("configuration reloaded: generation %llu is live on every worker",
                    (unsigned long long)r->rt->gen->cfg->generation);
    } else {
        tg_log_error("configuration reload failed; generation %llu keeps serving",
                     (unsigned long long)r->rt->gen->cfg->generation);
        for (size_t i = 0; i < r->nerrors; i++)
            tg_log_error("  %s", r->errors[i]);
    }
    answer(r, &r->current, status);
    clear_build(r);
    r->busy = false;
    r->posted = false;
    if (r->again && !r->closed) {
        r->again = false;
        r->current = r->next;
        r->next = NULL;
        start(r);
    }
}

static void post_swaps(tg_reload_t *r)
{
    tg_runtime_t *rt = r->rt;
    r->posted = true;
    atomic_store(&r->pending, rt->nworkers);
    for (int k = 0; k < rt->nworkers; k++) {
        tg_gen_swap_t *sw = calloc(1, sizeof *sw);
        if (sw == NULL) { /* the worker stays on the previous generation (logged) */
            tg_log_error("reload: out of memory: worker %d keeps the previous configuration", k);
            atomic_fetch_sub(&r->pending, 1);
            continue;
        }
        atomic_fetch_add(&r->gen->refs, 1);
        *sw = (tg_gen_swap_t){ .gen = r->gen, .carry = r->carry, .ncarry = r->gen->cfg->nupstreams,
                               .fds = r->fds[k], .nfds = r->gen->cfg->server.nlisten };
        r->fds[k] = NULL;
        atomic_store(&rt->workers[k].swap, sw);
        uv_async_send(&rt->workers[k].wake);
    }
    uv_async_send(&r->async); /* in case every worker was skipped */
}

static void built(uv_work_t *req, int status)
{
    tg_reload_t *r = req->data;
    tg_runtime_t *rt = r->rt;
    if (r->closed) { /* shutdown came while the file was being read */
        answer(r, &r->current, 503);
        answer(r, &r->next, 503);
        r->busy = false;
        if (r->async_closed)
            free_reload(r);
        return;
    }
    if (rt->draining && r->nerrors == 0)
        add_error(r, "the gateway is shutting down");
    if (r->nerrors) {
        over(r, rt->draining ? 503 : 400);
        return;
    }
    tg_gen_t *g = r->gen;
    for (size_t i = 0; i < g->cfg->nupstreams; i++)
        if (r->carry[i] >= 0)
            tg_upstream_carry(&g->ups.v[i], &r->prev->ups.v[r->carry[i]]);
    g->cfg->generation = r->prev->cfg->generation + 1;
    tg_health_stop(rt->health); /* checks follow the servers of the new generation */
    rt->health = tg_health_start(&rt->loop, &g->ups);
    rt->gen = g; /* the runtime's reference moves to the new generation */
    atomic_fetch_add(&g->refs, 1);
    post_swaps(r);
}

static void start(tg_reload_t *r)
{
    r->busy = true;
    r->prev = r->rt->gen;
    r->work.data = r;
    tg_log_info("reloading %s", r->prev->cfg->path);
    if (uv_queue_work(&r->rt->loop, &r->work, build, built) != 0) {
        add_error(r, "cannot start the reload");
        r->prev = NULL;
        over(r, 503);
    }
}

static void on_async(uv_async_t *a)
{
    tg_reload_t *r = a->data;
    pthread_mutex_lock(&r->lock);
    tg_gen_t **done = r->done;
    size_t n = r->ndone;
    r->done = NULL;
    r->ndone = r->capdone = 0;
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < n; i++)
        tg_gen_release(done[i]);
    free(done);
    if (r->posted && atomic_load(&r->pending) == 0) {
        tg_gen_release(r->gen);   /* build()'s reference; rt->gen holds its own */
        r->gen = NULL;
        tg_gen_release(r->prev);  /* the runtime's reference on the old generation */
        r->prev = NULL;
        over(r, 200);
    }
}

void tg_reload_request(tg_runtime_t *rt, tg_reload_cb cb, void *arg)
{
    tg_reload_t *r = R(rt);
    tg_reload_result_t refused = { .status = 503, .generation = rt->gen->cfg->generation,
                                   .errors = (const char *const[]){ "the gateway is shutting down" },
                                   .nerrors = 1 };
    waiter_t *w = r && !r->closed && !rt->draining ? calloc(1, sizeof *w) : NULL;
    if (w == NULL) {
        tg_log_warn("reload refused: %s", r && !rt->draining ? "out of memory" : "the gateway is shutting down");
        if (cb)
            cb(arg, &refused);
        return;
    }
    *w = (waiter_t){ cb, arg, NULL };
    if (r->busy) {
        w->next = r->next;
        r->next = w;
        r->again = true;
        return;
    }
    w->next = r->current;
    r->current = w;
    start(r);
}

void tg_reload_forget(tg_runtime_t *rt, void *arg)
{
    tg_reload_t *r = R(rt);
    waiter_t **lists[] = { &r->current, &r->next };
    for (int i = 0; r && i < 2; i++)
        for (waiter_t *w = *lists[i]; w; w = w->next)
            if (w->arg == arg)
                w->cb = NULL;
}

int tg_reload_init(tg_runtime_t *rt)
{
    tg_reload_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -1;
    r->rt = rt;
    pthread_mutex_init(&r->lock, NULL);
    uv_async_init(&rt->loop, &r->async, on_async);
    r->async.data = r;
    if (rt->gen->cfg->generation == 0)
        rt->gen->cfg->generation = 1;
    rt->reload = r;
    return 0;
}

static void on_async_closed(uv_handle_t *h)
{
    tg_reload_t *r = h->data;
    r->async_closed = true;
    if (!r->busy)
        free_reload(r); /* else built() frees it when the build finishes */
}

void tg_reload_close(tg_runtime_t *rt)
{
    tg_reload_t *r = R(rt);
    if (r == NULL)
        return;
    rt->reload = NULL;
    r->closed = true;
    for (int k = 0; k < rt->nworkers; k++)
        tg__gen_swap_free(atomic_exchange(&rt->workers[k].swap, NULL));
    for (size_t i = 0; i < r->ndone; i++)
        tg_gen_release(r->done[i]);
    r->ndone = 0;
    if (r->posted) { /* the build is over; workers may not all have switched */
        tg_gen_release(r->prev);
        r->prev = NULL;
        r->busy = false;
        r->posted = false;
    }
    if (!r->busy) {
        answer(r, &r->current, 503);
        answer(r, &r->next, 503);
    }
    uv_close((uv_handle_t *)&r->async, on_async_closed);
}

uint64_t tg_reload_count(const tg_runtime_t *rt, bool ok)
{
    const tg_reload_t *r = R(rt);
    return r == NULL ? 0 : ok ? atomic_load(&r->ok) : atomic_load(&r->failed);
}

void tg__reload_worker_switched(tg_runtime_t *rt)
{
    tg_reload_t *r = R(rt);
    if (r && atomic_fetch_sub(&r->pending, 1) == 1)
        uv_async_send(&r->async);
}

void tg__reload_gen_done(tg_runtime_t *rt, tg_gen_t *g)
{
    tg_reload_t *r = R(rt);
    if (r == NULL) { /* shutting down: the main thread is joining the workers */
        tg_gen_release(g);
        return;
    }
    pthread_mutex_lock(&r->lock);
    if (r->ndone == r->capdone) {
        size_t cap = r->capdone ? r->capdone * 2 : 8;
        tg_gen_t **v = realloc(r->done, cap * sizeof *v);
        if (v == NULL) {
            pthread_mutex_unlock(&r->lock);
            tg_log_error("out of memory: a previous configuration is never freed");
            return;
        }
        r->done = v;
        r->capdone = cap;
    }
    r->done[r->ndone++] = g;
    pthread_mutex_unlock(&r->lock);
    uv_async_send(&r->async);
}
