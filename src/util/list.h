/* Intrusive doubly linked list. A node embedded in an object links it into one
 * list; the list never owns what it links. */
#ifndef TG_UTIL_LIST_H
#define TG_UTIL_LIST_H

#include <stddef.h>

typedef struct tg_list {
    struct tg_list *prev, *next;
} tg_list_t;

#define tg_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void tg_list_init(tg_list_t *l) { l->prev = l->next = l; }
static inline int tg_list_empty(const tg_list_t *l) { return l->next == l; }
static inline int tg_list_linked(const tg_list_t *n) { return n->next != NULL && n->next != n; }

static inline void tg_list_insert_tail(tg_list_t *l, tg_list_t *n)
{
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}

static inline void tg_list_insert_head(tg_list_t *l, tg_list_t *n)
{
    n->next = l->next;
    n->prev = l;
    l->next->prev = n;
    l->next = n;
}

static inline void tg_list_remove(tg_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
