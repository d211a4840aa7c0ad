/* Internals of the worker shared by the files of src/runtime/ (listeners.c,
 * worker_swap.c, reload.c, worker.c). Never included from outside. */
#ifndef TG_RUNTIME_WORKER_INT_H
#define TG_RUNTIME_WORKER_INT_H

#include <stdbool.h>
#include <sys/socket.h>
#include "runtime/worker.h"

/* One listening socket of one worker. Each is its own allocation so that a
 * reload can close some and add others while the rest keep accepting (libuv
 * handles never move in memory). tcp.data is the worker. */
typedef struct tg_wlistener {
    uv_tcp_t tcp;
    tg_list_t node;                /* in tg_worker_t.listeners */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    size_t index;                  /* in the current cfg->server.listen */
} tg_wlistener_t;

/* What the main thread hands a worker for a reload (runtime/reload.c). The
 * worker owns the struct and frees it once applied. */
typedef struct tg_gen_swap {
    tg_gen_t *gen;                 /* a reference, now the worker's */
    const int *carry;              /* new upstream index → old index, or -1 (shared; read only) */
    size_t ncarry;
    int *fds;                      /* per new listen entry: a pre-opened socket, or -1 = keep the old one */
    size_t nfds;
} tg_gen_swap_t;

/* A generation that a worker left while exchanges still ran on it. */
typedef struct tg_gen_old {
    tg_gen_t *gen;
    size_t live;
    struct tg_gen_old *next;
} tg_gen_old_t;

/* worker.c */
void tg__worker_on_connection(uv_stream_t *server, int status);
/* Allocates the per-upstream pool index of w->gen (idle lists, counts, WRR state). */
int tg__worker_pools_init(tg_worker_t *w);

/* listeners.c: opens one listener per address of w->gen (start-up). Returns
 * 0, or -1 after logging (the opened ones are closed). */
int tg__listeners_open(tg_worker_t *w);
/* Closes every listener (drain, stop); freed in close callbacks. */
void tg__listeners_close(tg_worker_t *w);
/* Reload: the listeners of `cfg` (the new generation's). An address that is
 * already open stays open; fds[i] >= 0 is adopted for a new address; the
 * rest are closed. Adopted fds are closed here on failure (logged). */
void tg__listeners_swap(tg_worker_t *w, const tg_config_t *cfg, int *fds, size_t nfds);
/* True when `a` and `b` are the same socket address. */
bool tg__same_sockaddr(const struct sockaddr_storage *a, socklen_t alen,
                       const struct sockaddr_storage *b, socklen_t blen);

/* worker_swap.c: on the worker's thread, from its wake callback. */
void tg__worker_apply_swap(tg_worker_t *w);
/* Frees a swap that was never applied (shutdown), with its gen and fds. */
void tg__gen_swap_free(tg_gen_swap_t *sw);

#endif
