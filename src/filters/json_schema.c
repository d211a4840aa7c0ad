/* The JSON Schema subset of json_schema.h. The schema document is kept as
 * jansson values and interpreted directly; compiling checks every keyword
 * once (so validation never meets a malformed schema) and compiles the
 * `pattern` regexes, which are looked up by their schema node. */
#include "filters/json_schema.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TG_JSCHEMA_MAX_DEPTH 64   /* nesting of schemas (and $ref hops) */
#define TG_JSCHEMA_MAX_BYTES (4u << 20)

typedef struct rx {
    const json_t *node;     /* the "pattern" string in the schema */
    pcre2_code *re;
} rx_t;

struct tg_jschema {
    json_t *doc;
    rx_t *rx;
    size_t nrx, caprx;
};

/* ---- $ref ---- */

/* "#" or "#/a/b~1c" within the document; NULL when it does not resolve. */
static const json_t *resolve_ref(const json_t *root, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    const json_t *cur = root;
    const char *p = ref + 1;
    if (*p == '\0')
        return root;
    if (*p != '/')
        return NULL;
    char seg[256];
    while (*p == '/' && cur) {
        p++;
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char c = *p;
            if (c == '~') {
                if (p[1] != '0' && p[1] != '1')
                    return NULL;
                c = p[1] == '0' ? '~' : '/';
                p++;
            }
            if (n + 1 >= sizeof seg)
                return NULL;
            seg[n++] = c;
        }
        seg[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, seg);
        } else if (json_is_array(cur)) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            cur = *end == '\0' && n > 0 ? json_array_get(cur, i) : NULL;
        } else {
            cur = NULL;
        }
    }
    return cur;
}

/* ---- compile ---- */

typedef struct cctx {
    tg_jschema_t *s;
    char *err;
    size_t errlen;
} cctx_t;

static bool cfail(cctx_t *c, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool cfail(cctx_t *c, const char *where, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "schema at %s: %s", *where ? where : "#", msg);
    return false;
}

static bool compile_node(cctx_t *c, const json_t *n, const char *where, int depth);

static bool compile_map(cctx_t *c, const json_t *m, const char *where, int depth)
{
    if (!json_is_object(m))
        return cfail(c, where, "expected an object of schemas");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)m, k, v) {
        char sub[512];
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", where, k) >= sizeof sub)
            return cfail(c, where, "nested too deep");
        if (!compile_node(c, v, sub, depth + 1))
            return false;
    }
    return true;
}

static bool add_pattern(cctx_t *c, const json_t *v, const char *where)
{
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)json_string_value(v), json_string_length(v), PCRE2_UTF, &ec, &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return cfail(c, where, "pattern: %s at offset %zu", (char *)msg, (size_t)off);
    }
    if (c->s->nrx == c->s->caprx) {
        size_t cap = c->s->caprx ? c->s->caprx * 2 : 8;
        rx_t *nv = realloc(c->s->rx, cap * sizeof *nv);
        if (nv == NULL) {
            pcre2_code_free(re);
            return cfail(c, where, "out of memory");
        }
        c->s->rx = nv;
        c->s->caprx = cap;
    }
    c->s->rx[c->s->nrx++] = (rx_t){ v, re };
    return true;
}

static bool valid_type_name(const json_t *t)
{
    static const char *const names[] = { "null", "boolean", "object", "array", "number", "integer", "string" };
    for (size_t i = 0; json_is_string(t) && i < sizeof names / sizeof *names; i++)
        if (strcmp(json_string_value(t), names[i]) == 0)
            return true;
    return false;
}

static bool compile_keyword(cctx_t *c, const char *k, const json_t *v, const char *where, int depth)
{
    static const char *const annotations[] = { "$schema", "$id", "title", "description", "default",
                                                 "examples", "$comment", "$anchor", "format" };
    for (size_t i = 0; i < sizeof annotations / sizeof *annotations; i++)
        if (strcmp(k, annotations[i]) == 0)
            return true;
    if (strcmp(k, "$defs") == 0 || strcmp(k, "definitions") == 0 || strcmp(k, "properties") == 0)
        return compile_map(c, v, where, depth);
    if (strcmp(k, "additionalProperties") == 0 || strcmp(k, "items") == 0)
        return compile_node(c, v, where, depth + 1);
    if (strcmp(k, "type") == 0) {
        bool ok = valid_type_name(v);
        if (json_is_array(v) && json_array_size(v) > 0) {
            size_t i;
            json_t *t;
            ok = true;
            json_array_foreach(v, i, t) ok &= valid_type_name(t);
        }
        return ok || cfail(c, where, "type: expected a type name or a list of them");
    }
    if (strcmp(k, "required") == 0) {
        size_t i;
        json_t *t;
        bool ok = json_is_array(v);
        json_array_foreach(v, i, t) ok &= json_is_string(t);
        return ok || cfail(c, where, "required: expected a list of member names");
    }
    if (strcmp(k, "enum") == 0)
        return json_is_array(v) || cfail(c, where, "enum: expected a list");
    if (strcmp(k, "const") == 0)
        return true;
    if (strcmp(k, "minimum") == 0 || strcmp(k, "maximum") == 0 || strcmp(k, "exclusiveMinimum") == 0 ||
        strcmp(k, "exclusiveMaximum") == 0)
        return json_is_number(v) || cfail(c, where, "%s: expected a number", k);
    if (strcmp(k, "minLength") == 0 || strcmp(k, "maxLength") == 0 || strcmp(k, "minItems") == 0 ||
        strcmp(k, "maxItems") == 0)
        return (json_is_integer(v) && json_integer_value(v) >= 0) || cfail(c, where, "%s: expected an integer >= 0", k);
    if (strcmp(k, "pattern") == 0)
        return json_is_string(v) ? add_pattern(c, v, where) : cfail(c, where, "pattern: expected a string");
    if (strcmp(k, "$ref") == 0) {
        if (!json_is_string(v) || resolve_ref(c->s->doc, json_string_value(v)) == NULL)
            return cfail(c, where, "$ref: expected \"#\" or \"#/...\" naming a schema in this file");
        return true;
    }
    return cfail(c, where, "keyword \"%s\" is not supported (see docs/security.md for the subset)", k);
}

static bool compile_node(cctx_t *c, const json_t *n, const char *where, int depth)
{
    if (depth > TG_JSCHEMA_MAX_DEPTH)
        return cfail(c, where, "nested deeper than %d", TG_JSCHEMA_MAX_DEPTH);
    if (json_is_boolean(n))
        return true;
    if (!json_is_object(n))
        return cfail(c, where, "a schema is an object or a boolean");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)n, k, v) {
        char sub[512];
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", where, k) >= sizeof sub)
            return cfail(c, where, "nested too deep");
        if (!compile_keyword(c, k, v, sub, depth))
            return false;
    }
    return true;
}

tg_jschema_t *tg_jschema_compile(json_t *doc, char *err, size_t errlen)
{
    tg_jschema_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->doc = json_incref(doc);
    cctx_t c = { s, err, errlen };
    if (!compile_node(&c, doc, "#", 0)) {
        tg_jschema_free(s);
        return NULL;
    }
    return s;
}

tg_jschema_t *tg_jschema_load(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        if (je.line > 0)
            snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        else
            snprintf(err, errlen, "%s: %s", path, je.text);
        return NULL;
    }
    char e2[256];
    tg_jschema_t *s = tg_jschema_compile(doc, e2, sizeof e2);
    json_decref(doc);
    if (s == NULL)
        snprintf(err, errlen, "%s: %s", path, e2);
    return s;
}

void tg_jschema_free(tg_jschema_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nrx; i++)
        pcre2_code_free(s->rx[i].re);
    free(s->rx);
    json_decref(s->doc);
    free(s);
}

/* ---- validate ---- */

typedef struct vctx {
    const tg_jschema_t *s;
    char *ptr;
    size_t ptrlen, len;     /* the instance location being checked */
    char *reason;
    size_t reasonlen;
} vctx_t;

static size_t push_seg(vctx_t *v, const char *seg)
{
    size_t mark = v->len;
    if (v->len + 1 < v->ptrlen)
        v->ptr[v->len++] = '/';
    for (; *seg && v->len + 2 < v->ptrlen; seg++) {
        if (*seg == '~' || *seg == '/') { /* RFC 6901 §3 escapes */
            v->ptr[v->len++] = '~';
            v->ptr[v->len++] = *seg == '~' ? '0' : '1';
        } else {
            v->ptr[v->len++] = *seg;
        }
    }
    v->ptr[v->len] = '\0';
    return mark;
}

static void pop_seg(vctx_t *v, size_t mark)
{
    v->len = mark;
    v->ptr[mark] = '\0';
}

static bool vfail(vctx_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool vfail(vctx_t *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, v->reasonlen, fmt, ap);
    va_end(ap);
    return false;
}

static bool type_is(const char *t, const json_t *i)
{
    if (strcmp(t, "null") == 0) return json_is_null(i);
    if (strcmp(t, "boolean") == 0) return json_is_boolean(i);
    if (strcmp(t, "object") == 0) return json_is_object(i);
    if (strcmp(t, "array") == 0) return json_is_array(i);
    if (strcmp(t, "number") == 0) return json_is_number(i);
    if (strcmp(t, "string") == 0) return json_is_string(i);
    if (strcmp(t, "integer") == 0) /* 1.0 is an integer in JSON Schema */
        return json_is_integer(i) || (json_is_real(i) && floor(json_real_value(i)) == json_real_value(i));
    return false;
}

static const char *type_name(const json_t *i)
{
    switch (json_typeof(i)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

static bool check(vctx_t *v, const json_t *sch, const json_t *inst, int depth);

static bool check_type(vctx_t *v, const json_t *t, const json_t *inst)
{
    if (json_is_string(t))
        return type_is(json_string_value(t), inst) ||
               vfail(v, "expected %s, got %s", json_string_value(t), type_name(inst));
    size_t i;
    json_t *e;
    json_array_foreach(t, i, e) if (type_is(json_string_value(e), inst)) return true;
    return vfail(v, "type %s is not allowed here", type_name(inst));
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

static bool check_string(vctx_t *v, const json_t *sch, const json_t *inst)
{
    size_t chars = utf8_chars(json_string_value(inst), json_string_length(inst));
    const json_t *lo = json_object_get(sch, "minLength"), *hi = json_object_get(sch, "maxLength");
    if (lo && chars < (size_t)json_integer_value(lo))
        return vfail(v, "shorter than %lld characters", (long long)json_integer_value(lo));
    if (hi && chars > (size_t)json_integer_value(hi))
        return vfail(v, "longer than %lld characters", (long long)json_integer_value(hi));
    const json_t *pat = json_object_get(sch, "pattern");
    if (pat == NULL)
        return true;
    for (size_t i = 0; i < v->s->nrx; i++) {
        if (v->s->rx[i].node != pat)
            continue;
        pcre2_match_data *md = pcre2_match_data_create(1, NULL);
        int rc = md ? pcre2_match(v->s->rx[i].re, (PCRE2_SPTR)json_string_value(inst), json_string_length(inst), 0, 0, md, NULL) : -1;
        pcre2_match_data_free(md);
        return rc >= 0 || vfail(v, "does not match the pattern %.80s", json_string_value(pat));
    }
    return true;
}

static bool check_number(vctx_t *v, const json_t *sch, const json_t *inst)
{
    double x = json_number_value(inst);
    const json_t *b;
    if ((b = json_object_get(sch, "minimum")) && x < json_number_value(b))
        return vfail(v, "less than the minimum %g", json_number_value(b));
    if ((b = json_object_get(sch, "maximum")) && x > json_number_value(b))
        return vfail(v, "greater than the maximum %g", json_number_value(b));
    if ((b = json_object_get(sch, "exclusiveMinimum")) && x <= json_number_value(b))
        return vfail(v, "not greater than %g", json_number_value(b));
    if ((b = json_object_get(sch, "exclusiveMaximum")) && x >= json_number_value(b))
        return vfail(v, "not less than %g", json_number_value(b));
    return true;
}

static bool check_object(vctx_t *v, const json_t *sch, const json_t *inst, int depth)
{
    const json_t *req = json_object_get(sch, "required"), *props = json_object_get(sch, "properties");
    const json_t *extra = json_object_get(sch, "additionalProperties");
    size_t i;
    json_t *e;
    json_array_foreach(req, i, e) {
        if (json_object_get(inst, json_string_value(e)) == NULL) {
            push_seg(v, json_string_value(e)); /* the pointer names the missing member */
            return vfail(v, "required member is missing");
        }
    }
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)inst, k, val) {
        const json_t *ps = props ? json_object_get(props, k) : NULL;
        const json_t *use = ps ? ps : extra;
        if (use == NULL)
            continue;
        size_t mark = push_seg(v, k);
        if (!ps && json_is_false(use))
            return vfail(v, "member is not allowed");
        if (!check(v, use, val, depth + 1))
            return false;
        pop_seg(v, mark);
    }
    return true;
}

static bool check_array(vctx_t *v, const json_t *sch, const json_t *inst, int depth)
{
    size_t n = json_array_size(inst);
    const json_t *lo = json_object_get(sch, "minItems"), *hi = json_object_get(sch, "maxItems");
    if (lo && n < (size_t)json_integer_value(lo))
        return vfail(v, "fewer than %lld items", (long long)json_integer_value(lo));
    if (hi && n > (size_t)json_integer_value(hi))
        return vfail(v, "more than %lld items", (long long)json_integer_value(hi));
    const json_t *items = json_object_get(sch, "items");
    for (size_t i = 0; items && i < n; i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        size_t mark = push_seg(v, idx);
        if (!check(v, items, json_array_get(inst, i), depth + 1))
            return false;
        pop_seg(v, mark);
    }
    return true;
}

static bool check(vctx_t *v, const json_t *sch, const json_t *inst, int depth)
{
    if (depth > TG_JSCHEMA_MAX_DEPTH)
        return vfail(v, "schema recursion deeper than %d", TG_JSCHEMA_MAX_DEPTH);
    if (json_is_boolean(sch))
        return json_is_true(sch) || vfail(v, "no value is allowed here");
    const json_t *k;
    if ((k = json_object_get(sch, "$ref")) && !check(v, resolve_ref(v->s->doc, json_string_value(k)), inst, depth + 1))
        return false;
    if ((k = json_object_get(sch, "type")) && !check_type(v, k, inst))
        return false;
    if ((k = json_object_get(sch, "const")) && !json_equal((json_t *)k, (json_t *)inst))
        return vfail(v, "must equal the constant");
    if ((k = json_object_get(sch, "enum"))) {
        size_t i;
        json_t *e;
        bool found = false;
        json_array_foreach(k, i, e) found |= json_equal(e, (json_t *)inst);
        if (!found)
            return vfail(v, "not one of the allowed values");
    }
    if (json_is_string(inst))
        return check_string(v, sch, inst);
    if (json_is_number(inst))
        return check_number(v, sch, inst);
    if (json_is_object(inst))
        return check_object(v, sch, inst, depth);
    if (json_is_array(inst))
        return check_array(v, sch, inst, depth);
    return true;
}

bool tg_jschema_validate(const tg_jschema_t *s, const json_t *inst, char *ptr, size_t ptrlen,
                         char *reason, size_t reasonlen)
{
    vctx_t v = { s, ptr, ptrlen, 0, reason, reasonlen };
    ptr[0] = '\0';
    reason[0] = '\0';
    return check(&v, s->doc, inst, 0);
}
