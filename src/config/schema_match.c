/* routes[].match and the header operations (request_headers/response_headers),
 * plus the path syntax check that match and rewrite share. */
#include "config/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- paths ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Request paths are normalised before routing (http/path.h): dot segments
 * removed, "//" merged, unreserved escapes decoded, other escapes in upper
 * case, %2F %5C %00 refused. A configured path outside that form could never
 * match, so it is refused here with the reason. */
static const char *path_problem(const char *p)
{
    if (p[0] != '/')
        return "must start with \"/\"";
    for (const char *s = p; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f)
            return "must not contain spaces or control characters";
        if (c == '?' || c == '#')
            return "must not contain '?' or '#' (match the query with query:)";
        if (c == '%') {
            int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
            if (hi < 0 || lo < 0)
                return "has an invalid percent-escape";
            int v = hi * 16 + lo;
            if ((s[1] >= 'a' && s[1] <= 'f') || (s[2] >= 'a' && s[2] <= 'f'))
                return "percent-escapes must use upper-case hex (requests are normalised so)";
            if ((v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') || (v >= '0' && v <= '9') || v == '-' ||
                v == '.' || v == '_' || v == '~')
                return "escapes an unreserved character (requests are normalised to the plain character)";
            if (v == '/' || v == '\\' || v == 0)
                return "contains %2F, %5C or %00, which requests are refused for";
        }
        if (c == '/' && s[1] == '/')
            return "must not contain \"//\" (requests are normalised to a single slash)";
        if (c == '/' && s[1] == '.' && (s[2] == '/' || s[2] == '\0' || (s[2] == '.' && (s[3] == '/' || s[3] == '\0'))))
            return "must not contain \".\" or \"..\" segments";
    }
    return NULL;
}

bool tg__check_path(tg__ctx_t *cx, tg__node_t *n, const char *path)
{
    const char *why = path_problem(path);
    if (why)
        tg__err(cx, n, "\"%s\" %s", path, why);
    return why == NULL;
}

/* ---- helpers ---- */

typedef struct name_ref {
    const char *name;
    tg__node_t *node;
} name_ref_t;

static int cmp_name_ci(const void *pa, const void *pb)
{
    const name_ref_t *a = pa, *b = pb;
    int c = strcasecmp(a->name, b->name);
    return c ? c : (a->node->line != b->node->line ? (a->node->line < b->node->line ? -1 : 1)
                                                     : (a->node->col < b->node->col ? -1 : a->node->col > b->node->col));
}

/* Header names are case-insensitive: "X-A" and "x-a" in one mapping is a
 * mistake YAML cannot see. Sorting keeps this O(n log n). */
static void check_ci_duplicates(tg__ctx_t *cx, tg__node_t *map)
{
    name_ref_t *refs = malloc((map->map.n ? map->map.n : 1) * sizeof *refs);
    if (refs == NULL) {
        tg__oom(cx);
        return;
    }
    for (size_t i = 0; i < map->map.n; i++)
        refs[i] = (name_ref_t){ map->map.v[i].key->sc.s, map->map.v[i].key };
    qsort(refs, map->map.n, sizeof *refs, cmp_name_ci);
    for (size_t i = 1; i < map->map.n; i++) {
        if (strcasecmp(refs[i].name, refs[i - 1].name) != 0)
            continue;
        size_t mark = tg__path_key(cx, refs[i].name);
        tg__err(cx, refs[i].node, "header \"%s\" given twice (names are case-insensitive; first at line %u)",
                refs[i].name, refs[i - 1].node->line);
        tg__path_pop(cx, mark);
    }
    free(refs);
}

/* ---- header operations ---- */

/* Fields the gateway itself manages: setting them would break message
 * framing or connection handling (RFC 9110 §7.6.1, RFC 9112 §6). */
static bool managed_header(const char *name, bool removing)
{
    static const char *const framing[] = { "Content-Length", "Transfer-Encoding" };
    static const char *const hop[] = { "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade" };
    for (size_t i = 0; i < 2; i++)
        if (strcasecmp(name, framing[i]) == 0)
            return true;
    for (size_t i = 0; i < 6 && !removing; i++)
        if (strcasecmp(name, hop[i]) == 0)
            return true;
    return false;
}

/* Reads a mapping of header name → value into kv[]; `what` names the use. */
static bool header_map(tg__ctx_t *cx, tg__node_t *v, bool check_managed, tg_kv_t **out, size_t *nout)
{
    if (tg__node_is_null(v))
        return true;
    if (v->kind != TG__NODE_MAP) {
        tg__err(cx, v, "expected a mapping of header names to values");
        return false;
    }
    tg_kv_t *kv = tg__alloc_array(cx, v->map.n, sizeof *kv);
    if (kv == NULL)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < v->map.n; i++) {
        tg__pair_t *p = &v->map.v[i];
        size_t mark = tg__path_key(cx, p->key->sc.s);
        const char *val;
        if (!tg__is_token(p->key->sc.s))
            tg__err(cx, p->key, "\"%s\" is not a valid header name", p->key->sc.s);
        else if (check_managed && managed_header(p->key->sc.s, false))
            tg__err(cx, p->key, "\"%s\" is managed by the gateway and cannot be set", p->key->sc.s);
        else if (tg__str(cx, p->value, &val)) {
            if (!tg__is_field_value(val))
                tg__err(cx, p->value, "header values must not contain CR, LF or other control characters");
            else
                kv[n++] = (tg_kv_t){ p->key->sc.s, val };
        }
        tg__path_pop(cx, mark);
    }
    check_ci_duplicates(cx, v);
    for (size_t i = 0; i < n; i++) /* names point into the tree until copied */
        if ((kv[i].name = tg__strdup(cx, kv[i].name)) == NULL)
            return false;
    *out = kv;
    *nout = n;
    return true;
}

static void ops_set(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_header_ops_cfg_t *o = obj;
    header_map(cx, v, true, &o->set, &o->nset);
}

static void ops_add(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_header_ops_cfg_t *o = obj;
    header_map(cx, v, true, &o->add, &o->nadd);
}

static void ops_remove(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_header_ops_cfg_t *o = obj;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    o->remove = tg__alloc_array(cx, n, sizeof *o->remove);
    if (o->remove == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        const char *name;
        if (tg__str(cx, items[i], &name)) {
            if (!tg__is_token(name))
                tg__err(cx, items[i], "\"%s\" is not a valid header name", name);
            else if (managed_header(name, true))
                tg__err(cx, items[i], "\"%s\" is managed by the gateway and cannot be removed", name);
            else
                o->remove[o->nremove++] = name;
        }
        tg__path_pop(cx, mark);
    }
}

static const tg__key_t ops_keys[] = {
    { "set", ops_set }, { "add", ops_add }, { "remove", ops_remove }, { NULL, NULL },
};
static const tg__schema_t ops_schema = { "routes[].headers", ops_keys, false };

void tg__load_header_ops(tg__ctx_t *cx, tg__node_t *n, void *ops) { tg__apply(cx, n, &ops_schema, ops); }

/* Response headers of respond: (same rules as set:). */
bool tg__header_map(tg__ctx_t *cx, tg__node_t *v, tg_kv_t **out, size_t *nout)
{
    return header_map(cx, v, true, out, nout);
}

/* ---- match ---- */

typedef struct match_obj {
    tg_match_cfg_t *m;
    unsigned npaths; /* how many of path, path_exact, path_regex */
} match_obj_t;

/* A bracketed IPv6 literal in the canonical text the router compares
 * request hosts in (inet_ntop's, router/host.c). */
static const char *ipv6_host(const char *h, char *out, size_t cap)
{
    char inner[INET6_ADDRSTRLEN], txt[INET6_ADDRSTRLEN];
    unsigned char a6[16];
    size_t len = strlen(h);
    if (len < 3 || len - 2 >= sizeof inner || h[len - 1] != ']')
        return "is not a valid [IPv6] host";
    memcpy(inner, h + 1, len - 2);
    inner[len - 2] = '\0';
    if (inet_pton(AF_INET6, inner, a6) != 1 || inet_ntop(AF_INET6, a6, txt, sizeof txt) == NULL)
        return "is not a valid [IPv6] host";
    snprintf(out, cap, "[%s]", txt);
    return NULL;
}

/* A host name (lower-cased into out), "*.example.com", or "[v6]". */
static const char *host_problem(const char *h, char *out, size_t cap)
{
    size_t len = strlen(h);
    if (len >= cap)
        return "is too long";
    if (h[0] == '[')
        return ipv6_host(h, out, cap);
    for (size_t i = 0; i <= len; i++)
        out[i] = (h[i] >= 'A' && h[i] <= 'Z') ? (char)(h[i] + 32) : h[i];
    const char *s = out;
    if (s[0] == '*') {
        if (s[1] != '.' || s[2] == '\0')
            return "wildcards are written \"*.example.com\" (a leading label only)";
        s += 2;
    }
    if (strchr(s, ':'))
        return "must not include a port (the Host port is ignored for routing)";
    size_t label = 0;
    for (; *s; s++) {
        char c = *s;
        if (c == '.') {
            if (label == 0)
                return "has an empty label";
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
            label++;
        } else {
            return c == '*' ? "wildcards are written \"*.example.com\" (a leading label only)"
                            : "is not a valid host name";
        }
    }
    return label == 0 ? "is not a valid host name" : NULL;
}

static void m_host(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_match_cfg_t *m = ((match_obj_t *)obj)->m;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    m->hosts = tg__alloc_array(cx, n, sizeof *m->hosts);
    if (m->hosts == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        const char *h, *why;
        char canon[256];
        if (tg__str_nonempty(cx, items[i], &h)) {
            if ((why = host_problem(h, canon, sizeof canon)) != NULL)
                tg__err(cx, items[i], "host \"%s\" %s", h, why);
            else if ((m->hosts[m->nhosts] = tg__strdup(cx, canon)) != NULL)
                m->nhosts++;
        }
        tg__path_pop(cx, mark);
    }
}

static void m_path(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    match_obj_t *o = obj;
    const char *p;
    o->npaths++;
    if (tg__str(cx, v, &p) && tg__check_path(cx, v, p))
        o->m->path = p;
}

static void m_path_exact(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    match_obj_t *o = obj;
    const char *p;
    o->npaths++;
    if (tg__str(cx, v, &p) && tg__check_path(cx, v, p))
        o->m->path_exact = p;
}

static void m_path_regex(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    match_obj_t *o = obj;
    const char *p;
    o->npaths++;
    if (tg__str_nonempty(cx, v, &p) && tg__regex(cx, v, p, &o->m->path_regex))
        o->m->path_regex_src = p;
}

static const struct { const char *name; uint32_t bit; } methods[] = {
    { "GET", TG_M_GET }, { "HEAD", TG_M_HEAD }, { "POST", TG_M_POST }, { "PUT", TG_M_PUT },
    { "DELETE", TG_M_DELETE }, { "PATCH", TG_M_PATCH }, { "OPTIONS", TG_M_OPTIONS },
    { "CONNECT", TG_M_CONNECT }, { "TRACE", TG_M_TRACE },
};

/* Methods are case-sensitive on the wire and registered in upper case;
 * "get" here can only mean GET, so names are upper-cased. */
static void add_method(tg__ctx_t *cx, tg__node_t *item, tg_match_cfg_t *m, size_t cap)
{
    const char *s;
    char *up;
    if (!tg__str(cx, item, &s))
        return;
    if (!tg__is_token(s)) {
        tg__err(cx, item, "\"%s\" is not a valid method name", s);
        return;
    }
    if ((up = tg__strdup(cx, s)) == NULL)
        return;
    for (char *p = up; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strcmp(up, methods[i].name) == 0) {
            m->methods |= methods[i].bit;
            return;
        }
    }
    for (size_t i = 0; i < m->nother_methods; i++)
        if (strcmp(m->other_methods[i], up) == 0)
            return;
    if (m->nother_methods < cap)
        m->other_methods[m->nother_methods++] = up;
}

static void m_methods(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_match_cfg_t *m = ((match_obj_t *)obj)->m;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    if (n == 0)
        tg__err(cx, v, "needs at least one method (leave methods out to match any)");
    m->other_methods = tg__alloc_array(cx, n, sizeof *m->other_methods);
    if (m->other_methods == NULL)
        return;
    for (size_t i = 0; i < n && !cx->oom; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        add_method(cx, items[i], m, n);
        tg__path_pop(cx, mark);
    }
}

/* "exact" | "present" | "~regex" → kind, value, regex. */
static bool value_match(tg__ctx_t *cx, tg__node_t *v, tg_hmatch_kind_t *kind, const char **value,
                        tg_regex_t **re)
{
    const char *s;
    if (!tg__str(cx, v, &s))
        return false;
    if (!tg__is_field_value(s)) {
        tg__err(cx, v, "must not contain CR, LF or other control characters");
        return false;
    }
    if (strcmp(s, "present") == 0) {
        *kind = TG_HMATCH_PRESENT;
        *value = NULL;
        return true;
    }
    if (s[0] == '~') {
        *kind = TG_HMATCH_REGEX;
        *value = s + 1;
        return tg__regex(cx, v, s + 1, re);
    }
    *kind = TG_HMATCH_EXACT;
    *value = s;
    return true;
}

static void m_headers(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_match_cfg_t *m = ((match_obj_t *)obj)->m;
    if (!tg__is_map(cx, v) || tg__node_is_null(v))
        return;
    m->headers = tg__alloc_array(cx, v->map.n, sizeof *m->headers);
    if (m->headers == NULL)
        return;
    for (size_t i = 0; i < v->map.n && !cx->oom; i++) {
        tg__pair_t *p = &v->map.v[i];
        size_t mark = tg__path_key(cx, p->key->sc.s);
        tg_header_match_cfg_t *h = &m->headers[m->nheaders];
        if (!tg__is_token(p->key->sc.s))
            tg__err(cx, p->key, "\"%s\" is not a valid header name", p->key->sc.s);
        else if (value_match(cx, p->value, &h->kind, &h->value, &h->regex) &&
                 (h->name = tg__strdup(cx, p->key->sc.s)) != NULL)
            m->nheaders++;
        tg__path_pop(cx, mark);
    }
    check_ci_duplicates(cx, v);
}

static void m_query(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_match_cfg_t *m = ((match_obj_t *)obj)->m;
    if (!tg__is_map(cx, v) || tg__node_is_null(v))
        return;
    m->query = tg__alloc_array(cx, v->map.n, sizeof *m->query);
    if (m->query == NULL)
        return;
    for (size_t i = 0; i < v->map.n && !cx->oom; i++) {
        tg__pair_t *p = &v->map.v[i];
        size_t mark = tg__path_key(cx, p->key->sc.s);
        tg_query_match_cfg_t *q = &m->query[m->nquery];
        const char *k = p->key->sc.s;
        if (k[0] == '\0' || strpbrk(k, "&=# ") != NULL || !tg__is_field_value(k))
            tg__err(cx, p->key, "\"%s\" is not a valid query parameter name", k);
        else if (value_match(cx, p->value, &q->kind, &q->value, &q->regex) &&
                 (q->name = tg__strdup(cx, k)) != NULL)
            m->nquery++;
        tg__path_pop(cx, mark);
    }
}

static void m_json(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_match_json(cx, v, ((match_obj_t *)obj)->m); /* schema_security.c */
}

static const tg__key_t match_keys[] = {
    { "host", m_host },
    { "path", m_path },
    { "path_exact", m_path_exact },
    { "path_regex", m_path_regex },
    { "methods", m_methods },
    { "headers", m_headers },
    { "query", m_query },
    { "json", m_json },
    { NULL, NULL },
};
static const tg__schema_t match_schema = { "routes[].match", match_keys, false };

void tg__load_match(tg__ctx_t *cx, tg__node_t *n, void *route)
{
    match_obj_t o = { &((tg_route_cfg_t *)route)->match, 0 };
    if (tg__apply(cx, n, &match_schema, &o) && o.npaths > 1)
        tg__err(cx, n, "give only one of path, path_exact and path_regex");
}
