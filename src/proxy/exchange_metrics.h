/* Counting exchanges into the worker's metrics shard (observe/gateway_metrics.h).
 * proxy/ only; every call is for the worker thread that owns the exchange. */
#ifndef TG_PROXY_EXCHANGE_METRICS_H
#define TG_PROXY_EXCHANGE_METRICS_H

#include "proxy/exchange_int.h"

/* The exchange ends at `now` (uv_hrtime): requests_total and
 * request_duration_seconds. */
void tg__ex_count(tg_exchange_t *ex, uint64_t now);
/* A try on ex->srv ended: with a response head of `status` that came at
 * `now` (uv_hrtime; its time to the head is observed), or (status 0) without
 * one, `err` saying why (UV_ETIMEDOUT: "timeout", else "error"). */
void tg__ex_count_try(tg_exchange_t *ex, int status, int err, uint64_t now);

#endif
