/* The Redis GCRA script and its reply (ratelimit_redis.h). */
#include "store/ratelimit_redis.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>

#define MAX_KEYS 16

/* ARGV holds interval and tolerance (us) per key. Lua numbers are doubles:
 * microsecond times (~2^51 today) are exact, and string.format('%d') keeps
 * every digit where tostring() would round. */
static tg_redis_script_t script = {
    .text =
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
        "local ok = 1\n"
        "local eff = {}\n"
        "for i = 1, #KEYS do\n"
        "  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0\n"
        "  if tat < now then tat = now end\n"
        "  eff[i] = tat\n"
        "  if tat - now > tonumber(ARGV[2 * i]) then ok = 0 end\n"
        "end\n"
        "if ok == 1 then\n"
        "  for i = 1, #KEYS do\n"
        "    local new = eff[i] + tonumber(ARGV[2 * i - 1])\n"
        "    redis.call('SET', KEYS[i], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1)\n"
        "  end\n"
        "end\n"
        "local out = {ok, string.format('%d', now)}\n"
        "for i = 1, #KEYS do out[#out + 1] = string.format('%d', eff[i]) end\n"
        "return out\n",
};
static pthread_once_t script_once = PTHREAD_ONCE_INIT;

static void script_init(void) { tg_redis_script_init(&script); }

tg_redis_call_t *tg_rl_redis_take(tg_redis_t *r, size_t n, const char *const *keys, const size_t *keylen,
                                  const tg_gcra_t *const *g, tg_redis_cb cb, void *arg, tg_redis_err_t *err)
{
    pthread_once(&script_once, script_init);
    if (n == 0 || n > MAX_KEYS) {
        *err = TG_REDIS_NOMEM;
        return NULL;
    }
    char nums[2 * MAX_KEYS][24];
    const char *args[2 * MAX_KEYS];
    size_t arglen[2 * MAX_KEYS];
    for (size_t i = 0; i < n; i++) {
        arglen[2 * i] = (size_t)snprintf(nums[2 * i], sizeof nums[0], "%llu", (unsigned long long)g[i]->interval);
        arglen[2 * i + 1] = (size_t)snprintf(nums[2 * i + 1], sizeof nums[0], "%llu",
                                             (unsigned long long)g[i]->tolerance);
        args[2 * i] = nums[2 * i];
        args[2 * i + 1] = nums[2 * i + 1];
    }
    return tg_redis_eval(r, &script, n, keys, keylen, 2 * n, args, arglen, cb, arg, err);
}

static int as_u64(const redisReply *e, uint64_t *out)
{
    if (e->type == REDIS_REPLY_INTEGER && e->integer >= 0) {
        *out = (uint64_t)e->integer;
        return 0;
    }
    if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < e->len; i++) {
        if (e->str[i] < '0' || e->str[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(e->str[i] - '0');
    }
    *out = v;
    return 0;
}

int tg_rl_redis_parse(const struct redisReply *rep, size_t n, bool *ok, uint64_t *now, uint64_t *tats)
{
    uint64_t flag;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != n + 2)
        return -1;
    if (as_u64(rep->element[0], &flag) < 0 || flag > 1 || as_u64(rep->element[1], now) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (as_u64(rep->element[2 + i], &tats[i]) < 0)
            return -1;
    *ok = flag == 1;
    return 0;
}
