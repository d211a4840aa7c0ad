#include "upstream/resilience.h"

#include "util/log.h"

void tg_outlier_record(tg_upstream_t *u, tg_upstream_server_t *s, bool failed, uint64_t now_ms)
{
    if (!failed) {
        /* Read first: the common case (no failure streak) writes nothing shared. */
        if (atomic_load_explicit(&s->consecutive_failures, memory_order_relaxed) != 0)
            atomic_store_explicit(&s->consecutive_failures, 0, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
    const tg_outlier_cfg_t *oc = &u->cfg->outlier;
    if (oc->consecutive_failures == 0)
        return;
    unsigned n = atomic_fetch_add_explicit(&s->consecutive_failures, 1, memory_order_relaxed) + 1;
    if (n < oc->consecutive_failures)
        return;
    uint_fast64_t until = atomic_load_explicit(&s->ejected_until, memory_order_relaxed);
    if (until > now_ms)
        return; /* already out (failures of tries started before the ejection) */
    /* One thread wins the transition: it alone counts and logs it. */
    if (!atomic_compare_exchange_strong(&s->ejected_until, &until, now_ms + oc->eject_ms))
        return;
    atomic_store_explicit(&s->consecutive_failures, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->ejections, 1, memory_order_relaxed);
    tg_log_info("upstream %s: server %s ejected for %llu ms after %u consecutive failures",
                u->cfg->name, s->cfg->address, (unsigned long long)oc->eject_ms, n);
}

/* The slot of second `sec`, recycled (zeroed) when it still holds an older
 * second. Two threads may race on a recycle; the loser's count lands in the
 * fresh slot or is lost, which keeps the budget approximate but bounded. */
static unsigned slot_of(tg_retry_budget_t *b, uint64_t sec)
{
    unsigned i = (unsigned)(sec % TG_BUDGET_SLOTS);
    uint_fast64_t old = atomic_load_explicit(&b->sec[i], memory_order_acquire);
    if (old != sec && atomic_compare_exchange_strong(&b->sec[i], &old, sec)) {
        atomic_store_explicit(&b->requests[i], 0, memory_order_relaxed);
        atomic_store_explicit(&b->retries[i], 0, memory_order_relaxed);
    }
    return i;
}

void tg_retry_budget_request(tg_upstream_t *u, uint64_t now_ms)
{
    unsigned i = slot_of(&u->budget, now_ms / 1000);
    atomic_fetch_add_explicit(&u->budget.requests[i], 1, memory_order_relaxed);
}

bool tg_retry_budget_take(tg_upstream_t *u, uint64_t now_ms)
{
    uint32_t pct = u->cfg->retry_budget_pct;
    if (pct == 0)
        return false;
    uint64_t sec = now_ms / 1000, requests = 0, retries = 0;
    tg_retry_budget_t *b = &u->budget;
    for (unsigned i = 0; i < TG_BUDGET_SLOTS; i++) {
        uint64_t s = atomic_load_explicit(&b->sec[i], memory_order_acquire);
        if (s + TG_BUDGET_SLOTS <= sec || s > sec)
            continue; /* outside the window */
        requests += atomic_load_explicit(&b->requests[i], memory_order_relaxed);
        retries += atomic_load_explicit(&b->retries[i], memory_order_relaxed);
    }
    if (pct < 100 && retries >= TG_BUDGET_MIN_RETRIES + requests * pct / 100)
        return false;
    unsigned i = slot_of(b, sec);
    atomic_fetch_add_explicit(&b->retries[i], 1, memory_order_relaxed);
    return true;
}
