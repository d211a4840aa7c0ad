/* Hand-built configs for router tests and the router fuzzer: the YAML loader
 * is not involved, so router tests pin router behaviour only. Everything a
 * fixture allocates lives in its config arena, except compiled regexes,
 * which fx_free releases. Header-only on purpose (static inline functions): both the
 * unit test and the fuzzer include it. */
#ifndef TG_TESTS_ROUTER_FIXTURE_H
#define TG_TESTS_ROUTER_FIXTURE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/router.h"
#include "router/router_int.h"

#define FX_MAX_ROUTES 512
#define FX_MAX_REGEXES 256

typedef struct fx {
    tg_config_t cfg;
    tg_route_cfg_t *routes;            /* FX_MAX_ROUTES, calloc'd */
    pcre2_code *regexes[FX_MAX_REGEXES];
    size_t nregexes;
} fx_t;

static inline void fx_die(const char *what)
{
    fprintf(stderr, "router fixture: %s\n", what);
    abort();
}

static inline void fx_init(fx_t *f)
{
    memset(f, 0, sizeof *f);
    tg_arena_init(&f->cfg.arena, 4096);
    f->routes = calloc(FX_MAX_ROUTES, sizeof *f->routes);
    if (f->routes == NULL)
        fx_die("oom");
    f->cfg.routes = f->routes;
}

static inline void fx_free(fx_t *f)
{
    for (size_t i = 0; i < f->nregexes; i++)
        pcre2_code_free(f->regexes[i]);
    tg_arena_free(&f->cfg.arena);
    free(f->routes);
}

static inline tg_regex_t *fx_re(fx_t *f, const char *src)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (re == NULL || f->nregexes == FX_MAX_REGEXES)
        fx_die("bad regex or too many");
    f->regexes[f->nregexes++] = re;
    return re;
}

static inline const char *fx_str(fx_t *f, const char *s) { return tg_arena_strdup(&f->cfg.arena, s); }

/* Appends a route; `path` may be NULL. */
static inline tg_route_cfg_t *fx_route(fx_t *f, const char *path)
{
    if (f->cfg.nroutes == FX_MAX_ROUTES)
        fx_die("too many routes");
    tg_route_cfg_t *rt = &f->routes[f->cfg.nroutes];
    rt->index = f->cfg.nroutes++;
    rt->name = tg_arena_printf(&f->cfg.arena, "route-%zu", rt->index);
    rt->match.path = path ? fx_str(f, path) : NULL;
    return rt;
}

/* NULL-terminated list of host patterns. */
static inline void fx_hosts(fx_t *f, tg_route_cfg_t *rt, ...)
{
    va_list ap;
    size_t n = 0;
    va_start(ap, rt);
    while (va_arg(ap, const char *) != NULL)
        n++;
    va_end(ap);
    const char **v = tg_arena_alloc(&f->cfg.arena, (n ? n : 1) * sizeof *v);
    va_start(ap, rt);
    for (size_t i = 0; i < n; i++)
        v[i] = fx_str(f, va_arg(ap, const char *));
    va_end(ap);
    rt->match.hosts = v;
    rt->match.nhosts = n;
}

/* NULL-terminated list of extension method tokens. */
static inline void fx_other_methods(fx_t *f, tg_route_cfg_t *rt, ...)
{
    va_list ap;
    size_t n = 0;
    va_start(ap, rt);
    while (va_arg(ap, const char *) != NULL)
        n++;
    va_end(ap);
    const char **v = tg_arena_alloc(&f->cfg.arena, (n ? n : 1) * sizeof *v);
    va_start(ap, rt);
    for (size_t i = 0; i < n; i++)
        v[i] = fx_str(f, va_arg(ap, const char *));
    va_end(ap);
    rt->match.other_methods = v;
    rt->match.nother_methods = n;
}

/* Header matcher: `value` is the exact value, NULL for present, or "~re". */
static inline void fx_header(fx_t *f, tg_route_cfg_t *rt, const char *name, const char *value)
{
    tg_match_cfg_t *m = &rt->match;
    tg_header_match_cfg_t *v = tg_arena_alloc(&f->cfg.arena, (m->nheaders + 1) * sizeof *v);
    if (m->nheaders)
        memcpy(v, m->headers, m->nheaders * sizeof *v);
    tg_header_match_cfg_t *h = &v[m->nheaders];
    *h = (tg_header_match_cfg_t){ .name = fx_str(f, name), .kind = TG_HMATCH_PRESENT };
    if (value != NULL && value[0] == '~') {
        h->kind = TG_HMATCH_REGEX;
        h->value = fx_str(f, value + 1);
        h->regex = fx_re(f, value + 1);
    } else if (value != NULL) {
        h->kind = TG_HMATCH_EXACT;
        h->value = fx_str(f, value);
    }
    m->headers = v;
    m->nheaders++;
}

/* Query matcher, same value forms as fx_header. */
static inline void fx_query(fx_t *f, tg_route_cfg_t *rt, const char *name, const char *value)
{
    tg_match_cfg_t *m = &rt->match;
    tg_query_match_cfg_t *v = tg_arena_alloc(&f->cfg.arena, (m->nquery + 1) * sizeof *v);
    if (m->nquery)
        memcpy(v, m->query, m->nquery * sizeof *v);
    tg_query_match_cfg_t *q = &v[m->nquery];
    *q = (tg_query_match_cfg_t){ .name = fx_str(f, name), .kind = TG_HMATCH_PRESENT };
    if (value != NULL && value[0] == '~') {
        q->kind = TG_HMATCH_REGEX;
        q->value = fx_str(f, value + 1);
        q->regex = fx_re(f, value + 1);
    } else if (value != NULL) {
        q->kind = TG_HMATCH_EXACT;
        q->value = fx_str(f, value);
    }
    m->query = v;
    m->nquery++;
}

static inline void fx_path_regex(fx_t *f, tg_route_cfg_t *rt, const char *src)
{
    rt->match.path_regex_src = fx_str(f, src);
    rt->match.path_regex = fx_re(f, src);
}

static inline void fx_rewrite_strip(fx_t *f, tg_route_cfg_t *rt, const char *from)
{
    rt->rewrite = (tg_rewrite_cfg_t){ .kind = TG_REWRITE_STRIP_PREFIX, .from = fx_str(f, from) };
}

static inline void fx_rewrite_replace(fx_t *f, tg_route_cfg_t *rt, const char *from, const char *to)
{
    rt->rewrite = (tg_rewrite_cfg_t){ .kind = TG_REWRITE_REPLACE_PREFIX, .from = fx_str(f, from),
                                      .to = fx_str(f, to) };
}

static inline void fx_rewrite_regex(fx_t *f, tg_route_cfg_t *rt, const char *pattern, const char *replace)
{
    rt->rewrite = (tg_rewrite_cfg_t){ .kind = TG_REWRITE_REGEX, .pattern_src = fx_str(f, pattern),
                                      .pattern = fx_re(f, pattern), .replace = fx_str(f, replace) };
}

/* A request. Headers are "Name: value" strings split at the first ": ". */
typedef struct fx_req {
    tg_route_input_t in;
    tg_header_t hdrs[16];
} fx_req_t;

static inline void fx_req_init(fx_req_t *q, const char *method, const char *host, const char *path, const char *query)
{
    memset(q, 0, sizeof *q);
    q->in.method = tg_str_c(method);
    q->in.host = tg_str_c(host ? host : "");
    q->in.path = tg_str_c(path);
    q->in.query = tg_str_c(query ? query : "");
    q->in.headers = q->hdrs;
}

static inline void fx_req_header(fx_req_t *q, const char *line)
{
    const char *sep = strstr(line, ": ");
    if (sep == NULL || q->in.nheaders == 16)
        fx_die("bad header line");
    q->hdrs[q->in.nheaders++] = (tg_header_t){ tg_str(line, (size_t)(sep - line)), tg_str_c(sep + 2) };
}

#endif
