/* Unit tests for the balancers behind tg_balancer_pick, the consistent-hash
 * ring, backups and panic mode, outlier ejection and the retry budget. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "upstream/balancer.h"
#include "upstream/resilience.h"
#include "config/config.h"
#include "check_run.h"

#define MAXS 8
#define PICKS 10000

typedef struct fixture {
    tg_upstream_cfg_t cfg;
    tg_server_addr_cfg_t scfg[MAXS];
    char addr[MAXS][32];
    tg_upstream_server_t srv[MAXS];
    tg_upstream_t up;
    int64_t current[MAXS];
    uint8_t skip[MAXS];
} fixture_t;

/* n servers "10.0.0.<first+i>:80" with the given weights (NULL = 1). */
static fixture_t *make(tg_balance_t b, const uint32_t *weights, size_t n, int first)
{
    fixture_t *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n; i++) {
        snprintf(f->addr[i], sizeof f->addr[i], "10.0.0.%d:80", first + (int)i);
        f->scfg[i] = (tg_server_addr_cfg_t){ .address = f->addr[i], .host = "10.0.0.1", .port = 80,
                                             .weight = weights ? weights[i] : 1 };
        f->srv[i].cfg = &f->scfg[i];
        f->srv[i].index = i;
        f->srv[i].naddrs = 1;
    }
    f->cfg.name = "u";
    f->cfg.balance = b;
    f->cfg.nservers = n;
    f->cfg.servers = f->scfg;
    f->cfg.retry_attempts = 2;
    f->cfg.retry_budget_pct = 20;
    f->up.cfg = &f->cfg;
    f->up.servers = f->srv;
    f->up.nservers = n;
    if (b == TG_BALANCE_HASH)
        ck_assert_int_eq(tg_hash_ring_build(&f->up), 0);
    return f;
}

static void destroy(fixture_t *f)
{
    free(f->up.ring);
    free(f);
}

static int pick(fixture_t *f, const uint8_t *skip)
{
    tg_pick_t p = { .swrr = f->current, .skip = skip, .now_ms = tg_upstream_now_ms() };
    return tg_balancer_pick(&f->up, &p);
}

static int pick_key(fixture_t *f, unsigned key)
{
    char k[32];
    int l = snprintf(k, sizeof k, "user-%u", key);
    tg_pick_t p = { .swrr = f->current, .now_ms = tg_upstream_now_ms(), .has_hash = true,
                    .hash = tg_hash_bytes(k, (size_t)l) };
    return tg_balancer_pick(&f->up, &p);
}

/* Each server's share of PICKS is within `tol` (absolute fraction) of its weight share. */
static void check_shares(const int *count, const uint32_t *w, size_t n, double tol)
{
    double wsum = 0;
    for (size_t i = 0; i < n; i++)
        wsum += w[i];
    for (size_t i = 0; i < n; i++) {
        double share = (double)count[i] / PICKS, want = w[i] / wsum;
        ck_assert_msg(share > want - tol && share < want + tol, "server %zu: share %.4f, want %.4f", i,
                      share, want);
    }
}

START_TEST(round_robin_weights)
{
    const uint32_t w[] = { 1, 2, 3, 4 };
    fixture_t *f = make(TG_BALANCE_ROUND_ROBIN, w, 4, 1);
    int count[4] = { 0 };
    for (int i = 0; i < PICKS; i++)
        count[pick(f, NULL)]++;
    check_shares(count, w, 4, 0.001); /* smooth WRR is exact */
    destroy(f);
}
END_TEST

START_TEST(least_conn_weights_and_load)
{
    const uint32_t w[] = { 1, 3 };
    fixture_t *f = make(TG_BALANCE_LEAST_CONN, w, 2, 1);
    int count[2] = { 0 };
    /* All idle: ties are shared by weight. */
    for (int i = 0; i < PICKS; i++)
        count[pick(f, NULL)]++;
    check_shares(count, w, 2, 0.01);
    /* 2 active on weight 1 (2.0 per weight) vs 5 on weight 3 (1.67): the second. */
    atomic_store(&f->srv[0].active, 2);
    atomic_store(&f->srv[1].active, 5);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(pick(f, NULL), 1);
    /* A busy server gets nothing while the other is idle. */
    atomic_store(&f->srv[0].active, 0);
    atomic_store(&f->srv[1].active, 1);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(pick(f, NULL), 0);
    /* Simulated steady load: each pick holds one request; the oldest ends. */
    atomic_store(&f->srv[0].active, 0);
    atomic_store(&f->srv[1].active, 0);
    int inflight[16], head = 0, n = 0;
    memset(count, 0, sizeof count);
    for (int i = 0; i < PICKS; i++) {
        if (n == 16) {
            atomic_fetch_sub(&f->srv[inflight[head]].active, 1);
            head = (head + 1) % 16;
            n--;
        }
        int s = pick(f, NULL);
        count[s]++;
        atomic_fetch_add(&f->srv[s].active, 1);
        inflight[(head + n++) % 16] = s;
    }
    check_shares(count, w, 2, 0.03);
    destroy(f);
}
END_TEST

START_TEST(random_weights)
{
    const uint32_t w[] = { 1, 2, 3, 4 };
    fixture_t *f = make(TG_BALANCE_RANDOM, w, 4, 1);
    int count[4] = { 0 };
    for (int i = 0; i < PICKS; i++)
        count[pick(f, NULL)]++;
    check_shares(count, w, 4, 0.03);
    destroy(f);
}
END_TEST

START_TEST(p2c_spreads_and_avoids_busy)
{
    const uint32_t w[] = { 1, 1, 1 };
    fixture_t *f = make(TG_BALANCE_P2C, w, 3, 1);
    int count[3] = { 0 };
    for (int i = 0; i < PICKS; i++) {
        int s = pick(f, NULL);
        count[s]++;
        /* hold and release at once: every server stays idle, draws are fair */
    }
    check_shares(count, w, 3, 0.03);
    atomic_store(&f->srv[0].active, 50);
    memset(count, 0, sizeof count);
    for (int i = 0; i < PICKS; i++)
        count[pick(f, NULL)]++;
    /* two distinct candidates: the busy server always loses */
    ck_assert_int_eq(count[0], 0);
    destroy(f);
}
END_TEST

START_TEST(hash_consistent_and_remaps_one_nth)
{
    const size_t n = 5;
    fixture_t *all = make(TG_BALANCE_HASH, NULL, n, 1);
    fixture_t *less = make(TG_BALANCE_HASH, NULL, n - 1, 1); /* the last server removed */
    int count[MAXS] = { 0 }, moved = 0;
    for (unsigned k = 0; k < PICKS; k++) {
        int a = pick_key(all, k);
        ck_assert_int_eq(pick_key(all, k), a); /* stable */
        count[a]++;
        int b = pick_key(less, k);
        if (a != (int)n - 1)
            ck_assert_int_eq(a, b); /* keys of the other servers stay put */
        moved += a != b;
    }
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(count[i] > PICKS / 10 && count[i] < PICKS * 3 / 10, "server %zu has %d keys", i,
                      count[i]);
    /* about 1/N of the keys move: those of the removed server */
    ck_assert_msg(moved > PICKS / 10 && moved < PICKS * 3 / 10, "moved %d of %d", moved, PICKS);
    /* a key whose server is down goes to the next server on the ring, and back */
    int home = pick_key(all, 7);
    atomic_store(&all->srv[home].health, TG_HEALTH_DOWN);
    int other = pick_key(all, 7);
    ck_assert_int_ne(other, home);
    atomic_store(&all->srv[home].health, TG_HEALTH_UP);
    ck_assert_int_eq(pick_key(all, 7), home);
    destroy(all);
    destroy(less);
}
END_TEST

START_TEST(hash_without_key_round_robin)
{
    fixture_t *f = make(TG_BALANCE_HASH, NULL, 3, 1);
    int count[3] = { 0 };
    for (int i = 0; i < 300; i++)
        count[pick(f, NULL)]++;
    ck_assert_int_eq(count[0], 100);
    ck_assert_int_eq(count[1], 100);
    ck_assert_int_eq(count[2], 100);
    destroy(f);
}
END_TEST

START_TEST(backups_only_when_no_primary)
{
    static const tg_balance_t all[] = { TG_BALANCE_ROUND_ROBIN, TG_BALANCE_LEAST_CONN, TG_BALANCE_RANDOM,
                                        TG_BALANCE_P2C, TG_BALANCE_HASH };
    for (size_t b = 0; b < sizeof all / sizeof all[0]; b++) {
        fixture_t *f = make(all[b], NULL, 3, 1);
        f->scfg[2].backup = true;
        for (int i = 0; i < 200; i++) {
            int s = f->cfg.balance == TG_BALANCE_HASH ? pick_key(f, (unsigned)i) : pick(f, NULL);
            ck_assert_int_ne(s, 2);
        }
        atomic_store(&f->srv[0].health, TG_HEALTH_DOWN);            /* active check */
        atomic_store(&f->srv[1].ejected_until, tg_upstream_now_ms() + 60000); /* outlier */
        for (int i = 0; i < 50; i++)
            ck_assert_int_eq(pick(f, NULL), 2);
        /* backups tried too: panic mode ignores the ejection, not the health check */
        memset(f->skip, 0, sizeof f->skip);
        f->skip[2] = 1;
        ck_assert_int_eq(pick(f, f->skip), 1);
        atomic_store(&f->srv[1].health, TG_HEALTH_DOWN);
        ck_assert_int_eq(pick(f, f->skip), -1);
        destroy(f);
    }
}
END_TEST

START_TEST(unresolved_and_skipped_servers)
{
    fixture_t *f = make(TG_BALANCE_LEAST_CONN, NULL, 3, 1);
    f->srv[0].naddrs = 0;
    f->skip[1] = 1;
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(pick(f, f->skip), 2);
    destroy(f);
}
END_TEST

START_TEST(outlier_ejects_and_returns)
{
    fixture_t *f = make(TG_BALANCE_ROUND_ROBIN, NULL, 2, 1);
    f->cfg.outlier = (tg_outlier_cfg_t){ .consecutive_failures = 3, .eject_ms = 50 };
    uint64_t now = tg_upstream_now_ms();
    tg_outlier_record(&f->up, &f->srv[0], true, now);
    tg_outlier_record(&f->up, &f->srv[0], true, now);
    tg_outlier_record(&f->up, &f->srv[0], false, now); /* a success ends the run */
    tg_outlier_record(&f->up, &f->srv[0], true, now);
    tg_outlier_record(&f->up, &f->srv[0], true, now);
    ck_assert_str_eq(tg_upstream_server_health(&f->srv[0], now), "up");
    tg_outlier_record(&f->up, &f->srv[0], true, now);
    ck_assert_str_eq(tg_upstream_server_health(&f->srv[0], now), "ejected");
    ck_assert_uint_eq(atomic_load(&f->srv[0].ejections), 1);
    ck_assert_uint_eq(atomic_load(&f->srv[0].failures), 5);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(pick(f, NULL), 1);
    /* after `eject` the server is tried again */
    atomic_store(&f->srv[0].ejected_until, tg_upstream_now_ms() - 1);
    int seen0 = 0;
    for (int i = 0; i < 10; i++)
        seen0 += pick(f, NULL) == 0;
    ck_assert_int_eq(seen0, 5);
    ck_assert_uint_eq(atomic_load(&f->srv[0].ejected_until), 0);
    destroy(f);
}
END_TEST

START_TEST(retry_budget_caps)
{
    fixture_t *f = make(TG_BALANCE_ROUND_ROBIN, NULL, 2, 1);
    uint64_t now = 1000000;
    for (int i = 0; i < 100; i++)
        tg_retry_budget_request(&f->up, now);
    int allowed = 0;
    for (int i = 0; i < 100; i++)
        allowed += tg_retry_budget_take(&f->up, now);
    ck_assert_int_eq(allowed, 20 + TG_BUDGET_MIN_RETRIES);
    /* the window slides: 10 s later the old second no longer counts */
    now += TG_BUDGET_SLOTS * 1000;
    ck_assert(tg_retry_budget_take(&f->up, now)); /* the floor */
    f->cfg.retry_budget_pct = 0;
    ck_assert(!tg_retry_budget_take(&f->up, now));
    destroy(f);
}
END_TEST

START_TEST(config_resilience_keys)
{
    static const char y[] =
        "upstreams:\n"
        "  u:\n"
        "    servers: [a:1, b:2]\n"
        "    balance: hash\n"
        "    hash_key: cookie:sid\n"
        "    health_check: { path: /hz, interval: 2s, timeout: 500ms, healthy: 4, unhealthy: 5, expect: [200, 300-304] }\n"
        "    outlier: { consecutive_failures: 7 }\n"
        "    circuit_breaker: { max_pending: 9 }\n"
        "    retries: { attempts: 1, non_idempotent: true }\n"
        "  v: { servers: c:3, balance: p2c, health_check: {}, outlier: {} }\n";
    tg_config_errors_t errs = { 0 };
    tg_config_t *c = tg_config_load_string("t.yaml", y, sizeof y - 1, &errs);
    if (c == NULL)
        tg_config_errors_print(&errs, stderr);
    ck_assert_ptr_nonnull(c);
    const tg_upstream_cfg_t *u = &c->upstreams[0], *v = &c->upstreams[1];
    ck_assert_int_eq(u->balance, TG_BALANCE_HASH);
    ck_assert(u->has_health_check);
    ck_assert_str_eq(u->health_check.path, "/hz");
    ck_assert_uint_eq(u->health_check.interval_ms, 2000);
    ck_assert_uint_eq(u->health_check.timeout_ms, 500);
    ck_assert_uint_eq(u->health_check.healthy, 4);
    ck_assert_uint_eq(u->health_check.unhealthy, 5);
    ck_assert_uint_eq(u->health_check.nexpect, 2);
    ck_assert_uint_eq(u->health_check.expect[1].lo, 300);
    ck_assert_uint_eq(u->health_check.expect[1].hi, 304);
    ck_assert_uint_eq(u->outlier.consecutive_failures, 7);
    ck_assert_uint_eq(u->outlier.eject_ms, 30000);
    ck_assert_uint_eq(u->breaker.max_connections, 1024);
    ck_assert_uint_eq(u->breaker.max_pending, 9);
    ck_assert(u->retry_non_idempotent);
    /* defaults of sections given empty */
    ck_assert_int_eq(v->balance, TG_BALANCE_P2C);
    ck_assert_str_eq(v->health_check.path, "/");
    ck_assert_uint_eq(v->health_check.interval_ms, 5000);
    ck_assert_uint_eq(v->health_check.expect[0].lo, 200);
    ck_assert_uint_eq(v->health_check.expect[0].hi, 399);
    ck_assert_uint_eq(v->outlier.consecutive_failures, 5);
    ck_assert_uint_eq(v->breaker.max_connections, 0); /* no circuit_breaker: no limit */
    ck_assert(!v->retry_non_idempotent);
    /* GET /config's dump is itself a loadable config with the same values */
    char *json = tg_config_to_json(c);
    ck_assert_ptr_nonnull(json);
    tg_config_t *c2 = tg_config_load_string("dump.json", json, strlen(json), &errs);
    if (c2 == NULL)
        tg_config_errors_print(&errs, stderr);
    ck_assert_ptr_nonnull(c2);
    const tg_upstream_cfg_t *u2 = &c2->upstreams[0];
    ck_assert_str_eq(u2->health_check.path, "/hz");
    ck_assert_uint_eq(u2->health_check.nexpect, 2);
    ck_assert_uint_eq(u2->health_check.expect[0].hi, 200);
    ck_assert_uint_eq(u2->outlier.consecutive_failures, 7);
    ck_assert_uint_eq(u2->breaker.max_pending, 9);
    ck_assert(u2->retry_non_idempotent);
    ck_assert(!c2->upstreams[1].breaker.max_connections);
    free(json);
    tg_config_release(c2);
    tg_config_release(c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("balancer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, round_robin_weights);
    tcase_add_test(tc, least_conn_weights_and_load);
    tcase_add_test(tc, random_weights);
    tcase_add_test(tc, p2c_spreads_and_avoids_busy);
    tcase_add_test(tc, hash_consistent_and_remaps_one_nth);
    tcase_add_test(tc, hash_without_key_round_robin);
    tcase_add_test(tc, backups_only_when_no_primary);
    tcase_add_test(tc, unresolved_and_skipped_servers);
    tcase_add_test(tc, outlier_ejects_and_returns);
    tcase_add_test(tc, retry_budget_caps);
    tcase_add_test(tc, config_resilience_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tg_check_run(suite());
}
