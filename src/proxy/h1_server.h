/* The HTTP/1.1 downstream codec: one per client connection. It parses request
 * heads and bodies from its read buffer, drives an exchange per request
 * (pipelined requests are answered in order, one at a time), and frames the
 * exchange's responses onto the wire. */
#ifndef TG_PROXY_H1_SERVER_H
#define TG_PROXY_H1_SERVER_H

#include <uv.h>
#include "runtime/worker.h"

/* Accepts one pending connection from `listener` onto worker w. */
void tg_h1s_accept(tg_worker_t *w, uv_stream_t *listener);
/* Drain: idle connections close now, busy ones after their current response. */
void tg_h1s_drain(tg_worker_t *w);
/* Closes every connection now, aborting in-flight exchanges. */
void tg_h1s_close_all(tg_worker_t *w);
/* A reload switched the worker to a new configuration: every HTTP/2 client
 * connection gets GOAWAY (NO_ERROR), finishes its open streams and closes,
 * so that the client's next requests open connections on the new one. */
void tg_h1s_reloaded(tg_worker_t *w);

#endif
