/* WebSocket tunnels (route `websocket: true`). The handshake is an ordinary
 * exchange: filters (auth, rate limits) run on it. The upstream is always
 * asked with an HTTP/1.1 Upgrade; its 101 turns the exchange into a tunnel:
 * both directions then carry opaque bytes, with the usual backpressure,
 * until either side closes (the upstream connection's idle timeout bounds
 * silence).
 *
 * Downstream forms:
 *  - HTTP/1.1 `GET` + `Connection: Upgrade` + `Upgrade: websocket`: the 101
 *    is relayed, and the codec switches its connection to tunnel mode when it
 *    sees status 101 in response_head.
 *  - HTTP/2 extended CONNECT (RFC 8441): the codec presents it as method
 *    CONNECT, version 2, `upgrade` set and an `Upgrade: websocket` field
 *    carrying :protocol; the upstream gets a GET with a fresh
 *    Sec-WebSocket-Key, and the downstream gets 200 (a final head with a
 *    streamed body) instead of the 101. */
#include "proxy/exchange_int.h"

#include <openssl/evp.h>
#include <string.h>

static bool wants_websocket(const tg_exchange_t *ex, bool *h2)
{
    const tg_request_t *r = &ex->req;
    const tg_header_t *up = tg_headers_find(r->headers, r->nheaders, "upgrade");
    if (!ex->route->websocket || !r->upgrade || up == NULL ||
        !tg_str_list_has_token(up->value, "websocket"))
        return false;
    *h2 = r->version_major == 2 && tg_str_eq(r->method, TG_STR_LIT("CONNECT"));
    return *h2 || tg_str_eq(r->method, TG_STR_LIT("GET"));
}

/* 16 random bytes, base64 (RFC 6455 §4.1): the key an h2 client never sends. */
static int new_key(tg_exchange_t *ex)
{
    char rid[32];
    unsigned char raw[16];
    tg_worker_request_id(ex->w, rid); /* 128 bits of worker randomness, hex */
    for (int i = 0; i < 16; i++) {
        int hi = rid[2 * i] <= '9' ? rid[2 * i] - '0' : rid[2 * i] - 'a' + 10;
        int lo = rid[2 * i + 1] <= '9' ? rid[2 * i + 1] - '0' : rid[2 * i + 1] - 'a' + 10;
        raw[i] = (unsigned char)(hi << 4 | lo);
    }
    char key[32];
    int n = EVP_EncodeBlock((unsigned char *)key, raw, 16);
    return tg_ex_req_header_set(ex, "Sec-WebSocket-Key", tg_str(key, (size_t)n));
}

int tg__ex_tunnel_setup(tg_exchange_t *ex)
{
    bool h2 = false;
    if (!wants_websocket(ex, &h2)) {
        const tg_request_t *r = &ex->req;
        if (r->version_major == 2 && r->upgrade && tg_str_eq(r->method, TG_STR_LIT("CONNECT"))) {
            /* RFC 8441 on a route without `websocket: true`: never a
             * CONNECT upstream. */
            tg__ex_respond_error(ex, 501, "websocket_not_enabled");
            return 1;
        }
        return 0;
    }
    ex->tunnel_req = true;
    ex->tunnel_h2 = h2;
    ex->upreq.tunnel = true;
    /* Upgrade and Connection are hop-by-hop: the gateway asks for the
     * upgrade on its own connection to the upstream. */
    if (tg_ex_req_header_set(ex, "Connection", TG_STR_LIT("Upgrade")) < 0 ||
        tg_ex_req_header_set(ex, "Upgrade", TG_STR_LIT("websocket")) < 0)
        return -1;
    if (h2) {
        ex->req.method = TG_STR_LIT("GET");
        if (tg_headers_find(ex->req.headers, ex->req.nheaders, "sec-websocket-version") == NULL &&
            tg_ex_req_header_set(ex, "Sec-WebSocket-Version", TG_STR_LIT("13")) < 0)
            return -1;
        return new_key(ex);
    }
    return 0;
}

int tg__ex_tunnel_head(tg_exchange_t *ex, const tg_response_t *resp)
{
    tg_response_t out;
    ex->up_status = ex->status = ex->tunnel_h2 ? 200 : 101;
    ex->up_ms = (double)(uv_hrtime() - ex->t_up) / 1e6;
    if (tg__ex_response_headers(ex, resp, &out) < 0)
        return -1;
    tg__ex_filters_response_head(ex, ex->status);
    if (ex->tunnel_h2) {
        tg_ex_resp_header_remove(ex, "sec-websocket-accept");
        out.status = 200;
        out.reason = TG_STR_LIT("OK");
        out.body = TG_BODY_STREAM;
    } else {
        const tg_header_t *up = tg_headers_find(resp->headers, resp->nheaders, "upgrade");
        tg_ex_resp_header_set(ex, "Connection", TG_STR_LIT("Upgrade"));
        tg_ex_resp_header_set(ex, "Upgrade", up ? up->value : TG_STR_LIT("websocket"));
        out.body = TG_BODY_UNTIL_CLOSE;
    }
    out.headers = ex->resp_h;
    out.nheaders = ex->resp_n;
    if (ex->ops->response_head(ex->ctx, ex, &out) < 0)
        return -1;
    ex->resp_head_sent = true;
    ex->tunnel = true;
    return 0;
}
