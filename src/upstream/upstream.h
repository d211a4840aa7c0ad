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
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t failures;
} tg_upstream_server_t;

typedef struct tg_upstream {
    const tg_upstream_cfg_t *cfg;
    tg_upstream_server_t *servers;   /* cfg->nservers entries */
    size_t nservers;
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

/* Smooth weighted round robin (nginx semantics), per worker state:
 * `current` holds one counter per server of `u`. `skip` (may be NULL) marks
 * servers not to pick (already tried). Primary servers are used while any is
 * usable, then backups. Returns a server index or -1 when none is usable. */
int tg_swrr_pick(const tg_upstream_t *u, int64_t *current, const uint8_t *skip);

#endif
