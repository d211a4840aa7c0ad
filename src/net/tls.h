/* TLS termination with OpenSSL 3 over memory BIOs.
 *
 * Two halves:
 *  - tg_tls_ctx_t: what one TLS listener serves (docs/tls.md). Built from
 *    the config when a generation is built (off the event loops), shared
 *    read-only by every worker, freed with the generation. One SSL_CTX per
 *    certificate; the first is the default and SNI picks another by exact,
 *    then wildcard name. TLS 1.2/1.3 only, ALPN from `protocols`, stateless
 *    session tickets whose keys are process-wide (shared by all workers and
 *    generations) and rotated, optional OCSP staple, optional client CA.
 *  - tg_tls_conn_t: one server-side TLS session glued to a libuv stream.
 *    It looks like the stream to its user: tg_tls_read_start() takes the
 *    same alloc/read callbacks as uv_read_start() and delivers plaintext
 *    into the user's buffers; tg_tls_write() encrypts and writes. The
 *    handshake runs inside, driven by socket reads: nothing ever blocks.
 *
 * Threads: a tg_tls_conn_t belongs to the worker thread of its stream.
 * The same session type carries client TLS to upstreams
 * (tg_tls_conn_new_client, used by upstream/h1_client.c). */
#ifndef TG_NET_TLS_H
#define TG_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "config/config.h"

typedef struct tg_tls_ctx tg_tls_ctx_t;
typedef struct tg_tls_conn tg_tls_conn_t;

/* The contexts of every TLS listener of `cfg`: out[i] is NULL for a
 * plaintext listener. Returns 0, or -1 with a message naming the listener in
 * err (and nothing allocated). */
int tg_tls_build_listeners(const tg_config_t *cfg, tg_tls_ctx_t ***out, char *err, size_t errlen);
void tg_tls_free_listeners(tg_tls_ctx_t **v, size_t n);

/* One certificate file pair, checked the way a listener will load it
 * (used by the config loader for early, positioned errors). 0, or -1 with
 * a message in err. */
int tg_tls_check_pair(const char *cert, const char *key, char *err, size_t errlen);

/* ---- connections ---- */

/* A server-side session for `stream` (which must outlive the tg_tls_conn_t
 * up to tg_tls_conn_free). NULL on OOM. */
tg_tls_conn_t *tg_tls_conn_new(const tg_tls_ctx_t *ctx, uv_loop_t *loop, uv_stream_t *stream);
/* A client-side session (upstream TLS) for a connected `stream`. `ssl` is in
 * connect state with memory BIOs attached (upstream/tls_client.h makes it);
 * it belongs to the session from now on, also when this fails (NULL: OOM).
 * The handshake starts from the loop; the caller starts reading at once
 * (tg_tls_read_start: the read callback sees nothing before the handshake
 * is over). done(arg, 0) is called once when it completes, or
 * done(arg, < 0) when it fails (UV_EPROTO: refused or unverified, and
 * SSL_get_verify_result tells why; a socket error or UV_EOF), never from
 * inside a call of the caller's. */
typedef void (*tg_tls_handshake_cb)(void *arg, int status);
struct ssl_st;
tg_tls_conn_t *tg_tls_conn_new_client(struct ssl_st *ssl, uv_loop_t *loop, uv_stream_t *stream,
                                      tg_tls_handshake_cb done, void *arg);
/* Detaches from the stream and the user: no callback is called after this
 * returns; the memory goes once in-flight writes completed. The caller then
 * closes the stream as usual. */
void tg_tls_conn_free(tg_tls_conn_t *t);

/* Like uv_read_start(): alloc/read get the stream as handle. Plaintext is
 * delivered into the buffers alloc gives (a zero-length buffer means "no
 * room": read gets UV_ENOBUFS and should stop). Errors and the peer's close
 * arrive as negative nread (UV_EOF, UV_EPROTO for a failed handshake or a
 * bad record). Plaintext already decrypted or buffered when reading is
 * restarted is delivered from a zero-delay timer, never from inside this
 * call. Returns 0 or a libuv error. */
int tg_tls_read_start(tg_tls_conn_t *t, uv_alloc_cb alloc, uv_read_cb read);
void tg_tls_read_stop(tg_tls_conn_t *t);

/* Encrypts n buffers (copied into TLS records before this returns) and
 * writes the records. Returns 0 when the socket took everything, 1 when a
 * write is pending (done(arg, status) follows once it completes), or a
 * negative libuv error (done is not called). */
typedef void (*tg_tls_write_cb)(void *arg, int status);
int tg_tls_write(tg_tls_conn_t *t, const uv_buf_t *bufs, unsigned n, tg_tls_write_cb done, void *arg);

/* After the handshake: the negotiated ALPN protocol is "h2". */
bool tg_tls_alpn_h2(const tg_tls_conn_t *t);
/* After the handshake: the verified client certificate's subject (RFC 4514
 * string) and SHA-256 fingerprint (64 lowercase hex digits), copied into
 * the given buffers. false when no verified client certificate. */
bool tg_tls_peer_identity(const tg_tls_conn_t *t, char *subject, size_t subject_cap, char fp[65]);

#endif
