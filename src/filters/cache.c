/* The cache filter, request side: keys, lookups, hits (borrowed bodies, no
 * copy), client conditionals, request collapsing and background refreshes.
 * The response side (storing, revalidation, invalidation) is cache_fill.c.
 * Phase: after auth, allow/deny and rate_limit, so a cached answer is never
 * given to a client those would refuse. */
#include "filters/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "filters/cache_int.h"
#include "observe/metrics.h"
#include "proxy/subrequest.h"

static size_t g_index; /* set by build (main thread) before any worker runs the filter */

static tg_metric_def_t m_lookups = TG_METRIC_COUNTER(
    "tollgate_cache_lookups_total", "Cache lookups by route and result.", "route", "result");

int64_t tg__cache_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tg__cache_count(tg_cache_ex_t *st, const char *result)
{
    tg_str_t labels[2] = { tg_str_c(st->rt->route_name), tg_str_c(result) };
    tg_metric_inc(tg_ex_worker(st->ex)->metrics, &m_lookups, labels);
    static const struct { const char *r; tg_cstat_t s; } map[] = {
        { "hit", TG_CSTAT_HIT }, { "miss", TG_CSTAT_MISS }, { "stale", TG_CSTAT_STALE },
        { "collapsed", TG_CSTAT_COLLAPSED },
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(map[i].r, result) == 0)
            tg_cache_count(st->rt->store, map[i].s);
}

bool tg__cache_status_ok(const tg_cache_cfg_t *c, int status)
{
    for (size_t i = 0; i < c->nstatuses; i++)
        if (c->statuses[i] == status)
            return true;
    return false;
}

/* ---- keys ---- */

typedef struct kbuf {
    tg_arena_t *a;
    char *p;
    size_t len, cap;
    bool oom;
} kbuf_t;

static void kraw(kbuf_t *b, tg_str_t s)
{
    if (b->oom)
        return;
    if (b->len + s.len + 1 > b->cap) {
        size_t cap = (b->len + s.len + 1) * 2;
        char *p = tg_arena_alloc(b->a, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        if (b->len)
            memcpy(p, b->p, b->len);
        b->p = p;
        b->cap = cap;
    }
    if (s.len)
        memcpy(b->p + b->len, s.p, s.len);
    b->len += s.len;
}

/* One key part, then the unit separator (never in a field value). */
static void kput(kbuf_t *b, tg_str_t s)
{
    kraw(b, s);
    kraw(b, TG_STR_LIT("\x1f"));
}

/* Value of `name` in a "a=1; b=2" (cookie) or "a=1&b=2" (query) list. */
static tg_str_t list_param(tg_str_t s, const char *name, char sep)
{
    size_t nl = strlen(name), i = 0;
    while (i < s.len) {
        while (i < s.len && (s.p[i] == ' ' || s.p[i] == sep))
            i++;
        size_t st = i;
        while (i < s.len && s.p[i] != sep)
            i++;
        tg_str_t item = tg_str(s.p + st, i - st);
        if (item.len > nl && memcmp(item.p, name, nl) == 0 && item.p[nl] == '=')
            return tg_str(item.p + nl + 1, item.len - nl - 1);
        if (item.len == nl && memcmp(item.p, name, nl) == 0)
            return TG_STR_LIT("");
    }
    return TG_STR_NULL;
}

/* Every line of the field, joined by ','; absent differs from empty. */
static void key_header(kbuf_t *b, const tg_ex_request_t *r, const char *name)
{
    bool any = false;
    for (size_t i = 0; i < r->nheaders; i++)
        if (tg_str_ieq_c(r->headers[i].name, name)) {
            if (any)
                kraw(b, TG_STR_LIT(","));
            kraw(b, r->headers[i].value);
            any = true;
        }
    kput(b, any ? TG_STR_LIT("") : TG_STR_LIT("\x1e"));
}

static tg_str_t build_key(tg_cache_ex_t *st)
{
    tg_exchange_t *ex = st->ex;
    const tg_ex_request_t *r = tg_ex_request(ex);
    const tg_cache_cfg_t *c = st->rt->cfg;
    kbuf_t b = { .a = tg_exchange_arena(ex) };
    kput(&b, tg_str_c(st->rt->route_name)); /* routes never share entries */
    for (size_t i = 0; i < c->nkey; i++) {
        const tg_ckey_part_t *k = &c->key[i];
        switch (k->kind) {
        case TG_CKEY_METHOD: /* HEAD is answered from the GET entry */
            kput(&b, tg_str_eq(r->method, TG_STR_LIT("HEAD")) ? TG_STR_LIT("GET") : r->method);
            break;
        case TG_CKEY_SCHEME: kput(&b, r->tls ? TG_STR_LIT("https") : TG_STR_LIT("http")); break;
        case TG_CKEY_HOST: kput(&b, r->host); break;
        case TG_CKEY_PATH: kput(&b, r->path); break;
        case TG_CKEY_QUERY: kput(&b, r->query); break;
        case TG_CKEY_HEADER: key_header(&b, r, k->arg); break;
        case TG_CKEY_COOKIE: {
            const tg_header_t *h = tg_headers_find(r->headers, r->nheaders, "cookie");
            tg_str_t v = h ? list_param(h->value, k->arg, ';') : TG_STR_NULL;
            kput(&b, v.p ? v : TG_STR_LIT("\x1e"));
            break;
        }
        case TG_CKEY_QUERY_ARG: {
            tg_str_t v = list_param(r->query, k->arg, '&');
            kput(&b, v.p ? v : TG_STR_LIT("\x1e"));
            break;
        }
        case TG_CKEY_CONSUMER: {
            const char *who = tg_ex_identity(ex)->consumer;
            kput(&b, who ? tg_str_c(who) : TG_STR_LIT("\x1e"));
            break;
        }
        }
    }
    return b.oom ? TG_STR_NULL : tg_str(b.p, b.len);
}

/* ---- Vary ---- */

bool tg__cache_variant(tg_exchange_t *ex, const char *vary, char *out, size_t cap, size_t *len)
{
    const tg_ex_request_t *r = tg_ex_request(ex);
    size_t o = 0;
    for (const char *p = vary; *p;) {
        const char *e = strchr(p, ',');
        size_t nl = e ? (size_t)(e - p) : strlen(p);
        tg_str_t name = tg_str(p, nl);
        char val[512];
        size_t vl = 0;
        for (size_t i = 0; i < r->nheaders; i++) {
            if (!tg_str_ieq(r->headers[i].name, name))
                continue;
            tg_str_t v = tg_str_trim_ows(r->headers[i].value);
            if (vl + v.len + 2 > sizeof val)
                return false;
            if (vl)
                val[vl++] = ',';
            memcpy(val + vl, v.p, v.len);
            vl += v.len;
        }
        val[vl] = '\0';
        char norm[512];
        if (tg_str_ieq_c(name, "accept-encoding"))
            vl = tg_cache_normalize_ae(tg_str(val, vl), norm, sizeof norm);
        else
            memcpy(norm, val, vl + 1);
        if (o + nl + vl + 2 > cap)
            return false;
        memcpy(out + o, p, nl);
        o += nl;
        out[o++] = ':';
        memcpy(out + o, norm, vl);
        o += vl;
        out[o++] = '\n';
        p = e ? e + 1 : p + nl;
    }
    *len = o;
    return true;
}

static bool variant_match(const tg_cobj_t *o, void *arg)
{
    if (o->vary[0] == '\0')
        return true;
    char buf[TG_CACHE_MAX_VARIANT];
    size_t len;
    return tg__cache_variant(arg, o->vary, buf, sizeof buf, &len) && len == o->variant_len &&
           memcmp(buf, o->variant, len) == 0;
}

/* ---- answering from the store ---- */

static void release_obj(void *arg) { tg_cobj_release(arg); }

/* RFC 9110 §13.1.1-3, for a GET/HEAD answered from a 2xx entry. */
static bool not_modified(tg_exchange_t *ex, const tg_cobj_t *o)
{
    if (o->status < 200 || o->status > 299)
        return false;
    const tg_ex_request_t *r = tg_ex_request(ex);
    const tg_header_t *inm = tg_headers_find(r->headers, r->nheaders, "if-none-match");
    if (inm)
        return tg_etag_list_matches(inm->value, o->etag);
    const tg_header_t *ims = tg_headers_find(r->headers, r->nheaders, "if-modified-since");
    if (ims == NULL)
        return false;
    int64_t since = tg_http_date_parse(tg_str_trim_ows(ims->value));
    tg_str_t lm = o->last_modified;
    int64_t mod = lm.p ? tg_http_date_parse(lm) : -1;
    return since >= 0 && mod >= 0 && mod <= since;
}

void tg__cache_serve(tg_cache_ex_t *st, const tg_cobj_t *o, const char *text)
{
    tg_exchange_t *ex = st->ex;
    st->mode = TG_CM_SERVE;
    st->served = o;
    st->status_text = text;
    tg_cobj_t *ref = tg_cobj_retain((tg_cobj_t *)o); /* dropped when the exchange ends */
    if (!not_modified(ex, o)) {
        tg_ex_respond_borrowed(ex, o->status, o->headers, o->nheaders, o->body, o->body_len,
                               release_obj, ref);
        return;
    }
    /* 304: the fields a 200 would have carried that describe it (§15.4.5). */
    static const char *const keep[] = { "cache-control", "content-location", "date", "etag",
                                        "expires", "vary", "last-modified" };
    tg_header_t *h = tg_arena_alloc(tg_exchange_arena(ex), (o->nheaders + 1) * sizeof *h);
    size_t n = 0;
    for (size_t i = 0; h && i < o->nheaders; i++)
        for (size_t k = 0; k < sizeof keep / sizeof *keep; k++)
            if (tg_str_ieq_c(o->headers[i].name, keep[k])) {
                h[n++] = o->headers[i];
                break;
            }
    tg_ex_respond_borrowed(ex, 304, h, n, NULL, 0, release_obj, ref);
}

/* ---- lookup decisions (RFC 9111 §4.2, §5.2.1; RFC 5861) ---- */

typedef enum { D_FRESH, D_STALE_OK, D_SWR, D_STALE } decision_t;

static decision_t decide(const tg_cache_ex_t *st, const tg_cobj_t *o, int64_t now)
{
    const tg_cc_t *rq = &st->req_cc;
    int64_t age = tg_cobj_age(o, now);
    bool fresh = o->lifetime > age && !(o->flags & TG_COBJ_NO_CACHE);
    if (rq->max_age >= 0 && age > rq->max_age * 1000)
        fresh = false;
    if (fresh && rq->min_fresh >= 0 && o->lifetime - age < rq->min_fresh * 1000)
        fresh = false;
    if (fresh)
        return D_FRESH;
    if (o->flags & (TG_COBJ_MUST_REVALIDATE | TG_COBJ_NO_CACHE))
        return D_STALE;
    int64_t staleness = age - o->lifetime;
    if (rq->max_age < 0 && ((rq->flags & TG_CC_MAX_STALE_ANY) ||
                            (rq->max_stale >= 0 && staleness <= rq->max_stale * 1000)))
        return D_STALE_OK;
    if (staleness <= o->swr)
        return D_SWR;
    return D_STALE;
}

static const char *status_hit(tg_cache_ex_t *st, const tg_cobj_t *o, int64_t now, const char *detail)
{
    long long ttl = (long long)((o->lifetime - tg_cobj_age(o, now)) / 1000);
    char *s = tg_arena_printf(tg_exchange_arena(st->ex), "tollgate; hit; ttl=%lld%s%s", ttl,
                              detail ? "; detail=" : "", detail ? detail : "");
    return s ? s : "tollgate; hit";
}

/* stale-while-revalidate: one background refresh per stored object. */
static void refresh_in_background(tg_cache_ex_t *st, tg_cobj_t *o)
{
    if (atomic_exchange(&o->refreshing, true))
        return;
    tg_header_t cc = { TG_STR_LIT("Cache-Control"), TG_STR_LIT("no-cache") };
    if (tg_subrequest_start(st->ex, &cc, 1) < 0)
        atomic_store(&o->refreshing, false);
}

/* ---- collapsed waiting ---- */

struct tg_cache_waiter_ctx {
    tg_cache_waiter_t wt;
    uv_async_t async;
    uv_timer_t timer;
    tg_cache_ex_t *st;       /* NULL once detached from the exchange */
    int open;                /* handles not closed yet */
};

static void waiter_closed(uv_handle_t *h)
{
    tg_cache_waiter_ctx_t *w = h->data;
    if (--w->open == 0)
        free(w);
}

/* Detaches the waiter from the store and the exchange; frees it later. */
static void waiter_drop(tg_cache_waiter_ctx_t *w, tg_cache_t *store)
{
    tg_cache_fill_leave(store, &w->wt);
    if (w->st)
        w->st->waiter = NULL;
    w->st = NULL;
    uv_close((uv_handle_t *)&w->async, waiter_closed);
    uv_close((uv_handle_t *)&w->timer, waiter_closed);
}

static void waiter_wake(tg_cache_waiter_ctx_t *w)
{
    tg_cache_ex_t *st = w->st;
    if (st == NULL)
        return;
    waiter_drop(w, st->rt->store);
    tg_exchange_t *ex = st->ex;
    tg_cobj_t *o = tg_cache_lookup(st->rt->store, st->key, variant_match, ex, NULL);
    int64_t now = tg__cache_now();
    if (o && decide(st, o, now) == D_FRESH) {
        st->obj = o;
        tg__cache_count(st, "collapsed");
        tg_ex_filter_resume(ex, TG_FILTER_DONE); /* first: serving may end the exchange */
        tg__cache_serve(st, o, status_hit(st, o, now, "collapsed"));
        return;
    }
    tg_cobj_release(o);
    st->mode = TG_CM_FETCH; /* uncacheable after all: fetch alone */
    tg__cache_count(st, "miss");
    tg_ex_filter_resume(ex, TG_FILTER_CONTINUE);
}

static void on_waiter_async(uv_async_t *a) { waiter_wake(a->data); }
static void on_waiter_timeout(uv_timer_t *t) { waiter_wake(t->data); }

/* Returns true when the request now waits for the leader. */
static bool wait_for_leader(tg_cache_ex_t *st)
{
    tg_cache_waiter_ctx_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return false;
    uv_loop_t *loop = &tg_ex_worker(st->ex)->loop;
    uv_async_init(loop, &w->async, on_waiter_async);
    uv_timer_init(loop, &w->timer);
    w->async.data = w->timer.data = w;
    w->open = 2;
    w->wt.wake = &w->async;
    tg_cache_fill_t *fill = NULL;
    tg_fill_role_t role = tg_cache_fill_join(st->rt->store, st->key, &w->wt, &fill);
    if (role == TG_FILL_WAIT) {
        w->st = st;
        st->waiter = w;
        uv_timer_start(&w->timer, on_waiter_timeout, st->rt->wait_ms, 0);
        return true;
    }
    st->fill = fill; /* leader (or alone when fill is NULL) */
    uv_close((uv_handle_t *)&w->async, waiter_closed);
    uv_close((uv_handle_t *)&w->timer, waiter_closed);
    return false;
}

/* ---- the filter ---- */

static bool is_unsafe(tg_str_t m)
{
    return tg_str_eq(m, TG_STR_LIT("POST")) || tg_str_eq(m, TG_STR_LIT("PUT")) ||
           tg_str_eq(m, TG_STR_LIT("PATCH")) || tg_str_eq(m, TG_STR_LIT("DELETE"));
}

static uint32_t method_bit(tg_str_t m)
{
    if (tg_str_eq(m, TG_STR_LIT("GET")))
        return TG_M_GET;
    if (tg_str_eq(m, TG_STR_LIT("HEAD")))
        return TG_M_HEAD;
    return 0;
}

static void read_request(tg_cache_ex_t *st, const tg_ex_request_t *r)
{
    tg_cc_from_headers(&st->req_cc, r->headers, r->nheaders);
    bool has_cc = tg_headers_find(r->headers, r->nheaders, "cache-control") != NULL;
    const tg_header_t *pragma = tg_headers_find(r->headers, r->nheaders, "pragma");
    if (!has_cc && pragma && tg_str_list_has_token(pragma->value, "no-cache"))
        st->req_cc.flags |= TG_CC_NO_CACHE; /* HTTP/1.0 clients (RFC 9111 §5.4) */
    st->req_auth = tg_headers_find(r->headers, r->nheaders, "authorization") != NULL;
    tg_arena_t *a = tg_exchange_arena(st->ex);
    st->uri = r->query.len ? tg_str_c(tg_arena_printf(a, "%.*s?%.*s", (int)r->path.len, r->path.p,
                                                      (int)r->query.len, r->query.p))
                           : r->path;
}

/* A stored object was found: answer, or revalidate. */
static tg_filter_ret_t on_stored(tg_cache_ex_t *st, tg_cobj_t *o)
{
    int64_t now = tg__cache_now();
    st->obj = o;
    decision_t d = (st->req_cc.flags & TG_CC_NO_CACHE) ? D_STALE : decide(st, o, now);
    if (d == D_FRESH || d == D_STALE_OK) {
        tg__cache_count(st, "hit");
        tg__cache_serve(st, o, status_hit(st, o, now, d == D_STALE_OK ? "max-stale" : NULL));
        return TG_FILTER_DONE;
    }
    if (d == D_SWR) {
        tg__cache_count(st, "stale");
        refresh_in_background(st, o); /* before answering: answering may free the exchange */
        tg__cache_serve(st, o, status_hit(st, o, now, "stale-while-revalidate"));
        return TG_FILTER_DONE;
    }
    if (st->req_cc.flags & TG_CC_ONLY_IF_CACHED) {
        tg_ex_respond_error(st->ex, 504, "not_cached", NULL, 0);
        return TG_FILTER_DONE;
    }
    tg__cache_count(st, "revalidate");
    st->mode = TG_CM_REVALIDATE;
    st->status_text = (st->req_cc.flags & TG_CC_NO_CACHE) ? "tollgate; fwd=request" : "tollgate; fwd=stale";
    tg__cache_revalidate(st);
    return TG_FILTER_CONTINUE;
}

static tg_filter_ret_t cache_on_request(tg_exchange_t *ex, void *state)
{
    const tg_cache_route_t *rt = state;
    tg_cache_ex_t *st = tg_arena_calloc(tg_exchange_arena(ex), sizeof *st);
    if (st == NULL)
        return TG_FILTER_CONTINUE; /* no memory for caching: plain proxying */
    *tg_ex_filter_slot(ex, tg_cache_filter_index()) = st;
    st->rt = rt;
    st->ex = ex;
    st->t_req = tg__cache_now();
    const tg_ex_request_t *r = tg_ex_request(ex);
    read_request(st, r);
    if (is_unsafe(r->method)) {
        st->mode = TG_CM_INVALIDATE;
        return TG_FILTER_CONTINUE;
    }
    if ((method_bit(r->method) & rt->cfg->methods) == 0 || st->uri.p == NULL) {
        st->mode = TG_CM_BYPASS;
        return TG_FILTER_CONTINUE;
    }
    st->key = build_key(st);
    if (st->key.p == NULL)
        return TG_FILTER_CONTINUE;
    bool known = false;
    tg_cobj_t *o = tg_cache_lookup(rt->store, st->key, variant_match, ex, &known);
    if (o)
        return on_stored(st, o);
    if (st->req_cc.flags & TG_CC_ONLY_IF_CACHED) {
        tg_ex_respond_error(ex, 504, "not_cached", NULL, 0);
        return TG_FILTER_DONE;
    }
    st->status_text = known ? "tollgate; fwd=vary-miss" : "tollgate; fwd=uri-miss";
    bool head = tg_str_eq(r->method, TG_STR_LIT("HEAD"));
    if (head || (st->req_cc.flags & TG_CC_NO_STORE)) {
        st->mode = TG_CM_PASS; /* nothing to store from a HEAD or a no-store request */
        tg__cache_count(st, "miss");
        return TG_FILTER_CONTINUE;
    }
    st->mode = TG_CM_FETCH;
    if (rt->cfg->collapse && wait_for_leader(st))
        return TG_FILTER_WAIT;
    if (st->fill) { /* leader: the previous leader may have stored it just now */
        o = tg_cache_lookup(rt->store, st->key, variant_match, ex, NULL);
        if (o) {
            tg__cache_fill_end(st);
            return on_stored(st, o);
        }
    }
    tg__cache_count(st, "miss");
    return TG_FILTER_CONTINUE;
}

/* The upstream's answer is whole: it is stored now, before its last bytes
 * reach the client, so the client's next request (on any worker) finds it. */
static void cache_on_response_complete(tg_exchange_t *ex, void *state)
{
    (void)state;
    tg_cache_ex_t *st = *tg_ex_filter_slot(ex, tg_cache_filter_index());
    if (st)
        tg__cache_finish(st, true);
}

static void cache_on_end(tg_exchange_t *ex, void *state, bool complete)
{
    (void)state;
    tg_cache_ex_t *st = *tg_ex_filter_slot(ex, tg_cache_filter_index());
    if (st == NULL)
        return;
    if (st->waiter)
        waiter_drop(st->waiter, st->rt->store);
    tg__cache_finish(st, complete);
    if (st->obj) {
        if (st->mode == TG_CM_REVALIDATE) /* not refreshed: a later request may try again */
            atomic_store(&st->obj->refreshing, false);
        tg_cobj_release(st->obj);
        st->obj = NULL;
    }
}

/* ---- per-route state ---- */

static bool collector_added;

static void collect(tg_metrics_out_t *out, void *arg)
{
    (void)arg;
    tg_cache_t *c = tg_cache_get();
    if (c == NULL)
        return;
    tg_cache_stats_t s;
    tg_cache_stats(c, &s);
    tg_metrics_out_family(out, "tollgate_cache_bytes", "Bytes held by the response cache.", TG_METRIC_T_GAUGE);
    tg_metrics_out_sample(out, "tollgate_cache_bytes", NULL, NULL, (double)s.bytes);
    tg_metrics_out_family(out, "tollgate_cache_objects", "Responses held by the cache.", TG_METRIC_T_GAUGE);
    tg_metrics_out_sample(out, "tollgate_cache_objects", NULL, NULL, (double)s.objects);
    tg_metrics_out_family(out, "tollgate_cache_evictions_total", "Responses evicted (LRU).", TG_METRIC_T_COUNTER);
    tg_metrics_out_sample(out, "tollgate_cache_evictions_total", NULL, NULL, (double)s.evictions);
    tg_metrics_out_family(out, "tollgate_cache_purges_total", "Responses purged or invalidated.", TG_METRIC_T_COUNTER);
    tg_metrics_out_sample(out, "tollgate_cache_purges_total", NULL, NULL, (double)s.purges);
}

static int cache_build(const tg_config_t *cfg, const tg_route_cfg_t *route, void **state, char *err,
                       size_t errlen)
{
    *state = NULL;
    if (!route->cache.enabled || route->upstream == NULL)
        return 0;
    tg_cache_route_t *rt = calloc(1, sizeof *rt);
    tg_cache_t *store = tg_cache_shared(cfg->has_cache ? cfg->cache_memory : TG_CACHE_DEFAULT_MEMORY);
    if (rt == NULL || store == NULL) {
        free(rt);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < tg_nfilters; i++)
        if (tg_filters[i] == &tg_filter_cache)
            g_index = i;
    if (!collector_added) { /* generations are built on the main thread */
        collector_added = tg_metrics_add_collector(collect, NULL) == 0;
        tg_metric_register(&m_lookups);
    }
    rt->cfg = &route->cache;
    rt->route_name = route->name;
    rt->store = store;
    const tg_upstream_cfg_t *u = route->upstream;
    uint64_t resp = route->response_timeout_ms ? route->response_timeout_ms : u->response_timeout_ms;
    rt->wait_ms = u->connect_timeout_ms + (resp ? resp : 30000);
    *state = rt;
    return 0;
}

static void cache_free_state(void *state) { free(state); }

const tg_filter_t tg_filter_cache = {
    .name = "cache",
    .build = cache_build,
    .free_state = cache_free_state,
    .on_request = cache_on_request,
    .on_response_head = tg__cache_on_response_head,
    .on_response_body = tg__cache_on_response_body,
    .on_response_complete = cache_on_response_complete,
    .on_end = cache_on_end,
};

size_t tg_cache_filter_index(void) { return g_index; }
