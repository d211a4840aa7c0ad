/* libFuzzer harness for the router.
 *
 * Input: newline-separated fields "authority\nmethod\npath\nquery\nheader
 * name\nheader value"; missing fields are empty. A fixed route set (built
 * once) is matched with the index and with the plain in-order scan, which
 * must agree; every rewrite in the set is applied to the path; the whole
 * input and the authority field go through tg_host_normalize, whose output
 * must be lowercase and normalise to itself. Any disagreement aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/router_fixture.h"

static fx_t fz_fx;
static tg_router_t *fz_router;

static void add_routes(fx_t *f)
{
    tg_route_cfg_t *rt;
    fx_hosts(f, fx_route(f, "/v1/users"), "api.example.com", "*.api.example.com", NULL);
    fx_rewrite_strip(f, &f->routes[0], "/v1");
    rt = fx_route(f, NULL);
    rt->match.path_exact = "/health";
    fx_hosts(f, rt, "*.example.com", NULL);
    fx_path_regex(f, rt = fx_route(f, NULL), "^/v1/users/(\\d+)$");
    fx_rewrite_regex(f, rt, "^/v1/users/(\\d+)$", "/u/$1/$0/$2$$");
    rt = fx_route(f, "/v2/");
    rt->match.methods = TG_M_GET | TG_M_HEAD;
    fx_other_methods(f, rt, "PURGE", NULL);
    fx_rewrite_replace(f, rt, "/v2/", "/api/");
    fx_header(f, rt = fx_route(f, "/h"), "X-Api-Version", "2");
    fx_header(f, rt, "X-Canary", NULL);
    fx_header(f, fx_route(f, "/h"), "User-Agent", "~^(curl|wget)/[0-9.]+$");
    fx_query(f, rt = fx_route(f, "/q"), "beta", "1");
    fx_query(f, rt, "a b", NULL);
    fx_query(f, fx_route(f, "/q"), "id", "~^[0-9]{1,5}$");
    fx_hosts(f, fx_route(f, "/static"), "cdn.example.org", "*.cdn.example.org", "CDN2.example.org.", NULL);
    rt = fx_route(f, "/");
    fx_hosts(f, rt, "cdn.example.org", NULL);
    fx_rewrite_replace(f, rt, "/", "/origin");
    fx_route(f, "/a/b/c");
    fx_route(f, "/a/")->match.methods = TG_M_POST;
    fx_path_regex(f, rt = fx_route(f, NULL), "(a+)+b");
    fx_rewrite_regex(f, rt, "(a+)+b", "$1");
    fx_route(f, "/z")->match.path_exact = "/z/y";
    /* Enough routes under one host for its segment level to be built. */
    static const char *const big[] = { "/", "/a", "/a/b", "/b/", "/c", "/d/e/f", "/a", "/e", "/f" };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        rt = fx_route(f, i == 0 ? NULL : big[i]);
        fx_hosts(f, rt, "big.example.net", i & 1 ? "*.example.net" : NULL, NULL);
        rt->match.methods = i == 6 ? TG_M_DELETE : 0;
    }
    fx_route(f, "/");
}

static void setup(void)
{
    fx_init(&fz_fx);
    add_routes(&fz_fx);
    fz_router = tg_router_build(&fz_fx.cfg);
    if (fz_router == NULL)
        abort();
}

/* Splits the next field off the input at '\n', advancing past it. */
static tg_str_t next_field(const char **p, size_t *n)
{
    const char *nl = *n ? memchr(*p, '\n', *n) : NULL;
    size_t len = nl ? (size_t)(nl - *p) : *n;
    tg_str_t f = tg_str(*p, len);
    *p += nl ? len + 1 : len;
    *n -= nl ? len + 1 : len;
    return f;
}

static void check_host(tg_str_t s)
{
    char out[256], again[256];
    int n = tg_host_normalize(s, out, sizeof out);
    if (n < 0)
        return;
    if ((size_t)n > sizeof out)
        abort();
    for (int i = 0; i < n; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            abort();
    int m = tg_host_normalize(tg_str(out, (size_t)n), again, sizeof again);
    if (m != n || memcmp(out, again, (size_t)n) != 0)
        abort();
}

static void check_rewrites(tg_str_t path)
{
    tg_arena_t a;
    tg_arena_init(&a, 1024);
    for (size_t i = 0; i < fz_fx.cfg.nroutes; i++) {
        tg_str_t out = tg_route_rewrite_path(&fz_fx.routes[i], path, &a);
        if (out.p == NULL)
            abort(); /* never OOM here */
        if (fz_fx.routes[i].rewrite.kind != TG_REWRITE_NONE && out.p != path.p &&
            (out.len == 0 || out.p[0] != '/'))
            abort();
    }
    tg_arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fz_router == NULL)
        setup();
    const char *p = (const char *)data;
    size_t n = size;
    check_host(tg_str(p, n));

    tg_str_t authority = next_field(&p, &n);
    tg_header_t hdr[2];
    tg_route_input_t in = { .method = next_field(&p, &n), .headers = hdr, .nheaders = 2 };
    in.path = next_field(&p, &n);
    in.query = next_field(&p, &n);
    hdr[0].name = next_field(&p, &n);
    hdr[0].value = next_field(&p, &n);
    hdr[1] = (tg_header_t){ TG_STR_LIT("X-Canary"), TG_STR_LIT("") };

    char host[256];
    check_host(authority);
    int hl = tg_host_normalize(authority, host, sizeof host);
    if (hl < 0) {
        /* Still route on something lowercase (the input contract). */
        hl = (int)(authority.len < sizeof host ? authority.len : sizeof host);
        for (int i = 0; i < hl; i++) {
            char c = authority.p[i];
            host[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
    }
    in.host = tg_str(host, (size_t)hl);

    if (tg_router_match(fz_router, &in) != tg__router_match_linear(fz_router, &in))
        abort();
    in.nheaders = 1;
    if (tg_router_match(fz_router, &in) != tg__router_match_linear(fz_router, &in))
        abort();
    check_rewrites(in.path);
    return 0;
}
