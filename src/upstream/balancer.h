/* Balancers behind one pick(): weighted round robin (smooth, nginx), least
 * active requests (weighted), weighted random, power of two choices, and
 * consistent hashing on a ring. Every balancer sees the same notion of a
 * usable server (addresses known, not marked down by active checks, not
 * ejected, not already tried) and the same tiers: primaries while one is
 * usable, then backups; ejection is ignored only when it would leave no
 * server at all (Envoy's "panic" mode). */
#ifndef TG_UPSTREAM_BALANCER_H
#define TG_UPSTREAM_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "upstream/upstream.h"

typedef struct tg_pick {
    int64_t *swrr;        /* the calling worker's smooth WRR counters, u->nservers entries */
    const uint8_t *skip;  /* servers not to pick (already tried), or NULL */
    uint64_t hash;        /* balance: hash: the request key's hash (tg_hash_bytes) */
    bool has_hash;        /* false: the request has no key; hash falls back to round robin */
    uint64_t now_ms;      /* tg_upstream_now_ms() */
} tg_pick_t;

/* Picks a server of `u` with u->cfg->balance. Returns its index, or -1 when
 * no server is usable. Thread-safe: shared state is read with atomics, and
 * the per-worker state is in `p`. May log and clear an expired ejection. */
int tg_balancer_pick(tg_upstream_t *u, const tg_pick_t *p);

/* A 64-bit hash of bytes, well mixed (FNV-1a + a murmur3 finalizer). */
uint64_t tg_hash_bytes(const void *data, size_t n);

/* Builds u->ring from the servers' addresses and weights (points depend only
 * on each server's own address and weight, so removing one server of N moves
 * about 1/N of the keys). Returns 0 or -1 on OOM. */
int tg_hash_ring_build(tg_upstream_t *u);

#endif
