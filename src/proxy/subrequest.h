/* Internal subrequests: an exchange with no client behind it. The request
 * runs through the route's filters and the upstream like any other; its
 * answer goes to a headless downstream that discards it. Filters observe
 * the response as usual, which is how a background cache refresh feeds the
 * store (stale-while-revalidate). */
#ifndef TG_PROXY_SUBREQUEST_H
#define TG_PROXY_SUBREQUEST_H

#include <stddef.h>
#include "http/msg.h"

typedef struct tg_exchange tg_exchange_t;

/* Starts a GET of the same target, host and client as `ex`, on ex's worker,
 * with ex's request headers minus body and conditional fields, plus `extra`
 * (which replace fields of the same name). It outlives `ex`. Returns 0, or
 * -1 when it could not start (out of memory). */
int tg_subrequest_start(tg_exchange_t *ex, const tg_header_t *extra, size_t nextra);

#endif
