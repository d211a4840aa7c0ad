/* Reload: the runtime state of an upstream whose definition did not change
 * moves to the new generation's copy (runtime/reload.c), so a reload does not
 * reset health verdicts, ejections, breaker and retry figures or the
 * counters /upstreams shows. In-flight counts (active, pending) are not
 * copied: requests running on the old generation release the old copy. */
#include "upstream/upstream.h"

static void copy64(atomic_uint_fast64_t *dst, atomic_uint_fast64_t *src)
{
    atomic_store_explicit(dst, atomic_load_explicit(src, memory_order_relaxed), memory_order_relaxed);
}

void tg_upstream_carry(tg_upstream_t *dst, tg_upstream_t *src)
{
    for (size_t i = 0; i < dst->nservers && i < src->nservers; i++) {
        tg_upstream_server_t *d = &dst->servers[i], *s = &src->servers[i];
        copy64(&d->requests, &s->requests);
        copy64(&d->failures, &s->failures);
        copy64(&d->ejected_until, &s->ejected_until);
        copy64(&d->ejections, &s->ejections);
        copy64(&d->health_changes, &s->health_changes);
        atomic_store(&d->health, atomic_load(&s->health));
        atomic_store(&d->consecutive_failures, atomic_load(&s->consecutive_failures));
    }
    copy64(&dst->breaker_rejections, &src->breaker_rejections);
    copy64(&dst->retries, &src->retries);
    copy64(&dst->retries_denied, &src->retries_denied);
}
