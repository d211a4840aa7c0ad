/* The filter-facing side of the exchange (proxy/filter_api.h). */
#include "proxy/exchange_int.h"

#include <stdio.h>
#include <string.h>

const tg_ex_request_t *tg_ex_request(tg_exchange_t *ex) { return &ex->view; }
tg_worker_t *tg_ex_worker(tg_exchange_t *ex) { return ex->w; }
const char *tg_ex_request_id(tg_exchange_t *ex) { return ex->request_id; }
tg_identity_t *tg_ex_identity(tg_exchange_t *ex) { return &ex->identity; }
void **tg_ex_filter_slot(tg_exchange_t *ex, size_t f) { return &ex->filter_slots[f]; }

static int add_edit(tg_exchange_t *ex, const char *name, tg_str_t value, bool remove)
{
    if (ex->nedits == ex->edits_cap) {
        size_t cap = ex->edits_cap ? ex->edits_cap * 2 : 8;
        tg_hdr_edit_t *v = tg_arena_alloc(&ex->arena, cap * sizeof *v);
        if (v == NULL)
            return -1;
        if (ex->nedits)
            memcpy(v, ex->edits, ex->nedits * sizeof *v);
        ex->edits = v;
        ex->edits_cap = cap;
    }
    const char *n = tg_arena_strdup(&ex->arena, name);
    tg_str_t val = remove ? TG_STR_NULL : tg_arena_str_dup(&ex->arena, value);
    if (n == NULL || (!remove && val.p == NULL))
        return -1;
    ex->edits[ex->nedits++] = (tg_hdr_edit_t){ n, val, remove };
    return 0;
}

int tg_ex_req_header_set(tg_exchange_t *ex, const char *name, tg_str_t value)
{
    return add_edit(ex, name, value, false);
}

void tg_ex_req_header_remove(tg_exchange_t *ex, const char *name) { add_edit(ex, name, TG_STR_NULL, true); }

int tg_ex_set_query(tg_exchange_t *ex, tg_str_t query)
{
    ex->up_query = tg_arena_str_dup(&ex->arena, query);
    ex->query_set = ex->up_query.p != NULL;
    return ex->query_set ? 0 : -1;
}

static tg_header_t *copy_headers(tg_exchange_t *ex, const tg_header_t *h, size_t n, size_t extra)
{
    tg_header_t *v = tg_arena_alloc(&ex->arena, (n + extra + 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        v[i].name = tg_arena_str_dup(&ex->arena, h[i].name);
        v[i].value = tg_arena_str_dup(&ex->arena, h[i].value);
        if (v[i].name.p == NULL || v[i].value.p == NULL)
            return NULL;
    }
    return v;
}

void tg_ex_respond(tg_exchange_t *ex, int status, const tg_header_t *h, size_t n, const char *body,
                   size_t len)
{
    tg_header_t *v = copy_headers(ex, h, n, 0);
    char *b = tg_arena_strndup(&ex->arena, body ? body : "", body ? len : 0);
    if (v == NULL || b == NULL) {
        tg__ex_respond_error(ex, 503, "out_of_memory");
        return;
    }
    tg__ex_respond(ex, status, v, n, b, body ? len : 0, NULL);
}

void tg_ex_respond_json(tg_exchange_t *ex, int status, const char *json, const tg_header_t *extra,
                        size_t nextra)
{
    if (tg__ex_grpc_error(ex, status, "invalid_request", extra, nextra))
        return; /* a gRPC route: HTTP 200 + grpc-status */
    tg_header_t *v = copy_headers(ex, extra, nextra, 2);
    char *b = tg_arena_strdup(&ex->arena, json);
    if (v == NULL || b == NULL) {
        tg__ex_respond_error(ex, 503, "out_of_memory");
        return;
    }
    v[nextra] = (tg_header_t){ TG_STR_LIT("Content-Type"), TG_STR_LIT("application/json") };
    v[nextra + 1] = (tg_header_t){ TG_STR_LIT("Cache-Control"), TG_STR_LIT("no-store") };
    tg__ex_respond(ex, status, v, nextra + 2, b, strlen(b), NULL);
}

void tg_ex_respond_error(tg_exchange_t *ex, int status, const char *word, const tg_header_t *extra,
                         size_t nextra)
{
    if (tg__ex_grpc_error(ex, status, word, extra, nextra))
        return; /* a gRPC route: HTTP 200 + grpc-status */
    char *json = tg_arena_printf(&ex->arena, "{\"error\":\"%s\",\"status\":%d,\"request_id\":\"%s\"}\n",
                                 word, status, ex->request_id);
    if (json == NULL) {
        tg__ex_respond_error(ex, 503, "out_of_memory");
        return;
    }
    tg_ex_respond_json(ex, status, json, extra, nextra);
}

static void resp_remove(tg_exchange_t *ex, tg_str_t name)
{
    size_t o = 0;
    for (size_t i = 0; i < ex->resp_n; i++)
        if (!tg_str_ieq(ex->resp_h[i].name, name))
            ex->resp_h[o++] = ex->resp_h[i];
    ex->resp_n = o;
}

void tg_ex_resp_header_add(tg_exchange_t *ex, const char *name, tg_str_t value)
{
    if (ex->resp_h == NULL || ex->resp_n >= ex->resp_cap)
        return;
    tg_str_t n = tg_arena_str_dup(&ex->arena, tg_str_c(name));
    tg_str_t v = tg_arena_str_dup(&ex->arena, value);
    if (n.p && v.p)
        ex->resp_h[ex->resp_n++] = (tg_header_t){ n, v };
}

void tg_ex_resp_header_set(tg_exchange_t *ex, const char *name, tg_str_t value)
{
    if (ex->resp_h == NULL)
        return;
    resp_remove(ex, tg_str_c(name));
    tg_ex_resp_header_add(ex, name, value);
}

void tg_ex_resp_header_remove(tg_exchange_t *ex, const char *name)
{
    if (ex->resp_h)
        resp_remove(ex, tg_str_c(name));
}

const tg_header_t *tg_ex_resp_headers(tg_exchange_t *ex, size_t *n)
{
    *n = ex->resp_n;
    return ex->resp_h;
}
