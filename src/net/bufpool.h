/* Per-worker free list of fixed-size I/O buffers. Connections take a buffer
 * only while they have bytes to hold, so an idle keep-alive connection costs
 * no buffer. Single-threaded: each worker owns its pool. */
#ifndef TG_NET_BUFPOOL_H
#define TG_NET_BUFPOOL_H

#include <stddef.h>

typedef struct tg_bufpool {
    size_t size;      /* bytes per buffer */
    void *free;       /* singly linked through the first word of each buffer */
    size_t nfree;
    size_t max_free;  /* beyond this, returned buffers go back to malloc */
    size_t in_use;    /* for metrics and the idle-memory bound */
} tg_bufpool_t;

void tg_bufpool_init(tg_bufpool_t *p, size_t size, size_t max_free);
/* A buffer of p->size bytes, or NULL on OOM. */
char *tg_bufpool_get(tg_bufpool_t *p);
void tg_bufpool_put(tg_bufpool_t *p, char *buf);
void tg_bufpool_destroy(tg_bufpool_t *p);

#endif
