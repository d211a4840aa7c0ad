/* RFC 9111 arithmetic and directive parsing (store/cache_policy.h). */
#include "store/cache_policy.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define DELTA_MAX 2147483648ll      /* RFC 9111 §1.2.2 */
#define HEURISTIC_CAP_MS 86400000ll /* a day: the common cap on the 10% rule */

void tg_cc_init(tg_cc_t *cc)
{
    *cc = (tg_cc_t){ .max_age = -1, .s_maxage = -1, .max_stale = -1, .min_fresh = -1,
                     .stale_while_revalidate = -1, .stale_if_error = -1 };
}

static char lc(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

static bool tok_is(tg_str_t t, const char *name)
{
    size_t n = strlen(name);
    if (t.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lc(t.p[i]) != name[i])
            return false;
    return true;
}

/* delta-seconds; a quoted value is accepted (a common origin mistake). */
static int64_t delta(tg_str_t v, bool has)
{
    if (!has)
        return 0;
    if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"')
        v = tg_str(v.p + 1, v.len - 2);
    int64_t x = 0;
    if (v.len == 0)
        return 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return 0;
        x = x * 10 + (v.p[i] - '0');
        if (x > DELTA_MAX)
            x = DELTA_MAX;
    }
    return x;
}

static void directive(tg_cc_t *cc, tg_str_t name, tg_str_t val, bool has)
{
    static const struct { const char *n; uint32_t f; } flags[] = {
        { "no-store", TG_CC_NO_STORE },       { "no-cache", TG_CC_NO_CACHE },
        { "private", TG_CC_PRIVATE },         { "public", TG_CC_PUBLIC },
        { "must-revalidate", TG_CC_MUST_REVALIDATE },
        { "proxy-revalidate", TG_CC_PROXY_REVALIDATE },
        { "only-if-cached", TG_CC_ONLY_IF_CACHED },
    };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (tok_is(name, flags[i].n)) {
            cc->flags |= flags[i].f;
            return;
        }
    int64_t d = delta(val, has);
    /* The first occurrence wins for duplicated delta directives; a
     * duplicated max-age is the origin's mistake, read as the smaller. */
    if (tok_is(name, "max-age"))
        cc->max_age = cc->max_age < 0 || d < cc->max_age ? d : cc->max_age;
    else if (tok_is(name, "s-maxage"))
        cc->s_maxage = cc->s_maxage < 0 || d < cc->s_maxage ? d : cc->s_maxage;
    else if (tok_is(name, "max-stale")) {
        if (has)
            cc->max_stale = d;
        else
            cc->flags |= TG_CC_MAX_STALE_ANY;
    } else if (tok_is(name, "min-fresh"))
        cc->min_fresh = d;
    else if (tok_is(name, "stale-while-revalidate"))
        cc->stale_while_revalidate = d;
    else if (tok_is(name, "stale-if-error"))
        cc->stale_if_error = d;
}

void tg_cc_parse(tg_cc_t *cc, tg_str_t v)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t ns = i;
        while (i < v.len && v.p[i] != '=' && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
            i++;
        tg_str_t name = tg_str(v.p + ns, i - ns);
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'))
            i++;
        tg_str_t val = TG_STR_NULL;
        bool has = false;
        if (i < v.len && v.p[i] == '=') {
            i++;
            while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'))
                i++;
            size_t vs = i;
            if (i < v.len && v.p[i] == '"') { /* quoted-string, with escapes */
                for (i++; i < v.len && v.p[i] != '"'; i++)
                    if (v.p[i] == '\\')
                        i++;
                i = i < v.len ? i + 1 : v.len;
            } else {
                while (i < v.len && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
                    i++;
            }
            val = tg_str(v.p + vs, i - vs);
            has = true;
        }
        if (name.len)
            directive(cc, name, val, has);
        while (i < v.len && v.p[i] != ',')
            i++;
    }
}

void tg_cc_from_headers(tg_cc_t *cc, const tg_header_t *h, size_t n)
{
    tg_cc_init(cc);
    for (size_t i = 0; i < n; i++)
        if (tg_str_ieq_c(h[i].name, "cache-control"))
            tg_cc_parse(cc, h[i].value);
}

/* ---- HTTP-date ---- */

static int month_of(const char *m)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (strncmp(names + i * 3, m, 3) == 0)
            return i;
    return -1;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int64_t tg_http_date_parse(tg_str_t s)
{
    char buf[64];
    if (s.len == 0 || s.len >= sizeof buf)
        return -1;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    char wd[16], mon[8], tz[8];
    int d, y, hh, mm, ss, n = 0;
    if (sscanf(buf, "%3s, %2d %3s %4d %2d:%2d:%2d %3s%n", wd, &d, mon, &y, &hh, &mm, &ss, tz, &n) == 8 &&
        (size_t)n == s.len && strcmp(tz, "GMT") == 0) {
        /* IMF-fixdate */
    } else if (sscanf(buf, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d %3s%n", wd, &d, mon, &y, &hh, &mm, &ss, tz,
                      &n) == 8 && (size_t)n == s.len && strcmp(tz, "GMT") == 0) {
        y += y < 70 ? 2000 : 1900; /* RFC 850: two-digit year, RFC 9110 §5.6.7 window */
    } else if (sscanf(buf, "%3s %3s %2d %2d:%2d:%2d %4d%n", wd, mon, &d, &hh, &mm, &ss, &y, &n) == 7 &&
               (size_t)n == s.len) {
        /* asctime */
    } else {
        return -1;
    }
    int m = month_of(mon);
    if (m < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1970 || y > 9999)
        return -1;
    int64_t days = days_from_civil(y, (unsigned)m + 1, (unsigned)d);
    return ((days * 24 + hh) * 60 + mm) * 60000ll + ss * 1000ll;
}

void tg_http_date_format(int64_t ms, char out[30])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    static const char *wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *mo[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    char buf[64]; /* room for any int; valid dates need 29 + NUL */
    snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday], tm.tm_mday,
             mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, buf, 29);
    out[29] = '\0';
}

/* ---- freshness ---- */

bool tg_cache_status_heuristic(int status)
{
    static const int ok[] = { 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501 };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (ok[i] == status)
            return true;
    return false;
}

bool tg_cache_has_explicit_freshness(const tg_fresh_in_t *in)
{
    return in->cc->s_maxage >= 0 || in->cc->max_age >= 0 || in->expires >= 0;
}

int64_t tg_cache_freshness_lifetime(const tg_fresh_in_t *in)
{
    const tg_cc_t *cc = in->cc;
    if (cc->s_maxage >= 0)
        return cc->s_maxage * 1000;
    if (cc->max_age >= 0)
        return cc->max_age * 1000;
    if (in->expires >= 0) {
        /* Without Date the response's arrival stands in for it (§4.2.1). */
        int64_t date = in->date >= 0 ? in->date : in->response_time;
        int64_t l = in->expires - date;
        return l > 0 ? l : 0;
    }
    if (in->default_ttl > 0)
        return in->default_ttl;
    if (in->last_modified >= 0 && (tg_cache_status_heuristic(in->status) || (cc->flags & TG_CC_PUBLIC))) {
        int64_t date = in->date >= 0 ? in->date : in->response_time;
        int64_t l = (date - in->last_modified) / 10;
        if (l < 0)
            return 0;
        return l > HEURISTIC_CAP_MS ? HEURISTIC_CAP_MS : l;
    }
    return 0;
}

int64_t tg_cache_initial_age(const tg_fresh_in_t *in)
{
    int64_t apparent = 0;
    if (in->date >= 0 && in->response_time > in->date)
        apparent = in->response_time - in->date;
    int64_t delay = in->response_time > in->request_time ? in->response_time - in->request_time : 0;
    int64_t corrected = (in->age > 0 ? in->age : 0) + delay;
    return apparent > corrected ? apparent : corrected;
}

bool tg_cache_auth_storable(const tg_cc_t *cc)
{
    return (cc->flags & (TG_CC_MUST_REVALIDATE | TG_CC_PUBLIC)) || cc->s_maxage >= 0;
}

/* ---- validators ---- */

static tg_str_t opaque(tg_str_t t)
{
    if (t.len >= 2 && t.p[0] == 'W' && t.p[1] == '/')
        return tg_str(t.p + 2, t.len - 2);
    return t;
}

bool tg_etag_list_matches(tg_str_t inm, tg_str_t etag)
{
    inm = tg_str_trim_ows(inm);
    if (inm.len == 1 && inm.p[0] == '*')
        return etag.p != NULL;
    if (etag.p == NULL)
        return false;
    tg_str_t want = opaque(tg_str_trim_ows(etag));
    size_t i = 0;
    while (i < inm.len) {
        while (i < inm.len && (inm.p[i] == ' ' || inm.p[i] == '\t' || inm.p[i] == ','))
            i++;
        size_t s = i;
        if (i + 1 < inm.len && inm.p[i] == 'W' && inm.p[i + 1] == '/')
            i += 2;
        if (i < inm.len && inm.p[i] == '"') {
            for (i++; i < inm.len && inm.p[i] != '"'; i++)
                ;
            i = i < inm.len ? i + 1 : inm.len;
        } else {
            while (i < inm.len && inm.p[i] != ',')
                i++;
        }
        if (tg_str_eq(opaque(tg_str_trim_ows(tg_str(inm.p + s, i - s))), want))
            return true;
    }
    return false;
}

/* ---- Vary normalisation ---- */

size_t tg_cache_normalize_ae(tg_str_t in, char *out, size_t cap)
{
    enum { MAXC = 16 };
    char codings[MAXC][24];
    size_t nc = 0, i = 0;
    while (i < in.len && nc < MAXC) {
        while (i < in.len && (in.p[i] == ' ' || in.p[i] == '\t' || in.p[i] == ','))
            i++;
        size_t s = i;
        while (i < in.len && in.p[i] != ',')
            i++;
        tg_str_t item = tg_str(in.p + s, i - s);
        const char *semi = memchr(item.p, ';', item.len);
        tg_str_t name = tg_str_trim_ows(tg_str(item.p, semi ? (size_t)(semi - item.p) : item.len));
        if (semi) { /* q=0 means "not acceptable": drop it */
            tg_str_t params = tg_str(semi + 1, item.len - (size_t)(semi + 1 - item.p));
            params = tg_str_trim_ows(params);
            if (params.len >= 3 && lc(params.p[0]) == 'q' && params.p[1] == '=') {
                bool zero = true;
                for (size_t k = 2; k < params.len; k++)
                    if (params.p[k] != '0' && params.p[k] != '.')
                        zero = false;
                if (zero)
                    continue;
            }
        }
        if (name.len == 0 || name.len >= sizeof codings[0])
            continue;
        char c[24];
        for (size_t k = 0; k < name.len; k++)
            c[k] = lc(name.p[k]);
        c[name.len] = '\0';
        size_t at = 0; /* insertion sort, dropping duplicates */
        while (at < nc && strcmp(codings[at], c) < 0)
            at++;
        if (at < nc && strcmp(codings[at], c) == 0)
            continue;
        memmove(codings[at + 1], codings[at], (nc - at) * sizeof codings[0]);
        memcpy(codings[at], c, name.len + 1);
        nc++;
    }
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t k = 0; k < nc; k++) {
        int w = snprintf(out + o, cap - o, "%s%s", k ? "," : "", codings[k]);
        if (w < 0 || (size_t)w >= cap - o) {
            o = cap - 1;
            break;
        }
        o += (size_t)w;
    }
    out[o] = '\0';
    return o;
}
