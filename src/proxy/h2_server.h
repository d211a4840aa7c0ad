/* The HTTP/2 downstream codec (nghttp2): every stream is an exchange, driven
 * through the same tg_exchange_* calls and tg_downstream_ops_t as HTTP/1.1.
 *
 * It does not own the connection: the downstream connection (proxy/
 * h1_server.c, which also does TLS and protocol detection) hands it the
 * byte stream once ALPN said "h2", a cleartext client sent the HTTP/2
 * preface, or an HTTP/1.1 request asked for `Upgrade: h2c`. Bytes come in
 * through tg_h2s_input; frames go out through the connection's sink.
 * Limits and attack bounds: docs/protocols.md. */
#ifndef TG_PROXY_H2_SERVER_H
#define TG_PROXY_H2_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "http/msg.h"
#include "net/sink.h"
#include "runtime/worker.h"

typedef struct tg_h2s tg_h2s_t;

/* What the codec needs from the connection that carries it. Everything
 * here outlives the codec (up to tg_h2s_free). */
typedef struct tg_h2s_conn {
    tg_sink_t *out;               /* the connection's write side (plaintext or TLS) */
    void (*close)(void *conn);    /* close the connection now; it calls tg_h2s_free */
    void *conn;
    const struct sockaddr *peer;
    bool tls;
    const char *cert_subject;     /* verified client certificate, or NULL */
    const char *cert_fingerprint;
} tg_h2s_conn_t;

/* The HTTP/2 client connection preface. */
#define TG_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define TG_H2_PREFACE_LEN 24

/* A codec for one connection; it queues its SETTINGS at once. NULL on OOM. */
tg_h2s_t *tg_h2s_new(tg_worker_t *w, const tg_h2s_conn_t *io);
/* h2c upgrade (RFC 7540 §3.2): `settings` is the HTTP2-Settings value
 * (base64url); stream 1 carries `req`, an HTTP/1.1 request without a body
 * (copied). 0, or -1: the upgrade cannot be done (answer it as HTTP/1.1). */
int tg_h2s_upgrade(tg_h2s_t *h, tg_str_t settings, const tg_request_t *req);
/* Bytes from the client (used during the call only). 0, or -1: the
 * connection is over (protocol error, GOAWAY sent): close it. */
int tg_h2s_input(tg_h2s_t *h, const char *p, size_t n);
/* The connection's pending sink flush completed (status < 0: failed). */
void tg_h2s_drained(tg_h2s_t *h, int status);
/* Graceful shutdown: GOAWAY, finish open streams, then close. */
void tg_h2s_drain(tg_h2s_t *h);
/* The connection is closing: aborts every exchange; the memory goes later. */
void tg_h2s_free(tg_h2s_t *h);

#endif
