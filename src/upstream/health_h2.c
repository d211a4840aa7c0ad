#include "upstream/health_h2.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_MAX 300     /* "[host]:port" */
#define MSG_MAX 64       /* bytes of a gRPC response kept: a HealthCheckResponse is 7 */
#define GRPC_PATH "/grpc.health.v1.Health/Check"

struct tg_hh2 {
    nghttp2_session *ng;
    const tg_health_check_cfg_t *hc;
    bool grpc;
    int32_t stream;
    int status;              /* final :status, 0 before */
    int grpc_status;         /* -1 until a grpc-status header or trailer */
    bool ready;              /* the verdict is known */
    bool closed;             /* the stream closed (reset, or after the response) */
    uint32_t reset_code;     /* the stream's close error code */
    bool goaway;
    unsigned char msg[MSG_MAX];
    size_t msglen;
    bool body_sent;          /* grpc: the 5-byte empty request message */
    char authority[AUTH_MAX];
};

static int parse_uint(const uint8_t *v, size_t n, int max)
{
    if (n == 0 || n > 9)
        return -1;
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x <= max ? x : -1;
}

static int cb_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
    (void)ng;
    (void)flags;
    tg_hh2_t *h = arg;
    if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != h->stream)
        return 0;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = parse_uint(value, vlen, 599);
        if (st >= 200) /* 1xx: an interim response, the final one follows */
            h->status = st;
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        h->grpc_status = parse_uint(value, vlen, 1000000);
    }
    return 0;
}

static int cb_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *arg)
{
    (void)ng;
    tg_hh2_t *h = arg;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.last_stream_id < h->stream) {
        h->goaway = true; /* our stream was never processed */
        h->ready = true;
    }
    /* A plain check is judged on the final response head; a gRPC one needs
     * the message and the trailers, so it waits for the stream's end. */
    if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == h->stream && !h->grpc && h->status)
        h->ready = true;
    return 0;
}

static int cb_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *p, size_t n, void *arg)
{
    (void)ng;
    (void)flags;
    tg_hh2_t *h = arg;
    if (id != h->stream || !h->grpc)
        return 0; /* a plain check's body is not read: the head decides */
    size_t room = sizeof h->msg - h->msglen;
    size_t k = n < room ? n : room;
    memcpy(h->msg + h->msglen, p, k);
    h->msglen += k;
    return 0;
}

static int cb_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *arg)
{
    (void)ng;
    tg_hh2_t *h = arg;
    if (id == h->stream) {
        h->closed = true;
        h->reset_code = code;
        h->ready = true;
    }
    return 0;
}

/* grpc: the request message, a length-prefixed HealthCheckRequest
 * { string service = 1; } — health_check.service, or empty ("": the server
 * as a whole). The name is at most TG_HEALTH_SERVICE_MAX bytes, so its
 * protobuf length is one byte. */
static ssize_t grpc_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *arg)
{
    (void)ng;
    (void)id;
    (void)src;
    tg_hh2_t *h = arg;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    size_t n = strlen(h->hc->service);
    size_t msg = n ? 2 + n : 0; /* tag 1, wire type 2 (0x0a); length; bytes */
    if (h->body_sent || len < 5 + msg)
        return 0;
    buf[0] = 0; /* not compressed */
    buf[1] = 0;
    buf[2] = 0;
    buf[3] = 0;
    buf[4] = (uint8_t)msg;
    if (n) {
        buf[5] = 0x0a;
        buf[6] = (uint8_t)n;
        memcpy(buf + 7, h->hc->service, n);
    }
    h->body_sent = true;
    return (ssize_t)(5 + msg);
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME }

static int submit(tg_hh2_t *h, const tg_upstream_cfg_t *u)
{
    const char *scheme = u->tls.enabled ? "https" : "http";
    nghttp2_nv nv[] = {
        NV(":method", h->grpc ? "POST" : "GET"), NV(":scheme", scheme),
        NV(":authority", h->authority), NV(":path", h->grpc ? GRPC_PATH : h->hc->path),
        NV("user-agent", "tollgate-health-check"),
        NV("content-type", "application/grpc"), NV("te", "trailers"),
    };
    nghttp2_data_provider dp = { .read_callback = grpc_body };
    size_t n = h->grpc ? sizeof nv / sizeof nv[0] : 5;
    nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 } };
    if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, 1) != 0)
        return -1;
    h->stream = nghttp2_submit_request(h->ng, NULL, nv, n, h->grpc ? &dp : NULL, h);
    return h->stream > 0 ? 0 : -1;
}

static int session_new(tg_hh2_t *h)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
    int r = nghttp2_session_client_new(&h->ng, cbs, h);
    nghttp2_session_callbacks_del(cbs);
    return r == 0 ? 0 : -1;
}

tg_hh2_t *tg_hh2_new(const tg_upstream_cfg_t *u, const tg_server_addr_cfg_t *s)
{
    tg_hh2_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->hc = &u->health_check;
    h->grpc = u->protocol == TG_PROTO_GRPC;
    h->grpc_status = -1;
    bool v6 = strchr(s->host, ':') != NULL;
    int l = snprintf(h->authority, sizeof h->authority, "%s%s%s:%u", v6 ? "[" : "", s->host, v6 ? "]" : "",
                     s->port);
    if (l < 0 || (size_t)l >= sizeof h->authority || session_new(h) < 0 || submit(h, u) < 0) {
        tg_hh2_free(h);
        return NULL;
    }
    return h;
}

void tg_hh2_free(tg_hh2_t *h)
{
    if (h == NULL)
        return;
    nghttp2_session_del(h->ng);
    free(h);
}

int tg_hh2_output(tg_hh2_t *h, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    for (;;) {
        const uint8_t *p;
        ssize_t k = nghttp2_session_mem_send(h->ng, &p);
        if (k < 0) {
            free(buf);
            return -1;
        }
        if (k == 0)
            break;
        char *nb = realloc(buf, n + (size_t)k);
        if (nb == NULL) {
            free(buf);
            return -1;
        }
        memcpy(nb + n, p, (size_t)k);
        buf = nb;
        n += (size_t)k;
    }
    *out = buf;
    *len = n;
    return 0;
}

int tg_hh2_input(tg_hh2_t *h, const char *p, size_t n)
{
    if (h->ready)
        return 1;
    ssize_t r = nghttp2_session_mem_recv(h->ng, (const uint8_t *)p, n);
    if (r < 0)
        return -1;
    return h->ready ? 1 : 0;
}

/* The HealthCheckResponse in the first gRPC message: its status field
 * (1, varint; SERVING = 1), 0 (UNKNOWN) when absent, -1 when malformed or
 * compressed (we never offer compression, so a server must not use it). */
static int grpc_serving_status(const tg_hh2_t *h)
{
    if (h->msglen < 5 || h->msg[0] != 0)
        return -1;
    size_t mlen = (size_t)h->msg[1] << 24 | (size_t)h->msg[2] << 16 | (size_t)h->msg[3] << 8 | h->msg[4];
    if (mlen > h->msglen - 5)
        return -1;
    const unsigned char *m = h->msg + 5;
    int status = 0;
    for (size_t i = 0; i < mlen;) {
        unsigned char tag = m[i++];
        if (tag != 0x08) /* only field 1 (varint) exists in this message */
            return -1;
        uint64_t v = 0;
        unsigned shift = 0;
        while (i < mlen && (m[i] & 0x80) && shift < 63) {
            v |= (uint64_t)(m[i++] & 0x7f) << shift;
            shift += 7;
        }
        if (i >= mlen)
            return -1;
        v |= (uint64_t)m[i++] << shift;
        status = v > 100 ? -1 : (int)v;
    }
    return status;
}

static bool grpc_verdict(const tg_hh2_t *h, char *why, size_t whylen)
{
    static const char *const names[] = { "UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" };
    if (h->status != 200) {
        snprintf(why, whylen, "status %d", h->status);
        return false;
    }
    if (h->grpc_status != 0) {
        snprintf(why, whylen, h->grpc_status < 0 ? "no grpc-status" : "grpc-status %d", h->grpc_status);
        return false;
    }
    int st = grpc_serving_status(h);
    if (st == 1) {
        snprintf(why, whylen, "SERVING");
        return true;
    }
    if (st < 0)
        snprintf(why, whylen, "malformed HealthCheckResponse");
    else
        snprintf(why, whylen, "%s", st < 4 ? names[st] : "unknown serving status");
    return false;
}

bool tg_hh2_verdict(const tg_hh2_t *h, char *why, size_t whylen)
{
    if (h->goaway) {
        snprintf(why, whylen, "GOAWAY before the check was served");
        return false;
    }
    if (h->grpc && h->closed && h->reset_code == NGHTTP2_NO_ERROR)
        return grpc_verdict(h, why, whylen);
    if (h->status == 0 || h->grpc) {
        snprintf(why, whylen, "stream reset (HTTP/2 error %u)", h->reset_code);
        return false;
    }
    snprintf(why, whylen, "status %d", h->status);
    for (size_t i = 0; i < h->hc->nexpect; i++)
        if (h->status >= h->hc->expect[i].lo && h->status <= h->hc->expect[i].hi)
            return true;
    return false;
}
