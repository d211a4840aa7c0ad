/* ${ENV} expansion of scalar values.
 *
 *   ${NAME}            the variable's value; unset → error naming it
 *   ${NAME:-default}   the default when NAME is unset or empty (shell rules)
 *   $$                 a literal '$'
 *   $ anything else    kept as is (crypt hashes like "$2b$12$..." need no escaping)
 *
 * NAME is [A-Za-z_][A-Za-z0-9_]*. The default is literal text up to the first
 * '}' (no nesting). Reads the environment with getenv: the loader must not
 * race with setenv, which tollgate never calls after start-up. */
#include "config/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static int put(buf_t *b, const char *s, size_t n)
{
    if (n > ((size_t)-1 >> 2) - b->len) /* far beyond any config */
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static bool name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
static bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

/* Expands the "${...}" at s[0..len) (s[0] == '$', s[1] == '{'). Returns the
 * bytes consumed, or 0 after writing an error message. */
static size_t expand_ref(const char *s, size_t len, buf_t *b, char *err, size_t errcap, bool *oom)
{
    const char *close = memchr(s, '}', len);
    if (close == NULL) {
        snprintf(err, errcap, "unterminated \"${\" (write \"$$\" for a literal dollar sign)");
        return 0;
    }
    const char *name = s + 2;
    size_t nlen = 0;
    while (name + nlen < close && name_char(name[nlen]))
        nlen++;
    const char *rest = name + nlen;
    bool has_default = close - rest >= 2 && rest[0] == ':' && rest[1] == '-';
    if (nlen == 0 || !name_start(name[0]) || (rest != close && !has_default)) {
        snprintf(err, errcap, "invalid reference \"%.*s\": expected ${NAME} or ${NAME:-default}",
                 (int)(close - s + 1 > 64 ? 64 : close - s + 1), s);
        return 0;
    }
    char var[256];
    if (nlen >= sizeof var) {
        snprintf(err, errcap, "environment variable name too long");
        return 0;
    }
    memcpy(var, name, nlen);
    var[nlen] = '\0';
    const char *val = getenv(var);
    int rc;
    if (has_default && (val == NULL || val[0] == '\0')) {
        rc = put(b, rest + 2, (size_t)(close - rest - 2));
    } else if (val == NULL) {
        snprintf(err, errcap, "environment variable \"%s\" is not set", var);
        return 0;
    } else {
        rc = put(b, val, strlen(val));
    }
    if (rc != 0) {
        *oom = true;
        return 0;
    }
    return (size_t)(close - s) + 1;
}

int tg__env_expand(const char *s, size_t len, tg_arena_t *a, const char **out, char *err,
                   size_t errcap, bool *oom)
{
    *oom = false;
    if (memchr(s, '$', len) == NULL) { /* the common case: one copy */
        *out = tg_arena_strndup(a, s, len);
        *oom = *out == NULL;
        return *out ? 0 : -1;
    }
    buf_t b = { NULL, 0, 0 };
    size_t i = 0;
    int rc = 0;
    while (i < len && rc == 0) {
        const char *dollar = memchr(s + i, '$', len - i);
        size_t lit = dollar ? (size_t)(dollar - (s + i)) : len - i;
        if (put(&b, s + i, lit) != 0) {
            *oom = true;
            rc = -1;
            break;
        }
        i += lit;
        if (i == len)
            break;
        if (i + 1 < len && s[i + 1] == '{') {
            size_t used = expand_ref(s + i, len - i, &b, err, errcap, oom);
            rc = used ? 0 : -1;
            i += used;
        } else {
            bool escaped = i + 1 < len && s[i + 1] == '$';
            if (put(&b, "$", 1) != 0) {
                *oom = true;
                rc = -1;
            }
            i += escaped ? 2 : 1;
        }
    }
    if (rc == 0) {
        *out = tg_arena_strndup(a, b.p ? b.p : "", b.len);
        if (*out == NULL) {
            *oom = true;
            rc = -1;
        }
    }
    free(b.p);
    return rc;
}
