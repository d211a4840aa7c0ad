#include "util/str.h"

bool tg_str_ieq(tg_str_t a, tg_str_t b)
{
    if (a.len != b.len)
        return false;
    /* Equal bytes are the common case (names as clients send them); only a
     * difference asks whether it is a letter in the other case. */
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.p[i], y = (unsigned char)b.p[i];
        if (x != y && ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z'))
            return false;
    }
    return true;
}

bool tg_str_has_prefix(tg_str_t s, tg_str_t prefix)
{
    return s.len >= prefix.len && memcmp(s.p, prefix.p, prefix.len) == 0;
}

tg_str_t tg_str_trim_ows(tg_str_t s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

bool tg_str_list_has_token(tg_str_t s, const char *token)
{
    tg_str_t want = tg_str_c(token);
    size_t start = 0;
    for (size_t i = 0; i <= s.len; i++) {
        if (i == s.len || s.p[i] == ',') {
            tg_str_t item = tg_str_trim_ows(tg_str(s.p + start, i - start));
            if (tg_str_ieq(item, want))
                return true;
            start = i + 1;
        }
    }
    return false;
}

size_t tg_u64_dec(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}
