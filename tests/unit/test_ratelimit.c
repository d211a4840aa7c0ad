/* Unit tests for rate limiting: GCRA arithmetic (burst = nginx burst=N
 * nodelay, quotas after long idle, remaining/wait/reset), the local store
 * (sharded, refunds, thread safety, bounded memory with eviction) and the
 * config keys (rates, entries, redis:, errors). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "store/ratelimit.h"
#include "check_run.h"

#define MS 1000000ull          /* ns */
#define SEC (1000ull * MS)
#define DAY (86400ull * SEC)

static tg_gcra_t gcra(uint64_t requests, uint64_t window_ms, uint64_t burst)
{
    tg_gcra_t g;
    tg_gcra_init(&g, requests, window_ms, burst, 1000000);
    return g;
}

/* ---- GCRA ---- */

START_TEST(burst_then_one_per_interval)
{
    /* 10/s burst 5: six at once, then one per 100 ms (nginx burst=5 nodelay). */
    tg_gcra_t g = gcra(10, 1000, 5);
    uint64_t tat = 0, t0 = 1000 * SEC;
    tg_rl_decision_t d;
    for (int i = 0; i < 6; i++) {
        ck_assert(tg_gcra_take(&g, &tat, t0, &d));
        ck_assert_uint_eq(d.remaining, (uint64_t)(5 - i));
    }
    ck_assert(!tg_gcra_take(&g, &tat, t0, &d));
    ck_assert_uint_eq(d.remaining, 0);
    ck_assert_uint_eq(d.wait, 100 * MS);
    ck_assert(!tg_gcra_take(&g, &tat, t0 + 100 * MS - 1, &d));
    ck_assert_uint_eq(d.wait, 1);
    ck_assert(tg_gcra_take(&g, &tat, t0 + 100 * MS, &d));
    ck_assert(!tg_gcra_take(&g, &tat, t0 + 150 * MS, &d));
    ck_assert_uint_eq(d.wait, 50 * MS);
    /* after 600 ms of quiet the bucket is full again: six at once */
    uint64_t t1 = t0 + 100 * MS + 600 * MS;
    for (int i = 0; i < 6; i++)
        ck_assert(tg_gcra_take(&g, &tat, t1, &d));
    ck_assert(!tg_gcra_take(&g, &tat, t1, &d));
}
END_TEST

START_TEST(steady_rate_exact_count)
{
    /* 200/s burst 20, offered 1000/s for 10 s: accepted = 21 + 200 * 10 - ... exactly */
    tg_gcra_t g = gcra(200, 1000, 20);
    uint64_t tat = 0, allowed = 0;
    tg_rl_decision_t d;
    for (uint64_t i = 0; i < 10000; i++)
        allowed += tg_gcra_take(&g, &tat, SEC + i * MS, &d);
    /* burst+1 at t=0, then one per 5 ms over 9.999 s = 1999 more */
    ck_assert_uint_eq(allowed, 21 + 1999);
}
END_TEST

START_TEST(quota_survives_idle)
{
    /* 100/d, burst 0: one per 864 s; a year of idle is a full bucket, not an overflow */
    tg_gcra_t g = gcra(100, 86400000, 0);
    uint64_t tat = 0, t0 = 5 * SEC;
    tg_rl_decision_t d;
    ck_assert(tg_gcra_take(&g, &tat, t0, &d));
    ck_assert_uint_eq(d.remaining, 0);
    ck_assert_uint_eq(d.wait, 864 * SEC);
    ck_assert(!tg_gcra_take(&g, &tat, t0 + SEC, &d));
    ck_assert_uint_eq(d.wait, 863 * SEC);
    ck_assert(tg_gcra_take(&g, &tat, t0 + 864 * SEC, &d));
    uint64_t later = t0 + 365 * DAY;
    ck_assert(tg_gcra_take(&g, &tat, later, &d));
    ck_assert(!tg_gcra_take(&g, &tat, later, &d));
    /* 1000/d with burst 999: the whole day's quota at once, then one per 86.4 s */
    tg_gcra_t q = gcra(1000, 86400000, 999);
    tat = 0;
    for (int i = 0; i < 1000; i++)
        ck_assert(tg_gcra_take(&q, &tat, later, &d));
    ck_assert(!tg_gcra_take(&q, &tat, later + 86 * SEC, &d));
    ck_assert_uint_eq(d.wait, 400 * MS);
    ck_assert(tg_gcra_take(&q, &tat, later + 86400 * MS, &d));
    /* ten years later: full again, exactly 1000 */
    uint64_t much_later = later + 3650 * DAY, n = 0;
    while (tg_gcra_take(&q, &tat, much_later, &d))
        n++;
    ck_assert_uint_eq(n, 1000);
}
END_TEST

START_TEST(describe_reset_and_remaining)
{
    tg_gcra_t g = gcra(100, 60000, 9); /* 100/m, T = 600 ms, burst 9 */
    tg_rl_decision_t d;
    tg_gcra_describe(&g, 0, 10 * SEC, &d);
    ck_assert_uint_eq(d.remaining, 10);
    ck_assert_uint_eq(d.reset, 0);
    uint64_t tat = 0;
    tg_gcra_take(&g, &tat, 10 * SEC, &d);
    ck_assert_uint_eq(d.remaining, 9);
    ck_assert_uint_eq(d.reset, 600 * MS);
    tg_gcra_describe(&g, tat, 10 * SEC + 300 * MS, &d);
    ck_assert_uint_eq(d.remaining, 9);
    ck_assert_uint_eq(d.reset, 300 * MS);
}
END_TEST

START_TEST(rate_parser)
{
    uint64_t n, w;
    ck_assert_int_eq(tg_parse_rate("100/s", &n, &w), 0);
    ck_assert_uint_eq(n, 100);
    ck_assert_uint_eq(w, 1000);
    ck_assert_int_eq(tg_parse_rate("600/m", &n, &w), 0);
    ck_assert_uint_eq(w, 60000);
    ck_assert_int_eq(tg_parse_rate("10000/h", &n, &w), 0);
    ck_assert_uint_eq(w, 3600000);
    ck_assert_int_eq(tg_parse_rate("100000/d", &n, &w), 0);
    ck_assert_uint_eq(w, 86400000);
    const char *bad[] = { "", "/s", "0/s", "10", "10/x", "10/ss", "-1/s", "1e3/s", "10 /s", "9999999999999/s" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(tg_parse_rate(bad[i], &n, &w) != 0, "%s accepted", bad[i]);
}
END_TEST

/* ---- local store ---- */

START_TEST(local_keys_are_independent_and_refundable)
{
    tg_rl_local_t *s = tg_rl_local_create(1 << 16);
    ck_assert_ptr_nonnull(s);
    tg_gcra_t g = gcra(1, 1000, 1);
    tg_rl_decision_t d;
    uint64_t b = tg_rl_local_key(s, 0, "bucket", 6);
    uint64_t ka = tg_rl_local_key(s, b, "a", 1), kb = tg_rl_local_key(s, b, "b", 1);
    ck_assert_uint_ne(ka, kb);
    ck_assert_uint_ne(ka, tg_rl_local_key(s, b + 1, "a", 1));
    ck_assert(tg_rl_local_take(s, ka, &g, SEC, &d));
    ck_assert(tg_rl_local_take(s, ka, &g, SEC, &d));
    ck_assert(!tg_rl_local_take(s, ka, &g, SEC, &d));
    ck_assert(tg_rl_local_take(s, kb, &g, SEC, &d));
    tg_rl_local_refund(s, ka, &g);
    ck_assert(tg_rl_local_take(s, ka, &g, SEC, &d));
    ck_assert(!tg_rl_local_take(s, ka, &g, SEC, &d));
    tg_rl_local_destroy(s);
}
END_TEST

typedef struct hammer {
    tg_rl_local_t *s;
    tg_gcra_t g;
    uint64_t key, allowed;
} hammer_t;

static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    tg_rl_decision_t d;
    for (int i = 0; i < 20000; i++)
        h->allowed += tg_rl_local_take(h->s, h->key, &h->g, 7 * SEC, &d);
    return NULL;
}

START_TEST(local_exact_under_threads)
{
    /* At one instant a bucket with burst 99 grants exactly 100, however many
     * threads race for it. */
    tg_rl_local_t *s = tg_rl_local_create(1 << 16);
    hammer_t h[4];
    pthread_t t[4];
    uint64_t key = tg_rl_local_key(s, 1, "k", 1), total = 0;
    for (int i = 0; i < 4; i++) {
        h[i] = (hammer_t){ s, gcra(10, 1000, 99), key, 0 };
        pthread_create(&t[i], NULL, hammer_run, &h[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += h[i].allowed;
    }
    ck_assert_uint_eq(total, 100);
    tg_rl_local_destroy(s);
}
END_TEST

START_TEST(local_million_keys_bounded)
{
    /* 1,000,000 distinct live keys into a store of 16384 slots: memory stays
     * at the bound, the newest keys are kept, the overflow is evicted. */
    tg_rl_local_t *s = tg_rl_local_create(16384);
    tg_gcra_t g = gcra(1, 60000, 0); /* every key stays live for a minute */
    tg_rl_decision_t d;
    char buf[32];
    for (uint32_t i = 0; i < 1000000; i++) {
        int n = snprintf(buf, sizeof buf, "client-%u", i);
        ck_assert(tg_rl_local_take(s, tg_rl_local_key(s, 9, buf, (size_t)n), &g, SEC + i, &d));
    }
    tg_rl_local_stats_t st;
    tg_rl_local_stats(s, &st);
    ck_assert_uint_le(st.slots, 16384);
    ck_assert_uint_le(st.keys, 16384 / 4 * 3);
    ck_assert_uint_ge(st.evictions, 1000000 - 16384);
    /* the most recent key is still limited */
    int n = snprintf(buf, sizeof buf, "client-%u", 999999u);
    ck_assert(!tg_rl_local_take(s, tg_rl_local_key(s, 9, buf, (size_t)n), &g, SEC + 1000000, &d));
    tg_rl_local_destroy(s);
}
END_TEST

START_TEST(local_idle_keys_swept_without_loss)
{
    /* 1,000,000 keys over time, ~100 live at once: expired entries are
     * dropped (no live key is ever evicted) and the table stays small. */
    tg_rl_local_t *s = tg_rl_local_create(1 << 21);
    tg_gcra_t g = gcra(1000, 1000, 0); /* T = 1 ms */
    tg_rl_decision_t d;
    char buf[32];
    for (uint32_t i = 0; i < 1000000; i++) {
        int n = snprintf(buf, sizeof buf, "k%u", i);
        tg_rl_local_take(s, tg_rl_local_key(s, 3, buf, (size_t)n), &g, SEC + (uint64_t)i * 10000, &d);
    }
    tg_rl_local_stats_t st;
    tg_rl_local_stats(s, &st);
    ck_assert_uint_eq(st.evictions, 0);
    ck_assert_uint_le(st.slots, 64 * 1024); /* grew at most a little past 256 a shard */
    tg_rl_local_destroy(s);
}
END_TEST

START_TEST(shared_store_is_one)
{
    ck_assert_ptr_nonnull(tg_rl_local_shared());
    ck_assert_ptr_eq(tg_rl_local_shared(), tg_rl_local_shared());
}
END_TEST

/* ---- config ---- */

static tg_config_t *load(const char *yaml, tg_config_errors_t *e)
{
    memset(e, 0, sizeof *e);
    return tg_config_load_string("t.yaml", yaml, strlen(yaml), e);
}

static void expect_err(const char *yaml, const char *want)
{
    tg_config_errors_t e;
    tg_config_t *c = load(yaml, &e);
    ck_assert_ptr_null(c);
    bool found = false;
    for (size_t i = 0; i < e.n; i++)
        found |= strstr(e.v[i].text, want) != NULL;
    for (size_t i = 0; !found && i < e.n; i++)
        fprintf(stderr, "got: %s\n", e.v[i].text);
    ck_assert_msg(found, "no error containing \"%s\"", want);
    tg_config_errors_free(&e);
}

#define UPS "upstreams: { u: { servers: [\"127.0.0.1:1\"] } }\n"

START_TEST(config_entries)
{
    const char *y = UPS "redis: { address: \"127.0.0.1:6390\", password: pw, timeout: 20ms, on_error: deny }\n"
                        "routes:\n"
                        "  - upstream: u\n"
                        "    name: r1\n"
                        "    rate_limit:\n"
                        "      - { key: consumer, rate: 100/s, burst: 20 }\n"
                        "      - { key: client_ip, rate: 1000/m, store: redis }\n"
                        "      - { key: header:X-Tenant, rate: 1000000/d, store: redis, name: tenants }\n"
                        "      - { key: query:api_key, rate: 5/h }\n"
                        "      - { key: jwt:sub, rate: 1/s }\n"
                        "      - { key: route, rate: 7/s }\n";
    tg_config_errors_t e;
    tg_config_t *c = load(y, &e);
    for (size_t i = 0; i < e.n; i++)
        fprintf(stderr, "unexpected: %s\n", e.v[i].text);
    ck_assert_ptr_nonnull(c);
    const tg_route_cfg_t *r = &c->routes[0];
    ck_assert_uint_eq(r->nrate_limits, 6);
    ck_assert_int_eq(r->rate_limits[0].key, TG_RL_KEY_CONSUMER);
    ck_assert_uint_eq(r->rate_limits[0].burst, 20);
    ck_assert_int_eq(r->rate_limits[1].store, TG_RL_STORE_REDIS);
    ck_assert_uint_eq(r->rate_limits[1].window_ms, 60000);
    ck_assert_int_eq(r->rate_limits[2].key, TG_RL_KEY_HEADER);
    ck_assert_str_eq(r->rate_limits[2].key_arg, "X-Tenant");
    ck_assert_str_eq(r->rate_limits[2].name, "tenants");
    ck_assert_int_eq(r->rate_limits[3].key, TG_RL_KEY_QUERY);
    ck_assert_int_eq(r->rate_limits[4].key, TG_RL_KEY_JWT);
    ck_assert_str_eq(r->rate_limits[4].key_arg, "sub");
    ck_assert_int_eq(r->rate_limits[5].key, TG_RL_KEY_ROUTE);
    ck_assert(c->redis.enabled);
    ck_assert_str_eq(c->redis.host, "127.0.0.1");
    ck_assert_uint_eq(c->redis.port, 6390);
    ck_assert_str_eq(c->redis.password, "pw");
    ck_assert_uint_eq(c->redis.timeout_ms, 20);
    ck_assert(!c->redis.fail_open);
    tg_config_release(c);
    c = load(UPS "redis: {}\nroutes: [ { upstream: u, rate_limit: { key: route, rate: 1/s } } ]\n", &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->redis.port, 6379);
    ck_assert_uint_eq(c->redis.timeout_ms, 50);
    ck_assert(c->redis.fail_open);
    ck_assert_uint_eq(c->routes[0].nrate_limits, 1);
    tg_config_release(c);
}
END_TEST

START_TEST(config_errors)
{
    expect_err(UPS "routes:\n  - upstream: u\n    rate_limit: [ { key: ip, rate: 1/s } ]\n",
               "t.yaml:4:26: routes[0].rate_limit[0].key: expected consumer, client_ip, route");
    expect_err(UPS "routes:\n  - upstream: u\n    rate_limit: [ { key: route, rate: 5/w } ]\n",
               "t.yaml:4:39: routes[0].rate_limit[0].rate: expected a rate like 100/s");
    expect_err(UPS "routes:\n  - upstream: u\n    rate_limit: [ { rate: 5/s } ]\n",
               "routes[0].rate_limit[0]: key: is required");
    expect_err(UPS "routes:\n  - upstream: u\n    rate_limit: [ { key: route } ]\n",
               "routes[0].rate_limit[0]: rate: is required");
    expect_err(UPS "routes:\n  - upstream: u\n    rate_limit: [ { key: route, rate: 1/s, store: redis } ]\n",
               "routes[0].rate_limit[0].store: store: redis needs a top-level redis: section");
    expect_err(UPS "routes:\n  - upstream: u\n    rate_limit: [ { key: route, rate: 1/s, brust: 3 } ]\n",
               "unknown key \"brust\" (did you mean \"burst\"?)");
    expect_err(UPS "routes:\n  - upstream: u\n    rate_limit: [ { key: \"header:\", rate: 1/s } ]\n",
               "expected a header name after \"header:\"");
    expect_err(UPS "routes:\n  - upstream: u\n    rate_limit: [ { key: route, rate: 2000000/s } ]\n",
               "at most 1000000/s");
    expect_err(UPS "routes:\n"
                   "  - { upstream: u, match: { path: /a }, rate_limit: [ { key: route, rate: 1/s, name: x } ] }\n"
                   "  - { upstream: u, match: { path: /b }, rate_limit: [ { key: route, rate: 2/s, name: x } ] }\n",
               "routes[1].rate_limit[0]: entries named \"x\" share one bucket");
    expect_err(UPS "redis: { address: nowhere }\n", "redis.address: expected host:port");
    expect_err(UPS "redis: { on_error: maybe }\n", "redis.on_error: expected one of allow, deny");
    expect_err(UPS "redis: { timeout: 5m }\n", "redis.timeout: at most 60s");
}
END_TEST

static Suite *ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *gc = tcase_create("gcra");
    tcase_add_test(gc, burst_then_one_per_interval);
    tcase_add_test(gc, steady_rate_exact_count);
    tcase_add_test(gc, quota_survives_idle);
    tcase_add_test(gc, describe_reset_and_remaining);
    tcase_add_test(gc, rate_parser);
    suite_add_tcase(s, gc);
    TCase *lo = tcase_create("local");
    tcase_set_timeout(lo, 60);
    tcase_add_test(lo, local_keys_are_independent_and_refundable);
    tcase_add_test(lo, local_exact_under_threads);
    tcase_add_test(lo, local_million_keys_bounded);
    tcase_add_test(lo, local_idle_keys_swept_without_loss);
    tcase_add_test(lo, shared_store_is_one);
    suite_add_tcase(s, lo);
    TCase *cf = tcase_create("config");
    tcase_add_test(cf, config_entries);
    tcase_add_test(cf, config_errors);
    suite_add_tcase(s, cf);
    return s;
}

int main(void)
{
    return tg_check_run(ratelimit_suite());
}
