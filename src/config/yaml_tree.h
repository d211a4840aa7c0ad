/* A YAML document as a small node tree with line/column marks, built from
 * libyaml events. Internal to src/config/.
 *
 * What the builder resolves, so that the schema layer never sees it:
 *  - aliases: `*a` becomes a pointer to the anchored node (the tree is a DAG;
 *    a scalar alias gets its own copy so errors point at the alias);
 *  - merge keys: `<<: *m` / `<<: [*a, *b]` are folded into the mapping
 *    (explicit keys win, then earlier merge sources win), merged pairs take
 *    the position of the `<<` key;
 *  - duplicate keys: reported, the first occurrence kept.
 * Hard bounds (billion laughs, deep nesting, merge fan-out) stop the build
 * with an error instead of consuming memory or time.
 *
 * Ownership: every node and string lives in tg__tree_t.arena and dies with
 * tg__tree_free. Nothing in a tree is shared with anything else. */
#ifndef TG_CONFIG_YAML_TREE_H
#define TG_CONFIG_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/arena.h"

/* Bounds. TG__TREE_MAX_NODES caps the node count with every alias expanded
 * (and the total merge work), TG__TREE_MAX_DEPTH the nesting. */
#define TG__TREE_MAX_NODES 1000000u
#define TG__TREE_MAX_DEPTH 64u

typedef enum tg__nkind { TG__NODE_SCALAR = 1, TG__NODE_SEQ, TG__NODE_MAP } tg__nkind_t;

typedef struct tg__node tg__node_t;

typedef struct tg__pair {
    tg__node_t *key; /* always a scalar */
    tg__node_t *value;
} tg__pair_t;

struct tg__node {
    tg__nkind_t kind;
    uint32_t line, col; /* 1-based position of the node's first character */
    uint64_t weight;    /* nodes in this subtree with aliases expanded */
    union {
        struct {
            const char *s; /* NUL-terminated copy; may contain NULs (len is exact) */
            size_t len;
            bool plain;    /* unquoted, not a block scalar */
            bool null;     /* plain "", "~", "null", "Null", "NULL" */
        } sc;
        struct {
            tg__node_t **v;
            size_t n;
        } seq;
        struct {
            tg__pair_t *v;
            size_t n;
        } map;
    };
    /* Scratch for the schema layer, which memoises per node so that a node
     * reached through many aliases costs its work once: the ${ENV}-expanded
     * value (or the expansion error) and a compiled regex. Owned by whoever
     * sets them (the snapshot being built); the tree never reads them. */
    const char *memo_str;
    const char *memo_err;
    void *memo_re;          /* compiled from memo_re_src */
    const char *memo_re_src;
};

typedef struct tg__tree {
    tg_arena_t arena;
    tg__node_t *root; /* NULL for an empty document */
} tg__tree_t;

/* Receives one problem: 1-based position (0 when unknown), the key path of
 * the place in the document (may be ""), and a message. */
typedef void (*tg__tree_err_fn)(void *ud, uint32_t line, uint32_t col, const char *path,
                                const char *msg);

/* Parses buf[0..len) (YAML 1.1/1.2 or JSON). Returns 0 when a tree was built
 * (it may still have reported non-fatal problems such as duplicate keys or
 * unknown tags through `err`), -1 when the document cannot be used at all
 * (syntax error, a bound exceeded, out of memory; reported through `err`).
 * The caller always calls tg__tree_free afterwards. */
int tg__tree_parse(tg__tree_t *t, const char *buf, size_t len, tg__tree_err_fn err, void *ud);
void tg__tree_free(tg__tree_t *t);

static inline bool tg__node_is_null(const tg__node_t *n)
{
    return n == NULL || (n->kind == TG__NODE_SCALAR && n->sc.null);
}

#endif
