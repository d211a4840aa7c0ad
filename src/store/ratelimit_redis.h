/* Rate limits kept in Redis, shared by every gateway pointed at it.
 *
 * One EVALSHA per request covers all of its Redis-kept limits: the script
 * reads each bucket's TAT, and only when every one allows does it advance
 * them all (so a request refused by one limit costs nothing in the others).
 * Time is Redis's own clock (TIME, in microseconds), so instances need no
 * clock agreement. A bucket key expires when its TAT passes: idle buckets
 * cost Redis nothing, and an expired key is exactly a full bucket. */
#ifndef TG_STORE_RATELIMIT_REDIS_H
#define TG_STORE_RATELIMIT_REDIS_H

#include <stdbool.h>
#include "store/ratelimit.h"
#include "store/redis.h"

/* Sends the script for n buckets (keys copied); `g` in microseconds. Same
 * contract as tg_redis_eval. */
tg_redis_call_t *tg_rl_redis_take(tg_redis_t *r, size_t n, const char *const *keys, const size_t *keylen,
                                  const tg_gcra_t *const *g, tg_redis_cb cb, void *arg, tg_redis_err_t *err);
/* Reads the script's answer: *ok (all allowed and advanced), Redis's time
 * `now` and each bucket's TAT before this request, max(TAT, now) (tats[n]).
 * Returns 0, or -1 when the reply is not that shape. */
int tg_rl_redis_parse(const struct redisReply *rep, size_t n, bool *ok, uint64_t *now, uint64_t *tats);

#endif
