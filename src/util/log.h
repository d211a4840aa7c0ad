/* The error log: one line per event, written with a single write(2) so that
 * lines from several threads never interleave. Levels follow server.error_log. */
#ifndef TG_UTIL_LOG_H
#define TG_UTIL_LOG_H

enum { TG_LOG_DEBUG = 0, TG_LOG_INFO, TG_LOG_WARN, TG_LOG_ERROR };

/* fd and minimum level; called at start and on reload. Default: stderr, info. */
void tg_log_setup(int fd, int level);
void tg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tg_log_debug(...) tg_log(TG_LOG_DEBUG, __VA_ARGS__)
#define tg_log_info(...) tg_log(TG_LOG_INFO, __VA_ARGS__)
#define tg_log_warn(...) tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_log_error(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)

#endif
