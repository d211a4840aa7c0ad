/* Internals of the rate-limit filter (filters/ratelimit*.c only). */
#ifndef TG_FILTERS_RATELIMIT_INT_H
#define TG_FILTERS_RATELIMIT_INT_H

#include <stdatomic.h>
#include "filters/filter.h"
#include "proxy/exchange.h"
#include "proxy/filter_api.h"
#include "store/ratelimit.h"

/* The counting key of entry `c` for this request, tagged by kind, or "-"
 * (the entry's shared bucket for requests without a value). The bytes live
 * in the exchange arena. Returns 0, or -1 on OOM. */
int tg__rl_key(tg_exchange_t *ex, const tg_rate_limit_cfg_t *c, tg_str_t *out);

#endif
