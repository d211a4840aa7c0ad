/* tg_arena_t: a bump allocator for objects that share one lifetime (a config
 * snapshot, one exchange). Everything allocated from an arena is freed at once
 * by tg_arena_free/tg_arena_reset; nothing allocated from it may be freed alone.
 * Blocks come from malloc; the first block can be embedded by the caller. */
#ifndef TG_UTIL_ARENA_H
#define TG_UTIL_ARENA_H

#include <stddef.h>
#include "util/str.h"

typedef struct tg_arena_block tg_arena_block_t;

typedef struct tg_arena {
    tg_arena_block_t *head;  /* current block, owned */
    size_t block_size;       /* default size of new blocks */
    size_t total;            /* bytes obtained from malloc, for limits/metrics */
} tg_arena_t;

void tg_arena_init(tg_arena_t *a, size_t block_size);
/* Returns 8-byte aligned memory or NULL when out of memory. */
void *tg_arena_alloc(tg_arena_t *a, size_t n);
void *tg_arena_calloc(tg_arena_t *a, size_t n);
char *tg_arena_strndup(tg_arena_t *a, const char *s, size_t n);
char *tg_arena_strdup(tg_arena_t *a, const char *s);
tg_str_t tg_arena_str_dup(tg_arena_t *a, tg_str_t s);
/* printf into the arena; NULL on OOM. */
char *tg_arena_printf(tg_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees every block but keeps the first for reuse. */
void tg_arena_reset(tg_arena_t *a);
/* Frees every block. */
void tg_arena_free(tg_arena_t *a);

#endif
