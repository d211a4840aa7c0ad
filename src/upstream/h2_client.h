/* HTTP/2 client to upstream servers (nghttp2): h2c with prior knowledge, or
 * h2 over TLS with ALPN. Connections are pooled per worker and per server
 * and shared by many exchanges at once: each exchange gets a stream, driven
 * through the tg_upconn_ops_t of upstream/upconn.h and reporting through the
 * same tg_upstream_events_t as the HTTP/1.1 client. */
#ifndef TG_UPSTREAM_H2_CLIENT_H
#define TG_UPSTREAM_H2_CLIENT_H

#include <stdbool.h>
#include "runtime/worker.h"
#include "upstream/upconn.h"
#include "upstream/upstream.h"

/* A stream to server `s` of upstream `u` for `ctx`: on a live connection
 * (*reused = true, usable at once) or on one being set up (connected()
 * follows). NULL when no address is known, TLS cannot be set up, or on OOM
 * (*err set). */
tg_upconn_t *tg_h2c_acquire(tg_worker_t *w, size_t upstream_index, tg_upstream_t *u,
                            tg_upstream_server_t *s, const tg_upstream_events_t *ev, void *ctx,
                            bool *reused, int *err);
/* Drain and shutdown: closes connections without streams; the others take
 * no new stream and close when their last stream ends. */
void tg_h2c_close_idle(tg_worker_t *w);
/* Frees the worker's pool (after its loop has stopped). */
void tg_h2c_pool_free(tg_worker_t *w);

#endif
