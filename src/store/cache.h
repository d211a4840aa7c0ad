/* The response cache store: in memory, shared by every worker, bounded by
 * `cache.memory` bytes (headers and bodies), LRU eviction, sharded so that
 * workers rarely meet on a lock (TG_CACHE_SHARDS shards, one mutex each,
 * held only for table/list updates, never while a body is copied or sent).
 *
 * Ownership: a tg_cobj_t (one stored response) is immutable once inserted
 * and refcounted. The store holds one reference while the object is linked;
 * every lookup returns one more that the caller drops with tg_cobj_release.
 * Eviction and purge only unlink: an object still being streamed to a client
 * lives until its last reader releases it (its bytes leave the accounting at
 * unlink, so the bound is on what the store holds, plus what is in flight).
 *
 * Request collapsing: tg_cache_fill_join makes the first miss for a key the
 * "leader" that fetches it; later misses attach a waiter and are woken
 * (uv_async_send, any thread) when the leader calls tg_cache_fill_done.
 *
 * Every function is thread-safe. The process has one store (tg_cache_shared),
 * created by the first configuration that uses caching and kept across
 * reloads (a reload only changes its bound). */
#ifndef TG_STORE_CACHE_H
#define TG_STORE_CACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "http/msg.h"
#include "util/list.h"

#define TG_CACHE_SHARDS 16
#define TG_CACHE_MAX_WAITERS 1024  /* per key being filled; more go upstream alone */

enum {
    TG_COBJ_NO_CACHE = 1u << 0,      /* stored, but every use revalidates (no-cache) */
    TG_COBJ_MUST_REVALIDATE = 1u << 1, /* never served stale (must-/proxy-revalidate) */
};

typedef struct tg_cobj {
    /* store-private: links and accounting, under the shard's lock */
    tg_list_t lru;                 /* in the shard's LRU list, most recent first */
    struct tg_cobj *next_key;      /* key hash chain */
    struct tg_cobj *next_uri;      /* uri hash chain */
    atomic_uint refs;
    bool linked;
    uint8_t shard;
    uint64_t khash, uhash;
    size_t charge;                 /* bytes counted against the bound */
    /* immutable after insert */
    const char *key; size_t key_len;         /* primary key (route + key parts) */
    const char *variant; size_t variant_len; /* Vary fingerprint; "" without Vary */
    const char *vary;                        /* lowercase names, ',' separated; "" none */
    const char *host;                        /* for purge by url */
    const char *uri; size_t uri_len;         /* path[?query] */
    const char *tags; size_t tags_len;       /* NUL-separated purge tags */
    int status;
    tg_header_t *headers; size_t nheaders;   /* stored fields (no hop-by-hop, no Age) */
    char *body; size_t body_len;             /* malloc'd, owned */
    tg_str_t etag, last_modified;            /* validators (slices of headers) */
    int64_t response_time;                   /* ms epoch: when this copy was (re)validated */
    int64_t initial_age;                     /* corrected_initial_age, ms */
    int64_t lifetime;                        /* freshness lifetime, ms */
    int64_t swr, sie;                        /* stale-while-revalidate / -if-error windows, ms */
    uint32_t flags;                          /* TG_COBJ_* */
    atomic_bool refreshing;                  /* a background refresh was started */
} tg_cobj_t;

/* What an object is made of (everything is copied, except `body`). */
typedef struct tg_cobj_init {
    tg_str_t key, variant, vary, host, uri;
    const tg_str_t *tags; size_t ntags;
    int status;
    const tg_header_t *headers; size_t nheaders;
    char *body; size_t body_len;   /* malloc'd; ownership passes to the object, even on failure */
    int64_t response_time, initial_age, lifetime, swr, sie;
    uint32_t flags;
} tg_cobj_init_t;

/* A new object (refs = 1), or NULL on OOM (the body is then freed). */
tg_cobj_t *tg_cobj_new(const tg_cobj_init_t *in);
static inline tg_cobj_t *tg_cobj_retain(tg_cobj_t *o)
{
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    return o;
}
void tg_cobj_release(tg_cobj_t *o);
/* Current age in ms at `now` (ms epoch), §4.2.3. */
static inline int64_t tg_cobj_age(const tg_cobj_t *o, int64_t now)
{
    int64_t resident = now > o->response_time ? now - o->response_time : 0;
    return o->initial_age + resident;
}

typedef struct tg_cache tg_cache_t;

typedef struct tg_cache_stats {
    uint64_t hits, misses, stale, collapsed, evictions, purges, inserts;
    uint64_t bytes, objects, memory;
} tg_cache_stats_t;

/* The process-wide store, created on first call with `memory` bytes, else
 * re-bounded to `memory` (shrinking evicts lazily, on the next insert into
 * each shard). NULL only on OOM. Never freed before exit (tg_cache_shutdown). */
tg_cache_t *tg_cache_shared(uint64_t memory);
/* The store if one exists (for admin purge and metrics), else NULL. */
tg_cache_t *tg_cache_get(void);
/* Frees the process store at exit (no thread may use it any more). */
void tg_cache_shutdown(void);

/* Own stores, for tests. */
tg_cache_t *tg_cache_new(uint64_t memory);
void tg_cache_free(tg_cache_t *c);

/* Finds a stored variant of `key` for which `match(obj, arg)` is true (the
 * caller's Vary check), moves it to the front of the LRU and returns it
 * retained; NULL when none. *uri_known says whether any variant exists. */
typedef bool (*tg_cache_match_fn)(const tg_cobj_t *o, void *arg);
tg_cobj_t *tg_cache_lookup(tg_cache_t *c, tg_str_t key, tg_cache_match_fn match, void *arg,
                           bool *key_known);
/* Links `o` (takes over the caller's reference), replacing a stored object
 * with the same key and variant, then evicts from the LRU tail while the
 * shard is over its share of the bound. Returns 0, or -1 when the object is
 * larger than a shard's share (it is released). */
int tg_cache_insert(tg_cache_t *c, tg_cobj_t *o);
/* Unlinks one object if it is still linked (e.g. a failed revalidation
 * answered 404 and the origin says it is gone). */
void tg_cache_remove(tg_cache_t *c, tg_cobj_t *o);

/* Purges; each returns how many objects were unlinked. */
size_t tg_cache_purge_uri(tg_cache_t *c, tg_str_t host /* NULL p: any */, tg_str_t uri);
size_t tg_cache_purge_prefix(tg_cache_t *c, tg_str_t prefix);
size_t tg_cache_purge_tag(tg_cache_t *c, tg_str_t tag);

void tg_cache_stats(tg_cache_t *c, tg_cache_stats_t *out);
/* Counters the filter reports (hits, misses, stale, collapsed). */
typedef enum { TG_CSTAT_HIT = 0, TG_CSTAT_MISS, TG_CSTAT_STALE, TG_CSTAT_COLLAPSED } tg_cstat_t;
void tg_cache_count(tg_cache_t *c, tg_cstat_t what);

/* ---- request collapsing ---- */
typedef struct tg_cache_fill tg_cache_fill_t;

/* A waiting request. `wake` must stay valid while attached; it is sent
 * exactly once, under the store's lock, when the fill completes. */
typedef struct tg_cache_waiter {
    tg_list_t link;        /* store-private */
    uv_async_t *wake;
    bool attached;         /* store-private, under the shard lock */
    uint8_t shard;         /* store-private: the shard of the fill joined */
} tg_cache_waiter_t;

typedef enum {
    TG_FILL_LEADER = 0,    /* *fill is yours: fetch, then tg_cache_fill_done */
    TG_FILL_WAIT,          /* the waiter is attached: wait for `wake` */
    TG_FILL_ALONE,         /* too many waiters: fetch without collapsing */
} tg_fill_role_t;

tg_fill_role_t tg_cache_fill_join(tg_cache_t *c, tg_str_t key, tg_cache_waiter_t *wt,
                                  tg_cache_fill_t **fill);
/* The leader is finished (stored or not): wakes and detaches every waiter. */
void tg_cache_fill_done(tg_cache_t *c, tg_cache_fill_t *fill);
/* A waiter gives up (timeout, client gone). After it returns, `wake` is
 * never sent. */
void tg_cache_fill_leave(tg_cache_t *c, tg_cache_waiter_t *wt);

/* FNV-1a, exported for the filter's and tests' use. */
uint64_t tg_cache_hash(const void *p, size_t n, uint64_t h);
#define TG_CACHE_HASH_SEED 1469598103934665603ull

#endif
