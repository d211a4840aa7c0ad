/* The admin API's HTTP/1.1 server: one request at a time per connection
 * (pipelined ones wait in the buffer), bodies by Content-Length only, bounded
 * buffers and timeouts, keep-alive. It reuses the gateway's strict request
 * parser; there is no proxying here, so the simple buffer-and-answer shape
 * is enough. Runs on the main thread's loop. */
#include "admin/admin_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "http/h1.h"
#include "observe/metrics.h"
#include "runtime/reload.h"
#include "util/log.h"

typedef struct tg_admin_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    tg_admin_t *a;
    tg_list_t node;
    char *buf;                     /* TG_ADMIN_MAX_HEAD + TG_ADMIN_MAX_BODY */
    size_t len;
    size_t used;                   /* bytes of the request being answered */
    tg_admin_req_t *req;           /* being answered (a handler may be waiting) */
    uv_write_t wreq;
    char *out;                     /* the answer being written */
    bool keep_alive, closing, writing;
    int handles;
} tg_admin_conn_t;

#define BUF_SIZE (TG_ADMIN_MAX_HEAD + TG_ADMIN_MAX_BODY)

static void process(tg_admin_conn_t *c);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void on_conn_closed(uv_handle_t *h)
{
    tg_admin_conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    free(c->buf);
    free(c->out);
    free(c);
}

static void conn_close(tg_admin_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->req) { /* a handler still holds it (reload): its answer frees it unsent */
        c->req->conn = NULL;
        c->req = NULL;
    }
    tg_list_remove(&c->node);
    c->a->nconns--;
    c->handles = 2;
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_timeout(uv_timer_t *t) { conn_close(t->data); }

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    tg_admin_conn_t *c = h->data;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(BUF_SIZE - c->len));
}

static void on_written(uv_write_t *w, int status)
{
    tg_admin_conn_t *c = w->data;
    c->writing = false;
    free(c->out);
    c->out = NULL;
    if (c->closing)
        return;
    if (status < 0 || !c->keep_alive) {
        conn_close(c);
        return;
    }
    memmove(c->buf, c->buf + c->used, c->len - c->used);
    c->len -= c->used;
    c->used = 0;
    uv_timer_start(&c->timer, on_timeout, TG_ADMIN_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    process(c);
}

static void send_answer(tg_admin_conn_t *c, int status, const char *ctype, const char *extra,
                        const char *rid, const char *body, size_t len)
{
    size_t cap = 512 + strlen(ctype) + (extra ? strlen(extra) : 0) + len;
    c->out = malloc(cap);
    if (c->out == NULL) {
        conn_close(c);
        return;
    }
    int n = snprintf(c->out, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Request-Id: %s\r\n%s%s\r\n",
                     status, tg_http_reason(status), ctype, len, rid, extra ? extra : "",
                     c->keep_alive ? "" : "Connection: close\r\n");
    memcpy(c->out + n, body, len);
    uv_buf_t b = uv_buf_init(c->out, (unsigned)(n + len));
    c->wreq.data = c;
    c->writing = true;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        c->writing = false;
        conn_close(c);
    }
}

static void reply(tg_admin_req_t *r, int status, const char *ctype, const char *extra, const char *body, size_t len)
{
    tg_admin_conn_t *c = r->conn;
    if (c) {
        c->req = NULL;
        if (r->method.len == 4 && memcmp(r->method.p, "HEAD", 4) == 0)
            len = 0;
        send_answer(c, status, ctype, extra, r->request_id, body, len);
    }
    free(r);
}

void tg__admin_reply(tg_admin_req_t *r, int status, const char *ctype, const char *body, size_t len)
{
    reply(r, status, ctype, NULL, body, len);
}

void tg__admin_reply_json(tg_admin_req_t *r, int status, const char *json)
{
    reply(r, status, "application/json", NULL, json, strlen(json));
}

void tg__admin_error(tg_admin_req_t *r, int status, const char *word, const char *extra_headers)
{
    char body[192];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"status\":%d,\"request_id\":\"%s\"}\n", word,
                     status, r->request_id);
    reply(r, status, "application/json", extra_headers, body, (size_t)n);
}

static void new_request_id(char out[33])
{
    unsigned char raw[16] = { 0 };
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        uint64_t t = uv_hrtime();
        memcpy(raw, &t, sizeof t);
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* A codec-level error before any request object exists: answer and close. */
static void bad_request(tg_admin_conn_t *c, int status, const char *word)
{
    tg_admin_req_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        conn_close(c);
        return;
    }
    r->conn = c;
    c->keep_alive = false;
    new_request_id(r->request_id);
    tg__admin_error(r, status, word, NULL);
}

/* Bearer token check, in constant time over the token's length. */
static int authorize(const tg_admin_req_t *r, const char *token)
{
    if (token == NULL)
        return 0;
    const tg_header_t *h = tg_headers_find(r->headers, r->nheaders, "authorization");
    if (h == NULL || h->value.len < 7 || strncasecmp(h->value.p, "Bearer ", 7) != 0)
        return 401;
    tg_str_t given = tg_str_trim_ows(tg_str(h->value.p + 7, h->value.len - 7));
    size_t tl = strlen(token);
    bool same_len = given.len == tl;
    /* Compare against the token itself when lengths differ, so the time
     * taken depends only on the token's length. */
    int diff = CRYPTO_memcmp(same_len ? given.p : token, token, tl);
    return same_len && diff == 0 ? 0 : 403;
}

static void dispatch(tg_admin_conn_t *c, tg_admin_req_t *r)
{
    bool head = tg_str_eq(r->method, TG_STR_LIT("HEAD"));
    const tg_admin_endpoint_t *hit = NULL;
    bool path_known = false;
    for (const tg_admin_endpoint_t *e = tg__admin_endpoints; e->path; e++) {
        if (!tg_str_eq(r->path, tg_str_c(e->path)))
            continue;
        path_known = true;
        if (tg_str_eq(r->method, tg_str_c(e->method)) || (head && strcmp(e->method, "GET") == 0))
            hit = e;
    }
    if (hit == NULL) {
        if (path_known)
            tg__admin_error(r, 405, "method_not_allowed", NULL);
        else
            tg__admin_error(r, 404, "not_found", NULL);
        return;
    }
    const tg_config_t *cfg = c->a->rt->gen->cfg; /* the token of the live generation */
    int denied = hit->open ? 0 : authorize(r, cfg->admin.token);
    if (denied == 401)
        tg__admin_error(r, 401, "unauthorized", "WWW-Authenticate: Bearer realm=\"tollgate-admin\"\r\n");
    else if (denied)
        tg__admin_error(r, 403, "forbidden", NULL);
    else
        hit->fn(r);
}

static void process(tg_admin_conn_t *c)
{
    if (c->req || c->writing || c->closing || c->len == 0)
        return;
    tg_header_t hdrs[101];
    tg_h1_limits_t lim = { .max_header_bytes = TG_ADMIN_MAX_HEAD, .max_headers = 100, .max_uri_bytes = 8192 };
    tg_request_t req;
    int n = tg_h1_parse_request(c->buf, c->len, &lim, hdrs, 101, &req);
    if (n == TG_H1_INCOMPLETE) {
        if (c->len >= TG_ADMIN_MAX_HEAD)
            bad_request(c, 431, "headers_too_large");
        return;
    }
    if (n < 0) {
        bad_request(c, tg_h1_err_status(n), tg_h1_err_name(n));
        return;
    }
    if (req.body == TG_BODY_CHUNKED) {
        bad_request(c, 411, "length_required");
        return;
    }
    uint64_t blen = req.body == TG_BODY_LENGTH ? req.content_length : 0;
    if (blen > TG_ADMIN_MAX_BODY) {
        bad_request(c, 413, "body_too_large");
        return;
    }
    if (c->len < (size_t)n + blen)
        return; /* the body is still arriving */
    tg_admin_req_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        conn_close(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp); /* the slices point into buf */
    uv_timer_stop(&c->timer);
    c->used = (size_t)n + blen;
    c->keep_alive = req.keep_alive;
    c->req = r;
    *r = (tg_admin_req_t){ .conn = c, .admin = c->a, .method = req.method, .path = req.path,
                           .query = req.query, .headers = hdrs, .nheaders = req.nheaders,
                           .body = c->buf + n, .body_len = blen };
    new_request_id(r->request_id);
    /* Handlers that answer later must copy what they need: the header
     * scratch is on this stack. */
    dispatch(c, r);
    if (c->req == r) {
        r->headers = NULL;
        r->nheaders = 0;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    tg_admin_conn_t *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    if (c->len == BUF_SIZE && c->req == NULL)
        uv_read_stop(s);
    process(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    tg_admin_t *a = server->data;
    if (status < 0)
        return;
    tg_admin_conn_t *c = calloc(1, sizeof *c);
    if (c)
        c->buf = malloc(BUF_SIZE);
    if (c == NULL || c->buf == NULL) {
        free(c);
        return;
    }
    c->a = a;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    tg_list_insert_tail(&a->conns, &c->node);
    a->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || a->nconns > TG_ADMIN_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, TG_ADMIN_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int tg_admin_start(tg_runtime_t *rt)
{
    const tg_admin_cfg_t *cfg = &rt->gen->cfg->admin;
    if (!cfg->enabled)
        return 0;
    tg_admin_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return -1;
    a->rt = rt;
    tg_list_init(&a->conns);
    uv_tcp_init(&rt->loop, &a->listener);
    a->listener.data = a;
    int r = uv_tcp_bind(&a->listener, (const struct sockaddr *)&cfg->listen.addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
    if (r < 0) {
        tg_log_error("admin: cannot listen on %s: %s", cfg->listen.address, uv_strerror(r));
        uv_close((uv_handle_t *)&a->listener, (uv_close_cb)free);
        return -1;
    }
    rt->admin = a;
    tg_metrics_add_collector(tg__admin_collect, rt);
    tg_log_info("admin API listening on %s", cfg->listen.address);
    return 0;
}

void tg_admin_close(tg_runtime_t *rt)
{
    tg_admin_t *a = rt->admin;
    if (a == NULL)
        return;
    rt->admin = NULL;
    tg_metrics_remove_collector(tg__admin_collect, rt);
    while (!tg_list_empty(&a->conns))
        conn_close(tg_container_of(a->conns.next, tg_admin_conn_t, node));
    uv_close((uv_handle_t *)&a->listener, (uv_close_cb)free);
}
