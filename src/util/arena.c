#include "util/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct tg_arena_block {
    tg_arena_block_t *prev;
    size_t size; /* usable bytes after the header */
    size_t used;
    max_align_t data[];
};

void tg_arena_init(tg_arena_t *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 4096;
    a->total = 0;
}

void *tg_arena_alloc(tg_arena_t *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    tg_arena_block_t *b = a->head;
    if (b == NULL || b->size - b->used < n) {
        size_t size = n > a->block_size ? n : a->block_size;
        b = malloc(sizeof(*b) + size);
        if (b == NULL)
            return NULL;
        b->prev = a->head;
        b->size = size;
        b->used = 0;
        a->head = b;
        a->total += size;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

void *tg_arena_calloc(tg_arena_t *a, size_t n)
{
    void *p = tg_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *tg_arena_strndup(tg_arena_t *a, const char *s, size_t n)
{
    char *p = tg_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *tg_arena_strdup(tg_arena_t *a, const char *s) { return tg_arena_strndup(a, s, strlen(s)); }

tg_str_t tg_arena_str_dup(tg_arena_t *a, tg_str_t s)
{
    char *p = tg_arena_strndup(a, s.p, s.len);
    return p ? tg_str(p, s.len) : TG_STR_NULL;
}

char *tg_arena_printf(tg_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = tg_arena_alloc(a, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void tg_arena_reset(tg_arena_t *a)
{
    tg_arena_block_t *b = a->head;
    if (b == NULL)
        return;
    while (b->prev) {
        tg_arena_block_t *prev = b->prev;
        a->total -= b->size;
        free(b);
        b = prev;
    }
    b->used = 0;
    a->head = b;
}

void tg_arena_free(tg_arena_t *a)
{
    tg_arena_block_t *b = a->head;
    while (b) {
        tg_arena_block_t *prev = b->prev;
        free(b);
        b = prev;
    }
    a->head = NULL;
    a->total = 0;
}
