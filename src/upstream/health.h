/* Active health checks: one checker per server of every upstream that has
 * health_check:, run on ONE loop for the whole process (the runtime's main
 * loop), never per worker. A checker sends "GET <path>" on a new connection
 * every interval, waits at most timeout for the status line, and after
 * `unhealthy` failures in a row marks the server down (`healthy` successes in
 * a row bring it back). The verdict is published to the workers through the
 * atomic tg_upstream_server_t.health; every transition is logged and counted
 * in health_changes. HTTP/2 upstreams (h2c, h2, grpc) are checked over
 * HTTP/2 by upstream/health_h2.c on the same connection machinery. */
#ifndef TG_UPSTREAM_HEALTH_H
#define TG_UPSTREAM_HEALTH_H

#include <uv.h>
#include "upstream/upstream.h"

typedef struct tg_health tg_health_t;

/* Starts the checkers for `ups` on `loop` (the caller's thread runs it).
 * `ups` must stay alive until tg_health_stop. Returns NULL when no upstream
 * has health_check: or on OOM (logged: the gateway then runs unchecked). */
tg_health_t *tg_health_start(uv_loop_t *loop, tg_upstreams_t *ups);
/* Stops every checker and aborts checks in flight; no callback touches `ups`
 * afterwards. The memory is freed by close callbacks when the loop runs
 * again. NULL is accepted. Call on the loop's thread. */
void tg_health_stop(tg_health_t *h);

#endif
