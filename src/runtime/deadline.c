/* Lazily re-armed timeouts: see deadline.h for why and the guarantees. */
#include "runtime/deadline.h"

#include <stddef.h>

static void on_fire(uv_timer_t *t)
{
    tg_deadline_t *d = (tg_deadline_t *)((char *)t - offsetof(tg_deadline_t, timer));
    d->armed = false;
    if (!d->pending)
        return; /* cleared since it was armed */
    uint64_t now = uv_now(t->loop);
    if (d->due > now) { /* moved later since it was armed: wait for it */
        d->armed = true;
        d->armed_at = d->due;
        uv_timer_start(&d->timer, on_fire, d->due - now, 0);
        return;
    }
    d->pending = false;
    d->cb(d);
}

void tg_deadline_init(tg_deadline_t *d, uv_loop_t *loop, tg_deadline_cb cb, void *data)
{
    uv_timer_init(loop, &d->timer);
    d->timer.data = data;
    d->cb = cb;
    d->due = d->armed_at = 0;
    d->pending = d->armed = false;
}

void tg_deadline_set(tg_deadline_t *d, uint64_t timeout_ms)
{
    uint64_t due = uv_now(d->timer.loop) + timeout_ms;
    d->due = due;
    d->pending = true;
    if (d->armed && d->armed_at <= due)
        return; /* on_fire comes first and re-arms for `due` */
    d->armed = true;
    d->armed_at = due;
    uv_timer_start(&d->timer, on_fire, timeout_ms, 0);
}
