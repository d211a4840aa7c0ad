#include "observe/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct alog_chunk {
    struct alog_chunk *next;
    size_t len;
    char data[TG_ALOG_BUF_SIZE];
} alog_chunk_t;

struct tg_alog {
    int fd;
    bool own_fd;
    tg_log_format_t format;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    alog_chunk_t *head, *tail; /* queue of full buffers, FIFO */
    size_t queued;
    size_t allocated;          /* chunks in existence, bounded by TG_ALOG_MAX_BUFS */
    alog_chunk_t *free;
    bool stop;
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* a failing log must not take the gateway down */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void *writer_main(void *arg)
{
    tg_alog_t *log = arg;
    pthread_mutex_lock(&log->mu);
    for (;;) {
        while (log->head == NULL && !log->stop)
            pthread_cond_wait(&log->cv, &log->mu);
        if (log->head == NULL && log->stop)
            break;
        alog_chunk_t *c = log->head;
        log->head = c->next;
        if (log->head == NULL)
            log->tail = NULL;
        log->queued--;
        pthread_mutex_unlock(&log->mu);
        write_all(log->fd, c->data, c->len);
        pthread_mutex_lock(&log->mu);
        c->next = log->free;
        log->free = c;
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

tg_alog_t *tg_alog_open(const char *path, tg_log_format_t format, const char **err)
{
    tg_alog_t *log = calloc(1, sizeof *log);
    if (log == NULL) {
        *err = "out of memory";
        return NULL;
    }
    log->format = format;
    if (path == NULL || strcmp(path, "stdout") == 0) {
        log->fd = 1;
    } else if (strcmp(path, "stderr") == 0) {
        log->fd = 2;
    } else {
        log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log->fd < 0) {
            *err = strerror(errno);
            free(log);
            return NULL;
        }
        log->own_fd = true;
    }
    pthread_mutex_init(&log->mu, NULL);
    pthread_cond_init(&log->cv, NULL);
    if (pthread_create(&log->thread, NULL, writer_main, log) != 0) {
        *err = "cannot start the access log thread";
        if (log->own_fd)
            close(log->fd);
        free(log);
        return NULL;
    }
    return log;
}

void tg_alog_close(tg_alog_t *log)
{
    if (log == NULL)
        return;
    pthread_mutex_lock(&log->mu);
    log->stop = true;
    pthread_cond_signal(&log->cv);
    pthread_mutex_unlock(&log->mu);
    pthread_join(log->thread, NULL);
    while (log->free) {
        alog_chunk_t *n = log->free->next;
        free(log->free);
        log->free = n;
    }
    if (log->own_fd)
        close(log->fd);
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->cv);
    free(log);
}

/* Takes a free chunk, or makes one while under the bound. NULL = drop. */
static alog_chunk_t *chunk_get(tg_alog_t *log)
{
    alog_chunk_t *c = NULL;
    pthread_mutex_lock(&log->mu);
    if (log->free) {
        c = log->free;
        log->free = c->next;
    } else if (log->allocated < TG_ALOG_MAX_BUFS) {
        c = malloc(sizeof *c);
        if (c)
            log->allocated++;
    }
    pthread_mutex_unlock(&log->mu);
    if (c) {
        c->next = NULL;
        c->len = 0;
    }
    return c;
}

static void chunk_queue(tg_alog_t *log, alog_chunk_t *c)
{
    pthread_mutex_lock(&log->mu);
    if (log->tail)
        log->tail->next = c;
    else
        log->head = c;
    log->tail = c;
    log->queued++;
    pthread_cond_signal(&log->cv);
    pthread_mutex_unlock(&log->mu);
}

static alog_chunk_t *chunk_of(char *buf) { return (alog_chunk_t *)(buf - offsetof(alog_chunk_t, data)); }

void tg_alog_worker_flush(tg_alog_worker_t *w)
{
    if (w->buf == NULL || w->len == 0)
        return;
    alog_chunk_t *c = chunk_of(w->buf);
    c->len = w->len;
    chunk_queue(w->log, c);
    w->buf = NULL;
    w->len = 0;
}

static void on_timer(uv_timer_t *t)
{
    tg_alog_worker_t *w = t->data;
    w->timer_armed = false;
    tg_alog_worker_flush(w);
}

void tg_alog_worker_init(tg_alog_worker_t *w, tg_alog_t *log, uv_loop_t *loop)
{
    memset(w, 0, sizeof *w);
    w->log = log;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    uv_unref((uv_handle_t *)&w->timer);
}

void tg_alog_worker_close(tg_alog_worker_t *w)
{
    tg_alog_worker_flush(w);
    if (w->buf) { /* empty buffer still held */
        alog_chunk_t *c = chunk_of(w->buf);
        c->len = 0;
        chunk_queue(w->log, c);
        w->buf = NULL;
    }
    uv_close((uv_handle_t *)&w->timer, NULL);
}

/* JSON string escaping into dst; returns bytes written (dst has room for 6*n). */
static size_t json_escape(char *dst, tg_str_t s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            dst[o++] = '\\';
            dst[o++] = 'u';
            dst[o++] = '0';
            dst[o++] = '0';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        } else {
            dst[o++] = (char)c;
        }
    }
    return o;
}

/* Caps a field so that one line always fits a buffer. */
static tg_str_t cap(tg_str_t s, size_t max) { return s.len > max ? tg_str(s.p, max) : s; }

static size_t format_json(char *out, const tg_alog_entry_t *e)
{
    char ts[40];
    time_t sec = (time_t)(e->time_ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof ts - tl, ".%03uZ", (unsigned)((e->time_ns / 1000000ull) % 1000));
    char *o = out;
    o += sprintf(o, "{\"time\":\"%s\",\"request_id\":\"", ts);
    o += json_escape(o, cap(e->request_id, 128));
    o += sprintf(o, "\",\"client_ip\":\"%s\",\"method\":\"", e->client_ip ? e->client_ip : "");
    o += json_escape(o, cap(e->method, 32));
    o += sprintf(o, "\",\"host\":\"");
    o += json_escape(o, cap(e->host, 256));
    o += sprintf(o, "\",\"path\":\"");
    o += json_escape(o, cap(e->path, 2048));
    o += sprintf(o, "\",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f,\"route\":",
                 e->status, (unsigned long long)e->bytes_in, (unsigned long long)e->bytes_out,
                 e->duration_ms);
    if (e->route) {
        *o++ = '"';
        o += json_escape(o, cap(tg_str_c(e->route), 256));
        *o++ = '"';
    } else {
        o += sprintf(o, "null");
    }
    if (e->upstream_addr)
        o += sprintf(o, ",\"upstream_addr\":\"%.256s\"", e->upstream_addr);
    else
        o += sprintf(o, ",\"upstream_addr\":null");
    if (e->upstream_status)
        o += sprintf(o, ",\"upstream_status\":%d", e->upstream_status);
    else
        o += sprintf(o, ",\"upstream_status\":null");
    if (e->upstream_ms >= 0)
        o += sprintf(o, ",\"upstream_ms\":%.3f}\n", e->upstream_ms);
    else
        o += sprintf(o, ",\"upstream_ms\":null}\n");
    return (size_t)(o - out);
}

/* Apache/nginx "combined" with quoted fields escaped as nginx does (\xHH). */
static size_t escape_combined(char *dst, tg_str_t s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        } else {
            dst[o++] = (char)c;
        }
    }
    return o;
}

static size_t format_combined(char *out, const tg_alog_entry_t *e)
{
    char ts[40];
    time_t sec = (time_t)(e->time_ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&sec, &tm);
    strftime(ts, sizeof ts, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    char *o = out;
    o += sprintf(o, "%s - - [%s] \"", e->client_ip ? e->client_ip : "-", ts);
    o += escape_combined(o, cap(e->method, 32));
    *o++ = ' ';
    o += escape_combined(o, cap(e->path, 2048));
    o += sprintf(o, " HTTP/1.%d\" %d %llu \"", e->minor_version, e->status,
                 (unsigned long long)e->bytes_out);
    o += e->referer.len ? escape_combined(o, cap(e->referer, 512)) : (size_t)sprintf(o, "-");
    o += sprintf(o, "\" \"");
    o += e->user_agent.len ? escape_combined(o, cap(e->user_agent, 512)) : (size_t)sprintf(o, "-");
    o += sprintf(o, "\"\n");
    return (size_t)(o - out);
}

/* Worst case of one line: every capped field escaped at 6x, plus fixed text. */
#define LINE_MAX_BYTES (6 * (128 + 32 + 256 + 2048 + 256 + 512 + 512) + 1024)

bool tg_alog_on(const tg_alog_worker_t *w) { return w->log != NULL && w->log->format != TG_LOG_OFF; }

void tg_alog_write(tg_alog_worker_t *w, const tg_alog_entry_t *e)
{
    tg_alog_t *log = w->log;
    if (log == NULL || log->format == TG_LOG_OFF)
        return;
    if (w->buf && TG_ALOG_BUF_SIZE - w->len < LINE_MAX_BYTES)
        tg_alog_worker_flush(w);
    if (w->buf == NULL) {
        alog_chunk_t *c = chunk_get(log);
        if (c == NULL) {
            atomic_fetch_add_explicit(&w->dropped, 1, memory_order_relaxed);
            return;
        }
        w->buf = c->data;
        w->len = 0;
    }
    char *dst = w->buf + w->len;
    w->len += log->format == TG_LOG_JSON ? format_json(dst, e) : format_combined(dst, e);
    if (!w->timer_armed) {
        uv_timer_start(&w->timer, on_timer, 100, 0);
        w->timer_armed = true;
    }
}
