/* Internals of the admin API shared by src/admin/ files. */
#ifndef TG_ADMIN_ADMIN_INT_H
#define TG_ADMIN_ADMIN_INT_H

#include <stdbool.h>
#include "admin/admin.h"
#include "http/msg.h"
#include "observe/metrics.h"
#include "util/list.h"

#define TG_ADMIN_MAX_CONNS 128        /* more are closed at accept */
#define TG_ADMIN_MAX_HEAD 16384
#define TG_ADMIN_MAX_BODY (64 * 1024)  /* request bodies (purge, ...) */
#define TG_ADMIN_TIMEOUT_MS 30000      /* head/body arrival, idle keep-alive */

typedef struct tg_admin {
    uv_tcp_t listener;             /* first: freed through its close callback */
    tg_runtime_t *rt;
    tg_list_t conns;
    size_t nconns;
} tg_admin_t;

/* One request. Slices point into the connection's buffer, valid until the
 * answer; the handler answers with tg__admin_reply, now or later (reload). */
typedef struct tg_admin_req {
    struct tg_admin_conn *conn;    /* NULL once the client went away */
    tg_admin_t *admin;
    tg_str_t method, path, query;
    const tg_header_t *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
    char request_id[33];
} tg_admin_req_t;

typedef void (*tg_admin_handler_fn)(tg_admin_req_t *r);

/* The endpoint table (endpoints.c); adding an endpoint is one line there. */
typedef struct tg_admin_endpoint {
    const char *method;            /* "GET" (HEAD is served too) or "POST" */
    const char *path;              /* exact path */
    bool open;                     /* true: no token needed (/health /ready /metrics) */
    tg_admin_handler_fn fn;
} tg_admin_endpoint_t;
extern const tg_admin_endpoint_t tg__admin_endpoints[];

/* Answers `r` (once); body and content type are copied. */
void tg__admin_reply(tg_admin_req_t *r, int status, const char *ctype, const char *body, size_t len);
/* {"error":word,"status":N,"request_id":...} plus extra headers ("Name: value\r\n"...). */
void tg__admin_error(tg_admin_req_t *r, int status, const char *word, const char *extra_headers);
void tg__admin_reply_json(tg_admin_req_t *r, int status, const char *json);

/* The collector of runtime gauges for /metrics (endpoints.c). */
void tg__admin_collect(tg_metrics_out_t *out, void *arg);

/* POST /cache/purge (admin_cache.c; docs/caching.md). */
void tg__admin_cache_purge(tg_admin_req_t *r);

#endif
