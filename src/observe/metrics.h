/* The metrics registry: counters, gauges and fixed-bucket histograms with
 * labels, exposed in the Prometheus text format (0.0.4) by GET /metrics.
 *
 * Counting is per worker: each worker owns a shard, and only the owner thread
 * writes it, with relaxed atomic loads and stores (plain moves on x86: no
 * locked instruction on the request path). A scrape (main thread) reads every
 * shard and sums the series that carry the same labels. Series are created
 * on first use and live until the process exits, so a scrape never races
 * with a free.
 *
 * Adding a family is one static definition and one call where it counts:
 *
 *     static tg_metric_def_t hits = TG_METRIC_COUNTER("tollgate_cache_lookups_total",
 *         "Cache lookups by route and result.", "route", "result");
 *     tg_metric_inc(tg_ex_worker(ex)->metrics, &hits, (tg_str_t[]){ route, TG_STR_LIT("hit") });
 *
 * A family shows up in the exposition once registered: on first use, or
 * earlier with tg_metric_register (so that it is listed before it counts).
 * Values that are not counted per request (gauges read from shared state)
 * come from collectors, called at each scrape on the scraping thread. */
#ifndef TG_OBSERVE_METRICS_H
#define TG_OBSERVE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "util/str.h"

#define TG_METRIC_MAX_LABELS 4
#define TG_METRIC_MAX_BUCKETS 20
#define TG_METRICS_MAX_FAMILIES 64 /* registered definitions, process-wide */
#define TG_METRICS_MAX_SHARDS 1100  /* > the 1024 workers the config allows */

typedef enum tg_metric_type { TG_METRIC_T_COUNTER = 0, TG_METRIC_T_GAUGE, TG_METRIC_T_HISTOGRAM } tg_metric_type_t;

typedef struct tg_metric_def {
    const char *name;                       /* Prometheus name, e.g. tollgate_requests_total */
    const char *help;
    tg_metric_type_t type;
    const char *labels[TG_METRIC_MAX_LABELS + 1]; /* label names, NULL-terminated */
    const double *buckets;                  /* histograms: upper bounds, ascending */
    size_t nbuckets;                        /* at most TG_METRIC_MAX_BUCKETS; +Inf is implied */
    atomic_int id;                          /* 0 until registered, then index + 1 */
} tg_metric_def_t;

#define TG_METRIC_COUNTER(n, h, ...) { .name = (n), .help = (h), .type = TG_METRIC_T_COUNTER, .labels = { __VA_ARGS__ } }
#define TG_METRIC_GAUGE(n, h, ...) { .name = (n), .help = (h), .type = TG_METRIC_T_GAUGE, .labels = { __VA_ARGS__ } }
#define TG_METRIC_HISTOGRAM(n, h, b, nb, ...) \
    { .name = (n), .help = (h), .type = TG_METRIC_T_HISTOGRAM, .buckets = (b), .nbuckets = (nb), .labels = { __VA_ARGS__ } }

/* Default latency buckets, in seconds (1 ms to 60 s). */
#define TG_METRIC_LATENCY_NBUCKETS 15
extern const double tg_metric_latency_buckets[TG_METRIC_LATENCY_NBUCKETS];

typedef struct tg_metrics_shard tg_metrics_shard_t;

/* A new shard for one writer thread (a worker). Shards are owned by the
 * registry and freed by tg_metrics_shutdown. NULL on OOM (counting is then
 * skipped: every call below accepts a NULL shard). */
tg_metrics_shard_t *tg_metrics_shard_new(void);

/* Registers a definition (idempotent, thread-safe). Returns 0, or -1 when the
 * registry is full or the definition is malformed (logged once). */
int tg_metric_register(tg_metric_def_t *def);

/* Adds `v` to the series of `def` with these label values (one per label
 * name, in order; NULL when the family has no labels). Counters: v >= 0;
 * gauges: any sign (a per-worker gauge is summed over workers). Owner thread
 * only. Label values are copied when the series is created. */
void tg_metric_add(tg_metrics_shard_t *s, tg_metric_def_t *def, const tg_str_t *labels, int64_t v);
static inline void tg_metric_inc(tg_metrics_shard_t *s, tg_metric_def_t *def, const tg_str_t *labels)
{
    tg_metric_add(s, def, labels, 1);
}
/* Histograms: records one observation. */
void tg_metric_observe(tg_metrics_shard_t *s, tg_metric_def_t *def, const tg_str_t *labels, double v);

/* ---- exposition ---- */

/* A growable text buffer for the exposition. */
typedef struct tg_metrics_out {
    char *p;
    size_t len, cap;
    int oom;
} tg_metrics_out_t;

/* Collectors write families that are read from shared state at scrape time. */
typedef void (*tg_metrics_collector_fn)(tg_metrics_out_t *out, void *arg);
/* Adds a collector (at start-up; at most 16). */
int tg_metrics_add_collector(tg_metrics_collector_fn fn, void *arg);
void tg_metrics_remove_collector(tg_metrics_collector_fn fn, void *arg);

/* "# HELP" and "# TYPE" lines of a collector's family. */
void tg_metrics_out_family(tg_metrics_out_t *o, const char *name, const char *help, tg_metric_type_t type);
/* One sample: `labels`/`values` are NULL-terminated / parallel (may be NULL). */
void tg_metrics_out_sample(tg_metrics_out_t *o, const char *name, const char *const *labels,
                           const char *const *values, double value);

/* Renders every registered family (summed over shards), then the collectors,
 * as Prometheus text 0.0.4. Returns a malloc'd NUL-terminated string (the
 * caller frees it) and its length, or NULL on OOM. Any thread; concurrent
 * scrapes are serialised. */
char *tg_metrics_render(size_t *len);

/* Frees every shard and forgets the registrations (process exit, after the
 * workers stopped). */
void tg_metrics_shutdown(void);

#endif
