/* The HTTP/2 half of an active health check (upstream/health.c runs the
 * connection, TLS, timers and verdict bookkeeping; this is the protocol).
 * One nghttp2 client session per check, over memory: the caller writes what
 * tg_hh2_output() gives and feeds what the server sends to tg_hh2_input().
 *
 * What is checked (docs/operations.md, "Active checks over HTTP/2"):
 *  - protocol h2c / h2: one `GET <path>` stream (:scheme http or https,
 *    :authority = the server's address); the final :status judged against
 *    health_check.expect, the same rule as the HTTP/1.1 check.
 *  - protocol grpc: the standard grpc.health.v1.Health/Check unary call with
 *    an empty service name (the server's overall health); healthy only with
 *    :status 200, grpc-status 0 and a response whose status is SERVING.
 *    health_check.path and expect do not apply. */
#ifndef TG_UPSTREAM_HEALTH_H2_H
#define TG_UPSTREAM_HEALTH_H2_H

#include <stdbool.h>
#include <stddef.h>
#include "upstream/upstream.h"

typedef struct tg_hh2 tg_hh2_t;

/* A session for one check of server `s` of upstream `u` (protocol h2c, h2
 * or grpc), with the preface, SETTINGS and the request queued. NULL on OOM
 * or when the request cannot be built (a path too long). */
tg_hh2_t *tg_hh2_new(const tg_upstream_cfg_t *u, const tg_server_addr_cfg_t *s);
void tg_hh2_free(tg_hh2_t *h);

/* Everything the session has to send, in one malloc'd buffer the caller
 * owns (*out NULL and *len 0 when there is nothing). 0, or -1 on a session
 * error or OOM. */
int tg_hh2_output(tg_hh2_t *h, char **out, size_t *len);

/* Feeds n bytes from the server. 1 when the verdict is known (read it with
 * tg_hh2_verdict), 0 when more bytes are needed, -1 on an HTTP/2 protocol
 * error (the check failed). */
int tg_hh2_input(tg_hh2_t *h, const char *p, size_t n);

/* The verdict, once tg_hh2_input returned 1: true when healthy; `why`
 * (a short reason for the log, e.g. "status 503") is filled either way. */
bool tg_hh2_verdict(const tg_hh2_t *h, char *why, size_t whylen);

#endif
