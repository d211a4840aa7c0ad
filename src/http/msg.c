/* Helpers over the protocol-neutral message model (msg.h). */
#include "http/msg.h"

const tg_header_t *tg_headers_find_s(const tg_header_t *h, size_t n, tg_str_t want)
{
    for (size_t i = 0; i < n; i++)
        if (tg_str_ieq(h[i].name, want))
            return &h[i];
    return NULL;
}

/* RFC 9110 §15 plus the registered extensions a gateway meets in practice
 * (102/103, WebDAV 207/208/422-424, 226, 428/429/431/451, 506-511).
 * Indexed by status: one load, no search. */
static const char *const reasons[600] = {
    [100] = "Continue",
    [101] = "Switching Protocols",
    [102] = "Processing",
    [103] = "Early Hints",
    [200] = "OK",
    [201] = "Created",
    [202] = "Accepted",
    [203] = "Non-Authoritative Information",
    [204] = "No Content",
    [205] = "Reset Content",
    [206] = "Partial Content",
    [207] = "Multi-Status",
    [208] = "Already Reported",
    [226] = "IM Used",
    [300] = "Multiple Choices",
    [301] = "Moved Permanently",
    [302] = "Found",
    [303] = "See Other",
    [304] = "Not Modified",
    [305] = "Use Proxy",
    [307] = "Temporary Redirect",
    [308] = "Permanent Redirect",
    [400] = "Bad Request",
    [401] = "Unauthorized",
    [402] = "Payment Required",
    [403] = "Forbidden",
    [404] = "Not Found",
    [405] = "Method Not Allowed",
    [406] = "Not Acceptable",
    [407] = "Proxy Authentication Required",
    [408] = "Request Timeout",
    [409] = "Conflict",
    [410] = "Gone",
    [411] = "Length Required",
    [412] = "Precondition Failed",
    [413] = "Content Too Large",
    [414] = "URI Too Long",
    [415] = "Unsupported Media Type",
    [416] = "Range Not Satisfiable",
    [417] = "Expectation Failed",
    [418] = "I'm a teapot",
    [421] = "Misdirected Request",
    [422] = "Unprocessable Content",
    [423] = "Locked",
    [424] = "Failed Dependency",
    [425] = "Too Early",
    [426] = "Upgrade Required",
    [428] = "Precondition Required",
    [429] = "Too Many Requests",
    [431] = "Request Header Fields Too Large",
    [451] = "Unavailable For Legal Reasons",
    [500] = "Internal Server Error",
    [501] = "Not Implemented",
    [502] = "Bad Gateway",
    [503] = "Service Unavailable",
    [504] = "Gateway Timeout",
    [505] = "HTTP Version Not Supported",
    [506] = "Variant Also Negotiates",
    [507] = "Insufficient Storage",
    [508] = "Loop Detected",
    [510] = "Not Extended",
    [511] = "Network Authentication Required",
};

const char *tg_http_reason(int status)
{
    if (status < 0 || status >= (int)(sizeof reasons / sizeof reasons[0]) || reasons[status] == NULL)
        return "Unknown";
    return reasons[status];
}

/* Connection (RFC 9110 §7.6.1) and the fields it names as connection-specific
 * by definition. Fields listed in a Connection header are hop-by-hop too;
 * that list is per message, so the caller checks it. */
bool tg_http_is_hop_by_hop(tg_str_t name)
{
    switch (name.len) {
    case 2:
        return tg_str_ieq_c(name, "te");
    case 7:
        return tg_str_ieq_c(name, "upgrade") || tg_str_ieq_c(name, "trailer");
    case 10:
        return tg_str_ieq_c(name, "connection") || tg_str_ieq_c(name, "keep-alive");
    case 16:
        return tg_str_ieq_c(name, "proxy-connection");
    case 17:
        return tg_str_ieq_c(name, "transfer-encoding");
    default:
        return false;
    }
}
