#include "observe/gateway_metrics.h"

tg_metric_def_t tg_m_requests = TG_METRIC_COUNTER(
    "tollgate_requests_total",
    "Requests answered, by route (\"\" when none matched), method and status code.",
    "route", "method", "code");
tg_metric_def_t tg_m_request_duration = TG_METRIC_HISTOGRAM(
    "tollgate_request_duration_seconds",
    "Time from the request head to the end of the response, by route.",
    tg_metric_latency_buckets, TG_METRIC_LATENCY_NBUCKETS, "route");
tg_metric_def_t tg_m_upstream_requests = TG_METRIC_COUNTER(
    "tollgate_upstream_requests_total",
    "Tries sent to upstream servers, by upstream, server and status code "
    "(\"timeout\" or \"error\" when no response head arrived).",
    "upstream", "server", "code");
tg_metric_def_t tg_m_upstream_duration = TG_METRIC_HISTOGRAM(
    "tollgate_upstream_duration_seconds",
    "Time from sending a try to its response head (or failure), by upstream.",
    tg_metric_latency_buckets, TG_METRIC_LATENCY_NBUCKETS, "upstream");
tg_metric_def_t tg_m_connections = TG_METRIC_COUNTER(
    "tollgate_connections_total", "Client connections accepted.", NULL);
tg_metric_def_t tg_m_bytes_received = TG_METRIC_COUNTER(
    "tollgate_bytes_received_total", "Bytes read from client connections.", NULL);
tg_metric_def_t tg_m_bytes_sent = TG_METRIC_COUNTER(
    "tollgate_bytes_sent_total", "Bytes written to client connections.", NULL);

void tg_gateway_metrics_register(void)
{
    tg_metric_def_t *all[] = { &tg_m_requests, &tg_m_request_duration, &tg_m_upstream_requests,
                               &tg_m_upstream_duration, &tg_m_connections, &tg_m_bytes_received,
                               &tg_m_bytes_sent };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tg_metric_register(all[i]);
}

tg_str_t tg_metric_method(tg_str_t m)
{
    static const char *const known[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                                         "CONNECT", "TRACE" };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (tg_str_eq(m, tg_str_c(known[i])))
            return tg_str_c(known[i]);
    return TG_STR_LIT("other");
}
