/* The shared response store (store/cache.h): shards of two chained hash
 * tables (by key, by host+uri) and an LRU list each, under one mutex. */
#include "store/cache.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 256
#define MALLOC_OVERHEAD 32  /* two allocations per object (block, body), as charged */

struct tg_cache_fill {
    struct tg_cache_fill *next;
    uint64_t hash;
    char *key;
    size_t key_len;
    tg_list_t waiters;
    size_t nwaiters;
    uint8_t shard;
};

typedef struct shard {
    uv_mutex_t mu;
    tg_cobj_t **ktab, **utab;
    size_t nbuckets, n;
    tg_list_t lru;
    uint64_t bytes;
    tg_cache_fill_t *fills;    /* keys being fetched by a leader (few at a time) */
} shard_t;

struct tg_cache {
    shard_t shards[TG_CACHE_SHARDS];
    _Atomic uint64_t memory;
    _Atomic uint64_t counters[4]; /* tg_cstat_t */
    _Atomic uint64_t evictions, purges, inserts;
};

static tg_cache_t *_Atomic g_cache;
static uv_mutex_t g_cache_mu;
static uv_once_t g_cache_once = UV_ONCE_INIT;

uint64_t tg_cache_hash(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t uri_hash(tg_str_t host, tg_str_t uri)
{
    uint64_t h = tg_cache_hash(host.p, host.len, TG_CACHE_HASH_SEED);
    h = tg_cache_hash("\n", 1, h);
    return tg_cache_hash(uri.p, uri.len, h);
}

/* ---- objects ---- */

static size_t str_room(tg_str_t s) { return s.len + 1; }

static char *put(char **at, tg_str_t s)
{
    char *d = *at;
    if (s.len)
        memcpy(d, s.p, s.len);
    d[s.len] = '\0';
    *at += s.len + 1;
    return d;
}

static size_t object_size(const tg_cobj_init_t *in)
{
    size_t size = sizeof(tg_cobj_t) + in->nheaders * sizeof(tg_header_t);
    size += str_room(in->key) + str_room(in->variant) + str_room(in->vary) + str_room(in->host) +
            str_room(in->uri) + 1;
    for (size_t i = 0; i < in->ntags; i++)
        size += str_room(in->tags[i]);
    for (size_t i = 0; i < in->nheaders; i++)
        size += str_room(in->headers[i].name) + str_room(in->headers[i].value);
    return size;
}

tg_cobj_t *tg_cobj_new(const tg_cobj_init_t *in)
{
    size_t size = object_size(in);
    tg_cobj_t *o = calloc(1, size);
    if (o == NULL) {
        free(in->body);
        return NULL;
    }
    o->headers = (tg_header_t *)(o + 1);
    char *at = (char *)(o->headers + in->nheaders);
    o->key = put(&at, in->key);
    o->key_len = in->key.len;
    o->variant = put(&at, in->variant);
    o->variant_len = in->variant.len;
    o->vary = put(&at, in->vary);
    o->host = put(&at, in->host);
    o->uri = put(&at, in->uri);
    o->uri_len = in->uri.len;
    o->tags = at;
    for (size_t i = 0; i < in->ntags; i++)
        put(&at, in->tags[i]);
    o->tags_len = (size_t)(at - o->tags);
    *at++ = '\0';
    for (size_t i = 0; i < in->nheaders; i++) {
        tg_str_t n = in->headers[i].name, v = in->headers[i].value;
        o->headers[i].name = tg_str(put(&at, n), n.len);
        o->headers[i].value = tg_str(put(&at, v), v.len);
        if (tg_str_ieq_c(n, "etag") && o->etag.p == NULL)
            o->etag = o->headers[i].value;
        else if (tg_str_ieq_c(n, "last-modified") && o->last_modified.p == NULL)
            o->last_modified = o->headers[i].value;
    }
    o->nheaders = in->nheaders;
    o->status = in->status;
    o->body = in->body;
    o->body_len = in->body_len;
    o->response_time = in->response_time;
    o->initial_age = in->initial_age;
    o->lifetime = in->lifetime;
    o->swr = in->swr;
    o->sie = in->sie;
    o->flags = in->flags;
    o->charge = size + in->body_len + MALLOC_OVERHEAD;
    o->khash = tg_cache_hash(o->key, o->key_len, TG_CACHE_HASH_SEED);
    o->uhash = uri_hash(tg_str_c(o->host), tg_str(o->uri, o->uri_len));
    tg_list_init(&o->lru);
    atomic_init(&o->refs, 1);
    atomic_init(&o->refreshing, false);
    return o;
}

void tg_cobj_release(tg_cobj_t *o)
{
    if (o && atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1) {
        free(o->body);
        free(o);
    }
}

/* ---- stores ---- */

static int shard_init(shard_t *s)
{
    s->nbuckets = INITIAL_BUCKETS;
    s->ktab = calloc(s->nbuckets, sizeof *s->ktab);
    s->utab = calloc(s->nbuckets, sizeof *s->utab);
    tg_list_init(&s->lru);
    if (s->ktab == NULL || s->utab == NULL || uv_mutex_init(&s->mu) != 0) {
        free(s->ktab);
        free(s->utab);
        return -1;
    }
    return 0;
}

tg_cache_t *tg_cache_new(uint64_t memory)
{
    tg_cache_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < TG_CACHE_SHARDS; i++) {
        if (shard_init(&c->shards[i]) < 0) {
            for (size_t j = 0; j < i; j++) {
                free(c->shards[j].ktab);
                free(c->shards[j].utab);
                uv_mutex_destroy(&c->shards[j].mu);
            }
            free(c);
            return NULL;
        }
    }
    atomic_store(&c->memory, memory);
    return c;
}

void tg_cache_free(tg_cache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < TG_CACHE_SHARDS; i++) {
        shard_t *s = &c->shards[i];
        while (!tg_list_empty(&s->lru)) {
            tg_cobj_t *o = tg_container_of(s->lru.next, tg_cobj_t, lru);
            tg_list_remove(&o->lru);
            tg_cobj_release(o);
        }
        while (s->fills) { /* only at exit: no leader is left to finish them */
            tg_cache_fill_t *f = s->fills;
            s->fills = f->next;
            free(f->key);
            free(f);
        }
        free(s->ktab);
        free(s->utab);
        uv_mutex_destroy(&s->mu);
    }
    free(c);
}

static void global_init(void) { uv_mutex_init(&g_cache_mu); }

tg_cache_t *tg_cache_shared(uint64_t memory)
{
    uv_once(&g_cache_once, global_init);
    uv_mutex_lock(&g_cache_mu);
    tg_cache_t *c = atomic_load(&g_cache);
    if (c == NULL) {
        c = tg_cache_new(memory);
        atomic_store(&g_cache, c);
    } else {
        atomic_store(&c->memory, memory);
    }
    uv_mutex_unlock(&g_cache_mu);
    return c;
}

tg_cache_t *tg_cache_get(void) { return atomic_load(&g_cache); }

void tg_cache_shutdown(void)
{
    tg_cache_t *c = atomic_exchange(&g_cache, NULL);
    tg_cache_free(c);
}

/* ---- linking (shard lock held) ---- */

static void chain_remove(tg_cobj_t **head, tg_cobj_t *o, bool by_key)
{
    for (tg_cobj_t **p = head; *p; p = by_key ? &(*p)->next_key : &(*p)->next_uri) {
        if (*p == o) {
            *p = by_key ? o->next_key : o->next_uri;
            return;
        }
    }
}

/* Unlinks and drops the store's reference (the object may live on in readers). */
static void unlink_obj(shard_t *s, tg_cobj_t *o)
{
    chain_remove(&s->ktab[o->khash & (s->nbuckets - 1)], o, true);
    chain_remove(&s->utab[o->uhash & (s->nbuckets - 1)], o, false);
    tg_list_remove(&o->lru);
    o->linked = false;
    s->bytes -= o->charge;
    s->n--;
    tg_cobj_release(o);
}

static void grow(shard_t *s)
{
    size_t nb = s->nbuckets * 2;
    tg_cobj_t **k = calloc(nb, sizeof *k), **u = calloc(nb, sizeof *u);
    if (k == NULL || u == NULL) { /* keep the old tables: longer chains, still correct */
        free(k);
        free(u);
        return;
    }
    for (tg_list_t *l = s->lru.next; l != &s->lru; l = l->next) {
        tg_cobj_t *o = tg_container_of(l, tg_cobj_t, lru);
        o->next_key = k[o->khash & (nb - 1)];
        k[o->khash & (nb - 1)] = o;
        o->next_uri = u[o->uhash & (nb - 1)];
        u[o->uhash & (nb - 1)] = o;
    }
    free(s->ktab);
    free(s->utab);
    s->ktab = k;
    s->utab = u;
    s->nbuckets = nb;
}

static shard_t *shard_of(tg_cache_t *c, uint64_t h) { return &c->shards[(h >> 56) % TG_CACHE_SHARDS]; }

static bool same_key(const tg_cobj_t *o, uint64_t h, tg_str_t key)
{
    return o->khash == h && o->key_len == key.len && memcmp(o->key, key.p, key.len) == 0;
}

tg_cobj_t *tg_cache_lookup(tg_cache_t *c, tg_str_t key, tg_cache_match_fn match, void *arg,
                           bool *key_known)
{
    uint64_t h = tg_cache_hash(key.p, key.len, TG_CACHE_HASH_SEED);
    shard_t *s = shard_of(c, h);
    tg_cobj_t *found = NULL;
    bool known = false;
    uv_mutex_lock(&s->mu);
    for (tg_cobj_t *o = s->ktab[h & (s->nbuckets - 1)]; o; o = o->next_key) {
        if (!same_key(o, h, key))
            continue;
        known = true;
        if (match == NULL || match(o, arg)) {
            found = tg_cobj_retain(o);
            tg_list_remove(&o->lru);
            tg_list_insert_head(&s->lru, &o->lru);
            break;
        }
    }
    uv_mutex_unlock(&s->mu);
    if (key_known)
        *key_known = known;
    return found;
}

int tg_cache_insert(tg_cache_t *c, tg_cobj_t *o)
{
    uint64_t share = atomic_load(&c->memory) / TG_CACHE_SHARDS;
    if (o->charge > share) {
        tg_cobj_release(o);
        return -1;
    }
    shard_t *s = shard_of(c, o->khash);
    uint64_t evicted = 0;
    uv_mutex_lock(&s->mu);
    for (tg_cobj_t *e = s->ktab[o->khash & (s->nbuckets - 1)], *next; e; e = next) {
        next = e->next_key;
        if (same_key(e, o->khash, tg_str(o->key, o->key_len)) && e->variant_len == o->variant_len &&
            memcmp(e->variant, o->variant, o->variant_len) == 0)
            unlink_obj(s, e);
    }
    while (s->bytes + o->charge > share && !tg_list_empty(&s->lru)) {
        unlink_obj(s, tg_container_of(s->lru.prev, tg_cobj_t, lru));
        evicted++;
    }
    if (s->n + 1 > s->nbuckets)
        grow(s);
    o->shard = (uint8_t)(s - c->shards);
    o->next_key = s->ktab[o->khash & (s->nbuckets - 1)];
    s->ktab[o->khash & (s->nbuckets - 1)] = o;
    o->next_uri = s->utab[o->uhash & (s->nbuckets - 1)];
    s->utab[o->uhash & (s->nbuckets - 1)] = o;
    tg_list_insert_head(&s->lru, &o->lru);
    o->linked = true;
    s->bytes += o->charge;
    s->n++;
    uv_mutex_unlock(&s->mu);
    atomic_fetch_add_explicit(&c->evictions, evicted, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->inserts, 1, memory_order_relaxed);
    return 0;
}

void tg_cache_remove(tg_cache_t *c, tg_cobj_t *o)
{
    shard_t *s = &c->shards[o->shard];
    uv_mutex_lock(&s->mu);
    if (o->linked)
        unlink_obj(s, o);
    uv_mutex_unlock(&s->mu);
}

/* ---- purge ---- */

size_t tg_cache_purge_uri(tg_cache_t *c, tg_str_t host, tg_str_t uri)
{
    size_t n = 0;
    for (size_t i = 0; i < TG_CACHE_SHARDS; i++) {
        shard_t *s = &c->shards[i];
        uv_mutex_lock(&s->mu);
        if (host.p) {
            uint64_t h = uri_hash(host, uri);
            for (tg_cobj_t *o = s->utab[h & (s->nbuckets - 1)], *next; o; o = next) {
                next = o->next_uri;
                if (o->uhash == h && tg_str_eq(tg_str(o->uri, o->uri_len), uri) &&
                    tg_str_ieq(tg_str_c(o->host), host)) {
                    unlink_obj(s, o);
                    n++;
                }
            }
        } else { /* any host: the uri table is keyed by host too, so walk the shard */
            for (tg_list_t *l = s->lru.next, *next; l != &s->lru; l = next) {
                next = l->next;
                tg_cobj_t *o = tg_container_of(l, tg_cobj_t, lru);
                if (tg_str_eq(tg_str(o->uri, o->uri_len), uri)) {
                    unlink_obj(s, o);
                    n++;
                }
            }
        }
        uv_mutex_unlock(&s->mu);
    }
    atomic_fetch_add_explicit(&c->purges, n, memory_order_relaxed);
    return n;
}

static bool has_tag(const tg_cobj_t *o, tg_str_t tag)
{
    for (const char *t = o->tags; t < o->tags + o->tags_len; t += strlen(t) + 1)
        if (tg_str_eq(tg_str_c(t), tag))
            return true;
    return false;
}

static size_t purge_scan(tg_cache_t *c, tg_str_t arg, bool prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < TG_CACHE_SHARDS; i++) {
        shard_t *s = &c->shards[i];
        uv_mutex_lock(&s->mu);
        for (tg_list_t *l = s->lru.next, *next; l != &s->lru; l = next) {
            next = l->next;
            tg_cobj_t *o = tg_container_of(l, tg_cobj_t, lru);
            bool hit = prefix ? tg_str_has_prefix(tg_str(o->uri, o->uri_len), arg) : has_tag(o, arg);
            if (hit) {
                unlink_obj(s, o);
                n++;
            }
        }
        uv_mutex_unlock(&s->mu);
    }
    atomic_fetch_add_explicit(&c->purges, n, memory_order_relaxed);
    return n;
}

size_t tg_cache_purge_prefix(tg_cache_t *c, tg_str_t prefix) { return purge_scan(c, prefix, true); }
size_t tg_cache_purge_tag(tg_cache_t *c, tg_str_t tag) { return purge_scan(c, tag, false); }

/* ---- stats ---- */

void tg_cache_count(tg_cache_t *c, tg_cstat_t what)
{
    atomic_fetch_add_explicit(&c->counters[what], 1, memory_order_relaxed);
}

void tg_cache_stats(tg_cache_t *c, tg_cache_stats_t *out)
{
    *out = (tg_cache_stats_t){
        .hits = atomic_load(&c->counters[TG_CSTAT_HIT]),
        .misses = atomic_load(&c->counters[TG_CSTAT_MISS]),
        .stale = atomic_load(&c->counters[TG_CSTAT_STALE]),
        .collapsed = atomic_load(&c->counters[TG_CSTAT_COLLAPSED]),
        .evictions = atomic_load(&c->evictions),
        .purges = atomic_load(&c->purges),
        .inserts = atomic_load(&c->inserts),
        .memory = atomic_load(&c->memory),
    };
    for (size_t i = 0; i < TG_CACHE_SHARDS; i++) {
        shard_t *s = &c->shards[i];
        uv_mutex_lock(&s->mu);
        out->bytes += s->bytes;
        out->objects += s->n;
        uv_mutex_unlock(&s->mu);
    }
}

/* ---- collapsing ---- */

tg_fill_role_t tg_cache_fill_join(tg_cache_t *c, tg_str_t key, tg_cache_waiter_t *wt,
                                  tg_cache_fill_t **fill)
{
    uint64_t h = tg_cache_hash(key.p, key.len, TG_CACHE_HASH_SEED);
    shard_t *s = shard_of(c, h);
    tg_fill_role_t role = TG_FILL_ALONE;
    *fill = NULL;
    uv_mutex_lock(&s->mu);
    tg_cache_fill_t *f = s->fills;
    while (f && !(f->hash == h && f->key_len == key.len && memcmp(f->key, key.p, key.len) == 0))
        f = f->next;
    if (f) {
        if (f->nwaiters < TG_CACHE_MAX_WAITERS) {
            tg_list_insert_tail(&f->waiters, &wt->link);
            wt->attached = true;
            wt->shard = (uint8_t)(s - c->shards);
            f->nwaiters++;
            role = TG_FILL_WAIT;
        }
    } else if ((f = calloc(1, sizeof *f)) != NULL && (f->key = malloc(key.len ? key.len : 1)) != NULL) {
        memcpy(f->key, key.p, key.len);
        f->key_len = key.len;
        f->hash = h;
        f->shard = (uint8_t)(s - c->shards);
        tg_list_init(&f->waiters);
        f->next = s->fills;
        s->fills = f;
        *fill = f;
        role = TG_FILL_LEADER;
    } else {
        free(f); /* OOM: fetch alone */
    }
    uv_mutex_unlock(&s->mu);
    return role;
}

void tg_cache_fill_done(tg_cache_t *c, tg_cache_fill_t *f)
{
    shard_t *s = &c->shards[f->shard];
    uv_mutex_lock(&s->mu);
    for (tg_cache_fill_t **p = &s->fills; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    while (!tg_list_empty(&f->waiters)) {
        tg_cache_waiter_t *wt = tg_container_of(f->waiters.next, tg_cache_waiter_t, link);
        tg_list_remove(&wt->link);
        wt->attached = false;
        uv_async_send(wt->wake);
    }
    uv_mutex_unlock(&s->mu);
    free(f->key);
    free(f);
}

void tg_cache_fill_leave(tg_cache_t *c, tg_cache_waiter_t *wt)
{
    shard_t *s = &c->shards[wt->shard];
    uv_mutex_lock(&s->mu);
    if (wt->attached) {
        for (tg_cache_fill_t *f = s->fills; f && wt->attached; f = f->next) {
            for (tg_list_t *l = f->waiters.next; l != &f->waiters; l = l->next) {
                if (l == &wt->link) {
                    tg_list_remove(&wt->link);
                    wt->attached = false;
                    f->nwaiters--;
                    break;
                }
            }
        }
    }
    uv_mutex_unlock(&s->mu);
}
