/* The response cache filter (RFC 9111 shared cache; docs/caching.md) and
 * the purge entry point of the admin API. */
#ifndef TG_FILTERS_CACHE_H
#define TG_FILTERS_CACHE_H

#include <stddef.h>
#include "filters/filter.h"

extern const tg_filter_t tg_filter_cache;
/* Its index in tg_filters (valid once a generation was built). */
size_t tg_cache_filter_index(void);

/* POST /cache/purge: body {"url": "/p?q", "host": "h"?} | {"prefix": "/v1/"} |
 * {"tag": "t"} | {"tags": ["a", "b"]}. Returns the HTTP status (200, or 400
 * for a malformed body) and a malloc'd JSON answer in *out ({"purged": N} or
 * an error object without request_id), NULL on OOM. Any thread. */
int tg_cache_purge_json(const char *body, size_t len, char **out);

#endif
