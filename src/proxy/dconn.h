/* What a downstream connection carries besides HTTP/1.1: its listener's
 * settings, an optional TLS session under the codec, and the HTTP/2 codec it
 * hands the byte stream to once ALPN, the cleartext preface or an h2c
 * upgrade says so. Embedded in the HTTP/1.1 connection (proxy/h1_server.c),
 * which stays the owner of the socket, the timers and the sink. */
#ifndef TG_PROXY_DCONN_H
#define TG_PROXY_DCONN_H

#include <stdbool.h>
#include <uv.h>
#include "net/sink.h"
#include "net/tls.h"
#include "proxy/exchange.h"
#include "proxy/h2_server.h"
#include "runtime/worker.h"

typedef struct tg_dconn {
    bool h2c;                      /* a plaintext listener that allows h2c (copied at accept:
                                      the generation may be replaced meanwhile) */
    tg_tls_conn_t *tls;            /* NULL: plaintext (the fast path: no extra copy or call) */
    tg_h2s_t *h2;                  /* set once the connection speaks HTTP/2 */
    char *cert_subject;            /* verified client certificate (malloc'd), after the handshake */
    char cert_fp[65];
    bool cert_checked;
} tg_dconn_t;

/* At accept, after the stream's data and the sink are set up: finds the
 * listener and starts TLS on it when configured (the sink then encrypts).
 * 0, or -1 on OOM (close the connection). */
int tg_dconn_init(tg_dconn_t *d, tg_worker_t *w, uv_stream_t *listener, uv_stream_t *stream,
                  tg_sink_t *out);
/* uv_read_start/uv_read_stop, through TLS when there is a session. */
int tg_dconn_read_start(tg_dconn_t *d, uv_stream_t *s, uv_alloc_cb alloc, uv_read_cb read);
void tg_dconn_read_stop(tg_dconn_t *d, uv_stream_t *s);
/* Fills info->tls and the verified client certificate (valid while d is). */
void tg_dconn_info(tg_dconn_t *d, tg_downstream_info_t *info);
/* HTTP/2 on this connection. With `upgrade` (an HTTP/1.1 request, no body):
 * answers 101 and serves it as stream 1 when it asks for `Upgrade: h2c` and
 * the listener allows h2. Without: starts the codec when the first bytes
 * say HTTP/2 (ALPN h2, or the cleartext preface; `any_request`: an
 * HTTP/1.1 request was already read, so they cannot), then feeds it p[0..n)
 * (copied as needed). `io` gives out/close/conn/peer for a new codec.
 * Returns 0 = not HTTP/2 (go on with HTTP/1.1), 1 = handled, 2 = a partial
 * preface (keep the bytes, read more), -1 = close the connection. */
int tg_dconn_h2(tg_dconn_t *d, tg_worker_t *w, tg_h2s_conn_t *io, const tg_request_t *upgrade,
                const char *p, size_t n, bool any_request);
/* The connection closes: frees the codec and the TLS session (before the
 * stream is closed). */
void tg_dconn_free(tg_dconn_t *d);

#endif
