/* Client-side TLS to upstream servers (upstreams.*.tls), shared by the
 * HTTP/1.1 client (upstream/h1_client.c, which runs the session through
 * net/tls.h) and the HTTP/2 client (upstream/h2_client.c, which pumps the
 * memory BIOs itself). docs/tls.md, "TLS to upstreams".
 *
 * Policy, the same for every protocol: TLS 1.2 minimum; with tls.verify the
 * chain is checked against tls.ca (or the system store) and the name against
 * tls.sni, else the server's host (an IP literal is checked as an IP address
 * and sent without SNI, RFC 6066 §3); tls.cert/tls.key present a client
 * certificate. ALPN offers the upstream protocol's one name.
 *
 * Threads: the SSL_CTX belongs to a config generation (tg_upstream_t) and is
 * shared read-only by every worker; an SSL belongs to one connection. */
#ifndef TG_UPSTREAM_TLS_CLIENT_H
#define TG_UPSTREAM_TLS_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include "upstream/upstream.h"

/* The context for upstream `u` offering `alpn` (wire format: length-prefixed
 * names). Loads tls.ca and the client certificate: call it off the event
 * loops. NULL on failure (logged with the upstream's name). */
SSL_CTX *tg_tlsc_ctx_new(const tg_upstream_cfg_t *u, const unsigned char *alpn, size_t alpn_len);
/* The same, offering the name of u->protocol ("http/1.1" or "h2"). */
SSL_CTX *tg_tlsc_ctx_for(const tg_upstream_cfg_t *u);

/* A session to server `s` of upstream `u` (u->tls_ctx): connect state,
 * memory read/write BIOs attached, SNI and name check set. The caller owns
 * it (SSL_free). NULL when the upstream has no context or on OOM. */
SSL *tg_tlsc_ssl_new(const tg_upstream_t *u, const tg_upstream_server_t *s);

/* One handshake step over the memory BIOs: 1 done, 0 needs more bytes from
 * the server (send what the write BIO holds first), -1 failed (logged, with
 * the verification error when there is one). */
int tg_tlsc_handshake(SSL *ssl, const tg_upstream_cfg_t *u, const tg_upstream_server_t *s);
/* Logs why the handshake with server `s` failed (verification error, else
 * the OpenSSL reason) and clears the thread's OpenSSL error queue. */
void tg_tlsc_log_failure(SSL *ssl, const tg_upstream_cfg_t *u, const tg_upstream_server_t *s);

/* Decrypts what the read BIO holds into buf[0..cap): > 0 bytes, 0 when more
 * ciphertext is needed, TG_TLSC_CLOSED after the server's close_notify, or
 * TG_TLSC_ERROR. */
enum { TG_TLSC_CLOSED = -1, TG_TLSC_ERROR = -2 };
long tg_tlsc_read(SSL *ssl, char *buf, size_t cap);

/* Encrypts n bytes into the write BIO (a memory BIO takes everything).
 * 0, or -1 on error. */
int tg_tlsc_write(SSL *ssl, const void *p, size_t n);
/* Moves the records waiting in the write BIO to put(arg, bytes, len), in
 * order, until it is empty. 0, or -1 when put failed. */
int tg_tlsc_drain(SSL *ssl, int (*put)(void *arg, const void *p, size_t n), void *arg);

#endif
