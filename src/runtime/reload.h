/* Hot reload (SIGHUP, POST /reload): the file is read, validated and compiled
 * into a new generation on the libuv thread pool, never on an event loop.
 * Nothing changes when that fails. Otherwise new listeners are opened up
 * front (so a port in use fails the reload, not a worker), the state of
 * upstreams whose definition did not change is carried over, and the
 * generation is posted to every worker, which switches between two
 * callbacks; exchanges keep the generation they started on. The reload is
 * over when every worker has switched. An old generation is freed on the
 * main thread once no worker and no exchange uses it. */
#ifndef TG_RUNTIME_RELOAD_H
#define TG_RUNTIME_RELOAD_H

#include <stdbool.h>
#include <stdint.h>
#include "runtime/runtime.h"

typedef struct tg_reload_result {
    int status;                /* 200 live everywhere; 400 invalid config; 503 cannot now */
    uint64_t generation;       /* the generation serving after the attempt */
    const char *const *errors; /* what was wrong (status != 200), borrowed for the call */
    size_t nerrors;
} tg_reload_result_t;

typedef void (*tg_reload_cb)(void *arg, const tg_reload_result_t *res);

/* Sets up the reload machinery on the main loop (after the workers started);
 * also numbers the first generation 1. Returns 0 or -1 (OOM). */
int tg_reload_init(tg_runtime_t *rt);
/* Starts a reload, or joins the next one when one is running (a request
 * made during a reload must see a file read after it was made). cb (may be
 * NULL) is called exactly once on the main thread, unless tg_reload_forget. */
void tg_reload_request(tg_runtime_t *rt, tg_reload_cb cb, void *arg);
/* The waiter `arg` went away: its callback will not be called. */
void tg_reload_forget(tg_runtime_t *rt, void *arg);
/* Shutdown, after the workers were joined: answers waiters with 503, frees
 * swaps never applied and every generation handed back. */
void tg_reload_close(tg_runtime_t *rt);
/* Successful and failed reloads so far. */
uint64_t tg_reload_count(const tg_runtime_t *rt, bool ok);

/* For the workers (any thread). */
void tg__reload_worker_switched(tg_runtime_t *rt);
void tg__reload_gen_done(tg_runtime_t *rt, tg_gen_t *g);

#endif
