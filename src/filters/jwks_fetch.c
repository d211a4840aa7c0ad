/* JWKS sources (jwks_fetch.h): one fetcher thread each, and a
 * minimal blocking HTTP/1.0 GET client (plain or TLS: the system trust
 * store or the route's jwks_ca alone, strict X.509 checks, and the URL's
 * host name or IP address matched against the certificate). HTTP/1.0 keeps
 * the answer free of chunked framing; the body ends at Content-Length or at
 * close. Requests waiting for a fetch register a waiter and are woken
 * (uv_async_send, safe from any thread) when it ends. */
#include "filters/jwks_fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "util/log.h"

#define TG_JWKS_MAX_BYTES (1u << 20)
#define TG_JWKS_RETRY_MS 5000u   /* after a failed fetch */

struct tg_jwks_src {
    atomic_int refs;           /* the route + the thread */
    pthread_t thread;
    char *url;
    uint64_t refresh_ms;
    X509_STORE *trust;         /* jwks_ca, or NULL: the system trust store */
    tg_jwks_waiter_t *waiters; /* under lock: woken when a fetch ends */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    tg_jwks_t *set;            /* under lock */
    uint64_t version;          /* under lock */
    bool stop, due, fetching;  /* under lock */
    uint64_t last_kick_ms;     /* under lock: last refetch asked by an unknown kid */
    bool kicked;               /* under lock: last_kick_ms is set */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- HTTP GET ---- */

typedef struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    unsigned timeout_ms;
} conn_t;

static bool wait_fd(int fd, short ev, unsigned timeout_ms)
{
    struct pollfd p = { fd, ev, 0 };
    int r;
    while ((r = poll(&p, 1, (int)timeout_ms)) < 0 && errno == EINTR)
        ;
    return r > 0;
}

static int tcp_connect(const char *host, const char *port, unsigned timeout_ms)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        int err = 0;
        socklen_t el = sizeof err;
        if ((connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
             (errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_ms) &&
              getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)))
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static ssize_t conn_io(conn_t *c, void *buf, size_t n, bool write)
{
    for (;;) {
        ssize_t r;
        short ev = write ? POLLOUT : POLLIN;
        if (c->ssl) {
            r = write ? SSL_write(c->ssl, buf, (int)n) : SSL_read(c->ssl, buf, (int)n);
            if (r > 0)
                return r;
            int e = SSL_get_error(c->ssl, (int)r);
            if (e == SSL_ERROR_ZERO_RETURN)
                return 0;
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return -1;
            ev = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        } else {
            r = write ? send(c->fd, buf, n, MSG_NOSIGNAL) : recv(c->fd, buf, n, 0);
            if (r >= 0)
                return r;
            if (errno != EAGAIN && errno != EINTR)
                return -1;
        }
        if (!wait_fd(c->fd, ev, c->timeout_ms))
            return -1;
    }
}

/* The peer must chain to `trust` (or the system store when NULL) under
 * strict X.509 rules, and its certificate must name `host`: a DNS name
 * (SAN dNSName, sent as SNI too) or an IP literal (SAN iPAddress; no SNI
 * for addresses, RFC 6066 §3). */
static int tls_start(conn_t *c, const char *host, X509_STORE *trust)
{
    unsigned char addr[16];
    bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL)
        return -1;
    if (trust)
        SSL_CTX_set1_cert_store(c->ctx, trust); /* shared, reference counted */
    else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1)
        return -1;
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    if ((c->ssl = SSL_new(c->ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return -1;
    X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
    X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_X509_STRICT);
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1
           : SSL_set_tlsext_host_name(c->ssl, host) != 1 || X509_VERIFY_PARAM_set1_host(vp, host, 0) != 1)
        return -1;
    for (;;) {
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(c->ssl, r);
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
            !wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, c->timeout_ms))
            return -1;
    }
}

/* Splits http(s)://host[:port]/path ([v6] hosts allowed). */
static int parse_url(const char *url, bool *tls, char *host, size_t hcap, char *port, char *path, size_t pcap)
{
    *tls = strncmp(url, "https://", 8) == 0;
    const char *p = url + (*tls ? 8 : 7), *slash = strchr(p, '/');
    size_t al = slash ? (size_t)(slash - p) : strlen(p);
    char auth[300], *name = auth, *portp = NULL;
    if (al == 0 || al >= sizeof auth || strlen(slash ? slash : "/") >= pcap)
        return -1;
    memcpy(auth, p, al);
    auth[al] = '\0';
    if (auth[0] == '[') {
        char *rb = strchr(auth, ']');
        if (rb == NULL || (rb[1] != '\0' && rb[1] != ':'))
            return -1;
        portp = rb[1] == ':' ? rb + 2 : NULL;
        *rb = '\0';
        name = auth + 1;
    } else if ((portp = strchr(auth, ':')) != NULL) {
        *portp++ = '\0';
    }
    if (*name == '\0' || strlen(name) >= hcap)
        return -1;
    if (portp && (*portp == '\0' || strlen(portp) > 5 || strspn(portp, "0123456789") != strlen(portp)))
        return -1;
    snprintf(host, hcap, "%s", name);
    snprintf(port, 8, "%s", portp ? portp : *tls ? "443" : "80");
    snprintf(path, pcap, "%s", slash ? slash : "/");
    return 0;
}

/* Whether raw[0..n) holds a whole response framed by Content-Length: the
 * read stops there, so a TLS server that closes without close_notify (an
 * unexpected EOF to OpenSSL 3) still delivers a complete key set, while a
 * body cut short is never taken for a whole one. */
static bool complete_by_length(const char *raw, size_t n)
{
    const char *end = memmem(raw, n, "\r\n\r\n", 4);
    if (end == NULL)
        return false;
    size_t hl = (size_t)(end - raw);
    for (size_t i = 0; i + 17 <= hl; i++) {
        if ((i == 0 || raw[i - 1] != '\n') || strncasecmp(raw + i, "content-length:", 15) != 0)
            continue;
        unsigned long long cl = strtoull(raw + i + 15, NULL, 10);
        return n - (hl + 4) >= cl;
    }
    return false;
}

static int read_all(conn_t *c, size_t max, char **out, size_t *len)
{
    size_t cap = 16384, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap >= max + 16384)
                break;
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = conn_io(c, buf + n, cap - n, false);
        if (r < 0)
            break;
        n += (size_t)r;
        if (r == 0 || complete_by_length(buf, n)) {
            *out = buf;
            *len = n;
            return 0;
        }
    }
    free(buf);
    return -1;
}

/* Checks "HTTP/1.x 200", finds the body (honouring Content-Length). */
static int split_response(char *raw, size_t n, size_t max, char **body, size_t *blen, char *err, size_t errlen)
{
    char *end = memmem(raw, n, "\r\n\r\n", 4);
    int status = 0;
    if (end == NULL || sscanf(raw, "HTTP/1.%*d %d", &status) != 1) {
        snprintf(err, errlen, "malformed HTTP response");
        return -1;
    }
    if (status != 200) {
        snprintf(err, errlen, "HTTP status %d", status);
        return -1;
    }
    *end = '\0';
    size_t off = (size_t)(end + 4 - raw), len = n - off;
    for (char *h = strcasestr(raw, "\r\ncontent-length:"); h; h = NULL) {
        unsigned long long cl = strtoull(h + 17, NULL, 10);
        if (cl > len) {
            snprintf(err, errlen, "truncated body");
            return -1;
        }
        len = (size_t)cl;
    }
    if (len > max) {
        snprintf(err, errlen, "body larger than %zu bytes", max);
        return -1;
    }
    memmove(raw, raw + off, len);
    *body = raw;
    *blen = len;
    return 0;
}

/* Says why a handshake failed: the verification result when there is one. */
static void tls_error(conn_t *c, const char *host, char *err, size_t errlen)
{
    long v = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (v != X509_V_OK)
        snprintf(err, errlen, "TLS handshake with %s failed: certificate refused (%s)", host,
                 X509_verify_cert_error_string(v));
    else
        snprintf(err, errlen, "TLS handshake with %s failed", host);
    ERR_clear_error();
}

int tg_http_get(const char *url, X509_STORE *trust, size_t max_bytes, unsigned timeout_ms, char **body, size_t *len,
                char *err, size_t errlen)
{
    bool tls;
    char host[256], port[8], path[2048], req[2600];
    conn_t c = { .fd = -1, .timeout_ms = timeout_ms };
    char *raw = NULL;
    size_t rawlen = 0;
    int rc = -1;
    if (parse_url(url, &tls, host, sizeof host, port, path, sizeof path) < 0) {
        snprintf(err, errlen, "bad URL");
        return -1;
    }
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: application/json\r\n"
                                       "User-Agent: tollgate\r\n\r\n", path, host);
    if ((c.fd = tcp_connect(host, port, timeout_ms)) < 0)
        snprintf(err, errlen, "cannot connect to %s:%s", host, port);
    else if (tls && tls_start(&c, host, trust) < 0)
        tls_error(&c, host, err, errlen);
    else if (conn_io(&c, req, (size_t)rl, true) != rl)
        snprintf(err, errlen, "cannot send the request");
    else if (read_all(&c, max_bytes, &raw, &rawlen) < 0)
        snprintf(err, errlen, "read failed, timed out or too large");
    else if ((rc = split_response(raw, rawlen, max_bytes, body, len, err, errlen)) == 0)
        raw = NULL;
    free(raw);
    SSL_free(c.ssl);
    SSL_CTX_free(c.ctx);
    if (c.fd >= 0)
        close(c.fd);
    return rc;
}

/* ---- the source and its thread ---- */

static void src_release(tg_jwks_src_t *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    tg_jwks_release(s->set);
    X509_STORE_free(s->trust);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s->url);
    free(s);
}

static void fetch_once(tg_jwks_src_t *s)
{
    char err[256], perr[200];
    char *body = NULL;
    size_t len = 0;
    tg_jwks_t *set = NULL;
    if (tg_http_get(s->url, s->trust, TG_JWKS_MAX_BYTES, TG_JWKS_FETCH_TIMEOUT_MS, &body, &len, err, sizeof err) == 0 &&
        (set = tg_jwks_parse(body, len, perr, sizeof perr)) == NULL)
        snprintf(err, sizeof err, "%s", perr);
    free(body);
    if (set == NULL)
        tg_log(TG_LEVEL_WARN, "jwks %s: %s (keeping the last good key set)", s->url, err);
    pthread_mutex_lock(&s->lock);
    if (set) {
        tg_jwks_t *old = s->set;
        s->set = set;
        s->version++;
        tg_jwks_release(old);
    }
    s->fetching = false;
    /* Under the lock: a waiter unregisters under it before closing its handle. */
    for (tg_jwks_waiter_t *w = s->waiters; w; w = w->next)
        uv_async_send(w->wake);
    pthread_mutex_unlock(&s->lock);
}

static void *fetcher(void *arg)
{
    tg_jwks_src_t *s = arg;
    pthread_mutex_lock(&s->lock);
    uint64_t next = 0;
    while (!s->stop) {
        uint64_t now = now_ms();
        if (!s->due && now < next) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait = next - now, ns = (uint64_t)ts.tv_nsec + (wait % 1000) * 1000000;
            ts.tv_sec += (time_t)(wait / 1000 + ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
            continue;
        }
        s->due = false;
        s->fetching = true;
        uint64_t before = s->version;
        pthread_mutex_unlock(&s->lock);
        fetch_once(s);
        pthread_mutex_lock(&s->lock);
        bool ok = s->version != before;
        next = now_ms() + (ok || s->refresh_ms < TG_JWKS_RETRY_MS ? s->refresh_ms : TG_JWKS_RETRY_MS);
    }
    pthread_mutex_unlock(&s->lock);
    src_release(s);
    OPENSSL_thread_stop(); /* this thread's OpenSSL state, before the thread goes */
    return NULL;
}

X509_STORE *tg_jwks_ca_load(const char *path, char *err, size_t errlen)
{
    X509_STORE *st = X509_STORE_new();
    int n = 0;
    if (st && X509_STORE_load_file(st, path) == 1) {
        STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(st);
        for (int i = 0; i < sk_X509_OBJECT_num(objs); i++)
            n += X509_OBJECT_get_type(sk_X509_OBJECT_value(objs, i)) == X509_LU_X509;
    }
    ERR_clear_error();
    if (n == 0) {
        snprintf(err, errlen, "%s: no PEM certificate could be read", path);
        X509_STORE_free(st);
        return NULL;
    }
    return st;
}

tg_jwks_src_t *tg_jwks_src_new(const char *url, const char *ca_file, uint64_t refresh_ms, char *err, size_t errlen)
{
    tg_jwks_src_t *s = calloc(1, sizeof *s);
    if (s == NULL || (s->url = strdup(url)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (ca_file && (s->trust = tg_jwks_ca_load(ca_file, err, errlen)) == NULL) {
        free(s->url);
        free(s);
        return NULL;
    }
    atomic_init(&s->refs, 2);
    s->refresh_ms = refresh_ms;
    s->fetching = true; /* the first fetch starts at once */
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, fetcher, s) != 0) {
        snprintf(err, errlen, "cannot start the JWKS fetcher thread");
        atomic_store(&s->refs, 1);
        src_release(s);
        return NULL;
    }
    return s;
}

/* An idle fetcher (waiting for its next fetch) stops at once and is joined,
 * so a shutdown leaves nothing behind; one in the middle of a fetch is
 * detached instead (it finishes within the fetch timeouts and frees the
 * source), so the caller — possibly an event loop — never waits for a
 * remote server. */
void tg_jwks_src_free(tg_jwks_src_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    bool busy = s->fetching;
    pthread_t t = s->thread;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    src_release(s);
    if (busy)
        pthread_detach(t);
    else
        pthread_join(t, NULL);
}

tg_jwks_t *tg_jwks_src_get(tg_jwks_src_t *s, uint64_t *version)
{
    pthread_mutex_lock(&s->lock);
    tg_jwks_t *set = tg_jwks_retain(s->set);
    *version = s->version;
    pthread_mutex_unlock(&s->lock);
    return set;
}

bool tg_jwks_src_busy(tg_jwks_src_t *s)
{
    pthread_mutex_lock(&s->lock);
    bool busy = s->due || s->fetching;
    pthread_mutex_unlock(&s->lock);
    return busy;
}

bool tg_jwks_src_kick(tg_jwks_src_t *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t now = now_ms();
    if (!s->due && !s->fetching && (!s->kicked || now - s->last_kick_ms >= TG_JWKS_KICK_INTERVAL_MS)) {
        s->kicked = true;
        s->last_kick_ms = now;
        s->due = true;
        pthread_cond_signal(&s->cond);
    }
    bool busy = s->due || s->fetching;
    pthread_mutex_unlock(&s->lock);
    return busy;
}

bool tg_jwks_src_watch(tg_jwks_src_t *s, tg_jwks_waiter_t *w, uint64_t *version)
{
    pthread_mutex_lock(&s->lock);
    bool busy = s->due || s->fetching;
    *version = s->version;
    if (busy) {
        w->prev = NULL;
        w->next = s->waiters;
        if (s->waiters)
            s->waiters->prev = w;
        s->waiters = w;
    }
    pthread_mutex_unlock(&s->lock);
    return busy;
}

void tg_jwks_src_unwatch(tg_jwks_src_t *s, tg_jwks_waiter_t *w)
{
    pthread_mutex_lock(&s->lock);
    if (w->prev)
        w->prev->next = w->next;
    else if (s->waiters == w)
        s->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    pthread_mutex_unlock(&s->lock);
}
