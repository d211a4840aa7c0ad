/* The process: configuration generations, worker threads, signals, DNS
 * refresh and the orderly drain on SIGTERM/SIGQUIT. */
#ifndef TG_RUNTIME_RUNTIME_H
#define TG_RUNTIME_RUNTIME_H

#include <stdatomic.h>
#include <uv.h>
#include "observe/access_log.h"
#include "runtime/worker.h"

typedef struct tg_runtime {
    uv_loop_t loop;               /* the main thread's loop: signals, timers */
    tg_gen_t *gen;
    tg_worker_t *workers;
    int nworkers;
    tg_alog_t *alog;
    uv_signal_t sig_term, sig_quit, sig_int, sig_hup;
    uv_timer_t grace_timer, dns_timer;
    uv_async_t worker_exit;       /* a worker finished draining */
    atomic_int workers_left;
    atomic_int conns;             /* process-wide, for max_connections */
    bool draining;
    bool dns_busy;
    uv_work_t dns_work;
    struct tg_health *health;     /* active health checks of gen (upstream/health.h) */
    tg_gen_t *dns_gen;            /* the generation a DNS refresh in flight works on (a reference) */
    struct tg_reload *reload;     /* runtime/reload.h */
    struct tg_admin *admin;       /* admin/admin.h; NULL without an admin: section */
    int exit_code;
} tg_runtime_t;

/* Builds a generation from a loaded config (takes the reference). NULL on error. */
tg_gen_t *tg_gen_create(tg_config_t *cfg);
void tg_gen_release(tg_gen_t *g);

/* Runs the gateway on `cfg` until it is stopped; returns the exit status. */
int tg_runtime_run(tg_config_t *cfg);

#endif
