/* The routes: section (match and header operations live in schema_match.c). */
#include "config/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TG__MAX_ROUTE_RETRIES 10

typedef struct route_obj {
    tg_route_cfg_t *r;
    tg__node_t *name, *upstream, *respond;
    tg__node_t *proxy_only;  /* first key that needs an upstream (rewrite, ...) */
    const char *proxy_only_key;
} route_obj_t;

static void note_proxy_only(route_obj_t *o, tg__node_t *v, const char *key)
{
    if (o->proxy_only == NULL) {
        o->proxy_only = v;
        o->proxy_only_key = key;
    }
}

/* ---- name, upstream ---- */

static void r_name(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    route_obj_t *o = obj;
    const char *s;
    o->name = v;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    if (strlen(s) > 128 || !tg__is_field_value(s) || strchr(s, '\t'))
        tg__err(cx, v, "a route name is at most 128 characters without control characters");
    else
        o->r->name = s;
}

/* "users, billing" (file order), shortened when long. */
static void defined_names(const tg_config_t *c, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->nupstreams && len + 1 < cap; i++) {
        int w = i < 10 ? snprintf(out + len, cap - len, "%s%s", i ? ", " : "", c->upstreams[i].name)
                       : snprintf(out + len, cap - len, ", ... %zu more", c->nupstreams - 10);
        if (w < 0)
            break;
        len += (size_t)w;
        if (i >= 10)
            break;
    }
}

static void r_upstream(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    route_obj_t *o = obj;
    const char *s;
    o->upstream = v;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    o->r->upstream = tg__upstream_find(cx, s);
    if (o->r->upstream != NULL || cx->oom)
        return;
    if (cx->cfg->nupstreams == 0) {
        tg__err(cx, v, "no upstream named \"%s\" (no upstreams are defined)", s);
        return;
    }
    char names[600];
    defined_names(cx->cfg, names, sizeof names);
    tg__err(cx, v, "no upstream named \"%s\" (defined: %s)", s, names);
}

/* ---- respond ---- */

static void rs_status(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t st;
    if (tg__uint(cx, v, 200, 599, &st))
        ((tg_respond_cfg_t *)obj)->status = (int)st;
}

static void rs_body(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_respond_cfg_t *r = obj;
    const char *b;
    if (tg__node_is_null(v)) /* body: (nothing) = empty */
        return;
    if (tg__str(cx, v, &b)) {
        r->body = b;
        r->body_len = strlen(b);
    }
}

static void rs_headers(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_respond_cfg_t *r = obj;
    tg__header_map(cx, v, &r->headers, &r->nheaders);
}

static const tg__key_t respond_keys[] = {
    { "status", rs_status }, { "body", rs_body }, { "headers", rs_headers }, { NULL, NULL },
};
static const tg__schema_t respond_schema = { "routes[].respond", respond_keys, false };

static void r_respond(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    route_obj_t *o = obj;
    tg_respond_cfg_t *rs = &o->r->respond;
    o->respond = v;
    o->r->has_respond = true;
    rs->status = 200;
    if (!tg__apply(cx, v, &respond_schema, rs))
        return;
    /* RFC 9110 §6.4.1: these statuses never carry content. */
    if (rs->body_len && (rs->status == 204 || rs->status == 304))
        tg__err(cx, v, "a %d response has no body", rs->status);
}

/* ---- rewrite ---- */

static void rw_strip_prefix(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_rewrite_cfg_t *rw = obj;
    const char *p;
    if (rw->kind != TG_REWRITE_NONE)
        tg__err(cx, v, "give only one of strip_prefix, replace_prefix and regex");
    else if (tg__str(cx, v, &p) && tg__check_path(cx, v, p)) {
        rw->kind = TG_REWRITE_STRIP_PREFIX;
        rw->from = p;
    }
}

static void rp_from(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *p;
    if (tg__str(cx, v, &p) && tg__check_path(cx, v, p))
        ((tg_rewrite_cfg_t *)obj)->from = p;
}

static void rp_to(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *p;
    if (tg__str(cx, v, &p) && tg__check_path(cx, v, p))
        ((tg_rewrite_cfg_t *)obj)->to = p;
}

static const tg__key_t replace_prefix_keys[] = { { "from", rp_from }, { "to", rp_to }, { NULL, NULL } };
static const tg__schema_t replace_prefix_schema = { "routes[].rewrite.replace_prefix", replace_prefix_keys, false };

static void rw_replace_prefix(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_rewrite_cfg_t *rw = obj;
    if (rw->kind != TG_REWRITE_NONE) {
        tg__err(cx, v, "give only one of strip_prefix, replace_prefix and regex");
        return;
    }
    tg_rewrite_cfg_t tmp = { .kind = TG_REWRITE_REPLACE_PREFIX };
    if (!tg__apply(cx, v, &replace_prefix_schema, &tmp) || tg__node_is_null(v)) {
        if (tg__node_is_null(v))
            tg__err(cx, v, "expected a mapping with from: and to:");
        return;
    }
    if (tg__map_get(v, "from") == NULL || tg__map_get(v, "to") == NULL)
        tg__err(cx, v, "needs both from: and to:");
    else if (tmp.from && tmp.to)
        *rw = tmp;
}

static void rx_pattern(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_rewrite_cfg_t *rw = obj;
    const char *p;
    if (tg__str_nonempty(cx, v, &p) && tg__regex(cx, v, p, &rw->pattern))
        rw->pattern_src = p;
}

static void rx_replace(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *p;
    if (tg__str(cx, v, &p))
        ((tg_rewrite_cfg_t *)obj)->replace = p;
}

static const tg__key_t regex_keys[] = { { "pattern", rx_pattern }, { "replace", rx_replace }, { NULL, NULL } };
static const tg__schema_t regex_schema = { "routes[].rewrite.regex", regex_keys, false };

/* "$0".."$9" must name groups the pattern has ($0 = the whole match); "$$"
 * is a literal dollar (written "$$$$" in the file, since ${ENV} expansion
 * turns "$$" into "$" first); any other '$' stands for itself. The same
 * rules as tg_route_rewrite_path (router/rewrite.c). */
static void check_replacement(tg__ctx_t *cx, tg__node_t *n, const tg_rewrite_cfg_t *rw)
{
    uint32_t groups = tg__regex_captures(rw->pattern);
    for (const char *s = rw->replace; *s; s++) {
        if (*s != '$')
            continue;
        if (s[1] >= '0' && s[1] <= '9' && (uint32_t)(s[1] - '0') > groups) {
            tg__err(cx, n, "replace uses $%c but the pattern has %u capture group%s", s[1], groups,
                    groups == 1 ? "" : "s");
            return;
        }
        if (s[1] == '$' || (s[1] >= '0' && s[1] <= '9'))
            s++;
    }
}

static void rw_regex(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_rewrite_cfg_t *rw = obj;
    if (rw->kind != TG_REWRITE_NONE) {
        tg__err(cx, v, "give only one of strip_prefix, replace_prefix and regex");
        return;
    }
    tg_rewrite_cfg_t tmp = { .kind = TG_REWRITE_REGEX };
    if (!tg__apply(cx, v, &regex_schema, &tmp) || tg__node_is_null(v)) {
        if (tg__node_is_null(v))
            tg__err(cx, v, "expected a mapping with pattern: and replace:");
        return;
    }
    if (tg__map_get(v, "pattern") == NULL || tg__map_get(v, "replace") == NULL)
        tg__err(cx, v, "needs both pattern: and replace:");
    else if (tmp.pattern && tmp.replace) {
        size_t mark = tg__path_key(cx, "replace");
        check_replacement(cx, tg__map_get(v, "replace"), &tmp);
        tg__path_pop(cx, mark);
        *rw = tmp;
    }
}

static const tg__key_t rewrite_keys[] = {
    { "strip_prefix", rw_strip_prefix },
    { "replace_prefix", rw_replace_prefix },
    { "regex", rw_regex },
    { NULL, NULL },
};
static const tg__schema_t rewrite_schema = { "routes[].rewrite", rewrite_keys, false };

static void r_rewrite(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    route_obj_t *o = obj;
    note_proxy_only(o, v, "rewrite");
    if (tg__apply(cx, v, &rewrite_schema, &o->r->rewrite) && o->r->rewrite.kind == TG_REWRITE_NONE &&
        v->kind == TG__NODE_MAP && v->map.n == 0)
        tg__err(cx, v, "give one of strip_prefix, replace_prefix or regex");
}

/* ---- headers, timeouts, limits, retries ---- */

static void r_request_headers(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    route_obj_t *o = obj;
    note_proxy_only(o, v, "request_headers");
    tg__load_header_ops(cx, v, &o->r->request_headers);
}

static void r_response_headers(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_header_ops(cx, v, &((route_obj_t *)obj)->r->response_headers);
}

static void rt_response(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 1, &((tg_route_cfg_t *)obj)->response_timeout_ms);
}

static void rl_max_body_bytes(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__size(cx, v, 1, UINT64_MAX >> 1, &((tg_route_cfg_t *)obj)->max_body_bytes);
}

static void rr_attempts(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_route_cfg_t *r = obj;
    uint64_t n;
    if (tg__uint(cx, v, 0, TG__MAX_ROUTE_RETRIES, &n)) {
        r->has_retries = true;
        r->retry_attempts = (uint32_t)n;
    }
}

static const tg__key_t rtimeouts_keys[] = { { "response", rt_response }, { NULL, NULL } };
static const tg__schema_t rtimeouts_schema = { "routes[].timeouts", rtimeouts_keys, false };
static const tg__key_t rlimits_keys[] = { { "max_body_bytes", rl_max_body_bytes }, { NULL, NULL } };
static const tg__schema_t rlimits_schema = { "routes[].limits", rlimits_keys, false };
static const tg__key_t rretries_keys[] = { { "attempts", rr_attempts }, { NULL, NULL } };
static const tg__schema_t rretries_schema = { "routes[].retries", rretries_keys, false };

static void r_timeouts(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    route_obj_t *o = obj;
    note_proxy_only(o, v, "timeouts");
    tg__apply(cx, v, &rtimeouts_schema, o->r);
}

static void r_limits(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__apply(cx, v, &rlimits_schema, ((route_obj_t *)obj)->r);
}

static void r_retries(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    route_obj_t *o = obj;
    note_proxy_only(o, v, "retries");
    tg__apply(cx, v, &rretries_schema, o->r);
}

static void r_match(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_match(cx, v, ((route_obj_t *)obj)->r);
}

/* Security keys (schema_security.c). */
static void r_auth(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__load_auth(cx, v, ((route_obj_t *)obj)->r); }
static void r_allow(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__load_allow(cx, v, ((route_obj_t *)obj)->r); }
static void r_deny(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__load_deny(cx, v, ((route_obj_t *)obj)->r); }
static void r_validate(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__load_validate(cx, v, ((route_obj_t *)obj)->r); }

static void r_rate_limit(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__load_rate_limits(cx, v, ((route_obj_t *)obj)->r);
}

static void r_cache(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    route_obj_t *o = obj;
    note_proxy_only(o, v, "cache");
    tg__load_route_cache(cx, v, o->r);
}

/* ---- one route ---- */

/* schema_upstream_tls.c: keys that depend on the upstream's protocol. */
static void r_websocket(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    note_proxy_only(obj, v, "websocket");
    tg__load_route_websocket(cx, v, ((route_obj_t *)obj)->r);
}

static void r_grpc_web(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    note_proxy_only(obj, v, "grpc_web");
    tg__load_route_grpc_web(cx, v, ((route_obj_t *)obj)->r);
}

static const tg__key_t route_keys[] = {
    { "name", r_name },
    { "match", r_match },
    { "upstream", r_upstream },
    { "respond", r_respond },
    { "rewrite", r_rewrite },
    { "request_headers", r_request_headers },
    { "response_headers", r_response_headers },
    { "timeouts", r_timeouts },
    { "limits", r_limits },
    { "retries", r_retries },
    { "rate_limit", r_rate_limit },
    { "auth", r_auth },
    { "allow", r_allow },
    { "deny", r_deny },
    { "validate", r_validate },
    { "cache", r_cache },
    { "websocket", r_websocket },
    { "grpc_web", r_grpc_web },
    { NULL, NULL },
};
static const tg__schema_t route_schema = { "routes[]", route_keys, false };

static void load_route(tg__ctx_t *cx, tg__node_t *n, tg_route_cfg_t *r, size_t index, tg__node_t **name_node)
{
    route_obj_t o = { .r = r };
    r->index = index;
    if (n->kind != TG__NODE_MAP) {
        tg__err(cx, n, "expected a mapping (a route)");
        return;
    }
    tg__apply(cx, n, &route_schema, &o);
    *name_node = o.name ? o.name : n;
    if (r->name == NULL && (r->name = tg_arena_printf(&cx->cfg->arena, "route-%zu", index)) == NULL)
        tg__oom(cx);
    if ((o.upstream != NULL) == (o.respond != NULL))
        tg__err(cx, n, "a route needs exactly one of upstream or respond");
    else if (o.respond && o.proxy_only) {
        size_t mark = tg__path_key(cx, o.proxy_only_key);
        tg__err(cx, o.proxy_only, "has no effect on a route that uses respond");
        tg__path_pop(cx, mark);
    }
    tg__route_protocol_finish(cx, n, r);
}

typedef struct name_ref {
    const char *name;
    size_t index;
} name_ref_t;

static int cmp_route_name(const void *pa, const void *pb)
{
    const name_ref_t *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    return c ? c : (a->index < b->index ? -1 : a->index > b->index);
}

/* Names label metrics and logs, so they must be unique (generated ones too). */
static void check_duplicate_names(tg__ctx_t *cx, tg__node_t **name_nodes)
{
    tg_config_t *c = cx->cfg;
    name_ref_t *refs = malloc((c->nroutes ? c->nroutes : 1) * sizeof *refs);
    size_t n = 0;
    if (refs == NULL) {
        tg__oom(cx);
        return;
    }
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].name)
            refs[n++] = (name_ref_t){ c->routes[i].name, i };
    qsort(refs, n, sizeof *refs, cmp_route_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i].name, refs[i - 1].name) != 0)
            continue;
        size_t mark = tg__path_index(cx, refs[i].index);
        tg__path_key(cx, "name");
        tg__err(cx, name_nodes[refs[i].index], "duplicate route name \"%s\" (also routes[%zu])", refs[i].name,
                refs[i - 1].index);
        tg__path_pop(cx, mark);
    }
    free(refs);
}

void tg__load_routes(tg__ctx_t *cx, tg__node_t *n)
{
    tg__node_t **items;
    size_t count;
    if (!tg__list(cx, n, false, &items, &count))
        return;
    tg_config_t *c = cx->cfg;
    c->routes = tg__alloc_array(cx, count, sizeof *c->routes);
    tg__node_t **name_nodes = calloc(count ? count : 1, sizeof *name_nodes);
    if (c->routes == NULL || name_nodes == NULL) {
        free(name_nodes);
        tg__oom(cx);
        return;
    }
    for (size_t i = 0; i < count && !cx->oom; i++) {
        size_t mark = tg__path_index(cx, i);
        name_nodes[i] = items[i];
        load_route(cx, items[i], &c->routes[i], i, &name_nodes[i]);
        tg__path_pop(cx, mark);
        c->nroutes = i + 1;
    }
    if (!cx->oom)
        check_duplicate_names(cx, name_nodes);
    free(name_nodes);
}
