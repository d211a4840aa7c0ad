/* Path rewrites (routes[].rewrite). The input is the normalised path, without
 * the query; the output is the path sent upstream.
 *
 * - strip_prefix P: applies only when the path starts with P at a segment
 *   boundary (the same rule as match.path); the prefix is removed but the
 *   boundary '/' kept: /v1 on /v1/users/7 → /users/7, on /v1 → /. A P ending
 *   in '/' strips the same way: /v1/ on /v1/users → /users.
 * - replace_prefix {from, to}: same rule, then `to` takes the place of
 *   `from` (/v1 → /api: /v1/users → /api/users); when `to` ends in '/' the
 *   boundary '/' is not doubled.
 * - regex {pattern, replace}: the first match of pattern is replaced by
 *   `replace`, in which $0..$9 stand for capture groups (unset or missing
 *   groups are empty), "$$" for '$', and any other '$' for itself. The rest
 *   of the path around the match is kept, so an anchored pattern
 *   (^...$) replaces the whole path. No match: the path is unchanged.
 *
 * Every result is a path: empty becomes "/", and one not starting with '/'
 * gets one in front so the upstream request line stays valid. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "router/router_int.h"

/* Results are written at buf + 1 into a buffer of length + 2 bytes, so that
 * a missing leading '/' can be put in front without a second pass. */
static char *path_buf(tg_arena_t *a, size_t len) { return tg_arena_alloc(a, len + 2); }

/* Finishes the n bytes at buf + 1 as a path (see the file comment). */
static tg_str_t path_finish(char *buf, size_t n)
{
    buf[n + 1] = '\0';
    if (n > 0 && buf[1] == '/')
        return tg_str(buf + 1, n);
    buf[0] = '/';
    return tg_str(buf, n + 1);
}

static tg_str_t rewrite_prefix(const char *from, const char *to, tg_str_t path, tg_arena_t *a)
{
    tg_str_t f = tg_str_c(from);
    if (from == NULL || !tg__prefix_ok(f, path))
        return path;
    size_t cut = f.len;
    if (cut > 0 && f.p[cut - 1] == '/')
        cut--; /* keep the boundary '/' in the rest */
    tg_str_t t = tg_str_c(to);
    if (t.len == 0 && cut == 0)
        return path; /* stripping "/" changes nothing */
    tg_str_t rest = tg_str(path.p + cut, path.len - cut);
    if (t.len > 0 && t.p[t.len - 1] == '/' && rest.len > 0 && rest.p[0] == '/') {
        rest.p++;
        rest.len--;
    }
    char *buf = path_buf(a, t.len + rest.len);
    if (buf == NULL)
        return TG_STR_NULL;
    if (t.len)
        memcpy(buf + 1, t.p, t.len);
    if (rest.len)
        memcpy(buf + 1 + t.len, rest.p, rest.len);
    return path_finish(buf, t.len + rest.len);
}

/* Expands `tpl` against the match: writes into out (when not NULL) and
 * returns the length. */
static size_t expand(const char *tpl, tg_str_t subj, const size_t *ov, uint32_t npairs, char *out)
{
    size_t n = 0;
    for (size_t i = 0; tpl[i] != '\0'; i++) {
        char c = tpl[i];
        if (c == '$' && tpl[i + 1] >= '0' && tpl[i + 1] <= '9') {
            uint32_t g = (uint32_t)(tpl[i + 1] - '0');
            i++;
            if (g >= npairs || ov[2 * g] == PCRE2_UNSET || ov[2 * g] > ov[2 * g + 1] ||
                ov[2 * g + 1] > subj.len)
                continue; /* unset group: empty */
            size_t glen = ov[2 * g + 1] - ov[2 * g];
            if (out != NULL && glen)
                memcpy(out + n, subj.p + ov[2 * g], glen);
            n += glen;
            continue;
        }
        if (c == '$' && tpl[i + 1] == '$')
            i++;
        if (out != NULL)
            out[n] = c;
        n++;
    }
    return n;
}

static tg_str_t rewrite_regex(const tg_rewrite_cfg_t *rw, tg_str_t path, tg_arena_t *a)
{
    const size_t *ov;
    uint32_t npairs;
    if (rw->pattern == NULL || rw->replace == NULL || !tg__regex_run(rw->pattern, path, &ov, &npairs))
        return path;
    size_t start = ov[0], end = ov[1];
    /* \K in a lookahead can report start > end; pcre2_substitute refuses
     * such a match too. */
    if (start > end || end > path.len)
        return path;
    size_t mid_len = expand(rw->replace, path, ov, npairs, NULL);
    size_t tail = path.len - end;
    char *buf = path_buf(a, start + mid_len + tail);
    if (buf == NULL)
        return TG_STR_NULL;
    if (start)
        memcpy(buf + 1, path.p, start);
    expand(rw->replace, path, ov, npairs, buf + 1 + start);
    if (tail)
        memcpy(buf + 1 + start + mid_len, path.p + end, tail);
    return path_finish(buf, start + mid_len + tail);
}

tg_str_t tg_route_rewrite_path(const tg_route_cfg_t *route, tg_str_t path, tg_arena_t *a)
{
    const tg_rewrite_cfg_t *rw = &route->rewrite;
    if (path.p == NULL)
        path = tg_str("", 0); /* a NULL result must only ever mean OOM */
    switch (rw->kind) {
    case TG_REWRITE_NONE:
        return path;
    case TG_REWRITE_STRIP_PREFIX:
        return rewrite_prefix(rw->from, NULL, path, a);
    case TG_REWRITE_REPLACE_PREFIX:
        return rewrite_prefix(rw->from, rw->to, path, a);
    case TG_REWRITE_REGEX:
        return rewrite_regex(rw, path, a);
    }
    return path;
}
