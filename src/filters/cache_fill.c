/* The cache filter, response side: what is stored and how fresh it is
 * (RFC 9111 §3, §4.2), capture of the body while it streams (stopping past
 * max_object_bytes), revalidation with the origin (§4.3: a 304 refreshes the
 * stored response and the client gets it whole), stale-if-error, and
 * invalidation by unsafe methods (§4.4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "filters/cache.h"
#include "filters/cache_int.h"

static tg_cache_ex_t *state_of(tg_exchange_t *ex)
{
    return *tg_ex_filter_slot(ex, tg_cache_filter_index());
}

void tg__cache_fill_end(tg_cache_ex_t *st)
{
    if (st->fill) {
        tg_cache_fill_done(st->rt->store, st->fill);
        st->fill = NULL;
    }
}

/* ---- what a response is, as the store sees it ---- */

static int64_t header_date(const tg_header_t *h, size_t n, const char *name, bool *present)
{
    const tg_header_t *f = tg_headers_find(h, n, name);
    if (present)
        *present = f != NULL;
    return f ? tg_http_date_parse(tg_str_trim_ows(f->value)) : -1;
}

static int64_t header_age_ms(const tg_header_t *h, size_t n)
{
    const tg_header_t *f = tg_headers_find(h, n, "age");
    if (f == NULL)
        return -1;
    tg_str_t v = tg_str_trim_ows(f->value);
    int64_t x = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        if (x < 2147483648ll)
            x = x * 10 + (v.p[i] - '0');
    }
    return v.len ? x * 1000 : -1;
}

/* Vary names, lowercased and ','-joined into the arena; false for "*". */
static bool vary_names(tg_exchange_t *ex, const tg_header_t *h, size_t n, const char **out)
{
    char buf[512];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (!tg_str_ieq_c(h[i].name, "vary"))
            continue;
        tg_str_t v = h[i].value;
        for (size_t p = 0; p < v.len;) {
            size_t e = p;
            while (e < v.len && v.p[e] != ',')
                e++;
            tg_str_t name = tg_str_trim_ows(tg_str(v.p + p, e - p));
            p = e + 1;
            if (name.len == 1 && name.p[0] == '*')
                return false;
            if (name.len == 0)
                continue;
            if (o + name.len + 2 > sizeof buf)
                return false;
            if (o)
                buf[o++] = ',';
            for (size_t k = 0; k < name.len; k++)
                buf[o++] = (char)((name.p[k] >= 'A' && name.p[k] <= 'Z') ? name.p[k] + 32 : name.p[k]);
        }
    }
    buf[o] = '\0';
    *out = tg_arena_strdup(tg_exchange_arena(ex), buf);
    return *out != NULL;
}

static size_t split_tags(tg_str_t v, tg_str_t *tags, size_t n, size_t cap)
{
    size_t i = 0;
    if (v.p == NULL)
        return n;
    while (i < v.len && n < cap) {
        while (i < v.len && (v.p[i] == ',' || v.p[i] == ' ' || v.p[i] == '\t'))
            i++;
        size_t s = i;
        while (i < v.len && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
            i++;
        if (i > s)
            tags[n++] = tg_str(v.p + s, i - s);
    }
    return n;
}

/* Fills st->init (everything but headers and body) for a response with
 * these fields; false when it must not be stored. */
static bool describe(tg_cache_ex_t *st, int status, const tg_header_t *h, size_t n)
{
    const tg_cache_cfg_t *cfg = st->rt->cfg;
    tg_cc_t cc;
    tg_cc_from_headers(&cc, h, n);
    bool origin = cfg->respect_origin;
    if (!tg__cache_status_ok(cfg, status))
        return false;
    if (origin && (cc.flags & (TG_CC_NO_STORE | TG_CC_PRIVATE)))
        return false;
    if (st->req_auth && !tg_cache_auth_storable(&cc)) /* §3.5, whatever respect_origin says */
        return false;
    if (!cfg->store_set_cookie && tg_headers_find(h, n, "set-cookie"))
        return false;
    const char *vary = "";
    if (origin && !vary_names(st->ex, h, n, &vary))
        return false; /* Vary: * (or absurdly long) */
    char vbuf[TG_CACHE_MAX_VARIANT];
    size_t vlen = 0;
    if (!tg__cache_variant(st->ex, vary, vbuf, sizeof vbuf, &vlen))
        return false;
    bool exp_present;
    int64_t now = tg__cache_now();
    tg_fresh_in_t in = { .status = status, .cc = &cc, .date = header_date(h, n, "date", NULL),
                         .expires = header_date(h, n, "expires", &exp_present),
                         .last_modified = header_date(h, n, "last-modified", NULL),
                         .age = header_age_ms(h, n), .request_time = st->t_req, .response_time = now,
                         .default_ttl = (int64_t)cfg->ttl_ms };
    if (exp_present && in.expires < 0)
        in.expires = 0; /* an invalid Expires means "already expired" (§5.3) */
    tg_cc_t none;
    tg_cc_init(&none);
    if (!origin) { /* respect_origin: false: the route's ttl decides alone */
        in.cc = &none;
        in.expires = -1;
        in.last_modified = -1;
    }
    int64_t lifetime = tg_cache_freshness_lifetime(&in);
    uint32_t flags = 0;
    if (origin && (cc.flags & TG_CC_NO_CACHE))
        flags |= TG_COBJ_NO_CACHE;
    if (origin && (cc.flags & (TG_CC_MUST_REVALIDATE | TG_CC_PROXY_REVALIDATE)))
        flags |= TG_COBJ_MUST_REVALIDATE;
    bool validators = tg_headers_find(h, n, "etag") || tg_headers_find(h, n, "last-modified");
    if (lifetime <= 0 && !validators)
        return false; /* could never be used */
    size_t ntags = 0;
    for (size_t i = 0; cfg->tags_header && i < n; i++)
        if (tg_str_ieq_c(h[i].name, cfg->tags_header))
            ntags = split_tags(tg_arena_str_dup(tg_exchange_arena(st->ex), h[i].value), st->tags, ntags,
                               TG_CACHE_MAX_TAGS); /* copied: the head's bytes are reused */
    const tg_ex_request_t *r = tg_ex_request(st->ex);
    st->init = (tg_cobj_init_t){
        .key = st->key, .variant = tg_arena_str_dup(tg_exchange_arena(st->ex), tg_str(vbuf, vlen)),
        .vary = tg_str_c(vary), .host = r->host, .uri = st->uri, .tags = st->tags, .ntags = ntags,
        .status = status, .response_time = now, .initial_age = origin ? tg_cache_initial_age(&in) : 0,
        .lifetime = lifetime,
        .swr = origin && cc.stale_while_revalidate >= 0 ? cc.stale_while_revalidate * 1000
                                                        : (int64_t)cfg->stale_while_revalidate_ms,
        .sie = origin && cc.stale_if_error >= 0 ? cc.stale_if_error * 1000 : (int64_t)cfg->stale_if_error_ms,
        .flags = flags,
    };
    return st->init.variant.p != NULL || vlen == 0;
}

/* The fields kept with a stored response: not Age (recomputed), not the
 * per-answer ones, not framing. */
static bool kept_field(tg_str_t name)
{
    static const char *const drop[] = { "age", "x-request-id", "cache-status", "content-length",
                                        "transfer-encoding", "connection", "keep-alive" };
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
        if (tg_str_ieq_c(name, drop[i]))
            return false;
    return !tg_http_is_hop_by_hop(name);
}

/* Deep copy: the response head's slices point into the upstream
 * connection's read buffer, which is reused before the body ends. */
static tg_header_t *snapshot(tg_exchange_t *ex, const tg_header_t *h, size_t n, size_t *out_n)
{
    tg_arena_t *a = tg_exchange_arena(ex);
    tg_header_t *v = tg_arena_alloc(a, (n + 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++) {
        if (!kept_field(h[i].name))
            continue;
        v[k].name = tg_arena_str_dup(a, h[i].name);
        v[k].value = tg_arena_str_dup(a, h[i].value);
        if (v[k].name.p == NULL || v[k].value.p == NULL)
            return NULL;
        k++;
    }
    *out_n = k;
    return v;
}

/* ---- response head ---- */

static void decorate(tg_cache_ex_t *st)
{
    tg_exchange_t *ex = st->ex;
    if (st->served) {
        char age[24];
        int l = snprintf(age, sizeof age, "%lld", (long long)(tg_cobj_age(st->served, tg__cache_now()) / 1000));
        tg_ex_resp_header_set(ex, "Age", tg_str(age, (size_t)l));
    }
    if (st->status_text)
        tg_ex_resp_header_set(ex, "Cache-Status", tg_str_c(st->status_text));
}

static void invalidate_location(tg_cache_ex_t *st, const tg_header_t *f)
{
    if (f == NULL)
        return;
    tg_str_t v = tg_str_trim_ows(f->value), host = tg_ex_request(st->ex)->host;
    static const char *const schemes[] = { "http://", "https://" };
    for (size_t i = 0; i < 2; i++) { /* absolute: same host only (§4.4) */
        tg_str_t s = tg_str_c(schemes[i]);
        if (tg_str_has_prefix(v, s) && v.len > s.len + host.len &&
            tg_str_ieq(tg_str(v.p + s.len, host.len), host) && v.p[s.len + host.len] == '/')
            v = tg_str(v.p + s.len + host.len, v.len - s.len - host.len);
    }
    if (v.len && v.p[0] == '/')
        tg_cache_purge_uri(st->rt->store, host, v);
}

void tg__cache_on_response_head(tg_exchange_t *ex, void *state, int status)
{
    (void)state;
    tg_cache_ex_t *st = state_of(ex);
    if (st == NULL)
        return;
    size_t n;
    const tg_header_t *h = tg_ex_resp_headers(ex, &n);
    switch (st->mode) {
    case TG_CM_BYPASS:
        st->status_text = "tollgate; fwd=method";
        break;
    case TG_CM_INVALIDATE:
        if (status >= 200 && status < 400) {
            tg_cache_purge_uri(st->rt->store, tg_ex_request(ex)->host, st->uri);
            invalidate_location(st, tg_headers_find(h, n, "location"));
            invalidate_location(st, tg_headers_find(h, n, "content-location"));
        }
        return;
    case TG_CM_SERVE:
    case TG_CM_PASS:
        break;
    case TG_CM_FETCH:
    case TG_CM_REVALIDATE:
        st->status = status;
        if (st->key.p && describe(st, status, h, n) && (st->hdrs = snapshot(ex, h, n, &st->nhdrs))) {
            st->capture = true;
        } else {
            tg__cache_fill_end(st); /* waiters fetch for themselves */
        }
        st->status_text = tg_arena_printf(tg_exchange_arena(ex), "%s; fwd-status=%d%s",
                                          st->status_text ? st->status_text : "tollgate; fwd=miss",
                                          status, st->capture ? "; stored" : "");
        break;
    }
    decorate(st);
}

void tg__cache_on_response_body(tg_exchange_t *ex, void *state, const char *p, size_t n)
{
    (void)state;
    tg_cache_ex_t *st = state_of(ex);
    if (st == NULL || !st->capture || n == 0)
        return;
    uint64_t max = st->rt->cfg->max_object_bytes;
    if (st->len + n > max) { /* too large: it streams through, unstored */
        st->capture = false;
        free(st->buf);
        st->buf = NULL;
        tg__cache_fill_end(st);
        return;
    }
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16384;
        while (cap < st->len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *b = realloc(st->buf, cap);
        if (b == NULL) {
            st->capture = false;
            free(st->buf);
            st->buf = NULL;
            tg__cache_fill_end(st);
            return;
        }
        st->buf = b;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, p, n);
    st->len += n;
}

void tg__cache_finish(tg_cache_ex_t *st, bool complete)
{
    if (st->capture && complete) {
        st->capture = false;
        st->init.headers = st->hdrs;
        st->init.nheaders = st->nhdrs;
        st->init.body = st->buf; /* ownership passes, even on failure */
        st->init.body_len = st->len;
        st->buf = NULL;
        tg_cobj_t *o = tg_cobj_new(&st->init);
        if (o)
            tg_cache_insert(st->rt->store, o);
        if (st->obj && st->mode == TG_CM_REVALIDATE) /* replaced, whatever its variant */
            tg_cache_remove(st->rt->store, st->obj);
    }
    free(st->buf);
    st->buf = NULL;
    st->capture = false;
    tg__cache_fill_end(st);
}

/* ---- revalidation and stale-if-error (the exchange's substitution hook) ---- */

static bool stale_if_error_ok(const tg_cache_ex_t *st)
{
    const tg_cobj_t *o = st->obj;
    if (o->flags & (TG_COBJ_MUST_REVALIDATE | TG_COBJ_NO_CACHE))
        return false;
    return tg_cobj_age(o, tg__cache_now()) - o->lifetime <= o->sie;
}

static bool subst_claim(tg_exchange_t *ex, void *arg, const tg_response_t *resp, int err)
{
    (void)err;
    tg_cache_ex_t *st = arg;
    if (st->obj == NULL)
        return false;
    if (resp && resp->status == 304) {
        tg_arena_t *a = tg_exchange_arena(ex);
        st->h304 = tg_arena_alloc(a, (resp->nheaders + 1) * sizeof *st->h304);
        for (size_t i = 0; st->h304 && i < resp->nheaders; i++) {
            if (!kept_field(resp->headers[i].name))
                continue;
            st->h304[st->n304].name = tg_arena_str_dup(a, resp->headers[i].name);
            st->h304[st->n304].value = tg_arena_str_dup(a, resp->headers[i].value);
            if (st->h304[st->n304].name.p && st->h304[st->n304].value.p)
                st->n304++;
        }
        st->claimed_status = 304;
        return true;
    }
    if ((resp == NULL || resp->status >= 500) && stale_if_error_ok(st)) {
        st->claimed_status = resp ? resp->status : 0;
        return true;
    }
    return false;
}

/* The stored fields updated with those of the 304 (RFC 9111 §3.2). */
static tg_cobj_t *refreshed(tg_cache_ex_t *st)
{
    const tg_cobj_t *o = st->obj;
    tg_header_t *h = tg_arena_alloc(tg_exchange_arena(st->ex), (o->nheaders + st->n304 + 1) * sizeof *h);
    if (h == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < o->nheaders; i++) {
        bool replaced = false;
        for (size_t k = 0; k < st->n304 && !replaced; k++)
            replaced = tg_str_ieq(st->h304[k].name, o->headers[i].name);
        if (!replaced)
            h[n++] = o->headers[i];
    }
    for (size_t i = 0; i < st->n304; i++)
        h[n++] = st->h304[i];
    if (!describe(st, o->status, h, n))
        return NULL;
    char *body = o->body_len ? malloc(o->body_len) : NULL;
    if (o->body_len && body == NULL)
        return NULL;
    if (body)
        memcpy(body, o->body, o->body_len);
    st->init.headers = h;
    st->init.nheaders = n;
    st->init.body = body;
    st->init.body_len = o->body_len;
    return tg_cobj_new(&st->init);
}

static void subst_respond(tg_exchange_t *ex, void *arg)
{
    (void)ex;
    tg_cache_ex_t *st = arg;
    tg__cache_fill_end(st);
    if (st->claimed_status == 304) {
        tg_cobj_t *o = refreshed(st);
        if (o) {
            tg_cobj_retain(o); /* kept for the answer even if evicted at once */
            tg_cache_insert(st->rt->store, o);
            tg__cache_count(st, "revalidated");
            tg__cache_serve(st, o, "tollgate; fwd=stale; fwd-status=304");
            tg_cobj_release(o);
            return;
        }
        tg__cache_serve(st, st->obj, "tollgate; fwd=stale; fwd-status=304; detail=not-stored");
        return;
    }
    atomic_store(&st->obj->refreshing, false);
    tg__cache_count(st, "stale");
    const char *text = st->claimed_status
        ? tg_arena_printf(tg_exchange_arena(st->ex), "tollgate; fwd=stale; fwd-status=%d; detail=stale-if-error",
                          st->claimed_status)
        : "tollgate; fwd=stale; detail=stale-if-error";
    tg__cache_serve(st, st->obj, text ? text : "tollgate; fwd=stale");
}

static const tg_ex_subst_t subst_ops = { .claim = subst_claim, .respond = subst_respond };

void tg__cache_revalidate(tg_cache_ex_t *st)
{
    tg_exchange_t *ex = st->ex;
    const tg_cobj_t *o = st->obj;
    /* The client's own validators would make the origin answer a 304 the
     * cache cannot use; ours (or none) replace them. */
    if (o->etag.p)
        tg_ex_req_header_set(ex, "If-None-Match", o->etag);
    else
        tg_ex_req_header_remove(ex, "If-None-Match");
    if (o->last_modified.p)
        tg_ex_req_header_set(ex, "If-Modified-Since", o->last_modified);
    else
        tg_ex_req_header_remove(ex, "If-Modified-Since");
    tg_ex_set_substitute(ex, &subst_ops, st);
}
