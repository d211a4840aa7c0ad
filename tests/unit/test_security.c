/* Security configuration (config/schema_security.c: defaults, `any` order)
 * and content-based routing in the router (match.json: candidates before the
 * body, pointer semantics, value comparison, `from`). */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "router/router.h"
#include "check_run.h"

static tg_config_t *load(const char *yaml)
{
    tg_config_errors_t errs = { 0 };
    tg_config_t *c = tg_config_load_string("t.yaml", yaml, strlen(yaml), &errs);
    if (c == NULL)
        tg_config_errors_print(&errs, stderr);
    tg_config_errors_free(&errs);
    return c;
}

#define UPS "upstreams: { u: { servers: [\"127.0.0.1:1\"] } }\n"

START_TEST(auth_defaults)
{
    tg_config_t *c = load(UPS "routes:\n"
                              "  - upstream: u\n"
                              "    auth: { api_key: {}, jwt: { secret: \"0123456789abcdef0123456789abcdef\" } }\n");
    ck_assert_ptr_nonnull(c);
    const tg_auth_cfg_t *a = &c->routes[0].auth;
    ck_assert(a->enabled && !a->optional);
    ck_assert_uint_eq(a->nmethods, 2); /* the order of the keys */
    ck_assert_int_eq(a->methods[0], TG_AUTH_API_KEY);
    ck_assert_int_eq(a->methods[1], TG_AUTH_JWT);
    ck_assert_str_eq(a->api_key.header, "X-API-Key");
    ck_assert_ptr_null(a->api_key.query);
    ck_assert(a->api_key.hide);
    ck_assert_str_eq(a->api_key.realm, "tollgate");
    ck_assert_uint_eq(a->jwt.clock_skew_ms, 30000);
    ck_assert_uint_eq(a->jwt.jwks_refresh_ms, 600000);
    ck_assert_uint_eq(a->jwt.nrequire, 1);
    ck_assert_str_eq(a->jwt.require[0], "exp");
    ck_assert_uint_eq(a->jwt.algorithms, 1u << TG_JWT_HS256 | 1u << TG_JWT_HS384 | 1u << TG_JWT_HS512);
    tg_config_release(c);
}
END_TEST

START_TEST(auth_any_order_and_require)
{
    tg_config_t *c = load(UPS "routes:\n"
                              "  - upstream: u\n"
                              "    auth: { any: [basic, api_key], optional: yes, api_key: { query: k } }\n"
                              "  - upstream: u\n"
                              "    auth: { jwt: { jwks: http://127.0.0.1:1/j, require: [] } }\n");
    ck_assert_ptr_nonnull(c);
    const tg_auth_cfg_t *a = &c->routes[0].auth;
    ck_assert(a->optional);
    ck_assert_int_eq(a->methods[0], TG_AUTH_BASIC);
    ck_assert_int_eq(a->methods[1], TG_AUTH_API_KEY);
    ck_assert_ptr_null(a->api_key.header); /* only the query when only query is given */
    ck_assert_str_eq(a->api_key.query, "k");
    const tg_jwt_cfg_t *j = &c->routes[1].auth.jwt;
    ck_assert(j->jwks_is_url);
    ck_assert_uint_eq(j->nrequire, 0);
    ck_assert(!(j->algorithms & (1u << TG_JWT_HS256))); /* no HMAC with a JWKS by default */
    ck_assert(j->algorithms & (1u << TG_JWT_RS256));
    tg_config_release(c);
}
END_TEST

START_TEST(acl_and_consumers)
{
    tg_config_t *c = load("consumers:\n"
                          "  - { name: a, groups: g1, api_keys: [k, \"sha256:" "0123456789abcdef0123456789abcdef"
                          "0123456789abcdef0123456789abcdef\"] }\n" UPS
                          "routes:\n"
                          "  - upstream: u\n"
                          "    allow: { groups: [g1], ip: [\"10.1.2.3/8\", \"::1\"] }\n"
                          "    deny: { scopes: s }\n");
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->nconsumers, 1);
    ck_assert_uint_eq(c->consumers[0].ngroups, 1);
    ck_assert_uint_eq(c->consumers[0].napi_keys, 2);
    const tg_route_cfg_t *r = &c->routes[0];
    ck_assert(r->allow.enabled && r->deny.enabled);
    ck_assert_uint_eq(r->allow.nip, 2);
    ck_assert_uint_eq(r->allow.ip[0].prefix_len, 8);
    ck_assert_uint_eq(r->allow.ip[0].addr[1], 0); /* host bits cleared */
    ck_assert_uint_eq(r->deny.nscopes, 1);
    tg_config_release(c);
}
END_TEST

/* ---- router: match.json ---- */

static const tg_route_cfg_t *route_for(const tg_router_t *rt, const char *body, bool read, uint32_t from)
{
    json_t *doc = body ? json_loads(body, JSON_DECODE_ANY, NULL) : NULL;
    tg_route_input_t in = { .host = TG_STR_LIT("h"), .method = TG_STR_LIT("POST"), .path = TG_STR_LIT("/o"),
                            .body_read = read, .json = doc, .from = from };
    const tg_route_cfg_t *r = tg_router_match(rt, &in);
    json_decref(doc);
    return r;
}

START_TEST(router_json)
{
    tg_config_t *c = load(UPS "routes:\n"
                              "  - { name: a, upstream: u, match: { json: { \"/o/t\": w, \"/o/n\": \"10\" } } }\n"
                              "  - { name: b, upstream: u, match: { json: { \"/a~1b/0\": present, \"/x~0y\": \"true\" } } }\n"
                              "  - { name: c, upstream: u, match: { json: { \"/s\": \"~^g(old)?$\" } } }\n"
                              "  - { name: d, upstream: u }\n");
    ck_assert_ptr_nonnull(c);
    tg_router_t *rt = tg_router_build(c);
    ck_assert_ptr_nonnull(rt);
    /* before the body: the first candidate */
    ck_assert_str_eq(route_for(rt, NULL, false, 0)->name, "a");
    ck_assert_str_eq(route_for(rt, "{\"o\":{\"t\":\"w\",\"n\":10}}", true, 0)->name, "a");
    ck_assert_str_eq(route_for(rt, "{\"o\":{\"t\":\"w\",\"n\":10.0}}", true, 0)->name, "a");
    ck_assert_str_eq(route_for(rt, "{\"o\":{\"t\":\"w\",\"n\":\"10\"}}", true, 0)->name, "a");
    ck_assert_str_eq(route_for(rt, "{\"o\":{\"t\":\"w\",\"n\":11}}", true, 0)->name, "d");
    ck_assert_str_eq(route_for(rt, "{\"a/b\":[null],\"x~y\":true}", true, 0)->name, "b");
    ck_assert_str_eq(route_for(rt, "{\"a/b\":[],\"x~y\":true}", true, 0)->name, "d");
    ck_assert_str_eq(route_for(rt, "{\"a/b\":{\"0\":1},\"x~y\":true}", true, 0)->name, "b"); /* "0" as a member */
    ck_assert_str_eq(route_for(rt, "{\"s\":\"gold\"}", true, 0)->name, "c");
    ck_assert_str_eq(route_for(rt, "{\"s\":\"golden\"}", true, 0)->name, "d");
    ck_assert_str_eq(route_for(rt, "{\"s\":7}", true, 0)->name, "d"); /* regexes match strings only */
    ck_assert_str_eq(route_for(rt, NULL, true, 0)->name, "d");        /* not JSON */
    /* from: the routes before it are skipped */
    ck_assert_str_eq(route_for(rt, "{\"o\":{\"t\":\"w\",\"n\":10}}", true, 1)->name, "d");
    ck_assert_str_eq(route_for(rt, NULL, false, 1)->name, "b");
    ck_assert_ptr_null(route_for(rt, NULL, true, 4));
    tg_router_free(rt);
    tg_config_release(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("security");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, auth_defaults);
    tcase_add_test(tc, auth_any_order_and_require);
    tcase_add_test(tc, acl_and_consumers);
    tcase_add_test(tc, router_json);
    suite_add_tcase(s, tc);
    return tg_check_run(s);
}
