/* Unit tests for src/config/: unit parsers, a full config, defaults, YAML
 * reuse (anchors, merge keys), ${ENV}, every error class, bounds, the JSON
 * dump. Run from the repository root (the quickstart test reads examples/). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include "config/config.h"
#include "config_fixture.h"
#include "check_run.h"

/* ---- helpers ---- */

static const char *ups = "upstreams:\n  users: { servers: [\"u:80\"] }\n  billing: { servers: [\"b:80\"] }\n";

static char *cat(const char *a, const char *b)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s%s", a, b);
    return buf;
}

/* ---- unit parsers ---- */

START_TEST(durations)
{
    static const struct { const char *s; uint64_t ms; } good[] = {
        { "250ms", 250 }, { "5s", 5000 }, { "2m", 120000 }, { "1h", 3600000 }, { "1d", 86400000 },
        { "5", 5000 }, { "0", 0 }, { "0.25", 250 }, { "1.5s", 1500 }, { "1h30m", 5400000 },
        { "1m30s", 90000 }, { "0ms", 0 }, { "2d12h", 216000000 },
    };
    static const char *const bad[] = {
        "", "s", "5x", "-5s", "5 s", "0.5ms", "30m1h", "1s1s", "5S", "abc", "1e3", ".5s", "5.s",
        "18446744073709551616", "999999999999999999d", "1h5", "ms", "5sec",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 12345;
        ck_assert_msg(tg_parse_duration_ms(good[i].s, &v) == 0, "rejected %s", good[i].s);
        ck_assert_msg(v == good[i].ms, "%s = %llu", good[i].s, (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        ck_assert_msg(tg_parse_duration_ms(bad[i], &v) == -1, "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(v, 7);
    }
}
END_TEST

START_TEST(sizes)
{
    static const struct { const char *s; uint64_t v; } good[] = {
        { "512", 512 }, { "16KiB", 16384 }, { "10MiB", 10485760 }, { "1GiB", 1073741824 },
        { "1KB", 1000 }, { "1MB", 1000000 }, { "1GB", 1000000000 }, { "0", 0 }, { "1.5KiB", 1536 },
        { "16kib", 16384 }, { "100B", 100 }, { "2TiB", 2199023255552ull },
    };
    static const char *const bad[] = {
        "", "KiB", "16 KiB", "16k", "-1", "0.1KiB", "1.5B", "20000000000GiB", "1.5", "16KiBs", "0x10",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 1;
        ck_assert_msg(tg_parse_size(good[i].s, &v) == 0, "rejected %s", good[i].s);
        ck_assert_msg(v == good[i].v, "%s = %llu", good[i].s, (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        ck_assert_msg(tg_parse_size(bad[i], &v) == -1, "accepted \"%s\"", bad[i]);
    }
}
END_TEST

START_TEST(cidrs)
{
    tg_cidr_t c;
    ck_assert_int_eq(tg_parse_cidr("10.1.2.3/8", &c), 0);
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix_len, 8);
    ck_assert_int_eq(memcmp(c.addr, "\x0a\0\0\0", 4), 0); /* host bits cleared */
    ck_assert_int_eq(tg_parse_cidr("::1", &c), 0);
    ck_assert_int_eq(c.family, AF_INET6);
    ck_assert_uint_eq(c.prefix_len, 128);
    ck_assert_int_eq(tg_parse_cidr("192.168.1.1", &c), 0);
    ck_assert_uint_eq(c.prefix_len, 32);
    ck_assert_int_eq(tg_parse_cidr("2001:db8:ffff::/33", &c), 0);
    ck_assert_uint_eq(c.addr[4], 0x80);
    ck_assert_int_eq(tg_parse_cidr("0.0.0.0/0", &c), 0);
    static const char *const bad[] = { "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "abc", "",
                                       "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/1000", " 10.0.0.0/8" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tg_parse_cidr(bad[i], &c) == -1, "accepted \"%s\"", bad[i]);
}
END_TEST

static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr);
    } else {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr);
    }
    return ss;
}

START_TEST(cidr_contains)
{
    static const struct { const char *cidr, *ip; bool in; } cases[] = {
        { "10.0.0.0/8", "10.200.3.4", true },     { "10.0.0.0/8", "11.0.0.1", false },
        { "10.0.0.0/8", "::ffff:10.1.1.1", true }, { "10.0.0.0/8", "::1", false },
        { "::1", "::1", true },                   { "::1", "::2", false },
        { "2001:db8::/32", "2001:db8:1::9", true }, { "2001:db8::/32", "10.0.0.1", false },
        { "0.0.0.0/0", "203.0.113.9", true },      { "192.168.1.7", "192.168.1.7", true },
        { "192.168.1.7", "192.168.1.8", false },   { "10.0.0.0/9", "10.128.0.1", false },
        { "::ffff:0:0/96", "1.2.3.4", true },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_cidr_t c;
        ck_assert_int_eq(tg_parse_cidr(cases[i].cidr, &c), 0);
        struct sockaddr_storage ss = sa_of(cases[i].ip);
        ck_assert_msg(tg_cidr_contains(&c, (struct sockaddr *)&ss) == cases[i].in, "%s in %s", cases[i].ip,
                      cases[i].cidr);
    }
    ck_assert(!tg_cidr_contains(NULL, NULL));
}
END_TEST

START_TEST(listen_addresses)
{
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_int_eq(tg_parse_listen_address(":8080", &ss, &len), 0);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    ck_assert_int_eq(in->sin_family, AF_INET);
    ck_assert_uint_eq(ntohs(in->sin_port), 8080);
    ck_assert_uint_eq(in->sin_addr.s_addr, htonl(INADDR_ANY));
    ck_assert_int_eq(tg_parse_listen_address("localhost:9901", &ss, &len), 0);
    ck_assert_uint_eq(in->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    ck_assert_int_eq(tg_parse_listen_address("[::1]:443", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
    ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 443);
    ck_assert_int_eq(tg_parse_listen_address("unix:/tmp/tg.sock", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_UNIX);
    ck_assert_str_eq(((struct sockaddr_un *)&ss)->sun_path, "/tmp/tg.sock");
    ck_assert_int_eq(tg_parse_listen_address("127.0.0.1:80", &ss, &len), 0);
    ck_assert_int_eq(tg_parse_listen_address("*:80", &ss, &len), 0);
    static const char *const bad[] = { "8080", "host.example:80", ":0", ":65536", "[::1]", "::1:80", "unix:",
                                       "1.2.3.4:", ":80x", "", "[::1]80", "[nope]:80", "1.2.3.4:+80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tg_parse_listen_address(bad[i], &ss, &len) == -1, "accepted \"%s\"", bad[i]);
}
END_TEST

/* ---- whole files ---- */

static const char *full_yaml =
    "server:\n"
    "  listen:\n"
    "    - \":8080\"\n"
    "    - address: \"[::1]:8081\"\n"
    "      protocols: [http/1.1]\n"
    "    - unix:/tmp/tollgate-test.sock\n"
    "  workers: 3\n"
    "  limits:\n"
    "    header_timeout: 5s\n"
    "    idle_timeout: 1m\n"
    "    body_timeout: 250ms\n"
    "    max_header_bytes: 32KiB\n"
    "    max_headers: 50\n"
    "    max_uri_bytes: 4KiB\n"
    "    max_body_bytes: 1MB\n"
    "    max_connections: 5000\n"
    "  trusted_proxies: [10.0.0.0/8, \"::1\"]\n"
    "  access_log: { path: /var/log/tg.log, format: combined }\n"
    "  error_log: { path: stdout, level: debug }\n"
    "  shutdown_grace: 10s\n"
    "admin:\n"
    "  listen: 127.0.0.1:9902\n"
    "  token: s3cret\n"
    "upstreams:\n"
    "  users:\n"
    "    servers:\n"
    "      - users-1:8000\n"
    "      - { address: users-2:8000, weight: 3 }\n"
    "      - { address: \"[2001:db8::5]:8000\", backup: true }\n"
    "    balance: round_robin\n"
    "    protocol: http1\n"
    "    keepalive: { max_idle: 16, idle_timeout: 30s }\n"
    "    timeouts: { connect: 1s, response: 10s }\n"
    "    retries: { attempts: 3, on: [connect_failure, reset, timeout, 502, 503, 504], budget: 50% }\n"
    "    dns_refresh: 1m\n"
    "  billing:\n"
    "    servers: 10.0.0.9:9000\n"
    "routes:\n"
    "  - name: users-api\n"
    "    match:\n"
    "      host: [API.example.com, \"*.api.example.com\", \"[2001:DB8:0:0::1]\"]\n"
    "      path: /v1/users\n"
    "      methods: [GET, post, PURGE]\n"
    "      headers: { X-Api-Version: \"2\", X-Canary: present, X-Trace: \"~^[0-9a-f]+$\" }\n"
    "      query: { beta: \"1\", debug: present }\n"
    "    upstream: users\n"
    "    rewrite: { strip_prefix: /v1 }\n"
    "    request_headers: { set: { X-Env: prod, Authorization: Bearer-xyz }, add: { X-Via: tg }, remove: [Cookie] }\n"
    "    response_headers: { set: { Strict-Transport-Security: \"max-age=63072000\" }, remove: [Server] }\n"
    "    timeouts: { response: 5s }\n"
    "    limits: { max_body_bytes: 1MiB }\n"
    "    retries: { attempts: 0 }\n"
    "  - match: { path_exact: /health }\n"
    "    respond: { status: 204 }\n"
    "  - match: { path_regex: '^/u/(\\d+)$' }\n"
    "    upstream: billing\n"
    "    rewrite: { regex: { pattern: '^/u/(\\d+)$', replace: \"/users/$1\" } }\n"
    "  - match: { path: /old }\n"
    "    upstream: billing\n"
    "    rewrite: { replace_prefix: { from: /old, to: /new } }\n";

static void check_full_server(const tg_config_t *c)
{
    const tg_server_cfg_t *s = &c->server;
    ck_assert_uint_eq(s->nlisten, 3);
    ck_assert_str_eq(s->listen[0].address, ":8080");
    ck_assert_int_eq(s->listen[1].addr.ss_family, AF_INET6);
    ck_assert_int_eq(s->listen[2].addr.ss_family, AF_UNIX);
    ck_assert(!s->listen[1].has_tls);
    ck_assert_int_eq(s->workers, 3);
    ck_assert_uint_eq(s->limits.header_timeout_ms, 5000);
    ck_assert_uint_eq(s->limits.idle_timeout_ms, 60000);
    ck_assert_uint_eq(s->limits.body_timeout_ms, 250);
    ck_assert_uint_eq(s->limits.max_header_bytes, 32768);
    ck_assert_uint_eq(s->limits.max_headers, 50);
    ck_assert_uint_eq(s->limits.max_uri_bytes, 4096);
    ck_assert_uint_eq(s->limits.max_body_bytes, 1000000);
    ck_assert_uint_eq(s->limits.max_connections, 5000);
    ck_assert_uint_eq(s->ntrusted_proxies, 2);
    ck_assert_int_eq(s->trusted_proxies[1].family, AF_INET6);
    ck_assert_str_eq(s->access_log_path, "/var/log/tg.log");
    ck_assert_int_eq(s->access_log_format, TG_LOG_COMBINED);
    ck_assert_str_eq(s->error_log_path, "stdout");
    ck_assert_int_eq(s->error_log_level, TG_LEVEL_DEBUG);
    ck_assert_uint_eq(s->shutdown_grace_ms, 10000);
    ck_assert(c->admin.enabled);
    ck_assert_str_eq(c->admin.listen.address, "127.0.0.1:9902");
    ck_assert_str_eq(c->admin.token, "s3cret");
}

static void check_full_upstreams(const tg_config_t *c)
{
    ck_assert_uint_eq(c->nupstreams, 2);
    const tg_upstream_cfg_t *u = &c->upstreams[0];
    ck_assert_str_eq(u->name, "users");
    ck_assert_uint_eq(u->nservers, 3);
    ck_assert_str_eq(u->servers[0].host, "users-1");
    ck_assert_uint_eq(u->servers[0].port, 8000);
    ck_assert_uint_eq(u->servers[0].weight, 1);
    ck_assert_uint_eq(u->servers[1].weight, 3);
    ck_assert_str_eq(u->servers[2].host, "2001:db8::5");
    ck_assert(u->servers[2].backup);
    ck_assert_int_eq(u->balance, TG_BALANCE_ROUND_ROBIN);
    ck_assert_ptr_null(u->hash_key);
    ck_assert_uint_eq(u->keepalive_max_idle, 16);
    ck_assert_uint_eq(u->keepalive_idle_timeout_ms, 30000);
    ck_assert_uint_eq(u->idle_timeout_ms, 30000); /* follows keepalive.idle_timeout */
    ck_assert_uint_eq(u->connect_timeout_ms, 1000);
    ck_assert_uint_eq(u->response_timeout_ms, 10000);
    ck_assert_uint_eq(u->retry_attempts, 3);
    ck_assert_uint_eq(u->retry_on, 0x3f);
    ck_assert_uint_eq(u->retry_budget_pct, 50);
    ck_assert_uint_eq(u->dns_refresh_ms, 60000);
    ck_assert_str_eq(c->upstreams[1].name, "billing");
    ck_assert_uint_eq(c->upstreams[1].index, 1);
    ck_assert_uint_eq(c->upstreams[1].nservers, 1);
}

static void check_full_routes(const tg_config_t *c)
{
    ck_assert_uint_eq(c->nroutes, 4);
    const tg_route_cfg_t *r = &c->routes[0];
    ck_assert_str_eq(r->name, "users-api");
    ck_assert_uint_eq(r->match.nhosts, 3);
    ck_assert_str_eq(r->match.hosts[0], "api.example.com");
    ck_assert_str_eq(r->match.hosts[1], "*.api.example.com");
    ck_assert_str_eq(r->match.hosts[2], "[2001:db8::1]"); /* canonical, as the router compares */
    ck_assert_str_eq(r->match.path, "/v1/users");
    ck_assert_uint_eq(r->match.methods, TG_M_GET | TG_M_POST);
    ck_assert_uint_eq(r->match.nother_methods, 1);
    ck_assert_str_eq(r->match.other_methods[0], "PURGE");
    ck_assert_uint_eq(r->match.nheaders, 3);
    ck_assert_int_eq(r->match.headers[0].kind, TG_HMATCH_EXACT);
    ck_assert_str_eq(r->match.headers[0].value, "2");
    ck_assert_int_eq(r->match.headers[1].kind, TG_HMATCH_PRESENT);
    ck_assert_int_eq(r->match.headers[2].kind, TG_HMATCH_REGEX);
    ck_assert_ptr_nonnull(r->match.headers[2].regex);
    ck_assert_str_eq(r->match.headers[2].value, "^[0-9a-f]+$");
    ck_assert_uint_eq(r->match.nquery, 2);
    ck_assert_ptr_eq(r->upstream, &c->upstreams[0]);
    ck_assert_int_eq(r->rewrite.kind, TG_REWRITE_STRIP_PREFIX);
    ck_assert_str_eq(r->rewrite.from, "/v1");
    ck_assert_uint_eq(r->request_headers.nset, 2);
    ck_assert_str_eq(r->request_headers.set[0].name, "X-Env");
    ck_assert_str_eq(r->request_headers.add[0].value, "tg");
    ck_assert_str_eq(r->request_headers.remove[0], "Cookie");
    ck_assert_uint_eq(r->response_headers.nremove, 1);
    ck_assert_uint_eq(r->response_timeout_ms, 5000);
    ck_assert_uint_eq(r->max_body_bytes, 1048576);
    ck_assert(r->has_retries);
    ck_assert_uint_eq(r->retry_attempts, 0);
    r = &c->routes[1];
    ck_assert_str_eq(r->name, "route-1");
    ck_assert(r->has_respond);
    ck_assert_int_eq(r->respond.status, 204);
    ck_assert_ptr_null(r->upstream);
    r = &c->routes[2];
    ck_assert_ptr_nonnull(r->match.path_regex);
    ck_assert_int_eq(r->rewrite.kind, TG_REWRITE_REGEX);
    ck_assert_str_eq(r->rewrite.replace, "/users/$1");
    ck_assert_int_eq(c->routes[3].rewrite.kind, TG_REWRITE_REPLACE_PREFIX);
    ck_assert_str_eq(c->routes[3].rewrite.to, "/new");
    ck_assert_uint_eq(c->nregexes, 3); /* path_regex, header ~regex, rewrite pattern */
}

START_TEST(full_config)
{
    tg_config_t *c = load_ok(full_yaml);
    check_full_server(c);
    check_full_upstreams(c);
    check_full_routes(c);
    ck_assert_int_eq(atomic_load(&c->refs), 1);
    ck_assert_ptr_eq(tg_config_retain(c), c);
    tg_config_release(c);
    tg_config_release(c);
}
END_TEST

START_TEST(defaults)
{
    tg_config_t *c = load_ok("upstreams:\n  a: { servers: [\"x:1\"] }\nroutes:\n  - upstream: a\n");
    const tg_server_cfg_t *s = &c->server;
    ck_assert_uint_eq(s->nlisten, 1);
    ck_assert_str_eq(s->listen[0].address, ":8080");
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&s->listen[0].addr)->sin_port), 8080);
    ck_assert_int_ge(s->workers, 1);
    ck_assert_uint_eq(s->limits.header_timeout_ms, 10000);
    ck_assert_uint_eq(s->limits.idle_timeout_ms, 75000);
    ck_assert_uint_eq(s->limits.body_timeout_ms, 60000);
    ck_assert_uint_eq(s->limits.max_header_bytes, 16384);
    ck_assert_uint_eq(s->limits.max_headers, 100);
    ck_assert_uint_eq(s->limits.max_uri_bytes, 8192);
    ck_assert_uint_eq(s->limits.max_body_bytes, 10485760);
    ck_assert_uint_eq(s->limits.max_connections, 100000);
    ck_assert_str_eq(s->access_log_path, "stdout");
    ck_assert_int_eq(s->access_log_format, TG_LOG_JSON);
    ck_assert_str_eq(s->error_log_path, "stderr");
    ck_assert_int_eq(s->error_log_level, TG_LEVEL_INFO);
    ck_assert_uint_eq(s->shutdown_grace_ms, 30000);
    ck_assert(!c->admin.enabled);
    ck_assert_str_eq(c->admin.listen.address, "127.0.0.1:9901");
    ck_assert_ptr_null(c->admin.token);
    const tg_upstream_cfg_t *u = &c->upstreams[0];
    ck_assert_uint_eq(u->keepalive_max_idle, 64);
    ck_assert_uint_eq(u->keepalive_idle_timeout_ms, 60000);
    ck_assert_uint_eq(u->connect_timeout_ms, 2000);
    ck_assert_uint_eq(u->response_timeout_ms, 30000);
    ck_assert_uint_eq(u->idle_timeout_ms, 60000);
    ck_assert_uint_eq(u->retry_attempts, 0);
    ck_assert_uint_eq(u->retry_budget_pct, 20);
    ck_assert_uint_eq(u->servers[0].weight, 1);
    ck_assert_str_eq(c->routes[0].name, "route-0");
    ck_assert_uint_eq(c->routes[0].response_timeout_ms, 0);
    tg_config_release(c);
    c = load_ok(""); /* an empty file: defaults, no routes */
    ck_assert_uint_eq(c->nroutes, 0);
    tg_config_release(c);
    c = load_ok("admin:\nupstreams: { a: { servers: x:1, retries: {} } }\n");
    ck_assert(c->admin.enabled);
    ck_assert_uint_eq(c->upstreams[0].retry_attempts, 2); /* retries: given → 2 */
    tg_config_release(c);
    c = load_ok("{\"server\": {\"workers\": \"auto\", \"listen\": \":9000\"}, \"routes\": []}"); /* JSON */
    ck_assert_int_ge(c->server.workers, 1);
    tg_config_release(c);
}
END_TEST

START_TEST(quickstart)
{
    tg_config_errors_t e = { 0 };
    tg_config_t *c = tg_config_load("examples/quickstart.yaml", &e);
    tg_config_errors_print(&e, stderr);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->nupstreams, 1);
    ck_assert_uint_eq(c->upstreams[0].nservers, 3);
    tg_config_release(c);
    tg_config_errors_free(&e);
    c = tg_config_load("/nonexistent/tollgate.yaml", &e);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(e.n, 1);
    ck_assert_str_eq(e.v[0].text, "/nonexistent/tollgate.yaml: cannot open: No such file or directory");
    tg_config_errors_free(&e);
}
END_TEST

START_TEST(anchors_and_merges)
{
    /* Top-level x-* keys hold anchors and are otherwise ignored. */
    tg_config_t *c = load_ok("x-timeouts: &t { connect: 1s }\nupstreams: { a: { servers: a:1, timeouts: *t } }\n");
    ck_assert_uint_eq(c->upstreams[0].connect_timeout_ms, 1000);
    tg_config_release(c);
    EXPECT_EXACT("server: { x-y: 1 }\n", "t.yaml:1:11: server.x-y: unknown key \"x-y\"");
    const char *y = "upstreams:\n"
        "  users: &up\n"
        "    servers: [\"u:1\"]\n"
        "    timeouts: { connect: 1s, response: 3s }\n"
        "    keepalive: { max_idle: 8 }\n"
        "  billing:\n"
        "    <<: *up\n"
        "    servers: [\"b:1\", \"b:2\"]\n"
        "  other:\n"
        "    <<: [ { keepalive: { max_idle: 1 } }, *up ]\n"
        "routes:\n"
        "  - &r { match: { path: /a }, upstream: users }\n"
        "  - { <<: *r, name: second, match: { path: /b } }\n"
        "  - *r\n";
    tg_config_errors_t e;
    c = load(y, &e);
    /* *r used twice gives two routes both named route-N: the third is named route-2. */
    ck_assert_ptr_nonnull(c);
    tg_config_errors_free(&e);
    ck_assert_uint_eq(c->upstreams[1].nservers, 2);                 /* explicit wins */
    ck_assert_uint_eq(c->upstreams[1].connect_timeout_ms, 1000);    /* merged */
    ck_assert_uint_eq(c->upstreams[1].response_timeout_ms, 3000);
    ck_assert_uint_eq(c->upstreams[2].keepalive_max_idle, 1);       /* first source wins */
    ck_assert_uint_eq(c->upstreams[2].connect_timeout_ms, 1000);
    ck_assert_uint_eq(c->nroutes, 3);
    ck_assert_str_eq(c->routes[1].name, "second");
    ck_assert_str_eq(c->routes[1].match.path, "/b");
    ck_assert_str_eq(c->routes[2].match.path, "/a");
    ck_assert_str_eq(c->routes[2].name, "route-2");
    tg_config_release(c);
    /* One mapping read as match: and as headers: compiles its "~x" twice, differently. */
    c = load_ok("x-m: &m { path_regex: \"~x\" }\nroutes:\n  - { respond: {}, match: *m }\n"
                "  - { respond: {}, match: { headers: *m } }\n");
    ck_assert_str_eq(c->routes[0].match.path_regex_src, "~x");
    ck_assert_str_eq(c->routes[1].match.headers[0].value, "x");
    ck_assert_ptr_ne(c->routes[0].match.path_regex, c->routes[1].match.headers[0].regex);
    tg_config_release(c);
    EXPECT_EXACT("routes:\n  - *nope\n", "t.yaml:2:5: routes[0]: unknown anchor \"nope\" (anchors must be defined before use)");
    EXPECT_SUB("a: &x [ *x ]\n", "refers to a node that contains it");
    EXPECT_EXACT("upstreams:\n  <<: [ 1 ]\n", "t.yaml:2:9: upstreams.<<: a merge source must be a mapping");
}
END_TEST

START_TEST(env_expansion)
{
    setenv("TG_TEST_TOKEN", "tok-123", 1);
    setenv("TG_TEST_EMPTY", "", 1);
    unsetenv("TG_TEST_UNSET");
    tg_config_t *c = load_ok(
        "admin: { token: \"${TG_TEST_TOKEN}\" }\n"
        "routes:\n"
        "  - respond: { body: \"a ${TG_TEST_UNSET:-dflt} b ${TG_TEST_EMPTY:-e} $$HOME $2b$12$x ${TG_TEST_EMPTY}.\" }\n"
        "    match: { headers: { X-K: \"${TG_TEST_TOKEN}\" } }\n");
    ck_assert_str_eq(c->admin.token, "tok-123");
    ck_assert_str_eq(c->routes[0].respond.body, "a dflt b e $HOME $2b$12$x .");
    ck_assert_str_eq(c->routes[0].match.headers[0].value, "tok-123");
    tg_config_release(c);
    EXPECT_EXACT("admin:\n  token: ${TG_TEST_UNSET}\n",
                 "t.yaml:2:10: admin.token: environment variable \"TG_TEST_UNSET\" is not set");
    EXPECT_SUB("admin: { token: \"${TG_TEST_TOKEN\" }\n", "unterminated \"${\"");
    EXPECT_SUB("admin: { token: \"${1X}\" }\n", "expected ${NAME} or ${NAME:-default}");
    EXPECT_EXACT("admin:\n  token: ${TG_TEST_UNSET:-}\n", "t.yaml:2:10: admin.token: must not be empty");
    setenv("TG_TEST_WORKERS", "5", 1);
    c = load_ok("server: { workers: \"${TG_TEST_WORKERS}\", shutdown_grace: \"${TG_TEST_UNSET:-2s}\" }\n");
    ck_assert_int_eq(c->server.workers, 5);
    ck_assert_uint_eq(c->server.shutdown_grace_ms, 2000);
    tg_config_release(c);
}
END_TEST

/* ---- errors ---- */

START_TEST(error_reference)
{
    char y[1024];
    snprintf(y, sizeof y, "%sroutes:\n  - match: { path: /a }\n    upstream: orders\n", ups);
    EXPECT_EXACT(y, "t.yaml:6:15: routes[0].upstream: no upstream named \"orders\" (defined: users, billing)");
    EXPECT_EXACT("routes:\n  - upstream: x\n", "t.yaml:2:15: routes[0].upstream: no upstream named \"x\" (no upstreams are defined)");
    EXPECT_EXACT(cat(ups, "routes:\n  - match: { path: /a }\n"), "t.yaml:5:5: routes[0]: a route needs exactly one of upstream or respond");
    EXPECT_EXACT(cat(ups, "routes:\n  - upstream: users\n    respond: { status: 200 }\n"),
                 "t.yaml:5:5: routes[0]: a route needs exactly one of upstream or respond");
    EXPECT_EXACT(cat(ups, "routes:\n  - { name: a, upstream: users }\n  - { name: a, upstream: users }\n"),
                 "t.yaml:6:13: routes[1].name: duplicate route name \"a\" (also routes[0])");
    EXPECT_SUB(cat(ups, "routes:\n  - { upstream: users }\n  - { name: route-0, upstream: users }\n"),
               "routes[1].name: duplicate route name \"route-0\" (also routes[0])");
    EXPECT_EXACT(cat(ups, "routes:\n  - respond: {}\n    rewrite: { strip_prefix: /a }\n"),
                 "t.yaml:6:14: routes[0].rewrite: has no effect on a route that uses respond");
}
END_TEST

START_TEST(error_unknown_and_unsupported)
{
    EXPECT_EXACT("routes:\n  - mach: {}\n", "t.yaml:2:5: routes[0].mach: unknown key \"mach\" (did you mean \"match\"?)");
    EXPECT_EXACT("sever: {}\n", "t.yaml:1:1: sever: unknown key \"sever\" (did you mean \"server\"?)");
    EXPECT_EXACT("server: { limits: { max_body: 1 } }\n", "t.yaml:1:21: server.limits.max_body: unknown key \"max_body\"");
    EXPECT_EXACT("upstreams:\n  u: { servers: [\"a:1\"], helth_check: {} }\n",
                 "t.yaml:2:26: upstreams.u.helth_check: unknown key \"helth_check\" (did you mean \"health_check\"?)");
    EXPECT_EXACT(cat(ups, "routes:\n  - upstream: users\n    cors: { origins: [a] }\n"),
                 "t.yaml:6:5: routes[0].cors: not supported by this build yet");
    /* Features still refused by this build (src/config/features.c). */
    static const char *const route_keys[] = { "cors", "compress" };
    for (size_t i = 0; i < sizeof route_keys / sizeof route_keys[0]; i++) {
        char y[512], want[128];
        snprintf(y, sizeof y, "%sroutes:\n  - upstream: users\n    %s: true\n", ups, route_keys[i]);
        snprintf(want, sizeof want, "routes[0].%s: not supported by this build yet", route_keys[i]);
        EXPECT_SUB(y, want);
    }
    EXPECT_EXACT("tracing: x\n", "t.yaml:1:1: tracing: not supported by this build yet");
    EXPECT_SUB("upstreams: { u: { servers: a:1, balance: fastest } }\n",
               "expected one of round_robin, least_conn, random, p2c, hash, got \"fastest\"");
    EXPECT_SUB("server: { access_log: { format: jsn } }\n", "expected one of json, combined, off (did you mean \"json\"?)");
}
END_TEST

START_TEST(error_types)
{
    EXPECT_EXACT("server:\n  shutdown_grace: soon\n",
                 "t.yaml:2:19: server.shutdown_grace: expected a duration like 5s, 250ms, 2m, 1h or 1d, got \"soon\"");
    EXPECT_EXACT("server: { limits: { max_body_bytes: 10MB/s } }\n",
                 "t.yaml:1:37: server.limits.max_body_bytes: expected a size like 512, 16KiB, 10MiB or 1GiB, got \"10MB/s\"");
    EXPECT_SUB("server: { limits: { max_headers: lots } }\n", "server.limits.max_headers: expected an integer, got \"lots\"");
    EXPECT_SUB("server: { limits: { max_headers: 0 } }\n", "must be between 1 and 10000");
    EXPECT_SUB("server: { limits: { header_timeout: 0 } }\n", "must be at least 1ms");
    EXPECT_SUB("server: { workers: many }\n", "expected a number of threads or \"auto\", got \"many\"");
    EXPECT_SUB("server: { listen: 8080 }\n", "a bare port needs a leading colon");
    EXPECT_SUB("server: { listen: \"example.com:80\" }\n", "must be an IP address, localhost, or empty");
    EXPECT_SUB("server: { listen: [] }\n", "server.listen: needs at least one address");
    EXPECT_SUB("server: { listen: [\":80\", \"0.0.0.0:80\"] }\n", "server.listen[1]: \"0.0.0.0:80\" overlaps server.listen[0]");
    EXPECT_SUB("server: { listen: \":9901\" }\nadmin: { listen: \"127.0.0.1:9901\" }\n", "admin.listen: \"127.0.0.1:9901\" overlaps");
    EXPECT_SUB("server: { trusted_proxies: [10.0.0.0/33] }\n", "server.trusted_proxies[0]: expected an IP address or CIDR");
    EXPECT_EXACT("server: []\n", "t.yaml:1:9: server: expected a mapping");
    EXPECT_EXACT("- a\n", "t.yaml:1:1: expected a mapping at the top level (server:, upstreams:, routes:, ...)");
    EXPECT_EXACT("routes: {}\n", "t.yaml:1:9: routes: expected a list");
    EXPECT_SUB("upstreams: { u: { servers: [{ address: a:1, backup: maybe }] } }\n",
               "upstreams.u.servers[0].backup: expected true or false");
    EXPECT_EXACT("upstreams:\n  users:\n    servers:\n      - a:1\n      - { address: b:1, weight: -1 }\n",
                 "t.yaml:5:33: upstreams.users.servers[1].weight: expected an integer, got \"-1\"");
    EXPECT_SUB("upstreams: { u: { servers: [\"a\"] } }\n", "upstreams.u.servers[0]: expected a server address like");
    EXPECT_SUB("upstreams: { u: { servers: [a:1, A:1] } }\n", "upstreams.u.servers[1]: duplicate server \"A:1\" (also servers[0])");
    EXPECT_SUB("upstreams: { u: { servers: [{ address: a:1, backup: true }] } }\n", "needs at least one server that is not a backup");
    EXPECT_SUB("upstreams: { u: { balance: round_robin } }\n", "upstreams.u: missing required key \"servers\"");
    EXPECT_SUB("upstreams: { u: { servers: a:1, hash_key: client_ip } }\n", "upstreams.u.hash_key: only used with balance: hash");
    EXPECT_SUB("upstreams: { u: { servers: a:1, balance: hash } }\n", "balance: hash needs hash_key");
    EXPECT_SUB("upstreams: { u: { servers: a:1, balance: hash, hash_key: \"header:\" } }\n", "expected client_ip, path, header:NAME");
    EXPECT_SUB("upstreams: { u: { servers: a:1, retries: { budget: 20 } } }\n", "expected a percentage from 0% to 100% like 20%");
    EXPECT_SUB("upstreams: { u: { servers: a:1, retries: { on: [500] } } }\n", "upstreams.u.retries.on[0]: expected one of connect_failure");
    EXPECT_SUB("upstreams: { u: { servers: a:1, timeouts: { idle: 5s }, keepalive: { idle_timeout: 6s } } }\n",
               "upstreams.u.timeouts.idle: differs from keepalive.idle_timeout");
    EXPECT_SUB("upstreams: { \"a b\": { servers: a:1 } }\n", "upstreams[\"a b\"]: an upstream name is 1 to 64");
    EXPECT_SUB("admin: { token: \"a b\" }\n", "admin.token: the token must not contain spaces");
}
END_TEST

START_TEST(error_routes)
{
    EXPECT_EXACT("routes:\n  - respond: {}\n    match: { path: api }\n",
                 "t.yaml:3:20: routes[0].match.path: \"api\" must start with \"/\"");
    EXPECT_SUB("routes: [ { respond: {}, match: { path: \"/a//b\" } } ]\n", "must not contain \"//\"");
    EXPECT_SUB("routes: [ { respond: {}, match: { path: \"/a/../b\" } } ]\n", "\".\" or \"..\" segments");
    EXPECT_SUB("routes: [ { respond: {}, match: { path: \"/a?x=1\" } } ]\n", "must not contain '?'");
    EXPECT_SUB("routes: [ { respond: {}, match: { path_exact: \"/%7e\" } } ]\n", "upper-case hex");
    EXPECT_SUB("routes: [ { respond: {}, match: { path: /a, path_exact: /a } } ]\n", "give only one of path, path_exact and path_regex");
    EXPECT_EXACT("routes:\n  - respond: {}\n    match: { path_regex: \"^/(a\" }\n",
                 "t.yaml:3:26: routes[0].match.path_regex: invalid regex at offset 4: missing closing parenthesis");
    EXPECT_SUB("routes: [ { respond: {}, match: { headers: { X-A: \"~[\" } } } ]\n", "routes[0].match.headers.X-A: invalid regex at offset 1");
    EXPECT_SUB("routes: [ { respond: {}, match: { headers: { \"X A\": b } } } ]\n", "\"X A\" is not a valid header name");
    EXPECT_SUB("routes: [ { respond: {}, match: { headers: { X-A: b, x-a: c } } } ]\n", "header \"x-a\" given twice");
    EXPECT_SUB("routes: [ { respond: {}, match: { host: \"api.example.com:8080\" } } ]\n", "must not include a port");
    EXPECT_SUB("routes: [ { respond: {}, match: { host: \"a.*.com\" } } ]\n", "wildcards are written");
    EXPECT_SUB("routes: [ { respond: {}, match: { methods: [\"G ET\"] } } ]\n", "routes[0].match.methods[0]: \"G ET\" is not a valid method");
    EXPECT_SUB("routes: [ { respond: { status: 99 } } ]\n", "routes[0].respond.status: must be between 200 and 599");
    EXPECT_SUB("routes: [ { respond: { status: 204, body: x } } ]\n", "a 204 response has no body");
    EXPECT_SUB("routes: [ { respond: { headers: { Content-Length: \"5\" } } } ]\n", "managed by the gateway");
    EXPECT_SUB("routes: [ { respond: { headers: { X-A: \"a\\r\\nX-B: b\" } } } ]\n", "must not contain CR, LF");
    EXPECT_SUB(cat(ups, "routes: [ { upstream: users, request_headers: { remove: [Transfer-Encoding] } } ]\n"),
               "cannot be removed");
    EXPECT_SUB(cat(ups, "routes: [ { upstream: users, rewrite: { strip_prefix: /a, regex: { pattern: a, replace: b } } } ]\n"),
               "give only one of strip_prefix, replace_prefix and regex");
    EXPECT_SUB(cat(ups, "routes: [ { upstream: users, rewrite: { regex: { pattern: \"^/(a)\", replace: \"/$2\" } } } ]\n"),
               "routes[0].rewrite.regex.replace: replace uses $2 but the pattern has 1 capture group");
    tg_config_t *c = load_ok(cat(ups, "routes: [ { upstream: users, rewrite: { regex: { pattern: \"^/(a)\", replace: \"/$0/$1/$x\" } } } ]\n"));
    ck_assert_str_eq(c->routes[0].rewrite.replace, "/$0/$1/$x");
    tg_config_release(c);
    EXPECT_SUB(cat(ups, "routes: [ { upstream: users, rewrite: { replace_prefix: { from: /a } } } ]\n"), "needs both from: and to:");
    EXPECT_SUB(cat(ups, "routes: [ { upstream: users, retries: { attempts: 11 } } ]\n"), "must be between 0 and 10");
}
END_TEST

START_TEST(error_yaml)
{
    EXPECT_EXACT("server:\n  workers: 2\n  workers: 3\n", "t.yaml:3:3: server.workers: duplicate key (first defined at line 2)");
    EXPECT_EXACT("upstreams:\n  users: { servers: a:1 }\n  users: { servers: b:1 }\n",
                 "t.yaml:3:3: upstreams.users: duplicate key (first defined at line 2)");
    EXPECT_SUB("server:\n  workers: [1\n", "t.yaml:3:1: invalid YAML:");
    EXPECT_SUB("a: b\n c: d: e\n", "invalid YAML: mapping values are not allowed");
    EXPECT_SUB("---\na: 1\n---\nb: 2\n", "one YAML document");
    EXPECT_SUB("server: !include other.yaml\n", "server: YAML tag \"!include\" is not supported");
    EXPECT_SUB("a: \xc3\x28\n", "t.yaml:1:5: invalid YAML: invalid trailing UTF-8 octet");
    EXPECT_SUB("? [a]\n: b\n", "mapping keys must be strings");
    EXPECT_SUB("admin: { token: \"a\\0b\" }\n", "NUL character");
    /* Many errors are all reported, in file order. */
    tg_config_errors_t e;
    ck_assert_ptr_null(load("server:\n  workers: x\n  shutdown_grace: y\nroutes:\n  - {}\n  - { bogus: 1, respond: {} }\nzzz: 1\n", &e));
    ck_assert_uint_eq(e.n, 5);
    ck_assert(strstr(e.v[0].text, "t.yaml:2:") && strstr(e.v[1].text, "t.yaml:3:") && strstr(e.v[2].text, "t.yaml:5:") &&
              strstr(e.v[3].text, "t.yaml:6:") && strstr(e.v[4].text, "t.yaml:7:"));
    tg_config_errors_free(&e);
}
END_TEST

START_TEST(bounds)
{
    /* Billion laughs: 10 levels of 10 aliases = 10^10 nodes if expanded. */
    char y[4096] = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 10; i++) {
        size_t len = strlen(y);
        snprintf(y + len, sizeof y - len, "a%d: &a%d [*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d]\n", i, i, i - 1,
                 i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    }
    clock_t t0 = clock();
    EXPECT_SUB(y, "expands to more than 1000000 nodes");
    ck_assert_msg((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0, "billion laughs took too long");
    /* The same through merge keys. */
    char m[4096] = "m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}\n";
    for (int i = 1; i < 10; i++) {
        size_t len = strlen(m);
        snprintf(m + len, sizeof m - len, "m%d: &m%d [*m%d,*m%d,*m%d,*m%d,*m%d,*m%d,*m%d,*m%d,*m%d,*m%d]\n", i, i, i - 1,
                 i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    }
    strcat(m, "z: { <<: [*m0, *m0, *m0] }\n");
    t0 = clock();
    EXPECT_SUB(m, "expands to more than");
    ck_assert((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0);
    char deep[512] = "";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    EXPECT_SUB(deep, "nested more than 64 levels deep");
}
END_TEST

START_TEST(dump_json)
{
    tg_config_t *c = load_ok(full_yaml);
    char *j = tg_config_to_json(c);
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_null(strstr(j, "s3cret"));
    ck_assert_ptr_null(strstr(j, "Bearer-xyz"));
    ck_assert_ptr_nonnull(strstr(j, "\"token\": \"[redacted]\""));
    ck_assert_ptr_nonnull(strstr(j, "\"body_timeout\": \"250ms\""));
    ck_assert_ptr_nonnull(strstr(j, "\"X-Trace\": \"~^[0-9a-f]+$\""));
    /* The dump is itself a config that loads to the same dump. */
    tg_config_t *c2 = load_ok(j);
    char *j2 = tg_config_to_json(c2);
    ck_assert_str_eq(j, j2);
    free(j);
    free(j2);
    tg_config_release(c2);
    tg_config_release(c);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *units = tcase_create("units");
    tcase_add_test(units, durations);
    tcase_add_test(units, sizes);
    tcase_add_test(units, cidrs);
    tcase_add_test(units, cidr_contains);
    tcase_add_test(units, listen_addresses);
    suite_add_tcase(s, units);
    TCase *files = tcase_create("files");
    tcase_set_timeout(files, 30);
    tcase_add_test(files, full_config);
    tcase_add_test(files, defaults);
    tcase_add_test(files, quickstart);
    tcase_add_test(files, anchors_and_merges);
    tcase_add_test(files, env_expansion);
    tcase_add_test(files, dump_json);
    suite_add_tcase(s, files);
    TCase *errors = tcase_create("errors");
    tcase_set_timeout(errors, 30);
    tcase_add_test(errors, error_reference);
    tcase_add_test(errors, error_unknown_and_unsupported);
    tcase_add_test(errors, error_types);
    tcase_add_test(errors, error_routes);
    tcase_add_test(errors, error_yaml);
    tcase_add_test(errors, bounds);
    suite_add_tcase(s, errors);
    return s;
}

int main(void)
{
    return tg_check_run(config_suite());
}
