/* Recycling of exchanges: one allocation of the exchange and its first arena
 * block per request showed up in profiles, so each worker keeps a bounded
 * free list. A recycled exchange is indistinguishable from a calloc'd one. */
#include "proxy/exchange_int.h"

#include <stdlib.h>
#include <string.h>

/* Under AddressSanitizer a recycled exchange is poisoned, so a use after the
 * end of an exchange is still reported as it would be after free(). */
#if defined(__SANITIZE_ADDRESS__)
#define TG_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_HAVE_ASAN 1
#endif
#endif
#ifdef TG_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define EX_FREE_MAX 64            /* per worker */
#define EX_ARENA_KEEP (16 * 1024) /* a bigger first block is given back */

tg_exchange_t *tg__ex_alloc(tg_worker_t *w)
{
    tg_exchange_t *ex = w->ex_free;
    if (ex != NULL) {
        UNPOISON(ex, sizeof *ex);
        w->ex_free = ex->ctx; /* the free list links through ctx */
        w->nex_free--;
        tg_arena_t arena = ex->arena;
        memset(ex, 0, sizeof *ex);
        ex->arena = arena;
        return ex;
    }
    ex = calloc(1, sizeof *ex);
    if (ex != NULL)
        tg_arena_init(&ex->arena, 4096);
    return ex;
}

void tg__ex_recycle(tg_exchange_t *ex)
{
    tg_worker_t *w = ex->w;
    tg_arena_reset(&ex->arena);
    if (w->nex_free >= EX_FREE_MAX || ex->arena.total > EX_ARENA_KEEP) {
        tg_arena_free(&ex->arena);
        free(ex);
        return;
    }
    ex->ctx = w->ex_free;
    w->ex_free = ex;
    w->nex_free++;
    POISON(ex, sizeof *ex);
}

void tg_exchange_pool_free(tg_worker_t *w)
{
    while (w->ex_free != NULL) {
        tg_exchange_t *ex = w->ex_free;
        UNPOISON(ex, sizeof *ex);
        w->ex_free = ex->ctx;
        tg_arena_free(&ex->arena);
        free(ex);
    }
    w->nex_free = 0;
}
