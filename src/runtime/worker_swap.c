/* A worker switching to a new configuration generation (runtime/reload.h).
 *
 * Runs on the worker's own thread, from its wake callback, so no request
 * callback is on the stack: the switch happens between two events. In order:
 * listeners (kept, added, closed), the upstream connection pools (idle
 * connections of upstreams whose definition did not change move to the new
 * layout, the others are closed), then the generation pointer. Exchanges
 * already running keep the generation they hold (tg_worker_gen_hold); the
 * worker remembers how many, and hands the old generation back to the
 * runtime when the last one ends. */
#include "runtime/worker_int.h"

#include <stdlib.h>
#include <unistd.h>
#include "proxy/h1_server.h"
#include "runtime/reload.h"
#include "upstream/h1_client.h"
#include "util/log.h"

typedef struct pools {
    tg_list_t *idle;
    size_t *idle_base, *idle_count;
    int64_t **swrr;
    size_t n;
} pools_t;

static void pools_free(pools_t *p)
{
    for (size_t i = 0; p->swrr && i < p->n; i++)
        free(p->swrr[i]);
    free(p->swrr);
    free(p->idle);
    free(p->idle_base);
    free(p->idle_count);
}

/* Builds the pool index of `next`; idle connections of carried upstreams
 * move over, the others close. On OOM the old layout stays (false). */
static bool swap_pools(tg_worker_t *w, tg_gen_t *next, const tg_gen_swap_t *sw)
{
    tg_gen_t *prev = w->gen;
    pools_t old = { w->idle, w->idle_base, w->idle_count, w->swrr, prev->ups.n };
    w->gen = next;
    if (tg__worker_pools_init(w) < 0) {
        pools_t partial = { w->idle, w->idle_base, w->idle_count, w->swrr, next->ups.n };
        pools_free(&partial);
        w->idle = old.idle, w->idle_base = old.idle_base, w->idle_count = old.idle_count;
        w->swrr = old.swrr;
        w->gen = prev;
        return false;
    }
    pools_t cur = { w->idle, w->idle_base, w->idle_count, w->swrr, next->ups.n };
    uint8_t *kept = calloc(old.n + 1, 1);
    for (size_t i = 0; kept && i < sw->ncarry && i < next->ups.n; i++)
        if (sw->carry[i] >= 0 && (size_t)sw->carry[i] < old.n)
            kept[sw->carry[i]] = 1;
    /* Closing needs the layout the connections were pooled in. */
    w->idle = old.idle, w->idle_base = old.idle_base, w->idle_count = old.idle_count;
    for (size_t u = 0; u < old.n; u++)
        if (kept == NULL || !kept[u])
            for (size_t s = 0; s < prev->ups.v[u].nservers; s++)
                tg_h1c_close_idle_list(w, &old.idle[old.idle_base[u] + s]);
    w->idle = cur.idle, w->idle_base = cur.idle_base, w->idle_count = cur.idle_count;
    w->pool_epoch++;
    for (size_t i = 0; kept && i < sw->ncarry && i < next->ups.n; i++) {
        int from = sw->carry[i];
        if (from < 0 || (size_t)from >= old.n)
            continue;
        tg_upstream_t *u = &next->ups.v[i];
        for (size_t s = 0; s < u->nservers; s++)
            tg_h1c_pool_adopt(w, &old.idle[old.idle_base[from] + s], w->idle_base[i] + s, &u->servers[s]);
    }
    free(kept);
    pools_free(&old);
    return true;
}

/* The parse scratch must hold max_headers of the new limits. */
static bool resize_scratch(tg_worker_t *w, const tg_config_t *cfg)
{
    size_t need = cfg->server.limits.max_headers + 1;
    if (need <= w->hcap)
        return true;
    tg_header_t *h = calloc(need, sizeof *h);
    if (h == NULL)
        return false;
    free(w->hscratch);
    w->hscratch = h;
    w->hcap = need;
    return true;
}

void tg__worker_apply_swap(tg_worker_t *w)
{
    tg_gen_swap_t *sw = atomic_exchange_explicit(&w->swap, NULL, memory_order_acq_rel);
    if (sw == NULL)
        return;
    tg_gen_t *prev = w->gen;
    if (!resize_scratch(w, sw->gen->cfg) || !swap_pools(w, sw->gen, sw)) {
        tg_log_error("worker %d: out of memory switching to the new configuration; "
                     "it keeps serving the previous one", w->id);
        tg__gen_swap_free(sw);
        tg__reload_worker_switched(w->rt);
        return;
    }
    if (!w->draining) {
        tg__listeners_swap(w, sw->gen->cfg, sw->fds, sw->nfds);
        tg_h1s_reloaded(w); /* HTTP/2 clients: GOAWAY, reconnect to the new config */
    }
    /* w->gen is sw->gen now (swap_pools); its reference is the worker's. */
    sw->gen = NULL;
    if (w->gen_live == 0) {
        tg__reload_gen_done(w->rt, prev);
    } else {
        tg_gen_old_t *o = malloc(sizeof *o);
        if (o == NULL) {
            tg_log_error("worker %d: out of memory: the previous configuration is never freed", w->id);
        } else {
            *o = (tg_gen_old_t){ prev, w->gen_live, w->old_gens };
            w->old_gens = o;
        }
    }
    w->gen_live = 0;
    tg__gen_swap_free(sw);
    tg__reload_worker_switched(w->rt);
}

void tg__worker_gen_drop_old(tg_worker_t *w, tg_gen_t *g)
{
    for (tg_gen_old_t **p = &w->old_gens; *p; p = &(*p)->next) {
        tg_gen_old_t *o = *p;
        if (o->gen != g)
            continue;
        if (--o->live == 0) {
            *p = o->next;
            tg__reload_gen_done(w->rt, g);
            free(o);
        }
        return;
    }
}

void tg__gen_swap_free(tg_gen_swap_t *sw)
{
    if (sw == NULL)
        return;
    for (size_t i = 0; i < sw->nfds; i++)
        if (sw->fds[i] >= 0)
            close(sw->fds[i]);
    free(sw->fds);
    if (sw->gen)
        tg_gen_release(sw->gen);
    free(sw);
}
