/* The route index. Semantics are "the first route in file order whose
 * matchers all hold" (match.c); the index only narrows which routes a
 * request has to try, and keeps their file order.
 *
 * Two levels, both built once by tg_router_build:
 * 1. Host. Every exact name in some route's host list gets a bucket holding,
 *    in file order, the routes that list it plus the routes whose wildcards
 *    admit it. Every wildcard suffix ("*.example.com" → "example.com") gets a
 *    bucket with its routes plus those of the shorter wildcards that cover
 *    it. A request host picks its exact bucket, or else the bucket of its
 *    longest matching wildcard suffix, or none. Routes without a host list
 *    live in one more bucket, `anyhost`, tried by every request.
 * 2. First path segment, inside each bucket. A route whose path or
 *    path_exact fixes the first segment ("/v1/users" → "v1": the segment
 *    boundary rule makes that exact) is filed under it; the others (regex
 *    only, "/", no path) are "unpinned". A segment's list is its routes plus
 *    the unpinned ones, in file order. Small buckets skip this level.
 * A request therefore walks two sorted lists of route numbers (its host
 * bucket's and anyhost's, each for its first segment), merged by number.
 *
 * Memory: everything lives in the router's arena, borrowed config strings
 * aside. Lists are copies of route numbers, so a route listed under many
 * hosts, or unpinned in a bucket with many segments, is stored many times;
 * that is bounded by (names x routes) and buys a match loop that never
 * merges more than two lists.
 *
 * Hash tables use open addressing at load <= 1/2 over keys that come only
 * from the config, so a request cannot lengthen a probe sequence. */
#include <stdlib.h>

#include "router/router_int.h"

/* Buckets with fewer routes are scanned whole: hashing the segment costs
 * more than checking a few prefixes. */
#define SEG_INDEX_MIN 8

typedef struct rlist {
    uint32_t *idx;       /* route numbers, ascending */
    uint32_t n;
} rlist_t;

typedef struct slot {
    const char *key;     /* NULL = empty slot */
    uint32_t len;
    uint64_t hash;
    void *val;
} slot_t;

typedef struct strmap {
    slot_t *slots;
    size_t mask;         /* capacity - 1; capacity is a power of two */
} strmap_t;

typedef struct bucket {
    strmap_t segs;       /* first segment → rlist_t*; no slots = not indexed */
    rlist_t rest;        /* unpinned routes (or all of them when not indexed) */
} bucket_t;

struct tg_router {
    const tg_config_t *cfg;
    tg_arena_t arena;
    strmap_t exact;      /* host name → bucket_t* */
    strmap_t wild;       /* wildcard suffix → bucket_t* */
    bool has_wild;
    bucket_t anyhost;
};

/* ---- string map ---- */

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int strmap_init(strmap_t *m, tg_arena_t *a, size_t nkeys)
{
    size_t cap = 4;
    while (cap < nkeys * 2)
        cap <<= 1;
    m->slots = tg_arena_calloc(a, cap * sizeof(slot_t));
    m->mask = cap - 1;
    return m->slots ? 0 : -1;
}

static slot_t *strmap_find(const strmap_t *m, const char *k, size_t n, uint64_t h)
{
    if (m->slots == NULL)
        return NULL;
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        slot_t *s = &m->slots[i];
        if (s->key == NULL)
            return NULL;
        if (s->hash == h && s->len == n && memcmp(s->key, k, n) == 0)
            return s;
    }
}

/* Finds or adds `k` (borrowed: it must outlive the map). The map was sized
 * for every key, so a free slot always exists. */
static slot_t *strmap_put(strmap_t *m, const char *k, size_t n)
{
    uint64_t h = hash_bytes(k, n);
    size_t i = h & m->mask;
    while (m->slots[i].key != NULL) {
        slot_t *s = &m->slots[i];
        if (s->hash == h && s->len == n && memcmp(s->key, k, n) == 0)
            return s;
        i = (i + 1) & m->mask;
    }
    m->slots[i] = (slot_t){ .key = k, .len = (uint32_t)n, .hash = h };
    return &m->slots[i];
}

/* ---- growable list of route numbers (build time only) ---- */

typedef struct vec {
    uint32_t *v;
    size_t n, cap;
} vec_t;

static int vec_push(vec_t *x, uint32_t r)
{
    if (x->n > 0 && x->v[x->n - 1] == r)
        return 0; /* a route naming the same host twice */
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 8;
        uint32_t *v = realloc(x->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n++] = r;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sorts and removes duplicates. */
static void vec_sort_unique(vec_t *x)
{
    if (x->n < 2)
        return;
    qsort(x->v, x->n, sizeof *x->v, cmp_u32);
    size_t w = 1;
    for (size_t i = 1; i < x->n; i++)
        if (x->v[i] != x->v[w - 1])
            x->v[w++] = x->v[i];
    x->n = w;
}

/* ---- the segment level ---- */

/* The first path segment `p` fixes for every path it admits, if any. */
static bool pinned_segment(const char *p, bool is_prefix, tg_str_t *seg)
{
    if (p == NULL || p[0] != '/')
        return false;
    if (is_prefix && p[1] == '\0')
        return false; /* "/" admits every path */
    const char *end = strchr(p + 1, '/');
    *seg = tg_str(p + 1, end ? (size_t)(end - p - 1) : strlen(p + 1));
    return true;
}

static bool route_segment(const tg_route_cfg_t *rt, tg_str_t *seg)
{
    return pinned_segment(rt->match.path_exact, false, seg) || pinned_segment(rt->match.path, true, seg);
}

/* The request path's first segment: false for paths not starting with '/'
 * (which no pinned route admits). */
static bool path_segment(tg_str_t path, tg_str_t *seg)
{
    if (path.len == 0 || path.p[0] != '/')
        return false;
    const char *end = memchr(path.p + 1, '/', path.len - 1);
    *seg = tg_str(path.p + 1, end ? (size_t)(end - path.p - 1) : path.len - 1);
    return true;
}

static uint32_t *arena_u32(tg_arena_t *a, size_t n) { return tg_arena_alloc(a, (n ? n : 1) * sizeof(uint32_t)); }

/* Files `routes` (ascending) under their segments. Two passes: count the
 * pinned routes per segment, then fill each segment's list in file order. */
static int bucket_index(tg_router_t *r, bucket_t *b, const vec_t *routes)
{
    const tg_route_cfg_t *cfg = r->cfg->routes;
    size_t unpinned = 0;
    if (strmap_init(&b->segs, &r->arena, routes->n) != 0)
        return -1;
    tg_str_t seg;
    for (size_t i = 0; i < routes->n; i++) {
        if (!route_segment(&cfg[routes->v[i]], &seg)) {
            unpinned++;
            continue;
        }
        slot_t *s = strmap_put(&b->segs, seg.p, seg.len);
        s->val = (void *)((uintptr_t)s->val + 1); /* count for now */
    }
    for (size_t i = 0; i <= b->segs.mask; i++) {
        slot_t *s = &b->segs.slots[i];
        if (s->key == NULL)
            continue;
        rlist_t *l = tg_arena_alloc(&r->arena, sizeof *l);
        uint32_t *v = arena_u32(&r->arena, (uintptr_t)s->val + unpinned);
        if (l == NULL || v == NULL)
            return -1;
        *l = (rlist_t){ v, 0 };
        s->val = l;
    }
    uint32_t *rest = arena_u32(&r->arena, unpinned);
    if (rest == NULL)
        return -1;
    b->rest = (rlist_t){ rest, 0 };
    for (size_t i = 0; i < routes->n; i++) {
        uint32_t rn = routes->v[i];
        if (route_segment(&cfg[rn], &seg)) {
            rlist_t *l = strmap_put(&b->segs, seg.p, seg.len)->val;
            l->idx[l->n++] = rn;
            continue;
        }
        rest[b->rest.n++] = rn;
        for (size_t k = 0; k <= b->segs.mask; k++)
            if (b->segs.slots[k].key != NULL) {
                rlist_t *l = b->segs.slots[k].val;
                l->idx[l->n++] = rn;
            }
    }
    return 0;
}

static int bucket_build(tg_router_t *r, bucket_t *b, const vec_t *routes)
{
    *b = (bucket_t){ 0 };
    if (routes->n >= SEG_INDEX_MIN)
        return bucket_index(r, b, routes);
    uint32_t *v = arena_u32(&r->arena, routes->n);
    if (v == NULL)
        return -1;
    if (routes->n)
        memcpy(v, routes->v, routes->n * sizeof *v);
    b->rest = (rlist_t){ v, (uint32_t)routes->n };
    return 0;
}

static rlist_t bucket_list(const bucket_t *b, bool has_seg, tg_str_t seg, uint64_t h)
{
    if (has_seg) {
        const slot_t *s = strmap_find(&b->segs, seg.p, seg.len, h);
        if (s != NULL)
            return *(const rlist_t *)s->val;
    }
    return b->rest;
}

/* ---- the host level (build time) ---- */

/* One distinct host key while building: the routes naming it directly, then
 * every route its bucket must hold. */
typedef struct hostrec {
    vec_t direct;
    vec_t all;
} hostrec_t;

typedef struct build {
    tg_router_t *r;
    hostrec_t *recs;   /* malloc'd, one per distinct key */
    size_t nrecs;
} build_t;

static int add_pattern(build_t *b, const char *pattern, uint32_t rn)
{
    size_t n = strlen(pattern);
    char *folded = tg_arena_alloc(&b->r->arena, n + 1);
    if (folded == NULL)
        return -1;
    int len = tg__host_pattern_fold(pattern, folded, n);
    if (len < 0)
        return -1;
    bool wild = len >= 2 && folded[0] == '*' && folded[1] == '.';
    strmap_t *m = wild ? &b->r->wild : &b->r->exact;
    slot_t *s = wild ? strmap_put(m, folded + 2, (size_t)len - 2) : strmap_put(m, folded, (size_t)len);
    if (s->val == NULL)
        s->val = &b->recs[b->nrecs++];
    b->r->has_wild |= wild;
    return vec_push(&((hostrec_t *)s->val)->direct, rn);
}

static int collect_hosts(build_t *b)
{
    const tg_config_t *cfg = b->r->cfg;
    size_t total = 0;
    for (size_t i = 0; i < cfg->nroutes; i++)
        total += cfg->routes[i].match.nhosts;
    b->recs = calloc(total ? total : 1, sizeof *b->recs);
    if (b->recs == NULL || strmap_init(&b->r->exact, &b->r->arena, total) != 0 ||
        strmap_init(&b->r->wild, &b->r->arena, total) != 0)
        return -1;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const tg_match_cfg_t *m = &cfg->routes[i].match;
        for (size_t k = 0; k < m->nhosts; k++)
            if (add_pattern(b, m->hosts[k], (uint32_t)i) != 0)
                return -1;
    }
    return 0;
}

static int vec_append(vec_t *dst, const vec_t *src)
{
    for (size_t i = 0; i < src->n; i++)
        if (vec_push(dst, src->v[i]) != 0)
            return -1;
    return 0;
}

/* rec->all = its direct routes + those of every wildcard suffix that admits
 * whatever the key admits. For an exact name, a suffix after a dot with at
 * least one byte before it (the apex rule); for a wildcard suffix S, any
 * "label-suffix" of S, since "*.T" covers "*.S" when S ends with ".T". */
static int union_wild(build_t *b, hostrec_t *rec, const char *k, size_t n, bool key_is_wild)
{
    if (vec_append(&rec->all, &rec->direct) != 0)
        return -1;
    for (size_t i = key_is_wild ? 0 : 1; i < n; i++) {
        if (k[i] != '.')
            continue;
        const slot_t *s = strmap_find(&b->r->wild, k + i + 1, n - i - 1, hash_bytes(k + i + 1, n - i - 1));
        if (s != NULL && vec_append(&rec->all, &((hostrec_t *)s->val)->direct) != 0)
            return -1;
    }
    vec_sort_unique(&rec->all);
    return 0;
}

/* Computes every key's route set first (they read the direct lists through
 * the maps), then turns each into a bucket in place of its record. */
static int host_buckets(build_t *b)
{
    strmap_t *maps[2] = { &b->r->exact, &b->r->wild };
    for (int w = 0; w < 2; w++)
        for (size_t i = 0; i <= maps[w]->mask; i++) {
            slot_t *s = &maps[w]->slots[i];
            if (s->key != NULL && union_wild(b, s->val, s->key, s->len, w == 1) != 0)
                return -1;
        }
    for (int w = 0; w < 2; w++)
        for (size_t i = 0; i <= maps[w]->mask; i++) {
            slot_t *s = &maps[w]->slots[i];
            if (s->key == NULL)
                continue;
            bucket_t *bk = tg_arena_alloc(&b->r->arena, sizeof *bk);
            if (bk == NULL || bucket_build(b->r, bk, &((hostrec_t *)s->val)->all) != 0)
                return -1;
            s->val = bk;
        }
    return 0;
}

static int anyhost_bucket(tg_router_t *r)
{
    vec_t any = { 0 };
    int rc = 0;
    for (size_t i = 0; i < r->cfg->nroutes && rc == 0; i++)
        if (r->cfg->routes[i].match.nhosts == 0)
            rc = vec_push(&any, (uint32_t)i);
    if (rc == 0)
        rc = bucket_build(r, &r->anyhost, &any);
    free(any.v);
    return rc;
}

static int index_build(tg_router_t *r)
{
    build_t b = { .r = r };
    int rc = collect_hosts(&b);
    if (rc == 0)
        rc = host_buckets(&b);
    if (rc == 0)
        rc = anyhost_bucket(r);
    for (size_t i = 0; b.recs != NULL && i < b.nrecs; i++) {
        free(b.recs[i].direct.v);
        free(b.recs[i].all.v);
    }
    free(b.recs);
    return rc;
}

static void jit_route(const tg_route_cfg_t *rt)
{
    tg__regex_jit(rt->match.path_regex);
    for (size_t i = 0; i < rt->match.nheaders; i++)
        tg__regex_jit(rt->match.headers[i].regex);
    for (size_t i = 0; i < rt->match.nquery; i++)
        tg__regex_jit(rt->match.query[i].regex);
    tg__regex_jit(rt->rewrite.pattern);
}

/* ---- public ---- */

tg_router_t *tg_router_build(const tg_config_t *cfg)
{
    if (cfg == NULL || cfg->nroutes >= UINT32_MAX)
        return NULL;
    tg_router_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->cfg = cfg;
    tg_arena_init(&r->arena, 16384);
    if (tg__regex_thread_warm() != 0 || index_build(r) != 0) {
        tg_router_free(r);
        return NULL;
    }
    /* The snapshot is not published yet, so no thread matches with these
     * regexes while they are JIT-compiled (pcre2_jit_compile is not
     * thread-safe on one pattern). */
    for (size_t i = 0; i < cfg->nroutes; i++)
        jit_route(&cfg->routes[i]);
    return r;
}

void tg_router_free(tg_router_t *r)
{
    if (r == NULL)
        return;
    tg_arena_free(&r->arena);
    free(r);
}

static const bucket_t *host_bucket(const tg_router_t *r, tg_str_t host)
{
    if (host.len == 0)
        return NULL;
    const slot_t *s = strmap_find(&r->exact, host.p, host.len, hash_bytes(host.p, host.len));
    if (s != NULL)
        return s->val;
    if (!r->has_wild)
        return NULL;
    /* Left to right: the first suffix found is the longest, and its bucket
     * already holds the routes of the shorter ones. */
    for (size_t i = 1; i < host.len; i++) {
        if (host.p[i] != '.')
            continue;
        const char *k = host.p + i + 1;
        size_t n = host.len - i - 1;
        if ((s = strmap_find(&r->wild, k, n, hash_bytes(k, n))) != NULL)
            return s->val;
    }
    return NULL;
}

const tg_route_cfg_t *tg_router_match(const tg_router_t *r, const tg_route_input_t *in)
{
    unsigned bit = tg__method_bit(in->method);
    const bucket_t *hb = host_bucket(r, in->host);
    tg_str_t seg = TG_STR_NULL;
    bool has_seg = false;
    uint64_t h = 0;
    if ((hb != NULL && hb->segs.slots != NULL) || r->anyhost.segs.slots != NULL) {
        has_seg = path_segment(in->path, &seg);
        h = has_seg ? hash_bytes(seg.p, seg.len) : 0;
    }
    rlist_t a = hb ? bucket_list(hb, has_seg, seg, h) : (rlist_t){ NULL, 0 };
    rlist_t b = bucket_list(&r->anyhost, has_seg, seg, h);
    /* Host routes and any-host routes are disjoint; merge by route number to
     * keep file order. */
    uint32_t i = 0, j = 0;
    while (i < a.n || j < b.n) {
        uint32_t rn = (j == b.n || (i < a.n && a.idx[i] < b.idx[j])) ? a.idx[i++] : b.idx[j++];
        if (rn < in->from)
            continue;
        const tg_route_cfg_t *rt = &r->cfg->routes[rn];
        if (tg__route_rest_ok(&rt->match, in, bit))
            return rt;
    }
    return NULL;
}

const tg_route_cfg_t *tg__router_match_linear(const tg_router_t *r, const tg_route_input_t *in)
{
    unsigned bit = tg__method_bit(in->method);
    for (size_t i = in->from; i < r->cfg->nroutes; i++) {
        const tg_route_cfg_t *rt = &r->cfg->routes[i];
        if (tg__route_host_ok(&rt->match, in->host) && tg__route_rest_ok(&rt->match, in, bit))
            return rt;
    }
    return NULL;
}
