/* Runtime state of the configured upstreams: servers with their resolved
 * addresses, counters, and the balancer. One tg_upstreams_t per config
 * generation, shared by every worker; the fields workers touch concurrently
 * are atomics, and addresses are published under a sequence lock so that a
 * re-resolution never blocks a request. */
#ifndef TG_UPSTREAM_UPSTREAM_H
#define TG_UPSTREAM_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config/config.h"

#define TG_MAX_SERVER_ADDRS 8

typedef struct tg_upstream_server {
    const tg_server_addr_cfg_t *cfg;
    size_t index;
    atomic_uint seq;                 /* odd while addrs are being written */
    struct sockaddr_storage addrs[TG_MAX_SERVER_ADDRS];
    socklen_t addr_lens[TG_MAX_SERVER_ADDRS];
    unsigned naddrs;
    bool is_literal;                 /* an IP literal: never re-resolved */
    atomic_uint next_addr;           /* rotates over several addresses */
    atomic_int active;               /* requests in flight, all workers */
    atomic_uint_fast64_t requests;   /* tries sent to this server (retries count too) */
    atomic_uint_fast64_t failures;   /* connect failures, resets, timeouts, 5xx answers */
    /* Resilience state (docs/operations.md). GET /upstreams reports it as
     * health "up" | "down" | "ejected" (tg_upstream_server_health). */
    atomic_int health;               /* TG_HEALTH_UP (0) or TG_HEALTH_DOWN: active checks */
    atomic_uint_fast64_t ejected_until; /* tg_upstream_now_ms() deadline; 0 = not ejected */
    atomic_uint consecutive_failures;   /* passive: failures since the last success */
    atomic_uint_fast64_t ejections;     /* times passively ejected */
    atomic_uint_fast64_t health_changes; /* up <-> down transitions by active checks */
} tg_upstream_server_t;

enum { TG_HEALTH_UP = 0, TG_HEALTH_DOWN = 1 };

/* balance: hash key, compiled from cfg->hash_key. */
typedef enum tg_hash_kind { TG_HASH_NONE = 0, TG_HASH_CLIENT_IP, TG_HASH_HEADER, TG_HASH_COOKIE,
                            TG_HASH_QUERY, TG_HASH_PATH } tg_hash_kind_t;

typedef struct tg_ring_point {
    uint64_t hash;
    uint32_t server;
} tg_ring_point_t;

/* Retry budget: a sliding window of TG_BUDGET_SLOTS one-second slots shared
 * by every worker (lock-free; a slot being recycled may lose a few counts,
 * which only makes the budget approximate, never unbounded). */
#define TG_BUDGET_SLOTS 10
typedef struct tg_retry_budget {
    atomic_uint_fast64_t sec[TG_BUDGET_SLOTS];
    atomic_uint requests[TG_BUDGET_SLOTS];
    atomic_uint retries[TG_BUDGET_SLOTS];
} tg_retry_budget_t;

typedef struct tg_upstream {
    const tg_upstream_cfg_t *cfg;
    tg_upstream_server_t *servers;   /* cfg->nservers entries */
    size_t nservers;
    tg_hash_kind_t hash_kind;
    const char *hash_name;           /* header, cookie or query name (in cfg->hash_key) */
    size_t hash_name_len;
    tg_ring_point_t *ring;           /* balance: hash: sorted points (malloc'd) */
    size_t nring;
    /* tls: the SSL_CTX (OpenSSL's SSL_CTX; upstream/tls_client.h) every
     * worker's connections to these servers start from; NULL without tls:,
     * or when its setup failed (logged; connections then fail: 502). */
    struct ssl_ctx_st *tls_ctx;
    /* Written by every worker: on their own cache line, away from the
     * read-mostly fields above. active and pending are kept only when the
     * circuit breaker limits them (max_connections, max_pending). */
    char pad_[64];                   /* (padding, not _Alignas: the array is calloc'd) */
    atomic_int active;               /* connections in use = requests in flight */
    atomic_int pending;              /* requests waiting for a new connection */
    atomic_uint_fast64_t breaker_rejections;
    atomic_uint_fast64_t retries;    /* retries started */
    atomic_uint_fast64_t retries_denied; /* retries refused by the budget */
    tg_retry_budget_t budget;
} tg_upstream_t;

typedef struct tg_upstreams {
    tg_upstream_t *v;                /* one per cfg->upstreams entry, same order */
    size_t n;
} tg_upstreams_t;

/* Creates the runtime upstreams of `cfg` (borrowed; must outlive them) and
 * resolves every name once, synchronously (start-up and reload run off the
 * event loops). A name that does not resolve is logged and left without
 * addresses: its server is skipped until a refresh resolves it.
 * Returns 0, or -1 on OOM. */
int tg_upstreams_init(tg_upstreams_t *ups, const tg_config_t *cfg);
void tg_upstreams_free(tg_upstreams_t *ups);
/* Re-resolves every DNS name (blocking; call from a non-loop thread). */
void tg_upstreams_refresh_dns(tg_upstreams_t *ups);
/* Copies one current address of `srv` (rotating over several). false when it has none. */
bool tg_upstream_server_addr(tg_upstream_server_t *srv, struct sockaddr_storage *out, socklen_t *len);

/* Reload: copies the runtime state of `src` (same definition, older
 * generation) into `dst` (upstream/carry.c). Main thread. */
void tg_upstream_carry(tg_upstream_t *dst, tg_upstream_t *src);

/* Monotonic milliseconds (CLOCK_MONOTONIC_COARSE: cheap; ejection deadlines). */
uint64_t tg_upstream_now_ms(void);
/* "up", "down" or "ejected" (down wins: the active check is the stronger verdict). */
const char *tg_upstream_server_health(const tg_upstream_server_t *s, uint64_t now_ms);

/* Smooth weighted round robin (nginx semantics), per worker state:
 * `current` holds one counter per server of `u`. `skip` (may be NULL) marks
 * servers not to pick (already tried). Primary servers are used while any is
 * usable, then backups. Returns a server index or -1 when none is usable.
 * (balancer.c; tg_balancer_pick in balancer.h serves every balance.) */
int tg_swrr_pick(tg_upstream_t *u, int64_t *current, const uint8_t *skip);

#endif
