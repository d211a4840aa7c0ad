/* Request validation (route `validate`): the Content-Type of a request that
 * has a body must be one of content_types (415); with json_schema the whole
 * body (buffered by the exchange, bounded by the route's max_body_bytes) must
 * be JSON that the schema accepts (400 invalid_body with the failing JSON
 * Pointer and a reason); requests without a body are not checked. The body
 * is forwarded unchanged. */
#include "filters/filter.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "filters/json_schema.h"
#include "proxy/filter_api.h"

typedef struct validate_state {
    const tg_validate_cfg_t *cfg;
    tg_jschema_t *schema;
} validate_state_t;

static int build(const tg_config_t *cfg, const tg_route_cfg_t *route, void **state, char *err, size_t errlen)
{
    *state = NULL;
    if (!route->validate.enabled)
        return 0;
    validate_state_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = &route->validate;
    if (s->cfg->json_schema && (s->schema = tg_jschema_load(s->cfg->json_schema, err, errlen)) == NULL) {
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static void free_state(void *p)
{
    validate_state_t *s = p;
    tg_jschema_free(s->schema);
    free(s);
}

static bool has_body(const tg_ex_request_t *rq)
{
    const tg_header_t *cl = tg_headers_find(rq->headers, rq->nheaders, "content-length");
    if (tg_headers_find(rq->headers, rq->nheaders, "transfer-encoding"))
        return true;
    return cl && !(cl->value.len == 1 && cl->value.p[0] == '0');
}

/* The media type of Content-Type without parameters, compared in lower case. */
static bool type_allowed(const tg_validate_cfg_t *v, tg_str_t ct)
{
    size_t n = 0;
    while (n < ct.len && ct.p[n] != ';')
        n++;
    tg_str_t mt = tg_str_trim_ows(tg_str(ct.p, n));
    for (size_t i = 0; i < v->ncontent_types; i++)
        if (tg_str_ieq_c(mt, v->content_types[i]))
            return true;
    return false;
}

static tg_filter_ret_t on_request(tg_exchange_t *ex, void *state)
{
    validate_state_t *s = state;
    const tg_ex_request_t *rq = tg_ex_request(ex);
    if (s->cfg->ncontent_types == 0 || !has_body(rq))
        return TG_FILTER_CONTINUE;
    const tg_header_t *ct = tg_headers_find(rq->headers, rq->nheaders, "content-type");
    if (ct == NULL || !type_allowed(s->cfg, ct->value)) {
        tg_ex_respond_error(ex, 415, "unsupported_media_type", NULL, 0);
        return TG_FILTER_DONE;
    }
    return TG_FILTER_CONTINUE;
}

static bool wants_body(void *state) { return ((validate_state_t *)state)->schema != NULL; }

static tg_filter_ret_t invalid(tg_exchange_t *ex, const char *ptr, const char *reason)
{
    json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s}", "error", "invalid_body", "status", 400, "pointer", ptr,
                          "reason", reason, "request_id", tg_ex_request_id(ex));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        tg_ex_respond_error(ex, 400, "invalid_body", NULL, 0);
        return TG_FILTER_DONE;
    }
    tg_ex_respond_json(ex, 400, text, NULL, 0);
    free(text);
    return TG_FILTER_DONE;
}

static tg_filter_ret_t on_request_body(tg_exchange_t *ex, void *state, const char *body, size_t len)
{
    validate_state_t *s = state;
    if (len == 0 && !has_body(tg_ex_request(ex)))
        return TG_FILTER_CONTINUE; /* a request without a body (GET) has nothing to validate */
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        char reason[200];
        snprintf(reason, sizeof reason, "not JSON: %s at offset %d", je.text, je.position);
        return invalid(ex, "", reason);
    }
    char ptr[512], reason[200];
    bool ok = tg_jschema_validate(s->schema, doc, ptr, sizeof ptr, reason, sizeof reason);
    json_decref(doc);
    return ok ? TG_FILTER_CONTINUE : invalid(ex, ptr, reason);
}

const tg_filter_t tg_filter_validate = {
    .name = "validate",
    .build = build,
    .free_state = free_state,
    .on_request = on_request,
    .on_request_body = on_request_body,
    .wants_body = wants_body,
};
