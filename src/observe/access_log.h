/* The access log: workers format lines into their own buffer and hand full
 * buffers (or, every 100 ms, partial ones) to one writer thread through a
 * bounded queue. A worker never blocks on the disk: when the queue is full the
 * line is dropped and counted. Lines never interleave: only the writer writes,
 * and a buffer only ever holds whole lines. */
#ifndef TG_OBSERVE_ACCESS_LOG_H
#define TG_OBSERVE_ACCESS_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "config/config.h"

#define TG_ALOG_BUF_SIZE (64 * 1024)
#define TG_ALOG_MAX_BUFS 64

typedef struct tg_alog tg_alog_t;

/* One request's fields. Strings are borrowed for the duration of the call. */
typedef struct tg_alog_entry {
    uint64_t time_ns;       /* request start, CLOCK_REALTIME */
    tg_str_t request_id;
    const char *client_ip;
    tg_str_t method;
    tg_str_t host;
    tg_str_t path;          /* target as received, for the log */
    int minor_version;
    int status;
    uint64_t bytes_in;
    uint64_t bytes_out;
    double duration_ms;
    const char *route;      /* NULL when none */
    const char *upstream_addr; /* NULL when none */
    int upstream_status;    /* 0 when none */
    double upstream_ms;     /* < 0 when none */
    tg_str_t user_agent;
    tg_str_t referer;
} tg_alog_entry_t;

/* Per-worker side: owned by one worker thread. */
typedef struct tg_alog_worker {
    tg_alog_t *log;
    char *buf;              /* current buffer, NULL until the first line */
    size_t len;
    uv_timer_t timer;       /* flushes a partial buffer after 100 ms */
    bool timer_armed;
    atomic_uint_fast64_t dropped;
} tg_alog_worker_t;

/* Opens the log ("stdout", "stderr" or a file path, appended) and starts the
 * writer thread. NULL with *err set when the file cannot be opened. */
tg_alog_t *tg_alog_open(const char *path, tg_log_format_t format, const char **err);
/* Flushes every queued buffer, stops the writer and closes the file. */
void tg_alog_close(tg_alog_t *log);

void tg_alog_worker_init(tg_alog_worker_t *w, tg_alog_t *log, uv_loop_t *loop);
/* Whether lines are written (a log is open and its format is not off). */
bool tg_alog_on(const tg_alog_worker_t *w);
/* Formats and queues one line (no-op when the format is off). */
void tg_alog_write(tg_alog_worker_t *w, const tg_alog_entry_t *e);
/* Hands the partial buffer to the writer now (shutdown). */
void tg_alog_worker_flush(tg_alog_worker_t *w);
/* Closes the timer; call before the worker loop ends. */
void tg_alog_worker_close(tg_alog_worker_t *w);

#endif
