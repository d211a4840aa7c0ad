/* The resilience keys of an upstream: health_check:, outlier:,
 * circuit_breaker: and the retries: extension non_idempotent:.
 * schema_upstream.c dispatches to these through one line each in its key
 * tables; what the values mean at run time is in docs/operations.md. */
#include "config/internal.h"

#include <string.h>

#define MAX_THRESHOLD 1000       /* healthy / unhealthy / consecutive_failures */
#define MAX_BREAKER 10000000u
#define MAX_EXPECT 32

/* ---- health_check ---- */

typedef struct hc_obj {
    tg_health_check_cfg_t *hc;
    tg__node_t *interval;        /* the interval: node, for the cross check */
} hc_obj_t;

/* An origin-form target: "/" followed by visible ASCII, no fragment. */
static bool valid_check_path(const char *p)
{
    if (p[0] != '/')
        return false;
    for (; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
            return false;
    return true;
}

static void hc_path(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *p;
    if (!tg__str(cx, v, &p))
        return;
    if (!valid_check_path(p)) {
        tg__err(cx, v, "expected a request path like /healthz (visible ASCII, no spaces or '#'), got \"%s\"", p);
        return;
    }
    ((hc_obj_t *)obj)->hc->path = p;
}

static void hc_interval(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    hc_obj_t *o = obj;
    o->interval = v;
    tg__duration(cx, v, 10, &o->hc->interval_ms);
}

static void hc_timeout(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 1, &((hc_obj_t *)obj)->hc->timeout_ms);
}

static void hc_healthy(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t n;
    if (tg__uint(cx, v, 1, MAX_THRESHOLD, &n))
        ((hc_obj_t *)obj)->hc->healthy = (uint32_t)n;
}

static void hc_unhealthy(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t n;
    if (tg__uint(cx, v, 1, MAX_THRESHOLD, &n))
        ((hc_obj_t *)obj)->hc->unhealthy = (uint32_t)n;
}

/* Three digits at s: the value, or -1. */
static int three_digits(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
        return -1;
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* "200", 204 or "200-399"; statuses 100..599. */
static bool parse_range(const char *s, tg_status_range_t *out)
{
    int lo = three_digits(s), hi = lo;
    if (lo < 0)
        return false;
    if (s[3] == '-') {
        hi = three_digits(s + 4);
        if (hi < 0 || s[7] != '\0')
            return false;
    } else if (s[3] != '\0') {
        return false;
    }
    if (lo < 100 || hi > 599 || lo > hi)
        return false;
    out->lo = (uint16_t)lo;
    out->hi = (uint16_t)hi;
    return true;
}

static void hc_expect(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_health_check_cfg_t *hc = ((hc_obj_t *)obj)->hc;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    if (n == 0 || n > MAX_EXPECT) {
        tg__err(cx, v, "expected 1 to %d statuses or ranges like [200-399]", MAX_EXPECT);
        return;
    }
    tg_status_range_t *r = tg__alloc_array(cx, n, sizeof *r);
    if (r == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        const char *s;
        if (tg__str(cx, items[i], &s) && !parse_range(s, &r[i]))
            tg__err(cx, items[i], "expected a status like 200 or a range like 200-399 "
                                  "(100 to 599), got \"%s\"", s);
        tg__path_pop(cx, mark);
    }
    hc->expect = r;
    hc->nexpect = n;
}

/* A gRPC service name as grpc.health.v1 knows it ("pkg.Service"): printable
 * ASCII without spaces, short enough for a one-byte protobuf length. */
static void hc_service(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s;
    if (!tg__str(cx, v, &s))
        return;
    size_t n = strlen(s);
    bool ok = n <= TG_HEALTH_SERVICE_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f;
    if (!ok) {
        tg__err(cx, v, "expected a gRPC service name like \"pkg.Service\" (up to %d visible ASCII "
                       "characters, no spaces), got \"%s\"", TG_HEALTH_SERVICE_MAX, s);
        return;
    }
    ((hc_obj_t *)obj)->hc->service = s;
}

static const tg__key_t hc_keys[] = {
    { "path", hc_path }, { "interval", hc_interval }, { "timeout", hc_timeout },
    { "healthy", hc_healthy }, { "unhealthy", hc_unhealthy }, { "expect", hc_expect },
    { "service", hc_service }, { NULL, NULL },
};
static const tg__schema_t hc_schema = { "upstreams.*.health_check", hc_keys, false };

void tg__load_health_check(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u)
{
    static const tg_status_range_t default_expect = { 200, 399 };
    tg_health_check_cfg_t *hc = &u->health_check;
    *hc = (tg_health_check_cfg_t){ .path = "/", .interval_ms = 5000, .timeout_ms = 1000,
                                   .healthy = 2, .unhealthy = 3, .expect = &default_expect,
                                   .nexpect = 1, .service = "" };
    u->has_health_check = true;
    hc_obj_t o = { .hc = hc };
    if (!tg__apply(cx, v, &hc_schema, &o))
        return;
    if (o.interval && hc->timeout_ms > hc->interval_ms) {
        size_t mark = tg__path_key(cx, "timeout");
        tg__err(cx, tg__map_get(v, "timeout"), "must not exceed interval (%llums)",
                (unsigned long long)hc->interval_ms);
        tg__path_pop(cx, mark);
    } else if (!o.interval && hc->timeout_ms > hc->interval_ms) {
        hc->interval_ms = hc->timeout_ms; /* a long timeout alone stretches the default interval */
    }
}

/* ---- outlier ---- */

static void ol_failures(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t n;
    if (tg__uint(cx, v, 1, MAX_THRESHOLD, &n))
        ((tg_outlier_cfg_t *)obj)->consecutive_failures = (uint32_t)n;
}

static void ol_eject(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__duration(cx, v, 1, &((tg_outlier_cfg_t *)obj)->eject_ms);
}

static const tg__key_t outlier_keys[] = {
    { "consecutive_failures", ol_failures }, { "eject", ol_eject }, { NULL, NULL },
};
static const tg__schema_t outlier_schema = { "upstreams.*.outlier", outlier_keys, false };

void tg__load_outlier(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u)
{
    u->outlier = (tg_outlier_cfg_t){ .consecutive_failures = 5, .eject_ms = 30000 };
    tg__apply(cx, v, &outlier_schema, &u->outlier);
}

/* ---- circuit_breaker ---- */

static void cb_max_connections(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t n;
    if (tg__uint(cx, v, 1, MAX_BREAKER, &n))
        ((tg_breaker_cfg_t *)obj)->max_connections = (uint32_t)n;
}

static void cb_max_pending(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    uint64_t n;
    if (tg__uint(cx, v, 1, MAX_BREAKER, &n))
        ((tg_breaker_cfg_t *)obj)->max_pending = (uint32_t)n;
}

static const tg__key_t breaker_keys[] = {
    { "max_connections", cb_max_connections }, { "max_pending", cb_max_pending }, { NULL, NULL },
};
static const tg__schema_t breaker_schema = { "upstreams.*.circuit_breaker", breaker_keys, false };

void tg__load_circuit_breaker(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u)
{
    /* Envoy's defaults: a section given without a key still protects. */
    u->breaker = (tg_breaker_cfg_t){ .max_connections = 1024, .max_pending = 1024 };
    tg__apply(cx, v, &breaker_schema, &u->breaker);
}

/* ---- retries.non_idempotent ---- */

void tg__load_retry_non_idempotent(tg__ctx_t *cx, tg__node_t *v, tg_upstream_cfg_t *u)
{
    tg__bool(cx, v, &u->retry_non_idempotent);
}
