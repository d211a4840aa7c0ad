/* GCRA arithmetic and the process-wide local rate-limit store (ratelimit.h).
 *
 * Memory: 64 shards, each a linear-probing table of 16-byte slots (key hash,
 * TAT) kept at most 3/4 full. A shard starts at 256 slots and doubles up to
 * its share of max_keys. When a full shard is at its maximum, it is rebuilt
 * without the expired entries (at most every REBUILD_GAP_NS, so a flood of
 * live keys costs O(1) per insert, not a rebuild each); if it is still full,
 * the entry nearest to expiry among the new key's first PROBE_EVICT slots is
 * evicted. Deletion is backward-shift (no tombstones), so probe chains stay
 * short whatever the churn. */
#include "store/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MIN_SLOTS 256u
#define PROBE_EVICT 16u
#define REBUILD_GAP_NS 100000000ull /* 100 ms */
#define SHARED_MAX_KEYS (1u << 21)

/* ---- GCRA ---- */

void tg_gcra_init(tg_gcra_t *g, uint64_t requests, uint64_t window_ms, uint64_t burst, uint64_t units_per_ms)
{
    uint64_t window = window_ms * units_per_ms;
    g->interval = requests ? window / requests : window;
    if (g->interval == 0)
        g->interval = 1;
    g->burst = burst;
    g->tolerance = __builtin_mul_overflow(burst, g->interval, &g->tolerance) ? UINT64_MAX / 2 : g->tolerance;
}

void tg_gcra_describe(const tg_gcra_t *g, uint64_t tat, uint64_t now, tg_rl_decision_t *d)
{
    uint64_t eff = tat > now ? tat : now;
    uint64_t ahead = eff - now; /* how far the bucket is "in debt" */
    d->reset = ahead;
    if (ahead <= g->tolerance) {
        uint64_t r = (g->tolerance - ahead) / g->interval + 1;
        d->remaining = r > g->burst + 1 ? g->burst + 1 : r;
        d->wait = 0;
    } else {
        d->remaining = 0;
        d->wait = ahead - g->tolerance;
    }
}

bool tg_gcra_take(const tg_gcra_t *g, uint64_t *tat, uint64_t now, tg_rl_decision_t *d)
{
    uint64_t eff = *tat > now ? *tat : now;
    d->allowed = eff - now <= g->tolerance;
    if (d->allowed)
        *tat = eff + g->interval;
    tg_gcra_describe(g, *tat, now, d);
    return d->allowed;
}

uint64_t tg_rl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- SipHash-1-3 (keyed, so clients cannot aim keys at one probe chain) ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3)                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                  \
    } while (0)

static uint64_t siphash13(uint64_t k0, uint64_t k1, const uint8_t *p, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    uint64_t b = (uint64_t)n << 56;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8); /* little-endian hosts (x86-64, arm64) */
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    for (size_t j = 0; i + j < n; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the store ---- */

typedef struct slot {
    uint64_t key; /* 0 = empty */
    uint64_t tat;
} slot_t;

typedef struct shard {
    pthread_mutex_t mu;
    slot_t *slots;
    uint32_t mask;       /* capacity - 1 */
    uint32_t count;
    uint32_t max_cap;
    uint64_t evictions;
    uint64_t next_rebuild; /* ns: no full-shard rebuild before this */
    char pad[64];        /* keeps hot shards on their own cache lines */
} shard_t;

struct tg_rl_local {
    uint64_t k0, k1;
    shard_t shards[TG_RL_SHARDS];
};

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = MIN_SLOTS;
    while (c < n && c < (1u << 30))
        c <<= 1;
    return c;
}

tg_rl_local_t *tg_rl_local_create(size_t max_keys)
{
    tg_rl_local_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    uint64_t seed[2];
    if (getrandom(seed, sizeof seed, 0) != sizeof seed) {
        seed[0] = tg_rl_now_ns() ^ (uint64_t)(uintptr_t)s;
        seed[1] = ~seed[0] * 0x9E3779B97F4A7C15ull;
    }
    s->k0 = seed[0];
    s->k1 = seed[1];
    uint32_t max_cap = pow2_at_least(max_keys / TG_RL_SHARDS);
    for (size_t i = 0; i < TG_RL_SHARDS; i++) {
        shard_t *sh = &s->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->max_cap = max_cap;
        sh->slots = calloc(MIN_SLOTS, sizeof *sh->slots);
        sh->mask = MIN_SLOTS - 1;
        if (sh->slots == NULL) {
            tg_rl_local_destroy(s);
            return NULL;
        }
    }
    return s;
}

void tg_rl_local_destroy(tg_rl_local_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < TG_RL_SHARDS; i++) {
        free(s->shards[i].slots);
        pthread_mutex_destroy(&s->shards[i].mu);
    }
    free(s);
}

static pthread_once_t shared_once = PTHREAD_ONCE_INIT;
static tg_rl_local_t *shared_store;

static void shared_init(void) { shared_store = tg_rl_local_create(SHARED_MAX_KEYS); }

tg_rl_local_t *tg_rl_local_shared(void)
{
    pthread_once(&shared_once, shared_init);
    return shared_store;
}

uint64_t tg_rl_local_key(const tg_rl_local_t *s, uint64_t bucket, const void *p, size_t n)
{
    uint64_t h = siphash13(s->k0 ^ bucket, s->k1, p, n);
    return h ? h : 1;
}

static shard_t *shard_of(tg_rl_local_t *s, uint64_t key) { return &s->shards[key >> 58]; }

/* Finds `key`'s slot, or the empty slot where it would go. */
static uint32_t probe(const shard_t *sh, uint64_t key)
{
    uint32_t i = (uint32_t)key & sh->mask;
    while (sh->slots[i].key != 0 && sh->slots[i].key != key)
        i = (i + 1) & sh->mask;
    return i;
}

/* Backward-shift deletion: later members of the chain move up so that every
 * entry stays reachable from its home slot. */
static void delete_at(shard_t *sh, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & sh->mask;
        if (sh->slots[j].key == 0)
            break;
        uint32_t home = (uint32_t)sh->slots[j].key & sh->mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        sh->slots[i] = sh->slots[j];
        i = j;
    }
    sh->slots[i].key = 0;
    sh->count--;
}

/* Rebuilds into `cap` slots without the expired entries. -1 on OOM (the
 * shard is unchanged). */
static int rebuild(shard_t *sh, uint32_t cap, uint64_t now)
{
    slot_t *nv = calloc(cap, sizeof *nv);
    if (nv == NULL)
        return -1;
    slot_t *old = sh->slots;
    uint32_t oldcap = sh->mask + 1;
    sh->slots = nv;
    sh->mask = cap - 1;
    sh->count = 0;
    for (uint32_t i = 0; i < oldcap; i++) {
        if (old[i].key == 0 || old[i].tat <= now)
            continue;
        sh->slots[probe(sh, old[i].key)] = old[i];
        sh->count++;
    }
    free(old);
    return 0;
}

/* Evicts the entry nearest to expiry among the first PROBE_EVICT entries
 * found from the new key's home slot. */
static void evict_one(shard_t *sh, uint64_t key)
{
    uint32_t i = (uint32_t)key & sh->mask, victim = UINT32_MAX;
    for (uint32_t seen = 0, n = 0; seen < PROBE_EVICT && n <= sh->mask; n++, i = (i + 1) & sh->mask) {
        if (sh->slots[i].key == 0)
            continue;
        seen++;
        if (victim == UINT32_MAX || sh->slots[i].tat < sh->slots[victim].tat)
            victim = i;
    }
    if (victim == UINT32_MAX)
        return;
    delete_at(sh, victim);
    sh->evictions++;
}

static uint32_t count_live(const shard_t *sh, uint64_t now)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i <= sh->mask; i++)
        n += sh->slots[i].key != 0 && sh->slots[i].tat > now;
    return n;
}

/* Makes room for one more entry when the shard is 3/4 full. */
static void make_room(shard_t *sh, uint64_t key, uint64_t now)
{
    uint32_t cap = sh->mask + 1;
    if (sh->count + 1 <= cap / 4 * 3)
        return;
    if (cap < sh->max_cap) {
        /* grow only when live entries need it; else dropping the expired is enough */
        uint32_t ncap = count_live(sh, now) + 1 <= cap / 2 ? cap : cap * 2;
        if (rebuild(sh, ncap, now) == 0)
            return;
    } else if (now >= sh->next_rebuild) {
        sh->next_rebuild = now + REBUILD_GAP_NS;
        if (rebuild(sh, cap, now) == 0 && sh->count + 1 <= cap / 4 * 3)
            return;
    }
    /* Still full (every entry live, or no memory to grow): the eviction
     * forgets one key's debt; counted in stats.evictions. */
    while (sh->count + 1 > (sh->mask + 1) / 4 * 3) {
        uint32_t before = sh->count;
        evict_one(sh, key);
        if (sh->count == before)
            break;
    }
}

bool tg_rl_local_take(tg_rl_local_t *s, uint64_t key, const tg_gcra_t *g, uint64_t now, tg_rl_decision_t *d)
{
    shard_t *sh = shard_of(s, key);
    pthread_mutex_lock(&sh->mu);
    uint32_t i = probe(sh, key);
    if (sh->slots[i].key == 0) {
        uint64_t tat = 0; /* a fresh bucket always allows */
        tg_gcra_take(g, &tat, now, d);
        make_room(sh, key, now);
        i = probe(sh, key);
        sh->slots[i] = (slot_t){ key, tat };
        sh->count++;
    } else {
        tg_gcra_take(g, &sh->slots[i].tat, now, d);
    }
    pthread_mutex_unlock(&sh->mu);
    return d->allowed;
}

void tg_rl_local_refund(tg_rl_local_t *s, uint64_t key, const tg_gcra_t *g)
{
    shard_t *sh = shard_of(s, key);
    pthread_mutex_lock(&sh->mu);
    uint32_t i = probe(sh, key);
    if (sh->slots[i].key != 0)
        sh->slots[i].tat = sh->slots[i].tat > g->interval ? sh->slots[i].tat - g->interval : 0;
    pthread_mutex_unlock(&sh->mu);
}

void tg_rl_local_stats(tg_rl_local_t *s, tg_rl_local_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < TG_RL_SHARDS; i++) {
        shard_t *sh = &s->shards[i];
        pthread_mutex_lock(&sh->mu);
        out->keys += sh->count;
        out->slots += sh->mask + 1u;
        out->evictions += sh->evictions;
        pthread_mutex_unlock(&sh->mu);
    }
}
