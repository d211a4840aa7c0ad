/* Unit tests for the upstream-protocol configuration (src/config/schema_upstream_tls.c):
 * protocol values, upstreams.*.tls, route websocket/grpc_web and their cross
 * checks, with exact file:line:col positions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#define CFX_FILE "p.yaml"
#include "config_fixture.h"
#include "check_run.h"

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
    EXPECT_EXACT("upstreams:\n  b:\n    servers: [\"b:443\"]\n    protocol: h2\nroutes:\n  - { upstream: b }\n",
               "p.yaml:4:15: upstreams.b.protocol: h2 is HTTP/2 over TLS and needs tls: "
               "(use h2c for cleartext HTTP/2)");
    EXPECT_EXACT("upstreams:\n  b:\n    servers: [\"b:443\"]\n    protocol: h2c\n    tls: { verify: true }\n"
               "routes:\n  - { upstream: b }\n",
               "p.yaml:5:10: upstreams.b.tls: h2c is cleartext HTTP/2 (use protocol: h2 for HTTP/2 over TLS)");
    EXPECT_EXACT("upstreams:\n  b: { servers: [\"b:80\"], protocol: h2c }\nroutes:\n  - upstream: b\n    websocket: true\n",
               "p.yaml:5:16: routes[0].websocket: WebSocket is tunnelled to HTTP/1.1 upstreams only; "
               "upstream \"b\" speaks another protocol");
    EXPECT_EXACT("upstreams:\n  b: { servers: [\"b:80\"] }\nroutes:\n  - upstream: b\n    grpc_web: true\n",
               "p.yaml:5:15: routes[0].grpc_web: needs an upstream with protocol: grpc; upstream \"b\" is not one");
    EXPECT_EXACT("upstreams:\n  b:\n    servers: [\"b:80\"]\n    protocol: grpc\n    tls: { cert: /nonexistent.pem }\n"
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
    EXPECT_EXACT("upstreams:\n  b:\n    servers: [\"b:80\"]\n    protocol: grpc\n    tls: { sni: \"a b\" }\n"
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
    return tg_check_run(s);
}
