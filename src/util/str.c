#include "util/str.h"

static inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

bool tg_str_ieq(tg_str_t a, tg_str_t b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (lower(a.p[i]) != lower(b.p[i]))
            return false;
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
