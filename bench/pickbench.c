/* CPU cost of one tg_balancer_pick per balance, n servers, all idle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "upstream/balancer.h"

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(void)
{
    static const char *names[] = { "round_robin", "least_conn", "random", "p2c", "hash" };
    for (size_t n = 2; n <= 8; n *= 4) {
        for (int b = 0; b < 5; b++) {
            tg_upstream_cfg_t cfg = { .name = "u", .balance = (tg_balance_t)b, .nservers = n };
            tg_server_addr_cfg_t sc[8];
            tg_upstream_server_t *srv = calloc(n, sizeof *srv);
            char addr[8][32];
            for (size_t i = 0; i < n; i++) {
                snprintf(addr[i], sizeof addr[i], "10.0.0.%zu:80", i + 1);
                sc[i] = (tg_server_addr_cfg_t){ .address = addr[i], .host = "x", .port = 80, .weight = 1 };
                srv[i].cfg = &sc[i];
                srv[i].index = i;
                srv[i].naddrs = 1;
            }
            cfg.servers = sc;
            tg_upstream_t u = { .cfg = &cfg, .servers = srv, .nservers = n };
            if (b == TG_BALANCE_HASH)
                tg_hash_ring_build(&u);
            int64_t cur[8] = { 0 };
            long iters = 5000000, sum = 0;
            double t0 = cpu_ns();
            for (long i = 0; i < iters; i++) {
                tg_pick_t p = { .swrr = cur, .now_ms = tg_upstream_now_ms(), .has_hash = true,
                                .hash = (uint64_t)i * 0x9E3779B97F4A7C15ull };
                int s = tg_balancer_pick(&u, &p);
                atomic_fetch_add_explicit(&srv[s].active, 1, memory_order_relaxed);
                atomic_fetch_sub_explicit(&srv[s].active, 1, memory_order_relaxed);
                sum += s;
            }
            double t1 = cpu_ns();
            printf("%zu servers %-12s %6.1f ns/pick (%ld)\n", n, names[b], (t1 - t0) / iters, sum % 7);
            free(u.ring);
            free(srv);
        }
    }
    return 0;
}
