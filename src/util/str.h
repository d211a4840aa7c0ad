/* tg_str_t: a borrowed byte slice (not NUL-terminated). The owner of the bytes
 * is whoever owns the buffer it points into; a slice never frees anything. */
#ifndef TG_UTIL_STR_H
#define TG_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct tg_str {
    const char *p;
    size_t len;
} tg_str_t;

#define TG_STR_LIT(s) ((tg_str_t){ (s), sizeof(s) - 1 })
#define TG_STR_NULL ((tg_str_t){ NULL, 0 })

static inline tg_str_t tg_str(const char *p, size_t len) { return (tg_str_t){ p, len }; }
static inline tg_str_t tg_str_c(const char *cstr) { return (tg_str_t){ cstr, cstr ? strlen(cstr) : 0 }; }

static inline bool tg_str_eq(tg_str_t a, tg_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* ASCII case-insensitive equality (HTTP field names, hosts, tokens). */
bool tg_str_ieq(tg_str_t a, tg_str_t b);
/* Inline so that strlen of a literal folds to a constant. */
static inline bool tg_str_ieq_c(tg_str_t a, const char *cstr) { return tg_str_ieq(a, tg_str_c(cstr)); }
bool tg_str_has_prefix(tg_str_t s, tg_str_t prefix);
/* Trims SP and HTAB on both sides. */
tg_str_t tg_str_trim_ows(tg_str_t s);
/* True when the comma-separated list `s` holds `token` (case-insensitive). */
bool tg_str_list_has_token(tg_str_t s, const char *token);
/* Writes v in decimal (no NUL) to out, which has room for 20 bytes;
 * returns the length. For hot paths where snprintf's parsing shows. */
size_t tg_u64_dec(char *out, uint64_t v);

#endif
