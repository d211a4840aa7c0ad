/* Client-side TLS to upstream servers: contexts, sessions, and the memory
 * BIO steps (see upstream/tls_client.h). */
#include "upstream/tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>
#include "util/log.h"

static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

SSL_CTX *tg_tlsc_ctx_new(const tg_upstream_cfg_t *u, const unsigned char *alpn, size_t alpn_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *what = "context";
    bool ok = ctx != NULL;
    if (ok) {
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        /* Idle pooled connections keep no record buffers. */
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
        ok = SSL_CTX_set_alpn_protos(ctx, alpn, (unsigned)alpn_len) == 0;
    }
    if (ok && u->tls.verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        what = u->tls.ca ? u->tls.ca : "the system CA store";
        ok = u->tls.ca ? SSL_CTX_load_verify_locations(ctx, u->tls.ca, NULL) == 1
                       : SSL_CTX_set_default_verify_paths(ctx) == 1;
    }
    if (ok && u->tls.cert) {
        what = u->tls.cert;
        ok = SSL_CTX_use_certificate_chain_file(ctx, u->tls.cert) == 1 &&
             SSL_CTX_use_PrivateKey_file(ctx, u->tls.key, SSL_FILETYPE_PEM) == 1 &&
             SSL_CTX_check_private_key(ctx) == 1;
    }
    if (!ok) {
        tg_log_error("upstream %s: TLS setup failed (%s): %s", u->name, what, ssl_reason());
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *tg_tlsc_ctx_for(const tg_upstream_cfg_t *u)
{
    static const unsigned char h1[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
    static const unsigned char h2[] = { 2, 'h', '2' };
    if (u->protocol == TG_PROTO_HTTP1)
        return tg_tlsc_ctx_new(u, h1, sizeof h1);
    return tg_tlsc_ctx_new(u, h2, sizeof h2);
}

static bool is_ip(const char *h)
{
    unsigned char b[16];
    return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

/* SNI and the name the certificate must carry. */
static bool set_peer_name(SSL *ssl, const tg_upstream_cfg_t *u, const char *name)
{
    bool ip = is_ip(name);
    if (!ip && SSL_set_tlsext_host_name(ssl, name) != 1)
        return false;
    if (!u->tls.verify)
        return true;
    if (ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, name) == 1;
}

SSL *tg_tlsc_ssl_new(const tg_upstream_t *u, const tg_upstream_server_t *s)
{
    if (u->tls_ctx == NULL)
        return NULL; /* its setup failed (logged when the generation was built) */
    SSL *ssl = SSL_new(u->tls_ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (ssl == NULL || rb == NULL || wb == NULL) {
        SSL_free(ssl);
        BIO_free(rb);
        BIO_free(wb);
        return NULL;
    }
    BIO_set_mem_eof_return(rb, -1); /* empty = "want read", not EOF */
    BIO_set_mem_eof_return(wb, -1);
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    if (!set_peer_name(ssl, u->cfg, u->cfg->tls.sni ? u->cfg->tls.sni : s->cfg->host)) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

void tg_tlsc_log_failure(SSL *ssl, const tg_upstream_cfg_t *u, const tg_upstream_server_t *s)
{
    long v = SSL_get_verify_result(ssl);
    tg_log_warn("upstream %s: TLS handshake with %s failed: %s", u->name, s->cfg->address,
                v != X509_V_OK ? X509_verify_cert_error_string(v) : ssl_reason());
    ERR_clear_error();
}

int tg_tlsc_handshake(SSL *ssl, const tg_upstream_cfg_t *u, const tg_upstream_server_t *s)
{
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    tg_tlsc_log_failure(ssl, u, s);
    return -1;
}

long tg_tlsc_read(SSL *ssl, char *buf, size_t cap)
{
    size_t n = 0;
    int r = SSL_read_ex(ssl, buf, cap, &n);
    if (r == 1)
        return (long)n;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    ERR_clear_error();
    return e == SSL_ERROR_ZERO_RETURN ? TG_TLSC_CLOSED : TG_TLSC_ERROR;
}

int tg_tlsc_write(SSL *ssl, const void *p, size_t n)
{
    size_t w = 0;
    if (n == 0)
        return 0;
    if (SSL_write_ex(ssl, p, n, &w) != 1 || w != n) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

int tg_tlsc_drain(SSL *ssl, int (*put)(void *arg, const void *p, size_t n), void *arg)
{
    BIO *wb = SSL_get_wbio(ssl);
    char *p = NULL;
    long len = BIO_get_mem_data(wb, &p);
    /* One contiguous block: hand it over as is, then empty the BIO. */
    int r = len > 0 ? put(arg, p, (size_t)len) : 0;
    (void)BIO_reset(wb);
    return r;
}
