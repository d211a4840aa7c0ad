/* Typed reads of tree nodes: strings (with ${ENV} expansion), booleans,
 * integers, units, lists, enums, regexes. Each reports its own error at the
 * node, under the current key path, and returns false. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "config/internal.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- allocation ---- */

void *tg__alloc(tg__ctx_t *cx, size_t n)
{
    void *p = tg_arena_calloc(&cx->cfg->arena, n ? n : 1);
    return p ? p : tg__oom(cx);
}

void *tg__alloc_array(tg__ctx_t *cx, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return tg__oom(cx);
    return tg__alloc(cx, total);
}

char *tg__strdup(tg__ctx_t *cx, const char *s)
{
    char *p = tg_arena_strdup(&cx->cfg->arena, s);
    return p ? p : tg__oom(cx);
}

/* ---- scalars ---- */

static bool scalar_text(tg__ctx_t *cx, tg__node_t *n, const char **out)
{
    if (n->memo_str) {
        *out = n->memo_str;
        return true;
    }
    if (n->memo_err) {
        tg__err(cx, n, "%s", n->memo_err);
        return false;
    }
    if (memchr(n->sc.s, '\0', n->sc.len) != NULL) {
        tg__err(cx, n, "the value contains a NUL character");
        return false;
    }
    char msg[256];
    bool oom;
    if (tg__env_expand(n->sc.s, n->sc.len, &cx->cfg->arena, &n->memo_str, msg, sizeof msg, &oom) != 0) {
        n->memo_str = NULL;
        if (oom) {
            tg__oom(cx);
            return false;
        }
        n->memo_err = tg_arena_strdup(&cx->cfg->arena, msg);
        tg__err(cx, n, "%s", msg);
        return false;
    }
    *out = n->memo_str;
    return true;
}

bool tg__str(tg__ctx_t *cx, tg__node_t *n, const char **out)
{
    if (n->kind != TG__NODE_SCALAR || n->sc.null) {
        tg__err(cx, n, "expected a string");
        return false;
    }
    return scalar_text(cx, n, out);
}

bool tg__str_nonempty(tg__ctx_t *cx, tg__node_t *n, const char **out)
{
    if (!tg__str(cx, n, out))
        return false;
    if (**out == '\0') {
        tg__err(cx, n, "must not be empty");
        return false;
    }
    return true;
}

bool tg__bool(tg__ctx_t *cx, tg__node_t *n, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on" }, *const no[] = { "false", "no", "off" };
    const char *s;
    if (n->kind == TG__NODE_SCALAR && !n->sc.null && scalar_text(cx, n, &s)) {
        for (size_t i = 0; i < 3; i++) {
            if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
                *out = strcasecmp(s, yes[i]) == 0;
                return true;
            }
        }
    } else if (n->kind == TG__NODE_SCALAR && !n->sc.null) {
        return false; /* expansion error already reported */
    }
    tg__err(cx, n, "expected true or false");
    return false;
}

static bool scalar_or_err(tg__ctx_t *cx, tg__node_t *n, const char *what, const char **s)
{
    if (n->kind != TG__NODE_SCALAR || n->sc.null) {
        tg__err(cx, n, "expected %s", what);
        return false;
    }
    return scalar_text(cx, n, s);
}

bool tg__uint(tg__ctx_t *cx, tg__node_t *n, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s;
    if (!scalar_or_err(cx, n, "an integer", &s))
        return false;
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            break;
    if (p == s || *p != '\0') {
        tg__err(cx, n, "expected an integer, got \"%.40s\"", s);
        return false;
    }
    if (v < min || v > max) {
        tg__err(cx, n, "must be between %llu and %llu", (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

bool tg__duration(tg__ctx_t *cx, tg__node_t *n, uint64_t min_ms, uint64_t *out)
{
    const char *s;
    uint64_t v;
    if (!scalar_or_err(cx, n, "a duration like 5s", &s))
        return false;
    if (tg_parse_duration_ms(s, &v) != 0) {
        tg__err(cx, n, "expected a duration like 5s, 250ms, 2m, 1h or 1d, got \"%.40s\"", s);
        return false;
    }
    if (v < min_ms) {
        tg__err(cx, n, "must be at least %llums", (unsigned long long)min_ms);
        return false;
    }
    *out = v;
    return true;
}

bool tg__size(tg__ctx_t *cx, tg__node_t *n, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s;
    uint64_t v;
    if (!scalar_or_err(cx, n, "a size like 16KiB", &s))
        return false;
    if (tg_parse_size(s, &v) != 0) {
        tg__err(cx, n, "expected a size like 512, 16KiB, 10MiB or 1GiB, got \"%.40s\"", s);
        return false;
    }
    if (v < min || v > max) {
        tg__err(cx, n, "must be between %llu and %llu bytes", (unsigned long long)min,
                (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

bool tg__is_map(tg__ctx_t *cx, tg__node_t *n)
{
    if (tg__node_is_null(n) || n->kind == TG__NODE_MAP)
        return true;
    tg__err(cx, n, "expected a mapping");
    return false;
}

bool tg__list(tg__ctx_t *cx, tg__node_t *n, bool allow_one, tg__node_t ***items, size_t *count)
{
    *items = NULL;
    *count = 0;
    if (tg__node_is_null(n))
        return true;
    if (n->kind == TG__NODE_SEQ) {
        *items = n->seq.v;
        *count = n->seq.n;
        return true;
    }
    if (!allow_one) {
        tg__err(cx, n, "expected a list");
        return false;
    }
    tg__node_t **one = tg__alloc(cx, sizeof *one);
    if (one == NULL)
        return false;
    one[0] = n;
    *items = one;
    *count = 1;
    return true;
}

bool tg__enum(tg__ctx_t *cx, tg__node_t *n, const tg__enum_t *tab, const char *section,
              const char *key, int *out)
{
    const char *s;
    if (!scalar_or_err(cx, n, "a string", &s))
        return false;
    const char *names[32];
    size_t nn = 0;
    char list[256] = "";
    for (const tg__enum_t *e = tab; e->name; e++) {
        if (strcmp(e->name, s) == 0) {
            if (tg__feature_value_unsupported(section, key, s)) {
                tg__err(cx, n, "\"%s\" is not supported by this build yet", s);
                return false;
            }
            *out = e->value;
            return true;
        }
        if (nn < 32)
            names[nn++] = e->name;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", e->name);
    }
    const char *hint = tg__suggest(s, names, nn);
    if (hint)
        tg__err(cx, n, "expected one of %s (did you mean \"%s\"?)", list, hint);
    else
        tg__err(cx, n, "expected one of %s, got \"%.40s\"", list, s);
    return false;
}

/* ---- regexes ---- */

static bool keep_regex(tg__ctx_t *cx, pcre2_code *code)
{
    tg_config_t *c = cx->cfg;
    if (c->nregexes == cx->regcap) {
        size_t ncap = cx->regcap ? cx->regcap * 2 : 8;
        tg_regex_t **v = realloc(c->regexes, ncap * sizeof *v);
        if (v == NULL) {
            pcre2_code_free(code);
            tg__oom(cx);
            return false;
        }
        c->regexes = v;
        cx->regcap = ncap;
    }
    c->regexes[c->nregexes++] = code;
    return true;
}

bool tg__regex(tg__ctx_t *cx, tg__node_t *n, const char *src, tg_regex_t **out)
{
    /* The same node can be read in two roles (a shared mapping used as both
     * match: and headers:), so the memo only counts for the same source. */
    if (n->memo_re && strcmp(n->memo_re_src, src) == 0) {
        *out = n->memo_re;
        return true;
    }
    int errcode;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, 0, &errcode, &off, NULL);
    if (code == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(errcode, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", errcode);
        tg__err(cx, n, "invalid regex at offset %zu: %s", (size_t)off, (const char *)msg);
        return false;
    }
    /* JIT is an optimisation: where it is unavailable (no executable memory,
     * unsupported CPU) the interpreter runs the same pattern. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    if (!keep_regex(cx, code))
        return false;
    n->memo_re = code;
    n->memo_re_src = src; /* lives in the snapshot's arena, as the memo does */
    *out = code;
    return true;
}

uint32_t tg__regex_captures(const tg_regex_t *re)
{
    uint32_t n = 0;
    if (pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &n) != 0)
        return 0;
    return n;
}

/* ---- HTTP syntax ---- */

bool tg__is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c && strchr("!#$%&'*+-.^_`|~", c))))
            return false;
    }
    return true;
}

bool tg__is_field_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}
