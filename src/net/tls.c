/* One server-side TLS session over memory BIOs, presented to its user with
 * the shape of a libuv stream (see net/tls.h).
 *
 * Reading: the socket is read into a per-thread ciphertext buffer, copied
 * into the read BIO, and decrypted straight into the user's buffer. Writing:
 * plaintext is encrypted into the write BIO; its bytes go out with one
 * uv_try_write, and only what the socket did not take is copied into a
 * write request. Record output of the TLS machinery itself (handshake,
 * tickets, alerts) takes the same ordered path. */
#include "net/tls_int.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include "util/log.h"

#define CIPHER_BUF (64 * 1024)

struct tg_tls_conn {
    tg_tls_ctx_t *ctx;         /* a reference */
    SSL *ssl;
    BIO *rbio, *wbio;          /* memory BIOs, owned by ssl */
    uv_stream_t *stream;       /* its data field is ours while attached (see user_*) */
    void *user;                /* the stream's data as the user set it */
    uv_timer_t kick;           /* deferred delivery after read_start */
    uv_alloc_cb alloc_cb;
    uv_read_cb read_cb;
    tg_tls_handshake_cb hs_cb; /* client sessions: told once when the handshake ends */
    void *hs_arg;
    ssize_t eof;               /* a socket EOF/error not yet delivered (0 = none) */
    unsigned inflight;         /* write requests not completed */
    unsigned in_pump;
    bool reading;              /* the user wants plaintext */
    bool sock_reading;
    bool handshake_done;
    bool detached;             /* tg_tls_conn_free was called */
    bool kick_closed;
    bool failed;
};

typedef struct wreq {
    uv_write_t req;
    tg_tls_conn_t *t;
    tg_tls_write_cb done;
    void *arg;
    char data[];
} wreq_t;

/* Ciphertext is copied into the read BIO at once, so one buffer per thread
 * serves every connection of a worker. */
static _Thread_local char cipher_buf[CIPHER_BUF];

static void maybe_free(tg_tls_conn_t *t)
{
    if (t->detached && t->kick_closed && t->inflight == 0 && t->in_pump == 0) {
        SSL_free(t->ssl);
        tg__tls_ctx_release(t->ctx);
        free(t);
    }
}

static void wreq_done(uv_write_t *req, int status)
{
    wreq_t *r = (wreq_t *)req;
    tg_tls_conn_t *t = r->t;
    tg_tls_write_cb done = r->done;
    void *arg = r->arg;
    free(r);
    t->inflight--;
    /* The stream outlives its write callbacks (libuv cancels them before
     * the close callback), so the sink behind done() is still there. */
    if (done && !t->detached)
        done(arg, status);
    maybe_free(t);
}

/* Writes whatever the TLS engine produced. 0 all written, 1 pending (done
 * follows when it is), < 0 error. */
static int send_cipher(tg_tls_conn_t *t, tg_tls_write_cb done, void *arg)
{
    char *p = NULL;
    long len = BIO_get_mem_data(t->wbio, &p);
    if (len <= 0)
        return 0;
    uv_buf_t b = uv_buf_init(p, (unsigned)len);
    int n = uv_try_write(t->stream, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0 || n == len) {
        (void)BIO_reset(t->wbio);
        return n < 0 ? n : 0;
    }
    size_t rest = (size_t)(len - n);
    wreq_t *r = malloc(sizeof *r + rest);
    if (r == NULL) {
        (void)BIO_reset(t->wbio);
        return UV_ENOMEM;
    }
    memcpy(r->data, p + n, rest);
    (void)BIO_reset(t->wbio);
    r->t = t;
    r->done = done;
    r->arg = arg;
    b = uv_buf_init(r->data, (unsigned)rest);
    int e = uv_write(&r->req, t->stream, &b, 1, wreq_done);
    if (e < 0) {
        free(r);
        return e;
    }
    t->inflight++;
    return 1;
}

/* The user's callbacks find their own object in stream->data, as with
 * plain libuv: it is set back for the duration of each call. */
static void user_alloc(tg_tls_conn_t *t, uv_buf_t *b)
{
    t->stream->data = t->user;
    t->alloc_cb((uv_handle_t *)t->stream, CIPHER_BUF, b);
    if (!t->detached)
        t->stream->data = t;
}

static void user_read(tg_tls_conn_t *t, ssize_t n, uv_buf_t *b)
{
    t->stream->data = t->user;
    t->read_cb(t->stream, n, b);
    if (!t->detached)
        t->stream->data = t;
}

/* Client sessions: the handshake ended (0) or failed (< 0). May detach us. */
static void handshake_over(tg_tls_conn_t *t, int status)
{
    tg_tls_handshake_cb cb = t->hs_cb;
    t->hs_cb = NULL;
    if (status < 0)
        t->failed = true;
    cb(t->hs_arg, status);
}

static void deliver_error(tg_tls_conn_t *t, ssize_t err)
{
    if (t->hs_cb) {
        handshake_over(t, (int)err); /* the socket failed mid-handshake */
        return;
    }
    if (!t->reading) {
        t->eof = err; /* told when the user reads again */
        return;
    }
    t->eof = 0;
    uv_buf_t b = uv_buf_init(NULL, 0);
    user_read(t, err, &b);
}

static void log_ssl_error(const char *what)
{
    unsigned long e = ERR_get_error();
    if (e) {
        char buf[200];
        ERR_error_string_n(e, buf, sizeof buf);
        tg_log_debug("tls: %s: %s", what, buf);
    }
    ERR_clear_error();
}

/* Runs the handshake, then decrypts into the user's buffers while the user
 * reads. Every callback may detach us: check after each. */
static void pump(tg_tls_conn_t *t)
{
    t->in_pump++;
    if (!t->handshake_done && !t->failed) {
        int r = SSL_do_handshake(t->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        (void)send_cipher(t, NULL, NULL); /* our flight, or an alert */
        if (r == 1) {
            t->handshake_done = true;
            if (t->hs_cb)
                handshake_over(t, 0);
        } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            if (t->hs_cb == NULL) /* a client logs why itself (the error queue is kept) */
                log_ssl_error("handshake");
            t->failed = true;
            deliver_error(t, UV_EPROTO);
        }
    }
    while (t->handshake_done && t->reading && !t->detached && !t->failed) {
        uv_buf_t b = uv_buf_init(NULL, 0);
        user_alloc(t, &b);
        if (t->detached)
            break;
        if (b.base == NULL || b.len == 0) {
            user_read(t, UV_ENOBUFS, &b);
            break;
        }
        size_t n = 0;
        int r = SSL_read_ex(t->ssl, b.base, b.len, &n);
        if (r == 1) {
            user_read(t, (ssize_t)n, &b);
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            user_read(t, 0, &b); /* nothing now: the buffer is not used */
            if (t->eof && !t->detached)
                deliver_error(t, t->eof);
            break;
        }
        if (e != SSL_ERROR_ZERO_RETURN)
            log_ssl_error("read");
        t->failed = true;
        user_read(t, e == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO, &b);
        break;
    }
    if (!t->detached)
        (void)send_cipher(t, NULL, NULL); /* tickets, key updates, alerts */
    t->in_pump--;
    maybe_free(t);
}

static void on_cipher_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    *buf = uv_buf_init(cipher_buf, sizeof cipher_buf);
}

static void on_cipher_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tg_tls_conn_t *t = s->data;
    if (nread > 0) {
        if (BIO_write(t->rbio, buf->base, (int)nread) != (int)nread) {
            t->failed = true;
            deliver_error(t, UV_ENOMEM);
            return;
        }
        pump(t);
    } else if (nread < 0) {
        deliver_error(t, nread);
    }
}

static void on_kick(uv_timer_t *timer)
{
    tg_tls_conn_t *t = timer->data;
    if (t->detached)
        return;
    pump(t);
}

static void on_kick_closed(uv_handle_t *h)
{
    tg_tls_conn_t *t = h->data;
    t->kick_closed = true;
    maybe_free(t);
}

/* Takes over stream->data (the user's value is handed back in callbacks). */
static void attach(tg_tls_conn_t *t, uv_loop_t *loop, uv_stream_t *stream)
{
    t->stream = stream;
    t->user = stream->data;
    stream->data = t;
    uv_timer_init(loop, &t->kick);
    t->kick.data = t;
}

tg_tls_conn_t *tg_tls_conn_new(const tg_tls_ctx_t *ctx, uv_loop_t *loop, uv_stream_t *stream)
{
    tg_tls_conn_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx->default_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return NULL;
    }
    BIO_set_mem_eof_return(t->rbio, -1); /* empty = "want read", not EOF */
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    t->ctx = (tg_tls_ctx_t *)ctx;
    tg__tls_ctx_retain(t->ctx);
    attach(t, loop, stream);
    return t;
}

tg_tls_conn_t *tg_tls_conn_new_client(SSL *ssl, uv_loop_t *loop, uv_stream_t *stream,
                                      tg_tls_handshake_cb done, void *arg)
{
    tg_tls_conn_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    t->ssl = ssl;
    t->rbio = SSL_get_rbio(ssl);
    t->wbio = SSL_get_wbio(ssl);
    t->hs_cb = done;
    t->hs_arg = arg;
    attach(t, loop, stream);
    uv_timer_start(&t->kick, on_kick, 0, 0); /* the client speaks first */
    return t;
}

void tg_tls_conn_free(tg_tls_conn_t *t)
{
    if (t == NULL || t->detached)
        return;
    t->detached = true;
    t->reading = false;
    if (t->sock_reading) {
        uv_read_stop(t->stream);
        t->sock_reading = false;
    }
    t->stream->data = t->user;
    uv_close((uv_handle_t *)&t->kick, on_kick_closed);
    maybe_free(t);
}

int tg_tls_read_start(tg_tls_conn_t *t, uv_alloc_cb alloc, uv_read_cb read)
{
    if (t->detached)
        return UV_EINVAL;
    t->alloc_cb = alloc;
    t->read_cb = read;
    t->reading = true;
    if (!t->sock_reading && !t->failed) {
        int r = uv_read_start(t->stream, on_cipher_alloc, on_cipher_read);
        if (r < 0)
            return r;
        t->sock_reading = true;
    }
    /* Plaintext (or an EOF) may wait inside OpenSSL or the read BIO since
     * reading stopped: deliver it from the loop, not from this call. */
    if (t->eof || SSL_has_pending(t->ssl) || BIO_ctrl_pending(t->rbio) > 0)
        uv_timer_start(&t->kick, on_kick, 0, 0);
    return 0;
}

void tg_tls_read_stop(tg_tls_conn_t *t)
{
    t->reading = false;
    if (t->sock_reading) {
        uv_read_stop(t->stream);
        t->sock_reading = false;
    }
}

int tg_tls_write(tg_tls_conn_t *t, const uv_buf_t *bufs, unsigned n, tg_tls_write_cb done, void *arg)
{
    if (t->detached || t->failed || !t->handshake_done)
        return UV_EPIPE;
    for (unsigned i = 0; i < n; i++) {
        size_t w = 0;
        /* A memory BIO never pushes back: each write is taken whole. */
        if (bufs[i].len && SSL_write_ex(t->ssl, bufs[i].base, bufs[i].len, &w) != 1) {
            log_ssl_error("write");
            return UV_EPROTO;
        }
    }
    return send_cipher(t, done, arg);
}

bool tg_tls_alpn_h2(const tg_tls_conn_t *t)
{
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    return len == 2 && memcmp(p, "h2", 2) == 0;
}

bool tg_tls_peer_identity(const tg_tls_conn_t *t, char *subject, size_t subject_cap, char fp[65])
{
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (x == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK || subject_cap == 0)
        return false;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return false;
    /* RFC 4514 (RFC 2253 order and escaping), UTF-8 kept as is. */
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char *p = NULL;
    long len = BIO_get_mem_data(b, &p);
    size_t n = len > 0 ? (size_t)len : 0;
    if (n >= subject_cap)
        n = subject_cap - 1;
    memcpy(subject, p, n);
    subject[n] = '\0';
    BIO_free(b);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
        return false;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        fp[2 * i] = hex[md[i] >> 4];
        fp[2 * i + 1] = hex[md[i] & 15];
    }
    fp[64] = '\0';
    return true;
}
