/* TLS and HTTP/2 hand-off for downstream connections (see dconn.h). */
#include "proxy/dconn.h"

#include <stdlib.h>
#include <string.h>
#include "runtime/worker_int.h"

int tg_dconn_init(tg_dconn_t *d, tg_worker_t *w, uv_stream_t *listener, uv_stream_t *stream,
                  tg_sink_t *out)
{
    memset(d, 0, sizeof *d);
    /* Listening handles are tg_wlistener_t (runtime/listeners.c): their
     * index names the listen entry of the current generation. */
    size_t i = tg_container_of((uv_tcp_t *)listener, tg_wlistener_t, tcp)->index;
    const tg_gen_t *g = w->gen;
    if (i >= g->cfg->server.nlisten)
        return 0;
    d->h2c = tg_listen_allows_h2(&g->cfg->server.listen[i]);
    if (g->tls == NULL || g->tls[i] == NULL)
        return 0;
    d->tls = tg_tls_conn_new(g->tls[i], &w->loop, stream);
    if (d->tls == NULL)
        return -1;
    tg_sink_use_tls(out, d->tls);
    return 0;
}

int tg_dconn_read_start(tg_dconn_t *d, uv_stream_t *s, uv_alloc_cb alloc, uv_read_cb read)
{
    return d->tls ? tg_tls_read_start(d->tls, alloc, read) : uv_read_start(s, alloc, read);
}

void tg_dconn_read_stop(tg_dconn_t *d, uv_stream_t *s)
{
    if (d->tls)
        tg_tls_read_stop(d->tls);
    else
        uv_read_stop(s);
}

void tg_dconn_info(tg_dconn_t *d, tg_downstream_info_t *info)
{
    info->tls = d->tls != NULL;
    if (d->tls == NULL)
        return;
    if (!d->cert_checked) { /* once per connection, after the handshake */
        d->cert_checked = true;
        char subject[1024];
        if (tg_tls_peer_identity(d->tls, subject, sizeof subject, d->cert_fp))
            d->cert_subject = strdup(subject);
    }
    if (d->cert_subject) {
        info->client_cert_subject = d->cert_subject;
        info->client_cert_fingerprint = d->cert_fp;
    }
}

/* 1 = HTTP/2, 0 = HTTP/1.1, -1 = a partial cleartext preface. */
static int detect_h2(const tg_dconn_t *d, const char *p, size_t n)
{
    if (d->tls)
        return tg_tls_alpn_h2(d->tls) ? 1 : 0;
    if (!d->h2c)
        return 0;
    size_t k = n < TG_H2_PREFACE_LEN ? n : TG_H2_PREFACE_LEN;
    if (memcmp(p, TG_H2_PREFACE, k) != 0)
        return 0;
    return n >= TG_H2_PREFACE_LEN ? 1 : -1;
}

/* A bodiless HTTP/1.1 request asking for h2c that this listener allows. */
static bool h2c_upgrade(const tg_dconn_t *d, const tg_request_t *req, tg_str_t *settings)
{
    bool body = req->body == TG_BODY_CHUNKED || (req->body == TG_BODY_LENGTH && req->content_length);
    if (d->tls || body || !req->upgrade || !d->h2c)
        return false;
    const tg_header_t *up = tg_headers_find(req->headers, req->nheaders, "upgrade");
    const tg_header_t *hs = tg_headers_find(req->headers, req->nheaders, "http2-settings");
    if (up == NULL || hs == NULL || !tg_str_list_has_token(up->value, "h2c"))
        return false;
    *settings = hs->value;
    return true;
}

static int start_h2(tg_dconn_t *d, tg_worker_t *w, tg_h2s_conn_t *io)
{
    tg_downstream_info_t info = { 0 };
    tg_dconn_info(d, &info);
    io->tls = info.tls;
    io->cert_subject = info.client_cert_subject;
    io->cert_fingerprint = info.client_cert_fingerprint;
    d->h2 = tg_h2s_new(w, io);
    return d->h2 ? 0 : -1;
}

int tg_dconn_h2(tg_dconn_t *d, tg_worker_t *w, tg_h2s_conn_t *io, const tg_request_t *upgrade,
                const char *p, size_t n, bool any_request)
{
    static const char switching[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                    "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    if (d->h2 == NULL) {
        tg_str_t settings = TG_STR_NULL;
        if (upgrade && !h2c_upgrade(d, upgrade, &settings))
            return 0;
        int r = upgrade ? 1 : any_request ? 0 : detect_h2(d, p, n);
        if (r <= 0)
            return r < 0 ? 2 : 0;
        if (start_h2(d, w, io) < 0)
            return -1;
        if (upgrade) { /* 101 first; the codec's SETTINGS follow it on the sink */
            if (tg_h2s_upgrade(d->h2, settings, upgrade) < 0)
                return -1;
            tg_sink_push(io->out, switching, sizeof switching - 1);
            if (tg_sink_flush(io->out) < 0)
                return -1;
        }
    }
    return tg_h2s_input(d->h2, n ? p : "", n) < 0 ? -1 : 1;
}

void tg_dconn_free(tg_dconn_t *d)
{
    tg_h2s_free(d->h2);
    d->h2 = NULL;
    tg_tls_conn_free(d->tls);
    d->tls = NULL;
    free(d->cert_subject);
    d->cert_subject = NULL;
}
