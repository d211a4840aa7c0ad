#include "upstream/balancer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "util/log.h"

#define RING_POINTS_PER_WEIGHT 160  /* ~±8% load spread per server (ketama uses 160) */
#define RING_MAX_POINTS (1u << 17)

/* One tier of one pass: which servers a balancer may consider. */
typedef struct pass {
    tg_upstream_t *u;
    const tg_pick_t *p;
    bool backup;          /* the tier: primaries or backups */
    bool honor_eject;     /* false only in panic mode */
} pass_t;

/* ---- usability ---- */

/* An ejection whose time is over ends here, once (the CAS), with a log line. */
static void end_ejection(tg_upstream_t *u, tg_upstream_server_t *s, uint64_t until)
{
    uint_fast64_t expect = until;
    if (atomic_compare_exchange_strong(&s->ejected_until, &expect, 0))
        tg_log_info("upstream %s: server %s returns after its ejection", u->cfg->name, s->cfg->address);
}

static bool eligible(const pass_t *ps, size_t i)
{
    tg_upstream_server_t *s = &ps->u->servers[i];
    if (s->cfg->backup != ps->backup || s->naddrs == 0 || (ps->p->skip && ps->p->skip[i]))
        return false;
    if (atomic_load_explicit(&s->health, memory_order_relaxed) != TG_HEALTH_UP)
        return false;
    uint64_t until = atomic_load_explicit(&s->ejected_until, memory_order_relaxed);
    if (until == 0)
        return true;
    if (until <= ps->p->now_ms) {
        end_ejection(ps->u, s, until);
        return true;
    }
    return !ps->honor_eject;
}

/* ---- per-thread random numbers (xorshift64*: fast, good enough to spread load) ---- */

static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void)
{
    if (rng_state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&ts;
        rng_state = tg_hash_bytes(&seed, sizeof seed) | 1;
    }
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* ---- weighted round robin (smooth, nginx) ---- */

/* One smooth-WRR round over the eligible servers that `extra` also accepts
 * (NULL: all). */
static int swrr_round(const pass_t *ps, bool (*extra)(const pass_t *, size_t, const void *),
                      const void *arg)
{
    int64_t *current = ps->p->swrr;
    int best = -1;
    int64_t total = 0;
    for (size_t i = 0; i < ps->u->nservers; i++) {
        if (!eligible(ps, i) || (extra && !extra(ps, i, arg)))
            continue;
        int64_t w = ps->u->servers[i].cfg->weight;
        current[i] += w;
        total += w;
        if (best < 0 || current[i] > current[best])
            best = (int)i;
    }
    if (best >= 0)
        current[best] -= total;
    return best;
}

/* ---- least active requests, weighted ---- */

static int64_t active_of(const tg_upstream_t *u, size_t i)
{
    return atomic_load_explicit(&u->servers[i].active, memory_order_relaxed);
}

/* a/wa < b/wb without division. */
static bool less_loaded(int64_t a, int64_t wa, int64_t b, int64_t wb) { return a * wb < b * wa; }

typedef struct least { int64_t active, weight; } least_t;

static bool ties_least(const pass_t *ps, size_t i, const void *arg)
{
    const least_t *m = arg;
    return active_of(ps->u, i) * m->weight == m->active * (int64_t)ps->u->servers[i].cfg->weight;
}

/* The least loaded servers, ties broken by smooth WRR so that idle servers
 * share new requests by weight (nginx's least_conn does the same). */
static int least_conn(const pass_t *ps)
{
    least_t m = { -1, 1 };
    for (size_t i = 0; i < ps->u->nservers; i++) {
        if (!eligible(ps, i))
            continue;
        int64_t a = active_of(ps->u, i), w = ps->u->servers[i].cfg->weight;
        if (m.active < 0 || less_loaded(a, w, m.active, m.weight))
            m = (least_t){ a, w };
    }
    if (m.active < 0)
        return -1;
    return swrr_round(ps, ties_least, &m);
}

/* ---- weighted random, power of two choices ---- */

/* A weighted random eligible server other than `exclude` (-1: none excluded). */
static int weighted_random_ex(const pass_t *ps, int exclude)
{
    uint64_t total = 0;
    for (size_t i = 0; i < ps->u->nservers; i++)
        if ((int)i != exclude && eligible(ps, i))
            total += ps->u->servers[i].cfg->weight;
    if (total == 0)
        return -1;
    uint64_t r = rng_next() % total;
    for (size_t i = 0; i < ps->u->nservers; i++) {
        if ((int)i == exclude || !eligible(ps, i))
            continue;
        uint64_t w = ps->u->servers[i].cfg->weight;
        if (r < w)
            return (int)i;
        r -= w;
    }
    return -1; /* eligibility changed under us (another thread): treat as none */
}

static int weighted_random(const pass_t *ps) { return weighted_random_ex(ps, -1); }

/* Two distinct candidates drawn by weight; the one with fewer active
 * requests per weight wins (Mitzenmacher's power of two choices). */
static int p2c(const pass_t *ps)
{
    int a = weighted_random(ps);
    if (a < 0)
        return -1;
    int b = weighted_random_ex(ps, a);
    if (b < 0)
        return a; /* the only usable server */
    const tg_upstream_t *u = ps->u;
    return less_loaded(active_of(u, (size_t)b), u->servers[b].cfg->weight, active_of(u, (size_t)a),
                       u->servers[a].cfg->weight) ? b : a;
}

/* ---- consistent hash ---- */

uint64_t tg_hash_bytes(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static int cmp_point(const void *pa, const void *pb)
{
    const tg_ring_point_t *a = pa, *b = pb;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    return a->server < b->server ? -1 : a->server > b->server;
}

int tg_hash_ring_build(tg_upstream_t *u)
{
    uint64_t wsum = 0;
    for (size_t i = 0; i < u->nservers; i++)
        wsum += u->servers[i].cfg->weight;
    uint64_t per = RING_POINTS_PER_WEIGHT;
    while (per > 1 && wsum * per > RING_MAX_POINTS)
        per /= 2;
    size_t total = (size_t)(wsum * per);
    u->ring = malloc((total ? total : 1) * sizeof *u->ring);
    if (u->ring == NULL)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < u->nservers; i++) {
        const tg_server_addr_cfg_t *c = u->servers[i].cfg;
        for (uint64_t k = 0; k < c->weight * per; k++) {
            char key[320];
            int l = snprintf(key, sizeof key, "%s#%llu", c->address, (unsigned long long)k);
            u->ring[n++] = (tg_ring_point_t){ tg_hash_bytes(key, (size_t)l), (uint32_t)i };
        }
    }
    qsort(u->ring, n, sizeof *u->ring, cmp_point);
    u->nring = n;
    return 0;
}

/* The first eligible server clockwise from the key's point. */
static int ring_walk(const pass_t *ps)
{
    const tg_upstream_t *u = ps->u;
    if (u->nring == 0)
        return -1;
    size_t lo = 0, hi = u->nring;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u->ring[mid].hash < ps->p->hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < u->nring; k++) {
        uint32_t s = u->ring[(lo + k) % u->nring].server;
        if (eligible(ps, s))
            return (int)s;
    }
    return -1;
}

/* ---- dispatch ---- */

static int pick_in(const pass_t *ps)
{
    switch (ps->u->cfg->balance) {
    case TG_BALANCE_LEAST_CONN:
        return least_conn(ps);
    case TG_BALANCE_RANDOM:
        return weighted_random(ps);
    case TG_BALANCE_P2C:
        return p2c(ps);
    case TG_BALANCE_HASH:
        if (ps->p->has_hash)
            return ring_walk(ps);
        return swrr_round(ps, NULL, NULL);
    case TG_BALANCE_ROUND_ROBIN:
    default:
        return swrr_round(ps, NULL, NULL);
    }
}

int tg_balancer_pick(tg_upstream_t *u, const tg_pick_t *p)
{
    /* primaries, backups; then the same ignoring ejections (panic) */
    static const struct { bool backup, honor_eject; } order[] = {
        { false, true }, { true, true }, { false, false }, { true, false },
    };
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        pass_t ps = { u, p, order[k].backup, order[k].honor_eject };
        int i = pick_in(&ps);
        if (i >= 0)
            return i;
    }
    return -1;
}

int tg_swrr_pick(tg_upstream_t *u, int64_t *current, const uint8_t *skip)
{
    tg_pick_t p = { .swrr = current, .skip = skip, .now_ms = tg_upstream_now_ms() };
    for (int backup = 0; backup < 2; backup++) {
        pass_t ps = { u, &p, backup, true };
        int i = swrr_round(&ps, NULL, NULL);
        if (i >= 0)
            return i;
    }
    return -1;
}
