/* libyaml events → tg__node_t tree, with aliases, merge keys and duplicate
 * keys resolved (see yaml_tree.h for the contract).
 *
 * The builder never recurses: open collections live on a fixed stack of
 * TG__TREE_MAX_DEPTH frames, so hostile nesting costs neither C stack nor
 * unbounded memory. Every node carries its expanded weight; a collection
 * whose weight passes TG__TREE_MAX_NODES stops the build (billion laughs),
 * and merge work is counted against the same bound. */
#include "config/yaml_tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct frame {
    tg__node_t *node;  /* the collection being built (weight 0 until done) */
    void *items;       /* malloc'd: tg__node_t * (seq) or tg__pair_t (map) */
    size_t n, cap;
    tg__node_t *key;   /* map: the key whose value comes next, or NULL */
    uint64_t weight;   /* running expanded weight, for early bomb detection */
} frame_t;

typedef struct anchor {
    const char *name;  /* in the tree arena; NULL = empty slot */
    tg__node_t *node;
} anchor_t;

typedef struct builder {
    tg__tree_t *t;
    tg__tree_err_fn err;
    void *ud;
    frame_t stack[TG__TREE_MAX_DEPTH];
    size_t depth;
    anchor_t *anchors; /* open addressing, power-of-two capacity */
    size_t acap, an;
    uint64_t work;     /* merge entries processed, bounded like nodes */
    int ndocs;
    bool fatal;
} builder_t;

/* ---- errors and paths ---- */

/* Renders the key path of the position inside frames [0, upto). */
static void build_path(const builder_t *b, size_t upto, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < upto && len < cap; i++) {
        const frame_t *f = &b->stack[i];
        int w;
        if (f->node->kind == TG__NODE_SEQ)
            w = snprintf(out + len, cap - len, "[%zu]", f->n);
        else if (f->key != NULL)
            w = snprintf(out + len, cap - len, "%s%.*s", len ? "." : "", (int)f->key->sc.len,
                         f->key->sc.s);
        else
            break;
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

static void report(builder_t *b, size_t path_depth, const char *suffix, uint32_t line,
                   uint32_t col, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(builder_t *b, size_t path_depth, const char *suffix, uint32_t line,
                   uint32_t col, const char *fmt, ...)
{
    char path[512], msg[512];
    build_path(b, path_depth, path, sizeof path);
    if (suffix != NULL) {
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "%s%s", len ? "." : "", suffix);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->err(b->ud, line, col, path, msg);
}

static void fail(builder_t *b, const yaml_mark_t *m, const char *msg)
{
    report(b, b->depth, NULL, m ? (uint32_t)m->line + 1 : 0, m ? (uint32_t)m->column + 1 : 0,
           "%s", msg);
    b->fatal = true;
}

static void fail_oom(builder_t *b) { fail(b, NULL, "out of memory while reading the file"); }

/* ---- anchors: name → node, later definitions replace earlier ones ---- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static anchor_t *anchor_slot(anchor_t *tab, size_t cap, const char *name)
{
    size_t i = (size_t)hash_str(name) & (cap - 1);
    while (tab[i].name != NULL && strcmp(tab[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

static int anchor_put(builder_t *b, const char *name, tg__node_t *node)
{
    if ((b->an + 1) * 2 > b->acap) {
        size_t ncap = b->acap ? b->acap * 2 : 64;
        anchor_t *tab = calloc(ncap, sizeof *tab);
        if (tab == NULL)
            return -1;
        for (size_t i = 0; i < b->acap; i++)
            if (b->anchors[i].name != NULL)
                *anchor_slot(tab, ncap, b->anchors[i].name) = b->anchors[i];
        free(b->anchors);
        b->anchors = tab;
        b->acap = ncap;
    }
    anchor_t *s = anchor_slot(b->anchors, b->acap, name);
    if (s->name == NULL) {
        s->name = tg_arena_strdup(&b->t->arena, name);
        if (s->name == NULL)
            return -1;
        b->an++;
    }
    s->node = node;
    return 0;
}

static tg__node_t *anchor_get(const builder_t *b, const char *name)
{
    if (b->acap == 0)
        return NULL;
    const anchor_t *s = anchor_slot(b->anchors, b->acap, name);
    return s->name ? s->node : NULL;
}

/* ---- nodes ---- */

static tg__node_t *new_node(builder_t *b, tg__nkind_t kind, const yaml_mark_t *m)
{
    tg__node_t *n = tg_arena_calloc(&b->t->arena, sizeof *n);
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->line = (uint32_t)m->line + 1;
    n->col = (uint32_t)m->column + 1;
    return n;
}

static uint64_t add_weight(uint64_t a, uint64_t b)
{
    uint64_t s = a + b;
    return s < a ? UINT64_MAX : s;
}

static bool too_heavy(builder_t *b, uint64_t w, const yaml_mark_t *m)
{
    if (w <= TG__TREE_MAX_NODES)
        return false;
    char msg[160];
    snprintf(msg, sizeof msg,
             "the document expands to more than %u nodes through aliases; refusing it",
             TG__TREE_MAX_NODES);
    fail(b, m, msg);
    return true;
}

static int vec_push(frame_t *f, const void *item, size_t size)
{
    if (f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 8;
        void *v = realloc(f->items, ncap * size);
        if (v == NULL)
            return -1;
        f->items = v;
        f->cap = ncap;
    }
    memcpy((char *)f->items + f->n * size, item, size);
    f->n++;
    return 0;
}

/* Attaches a finished node to the open collection (or makes it the root). */
static void add_child(builder_t *b, tg__node_t *node, const yaml_mark_t *m)
{
    if (b->depth == 0) {
        b->t->root = node;
        return;
    }
    frame_t *f = &b->stack[b->depth - 1];
    int rc;
    if (f->node->kind == TG__NODE_SEQ) {
        rc = vec_push(f, &node, sizeof node);
    } else if (f->key == NULL) {
        if (node->kind != TG__NODE_SCALAR) {
            fail(b, m, "mapping keys must be strings");
            return;
        }
        f->key = node;
        rc = 0;
    } else {
        tg__pair_t p = { f->key, node };
        rc = vec_push(f, &p, sizeof p);
        f->key = NULL;
    }
    if (rc != 0) {
        fail_oom(b);
        return;
    }
    f->weight = add_weight(f->weight, node->weight);
    too_heavy(b, f->weight, m);
}

/* ---- merge keys and duplicate keys ---- */

typedef struct ent {
    tg__pair_t pair;
    uint32_t prio; /* 0 = explicit, 1 + j = j-th merge source */
    uint64_t ord;  /* document position (merged pairs sit at their `<<`) */
    bool keep;
} ent_t;

static int cmp_key(const tg__node_t *a, const tg__node_t *b)
{
    size_t n = a->sc.len < b->sc.len ? a->sc.len : b->sc.len;
    int c = memcmp(a->sc.s, b->sc.s, n);
    if (c != 0)
        return c;
    return a->sc.len < b->sc.len ? -1 : a->sc.len > b->sc.len;
}

static int cmp_ent_key(const void *pa, const void *pb)
{
    const ent_t *a = pa, *b = pb;
    int c = cmp_key(a->pair.key, b->pair.key);
    if (c != 0)
        return c;
    if (a->prio != b->prio)
        return a->prio < b->prio ? -1 : 1;
    return a->ord < b->ord ? -1 : a->ord > b->ord;
}

static int cmp_ent_ord(const void *pa, const void *pb)
{
    const ent_t *a = pa, *b = pb;
    return a->ord < b->ord ? -1 : a->ord > b->ord;
}

static bool is_merge_key(const tg__node_t *k)
{
    return k->sc.plain && k->sc.len == 2 && memcmp(k->sc.s, "<<", 2) == 0;
}

/* Counts the entries a mapping will expand to; reports malformed `<<`. */
static bool count_entries(builder_t *b, const frame_t *f, size_t *total)
{
    const tg__pair_t *p = f->items;
    size_t n = 0, nmerge = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (!is_merge_key(p[i].key)) {
            n++;
            continue;
        }
        const tg__node_t *v = p[i].value;
        if (++nmerge > 1)
            report(b, b->depth - 1, "<<", p[i].key->line, p[i].key->col,
                   "duplicate key (a mapping takes one \"<<\"; list several sources in it)");
        if (v->kind == TG__NODE_MAP) {
            n += v->map.n;
            continue;
        }
        if (v->kind == TG__NODE_SEQ) {
            for (size_t j = 0; j < v->seq.n; j++) {
                if (v->seq.v[j]->kind == TG__NODE_MAP)
                    n += v->seq.v[j]->map.n;
                else
                    report(b, b->depth - 1, "<<", v->seq.v[j]->line, v->seq.v[j]->col,
                           "a merge source must be a mapping");
            }
            continue;
        }
        report(b, b->depth - 1, "<<", v->line, v->col,
               "expected a mapping or a list of mappings to merge");
    }
    *total = n;
    b->work += n;
    return b->work <= TG__TREE_MAX_NODES;
}

static size_t fill_entries(const frame_t *f, ent_t *e)
{
    const tg__pair_t *p = f->items;
    size_t k = 0;
    for (size_t i = 0; i < f->n; i++) {
        uint64_t base = (uint64_t)i << 32;
        if (!is_merge_key(p[i].key)) {
            e[k++] = (ent_t){ p[i], 0, base, false };
            continue;
        }
        const tg__node_t *v = p[i].value;
        size_t nsrc = v->kind == TG__NODE_SEQ ? v->seq.n : v->kind == TG__NODE_MAP ? 1 : 0;
        uint64_t sub = 0;
        for (size_t j = 0; j < nsrc; j++) {
            const tg__node_t *src = v->kind == TG__NODE_SEQ ? v->seq.v[j] : v;
            if (src->kind != TG__NODE_MAP)
                continue;
            for (size_t q = 0; q < src->map.n; q++)
                e[k++] = (ent_t){ src->map.v[q], (uint32_t)(1 + j), base | ++sub, false };
        }
    }
    return k;
}

/* Keeps the winner of each key; reports explicit duplicates. */
static void pick_winners(builder_t *b, ent_t *e, size_t n)
{
    qsort(e, n, sizeof *e, cmp_ent_key);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        e[i].keep = true;
        for (; j < n && cmp_key(e[j].pair.key, e[i].pair.key) == 0; j++) {
            if (e[j].prio == 0 && e[i].prio == 0) {
                const tg__node_t *k = e[j].pair.key;
                report(b, b->depth - 1, k->sc.s, k->line, k->col,
                       "duplicate key (first defined at line %u)", e[i].pair.key->line);
            }
        }
        i = j;
    }
}

static void finish_map(builder_t *b, frame_t *f, const yaml_mark_t *m)
{
    size_t total;
    if (!count_entries(b, f, &total)) {
        too_heavy(b, UINT64_MAX, m);
        return;
    }
    ent_t *e = malloc((total ? total : 1) * sizeof *e);
    if (e == NULL) {
        fail_oom(b);
        return;
    }
    size_t n = fill_entries(f, e);
    pick_winners(b, e, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i].keep)
            e[k++] = e[i];
    qsort(e, k, sizeof *e, cmp_ent_ord);
    tg__node_t *node = f->node;
    node->map.v = tg_arena_alloc(&b->t->arena, (k ? k : 1) * sizeof(tg__pair_t));
    uint64_t w = 1;
    for (size_t i = 0; node->map.v != NULL && i < k; i++) {
        node->map.v[i] = e[i].pair;
        w = add_weight(w, add_weight(e[i].pair.key->weight, e[i].pair.value->weight));
    }
    free(e);
    if (node->map.v == NULL) {
        fail_oom(b);
        return;
    }
    node->map.n = k;
    node->weight = w;
    too_heavy(b, w, m);
}

static void finish_seq(builder_t *b, frame_t *f)
{
    tg__node_t *node = f->node;
    node->seq.v = tg_arena_alloc(&b->t->arena, (f->n ? f->n : 1) * sizeof(tg__node_t *));
    if (node->seq.v == NULL) {
        fail_oom(b);
        return;
    }
    if (f->n)
        memcpy(node->seq.v, f->items, f->n * sizeof(tg__node_t *));
    node->seq.n = f->n;
    node->weight = add_weight(f->weight, 1);
}

/* ---- events ---- */

static void check_tag(builder_t *b, const yaml_char_t *tag, const yaml_mark_t *m)
{
    /* Standard tags (!!str, !!int, ...) and the non-specific "!" are harmless:
     * types come from the schema. Anything else (!include, !env, ...) would be
     * silently meaningless, so say so. */
    const char *t = (const char *)tag;
    if (t == NULL || strcmp(t, "!") == 0 || strncmp(t, "tag:yaml.org,2002:", 18) == 0)
        return;
    report(b, b->depth, NULL, (uint32_t)m->line + 1, (uint32_t)m->column + 1,
           "YAML tag \"%.64s\" is not supported", t);
}

static tg__node_t *on_scalar(builder_t *b, const yaml_event_t *ev)
{
    check_tag(b, ev->data.scalar.tag, &ev->start_mark);
    tg__node_t *n = new_node(b, TG__NODE_SCALAR, &ev->start_mark);
    if (n == NULL)
        return NULL;
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    n->sc.s = tg_arena_strndup(&b->t->arena, v, len);
    if (n->sc.s == NULL)
        return NULL;
    n->sc.len = len;
    n->sc.plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->sc.null = n->sc.plain && (len == 0 || strcmp(n->sc.s, "~") == 0 ||
                                 strcmp(n->sc.s, "null") == 0 || strcmp(n->sc.s, "Null") == 0 ||
                                 strcmp(n->sc.s, "NULL") == 0);
    n->weight = 1;
    return n;
}

static void on_alias(builder_t *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    tg__node_t *target = anchor_get(b, name);
    char msg[160];
    if (target == NULL) {
        snprintf(msg, sizeof msg, "unknown anchor \"%.64s\" (anchors must be defined before use)",
                 name);
        fail(b, &ev->start_mark, msg);
        return;
    }
    if (target->weight == 0) { /* still open: the alias sits inside its own anchor */
        snprintf(msg, sizeof msg, "alias \"*%.64s\" refers to a node that contains it", name);
        fail(b, &ev->start_mark, msg);
        return;
    }
    if (target->kind == TG__NODE_SCALAR) {
        /* A private copy so that errors about this value point at the alias. */
        tg__node_t *copy = new_node(b, TG__NODE_SCALAR, &ev->start_mark);
        if (copy == NULL) {
            fail_oom(b);
            return;
        }
        copy->sc = target->sc;
        copy->weight = 1;
        target = copy;
    }
    add_child(b, target, &ev->start_mark);
}

static void on_start(builder_t *b, const yaml_event_t *ev, tg__nkind_t kind)
{
    const yaml_char_t *anchor = kind == TG__NODE_SEQ ? ev->data.sequence_start.anchor
                                                     : ev->data.mapping_start.anchor;
    check_tag(b, kind == TG__NODE_SEQ ? ev->data.sequence_start.tag : ev->data.mapping_start.tag,
              &ev->start_mark);
    if (b->depth == TG__TREE_MAX_DEPTH) {
        /* No key path: it would be as long as the nesting. */
        report(b, 0, NULL, (uint32_t)ev->start_mark.line + 1, (uint32_t)ev->start_mark.column + 1,
               "nested more than %u levels deep", TG__TREE_MAX_DEPTH);
        b->fatal = true;
        return;
    }
    tg__node_t *n = new_node(b, kind, &ev->start_mark);
    /* Registered now (weight 0 = open) so that an alias inside it is caught. */
    if (n == NULL || (anchor && anchor_put(b, (const char *)anchor, n) != 0)) {
        fail_oom(b);
        return;
    }
    b->stack[b->depth++] = (frame_t){ .node = n, .weight = 1 };
}

static void on_end(builder_t *b, const yaml_event_t *ev)
{
    frame_t *f = &b->stack[b->depth - 1];
    if (f->node->kind == TG__NODE_MAP)
        finish_map(b, f, &ev->start_mark);
    else
        finish_seq(b, f);
    free(f->items);
    f->items = NULL;
    if (b->fatal)
        return;
    tg__node_t *n = f->node;
    b->depth--;
    add_child(b, n, &ev->start_mark);
}

static void on_event(builder_t *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->ndocs > 1)
            fail(b, &ev->start_mark, "a configuration file holds one YAML document, found a second");
        break;
    case YAML_SCALAR_EVENT: {
        tg__node_t *n = on_scalar(b, ev);
        const char *anchor = (const char *)ev->data.scalar.anchor;
        if (n == NULL || (anchor && anchor_put(b, anchor, n) != 0))
            fail_oom(b);
        else
            add_child(b, n, &ev->start_mark);
        break;
    }
    case YAML_ALIAS_EVENT:
        on_alias(b, ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
        on_start(b, ev, TG__NODE_SEQ);
        break;
    case YAML_MAPPING_START_EVENT:
        on_start(b, ev, TG__NODE_MAP);
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        on_end(b, ev);
        break;
    default: /* stream start/end, document end, none */
        break;
    }
}

/* libyaml's reader errors carry a byte offset instead of a mark; columns
 * count characters, as libyaml's marks do (UTF-8 continuation bytes skipped). */
static yaml_mark_t offset_mark(const char *buf, size_t len, size_t off)
{
    yaml_mark_t m = { 0, 0, 0 };
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            m.line++;
            m.column = 0;
        } else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
            m.column++;
        }
    }
    return m;
}

static void syntax_error(builder_t *b, const yaml_parser_t *p, const char *buf, size_t len)
{
    char msg[320];
    yaml_mark_t m = p->problem_mark;
    if (p->error == YAML_MEMORY_ERROR) {
        fail_oom(b);
        return;
    }
    if (p->error == YAML_READER_ERROR)
        m = offset_mark(buf, len, p->problem_offset);
    if (p->context != NULL)
        snprintf(msg, sizeof msg, "invalid YAML: %s %s", p->problem ? p->problem : "error",
                 p->context);
    else
        snprintf(msg, sizeof msg, "invalid YAML: %s", p->problem ? p->problem : "syntax error");
    /* No key path: where the parser gave up is rarely inside a finished key. */
    report(b, 0, NULL, (uint32_t)m.line + 1, (uint32_t)m.column + 1, "%s", msg);
    b->fatal = true;
}

int tg__tree_parse(tg__tree_t *t, const char *buf, size_t len, tg__tree_err_fn err, void *ud)
{
    tg_arena_init(&t->arena, 16384);
    t->root = NULL;
    builder_t *b = calloc(1, sizeof *b);
    yaml_parser_t p;
    if (b == NULL) {
        err(ud, 0, 0, "", "out of memory while reading the file");
        return -1;
    }
    *b = (builder_t){ .t = t, .err = err, .ud = ud };
    if (!yaml_parser_initialize(&p)) {
        free(b);
        err(ud, 0, 0, "", "out of memory while reading the file");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    bool done = false;
    while (!done && !b->fatal) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(b, &p, buf, len);
            break;
        }
        on_event(b, &ev);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    for (size_t i = 0; i < b->depth; i++) /* left open by an early stop */
        free(b->stack[i].items);
    bool fatal = b->fatal;
    free(b->anchors);
    free(b);
    return fatal ? -1 : 0;
}

void tg__tree_free(tg__tree_t *t)
{
    tg_arena_free(&t->arena);
    t->root = NULL;
}
