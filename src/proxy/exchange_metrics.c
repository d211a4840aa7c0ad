/* The per-request metrics. Three table lookups per proxied request (one per
 * labelled family) on the worker's own shard: no lock, no locked instruction
 * (docs/performance.md has the measured cost). */
#include "proxy/exchange_metrics.h"

#include <stdio.h>
#include "observe/gateway_metrics.h"

static tg_str_t code_str(char buf[4], int status)
{
    if (status < 100 || status > 999)
        status = 0;
    buf[0] = (char)('0' + status / 100);
    buf[1] = (char)('0' + status / 10 % 10);
    buf[2] = (char)('0' + status % 10);
    return tg_str(buf, 3);
}

void tg__ex_count(tg_exchange_t *ex, uint64_t now)
{
    tg_metrics_shard_t *m = ex->w->metrics;
    if (m == NULL)
        return;
    char code[4];
    tg_str_t route = ex->route ? tg_str_c(ex->route->name) : TG_STR_LIT("");
    tg_str_t labels[3] = { route, tg_metric_method(ex->method), code_str(code, ex->status) };
    tg_metric_inc(m, &tg_m_requests, labels);
    tg_metric_observe(m, &tg_m_request_duration, labels, (double)(now - ex->t0) / 1e9);
}

void tg__ex_count_try(tg_exchange_t *ex, int status, int err, uint64_t now)
{
    tg_metrics_shard_t *m = ex->w->metrics;
    if (m == NULL || ex->srv == NULL || ex->up == NULL)
        return;
    char code[4];
    tg_str_t c = status ? code_str(code, status) : err == UV_ETIMEDOUT ? TG_STR_LIT("timeout") : TG_STR_LIT("error");
    tg_str_t labels[3] = { tg_str_c(ex->up->cfg->name), tg_str_c(ex->srv->cfg->address), c };
    tg_metric_inc(m, &tg_m_upstream_requests, labels);
    if (status) /* the duration is to the response head; failures have none */
        tg_metric_observe(m, &tg_m_upstream_duration, labels, (double)(now - ex->t_up) / 1e9);
}
