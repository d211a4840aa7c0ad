/* Unit tests for upstream/tls_client.c: sessions made from an upstream's
 * config, driven over memory BIOs against an in-process OpenSSL server with
 * a throwaway self-signed certificate. */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <string.h>
#include "upstream/tls_client.h"
#include "check_run.h"

typedef struct peer {
    SSL_CTX *sctx;
    SSL *srv;               /* the server side, memory BIOs */
    char sni[64];           /* what the server received */
} peer_t;

static int on_sni(SSL *s, int *al, void *arg)
{
    peer_t *p = arg;
    const char *n = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    snprintf(p->sni, sizeof p->sni, "%s", n ? n : "(none)");
    return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned inlen, void *arg)
{
    *out = in + 1; /* the client's first (and only) offer */
    *outlen = in[0];
    return SSL_TLSEXT_ERR_OK;
}

/* A server with a fresh P-256 key and a self-signed certificate for "srv.test". */
static void peer_init(peer_t *p)
{
    memset(p, 0, sizeof *p);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ck_assert(k && x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"srv.test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    ck_assert(X509_sign(x, k, EVP_sha256()) > 0);
    p->sctx = SSL_CTX_new(TLS_server_method());
    ck_assert(SSL_CTX_use_certificate(p->sctx, x) == 1 && SSL_CTX_use_PrivateKey(p->sctx, k) == 1);
    SSL_CTX_set_tlsext_servername_callback(p->sctx, on_sni);
    SSL_CTX_set_tlsext_servername_arg(p->sctx, p);
    SSL_CTX_set_alpn_select_cb(p->sctx, on_alpn, NULL);
    X509_free(x);
    EVP_PKEY_free(k);
    p->srv = SSL_new(p->sctx);
    SSL_set_bio(p->srv, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_accept_state(p->srv);
}

static void peer_free(peer_t *p)
{
    SSL_free(p->srv);
    SSL_CTX_free(p->sctx);
}

static int put_bio(void *arg, const void *d, size_t n) { return BIO_write(arg, d, (int)n) == (int)n ? 0 : -1; }

/* Moves the server's pending records to the client's read BIO. */
static void srv_to_cli(peer_t *p, SSL *cli)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(SSL_get_wbio(p->srv), buf, sizeof buf)) > 0)
        BIO_write(SSL_get_rbio(cli), buf, n);
}

/* Runs the handshake to its end: the client's verdict (1 or -1). */
static int handshake(peer_t *p, SSL *cli, const tg_upstream_t *u)
{
    for (int round = 0; round < 10; round++) {
        int r = tg_tlsc_handshake(cli, u->cfg, &u->servers[0]);
        ck_assert_int_eq(tg_tlsc_drain(cli, put_bio, SSL_get_rbio(p->srv)), 0);
        if (r != 0)
            return r;
        (void)SSL_do_handshake(p->srv);
        srv_to_cli(p, cli);
    }
    return 0;
}

typedef struct up {
    tg_upstream_cfg_t cfg;
    tg_server_addr_cfg_t scfg;
    tg_upstream_server_t srv;
    tg_upstream_t u;
} up_t;

static void up_init(up_t *x, const char *host, const char *sni, bool verify)
{
    memset(x, 0, sizeof *x);
    x->cfg.name = "app";
    x->cfg.protocol = TG_PROTO_HTTP1;
    x->cfg.tls.enabled = true;
    x->cfg.tls.verify = verify;
    x->cfg.tls.sni = sni;
    x->scfg.address = "srv:443";
    x->scfg.host = host;
    x->srv.cfg = &x->scfg;
    x->u.cfg = &x->cfg;
    x->u.servers = &x->srv;
    x->u.nservers = 1;
    x->u.tls_ctx = tg_tlsc_ctx_for(&x->cfg);
    ck_assert_ptr_nonnull(x->u.tls_ctx);
}

START_TEST(unverified_session_roundtrip)
{
    peer_t p;
    up_t x;
    peer_init(&p);
    up_init(&x, "127.0.0.1", "srv.test", false);
    SSL *cli = tg_tlsc_ssl_new(&x.u, &x.srv);
    ck_assert_ptr_nonnull(cli);
    ck_assert_int_eq(handshake(&p, cli, &x.u), 1);
    ck_assert_str_eq(p.sni, "srv.test");
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(cli, &alpn, &alen);
    ck_assert(alen == 8 && memcmp(alpn, "http/1.1", 8) == 0);
    /* client -> server */
    ck_assert_int_eq(tg_tlsc_write(cli, "GET / HTTP/1.1\r\n\r\n", 18), 0);
    ck_assert_int_eq(tg_tlsc_drain(cli, put_bio, SSL_get_rbio(p.srv)), 0);
    char buf[64];
    ck_assert_int_eq(SSL_read(p.srv, buf, sizeof buf), 18);
    ck_assert(memcmp(buf, "GET / HTTP/1.1\r\n\r\n", 18) == 0);
    /* server -> client, then close_notify */
    ck_assert_int_eq(SSL_write(p.srv, "HTTP/1.1 200 OK\r\n", 17), 17);
    SSL_shutdown(p.srv);
    srv_to_cli(&p, cli);
    long n = 0, total = 0;
    while ((n = tg_tlsc_read(cli, buf + total, sizeof buf - (size_t)total)) > 0)
        total += n;
    ck_assert_int_eq(total, 17);
    ck_assert_int_eq(n, TG_TLSC_CLOSED);
    SSL_free(cli);
    SSL_CTX_free(x.u.tls_ctx);
    peer_free(&p);
}
END_TEST

START_TEST(ip_host_sends_no_sni)
{
    peer_t p;
    up_t x;
    peer_init(&p);
    up_init(&x, "127.0.0.1", NULL, false);
    SSL *cli = tg_tlsc_ssl_new(&x.u, &x.srv);
    ck_assert_int_eq(handshake(&p, cli, &x.u), 1);
    ck_assert_str_eq(p.sni, "(none)");
    SSL_free(cli);
    SSL_CTX_free(x.u.tls_ctx);
    peer_free(&p);
}
END_TEST

START_TEST(verified_session_refuses_unknown_issuer)
{
    peer_t p;
    up_t x;
    peer_init(&p);
    up_init(&x, "srv.test", NULL, true); /* system store: our self-signed cert is unknown */
    SSL *cli = tg_tlsc_ssl_new(&x.u, &x.srv);
    ck_assert_int_eq(handshake(&p, cli, &x.u), -1);
    ck_assert_int_ne(SSL_get_verify_result(cli), X509_V_OK);
    ck_assert_str_eq(p.sni, "srv.test"); /* the host is the default SNI */
    SSL_free(cli);
    SSL_CTX_free(x.u.tls_ctx);
    peer_free(&p);
}
END_TEST

START_TEST(no_context_no_session)
{
    up_t x;
    up_init(&x, "srv.test", NULL, true);
    SSL_CTX_free(x.u.tls_ctx);
    x.u.tls_ctx = NULL; /* setup failed when the generation was built */
    ck_assert_ptr_null(tg_tlsc_ssl_new(&x.u, &x.srv));
    x.cfg.tls.ca = "/nonexistent/ca.pem";
    ck_assert_ptr_null(tg_tlsc_ctx_for(&x.cfg));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls_client");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, unverified_session_roundtrip);
    tcase_add_test(tc, ip_host_sends_no_sni);
    tcase_add_test(tc, verified_session_refuses_unknown_issuer);
    tcase_add_test(tc, no_context_no_session);
    suite_add_tcase(s, tc);
    return tg_check_run(s);
}
