/* store/cache_policy (RFC 9111 arithmetic) and store/cache (LRU, refcounts, purge). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/cache.h"
#include "store/cache_policy.h"
#include "check_run.h"

#define S(x) tg_str((x), strlen(x))

START_TEST(cc_parsing)
{
    tg_cc_t cc;
    tg_cc_init(&cc);
    tg_cc_parse(&cc, S("public, max-age=60, s-maxage=\"30\", stale-while-revalidate=5"));
    tg_cc_parse(&cc, S("no-cache=\"Set-Cookie\", must-revalidate"));
    ck_assert(cc.flags & TG_CC_PUBLIC);
    ck_assert(cc.flags & TG_CC_NO_CACHE);
    ck_assert(cc.flags & TG_CC_MUST_REVALIDATE);
    ck_assert_int_eq(cc.max_age, 60);
    ck_assert_int_eq(cc.s_maxage, 30);
    ck_assert_int_eq(cc.stale_while_revalidate, 5);
    ck_assert_int_eq(cc.stale_if_error, -1);
    tg_cc_init(&cc);
    tg_cc_parse(&cc, S("max-age=abc, max-stale"));
    ck_assert_int_eq(cc.max_age, 0); /* malformed: the conservative reading */
    ck_assert(cc.flags & TG_CC_MAX_STALE_ANY);
    tg_cc_init(&cc);
    tg_cc_parse(&cc, S("max-age=99999999999999"));
    ck_assert_int_eq(cc.max_age, 2147483648ll);
}
END_TEST

START_TEST(http_dates)
{
    int64_t t = tg_http_date_parse(S("Sun, 06 Nov 1994 08:49:37 GMT"));
    ck_assert_int_eq(t, 784111777000ll);
    ck_assert_int_eq(tg_http_date_parse(S("Sunday, 06-Nov-94 08:49:37 GMT")), t);
    ck_assert_int_eq(tg_http_date_parse(S("Sun Nov  6 08:49:37 1994")), t);
    ck_assert_int_eq(tg_http_date_parse(S("0")), -1);
    ck_assert_int_eq(tg_http_date_parse(S("Sun, 06 Nov 1994 08:49:37 PST")), -1);
    char out[30];
    tg_http_date_format(t, out);
    ck_assert_str_eq(out, "Sun, 06 Nov 1994 08:49:37 GMT");
}
END_TEST

/* The freshness table: explicit directives in precedence order, Expires,
 * the route's ttl, the heuristic only where allowed. */
START_TEST(freshness_table)
{
    static const struct {
        const char *cc;
        int status;
        int64_t date, expires, lm, ttl, want;
    } rows[] = {
        { "s-maxage=10, max-age=99", 200, 0, -1, -1, 0, 10000 },
        { "max-age=99", 200, 0, 50000, -1, 0, 99000 },
        { "", 200, 1000, 61000, -1, 5000, 60000 },      /* Expires - Date */
        { "", 200, 1000, 0, -1, 0, 0 },                  /* in the past */
        { "", 200, 1000, -1, -1, 7000, 7000 },           /* route ttl */
        { "", 200, 1000000, -1, 0, 0, 100000 },          /* 10% of Date - Last-Modified */
        { "", 302, 1000000, -1, 0, 0, 0 },               /* not heuristically cacheable */
        { "public", 302, 1000000, -1, 0, 0, 100000 },    /* unless public */
        { "", 200, 1000000000, -1, 0, 0, 86400000 },     /* capped at a day */
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        tg_cc_t cc;
        tg_cc_init(&cc);
        tg_cc_parse(&cc, S(rows[i].cc));
        tg_fresh_in_t in = { .status = rows[i].status, .cc = &cc, .date = rows[i].date,
                             .expires = rows[i].expires, .last_modified = rows[i].lm, .age = -1,
                             .request_time = rows[i].date, .response_time = rows[i].date,
                             .default_ttl = rows[i].ttl };
        ck_assert_msg(tg_cache_freshness_lifetime(&in) == rows[i].want, "row %zu: %lld", i,
                      (long long)tg_cache_freshness_lifetime(&in));
    }
}
END_TEST

START_TEST(age_arithmetic)
{
    tg_cc_t cc;
    tg_cc_init(&cc);
    /* Age: 10 s received, 2 s in flight, Date 5 s before arrival. */
    tg_fresh_in_t in = { .cc = &cc, .date = 95000, .age = 10000, .request_time = 98000,
                         .response_time = 100000 };
    ck_assert_int_eq(tg_cache_initial_age(&in), 12000);
    in.age = -1; /* apparent age wins */
    ck_assert_int_eq(tg_cache_initial_age(&in), 5000);
    ck_assert(tg_cache_auth_storable(&(tg_cc_t){ .flags = TG_CC_PUBLIC, .s_maxage = -1 }));
    ck_assert(tg_cache_auth_storable(&(tg_cc_t){ .s_maxage = 5 }));
    ck_assert(!tg_cache_auth_storable(&(tg_cc_t){ .max_age = 5, .s_maxage = -1 }));
}
END_TEST

START_TEST(etags_and_vary)
{
    ck_assert(tg_etag_list_matches(S("\"a\", W/\"b\""), S("\"b\"")));
    ck_assert(tg_etag_list_matches(S("*"), S("\"x\"")));
    ck_assert(!tg_etag_list_matches(S("\"a\""), S("\"ab\"")));
    ck_assert(!tg_etag_list_matches(S("\"a\""), TG_STR_NULL));
    char out[64];
    tg_cache_normalize_ae(S("gzip, BR;q=0.5, identity;q=0, gzip"), out, sizeof out);
    ck_assert_str_eq(out, "br,gzip");
}
END_TEST

static tg_cobj_t *obj(const char *key, const char *uri, const char *tag, size_t body)
{
    tg_str_t tags[1] = { S(tag ? tag : "") };
    tg_cobj_init_t in = { .key = S(key), .variant = S(""), .vary = S(""), .host = S("h"), .uri = S(uri),
                          .tags = tags, .ntags = tag ? 1 : 0, .status = 200,
                          .body = body ? calloc(1, body) : NULL, .body_len = body, .lifetime = 1000 };
    return tg_cobj_new(&in);
}

/* One key per shard is hard to arrange, so LRU is checked on a store whose
 * shard share holds about three objects, with keys landing in one shard. */
static void same_shard_keys(char keys[][16], size_t n)
{
    size_t found = 0;
    uint8_t want = 0;
    for (int i = 0; found < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        uint64_t h = tg_cache_hash(k, strlen(k), TG_CACHE_HASH_SEED);
        uint8_t sh = (uint8_t)((h >> 56) % TG_CACHE_SHARDS);
        if (found == 0)
            want = sh;
        if (sh == want)
            memcpy(keys[found++], k, sizeof k);
    }
}

START_TEST(lru_eviction_and_refcount_survival)
{
    tg_cobj_t *probe = obj("x", "/x", NULL, 4000);
    size_t charge = probe->charge;
    tg_cobj_release(probe);
    tg_cache_t *c = tg_cache_new(TG_CACHE_SHARDS * (3 * charge + charge / 2));
    char keys[5][16];
    same_shard_keys(keys, 5);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tg_cache_insert(c, obj(keys[i], "/a", NULL, 4000)), 0);
    /* Touch keys[0]: keys[1] is now the least recently used. */
    tg_cobj_t *held = tg_cache_lookup(c, S(keys[0]), NULL, NULL, NULL);
    ck_assert_ptr_nonnull(held);
    ck_assert_int_eq(tg_cache_insert(c, obj(keys[3], "/a", NULL, 4000)), 0);
    tg_cobj_t *gone = tg_cache_lookup(c, S(keys[1]), NULL, NULL, NULL);
    ck_assert_ptr_null(gone);
    tg_cache_stats_t st;
    tg_cache_stats(c, &st);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert_uint_eq(st.objects, 3);
    /* A reader keeps an object alive through purge. */
    ck_assert_uint_eq(tg_cache_purge_uri(c, S("h"), S("/a")), 3);
    ck_assert_ptr_null(tg_cache_lookup(c, S(keys[0]), NULL, NULL, NULL));
    ck_assert_uint_eq(held->body_len, 4000);
    ck_assert(!held->linked);
    tg_cobj_release(held);
    tg_cache_stats(c, &st);
    ck_assert_uint_eq(st.bytes, 0);
    tg_cache_free(c);
}
END_TEST

START_TEST(purge_by_prefix_and_tag)
{
    tg_cache_t *c = tg_cache_new(16 << 20);
    tg_cache_insert(c, obj("a", "/v1/a", "red", 10));
    tg_cache_insert(c, obj("b", "/v1/b", "blue", 10));
    tg_cache_insert(c, obj("c", "/v2/c", "red", 10));
    ck_assert_uint_eq(tg_cache_purge_tag(c, S("red")), 2);
    ck_assert_uint_eq(tg_cache_purge_prefix(c, S("/v1/")), 1);
    ck_assert_uint_eq(tg_cache_purge_prefix(c, S("/")), 0);
    /* An object larger than a shard's share is refused. */
    ck_assert_int_eq(tg_cache_insert(c, obj("big", "/big", NULL, 2 << 20)), -1);
    tg_cache_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("policy");
    tcase_add_test(tc, cc_parsing);
    tcase_add_test(tc, http_dates);
    tcase_add_test(tc, freshness_table);
    tcase_add_test(tc, age_arithmetic);
    tcase_add_test(tc, etags_and_vary);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("store");
    tcase_add_test(ts, lru_eviction_and_refcount_survival);
    tcase_add_test(ts, purge_by_prefix_and_tag);
    suite_add_tcase(s, ts);
    return tg_check_run(s);
}
