/* HTTP/1.1 client connections to upstream servers, with a per-worker
 * keep-alive pool. A connection serves one exchange at a time; it reports to
 * that exchange through tg_upstream_events_t and is driven through the
 * tg_upconn_ops_t of upstream/upconn.h (its first member is the tg_upconn_t),
 * so the exchange is written against that interface, not against HTTP/1.1. */
#ifndef TG_UPSTREAM_H1_CLIENT_H
#define TG_UPSTREAM_H1_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include "http/msg.h"
#include "runtime/worker.h"
#include "upstream/upconn.h"
#include "upstream/upstream.h"

typedef struct tg_h1c tg_h1c_t;

/* A connection to server `s` of upstream `u` for `ctx`: an idle pooled one
 * (*reused = true, usable at once) or a new one (connected() follows).
 * NULL when no address is known or on OOM (*err set). The result is a
 * tg_upconn_t: drive it with the tg_upconn_* calls. A 101 answer to a
 * request begun with `tunnel` turns the connection into a byte tunnel
 * (never pooled again). */
tg_upconn_t *tg_h1c_acquire(tg_worker_t *w, size_t upstream_index, tg_upstream_t *u,
                            tg_upstream_server_t *s, const tg_upstream_events_t *ev, void *ctx,
                            bool *reused, int *err);
/* Closes every idle pooled connection of worker w (drain, shutdown). */
void tg_h1c_close_idle(tg_worker_t *w);
/* Reload (runtime/worker_swap.c). Closes the idle connections of one pool
 * slot; the worker's idle arrays must be the ones they were pooled in. */
void tg_h1c_close_idle_list(tg_worker_t *w, tg_list_t *list);
/* Moves the idle connections of `list` (a slot of the previous layout) to
 * slot `slot` of the current one, now serving `s` (the same server in the
 * new generation), stamped with the current w->pool_epoch. */
void tg_h1c_pool_adopt(tg_worker_t *w, tg_list_t *list, size_t slot, tg_upstream_server_t *s);

#endif
