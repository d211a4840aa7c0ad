#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_fd = 2;
static atomic_int log_level = TG_LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void tg_log_setup(int fd, int level)
{
    atomic_store(&log_fd, fd);
    atomic_store(&log_level, level);
}

void tg_log(int level, const char *fmt, ...)
{
    if (level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ [%s] ", ts.tv_nsec / 1000000,
                  level_names[level & 3]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t r = write(atomic_load(&log_fd), line, (size_t)n);
    (void)r; /* nowhere to report a failing error log */
}
