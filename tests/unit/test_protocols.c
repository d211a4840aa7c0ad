/* Unit tests for the upstream-protocol configuration (src/config/schema_upstream_tls.c):
 * protocol values, upstreams.*.tls, route websocket/grpc_web and their cross
 * checks, with exact file:line:col positions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"

static tg_config_t *load(const char *yaml, tg_config_errors_t *e)
{
    memset(e, 0, sizeof *e);
    return tg_config_load_string("p.yaml", yaml, strlen(yaml), e);
}

static tg_config_t *load_ok(const char *yaml)
{
    tg_config_errors_t e;
    tg_config_t *c = load(yaml, &e);
    for (size_t i = 0; i < e.n; i++)
        fprintf(stderr, "unexpected: %s\n", e.v[i].text);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_ptr_nonnull(c);
    tg_config_errors_free(&e);
    return c;
}

static void expect_err(const char *yaml, const char *want)
{
    tg_config_errors_t e;
    tg_config_t *c = load(yaml, &e);
    ck_assert_ptr_null(c);
    bool found = false;
    for (size_t i = 0; i < e.n; i++)
        found |= strcmp(e.v[i].text, want) == 0;
    if (!found)
        for (size_t i = 0; i < e.n; i++)
            fprintf(stderr, "  got: %s\n", e.v[i].text);
    ck_assert_msg(found, "missing error: %s", want);
    tg_config_errors_free(&e);
}

START_TEST(protocols_and_tls_parse)
{
    tg_config_t *c = load_ok("upstreams:\n"
                             "  a: { servers: [\"a:80\"], protocol: h2c }\n"
                             "  b: { servers: [\"b:443\"], protocol: h2, tls: { verify: false, sni: b.internal } }\n"
                             "  g: { servers: [\"g:50051\"], protocol: grpc }\n"
                             "  t: { servers: [\"t:443\"], protocol: grpc, tls: true }\n"
                             "routes:\n"
                             "  - { match: { path: /g }, upstream: g, grpc_web: true }\n"
                             "  - { upstream: a }\n");
    ck_assert_int_eq(c->upstreams[0].protocol, TG_PROTO_H2C);
    ck_assert(!c->upstreams[0].tls.enabled);
    ck_assert_int_eq(c->upstreams[1].protocol, TG_PROTO_H2);
    ck_assert(c->upstreams[1].tls.enabled && !c->upstreams[1].tls.verify);
    ck_assert_str_eq(c->upstreams[1].tls.sni, "b.internal");
    ck_assert_int_eq(c->upstreams[2].protocol, TG_PROTO_GRPC);
    ck_assert(!c->upstreams[2].tls.enabled);
    ck_assert(c->upstreams[3].tls.enabled && c->upstreams[3].tls.verify); /* verify by default */
    ck_assert(c->routes[0].grpc_web && !c->routes[0].websocket);
    tg_config_release(c);
}
END_TEST

START_TEST(websocket_route)
{
    tg_config_t *c = load_ok("upstreams:\n  w: { servers: [\"w:80\"] }\n"
                             "routes:\n  - { upstream: w, websocket: true }\n");
    ck_assert(c->routes[0].websocket);
    tg_config_release(c);
}
END_TEST

START_TEST(cross_checks)
{
    expect_err("upstreams:\n  b:\n    servers: [\"b:443\"]\n    protocol: h2\nroutes:\n  - { upstream: b }\n",
               "p.yaml:4:15: upstreams.b.protocol: h2 is HTTP/2 over TLS and needs tls: "
               "(use h2c for cleartext HTTP/2)");
    expect_err("upstreams:\n  b:\n    servers: [\"b:443\"]\n    protocol: h2c\n    tls: { verify: true }\n"
               "routes:\n  - { upstream: b }\n",
               "p.yaml:5:10: upstreams.b.tls: h2c is cleartext HTTP/2 (use protocol: h2 for HTTP/2 over TLS)");
    expect_err("upstreams:\n  b: { servers: [\"b:80\"], protocol: h2c }\nroutes:\n  - upstream: b\n    websocket: true\n",
               "p.yaml:5:16: routes[0].websocket: WebSocket is tunnelled to HTTP/1.1 upstreams only; "
               "upstream \"b\" speaks another protocol");
    expect_err("upstreams:\n  b: { servers: [\"b:80\"] }\nroutes:\n  - upstream: b\n    grpc_web: true\n",
               "p.yaml:5:15: routes[0].grpc_web: needs an upstream with protocol: grpc; upstream \"b\" is not one");
    expect_err("upstreams:\n  b:\n    servers: [\"b:80\"]\n    protocol: grpc\n    tls: { cert: /nonexistent.pem }\n"
               "routes:\n  - { upstream: b }\n",
               "p.yaml:5:10: upstreams.b.tls: cert and key go together: give both or neither");
}
END_TEST

/* health_check on HTTP/2 upstreams runs over HTTP/2 (upstream/health_h2.c). */
START_TEST(health_check_on_http2_upstreams)
{
    tg_config_t *c = load_ok("upstreams:\n"
                             "  a: { servers: [\"a:80\"], protocol: h2c, health_check: { path: /h } }\n"
                             "  g: { servers: [\"g:80\"], protocol: grpc, health_check: {} }\n"
                             "routes:\n  - { upstream: a }\n");
    ck_assert(c->upstreams[0].has_health_check && c->upstreams[1].has_health_check);
    ck_assert_str_eq(c->upstreams[0].health_check.path, "/h");
    tg_config_release(c);
}
END_TEST

START_TEST(bad_values)
{
    expect_err("upstreams:\n  b:\n    servers: [\"b:80\"]\n    protocol: grpc\n    tls: { sni: \"a b\" }\n"
               "routes:\n  - { upstream: b }\n",
               "p.yaml:5:17: upstreams.b.tls.sni: expected a server name like users.internal, got \"a b\"");
    tg_config_errors_t e;
    tg_config_t *c = load("upstreams:\n  b:\n    servers: [\"b:80\"]\n    protocol: grpc\n"
                          "    tls: { ca: /nonexistent/ca.pem }\nroutes:\n  - { upstream: b }\n", &e);
    ck_assert_ptr_null(c);
    ck_assert_uint_ge(e.n, 1);
    ck_assert_ptr_nonnull(strstr(e.v[0].text, "upstreams.b.tls.ca: cannot load ca from \"/nonexistent/ca.pem\""));
    tg_config_errors_free(&e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("protocols");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, protocols_and_tls_parse);
    tcase_add_test(tc, websocket_route);
    tcase_add_test(tc, cross_checks);
    tcase_add_test(tc, bad_values);
    tcase_add_test(tc, health_check_on_http2_upstreams);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
