/* Per-route matchers: host patterns, path, methods, headers, query. Pure
 * functions over the request slices; none allocates (regexes use the
 * thread's match data, see regex.c).
 *
 * Semantics (shared/spec/config.md, routes.match), all given matchers must hold:
 * - host: exact names, or "*.example.com" = one or more labels in front of
 *   example.com (not the apex); case-insensitive. A request without a host
 *   (empty) only matches routes without a host list.
 * - path: prefix at a segment boundary (tg__prefix_ok); path_exact: equality;
 *   path_regex: PCRE2 search (anchored only if the pattern anchors). All
 *   case-sensitive, on the normalised path. A regex that errors or hits the
 *   match limits (regex.c) does not match.
 * - methods: case-sensitive tokens. HEAD is NOT implied by GET: a GET-only
 *   route does not answer HEAD; list HEAD to serve it.
 * - headers: name case-insensitive; each field line of that name is tested
 *   on its own (exact value, case-sensitive / present / regex) and one that
 *   passes is enough. Values are compared as parsed, without list splitting.
 * - query: the raw query split on '&', each item on its first '=' (no '='
 *   = empty value). Names and values are percent-decoded for comparison;
 *   '+' stays '+' (RFC 3986, not form encoding) and a '%' without two hex
 *   digits stands for itself. Any one item that passes is enough. */
#include "router/router_int.h"

#include <jansson.h>
#include <stdlib.h>

#include <string.h>

unsigned tg__method_bit(tg_str_t m)
{
#define M(s, b) { s, sizeof(s) - 1, b }
    static const struct { const char *name; size_t len; unsigned bit; } tab[] = {
        M("GET", TG_M_GET),         M("POST", TG_M_POST),       M("HEAD", TG_M_HEAD),
        M("PUT", TG_M_PUT),         M("DELETE", TG_M_DELETE),   M("PATCH", TG_M_PATCH),
        M("OPTIONS", TG_M_OPTIONS), M("CONNECT", TG_M_CONNECT), M("TRACE", TG_M_TRACE),
    };
#undef M
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (m.len == tab[i].len && memcmp(m.p, tab[i].name, m.len) == 0)
            return tab[i].bit;
    return 0;
}

/* ---- host ---- */

int tg__host_pattern_fold(const char *pattern, char *out, size_t cap)
{
    size_t n = strlen(pattern);
    if (n > 1 && pattern[n - 1] == '.')
        n--; /* "example.com." names the same host as "example.com" */
    if (n > cap)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = pattern[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    return (int)n;
}

bool tg__host_pattern_matches(const char *pattern, tg_str_t host)
{
    if (host.len == 0)
        return false; /* no Host: only routes without a host list */
    tg_str_t p = tg_str_c(pattern);
    if (p.len > 1 && p.p[p.len - 1] == '.')
        p.len--;
    if (p.len >= 2 && p.p[0] == '*' && p.p[1] == '.') {
        tg_str_t suffix = tg_str(p.p + 2, p.len - 2);
        /* At least one byte before the dot: the apex itself is not admitted. */
        if (host.len < suffix.len + 2)
            return false;
        size_t dot = host.len - suffix.len - 1;
        return host.p[dot] == '.' && tg_str_ieq(tg_str(host.p + dot + 1, suffix.len), suffix);
    }
    return tg_str_ieq(p, host);
}

bool tg__route_host_ok(const tg_match_cfg_t *m, tg_str_t host)
{
    if (m->nhosts == 0)
        return true;
    for (size_t i = 0; i < m->nhosts; i++)
        if (tg__host_pattern_matches(m->hosts[i], host))
            return true;
    return false;
}

/* ---- path ---- */

bool tg__prefix_ok(tg_str_t prefix, tg_str_t path)
{
    if (prefix.len == 0)
        return true;
    if (!tg_str_has_prefix(path, prefix))
        return false;
    if (prefix.p[prefix.len - 1] == '/')
        return true;
    return path.len == prefix.len || path.p[prefix.len] == '/';
}

static bool path_ok(const tg_match_cfg_t *m, tg_str_t path)
{
    if (m->path != NULL && !tg__prefix_ok(tg_str_c(m->path), path))
        return false;
    if (m->path_exact != NULL && !tg_str_eq(tg_str_c(m->path_exact), path))
        return false;
    return true;
}

/* ---- methods ---- */

static bool method_ok(const tg_match_cfg_t *m, tg_str_t method, unsigned bit)
{
    if (m->methods == 0 && m->nother_methods == 0)
        return true;
    if (bit & m->methods)
        return true;
    for (size_t i = 0; i < m->nother_methods; i++)
        if (tg_str_eq(method, tg_str_c(m->other_methods[i])))
            return true;
    return false;
}

/* ---- headers ---- */

static bool field_value_ok(tg_hmatch_kind_t kind, const char *want, tg_regex_t *re, tg_str_t v)
{
    switch (kind) {
    case TG_HMATCH_PRESENT:
        return true;
    case TG_HMATCH_EXACT:
        return tg_str_eq(v, tg_str_c(want));
    case TG_HMATCH_REGEX:
        return tg__regex_run(re, v, NULL, NULL);
    }
    return false;
}

static bool header_ok(const tg_header_match_cfg_t *hm, const tg_header_t *h, size_t n)
{
    tg_str_t name = tg_str_c(hm->name);
    for (size_t i = 0; i < n; i++)
        if (tg_str_ieq(h[i].name, name) && field_value_ok(hm->kind, hm->value, hm->regex, h[i].value))
            return true;
    return false;
}

/* ---- query ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Decodes the byte at raw[*i] (advancing *i past it, or past its escape). */
static char pct_next(tg_str_t raw, size_t *i)
{
    char c = raw.p[*i];
    if (c == '%' && raw.len - *i >= 3) {
        int hi = hexval(raw.p[*i + 1]), lo = hexval(raw.p[*i + 2]);
        if (hi >= 0 && lo >= 0) {
            *i += 3;
            return (char)(hi << 4 | lo);
        }
    }
    (*i)++;
    return c;
}

/* Percent-decoded `raw` equals `lit`, without a buffer. */
static bool pct_eq(tg_str_t raw, tg_str_t lit)
{
    size_t i = 0, j = 0;
    while (i < raw.len) {
        if (j == lit.len || pct_next(raw, &i) != lit.p[j])
            return false;
        j++;
    }
    return j == lit.len;
}

static bool query_value_ok(const tg_query_match_cfg_t *qm, tg_str_t raw)
{
    if (qm->kind != TG_HMATCH_REGEX)
        return qm->kind == TG_HMATCH_PRESENT || pct_eq(raw, tg_str_c(qm->value));
    if (memchr(raw.p ? raw.p : "", '%', raw.len) == NULL)
        return tg__regex_run(qm->regex, raw, NULL, NULL);
    char buf[TG__QUERY_DECODE_MAX];
    size_t i = 0, n = 0;
    while (i < raw.len) {
        if (n == sizeof buf)
            return false; /* too long to decode here: documented as no match */
        buf[n++] = pct_next(raw, &i);
    }
    return tg__regex_run(qm->regex, tg_str(buf, n), NULL, NULL);
}

static bool query_ok(const tg_query_match_cfg_t *qm, tg_str_t q)
{
    if (q.len == 0)
        return false;
    tg_str_t name = tg_str_c(qm->name);
    size_t start = 0;
    for (size_t i = 0; i <= q.len; i++) {
        if (i < q.len && q.p[i] != '&')
            continue;
        tg_str_t item = tg_str(q.p + start, i - start);
        start = i + 1;
        if (item.len == 0)
            continue;
        const char *eq = memchr(item.p, '=', item.len);
        size_t nlen = eq ? (size_t)(eq - item.p) : item.len;
        tg_str_t val = eq ? tg_str(eq + 1, item.len - nlen - 1) : tg_str("", 0);
        if (pct_eq(tg_str(item.p, nlen), name) && query_value_ok(qm, val))
            return true;
    }
    return false;
}

/* ---- a whole route ---- */

/* RFC 6901: the value at `ptr` in doc, or NULL. */
static const json_t *json_at(const json_t *doc, const char *ptr)
{
    char seg[256];
    while (doc && *ptr == '/') {
        size_t n = 0;
        for (ptr++; *ptr && *ptr != '/'; ptr++) {
            char c = *ptr;
            if (c == '~') {
                c = ptr[1] == '1' ? '/' : '~';
                ptr++;
            }
            if (n + 1 >= sizeof seg)
                return NULL;
            seg[n++] = c;
        }
        seg[n] = '\0';
        if (json_is_object(doc)) {
            doc = json_object_get(doc, seg);
        } else if (json_is_array(doc) && n > 0 && strspn(seg, "0123456789") == n && (n == 1 || seg[0] != '0')) {
            doc = json_array_get(doc, strtoul(seg, NULL, 10));
        } else {
            doc = NULL;
        }
    }
    return doc;
}

/* A JSON value against the configured text: strings compare as text,
 * numbers numerically, true/false/null by name. */
static bool json_value_is(const json_t *v, const char *want)
{
    char *end;
    switch (json_typeof(v)) {
    case JSON_STRING: return strcmp(json_string_value(v), want) == 0;
    case JSON_INTEGER: case JSON_REAL: {
        double d = strtod(want, &end);
        return *want && *end == '\0' && d == json_number_value(v);
    }
    case JSON_TRUE: return strcmp(want, "true") == 0;
    case JSON_FALSE: return strcmp(want, "false") == 0;
    case JSON_NULL: return strcmp(want, "null") == 0;
    default: return false;
    }
}

static bool json_ok(const tg_json_match_cfg_t *jm, const void *doc)
{
    const json_t *v = doc ? json_at(doc, jm->pointer) : NULL;
    if (v == NULL)
        return false;
    switch (jm->kind) {
    case TG_HMATCH_PRESENT: return true;
    case TG_HMATCH_REGEX:
        return json_is_string(v) &&
               tg__regex_run(jm->regex, tg_str(json_string_value(v), json_string_length(v)), NULL, NULL);
    default: return json_value_is(v, jm->value);
    }
}

bool tg__route_rest_ok(const tg_match_cfg_t *m, const tg_route_input_t *in, unsigned method_bit)
{
    /* Cheapest and most selective tests first; regexes last. */
    if (!path_ok(m, in->path) || !method_ok(m, in->method, method_bit))
        return false;
    if (m->path_regex != NULL && !tg__regex_run(m->path_regex, in->path, NULL, NULL))
        return false;
    for (size_t i = 0; i < m->nheaders; i++)
        if (!header_ok(&m->headers[i], in->headers, in->nheaders))
            return false;
    for (size_t i = 0; i < m->nquery; i++)
        if (!query_ok(&m->query[i], in->query))
            return false;
    for (size_t i = 0; in->body_read && i < m->njson; i++)
        if (!json_ok(&m->json[i], in->json))
            return false;
    return true;
}
