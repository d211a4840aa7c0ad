/* Rate-limit arithmetic (GCRA) and the process-wide local bucket store.
 *
 * GCRA (the generic cell rate algorithm, a leaky bucket written as one
 * timestamp per key): a bucket keeps its theoretical arrival time TAT. With
 * T = window / requests (the emission interval) and tau = burst * T, a
 * request arriving at `now` is allowed when max(TAT, now) - now <= tau, and
 * then TAT = max(TAT, now) + T. So burst+1 requests pass at once and then one
 * per T — nginx's `limit_req burst=N nodelay`. A TAT in the past is the same
 * as no state at all, which is why idle keys can be evicted without losing
 * anything and why a quota (/h, /d) is exact after any idle time.
 *
 * The arithmetic is unit-free: the local store works in nanoseconds of
 * CLOCK_MONOTONIC, the Redis store in microseconds of Redis's own clock. */
#ifndef TG_STORE_RATELIMIT_H
#define TG_STORE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tg_gcra {
    uint64_t interval;   /* T, > 0 */
    uint64_t tolerance;  /* tau = burst * T */
    uint64_t burst;
} tg_gcra_t;

typedef struct tg_rl_decision {
    bool allowed;
    uint64_t remaining;  /* requests that would pass right now, after this one */
    uint64_t wait;       /* until the next request passes (0 when remaining > 0) */
    uint64_t reset;      /* until the bucket is full again */
} tg_rl_decision_t;

/* Parameters for `requests` per `window_ms` with `burst`, in units of
 * 1/`units_per_ms` ms (1000000 for ns, 1000 for us). */
void tg_gcra_init(tg_gcra_t *g, uint64_t requests, uint64_t window_ms, uint64_t burst, uint64_t units_per_ms);
/* Decides a request at `now` against *tat (0 = fresh bucket); on allow
 * advances *tat. Fills d and returns d->allowed. */
bool tg_gcra_take(const tg_gcra_t *g, uint64_t *tat, uint64_t now, tg_rl_decision_t *d);
/* Fills d->remaining/wait/reset from a bucket's state (TAT after the
 * decision) at `now`; d->allowed is left alone. */
void tg_gcra_describe(const tg_gcra_t *g, uint64_t tat, uint64_t now, tg_rl_decision_t *d);

/* ---- the local store: one per process, shared by every worker ----
 * A fixed number of shards, each an open-addressing table of (key hash, TAT)
 * pairs under its own mutex; keys are 64-bit keyed hashes (SipHash with a
 * per-process random key), so state is 16 bytes a slot. Tables grow up to
 * `max_keys` / TG_RL_SHARDS slots each; expired entries (TAT <= now) are
 * dropped when a table fills, and when every entry is live the entry closest
 * to expiry in the new key's probe window is evicted (counted). */
#define TG_RL_SHARDS 64

typedef struct tg_rl_local tg_rl_local_t;

typedef struct tg_rl_local_stats {
    uint64_t keys;        /* entries held (live or not yet swept) */
    uint64_t slots;       /* table capacity, 16 bytes each */
    uint64_t evictions;   /* live entries dropped for room */
} tg_rl_local_stats_t;

/* max_keys: total slots over all shards (rounded to powers of two per
 * shard). NULL on OOM. */
tg_rl_local_t *tg_rl_local_create(size_t max_keys);
void tg_rl_local_destroy(tg_rl_local_t *s);
/* The process-wide store (2^21 slots at most: 32 MiB), created on first
 * use; NULL only on OOM at that first use. Never freed. */
tg_rl_local_t *tg_rl_local_shared(void);
/* GCRA take on bucket `key` at `now` (ns). Thread-safe. */
bool tg_rl_local_take(tg_rl_local_t *s, uint64_t key, const tg_gcra_t *g, uint64_t now, tg_rl_decision_t *d);
/* Gives back one request taken by tg_rl_local_take (another limit of the
 * same request refused it, so it must not count). */
void tg_rl_local_refund(tg_rl_local_t *s, uint64_t key, const tg_gcra_t *g);
void tg_rl_local_stats(tg_rl_local_t *s, tg_rl_local_stats_t *out);

/* Keyed 64-bit hash of (bucket, bytes) for tg_rl_local_* keys; never 0. */
uint64_t tg_rl_local_key(const tg_rl_local_t *s, uint64_t bucket, const void *p, size_t n);

/* CLOCK_MONOTONIC in ns. */
uint64_t tg_rl_now_ns(void);

#endif
