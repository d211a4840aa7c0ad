/* The metrics registry (observe/metrics.h).
 *
 * Layout: a shard per writer thread holds, per registered family, an
 * open-addressing table of series pointers. Only the owner inserts; a table
 * that fills up is replaced by a twice larger copy published with a release
 * store, and the old table is kept (on the shard's `retired` list) so that a
 * scrape still walking it stays safe; series themselves never move and are
 * never freed before tg_metrics_shutdown. A series is fully written before
 * its pointer is published (release), so readers see complete labels. */
#include "observe/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/log.h"

const double tg_metric_latency_buckets[TG_METRIC_LATENCY_NBUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,    1,     2.5,  5,     10,   30, 60 };

typedef struct series {
    uint64_t hash;
    uint32_t nlabels;
    uint32_t lens[TG_METRIC_MAX_LABELS];
    const char *vals[TG_METRIC_MAX_LABELS]; /* into `text`, NUL-terminated */
    _Atomic int64_t value;                  /* counter/gauge value; histogram count */
    _Atomic double sum;                     /* histograms */
    _Atomic uint64_t *buckets;              /* histograms: nbuckets + 1 (+Inf), not cumulative */
    char text[];
} series_t;

typedef struct table {
    size_t cap;                 /* power of two */
    size_t n;                   /* owner only */
    struct table *retired;      /* previous (smaller) table, kept for readers */
    _Atomic(series_t *) slot[];
} table_t;

struct tg_metrics_shard {
    _Atomic(table_t *) fam[TG_METRICS_MAX_FAMILIES];
    series_t *last[TG_METRICS_MAX_FAMILIES]; /* owner only: the series used last (steady traffic hits it) */
};

typedef struct collector {
    tg_metrics_collector_fn fn;
    void *arg;
} collector_t;

static struct {
    pthread_mutex_t lock;       /* registration, shard list, collectors, render */
    tg_metric_def_t *defs[TG_METRICS_MAX_FAMILIES];
    atomic_int ndefs;
    tg_metrics_shard_t *shards[TG_METRICS_MAX_SHARDS];
    atomic_int nshards;
    collector_t collectors[16];
    int ncollectors;
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- registration ---- */

static size_t label_count(const tg_metric_def_t *d)
{
    size_t n = 0;
    while (n < TG_METRIC_MAX_LABELS && d->labels[n])
        n++;
    return n;
}

int tg_metric_register(tg_metric_def_t *def)
{
    if (atomic_load_explicit(&def->id, memory_order_acquire) > 0)
        return 0;
    pthread_mutex_lock(&reg.lock);
    int r = 0;
    if (atomic_load_explicit(&def->id, memory_order_relaxed) == 0) {
        int n = atomic_load_explicit(&reg.ndefs, memory_order_relaxed);
        bool bad = def->type == TG_METRIC_T_HISTOGRAM && (def->nbuckets == 0 || def->nbuckets > TG_METRIC_MAX_BUCKETS);
        for (int i = 0; i < n && !bad; i++)
            bad = strcmp(reg.defs[i]->name, def->name) == 0;
        if (bad || n >= TG_METRICS_MAX_FAMILIES) {
            tg_log_error("metrics: cannot register %s (duplicate, bad buckets or registry full)", def->name);
            atomic_store_explicit(&def->id, -1, memory_order_release);
            r = -1;
        } else {
            reg.defs[n] = def;
            atomic_store_explicit(&reg.ndefs, n + 1, memory_order_release);
            atomic_store_explicit(&def->id, n + 1, memory_order_release);
        }
    } else if (atomic_load_explicit(&def->id, memory_order_relaxed) < 0) {
        r = -1;
    }
    pthread_mutex_unlock(&reg.lock);
    return r;
}

tg_metrics_shard_t *tg_metrics_shard_new(void)
{
    tg_metrics_shard_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    pthread_mutex_lock(&reg.lock);
    int n = atomic_load_explicit(&reg.nshards, memory_order_relaxed);
    if (n >= TG_METRICS_MAX_SHARDS) {
        pthread_mutex_unlock(&reg.lock);
        free(s);
        return NULL;
    }
    reg.shards[n] = s;
    atomic_store_explicit(&reg.nshards, n + 1, memory_order_release);
    pthread_mutex_unlock(&reg.lock);
    return s;
}

int tg_metrics_add_collector(tg_metrics_collector_fn fn, void *arg)
{
    pthread_mutex_lock(&reg.lock);
    int r = -1;
    if (reg.ncollectors < (int)(sizeof reg.collectors / sizeof reg.collectors[0])) {
        reg.collectors[reg.ncollectors++] = (collector_t){ fn, arg };
        r = 0;
    }
    pthread_mutex_unlock(&reg.lock);
    return r;
}

void tg_metrics_remove_collector(tg_metrics_collector_fn fn, void *arg)
{
    pthread_mutex_lock(&reg.lock);
    for (int i = 0; i < reg.ncollectors; i++) {
        if (reg.collectors[i].fn == fn && reg.collectors[i].arg == arg) {
            memmove(&reg.collectors[i], &reg.collectors[i + 1],
                    (size_t)(reg.ncollectors - i - 1) * sizeof reg.collectors[0]);
            reg.ncollectors--;
            break;
        }
    }
    pthread_mutex_unlock(&reg.lock);
}

/* ---- the hot path ---- */

static uint64_t hash_labels(const tg_str_t *labels, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < labels[i].len; k++)
            h = (h ^ (uint8_t)labels[i].p[k]) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator: ("a","bc") != ("ab","c") */
    }
    return h;
}

static bool same_labels(const series_t *s, const tg_str_t *labels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s->lens[i] != labels[i].len || (labels[i].len && memcmp(s->vals[i], labels[i].p, labels[i].len) != 0))
            return false;
    return true;
}

static series_t *series_new(const tg_metric_def_t *d, const tg_str_t *labels, size_t n, uint64_t h)
{
    size_t text = 0;
    for (size_t i = 0; i < n; i++)
        text += labels[i].len + 1;
    size_t nb = d->type == TG_METRIC_T_HISTOGRAM ? d->nbuckets + 1 : 0;
    series_t *s = calloc(1, sizeof *s + text + 8 + nb * sizeof(uint64_t));
    if (s == NULL)
        return NULL;
    s->hash = h;
    s->nlabels = (uint32_t)n;
    char *p = s->text;
    for (size_t i = 0; i < n; i++) {
        if (labels[i].len)
            memcpy(p, labels[i].p, labels[i].len);
        p[labels[i].len] = '\0';
        s->vals[i] = p;
        s->lens[i] = (uint32_t)labels[i].len;
        p += labels[i].len + 1;
    }
    if (nb) {
        uintptr_t a = ((uintptr_t)p + 7) & ~(uintptr_t)7;
        s->buckets = (_Atomic uint64_t *)a;
    }
    return s;
}

static table_t *table_new(size_t cap)
{
    table_t *t = calloc(1, sizeof *t + cap * sizeof(t->slot[0]));
    if (t)
        t->cap = cap;
    return t;
}

static void table_put(table_t *t, series_t *s)
{
    size_t i = s->hash & (t->cap - 1);
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed) != NULL)
        i = (i + 1) & (t->cap - 1);
    atomic_store_explicit(&t->slot[i], s, memory_order_release);
    t->n++;
}

/* Doubles the table; the old one stays readable until shutdown. */
static table_t *grow(_Atomic(table_t *) *slot, table_t *old)
{
    table_t *t = table_new(old ? old->cap * 2 : 16);
    if (t == NULL)
        return NULL;
    for (size_t i = 0; old && i < old->cap; i++) {
        series_t *s = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
        if (s)
            table_put(t, s);
    }
    t->retired = old;
    atomic_store_explicit(slot, t, memory_order_release);
    return t;
}

static series_t *lookup(tg_metrics_shard_t *sh, tg_metric_def_t *d, const tg_str_t *labels)
{
    int id = atomic_load_explicit(&d->id, memory_order_acquire);
    if (id == 0) {
        if (tg_metric_register(d) < 0)
            return NULL;
        id = atomic_load_explicit(&d->id, memory_order_acquire);
    }
    if (id < 0 || sh == NULL)
        return NULL;
    size_t n = label_count(d);
    series_t *last = sh->last[id - 1];
    if (last && same_labels(last, labels, n))
        return last;
    uint64_t h = hash_labels(labels, n);
    _Atomic(table_t *) *ts = &sh->fam[id - 1];
    table_t *t = atomic_load_explicit(ts, memory_order_relaxed);
    if (t) {
        for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
            series_t *s = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
            if (s == NULL)
                break;
            if (s->hash == h && same_labels(s, labels, n))
                return sh->last[id - 1] = s;
        }
    }
    if ((t == NULL || (t->n + 1) * 2 > t->cap) && (t = grow(ts, t)) == NULL)
        return NULL;
    series_t *s = series_new(d, labels, n, h);
    if (s) {
        table_put(t, s);
        sh->last[id - 1] = s;
    }
    return s;
}

/* Single writer: a relaxed load and store is an increment nobody races with. */
static inline void bump(_Atomic int64_t *v, int64_t by)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + by, memory_order_relaxed);
}

void tg_metric_add(tg_metrics_shard_t *sh, tg_metric_def_t *def, const tg_str_t *labels, int64_t v)
{
    series_t *s = lookup(sh, def, labels);
    if (s)
        bump(&s->value, v);
}

void tg_metric_observe(tg_metrics_shard_t *sh, tg_metric_def_t *def, const tg_str_t *labels, double v)
{
    series_t *s = lookup(sh, def, labels);
    if (s == NULL || s->buckets == NULL)
        return;
    size_t b = 0;
    while (b < def->nbuckets && v > def->buckets[b])
        b++;
    _Atomic uint64_t *bk = &s->buckets[b];
    atomic_store_explicit(bk, atomic_load_explicit(bk, memory_order_relaxed) + 1, memory_order_relaxed);
    atomic_store_explicit(&s->sum, atomic_load_explicit(&s->sum, memory_order_relaxed) + v, memory_order_relaxed);
    bump(&s->value, 1);
}

/* ---- exposition ---- */

static void out_raw(tg_metrics_out_t *o, const char *p, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *np = realloc(o->p, cap);
        if (np == NULL) {
            o->oom = 1;
            return;
        }
        o->p = np;
        o->cap = cap;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_str(tg_metrics_out_t *o, const char *s) { out_raw(o, s, strlen(s)); }

static void out_fmt(tg_metrics_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_fmt(tg_metrics_out_t *o, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        out_raw(o, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Label values escape \, " and newline (exposition format 0.0.4). */
static void out_label_value(tg_metrics_out_t *o, const char *v, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = v[i] == '\\' ? "\\\\" : v[i] == '"' ? "\\\"" : v[i] == '\n' ? "\\n" : NULL;
        if (rep) {
            out_raw(o, v + start, i - start);
            out_str(o, rep);
            start = i + 1;
        }
    }
    out_raw(o, v + start, n - start);
}

static void out_value(tg_metrics_out_t *o, double v)
{
    if (isnan(v))
        out_str(o, "NaN");
    else if (isinf(v))
        out_str(o, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(int64_t)v && fabs(v) < 9e15)
        out_fmt(o, "%lld", (long long)v);
    else
        out_fmt(o, "%.17g", v);
}

static const char *type_name(tg_metric_type_t t)
{
    return t == TG_METRIC_T_COUNTER ? "counter" : t == TG_METRIC_T_GAUGE ? "gauge" : "histogram";
}

void tg_metrics_out_family(tg_metrics_out_t *o, const char *name, const char *help, tg_metric_type_t type)
{
    out_fmt(o, "# HELP %s ", name);
    for (const char *p = help; *p; p++) /* help text escapes \ and newline */
        out_str(o, *p == '\\' ? "\\\\" : *p == '\n' ? "\\n" : (char[]){ *p, 0 });
    out_fmt(o, "\n# TYPE %s %s\n", name, type_name(type));
}

void tg_metrics_out_sample(tg_metrics_out_t *o, const char *name, const char *const *labels,
                           const char *const *values, double value)
{
    out_str(o, name);
    for (size_t i = 0; labels && labels[i]; i++) {
        out_fmt(o, "%c%s=\"", i ? ',' : '{', labels[i]);
        out_label_value(o, values[i], strlen(values[i]));
        out_str(o, labels[i + 1] ? "\"" : "\"}");
    }
    out_raw(o, " ", 1);
    out_value(o, value);
    out_raw(o, "\n", 1);
}

/* name{labels[,le="x"]} value */
static void out_series(tg_metrics_out_t *o, const tg_metric_def_t *d, const char *suffix,
                       const series_t *s, const char *le, double v)
{
    out_str(o, d->name);
    out_str(o, suffix);
    size_t n = s->nlabels;
    for (size_t i = 0; i < n; i++) {
        out_fmt(o, "%c%s=\"", i ? ',' : '{', d->labels[i]);
        out_label_value(o, s->vals[i], s->lens[i]);
        out_raw(o, "\"", 1);
    }
    if (le)
        out_fmt(o, "%cle=\"%s\"", n ? ',' : '{', le);
    if (n || le)
        out_raw(o, "}", 1);
    out_raw(o, " ", 1);
    out_value(o, v);
    out_raw(o, "\n", 1);
}

static int cmp_series(const void *a, const void *b)
{
    const series_t *x = *(series_t *const *)a, *y = *(series_t *const *)b;
    for (uint32_t i = 0; i < x->nlabels; i++) {
        int c = strcmp(x->vals[i], y->vals[i]);
        if (c)
            return c;
    }
    return 0;
}

/* Every series of family `id` in every shard, sorted by labels. */
static series_t **gather(int id, size_t *count)
{
    int nsh = atomic_load_explicit(&reg.nshards, memory_order_acquire);
    size_t cap = 0, n = 0;
    for (int i = 0; i < nsh; i++) {
        table_t *t = atomic_load_explicit(&reg.shards[i]->fam[id], memory_order_acquire);
        cap += t ? t->cap : 0;
    }
    series_t **v = malloc((cap + 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    for (int i = 0; i < nsh; i++) {
        table_t *t = atomic_load_explicit(&reg.shards[i]->fam[id], memory_order_acquire);
        for (size_t k = 0; t && k < t->cap && n < cap; k++) {
            series_t *s = atomic_load_explicit(&t->slot[k], memory_order_acquire);
            if (s)
                v[n++] = s;
        }
    }
    qsort(v, n, sizeof *v, cmp_series);
    *count = n;
    return v;
}

static void render_histogram(tg_metrics_out_t *o, const tg_metric_def_t *d, series_t **v, size_t i, size_t j)
{
    uint64_t cum = 0;
    double sum = 0;
    for (size_t b = 0; b <= d->nbuckets; b++) {
        for (size_t k = i; k < j; k++)
            cum += atomic_load_explicit(&v[k]->buckets[b], memory_order_relaxed);
        char le[32];
        if (b < d->nbuckets)
            snprintf(le, sizeof le, "%g", d->buckets[b]);
        else
            snprintf(le, sizeof le, "+Inf");
        out_series(o, d, "_bucket", v[i], le, (double)cum);
    }
    for (size_t k = i; k < j; k++)
        sum += atomic_load_explicit(&v[k]->sum, memory_order_relaxed);
    out_series(o, d, "_sum", v[i], NULL, sum);
    /* _count equals the +Inf bucket by construction (same snapshot). */
    out_series(o, d, "_count", v[i], NULL, (double)cum);
}

static void render_family(tg_metrics_out_t *o, int id)
{
    const tg_metric_def_t *d = reg.defs[id];
    tg_metrics_out_family(o, d->name, d->help, d->type);
    size_t n = 0;
    series_t **v = gather(id, &n);
    if (v == NULL) {
        o->oom = 1;
        return;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && cmp_series(&v[i], &v[j]) == 0)
            j++;
        if (d->type == TG_METRIC_T_HISTOGRAM) {
            render_histogram(o, d, v, i, j);
        } else {
            int64_t total = 0;
            for (size_t k = i; k < j; k++)
                total += atomic_load_explicit(&v[k]->value, memory_order_relaxed);
            out_series(o, d, "", v[i], NULL, (double)total);
        }
        i = j;
    }
    free(v);
}

char *tg_metrics_render(size_t *len)
{
    tg_metrics_out_t o = { 0 };
    pthread_mutex_lock(&reg.lock);
    int ndefs = atomic_load_explicit(&reg.ndefs, memory_order_acquire);
    for (int i = 0; i < ndefs; i++)
        render_family(&o, i);
    for (int i = 0; i < reg.ncollectors; i++)
        reg.collectors[i].fn(&o, reg.collectors[i].arg);
    pthread_mutex_unlock(&reg.lock);
    out_raw(&o, "", 0);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return o.p;
}

void tg_metrics_shutdown(void)
{
    pthread_mutex_lock(&reg.lock);
    int nsh = atomic_load_explicit(&reg.nshards, memory_order_relaxed);
    int ndefs = atomic_load_explicit(&reg.ndefs, memory_order_relaxed);
    for (int i = 0; i < nsh; i++) {
        tg_metrics_shard_t *s = reg.shards[i];
        for (int f = 0; f < ndefs; f++) {
            table_t *t = atomic_load_explicit(&s->fam[f], memory_order_relaxed);
            for (size_t k = 0; t && k < t->cap; k++)
                free(atomic_load_explicit(&t->slot[k], memory_order_relaxed));
            while (t) {
                table_t *r = t->retired;
                free(t);
                t = r;
            }
        }
        free(s);
    }
    atomic_store(&reg.nshards, 0);
    for (int i = 0; i < ndefs; i++)
        atomic_store(&reg.defs[i]->id, 0);
    atomic_store(&reg.ndefs, 0);
    reg.ncollectors = 0;
    pthread_mutex_unlock(&reg.lock);
}
