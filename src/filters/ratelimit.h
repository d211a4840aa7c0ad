/* The rate_limit filter (docs/rate-limiting.md): GCRA buckets per route
 * entry, kept in the process (store/ratelimit.h) or in Redis
 * (store/ratelimit_redis.h); 429 with Retry-After when a limit is spent, and
 * the IETF RateLimit-Policy / RateLimit fields on every answer of a limited
 * route. */
#ifndef TG_FILTERS_RATELIMIT_H
#define TG_FILTERS_RATELIMIT_H

#include "filters/filter.h"

extern const tg_filter_t tg_filter_ratelimit;

#endif
