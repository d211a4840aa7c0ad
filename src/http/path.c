/* Request path normalisation (path.h). The gateway routes, authorises and
 * rate-limits on the normalised path and forwards exactly that path, so a
 * backend can never be reached under a spelling the policies did not see.
 *
 * One pass, segment by segment: each segment is percent-decoded where that is
 * lossless (unreserved characters, RFC 3986 §2.3 and §6.2.2.2), its remaining
 * escapes get uppercase hex (§6.2.2.1), and the decoded segment is then
 * checked for "." / ".." (§5.2.4, so "%2e%2e" counts as ".."). Empty segments
 * are dropped, which merges "//" runs. The output never exceeds the input
 * (every step writes at most what it read), which is why cap >= len suffices
 * and why `out` may even be `in` itself. */
#include "http/h1_int.h"
#include "http/path.h"

enum {
    C_PASS = 0, /* copied as is */
    C_BAD,      /* SP, CTL, non-ASCII, '?' and '#' (not part of a path) */
    C_FORBID,   /* ';' path parameters, '\' (a separator to some servers) */
    C_PCT,
    C_SLASH,
};

static const uint8_t cls[256] = {
    [0x00 ... 0x20] = C_BAD, [0x7f ... 0xff] = C_BAD, ['?'] = C_BAD, ['#'] = C_BAD,
    [';'] = C_FORBID,        ['\\'] = C_FORBID,       ['%'] = C_PCT, ['/'] = C_SLASH,
};

static const uint8_t unreserved[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
};

/* Copies the segment starting at in[*pi] (not at a '/') into out[*po..),
 * leaving *pi at the next '/' or at len. */
static int copy_segment(const char *in, size_t len, size_t *pi, char *out, size_t cap, size_t *po)
{
    static const char hexdig[] = "0123456789ABCDEF";
    size_t i = *pi, o = *po;
    bool ends_in_space = false;
    while (i < len) {
        uint8_t c = (uint8_t)in[i];
        int k = cls[c];
        if (k == C_SLASH)
            break;
        if (k == C_BAD)
            return TG_PATH_ERR_BAD;
        if (k == C_FORBID)
            return TG_PATH_ERR_FORBIDDEN;
        if (k == C_PASS) {
            if (o >= cap)
                return TG_PATH_ERR_BAD;
            out[o++] = (char)c;
            i++;
            ends_in_space = false;
            continue;
        }
        /* "%" HEXDIG HEXDIG; both digits are read before out[] is written. */
        int hi = len - i >= 3 ? tg__h1_hex(in[i + 1]) : -1;
        int lo = len - i >= 3 ? tg__h1_hex(in[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return TG_PATH_ERR_BAD;
        uint8_t v = (uint8_t)(hi << 4 | lo);
        /* An encoded separator or NUL would be a different path to a server
         * that decodes before splitting. */
        if (v == '/' || v == '\\' || v == 0)
            return TG_PATH_ERR_FORBIDDEN;
        if (o + (unreserved[v] ? 1 : 3) > cap)
            return TG_PATH_ERR_BAD;
        if (unreserved[v]) {
            out[o++] = (char)v;
        } else {
            out[o++] = '%';
            out[o++] = hexdig[hi];
            out[o++] = hexdig[lo];
        }
        /* Some servers trim trailing whitespace (and Java's trim() every byte
         * up to SP) from a decoded segment: "admin%20" would become "admin".
         * So a segment may not end in any encoded byte <= 0x20. */
        ends_in_space = v <= 0x20;
        i += 3;
    }
    if (ends_in_space)
        return TG_PATH_ERR_FORBIDDEN;
    *pi = i;
    *po = o;
    return TG_PATH_OK;
}

int tg_path_normalize(const char *in, size_t len, char *out, size_t cap, size_t *outlen)
{
    if (len == 0 || in[0] != '/' || cap == 0)
        return TG_PATH_ERR_BAD;
    size_t i = 1, o = 0;
    out[o++] = '/'; /* invariant: out[0..o) is "/" or ends in "/" between segments */
    while (i < len) {
        if (in[i] == '/') { /* empty segment: "//" merges into "/" */
            i++;
            continue;
        }
        size_t seg = o;
        int r = copy_segment(in, len, &i, out, cap, &o);
        if (r != TG_PATH_OK)
            return r;
        size_t n = o - seg;
        if (n == 1 && out[seg] == '.') {
            o = seg; /* "/./" → "/"; a final "/." leaves the trailing "/" */
        } else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            if (seg == 1) /* nothing left to remove: climbing above "/" */
                return TG_PATH_ERR_FORBIDDEN;
            o = seg - 1; /* drop the "/" before "..", then the previous segment */
            while (out[o - 1] != '/')
                o--;
        } else if (i < len) { /* in[i] == '/': keep one separator */
            if (o >= cap)
                return TG_PATH_ERR_BAD;
            out[o++] = '/';
        }
    }
    *outlen = o;
    return TG_PATH_OK;
}
