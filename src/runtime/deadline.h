/* A one-shot timeout that is cheap to move later and to cancel.
 *
 * The proxy re-arms a timeout on every request of a keep-alive connection
 * (idle, response, pool idle), and uv_timer_start/stop are heap operations
 * on the loop's timer heap. A deadline keeps its uv timer armed at the
 * earliest time it may be needed: setting a later deadline or clearing one
 * touches no heap; when the armed time comes and the deadline has moved on,
 * the timer re-arms itself for what is then due. Only a deadline earlier
 * than the armed time re-arms at once. nginx's ngx_add_timer makes the same
 * trade with a 300 ms slack; here it is exact: the callback never runs before
 * the due time and, as with a plain uv timer, no later than the loop
 * iteration that follows it.
 *
 * Time is the loop's cached clock (uv_now), in milliseconds. */
#ifndef TG_RUNTIME_DEADLINE_H
#define TG_RUNTIME_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct tg_deadline tg_deadline_t;
typedef void (*tg_deadline_cb)(tg_deadline_t *d);

struct tg_deadline {
    uv_timer_t timer;   /* data is the owner's (tg_deadline_data) */
    tg_deadline_cb cb;
    uint64_t due;       /* loop time of the wanted callback, when pending */
    uint64_t armed_at;  /* loop time the uv timer fires, when armed */
    bool pending;
    bool armed;
};

/* Initialises d on loop (uv_timer_init); data is for the owner's callback. */
void tg_deadline_init(tg_deadline_t *d, uv_loop_t *loop, tg_deadline_cb cb, void *data);

/* The callback runs timeout_ms from now (the loop's time), replacing any
 * earlier or later due time. 0 = on the next loop iteration. */
void tg_deadline_set(tg_deadline_t *d, uint64_t timeout_ms);

/* No callback until the next set. */
static inline void tg_deadline_clear(tg_deadline_t *d) { d->pending = false; }

static inline bool tg_deadline_pending(const tg_deadline_t *d) { return d->pending; }

static inline void *tg_deadline_data(const tg_deadline_t *d) { return d->timer.data; }

/* The uv handle, for uv_close (which also stops it). */
static inline uv_handle_t *tg_deadline_handle(tg_deadline_t *d) { return (uv_handle_t *)&d->timer; }

#endif
