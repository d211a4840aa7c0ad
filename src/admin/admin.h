/* The admin listener (admin.listen): a small HTTP/1.1 server on the main
 * thread's loop with GET /health /ready /metrics /upstreams /config /stats
 * and POST /reload (docs/operations.md). No admin: section, no listener. */
#ifndef TG_ADMIN_ADMIN_H
#define TG_ADMIN_ADMIN_H

#include "runtime/runtime.h"

/* Opens the listener of rt->gen's admin section (nothing without one).
 * Main thread. Returns 0, or -1 after logging (the port is taken, OOM). */
int tg_admin_start(tg_runtime_t *rt);
/* Closes the listener and every admin connection (shutdown). */
void tg_admin_close(tg_runtime_t *rt);

#endif
