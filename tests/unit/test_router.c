/* Router unit tests: each matcher kind, ordering, the index (checked against
 * the plain scan on every lookup), rewrites and host normalisation. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "router_fixture.h"
#include "check_run.h"

/* Index of the matched route or -1; also checks the index agrees with the
 * plain in-order scan. */
static long route_of(const tg_router_t *r, const fx_req_t *q)
{
    const tg_route_cfg_t *got = tg_router_match(r, &q->in);
    const tg_route_cfg_t *want = tg__router_match_linear(r, &q->in);
    ck_assert_ptr_eq(got, want);
    return got ? (long)got->index : -1;
}

static long m5(const tg_router_t *r, const char *method, const char *host, const char *path, const char *query)
{
    fx_req_t q;
    fx_req_init(&q, method, host, path, query);
    return route_of(r, &q);
}

#define M(r, host, path) m5((r), "GET", (host), (path), NULL)

static tg_router_t *build(fx_t *f)
{
    tg_router_t *r = tg_router_build(&f->cfg);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* ---- ordering ---- */

START_TEST(test_first_match_wins)
{
    fx_t f;
    fx_init(&f);
    fx_route(&f, "/v1");             /* 0 */
    fx_route(&f, "/v1/users");       /* 1: shadowed by 0 */
    fx_route(&f, "/");               /* 2 */
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "a.com", "/v1/users/7"), 0);
    ck_assert_int_eq(M(r, "a.com", "/v2"), 2);
    ck_assert_int_eq(M(r, "", "/"), 2);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

START_TEST(test_no_routes_no_match)
{
    fx_t f;
    fx_init(&f);
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "a.com", "/"), -1);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

START_TEST(test_host_route_after_catch_all_order)
{
    /* A later host-specific route must not beat an earlier any-host one. */
    fx_t f;
    fx_init(&f);
    fx_route(&f, "/a");                                  /* 0: any host */
    fx_hosts(&f, fx_route(&f, "/"), "x.com", NULL);      /* 1 */
    fx_route(&f, "/");                                   /* 2: any host */
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "x.com", "/a/b"), 0);
    ck_assert_int_eq(M(r, "x.com", "/b"), 1);
    ck_assert_int_eq(M(r, "y.com", "/b"), 2);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

/* ---- path ---- */

START_TEST(test_path_prefix_boundary)
{
    fx_t f;
    fx_init(&f);
    fx_route(&f, "/v1/users");   /* 0 */
    fx_route(&f, "/v2/");        /* 1 */
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "", "/v1/users"), 0);
    ck_assert_int_eq(M(r, "", "/v1/users/"), 0);
    ck_assert_int_eq(M(r, "", "/v1/users/7"), 0);
    ck_assert_int_eq(M(r, "", "/v1/usersX"), -1);
    ck_assert_int_eq(M(r, "", "/v1/user"), -1);
    ck_assert_int_eq(M(r, "", "/v1"), -1);
    ck_assert_int_eq(M(r, "", "/V1/users"), -1); /* case-sensitive */
    ck_assert_int_eq(M(r, "", "/v2/"), 1);
    ck_assert_int_eq(M(r, "", "/v2/x"), 1);
    ck_assert_int_eq(M(r, "", "/v2"), -1);       /* "/v2/" needs the slash */
    ck_assert_int_eq(M(r, "", "/v2x"), -1);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

START_TEST(test_path_root_matches_everything)
{
    fx_t f;
    fx_init(&f);
    fx_route(&f, "/");
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "", "/"), 0);
    ck_assert_int_eq(M(r, "", "/anything/at/all"), 0);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

START_TEST(test_path_exact_and_regex)
{
    fx_t f;
    fx_init(&f);
    fx_route(&f, NULL)->match.path_exact = "/health";              /* 0 */
    fx_path_regex(&f, fx_route(&f, NULL), "^/v1/users/(\\d+)$");   /* 1 */
    tg_route_cfg_t *both = fx_route(&f, "/v2");                    /* 2: prefix and regex */
    fx_path_regex(&f, both, "/items$");
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "", "/health"), 0);
    ck_assert_int_eq(M(r, "", "/health/"), -1);
    ck_assert_int_eq(M(r, "", "/healthz"), -1);
    ck_assert_int_eq(M(r, "", "/Health"), -1);
    ck_assert_int_eq(M(r, "", "/v1/users/42"), 1);
    ck_assert_int_eq(M(r, "", "/v1/users/42/x"), -1);
    ck_assert_int_eq(M(r, "", "/v1/users/abc"), -1);
    ck_assert_int_eq(M(r, "", "/v2/a/items"), 2);
    ck_assert_int_eq(M(r, "", "/v3/a/items"), -1);
    ck_assert_int_eq(M(r, "", "/v2/a/item"), -1);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

/* ---- hosts ---- */

START_TEST(test_hosts_exact_and_wildcard)
{
    fx_t f;
    fx_init(&f);
    fx_hosts(&f, fx_route(&f, "/"), "api.example.com", "*.api.example.com", NULL); /* 0 */
    fx_hosts(&f, fx_route(&f, "/"), "*.example.com", NULL);                        /* 1 */
    fx_hosts(&f, fx_route(&f, "/"), "Other.ORG", NULL);                            /* 2 */
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "api.example.com", "/"), 0);
    ck_assert_int_eq(M(r, "v2.api.example.com", "/"), 0);
    ck_assert_int_eq(M(r, "a.b.api.example.com", "/"), 0);
    ck_assert_int_eq(M(r, "www.example.com", "/"), 1);
    ck_assert_int_eq(M(r, "a.b.example.com", "/"), 1);
    ck_assert_int_eq(M(r, "example.com", "/"), -1);       /* not the apex */
    ck_assert_int_eq(M(r, "xexample.com", "/"), -1);
    ck_assert_int_eq(M(r, "example.com.evil", "/"), -1);
    ck_assert_int_eq(M(r, "other.org", "/"), 2);          /* config case folded */
    ck_assert_int_eq(M(r, "www.other.org", "/"), -1);
    ck_assert_int_eq(M(r, "", "/"), -1);                  /* no Host: host routes never */
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

START_TEST(test_hosts_wildcard_then_exact_order)
{
    /* The exact name's bucket also holds earlier wildcard routes. */
    fx_t f;
    fx_init(&f);
    fx_hosts(&f, fx_route(&f, "/w"), "*.example.com", NULL);    /* 0 */
    fx_hosts(&f, fx_route(&f, "/"), "www.example.com", NULL);   /* 1 */
    fx_hosts(&f, fx_route(&f, "/"), "*.b.example.com", NULL);   /* 2 */
    fx_hosts(&f, fx_route(&f, "/"), "*.example.com", NULL);     /* 3 */
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "www.example.com", "/w/x"), 0);
    ck_assert_int_eq(M(r, "www.example.com", "/x"), 1);
    ck_assert_int_eq(M(r, "a.b.example.com", "/w"), 0);
    ck_assert_int_eq(M(r, "a.b.example.com", "/x"), 2);
    ck_assert_int_eq(M(r, "b.example.com", "/x"), 3);
    ck_assert_int_eq(M(r, "z.example.com", "/x"), 3);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

START_TEST(test_hosts_trailing_dot_in_config)
{
    fx_t f;
    fx_init(&f);
    fx_hosts(&f, fx_route(&f, "/"), "a.com.", NULL);
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "a.com", "/"), 0);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

/* ---- methods ---- */

START_TEST(test_methods)
{
    fx_t f;
    fx_init(&f);
    fx_route(&f, "/get")->match.methods = TG_M_GET;                  /* 0 */
    fx_route(&f, "/rw")->match.methods = TG_M_POST | TG_M_PUT;       /* 1 */
    fx_other_methods(&f, fx_route(&f, "/dav"), "PROPFIND", NULL);   /* 2 */
    tg_route_cfg_t *mix = fx_route(&f, "/mix");                      /* 3 */
    mix->match.methods = TG_M_DELETE;
    fx_other_methods(&f, mix, "PURGE", NULL);
    fx_route(&f, "/");                                               /* 4: any method */
    tg_router_t *r = build(&f);
    ck_assert_int_eq(m5(r, "GET", "", "/get", NULL), 0);
    ck_assert_int_eq(m5(r, "HEAD", "", "/get", NULL), 4);   /* HEAD is not GET */
    ck_assert_int_eq(m5(r, "get", "", "/get", NULL), 4);    /* tokens are case-sensitive */
    ck_assert_int_eq(m5(r, "PUT", "", "/rw", NULL), 1);
    ck_assert_int_eq(m5(r, "GET", "", "/rw", NULL), 4);
    ck_assert_int_eq(m5(r, "PROPFIND", "", "/dav", NULL), 2);
    ck_assert_int_eq(m5(r, "GET", "", "/dav", NULL), 4);
    ck_assert_int_eq(m5(r, "DELETE", "", "/mix", NULL), 3);
    ck_assert_int_eq(m5(r, "PURGE", "", "/mix", NULL), 3);
    ck_assert_int_eq(m5(r, "PURGEX", "", "/mix", NULL), 4);
    ck_assert_int_eq(m5(r, "BREW", "", "/x", NULL), 4);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

/* ---- headers ---- */

START_TEST(test_headers)
{
    fx_t f;
    fx_init(&f);
    tg_route_cfg_t *r0 = fx_route(&f, "/");
    fx_header(&f, r0, "X-Api-Version", "2");
    fx_header(&f, r0, "X-Canary", NULL);
    fx_header(&f, fx_route(&f, "/"), "User-Agent", "~^curl/\\d+");
    tg_router_t *r = build(&f);
    fx_req_t q;

    fx_req_init(&q, "GET", "", "/", NULL);
    fx_req_header(&q, "x-api-version: 2");
    fx_req_header(&q, "X-CANARY: ");
    ck_assert_int_eq(route_of(r, &q), 0);

    fx_req_init(&q, "GET", "", "/", NULL);
    fx_req_header(&q, "X-Api-Version: 1");
    fx_req_header(&q, "X-Api-Version: 2"); /* any one field line counts */
    fx_req_header(&q, "X-Canary: yes");
    ck_assert_int_eq(route_of(r, &q), 0);

    fx_req_init(&q, "GET", "", "/", NULL);
    fx_req_header(&q, "X-Api-Version: 2");
    ck_assert_int_eq(route_of(r, &q), -1); /* X-Canary absent */

    fx_req_init(&q, "GET", "", "/", NULL);
    fx_req_header(&q, "X-Api-Version: 2 ");
    fx_req_header(&q, "X-Canary: 1");
    ck_assert_int_eq(route_of(r, &q), -1); /* exact means exact */

    fx_req_init(&q, "GET", "", "/", NULL);
    fx_req_header(&q, "user-agent: curl/8.5.0");
    ck_assert_int_eq(route_of(r, &q), 1);

    fx_req_init(&q, "GET", "", "/", NULL);
    fx_req_header(&q, "User-Agent: Mozilla curl/8");
    ck_assert_int_eq(route_of(r, &q), -1);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

/* ---- query ---- */

START_TEST(test_query)
{
    fx_t f;
    fx_init(&f);
    fx_query(&f, fx_route(&f, "/exact"), "beta", "1");
    fx_query(&f, fx_route(&f, "/present"), "debug", NULL);
    fx_query(&f, fx_route(&f, "/re"), "id", "~^[0-9]+$");
    fx_query(&f, fx_route(&f, "/enc"), "a b", "x/y&z");
    fx_query(&f, fx_route(&f, "/plus"), "q", "a+b");
    fx_query(&f, fx_route(&f, "/empty"), "e", "");
    tg_router_t *r = build(&f);
    ck_assert_int_eq(m5(r, "GET", "", "/exact", "beta=1"), 0);
    ck_assert_int_eq(m5(r, "GET", "", "/exact", "x=2&beta=1&y"), 0);
    ck_assert_int_eq(m5(r, "GET", "", "/exact", "beta=0&beta=1"), 0);
    ck_assert_int_eq(m5(r, "GET", "", "/exact", "beta=%31"), 0);
    ck_assert_int_eq(m5(r, "GET", "", "/exact", "b%65ta=1"), 0);
    ck_assert_int_eq(m5(r, "GET", "", "/exact", "beta=10"), -1);
    ck_assert_int_eq(m5(r, "GET", "", "/exact", "Beta=1"), -1);
    ck_assert_int_eq(m5(r, "GET", "", "/exact", "xbeta=1"), -1);
    ck_assert_int_eq(m5(r, "GET", "", "/exact", ""), -1);
    ck_assert_int_eq(m5(r, "GET", "", "/present", "debug"), 1);
    ck_assert_int_eq(m5(r, "GET", "", "/present", "&&debug=&"), 1);
    ck_assert_int_eq(m5(r, "GET", "", "/present", "debugx"), -1);
    ck_assert_int_eq(m5(r, "GET", "", "/re", "id=123"), 2);
    ck_assert_int_eq(m5(r, "GET", "", "/re", "id=%31%32"), 2);
    ck_assert_int_eq(m5(r, "GET", "", "/re", "id=12a"), -1);
    ck_assert_int_eq(m5(r, "GET", "", "/re", "id=%0A1"), -1);
    ck_assert_int_eq(m5(r, "GET", "", "/enc", "a%20b=x%2Fy%26z"), 3);
    ck_assert_int_eq(m5(r, "GET", "", "/enc", "a%20b=x%2fy%26z"), 3);
    ck_assert_int_eq(m5(r, "GET", "", "/enc", "a+b=x%2Fy%26z"), -1); /* '+' is not a space */
    ck_assert_int_eq(m5(r, "GET", "", "/plus", "q=a+b"), 4);
    ck_assert_int_eq(m5(r, "GET", "", "/plus", "q=a%2Bb"), 4);
    ck_assert_int_eq(m5(r, "GET", "", "/plus", "q=a%20b"), -1);
    ck_assert_int_eq(m5(r, "GET", "", "/empty", "e"), 5);
    ck_assert_int_eq(m5(r, "GET", "", "/empty", "e="), 5);
    ck_assert_int_eq(m5(r, "GET", "", "/empty", "e=1"), -1);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

START_TEST(test_query_bad_escapes_and_long_values)
{
    fx_t f;
    fx_init(&f);
    fx_query(&f, fx_route(&f, "/a"), "p", "100%");
    fx_query(&f, fx_route(&f, "/b"), "p", "%zz");
    fx_query(&f, fx_route(&f, "/c"), "p", "~^x+$");
    tg_router_t *r = build(&f);
    ck_assert_int_eq(m5(r, "GET", "", "/a", "p=100%"), 0);
    ck_assert_int_eq(m5(r, "GET", "", "/a", "p=100%25"), 0);
    ck_assert_int_eq(m5(r, "GET", "", "/a", "p=100%2"), -1);
    ck_assert_int_eq(m5(r, "GET", "", "/b", "p=%zz"), 1);
    /* A regex value with escapes is decoded into a bounded buffer. */
    size_t n = TG__QUERY_DECODE_MAX + 10;
    char *q = malloc(n + 8);
    ck_assert_ptr_nonnull(q);
    strcpy(q, "p=%78");
    memset(q + 5, 'x', n - 5);
    q[n] = '\0';
    ck_assert_int_eq(m5(r, "GET", "", "/c", q), -1);  /* too long to decode: no match */
    q[TG__QUERY_DECODE_MAX - 10] = '\0';
    ck_assert_int_eq(m5(r, "GET", "", "/c", q), 2);
    memset(q, 'x', n);
    memcpy(q, "p=", 2);
    q[n] = '\0';
    ck_assert_int_eq(m5(r, "GET", "", "/c", q), 2);   /* no escapes: matched in place */
    free(q);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

/* ---- the segment index ---- */

START_TEST(test_segment_index_order)
{
    /* Enough routes in one bucket for the segment level to kick in, with
     * unpinned routes interleaved: file order must survive. */
    fx_t f;
    fx_init(&f);
    fx_route(&f, "/a/x");                                  /* 0 */
    fx_path_regex(&f, fx_route(&f, NULL), "^/a/y");        /* 1: unpinned */
    fx_route(&f, "/b");                                    /* 2 */
    fx_route(&f, NULL)->match.path_exact = "/a";           /* 3 */
    fx_route(&f, "/a/");                                   /* 4 */
    fx_route(&f, "/c")->match.methods = TG_M_POST;         /* 5 */
    fx_route(&f, "/");                                     /* 6: unpinned */
    fx_route(&f, "/c");                                    /* 7: shadowed by 6 */
    fx_route(&f, "/d");                                    /* 8: shadowed by 6 */
    tg_router_t *r = build(&f);
    ck_assert_int_eq(M(r, "h", "/a/x/1"), 0);
    ck_assert_int_eq(M(r, "h", "/a/y"), 1);
    ck_assert_int_eq(M(r, "h", "/b/q"), 2);
    ck_assert_int_eq(M(r, "h", "/a"), 3);
    ck_assert_int_eq(M(r, "h", "/a/z"), 4);
    ck_assert_int_eq(m5(r, "POST", "h", "/c", NULL), 5);
    ck_assert_int_eq(M(r, "h", "/c"), 6);
    ck_assert_int_eq(M(r, "h", "/zzz"), 6);
    ck_assert_int_eq(M(r, "h", "*"), -1);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

START_TEST(test_200_routes_50_hosts)
{
    fx_t f;
    fx_init(&f);
    char host[64], path[64];
    for (int i = 0; i < 200; i++) {
        snprintf(host, sizeof host, "h%d.example.com", i % 50);
        snprintf(path, sizeof path, "/svc%d", i / 50);
        fx_hosts(&f, fx_route(&f, path), host, NULL);
    }
    fx_hosts(&f, fx_route(&f, "/svc1"), "*.example.com", NULL); /* 200 */
    fx_route(&f, "/");                                          /* 201 */
    tg_router_t *r = build(&f);
    for (int i = 0; i < 200; i++) {
        snprintf(host, sizeof host, "h%d.example.com", i % 50);
        snprintf(path, sizeof path, "/svc%d/x", i / 50);
        ck_assert_int_eq(M(r, host, path), i);
    }
    ck_assert_int_eq(M(r, "h7.example.com", "/svc9"), 201);
    ck_assert_int_eq(M(r, "h99.example.com", "/svc1"), 200);
    ck_assert_int_eq(M(r, "h99.example.com", "/svc0"), 201);
    ck_assert_int_eq(M(r, "nope.org", "/svc1"), 201);
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

/* Random route sets and requests, index against the plain scan. */
static uint32_t rng_next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static const char *pick(uint32_t *s, const char *const *v, size_t n) { return v[rng_next(s) % n]; }

START_TEST(test_random_index_equivalence)
{
    static const char *const hosts[] = { "a.com", "*.a.com", "b.a.com", "*.b.a.com", "c.org", "*.org", "x.y.a.com" };
    static const char *const paths[] = { "/", "/a", "/a/", "/a/b", "/b", "/ab", "/c/d/e", "/a/b/" };
    static const char *const rhosts[] = { "", "a.com", "b.a.com", "q.b.a.com", "x.y.a.com", "z.a.com", "c.org", "d.org", "e.net" };
    static const char *const rpaths[] = { "/", "/a", "/a/", "/a/b", "/a/bc", "/ab", "/b/x", "/c/d/e/f", "/c", "*", "" };
    uint32_t seed = 0x9e3779b9u;
    for (int round = 0; round < 200; round++) {
        fx_t f;
        fx_init(&f);
        int n = 1 + (int)(rng_next(&seed) % 40);
        for (int i = 0; i < n; i++) {
            uint32_t x = rng_next(&seed);
            tg_route_cfg_t *rt = fx_route(&f, x & 1 ? pick(&seed, paths, 8) : NULL);
            if (x & 2)
                rt->match.path_exact = pick(&seed, paths, 8);
            if (x & 4)
                fx_hosts(&f, rt, pick(&seed, hosts, 7), (x & 8) ? pick(&seed, hosts, 7) : NULL, NULL);
            if (x & 16)
                rt->match.methods = TG_M_POST;
        }
        tg_router_t *r = build(&f);
        for (int k = 0; k < 200; k++)
            m5(r, (k & 3) ? "GET" : "POST", pick(&seed, rhosts, 9), pick(&seed, rpaths, 11), NULL);
        tg_router_free(r);
        fx_free(&f);
    }
}
END_TEST

/* Regex matching from several threads at once (per-thread match data). */
static void *thread_body(void *arg)
{
    const tg_router_t *r = arg;
    for (int i = 0; i < 2000; i++) {
        fx_req_t q;
        fx_req_init(&q, "GET", "", (i & 1) ? "/v1/users/42" : "/v1/users/x", NULL);
        const tg_route_cfg_t *rt = tg_router_match(r, &q.in);
        if ((i & 1) ? rt == NULL : rt != NULL)
            return (void *)1;
    }
    return NULL;
}

START_TEST(test_threads)
{
    fx_t f;
    fx_init(&f);
    fx_path_regex(&f, fx_route(&f, NULL), "^/v1/users/(\\d+)$");
    tg_router_t *r = build(&f);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thread_body, r), 0);
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(t[i], &res);
        ck_assert_ptr_null(res);
    }
    tg_router_free(r);
    fx_free(&f);
}
END_TEST

/* ---- rewrites ---- */

/* Rewrites `path` with a one-route fixture set up by the caller. */
static void check_rewrite(const tg_route_cfg_t *rt, const char *path, const char *want)
{
    tg_arena_t a;
    tg_arena_init(&a, 256);
    tg_str_t in = tg_str_c(path);
    tg_str_t out = tg_route_rewrite_path(rt, in, &a);
    ck_assert_ptr_nonnull(out.p);
    ck_assert_msg(tg_str_eq(out, tg_str_c(want)), "rewrite %s: got \"%.*s\", want \"%s\"", path,
                  (int)out.len, out.p, want);
    tg_arena_free(&a);
}

START_TEST(test_rewrite_none)
{
    fx_t f;
    fx_init(&f);
    tg_route_cfg_t *rt = fx_route(&f, "/");
    tg_arena_t a;
    tg_arena_init(&a, 256);
    tg_str_t in = tg_str_c("/x");
    tg_str_t out = tg_route_rewrite_path(rt, in, &a);
    ck_assert_ptr_eq(out.p, in.p); /* the same slice, no copy */
    ck_assert_uint_eq(out.len, in.len);
    tg_arena_free(&a);
    fx_free(&f);
}
END_TEST

START_TEST(test_rewrite_strip_prefix)
{
    fx_t f;
    fx_init(&f);
    tg_route_cfg_t *rt = fx_route(&f, "/");
    fx_rewrite_strip(&f, rt, "/v1");
    check_rewrite(rt, "/v1/users/7", "/users/7");
    check_rewrite(rt, "/v1/", "/");
    check_rewrite(rt, "/v1", "/");
    check_rewrite(rt, "/v1x/users", "/v1x/users"); /* not at a boundary */
    check_rewrite(rt, "/v2/users", "/v2/users");
    fx_rewrite_strip(&f, rt, "/v1/");
    check_rewrite(rt, "/v1/users", "/users");
    check_rewrite(rt, "/v1/", "/");
    check_rewrite(rt, "/v1", "/v1");
    fx_rewrite_strip(&f, rt, "/");
    check_rewrite(rt, "/a/b", "/a/b");
    fx_free(&f);
}
END_TEST

START_TEST(test_rewrite_replace_prefix)
{
    fx_t f;
    fx_init(&f);
    tg_route_cfg_t *rt = fx_route(&f, "/");
    fx_rewrite_replace(&f, rt, "/v1", "/api");
    check_rewrite(rt, "/v1/users", "/api/users");
    check_rewrite(rt, "/v1", "/api");
    check_rewrite(rt, "/v1users", "/v1users");
    fx_rewrite_replace(&f, rt, "/v1", "/");
    check_rewrite(rt, "/v1/users", "/users");
    check_rewrite(rt, "/v1", "/");
    fx_rewrite_replace(&f, rt, "/v1/", "/api/v2/");
    check_rewrite(rt, "/v1/users", "/api/v2/users");
    check_rewrite(rt, "/v1", "/v1");
    fx_rewrite_replace(&f, rt, "/v1", "");
    check_rewrite(rt, "/v1", "/");
    check_rewrite(rt, "/v1/x", "/x");
    fx_rewrite_replace(&f, rt, "/", "/base");
    check_rewrite(rt, "/x", "/base/x");
    fx_free(&f);
}
END_TEST

START_TEST(test_rewrite_regex)
{
    fx_t f;
    fx_init(&f);
    tg_route_cfg_t *rt = fx_route(&f, "/");
    fx_rewrite_regex(&f, rt, "^/v1/users/(\\d+)$", "/u/$1");
    check_rewrite(rt, "/v1/users/42", "/u/42");
    check_rewrite(rt, "/v1/users/abc", "/v1/users/abc"); /* no match: unchanged */
    fx_rewrite_regex(&f, rt, "/(\\w+)/(\\w+)", "/$2/$1");
    check_rewrite(rt, "/a/b/c", "/b/a/c");               /* first match only */
    fx_rewrite_regex(&f, rt, "^/(a)(x)?", "[$0|$1|$2|$9|$$|$x|$]");
    check_rewrite(rt, "/a/z", "/[/a|a|||$|$x|$]/z");     /* unset and missing groups: empty */
    fx_rewrite_regex(&f, rt, "^/old", "new");
    check_rewrite(rt, "/old/x", "/new/x");               /* leading '/' guaranteed */
    fx_rewrite_regex(&f, rt, "^.*$", "");
    check_rewrite(rt, "/x", "/");
    fx_rewrite_regex(&f, rt, "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)", "$9$1$0");
    check_rewrite(rt, "/abcdefghijk", "/iaabcdefghijk");
    /* \K in a lookahead (needs an opt-in since PCRE2 10.38) can end a match
     * before it starts; such a match is refused. */
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    ck_assert_ptr_nonnull(cc);
    pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALLOW_LOOKAROUND_BSK);
    int err;
    PCRE2_SIZE off;
    pcre2_code *bsk = pcre2_compile((PCRE2_SPTR) "(?=ab\\K)", PCRE2_ZERO_TERMINATED, 0, &err, &off, cc);
    pcre2_compile_context_free(cc);
    ck_assert_ptr_nonnull(bsk);
    f.regexes[f.nregexes++] = bsk;
    rt->rewrite = (tg_rewrite_cfg_t){ .kind = TG_REWRITE_REGEX, .pattern = bsk, .replace = "X" };
    check_rewrite(rt, "/ab", "/ab");
    fx_free(&f);
}
END_TEST

/* ---- host normalisation ---- */

START_TEST(test_host_normalize)
{
    static const struct { const char *in; const char *out; } ok[] = {
        { "example.com", "example.com" },
        { "Example.COM:8080", "example.com" },
        { "example.com:", "example.com" },
        { "example.com.", "example.com" },
        { "example.com.:443", "example.com" },
        { "127.0.0.1:80", "127.0.0.1" },
        { "[::1]:8080", "[::1]" },
        { "[::1]", "[::1]" },
        { "[::1]:", "[::1]" },
        { "[0:0:0:0:0:0:0:1]", "[::1]" },
        { "[2001:DB8::A]:1", "[2001:db8::a]" },
        { "[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]" },
        { "a_b-c~d.example", "a_b-c~d.example" },
        { "x:65535", "x" },
        { "x:0", "x" },
        { "", "" },
    };
    static const char *const bad[] = {
        ":80", "[::1", "[::1]x", "[]", "[v1.x]", "[fe80::1%25eth0]", "[1.2.3.4]",
        "x:65536", "x:123456", "x:8a", "x:-1", "x::80", "a b", "a..b", ".a", ".", "..",
        "user@host", "h%41st", "caf\xc3\xa9.fr", "a/b", "a\tb", "::1",
    };
    char out[256];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int n = tg_host_normalize(tg_str_c(ok[i].in), out, sizeof out);
        ck_assert_msg(n >= 0 && tg_str_eq(tg_str(out, (size_t)n), tg_str_c(ok[i].out)),
                      "host %s: got %d \"%.*s\"", ok[i].in, n, n > 0 ? n : 0, out);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tg_host_normalize(tg_str_c(bad[i]), out, sizeof out) == -1, "host %s accepted", bad[i]);
    ck_assert_int_eq(tg_host_normalize(tg_str_c("abcdef"), out, 6), 6);
    ck_assert_int_eq(tg_host_normalize(tg_str_c("abcdefg"), out, 6), -1);
    ck_assert_int_eq(tg_host_normalize(tg_str_c("[::1]"), out, 4), -1);
    ck_assert_int_eq(tg_host_normalize(tg_str_c("[::1]"), out, 5), 5);
}
END_TEST

static TCase *rewrite_tcase(void)
{
    TCase *tc = tcase_create("rewrite_host");
    tcase_add_test(tc, test_rewrite_none);
    tcase_add_test(tc, test_rewrite_strip_prefix);
    tcase_add_test(tc, test_rewrite_replace_prefix);
    tcase_add_test(tc, test_rewrite_regex);
    tcase_add_test(tc, test_host_normalize);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("match");
    tcase_add_test(tc, test_first_match_wins);
    tcase_add_test(tc, test_no_routes_no_match);
    tcase_add_test(tc, test_host_route_after_catch_all_order);
    tcase_add_test(tc, test_path_prefix_boundary);
    tcase_add_test(tc, test_path_root_matches_everything);
    tcase_add_test(tc, test_path_exact_and_regex);
    tcase_add_test(tc, test_hosts_exact_and_wildcard);
    tcase_add_test(tc, test_hosts_wildcard_then_exact_order);
    tcase_add_test(tc, test_hosts_trailing_dot_in_config);
    tcase_add_test(tc, test_methods);
    tcase_add_test(tc, test_headers);
    tcase_add_test(tc, test_query);
    tcase_add_test(tc, test_query_bad_escapes_and_long_values);
    tcase_add_test(tc, test_segment_index_order);
    tcase_add_test(tc, test_200_routes_50_hosts);
    tcase_add_test(tc, test_random_index_equivalence);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, rewrite_tcase());
    return tg_check_run(s);
}
