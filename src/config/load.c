/* tg_config_load: file → YAML tree → validated snapshot, collecting every
 * error. Also the snapshot's reference counting and the error list helpers.
 *
 * Order of work: the tree builder resolves YAML itself (aliases, merges,
 * duplicate keys); then server and admin are read in document order,
 * upstreams next, and routes last, because routes refer to upstreams by name.
 * Errors are sorted by position before they are handed out, so the report
 * reads top to bottom whatever order the sections were checked in. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "config/internal.h"

#include <errno.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TG__MAX_FILE_BYTES (16u << 20)

/* ---- errors ---- */

static void push_text(tg__ctx_t *cx, uint32_t line, uint32_t col, char *text)
{
    if (cx->nerrs == cx->errcap) {
        size_t ncap = cx->errcap ? cx->errcap * 2 : 8;
        tg__err_t *v = realloc(cx->errs, ncap * sizeof *v);
        if (v == NULL) {
            free(text);
            cx->oom = true;
            return;
        }
        cx->errs = v;
        cx->errcap = ncap;
    }
    cx->errs[cx->nerrs] = (tg__err_t){ line, col, cx->nerrs, text };
    cx->nerrs++;
}

void tg__err_at(tg__ctx_t *cx, uint32_t line, uint32_t col, const char *path, const char *msg)
{
    if (cx->nerrs >= TG__MAX_ERRORS) {
        cx->dropped++;
        return;
    }
    char *text;
    int n;
    const char *sep = path[0] ? ": " : "";
    if (line)
        n = asprintf(&text, "%s:%u:%u: %s%s%s", cx->file, line, col, path, sep, msg);
    else
        n = asprintf(&text, "%s: %s%s%s", cx->file, path, sep, msg);
    if (n < 0) {
        cx->oom = true;
        return;
    }
    /* Values are echoed in messages; keep terminal control bytes out. */
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    push_text(cx, line, col, text);
}

void tg__err(tg__ctx_t *cx, const tg__node_t *at, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg__err_at(cx, at ? at->line : 0, at ? at->col : 0, cx->path, msg);
}

void *tg__oom(tg__ctx_t *cx)
{
    cx->oom = true;
    return NULL;
}

const char *tg__resolve_path(tg__ctx_t *cx, const char *p)
{
    const char *slash = strrchr(cx->file, '/');
    if (p[0] == '/' || slash == NULL)
        return p;
    char *out = tg_arena_printf(&cx->cfg->arena, "%.*s/%s", (int)(slash - cx->file), cx->file, p);
    return out ? out : tg__oom(cx);
}

static void tree_err(void *ud, uint32_t line, uint32_t col, const char *path, const char *msg)
{
    tg__err_at(ud, line, col, path, msg);
}

static int cmp_err(const void *pa, const void *pb)
{
    const tg__err_t *a = pa, *b = pb;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void errs_add(tg_config_errors_t *errs, char *text)
{
    tg_config_error_t *v = text ? realloc(errs->v, (errs->n + 1) * sizeof *v) : NULL;
    if (v == NULL) { /* nothing better to do: the load fails either way */
        free(text);
        return;
    }
    errs->v = v;
    errs->v[errs->n++].text = text;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
    char *s;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

/* Moves the collected errors, sorted by position, to `errs`. */
static void flush_errors(tg__ctx_t *cx, tg_config_errors_t *errs)
{
    if (cx->nerrs > 1)
        qsort(cx->errs, cx->nerrs, sizeof *cx->errs, cmp_err);
    for (size_t i = 0; i < cx->nerrs; i++)
        errs_add(errs, cx->errs[i].text);
    if (cx->dropped)
        errs_add(errs, format("%s: %zu more errors not shown", cx->file, cx->dropped));
    if (cx->oom)
        errs_add(errs, format("%s: out of memory while loading the configuration", cx->file));
    free(cx->errs);
    cx->errs = NULL;
    cx->nerrs = 0;
}

/* ---- the top level ---- */

typedef struct top {
    tg__node_t *upstreams, *routes;
} top_t;

static void top_upstreams(tg__ctx_t *cx, tg__node_t *v, void *obj) { ((top_t *)obj)->upstreams = v; }
static void top_routes(tg__ctx_t *cx, tg__node_t *v, void *obj) { ((top_t *)obj)->routes = v; }

static const tg__key_t top_keys[] = {
    { "server", tg__load_server },
    { "admin", tg__load_admin },
    { "redis", tg__load_redis },
    { "cache", tg__load_cache },
    { "consumers", tg__load_consumers },
    { "htpasswd", tg__load_htpasswd },
    { "upstreams", top_upstreams },
    { "routes", top_routes },
    { NULL, NULL },
};
static const tg__schema_t top_schema = { "", top_keys, true };

static void load_root(tg__ctx_t *cx, tg__node_t *root)
{
    top_t top = { NULL, NULL };
    if (root != NULL && root->kind != TG__NODE_MAP) {
        tg__err(cx, root, "expected a mapping at the top level (server:, upstreams:, routes:, ...)");
        return;
    }
    tg__apply(cx, root, &top_schema, &top);
    tg__server_finish(cx);
    size_t mark = tg__path_key(cx, "upstreams");
    tg__load_upstreams(cx, top.upstreams);
    tg__path_pop(cx, mark);
    mark = tg__path_key(cx, "routes");
    tg__load_routes(cx, top.routes);
    tg__path_pop(cx, mark);
}

static tg_config_t *config_new(const char *name)
{
    tg_config_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    tg_arena_init(&c->arena, 16384);
    c->path = tg_arena_strdup(&c->arena, name);
    if (c->path == NULL) {
        free(c);
        return NULL;
    }
    tg__server_defaults(c);
    return c;
}

tg_config_t *tg_config_load_string(const char *name, const char *yaml, size_t len,
                                   tg_config_errors_t *errs)
{
    tg__ctx_t cx;
    memset(&cx, 0, sizeof cx);
    cx.file = name ? name : "<config>";
    cx.cfg = config_new(cx.file);
    if (cx.cfg == NULL) {
        errs_add(errs, format("%s: out of memory while loading the configuration", cx.file));
        return NULL;
    }
    tg__tree_t tree;
    if (tg__tree_parse(&tree, yaml, len, tree_err, &cx) == 0 && !cx.oom)
        load_root(&cx, tree.root);
    tg__tree_free(&tree);
    bool ok = cx.nerrs == 0 && cx.dropped == 0 && !cx.oom;
    flush_errors(&cx, errs);
    if (!ok) {
        tg_config_release(cx.cfg);
        return NULL;
    }
    return cx.cfg;
}

/* Reads a whole file of at most TG__MAX_FILE_BYTES; NULL with *msg set. */
static char *read_file(const char *path, size_t *len, char *msg, size_t cap)
{
    FILE *f = fopen(path, "rb");
    char eb[128];
    if (f == NULL) {
        snprintf(msg, cap, "cannot open: %s", strerror_r(errno, eb, sizeof eb));
        return NULL;
    }
    size_t n = 0, bufcap = 65536;
    char *buf = malloc(bufcap);
    while (buf != NULL) {
        n += fread(buf + n, 1, bufcap - n, f);
        if (n < bufcap || n > TG__MAX_FILE_BYTES)
            break;
        char *nb = realloc(buf, bufcap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        bufcap *= 2;
    }
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (buf == NULL)
        snprintf(msg, cap, "out of memory while reading the file");
    else if (rerr)
        snprintf(msg, cap, "cannot read: %s", strerror_r(rerr, eb, sizeof eb));
    else if (n > TG__MAX_FILE_BYTES)
        snprintf(msg, cap, "the file is larger than %u MiB", TG__MAX_FILE_BYTES >> 20);
    else {
        *len = n;
        return buf;
    }
    free(buf);
    return NULL;
}

tg_config_t *tg_config_load(const char *path, tg_config_errors_t *errs)
{
    char msg[256];
    size_t len = 0;
    char *buf = read_file(path, &len, msg, sizeof msg);
    if (buf == NULL) {
        errs_add(errs, format("%s: %s", path, msg));
        return NULL;
    }
    tg_config_t *c = tg_config_load_string(path, buf, len, errs);
    free(buf);
    return c;
}

/* ---- errors and lifetime ---- */

void tg_config_errors_free(tg_config_errors_t *errs)
{
    if (errs == NULL)
        return;
    for (size_t i = 0; i < errs->n; i++)
        free(errs->v[i].text);
    free(errs->v);
    errs->v = NULL;
    errs->n = 0;
}

void tg_config_errors_print(const tg_config_errors_t *errs, FILE *out)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(out, "%s\n", errs->v[i].text);
}

tg_config_t *tg_config_retain(tg_config_t *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void tg_config_release(tg_config_t *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->nregexes; i++)
        pcre2_code_free(c->regexes[i]);
    free(c->regexes);
    tg_arena_free(&c->arena);
    free(c);
}
