/* The listening sockets of a worker, as a list of separately allocated
 * handles so that a reload can keep, add and remove them one by one. */
#include "runtime/worker_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "net/listener.h"
#include "util/log.h"

bool tg__same_sockaddr(const struct sockaddr_storage *a, socklen_t alen,
                       const struct sockaddr_storage *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    free(tg_container_of((uv_tcp_t *)h, tg_wlistener_t, tcp));
}

static void close_one(tg_wlistener_t *l)
{
    tg_list_remove(&l->node);
    uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

/* Wraps a listening fd (taken: closed on failure) into a new listener. */
static int add_fd(tg_worker_t *w, const tg_listen_cfg_t *cfg, size_t index, int fd)
{
    tg_wlistener_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        close(fd);
        return UV_ENOMEM;
    }
    uv_tcp_init(&w->loop, &l->tcp);
    l->tcp.data = w;
    l->addr = cfg->addr;
    l->addr_len = cfg->addr_len;
    l->index = index;
    tg_list_init(&l->node);
    int r = uv_tcp_open(&l->tcp, fd);
    if (r < 0)
        close(fd); /* not the handle's yet */
    else
        r = uv_listen((uv_stream_t *)&l->tcp, 511, tg__worker_on_connection);
    if (r < 0) {
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed); /* closes an opened fd */
        return r;
    }
    tg_list_insert_tail(&w->listeners, &l->node);
    return 0;
}

int tg__listeners_open(tg_worker_t *w)
{
    const tg_server_cfg_t *s = &w->gen->cfg->server;
    for (size_t i = 0; i < s->nlisten; i++) {
        const tg_listen_cfg_t *l = &s->listen[i];
        int fd = tg_listener_socket((const struct sockaddr *)&l->addr, l->addr_len);
        int r = fd < 0 ? fd : add_fd(w, l, i, fd);
        if (r < 0) {
            tg_log_error("cannot listen on %s: %s", l->address, uv_strerror(r));
            tg__listeners_close(w);
            return -1;
        }
    }
    return 0;
}

void tg__listeners_close(tg_worker_t *w)
{
    while (!tg_list_empty(&w->listeners))
        close_one(tg_container_of(w->listeners.next, tg_wlistener_t, node));
}

void tg__listeners_swap(tg_worker_t *w, const tg_config_t *cfg, int *fds, size_t nfds)
{
    const tg_server_cfg_t *s = &cfg->server;
    tg_list_t keep;
    tg_list_init(&keep);
    for (size_t i = 0; i < s->nlisten; i++) {
        const tg_listen_cfg_t *lc = &s->listen[i];
        tg_list_t *n = w->listeners.next;
        for (; n != &w->listeners; n = n->next) {
            tg_wlistener_t *l = tg_container_of(n, tg_wlistener_t, node);
            if (tg__same_sockaddr(&l->addr, l->addr_len, &lc->addr, lc->addr_len)) {
                l->index = i;
                tg_list_remove(&l->node);
                tg_list_insert_tail(&keep, &l->node);
                break;
            }
        }
        if (n != &w->listeners || i >= nfds || fds[i] < 0)
            continue;
        int fd = fds[i];
        fds[i] = -1;
        tg_list_t *saved = w->listeners.prev;
        int r = add_fd(w, lc, i, fd);
        if (r < 0) {
            tg_log_error("worker %d: cannot listen on %s: %s", w->id, lc->address, uv_strerror(r));
            continue;
        }
        tg_wlistener_t *l = tg_container_of(saved->next, tg_wlistener_t, node);
        tg_list_remove(&l->node);
        tg_list_insert_tail(&keep, &l->node);
    }
    tg__listeners_close(w); /* addresses the new configuration no longer has */
    while (!tg_list_empty(&keep)) {
        tg_list_t *n = keep.next;
        tg_list_remove(n);
        tg_list_insert_tail(&w->listeners, n);
    }
}
