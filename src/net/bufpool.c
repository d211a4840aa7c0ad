#include "net/bufpool.h"

#include <stdlib.h>

void tg_bufpool_init(tg_bufpool_t *p, size_t size, size_t max_free)
{
    p->size = size < sizeof(void *) ? sizeof(void *) : size;
    p->free = NULL;
    p->nfree = 0;
    p->max_free = max_free;
    p->in_use = 0;
}

char *tg_bufpool_get(tg_bufpool_t *p)
{
    char *b = p->free;
    if (b != NULL) {
        p->free = *(void **)b;
        p->nfree--;
    } else {
        b = malloc(p->size);
        if (b == NULL)
            return NULL;
    }
    p->in_use++;
    return b;
}

void tg_bufpool_put(tg_bufpool_t *p, char *buf)
{
    if (buf == NULL)
        return;
    p->in_use--;
    if (p->nfree >= p->max_free) {
        free(buf);
        return;
    }
    *(void **)buf = p->free;
    p->free = buf;
    p->nfree++;
}

void tg_bufpool_destroy(tg_bufpool_t *p)
{
    while (p->free) {
        void *next = *(void **)p->free;
        free(p->free);
        p->free = next;
    }
    p->nfree = 0;
}
