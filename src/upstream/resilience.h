/* Passive outlier ejection, the retry budget and the circuit breaker's
 * counters: the per-upstream state that every worker shares, updated with
 * atomics on the request path (no lock, no allocation). Active health checks
 * are in health.h. */
#ifndef TG_UPSTREAM_RESILIENCE_H
#define TG_UPSTREAM_RESILIENCE_H

#include <stdbool.h>
#include <stdint.h>
#include "upstream/upstream.h"

/* A floor of retries per budget window, so that a quiet upstream can still
 * retry at all (Linkerd and Envoy keep such a minimum too). */
#define TG_BUDGET_MIN_RETRIES 3

/* Records the outcome of one try on server `s` of `u`: failed = a connect
 * failure, reset, timeout or 5xx answer (the contract's outlier failures).
 * Counts failures; with outlier: configured, the consecutive_failures-th
 * failure in a row ejects the server for outlier.eject (logged, counted in
 * s->ejections); a success resets the run. */
void tg_outlier_record(tg_upstream_t *u, tg_upstream_server_t *s, bool failed, uint64_t now_ms);

/* Counts a request's first try in the retry budget's window (callers count
 * only requests that may be retried, keeping the others free of the write). */
void tg_retry_budget_request(tg_upstream_t *u, uint64_t now_ms);
/* True when one more retry fits retries.budget (retries in the last
 * TG_BUDGET_SLOTS seconds <= budget% of the requests, plus the floor); the
 * retry is then counted. Budget 0% allows none. */
bool tg_retry_budget_take(tg_upstream_t *u, uint64_t now_ms);

#endif
