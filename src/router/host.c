/* Host / :authority normalisation (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3).
 *
 * The routing host must have one spelling per name, or a request could slip
 * past a host-specific route into a catch-all one. So:
 * - ASCII letters are lowercased;
 * - the port is dropped: ":" then at most 5 digits, value <= 65535; an empty
 *   port ("example.com:") is allowed as RFC 3986 allows it;
 * - one trailing dot is dropped ("example.com." is example.com);
 * - IPv6 literals are checked with inet_pton and rewritten in their
 *   canonical RFC 5952 form, brackets kept: "[0:0::1]:8080" → "[::1]";
 * - reg-names accept unreserved and sub-delims only, with no empty label.
 *   Percent-encoding is refused (browsers never send it, and "%61pi" would
 *   be a second spelling of "api"), as are IPvFuture literals, userinfo,
 *   whitespace, controls and non-ASCII (IDNs arrive as punycode).
 * An empty authority is an empty host (length 0); an empty host with a port
 * (":80") is invalid. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "router/router_int.h"

/* RFC 3986 unreserved / sub-delims, minus '.', which is handled as the
 * label separator. */
static bool reg_name_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-_~!$&'()*+,;=", c) != NULL;
}

/* Validates and lowercases a reg-name (or IPv4 address) into out. Returns
 * the length without a trailing dot, or -1. */
static int reg_name(tg_str_t h, char *out, size_t cap)
{
    if (h.len > 1 && h.p[h.len - 1] == '.')
        h.len--;
    if (h.len > cap || h.len > INT32_MAX)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < h.len; i++) {
        unsigned char c = (unsigned char)h.p[i];
        if (c == '.') {
            if (label == 0)
                return -1; /* empty label: ".a", "a..b", "." */
            label = 0;
        } else if (reg_name_char(c)) {
            label++;
        } else {
            return -1;
        }
        out[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    return label == 0 ? -1 : (int)h.len;
}

/* "[v6]" (the brackets included in `lit`) → canonical "[v6]" in out. */
static int ip_literal(tg_str_t lit, char *out, size_t cap)
{
    char src[INET6_ADDRSTRLEN + 1];
    size_t n = lit.len - 2;
    if (n == 0 || n >= sizeof src)
        return -1;
    memcpy(src, lit.p + 1, n);
    src[n] = '\0';
    struct in6_addr a;
    char txt[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET6, src, &a) != 1 || inet_ntop(AF_INET6, &a, txt, sizeof txt) == NULL)
        return -1;
    size_t tlen = strlen(txt);
    if (tlen + 2 > cap)
        return -1;
    out[0] = '[';
    memcpy(out + 1, txt, tlen); /* inet_ntop writes lowercase hex */
    out[tlen + 1] = ']';
    return (int)(tlen + 2);
}

/* `p` is ":" followed by the port. */
static bool port_ok(tg_str_t p)
{
    if (p.len > 6)
        return false;
    unsigned v = 0;
    for (size_t i = 1; i < p.len; i++) {
        if (p.p[i] < '0' || p.p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p.p[i] - '0');
    }
    return v <= 65535;
}

int tg_host_normalize(tg_str_t authority, char *out, size_t cap)
{
    if (authority.len == 0)
        return 0;
    size_t hlen;
    if (authority.p[0] == '[') {
        const char *close = memchr(authority.p, ']', authority.len);
        if (close == NULL)
            return -1;
        hlen = (size_t)(close - authority.p) + 1;
    } else {
        const char *colon = memchr(authority.p, ':', authority.len);
        hlen = colon ? (size_t)(colon - authority.p) : authority.len;
        if (hlen == 0)
            return -1; /* ":80": a port without a host */
    }
    tg_str_t port = tg_str(authority.p + hlen, authority.len - hlen);
    if (port.len > 0 && (port.p[0] != ':' || !port_ok(port)))
        return -1;
    tg_str_t host = tg_str(authority.p, hlen);
    return host.p[0] == '[' ? ip_literal(host, out, cap) : reg_name(host, out, cap);
}
