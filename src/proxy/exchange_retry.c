/* The exchange's side of upstream resilience: choosing the server for each
 * try (hash key, balancer, circuit breaker), accounting a try on its server
 * (active requests, breaker counters, outlier outcomes), and deciding
 * whether a failed try may be retried (conditions, idempotency, body,
 * budget). exchange.c calls these from connect_upstream, upstream_failed
 * and ev_head; the policy is documented in docs/operations.md. */
#include "proxy/exchange_int.h"

#include "upstream/balancer.h"
#include "upstream/resilience.h"
#include "util/log.h"

/* ---- the hash key ---- */

/* The value of cookie `name` in the Cookie field(s), or an empty slice. */
static tg_str_t cookie_value(const tg_request_t *req, const char *name, size_t nlen)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!tg_str_ieq_c(req->headers[i].name, "cookie"))
            continue;
        tg_str_t v = req->headers[i].value;
        size_t pos = 0;
        while (pos < v.len) {
            size_t end = pos;
            while (end < v.len && v.p[end] != ';')
                end++;
            tg_str_t pair = tg_str_trim_ows(tg_str(v.p + pos, end - pos));
            if (pair.len > nlen && pair.p[nlen] == '=' && memcmp(pair.p, name, nlen) == 0)
                return tg_str(pair.p + nlen + 1, pair.len - nlen - 1);
            pos = end + 1;
        }
    }
    return TG_STR_NULL;
}

/* The raw value of query parameter `name` ("a=1&b=2"), or an empty slice. */
static tg_str_t query_value(tg_str_t q, const char *name, size_t nlen)
{
    size_t pos = 0;
    while (pos < q.len) {
        size_t end = pos;
        while (end < q.len && q.p[end] != '&')
            end++;
        tg_str_t pair = tg_str(q.p + pos, end - pos);
        if (pair.len >= nlen && memcmp(pair.p, name, nlen) == 0 &&
            (pair.len == nlen || pair.p[nlen] == '='))
            return pair.len == nlen ? tg_str("", 0) : tg_str(pair.p + nlen + 1, pair.len - nlen - 1);
        pos = end + 1;
    }
    return TG_STR_NULL;
}

/* The request's balance key; false when the request has none (the
 * balancer then falls back to weighted round robin). */
static bool hash_key(const tg_exchange_t *ex, const tg_upstream_t *u, uint64_t *out)
{
    tg_str_t k = TG_STR_NULL;
    switch (u->hash_kind) {
    case TG_HASH_CLIENT_IP:
        k = tg_str_c(ex->client_ip);
        break;
    case TG_HASH_PATH:
        k = ex->path;
        break;
    case TG_HASH_HEADER: {
        const tg_header_t *h = tg_headers_find(ex->req.headers, ex->req.nheaders, u->hash_name);
        if (h)
            k = h->value;
        break;
    }
    case TG_HASH_COOKIE:
        k = cookie_value(&ex->req, u->hash_name, u->hash_name_len);
        break;
    case TG_HASH_QUERY:
        k = query_value(ex->query, u->hash_name, u->hash_name_len);
        break;
    case TG_HASH_NONE:
        break;
    }
    if (k.p == NULL)
        return false;
    *out = tg_hash_bytes(k.p, k.len);
    return true;
}

/* ---- choosing and holding a server ---- */

/* A breaker limit reached: refused at once (counted), never queued. */
static bool breaker_open(tg_exchange_t *ex)
{
    tg_upstream_t *u = ex->up;
    const tg_breaker_cfg_t *b = &u->cfg->breaker;
    if ((b->max_connections && atomic_load_explicit(&u->active, memory_order_relaxed) >= (int)b->max_connections) ||
        (b->max_pending && atomic_load_explicit(&u->pending, memory_order_relaxed) >= (int)b->max_pending)) {
        atomic_fetch_add_explicit(&u->breaker_rejections, 1, memory_order_relaxed);
        return true;
    }
    return false;
}

int tg__ex_pick(tg_exchange_t *ex)
{
    tg_upstream_t *u = ex->up;
    if (breaker_open(ex))
        return TG__PICK_OVERLOADED;
    tg_pick_t p = { .swrr = ex->w->swrr[ex->up_index], .skip = ex->tried,
                    .now_ms = tg_upstream_now_ms() };
    if (u->cfg->balance == TG_BALANCE_HASH)
        p.has_hash = hash_key(ex, u, &p.hash);
    int i = tg_balancer_pick(u, &p);
    if (i < 0 && ex->tries > 0) {
        /* Every usable server was tried: a retry goes to one of them again
         * rather than nowhere (Envoy's default host predicate). */
        p.skip = NULL;
        i = tg_balancer_pick(u, &p);
    }
    return i < 0 ? TG__PICK_NONE : i;
}

void tg__ex_take_server(tg_exchange_t *ex, int i)
{
    tg_upstream_t *u = ex->up;
    ex->srv = &u->servers[i];
    ex->srv_outcome = 0;
    ex->up_label = ex->srv->cfg->address;
    atomic_fetch_add_explicit(&ex->srv->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ex->srv->requests, 1, memory_order_relaxed);
    /* The upstream-wide counters cost a shared write per request: kept only
     * when something reads them (a breaker, retries). */
    if (u->cfg->breaker.max_connections)
        atomic_fetch_add_explicit(&u->active, 1, memory_order_relaxed);
    if (ex->tries == 1 && ex->max_tries > 1)
        tg_retry_budget_request(u, tg_upstream_now_ms());
}

void tg__ex_set_pending(tg_exchange_t *ex, bool pending)
{
    if (ex->srv_pending == pending || ex->up->cfg->breaker.max_pending == 0)
        return;
    ex->srv_pending = pending;
    atomic_fetch_add_explicit(&ex->up->pending, pending ? 1 : -1, memory_order_relaxed);
}

void tg__ex_server_outcome(tg_exchange_t *ex, bool failed)
{
    /* One success per try at most; a failure after a success (a reset in
     * the body) still counts. */
    int want = failed ? 2 : 1;
    if (ex->srv == NULL || ex->srv_outcome >= want)
        return;
    ex->srv_outcome = want;
    tg_outlier_record(ex->up, ex->srv, failed, failed ? tg_upstream_now_ms() : 0);
}

void tg__ex_server_release(tg_exchange_t *ex)
{
    if (ex->srv == NULL)
        return;
    tg__ex_set_pending(ex, false);
    atomic_fetch_sub_explicit(&ex->srv->active, 1, memory_order_relaxed);
    if (ex->up->cfg->breaker.max_connections)
        atomic_fetch_sub_explicit(&ex->up->active, 1, memory_order_relaxed);
    ex->srv = NULL;
}

/* ---- retries ---- */

/* RFC 9110 §9.2.2. */
static bool idempotent(tg_str_t m)
{
    static const char *const ok[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (tg_str_eq(m, tg_str_c(ok[i])))
            return true;
    return false;
}

void tg__ex_reset_for_retry(tg_exchange_t *ex)
{
    /* Nothing of the body went out (checked by the callers): the next
     * connection gets the head again, and the end when the body is done. */
    ex->req_end_queued = false;
    ex->req_sent = false;
}

bool tg__ex_may_retry(tg_exchange_t *ex, uint32_t cause)
{
    const tg_upstream_cfg_t *c = ex->up->cfg;
    if (ex->tries >= ex->max_tries || !(c->retry_on & cause))
        return false;
    /* Bytes of the body went to the failed server and are not kept: the
     * request cannot be replayed. */
    if (ex->body_started)
        return false;
    /* A connect failure never reached the server: safe for any method.
     * Otherwise the server may have acted on the request. */
    if (cause != TG_RETRY_CONNECT_FAILURE && !c->retry_non_idempotent && !idempotent(ex->method))
        return false;
    if (!tg_retry_budget_take(ex->up, tg_upstream_now_ms())) {
        atomic_fetch_add_explicit(&ex->up->retries_denied, 1, memory_order_relaxed);
        return false;
    }
    atomic_fetch_add_explicit(&ex->up->retries, 1, memory_order_relaxed);
    tg__ex_reset_for_retry(ex);
    return true;
}

uint32_t tg__ex_failure_cause(int err, bool connecting)
{
    if (connecting)
        return TG_RETRY_CONNECT_FAILURE;
    return err == UV_ETIMEDOUT ? TG_RETRY_TIMEOUT : TG_RETRY_RESET;
}

bool tg__ex_retry_status(tg_exchange_t *ex, int status)
{
    tg__ex_server_outcome(ex, status >= 500);
    uint32_t cause = status == 502 ? TG_RETRY_502 : status == 503 ? TG_RETRY_503
                   : status == 504 ? TG_RETRY_504 : 0;
    return cause != 0 && tg__ex_may_retry(ex, cause);
}
