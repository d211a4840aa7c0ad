/* The rate_limit filter (filters/ratelimit.h, docs/rate-limiting.md).
 *
 * Per request: every local entry is decided at once against the process
 * store; if one refuses, the others get their request back (refund) and the
 * answer is 429. Otherwise the Redis entries, if any, go to Redis in one
 * script call (all or nothing there too) and the exchange waits, at most
 * redis.timeout; a Redis failure follows redis.on_error. Every answer on the
 * route then carries RateLimit-Policy and RateLimit for the entries decided.
 *
 * Bucket identity: "n:<name>" for named entries (shared by every route that
 * uses the name), else "r:<route>:<index>". It survives reloads, so a reload
 * does not refill anyone's bucket. */
#include "filters/ratelimit.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "filters/ratelimit_int.h"
#include "observe/metrics.h"
#include "runtime/worker.h"
#include "store/ratelimit_redis.h"

#define MAX_ENTRIES 16
#define REDIS_KEY_RAW_MAX 64 /* longer values go to Redis as a SHA-256 */
#define TG__RL_LABEL_MAX 300 /* escaped label bytes: 2 x (128-byte route name + ".NN") fits */

typedef struct rl_entry {
    const tg_rate_limit_cfg_t *cfg;
    tg_gcra_t g_ns, g_us;
    uint64_t bucket;         /* local store: keyed hash of bucket_id */
    char *bucket_id;
    char *label;             /* sf-string body (escaped, no quotes), < TG__RL_LABEL_MAX */
    size_t label_len;
} rl_entry_t;

typedef struct rl_route {
    const tg_config_t *cfg;
    char *route;             /* escaped for metric labels */
    size_t slot;             /* this filter's index in tg_filters */
    tg_rl_local_t *store;
    rl_entry_t e[MAX_ENTRIES];
    size_t n, nredis;
    char *policy;            /* the RateLimit-Policy value */
    size_t policy_len;
} rl_route_t;

/* Per exchange, in its arena: one slot per entry of the route. */
typedef struct rl_slot {
    tg_str_t key;
    uint64_t local_key;
    tg_rl_decision_t d;
    uint32_t unit_ns;        /* of d: 1 (local) or 1000 (Redis) */
    bool have;               /* d is known (for the RateLimit field) */
    bool taken;              /* a local request was taken (refund on refusal) */
} rl_slot_t;

typedef struct rl_ex {
    rl_route_t *rt;
    tg_exchange_t *ex;
    tg_redis_call_t *call;
    uint8_t redis_idx[MAX_ENTRIES];
    rl_slot_t s[];
} rl_ex_t;

/* ---- metrics ---- */

static tg_metric_def_t m_decisions = TG_METRIC_COUNTER(
    "tollgate_ratelimit_decisions_total",
    "Rate-limit decisions by route and result (allowed, limited, error_allowed, error_denied).", "route",
    "result");

static void count(rl_ex_t *x, const char *result)
{
    tg_str_t labels[2] = { tg_str_c(tg_ex_request(x->ex)->route->name), tg_str_c(result) };
    tg_metric_inc(tg_ex_worker(x->ex)->metrics, &m_decisions, labels);
}

/* The Redis client's state, read at scrape time. */
static void collect(tg_metrics_out_t *out, void *arg)
{
    tg_redis_stats_t s;
    tg_redis_stats(&s);
    tg_metrics_out_family(out, "tollgate_redis_connections_up", "Workers whose Redis connection is up.",
                          TG_METRIC_T_GAUGE);
    tg_metrics_out_sample(out, "tollgate_redis_connections_up", NULL, NULL, (double)s.connections_up);
    tg_metrics_out_family(out, "tollgate_redis_calls_total", "Redis calls made.", TG_METRIC_T_COUNTER);
    tg_metrics_out_sample(out, "tollgate_redis_calls_total", NULL, NULL, (double)s.calls);
    static const char *const kind[] = { "kind", NULL };
    static const char *const timeout[] = { "timeout", NULL }, *const other[] = { "other", NULL };
    tg_metrics_out_family(out, "tollgate_redis_errors_total", "Redis calls that failed, by kind.", TG_METRIC_T_COUNTER);
    tg_metrics_out_sample(out, "tollgate_redis_errors_total", kind, timeout, (double)s.timeouts);
    tg_metrics_out_sample(out, "tollgate_redis_errors_total", kind, other, (double)s.failures);
    tg_metrics_out_family(out, "tollgate_redis_state_changes_total", "Redis up/down changes (each logged).",
                          TG_METRIC_T_COUNTER);
    tg_metrics_out_sample(out, "tollgate_redis_state_changes_total", NULL, NULL, (double)s.state_changes);
}

/* ---- build ---- */

/* sf-string body: printable ASCII, '"' and '\' escaped; anything else '_'. */
static char *sf_string(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(2 * n + 1), *p = o;
    if (o == NULL)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            *p++ = '\\';
        *p++ = c >= 0x20 && c < 0x7f ? (char)c : '_';
    }
    *p = '\0';
    return o;
}

static void rl_free(void *state)
{
    rl_route_t *rt = state;
    if (rt == NULL)
        return;
    for (size_t i = 0; i < rt->n; i++) {
        free(rt->e[i].bucket_id);
        free(rt->e[i].label);
    }
    free(rt->policy);
    free(rt->route);
    free(rt);
}

static int build_entry(rl_route_t *rt, const tg_route_cfg_t *route, size_t i)
{
    rl_entry_t *e = &rt->e[i];
    const tg_rate_limit_cfg_t *c = &route->rate_limits[i];
    char label[300];
    e->cfg = c;
    if (c->name)
        snprintf(label, sizeof label, "%s", c->name);
    else
        snprintf(label, sizeof label, "%s.%zu", route->name, i);
    e->label = sf_string(label);
    e->label_len = e->label ? strlen(e->label) : 0;
    int n = c->name ? asprintf(&e->bucket_id, "n:%s", c->name) : asprintf(&e->bucket_id, "r:%s:%zu", route->name, i);
    if (n < 0)
        e->bucket_id = NULL;
    if (e->label == NULL || e->bucket_id == NULL || e->label_len >= TG__RL_LABEL_MAX)
        return -1; /* the config bounds names to 128 bytes, so the length never trips */
    tg_gcra_init(&e->g_ns, c->requests, c->window_ms, c->burst, 1000000);
    tg_gcra_init(&e->g_us, c->requests, c->window_ms, c->burst, 1000);
    e->bucket = tg_rl_local_key(rt->store, 0, e->bucket_id, strlen(e->bucket_id));
    return 0;
}

static int build_policy(rl_route_t *rt)
{
    size_t cap = 1, len = 0;
    for (size_t i = 0; i < rt->n; i++)
        cap += strlen(rt->e[i].label) + 64;
    rt->policy = malloc(cap);
    if (rt->policy == NULL)
        return -1;
    rt->policy[0] = '\0';
    for (size_t i = 0; i < rt->n; i++) {
        const tg_rate_limit_cfg_t *c = rt->e[i].cfg;
        len += (size_t)snprintf(rt->policy + len, cap - len, "%s\"%s\";q=%llu;w=%llu", i ? ", " : "",
                                rt->e[i].label, (unsigned long long)c->requests,
                                (unsigned long long)(c->window_ms / 1000));
    }
    rt->policy_len = len;
    return 0;
}

static int rl_build(const tg_config_t *cfg, const tg_route_cfg_t *route, void **state, char *err, size_t errlen)
{
    *state = NULL;
    if (route->nrate_limits == 0)
        return 0;
    if (route->nrate_limits > MAX_ENTRIES) {
        snprintf(err, errlen, "at most %d rate limits per route", MAX_ENTRIES);
        return -1;
    }
    rl_route_t *rt = calloc(1, sizeof *rt);
    if (rt == NULL || (rt->store = tg_rl_local_shared()) == NULL) {
        free(rt);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rt->cfg = cfg;
    if ((rt->route = sf_string(route->name)) == NULL) {
        rl_free(rt);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t f = 0; f < tg_nfilters; f++)
        if (tg_filters[f] == &tg_filter_ratelimit)
            rt->slot = f;
    static bool registered; /* generations are built on the main thread */
    if (!registered) {
        registered = tg_metrics_add_collector(collect, NULL) == 0;
        tg_metric_register(&m_decisions);
    }
    for (size_t i = 0; i < route->nrate_limits; i++) {
        rt->n = i + 1;
        if (build_entry(rt, route, i) < 0) {
            rl_free(rt);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        rt->nredis += route->rate_limits[i].store == TG_RL_STORE_REDIS;
    }
    if (build_policy(rt) < 0) {
        rl_free(rt);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *state = rt;
    return 0;
}

/* ---- answers ---- */

static uint64_t ceil_seconds(uint64_t v, uint64_t unit_ns)
{
    unsigned __int128 ns = (unsigned __int128)v * unit_ns;
    return (uint64_t)((ns + 999999999u) / 1000000000u);
}

/* Gives back the local requests taken: another limit refused the request. */
static void refund_local(rl_ex_t *x)
{
    for (size_t i = 0; i < x->rt->n; i++) {
        if (!x->s[i].taken)
            continue;
        tg_rl_local_refund(x->rt->store, x->s[i].local_key, &x->rt->e[i].g_ns);
        x->s[i].taken = false;
        if (x->s[i].d.remaining < x->rt->e[i].cfg->burst + 1)
            x->s[i].d.remaining++;
    }
}

static void respond_limited(rl_ex_t *x)
{
    uint64_t secs = 1;
    for (size_t i = 0; i < x->rt->n; i++) {
        if (x->s[i].have && !x->s[i].d.allowed) {
            uint64_t s = ceil_seconds(x->s[i].d.wait, x->s[i].unit_ns);
            secs = s > secs ? s : secs;
        }
    }
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)secs);
    tg_header_t h = { TG_STR_LIT("Retry-After"), tg_str_c(v) };
    count(x, "limited");
    tg_ex_respond_error(x->ex, 429, "rate_limited", &h, 1);
}

/* Redis could not answer: redis.on_error decides. true = go on. */
static bool redis_failed(rl_ex_t *x)
{
    if (x->rt->cfg->redis.fail_open) {
        count(x, "error_allowed");
        return true;
    }
    count(x, "error_denied");
    refund_local(x);
    return false;
}

static void respond_unavailable(rl_ex_t *x)
{
    tg_header_t h = { TG_STR_LIT("Retry-After"), TG_STR_LIT("1") };
    tg_ex_respond_error(x->ex, 503, "rate_limit_unavailable", &h, 1);
}

/* ---- Redis ---- */

static void on_redis(void *arg, const struct redisReply *reply, tg_redis_err_t err)
{
    rl_ex_t *x = arg;
    rl_route_t *rt = x->rt;
    size_t m = rt->nredis;
    uint64_t tats[MAX_ENTRIES], now;
    bool ok = false;
    x->call = NULL;
    if (err != TG_REDIS_OK || tg_rl_redis_parse(reply, m, &ok, &now, tats) < 0) {
        bool go = redis_failed(x);
        tg_ex_filter_resume(x->ex, go ? TG_FILTER_CONTINUE : TG_FILTER_DONE);
        if (!go)
            respond_unavailable(x);
        return;
    }
    for (size_t j = 0; j < m; j++) {
        size_t i = x->redis_idx[j];
        uint64_t tat = tats[j];
        tg_gcra_take(&rt->e[i].g_us, &tat, now, &x->s[i].d);
        if (!ok && x->s[i].d.allowed) /* not advanced: another limit refused */
            tg_gcra_describe(&rt->e[i].g_us, tats[j], now, &x->s[i].d);
        x->s[i].have = true;
        x->s[i].unit_ns = 1000;
    }
    if (ok) {
        count(x, "allowed");
        tg_ex_filter_resume(x->ex, TG_FILTER_CONTINUE);
        return;
    }
    refund_local(x);
    tg_ex_filter_resume(x->ex, TG_FILTER_DONE); /* only clears the wait: answer after */
    respond_limited(x);
}

/* "tg:rl:<len>:<bucket id>:<key>", the key hashed when long. */
static int redis_key(tg_arena_t *a, const rl_entry_t *e, tg_str_t key, const char **out, size_t *outlen)
{
    char hex[2 * SHA256_DIGEST_LENGTH + 2];
    if (key.len > REDIS_KEY_RAW_MAX) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)key.p, key.len, md);
        hex[0] = '#';
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
            snprintf(hex + 1 + 2 * i, 3, "%02x", md[i]);
        key = tg_str(hex, 1 + 2 * SHA256_DIGEST_LENGTH);
    }
    size_t bl = strlen(e->bucket_id);
    char *s = tg_arena_alloc(a, bl + key.len + 32);
    if (s == NULL)
        return -1;
    int n = snprintf(s, 32 + bl, "tg:rl:%zu:%s:", bl, e->bucket_id);
    memcpy(s + n, key.p, key.len); /* binary-safe: Redis takes the length */
    *out = s;
    *outlen = (size_t)n + key.len;
    return 0;
}

static tg_filter_ret_t ask_redis(rl_ex_t *x)
{
    rl_route_t *rt = x->rt;
    const char *keys[MAX_ENTRIES];
    size_t keylen[MAX_ENTRIES];
    const tg_gcra_t *g[MAX_ENTRIES];
    size_t m = 0;
    tg_redis_err_t err = TG_REDIS_NOMEM;
    for (size_t i = 0; i < rt->n; i++) {
        if (rt->e[i].cfg->store != TG_RL_STORE_REDIS)
            continue;
        if (redis_key(tg_exchange_arena(x->ex), &rt->e[i], x->s[i].key, &keys[m], &keylen[m]) < 0)
            goto failed;
        g[m] = &rt->e[i].g_us;
        x->redis_idx[m++] = (uint8_t)i;
    }
    tg_redis_t *r = tg_redis_for_worker(tg_ex_worker(x->ex), &rt->cfg->redis);
    x->call = r ? tg_rl_redis_take(r, m, keys, keylen, g, on_redis, x, &err) : NULL;
    if (x->call)
        return TG_FILTER_WAIT;
failed:
    if (redis_failed(x))
        return TG_FILTER_CONTINUE;
    respond_unavailable(x);
    return TG_FILTER_DONE;
}

/* ---- the filter ---- */

static tg_filter_ret_t rl_on_request(tg_exchange_t *ex, void *state)
{
    rl_route_t *rt = state;
    rl_ex_t *x = tg_arena_calloc(tg_exchange_arena(ex), sizeof *x + rt->n * sizeof x->s[0]);
    if (x == NULL) {
        tg_ex_respond_error(ex, 503, "out_of_memory", NULL, 0);
        return TG_FILTER_DONE;
    }
    *tg_ex_filter_slot(ex, rt->slot) = x;
    x->rt = rt;
    x->ex = ex;
    uint64_t now = tg_rl_now_ns();
    bool refused = false;
    for (size_t i = 0; i < rt->n; i++) {
        if (tg__rl_key(ex, rt->e[i].cfg, &x->s[i].key) < 0) {
            refund_local(x);
            tg_ex_respond_error(ex, 503, "out_of_memory", NULL, 0);
            return TG_FILTER_DONE;
        }
        if (rt->e[i].cfg->store != TG_RL_STORE_LOCAL)
            continue;
        x->s[i].local_key = tg_rl_local_key(rt->store, rt->e[i].bucket, x->s[i].key.p, x->s[i].key.len);
        x->s[i].taken = tg_rl_local_take(rt->store, x->s[i].local_key, &rt->e[i].g_ns, now, &x->s[i].d);
        x->s[i].have = true;
        x->s[i].unit_ns = 1;
        refused |= !x->s[i].taken;
    }
    if (refused) {
        refund_local(x);
        respond_limited(x);
        return TG_FILTER_DONE;
    }
    if (rt->nredis)
        return ask_redis(x);
    count(x, "allowed");
    return TG_FILTER_CONTINUE;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* RateLimit: "<entry>";r=<allowed now>;t=<s until the next is allowed, or
 * until full>, for each entry whose state is known. */
static void rl_on_response_head(tg_exchange_t *ex, void *state, int status)
{
    rl_route_t *rt = state;
    rl_ex_t *x = *tg_ex_filter_slot(ex, rt->slot);
    if (x == NULL)
        return;
    /* per item at most 2 + 300 (label) + 3 + 20 + 3 + 20 + 2 bytes; formatted by
     * hand because this runs on every response of a limited route */
    char buf[MAX_ENTRIES * (TG__RL_LABEL_MAX + 52)], *p = buf;
    for (size_t i = 0; i < rt->n; i++) {
        if (!x->s[i].have)
            continue;
        const tg_rl_decision_t *d = &x->s[i].d;
        if (p != buf) {
            memcpy(p, ", ", 2);
            p += 2;
        }
        *p++ = '"';
        memcpy(p, rt->e[i].label, rt->e[i].label_len);
        p += rt->e[i].label_len;
        memcpy(p, "\";r=", 4);
        p = put_u64(p + 4, d->remaining);
        memcpy(p, ";t=", 3);
        p = put_u64(p + 3, ceil_seconds(d->remaining ? d->reset : d->wait, x->s[i].unit_ns));
    }
    tg_ex_resp_header_set(ex, "RateLimit-Policy", tg_str(rt->policy, rt->policy_len));
    if (p != buf)
        tg_ex_resp_header_set(ex, "RateLimit", tg_str(buf, (size_t)(p - buf)));
}

static void rl_on_end(tg_exchange_t *ex, void *state, bool complete)
{
    rl_route_t *rt = state;
    rl_ex_t *x = *tg_ex_filter_slot(ex, rt->slot);
    if (x && x->call) { /* the client left while Redis was being asked */
        tg_redis_cancel(x->call);
        x->call = NULL;
    }
}

const tg_filter_t tg_filter_ratelimit = {
    .name = "rate_limit",
    .build = rl_build,
    .free_state = rl_free,
    .on_request = rl_on_request,
    .on_response_head = rl_on_response_head,
    .on_end = rl_on_end,
};
