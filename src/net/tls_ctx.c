/* TLS listener contexts: certificates by SNI, ALPN, session tickets with
 * process-wide rotating keys, OCSP stapling, client certificates.
 * Built off the event loops when a generation is built; read-only after. */
#include "net/tls_int.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Modern defaults (Mozilla "intermediate" without DHE): TLS 1.2 gets AEAD
 * ECDHE suites only; TLS 1.3 keeps OpenSSL's default suites. */
#define TLS12_CIPHERS                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Ticket keys: a new key every hour; tickets made with the two previous
 * keys are still accepted (and renewed), so a ticket lives at most 3 hours
 * and a stolen key opens at most that much traffic. */
#define TICKET_ROTATE_S 3600
#define TICKET_KEEP 2
#define SESSION_TIMEOUT_S 7200

typedef struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    time_t created;
} ticket_key_t;

/* Process-wide: every worker and every generation share these keys, so a
 * ticket issued by one worker (or before a reload) resumes on any other. */
static struct {
    pthread_mutex_t lock;
    ticket_key_t keys[1 + TICKET_KEEP]; /* keys[0] = current */
    size_t n;
} ticket_ring = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int ex_index_ocsp = -1, ex_index_listener = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_init(void)
{
    ex_index_ocsp = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ex_index_listener = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Formats a message into err, followed by OpenSSL's reason when it has one. */
static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    unsigned long e = ERR_peek_last_error();
    char why[200] = "";
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (e && n > 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - (size_t)n, " (%s)", why);
}

/* ---- session tickets ---- */

/* Returns the current key, rotating it when it is too old. Lock held. */
static const ticket_key_t *ring_current(time_t now)
{
    if (ticket_ring.n > 0 && now - ticket_ring.keys[0].created < TICKET_ROTATE_S)
        return &ticket_ring.keys[0];
    ticket_key_t k;
    if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1 ||
        RAND_bytes(k.hmac, sizeof k.hmac) != 1)
        return ticket_ring.n ? &ticket_ring.keys[0] : NULL;
    k.created = now;
    memmove(&ticket_ring.keys[1], &ticket_ring.keys[0], TICKET_KEEP * sizeof k);
    ticket_ring.keys[0] = k;
    if (ticket_ring.n < 1 + TICKET_KEEP)
        ticket_ring.n++;
    return &ticket_ring.keys[0];
}

static int hmac_init(EVP_MAC_CTX *hctx, const unsigned char *key)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key, 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* OpenSSL's ticket callback: 1 = key set, 2 = decrypted with an old key
 * (issue a fresh ticket), 0 = unknown key (full handshake), -1 = error. */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    int ret = -1;
    pthread_mutex_lock(&ticket_ring.lock);
    if (enc) {
        const ticket_key_t *k = ring_current(time(NULL));
        if (k && RAND_bytes(iv, 16) == 1 &&
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 && hmac_init(hctx, k->hmac) == 1) {
            memcpy(name, k->name, 16);
            ret = 1;
        }
    } else {
        ret = 0;
        for (size_t i = 0; i < ticket_ring.n; i++) {
            const ticket_key_t *k = &ticket_ring.keys[i];
            if (memcmp(name, k->name, 16) != 0)
                continue;
            bool ok = hmac_init(hctx, k->hmac) == 1 &&
                      EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1;
            ret = !ok ? -1 : i == 0 ? 1 : 2;
            break;
        }
    }
    pthread_mutex_unlock(&ticket_ring.lock);
    return ret;
}

/* ---- SNI ---- */

/* Does `pattern` (a certificate name, maybe "*.example.com") cover `host`?
 * A wildcard stands for exactly one leftmost label. */
static bool name_matches(const char *pattern, const char *host, bool wildcard)
{
    if (!wildcard)
        return pattern[0] != '*' && strcasecmp(pattern, host) == 0;
    if (pattern[0] != '*' || pattern[1] != '.')
        return false;
    const char *dot = strchr(host, '.');
    return dot != NULL && dot != host && strcasecmp(pattern + 1, dot) == 0;
}

static SSL_CTX *pick_by_name(const tg_tls_ctx_t *l, const char *host)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < l->ncerts; i++)
            for (size_t k = 0; k < l->certs[i].nnames; k++)
                if (name_matches(l->certs[i].names[k], host, pass == 1))
                    return l->certs[i].ssl_ctx;
    return NULL;
}

static int sni_cb(SSL *s, int *alert, void *arg)
{
    const tg_tls_ctx_t *l = arg;
    const char *host = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (host == NULL || l->ncerts < 2)
        return SSL_TLSEXT_ERR_OK;
    SSL_CTX *ctx = pick_by_name(l, host);
    if (ctx && ctx != SSL_get_SSL_CTX(s))
        SSL_set_SSL_CTX(s, ctx);
    return SSL_TLSEXT_ERR_OK; /* no match: the default certificate */
}

/* Collects the DNS names a certificate covers: SAN dNSName entries, else CN. */
static int collect_names(tg_tls_cert_t *c, X509 *x)
{
    GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = san ? sk_GENERAL_NAME_num(san) : 0;
    c->names = calloc((size_t)n + 1, sizeof *c->names);
    if (c->names == NULL) {
        GENERAL_NAMES_free(san);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int len = ASN1_STRING_length(g->d.dNSName);
        char *s = strndup((const char *)d, (size_t)len);
        if (s == NULL)
            break;
        c->names[c->nnames++] = s;
    }
    GENERAL_NAMES_free(san);
    if (c->nnames == 0) {
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0 &&
            (c->names[0] = strdup(cn)) != NULL)
            c->nnames = 1;
    }
    return 0;
}

/* ---- ALPN and OCSP ---- */

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    const tg_tls_ctx_t *l = arg;
    unsigned char *sel = NULL;
    /* Server preference (the `protocols` order) wins. */
    if (SSL_select_next_proto(&sel, outlen, l->alpn, l->alpn_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return l->http11 ? SSL_TLSEXT_ERR_NOACK : SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int ocsp_cb(SSL *s, void *arg)
{
    const tg_tls_cert_t *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ex_index_ocsp);
    if (c == NULL || c->ocsp == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_memdup(c->ocsp, c->ocsp_len); /* OpenSSL frees it */
    if (copy == NULL || SSL_set_tlsext_status_ocsp_resp(s, copy, (long)c->ocsp_len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap || cap >= (1u << 20))
            break;
        unsigned char *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (buf == NULL || bad || n == 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* ---- building ---- */

static int ctx_common(SSL_CTX *ctx, tg_tls_ctx_t *l, const tg_listen_tls_cfg_t *cfg, char *err,
                      size_t errlen)
{
    static const unsigned char sid_ctx[] = "tollgate";
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        errf(err, errlen, "cannot set the cipher list");
        return -1;
    }
    /* Stateless tickets only: the keys are shared by every worker, a
     * server-side cache would not be. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_timeout(ctx, SESSION_TIMEOUT_S);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, l);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, l);
    SSL_CTX_set_tlsext_status_cb(ctx, ocsp_cb);
    if (cfg->client_ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, cfg->client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            errf(err, errlen, "client_ca \"%s\": cannot load the CA certificates", cfg->client_ca);
            return -1;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    return 0;
}

static int load_cert(tg_tls_cert_t *c, tg_tls_ctx_t *l, const tg_listen_tls_cfg_t *cfg,
                     const tg_tls_cert_cfg_t *cc, char *err, size_t errlen)
{
    c->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (c->ssl_ctx == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    SSL_CTX_set_ex_data(c->ssl_ctx, ex_index_ocsp, c);
    SSL_CTX_set_ex_data(c->ssl_ctx, ex_index_listener, l);
    if (ctx_common(c->ssl_ctx, l, cfg, err, errlen) < 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, cc->cert) != 1) {
        errf(err, errlen, "cert \"%s\": cannot load the certificate chain", cc->cert);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl_ctx, cc->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c->ssl_ctx) != 1) {
        errf(err, errlen, "key \"%s\" cannot be loaded or does not match cert \"%s\"", cc->key, cc->cert);
        return -1;
    }
    if (collect_names(c, SSL_CTX_get0_certificate(c->ssl_ctx)) < 0) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    if (cc->ocsp && read_file(cc->ocsp, &c->ocsp, &c->ocsp_len) < 0) {
        snprintf(err, errlen, "ocsp \"%s\": cannot read the file", cc->ocsp);
        return -1;
    }
    return 0;
}

void tg__tls_ctx_retain(tg_tls_ctx_t *l) { atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed); }

void tg__tls_ctx_release(tg_tls_ctx_t *l)
{
    if (l == NULL || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < l->ncerts; i++) {
        tg_tls_cert_t *c = &l->certs[i];
        SSL_CTX_free(c->ssl_ctx);
        for (size_t k = 0; k < c->nnames; k++)
            free(c->names[k]);
        free(c->names);
        free(c->ocsp);
    }
    free(l->certs);
    free(l);
}

static tg_tls_ctx_t *ctx_build(const tg_listen_cfg_t *lc, char *err, size_t errlen)
{
    const tg_listen_tls_cfg_t *cfg = lc->tls;
    tg_tls_ctx_t *l = calloc(1, sizeof *l);
    if (l == NULL || (l->certs = calloc(cfg->ncerts, sizeof *l->certs)) == NULL) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&l->refs, 1);
    /* ALPN list in wire format, in preference order. */
    static const uint8_t dflt[] = { TG_ALPN_H2, TG_ALPN_HTTP11 };
    const uint8_t *p = lc->nprotocols ? lc->protocols : dflt;
    size_t np = lc->nprotocols ? lc->nprotocols : 2;
    for (size_t i = 0; i < np; i++) {
        const char *name = p[i] == TG_ALPN_H2 ? "h2" : "http/1.1";
        size_t len = strlen(name);
        l->alpn[l->alpn_len++] = (unsigned char)len;
        memcpy(l->alpn + l->alpn_len, name, len);
        l->alpn_len += (unsigned)len;
        l->http11 |= p[i] == TG_ALPN_HTTP11;
    }
    for (size_t i = 0; i < cfg->ncerts; i++) {
        l->ncerts = i + 1;
        if (load_cert(&l->certs[i], l, cfg, &cfg->certs[i], err, errlen) < 0) {
            tg__tls_ctx_release(l);
            return NULL;
        }
    }
    l->default_ctx = l->certs[0].ssl_ctx;
    return l;
}

int tg_tls_build_listeners(const tg_config_t *cfg, tg_tls_ctx_t ***out, char *err, size_t errlen)
{
    pthread_once(&ex_once, ex_init);
    size_t n = cfg->server.nlisten;
    tg_tls_ctx_t **v = calloc(n + 1, sizeof *v);
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const tg_listen_cfg_t *lc = &cfg->server.listen[i];
        if (lc->tls == NULL)
            continue;
        char why[400];
        v[i] = ctx_build(lc, why, sizeof why);
        if (v[i] == NULL) {
            snprintf(err, errlen, "server.listen[%zu].tls: %s", i, why);
            tg_tls_free_listeners(v, n);
            return -1;
        }
    }
    /* Make the first ticket key now rather than inside a handshake. */
    pthread_mutex_lock(&ticket_ring.lock);
    (void)ring_current(time(NULL));
    pthread_mutex_unlock(&ticket_ring.lock);
    *out = v;
    return 0;
}

void tg_tls_free_listeners(tg_tls_ctx_t **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        tg__tls_ctx_release(v[i]);
    free(v);
}

int tg_tls_check_pair(const char *cert, const char *key, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int r = -1;
    if (ctx == NULL) {
        snprintf(err, errlen, "out of memory");
    } else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        errf(err, errlen, "cannot load the certificate chain from \"%s\"", cert);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            errf(err, errlen, "the key in \"%s\" does not match the certificate in \"%s\"", key, cert);
        else
            errf(err, errlen, "cannot load the private key from \"%s\"", key);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        errf(err, errlen, "the key in \"%s\" does not match the certificate in \"%s\"", key, cert);
    } else {
        r = 0;
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return r;
}
