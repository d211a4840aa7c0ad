/* Internals of net/tls*.c (never included from outside src/net/). */
#ifndef TG_NET_TLS_INT_H
#define TG_NET_TLS_INT_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include "net/tls.h"

typedef struct tg_tls_cert {
    SSL_CTX *ssl_ctx;            /* this certificate, with the listener's settings */
    char **names;                /* DNS names it covers (SAN, else CN); may start "*." */
    size_t nnames;
    unsigned char *ocsp;         /* DER response to staple, or NULL */
    size_t ocsp_len;
} tg_tls_cert_t;

struct tg_tls_ctx {
    atomic_int refs;             /* the generation's, plus one per live session */
    tg_tls_cert_t *certs;        /* certs[0] is the default */
    size_t ncerts;
    SSL_CTX *default_ctx;        /* certs[0].ssl_ctx: every session starts here */
    unsigned char alpn[32];      /* wire format, server preference order */
    unsigned alpn_len;
    bool http11;                 /* http/1.1 offered: no ALPN match falls back to it */
};

/* Reference counting: sessions keep their listener's context (its SNI and
 * ALPN callbacks read it) alive across a reload. */
void tg__tls_ctx_retain(tg_tls_ctx_t *l);
void tg__tls_ctx_release(tg_tls_ctx_t *l);

#endif
