/* Chooses the client implementation of an upstream's protocol. */
#include "upstream/upconn.h"

#include "upstream/h1_client.h"
#include "upstream/h2_client.h"

tg_upconn_t *tg_upconn_acquire(tg_worker_t *w, size_t upstream_index, tg_upstream_t *u,
                               tg_upstream_server_t *s, const tg_upstream_events_t *ev, void *ctx,
                               bool *reused, int *err)
{
    if (u->cfg->protocol == TG_PROTO_HTTP1)
        return tg_h1c_acquire(w, upstream_index, u, s, ev, ctx, reused, err);
    return tg_h2c_acquire(w, upstream_index, u, s, ev, ctx, reused, err);
}
