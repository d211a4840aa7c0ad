/* What a filter may see and do to an exchange. Every call here is for the
 * worker thread that owns the exchange. */
#ifndef TG_PROXY_FILTER_API_H
#define TG_PROXY_FILTER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "filters/filter.h"
#include "http/msg.h"
#include "runtime/worker.h"
#include "util/arena.h"

/* Who the client is, once an auth filter decided. Strings live in the
 * exchange arena (or in the config, which outlives the exchange). */
typedef struct tg_identity {
    const char *consumer;     /* NULL: anonymous */
    const char **groups;
    size_t ngroups;
    const char **scopes;
    size_t nscopes;
    const char *method;       /* "jwt", "api_key", "basic" */
    void *claims;             /* json_t * of a verified JWT (owned by the filter), or NULL */
} tg_identity_t;

/* The request as filters see it; everything is valid for the exchange's life. */
typedef struct tg_ex_request {
    tg_str_t method, target, path, host, authority, query;
    const tg_header_t *headers; /* as received (copies) */
    size_t nheaders;
    const char *client_ip;      /* after trusted_proxies */
    const struct sockaddr *client_addr;
    const tg_route_cfg_t *route;
    const tg_config_t *cfg;
    bool tls;
    const char *client_cert_subject;     /* verified TLS client certificate (RFC 4514), or NULL */
    const char *client_cert_fingerprint; /* its SHA-256, lowercase hex, or NULL */
} tg_ex_request_t;

const tg_ex_request_t *tg_ex_request(tg_exchange_t *ex);
tg_worker_t *tg_ex_worker(tg_exchange_t *ex);
const char *tg_ex_request_id(tg_exchange_t *ex);
tg_identity_t *tg_ex_identity(tg_exchange_t *ex);
/* Per-exchange state slot of filter `f` (its index in tg_filters); NULL at first. */
void **tg_ex_filter_slot(tg_exchange_t *ex, size_t f);

/* Edits of the upstream-bound request (applied when the head is built, after
 * the route's request_headers). Values are copied. */
int tg_ex_req_header_set(tg_exchange_t *ex, const char *name, tg_str_t value);
void tg_ex_req_header_remove(tg_exchange_t *ex, const char *name);
/* Replaces the query string sent upstream (without '?'; empty = none). */
int tg_ex_set_query(tg_exchange_t *ex, tg_str_t query);

/* Answers. `extra` headers and the body are copied. */
void tg_ex_respond_error(tg_exchange_t *ex, int status, const char *word, const tg_header_t *extra,
                         size_t nextra);
/* A JSON body (a complete JSON text) with Content-Type application/json. */
void tg_ex_respond_json(tg_exchange_t *ex, int status, const char *json, const tg_header_t *extra,
                        size_t nextra);
void tg_ex_respond(tg_exchange_t *ex, int status, const tg_header_t *h, size_t n, const char *body,
                   size_t len);
/* The same without copying: the header slices and the body are borrowed
 * until the exchange ends, when release(arg) is called exactly once (also
 * when the answer could not be sent). For answers from shared memory (cache
 * hits): one reference per answer instead of one copy. */
void tg_ex_respond_borrowed(tg_exchange_t *ex, int status, const tg_header_t *h, size_t n,
                            const char *body, size_t len, void (*release)(void *), void *arg);

/* Substitution of the upstream's answer (cache revalidation and
 * stale-if-error; proxy/exchange_cache_hooks.c). Set during on_request, it
 * is offered every final upstream response head before anything goes
 * downstream, and every upstream failure that would be answered 502/503/504. */
typedef struct tg_ex_subst {
    /* resp: a final head (slices valid for the call); NULL: the upstream
     * failed (err < 0, UV_ETIMEDOUT for a timeout). true claims it: the
     * exchange discards the upstream body, releases the connection, then
     * calls respond() exactly once. */
    bool (*claim)(tg_exchange_t *ex, void *arg, const tg_response_t *resp, int err);
    /* Answer now, with tg_ex_respond*. */
    void (*respond)(tg_exchange_t *ex, void *arg);
} tg_ex_subst_t;
void tg_ex_set_substitute(tg_exchange_t *ex, const tg_ex_subst_t *s, void *arg);
/* Ends a TG_FILTER_WAIT. Never call it after the filter's on_end. */
void tg_ex_filter_resume(tg_exchange_t *ex, tg_filter_ret_t r);

/* Response head edits, valid inside on_response_head. Values are copied. */
void tg_ex_resp_header_set(tg_exchange_t *ex, const char *name, tg_str_t value);
void tg_ex_resp_header_add(tg_exchange_t *ex, const char *name, tg_str_t value);
void tg_ex_resp_header_remove(tg_exchange_t *ex, const char *name);
const tg_header_t *tg_ex_resp_headers(tg_exchange_t *ex, size_t *n);

#endif
