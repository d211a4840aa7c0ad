/* The gateway's own metric families (shared/spec/config.md "Metric names";
 * docs/operations.md lists every one with its labels). Families counted on
 * the request path live here; gauges read from shared state at scrape time
 * (connections_active, config_generation, config_reloads_total,
 * upstream_server_up) are written by the admin collector (admin/). */
#ifndef TG_OBSERVE_GATEWAY_METRICS_H
#define TG_OBSERVE_GATEWAY_METRICS_H

#include "observe/metrics.h"

extern tg_metric_def_t tg_m_requests;            /* tollgate_requests_total{route,method,code} */
extern tg_metric_def_t tg_m_request_duration;    /* tollgate_request_duration_seconds{route} */
extern tg_metric_def_t tg_m_upstream_requests;   /* tollgate_upstream_requests_total{upstream,server,code} */
extern tg_metric_def_t tg_m_upstream_duration;   /* tollgate_upstream_duration_seconds{upstream} */
extern tg_metric_def_t tg_m_connections;         /* tollgate_connections_total */
extern tg_metric_def_t tg_m_bytes_received;      /* tollgate_bytes_received_total */
extern tg_metric_def_t tg_m_bytes_sent;          /* tollgate_bytes_sent_total */

/* Registers the families above so that they are listed before they count. */
void tg_gateway_metrics_register(void);

/* The method label: the standard methods as themselves, anything else
 * "other" (a client must not be able to create series at will). */
tg_str_t tg_metric_method(tg_str_t method);

#endif
