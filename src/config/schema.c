/* Table-driven mapping dispatch, key paths and "did you mean" suggestions. */
#include "config/internal.h"

#include <stdio.h>
#include <string.h>

/* ---- key paths ---- */

/* Keys that would make the path ambiguous are written ["like.this"]. */
static bool plain_key(const char *k)
{
    if (*k == '\0')
        return false;
    for (; *k; k++) {
        char c = *k;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void path_append(tg__ctx_t *cx, const char *piece)
{
    size_t room = sizeof cx->path - cx->pathlen, n = strlen(piece);
    if (n >= room) { /* keep the path readable when cut */
        cx->pathlen = sizeof cx->path - 4;
        memcpy(cx->path + cx->pathlen, "...", 4);
        cx->pathlen += 3;
        return;
    }
    memcpy(cx->path + cx->pathlen, piece, n + 1);
    cx->pathlen += n;
}

size_t tg__path_key(tg__ctx_t *cx, const char *key)
{
    char piece[96];
    size_t mark = cx->pathlen;
    if (plain_key(key))
        snprintf(piece, sizeof piece, "%s%.80s", cx->pathlen ? "." : "", key);
    else
        snprintf(piece, sizeof piece, "[\"%.80s\"]", key);
    path_append(cx, piece);
    return mark;
}

size_t tg__path_index(tg__ctx_t *cx, size_t i)
{
    char piece[32];
    size_t mark = cx->pathlen;
    snprintf(piece, sizeof piece, "[%zu]", i);
    path_append(cx, piece);
    return mark;
}

void tg__path_pop(tg__ctx_t *cx, size_t mark)
{
    cx->pathlen = mark;
    cx->path[mark] = '\0';
}

/* ---- suggestions ---- */

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

/* Optimal string alignment distance (edits + adjacent swaps), ASCII
 * case-insensitive; gives up (returns 99) on long words. */
static unsigned edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    unsigned d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = lower(a[i - 1]) != lower(b[j - 1]);
            unsigned v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]) && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

const char *tg__suggest(const char *word, const char *const *cands, size_t ncands)
{
    const char *best = NULL;
    unsigned best_d = 99;
    size_t wl = strlen(word);
    unsigned limit = wl <= 3 ? 1 : wl <= 6 ? 2 : 3;
    for (size_t i = 0; i < ncands; i++) {
        unsigned d = edit_distance(word, cands[i]);
        if (d <= limit && d < best_d) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

/* ---- dispatch ---- */

static void unknown_key(tg__ctx_t *cx, const tg__node_t *k, const tg__schema_t *s)
{
    const char *cands[64];
    size_t n = 0;
    for (const tg__key_t *e = s->keys; e->name && n < 64; e++)
        cands[n++] = e->name;
    tg__feature_keys(s->name, cands, &n, 64);
    const char *hint = tg__suggest(k->sc.s, cands, n);
    if (hint)
        tg__err(cx, k, "unknown key \"%s\" (did you mean \"%s\"?)", k->sc.s, hint);
    else
        tg__err(cx, k, "unknown key \"%s\"", k->sc.s);
}

bool tg__apply(tg__ctx_t *cx, tg__node_t *map, const tg__schema_t *s, void *obj)
{
    if (tg__node_is_null(map))
        return true;
    if (map->kind != TG__NODE_MAP) {
        tg__err(cx, map, "expected a mapping");
        return false;
    }
    for (size_t i = 0; i < map->map.n && !cx->oom; i++) {
        tg__node_t *k = map->map.v[i].key;
        size_t mark = tg__path_key(cx, k->sc.s);
        const tg__key_t *e = s->keys;
        while (e->name && strcmp(e->name, k->sc.s) != 0)
            e = e + 1;
        if (strlen(k->sc.s) != k->sc.len)
            tg__err(cx, k, "key contains a NUL character");
        else if (s->extensions && strncmp(k->sc.s, "x-", 2) == 0)
            ; /* a place to define anchors (docker-compose's convention) */
        else if (tg__feature_key_unsupported(s->name, k->sc.s))
            tg__err(cx, k, "not supported by this build yet");
        else if (e->name)
            e->fn(cx, map->map.v[i].value, obj);
        else
            unknown_key(cx, k, s);
        tg__path_pop(cx, mark);
    }
    return true;
}

tg__node_t *tg__map_get(tg__node_t *map, const char *key)
{
    if (map == NULL || map->kind != TG__NODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->map.n; i++)
        if (strcmp(map->map.v[i].key->sc.s, key) == 0)
            return map->map.v[i].value;
    return NULL;
}
