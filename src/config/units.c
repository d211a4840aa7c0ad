/* Unit parsers of the configuration contract (shared/spec/config.md, "Units").
 * Pure functions: no allocation, no I/O; they return 0 and fill *out, or -1
 * and leave *out untouched. Exported through config/config.h. */
#include "config/config.h"
#include "config/internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Parses "D+[.D+]" at *p and returns value * mult exactly: a fraction must
 * land on a whole unit (1.5s = 1500ms ok, 0.5ms not). Advances *p. */
static int parse_scaled(const char **p, uint64_t mult, uint64_t *out)
{
    const char *s = *p;
    uint64_t ip = 0, fp = 0, fden = 1;
    if (!is_digit(*s))
        return -1;
    for (; is_digit(*s); s++)
        if (__builtin_mul_overflow(ip, 10, &ip) || __builtin_add_overflow(ip, (uint64_t)(*s - '0'), &ip))
            return -1;
    if (*s == '.') {
        s++;
        if (!is_digit(*s))
            return -1;
        for (int d = 0; is_digit(*s); s++, d++) {
            if (d == 18) /* more precision than any unit here can use */
                return -1;
            fp = fp * 10 + (uint64_t)(*s - '0');
            fden *= 10;
        }
    }
    uint64_t v, frac;
    if (__builtin_mul_overflow(ip, mult, &v))
        return -1;
    if (fp != 0) {
        /* fp < fden <= 1e18 and mult <= 1e12 (TiB ~ 1.1e12): use 128 bits. */
        unsigned __int128 f = (unsigned __int128)fp * mult;
        if (f % fden != 0)
            return -1;
        frac = (uint64_t)(f / fden);
        if (__builtin_add_overflow(v, frac, &v))
            return -1;
    }
    *p = s;
    *out = v;
    return 0;
}

/* ---- durations ---- */

static const struct { const char *name; uint64_t ms; } duration_units[] = {
    { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
};

/* "250ms" "5s" "2m" "1h" "1d", compounds in decreasing order ("1h30m"), and a
 * bare number meaning seconds ("5", "0.25"). */
int tg_parse_duration_ms(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    uint64_t total = 0;
    size_t last_unit = (size_t)-1; /* index into duration_units, must increase in size order */
    bool first = true;
    const char *p = s;
    while (*p) {
        const char *num = p;
        size_t u;
        for (; is_digit(*p) || *p == '.'; p++)
            ;
        if (*p == '\0' && first) { /* bare number: seconds */
            p = num;
            if (parse_scaled(&p, 1000, &total) != 0 || *p != '\0')
                return -1;
            *out = total;
            return 0;
        }
        size_t nu = sizeof duration_units / sizeof duration_units[0];
        for (u = 0; u < nu; u++) {
            size_t ul = strlen(duration_units[u].name);
            if (strncmp(p, duration_units[u].name, ul) == 0 && !(u == 2 && p[1] == 's'))
                break;
        }
        if (u == nu || (last_unit != (size_t)-1 && u >= last_unit))
            return -1;
        const char *q = num;
        uint64_t v;
        if (parse_scaled(&q, duration_units[u].ms, &v) != 0 || q != p)
            return -1;
        if (__builtin_add_overflow(total, v, &total))
            return -1;
        p += strlen(duration_units[u].name);
        last_unit = u;
        first = false;
    }
    *out = total;
    return 0;
}

/* ---- sizes ---- */

static const struct { const char *name; uint64_t mult; } size_units[] = {
    { "", 1 },
    { "B", 1 },
    { "KB", 1000ull },
    { "MB", 1000ull * 1000 },
    { "GB", 1000ull * 1000 * 1000 },
    { "TB", 1000ull * 1000 * 1000 * 1000 },
    { "KiB", 1024ull },
    { "MiB", 1024ull * 1024 },
    { "GiB", 1024ull * 1024 * 1024 },
    { "TiB", 1024ull * 1024 * 1024 * 1024 },
};

/* "512", "16KiB", "10MiB", "1GiB", "1.5MiB", "64KB" (powers of 1000). Unit
 * names are matched case-insensitively ("16kib"); the result must be a whole
 * number of bytes. */
int tg_parse_size(const char *s, uint64_t *out)
{
    if (s == NULL)
        return -1;
    const char *unit = s;
    while (is_digit(*unit) || *unit == '.')
        unit++;
    for (size_t u = 0; u < sizeof size_units / sizeof size_units[0]; u++) {
        if (strcasecmp(unit, size_units[u].name) != 0)
            continue;
        const char *p = s;
        uint64_t v;
        if (parse_scaled(&p, size_units[u].mult, &v) != 0 || p != unit)
            return -1;
        *out = v;
        return 0;
    }
    return -1;
}

/* ---- CIDRs ---- */

static int parse_prefix(const char *s, unsigned max, unsigned *out)
{
    unsigned v = 0;
    if (!is_digit(*s))
        return -1;
    for (int d = 0; is_digit(*s); s++, d++) {
        if (d == 3)
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (*s != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "10.0.0.0/8", "2001:db8::/32", or a bare address (a host route). Host bits
 * below the prefix are cleared, as nginx and iptables do. */
int tg_parse_cidr(const char *s, tg_cidr_t *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (s == NULL)
        return -1;
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len + 1);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    tg_cidr_t c;
    memset(&c, 0, sizeof c);
    unsigned bits;
    if (inet_pton(AF_INET, buf, c.addr) == 1) {
        c.family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
        c.family = AF_INET6;
        bits = 128;
    } else {
        return -1;
    }
    unsigned prefix = bits;
    if (slash && parse_prefix(slash + 1, bits, &prefix) != 0)
        return -1;
    for (unsigned i = 0; i < bits / 8; i++) {
        unsigned keep = prefix > i * 8 ? prefix - i * 8 : 0;
        if (keep < 8)
            c.addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    c.prefix_len = (uint8_t)prefix;
    *out = c;
    return 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (a[full] & mask) == (b[full] & mask);
}

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* A peer on a dual-stack socket shows up as ::ffff:a.b.c.d; it matches IPv4
 * CIDRs (and an IPv4 peer matches ::ffff:0:0/96-style CIDRs). */
bool tg_cidr_contains(const tg_cidr_t *c, const struct sockaddr *sa)
{
    uint8_t addr[16];
    if (c == NULL || sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (c->family == AF_INET)
            return prefix_equal(c->addr, (const uint8_t *)&in->sin_addr, c->prefix_len);
        memcpy(addr, v4_mapped, 12);
        memcpy(addr + 12, &in->sin_addr, 4);
        return c->family == AF_INET6 && prefix_equal(c->addr, addr, c->prefix_len);
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const uint8_t *a6 = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (c->family == AF_INET6)
        return prefix_equal(c->addr, a6, c->prefix_len);
    if (c->family == AF_INET && memcmp(a6, v4_mapped, 12) == 0)
        return prefix_equal(c->addr, a6 + 12, c->prefix_len);
    return false;
}

/* ---- addresses ---- */

int tg__parse_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v = 0;
    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* Splits "host:port" / "[v6]:port" / ":port". host_out gets the host without
 * brackets (possibly empty) as a NUL-terminated string. */
int tg__split_host_port(const char *s, char *host_out, size_t cap, uint16_t *port, bool *bracketed)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    *bracketed = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        *bracketed = true;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen) != NULL) /* bare IPv6 needs brackets */
            return -1;
    }
    if (hlen >= cap || tg__parse_port(colon + 1, strlen(colon + 1), port) != 0)
        return -1;
    memcpy(host_out, h, hlen);
    host_out[hlen] = '\0';
    return 0;
}

static int parse_unix(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof un->sun_path)
        return -1;
    memset(ss, 0, sizeof *ss);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int tg_parse_listen_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    uint16_t port;
    bool br;
    if (s == NULL)
        return -1;
    if (strncmp(s, "unix:", 5) == 0)
        return parse_unix(s + 5, ss, len);
    if (tg__split_host_port(s, host, sizeof host, &port, &br) != 0)
        return -1;
    struct sockaddr_storage tmp;
    memset(&tmp, 0, sizeof tmp);
    struct sockaddr_in *in = (struct sockaddr_in *)&tmp;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&tmp;
    if (br) {
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return -1;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof *in6;
    } else {
        /* Empty host (or "*") = all IPv4 interfaces, as nginx's "listen 8080";
         * "[::]:8080" asks for IPv6. */
        if (host[0] == '\0' || strcmp(host, "*") == 0)
            in->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (strcmp(host, "localhost") == 0)
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
            return -1;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof *in;
    }
    *ss = tmp;
    return 0;
}
