/* The admin endpoints (docs/operations.md "Admin API"). Each is one small
 * handler; the table at the end is the whole routing. Everything here runs
 * on the main thread, which owns rt->gen. */
#include "admin/admin_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include "runtime/reload.h"

static tg_runtime_t *RT(tg_admin_req_t *r) { return r->admin->rt; }

static void reply_jansson(tg_admin_req_t *r, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        tg__admin_error(r, 500, "out_of_memory", NULL);
        return;
    }
    size_t n = strlen(text);
    text[n] = '\0';
    char *body = malloc(n + 2);
    if (body == NULL) {
        free(text);
        tg__admin_error(r, 500, "out_of_memory", NULL);
        return;
    }
    memcpy(body, text, n);
    body[n] = '\n';
    tg__admin_reply(r, status, "application/json", body, n + 1);
    free(body);
    free(text);
}

static void health(tg_admin_req_t *r) { tg__admin_reply_json(r, 200, "{\"status\":\"ok\"}\n"); }

/* Ready: a configuration is live, the workers listen, and no drain started. */
static void ready(tg_admin_req_t *r)
{
    tg_runtime_t *rt = RT(r);
    if (rt->draining || atomic_load(&rt->workers_left) < rt->nworkers) {
        tg__admin_error(r, 503, "not_ready", NULL);
        return;
    }
    char body[96];
    snprintf(body, sizeof body, "{\"status\":\"ready\",\"generation\":%llu}\n",
             (unsigned long long)rt->gen->cfg->generation);
    tg__admin_reply_json(r, 200, body);
}

static void metrics(tg_admin_req_t *r)
{
    size_t len = 0;
    char *text = tg_metrics_render(&len);
    if (text == NULL) {
        tg__admin_error(r, 500, "out_of_memory", NULL);
        return;
    }
    tg__admin_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static const char *balance_name(tg_balance_t b)
{
    static const char *const names[] = { "round_robin", "least_conn", "random", "p2c", "hash" };
    return (unsigned)b < sizeof names / sizeof names[0] ? names[b] : "round_robin";
}

static json_t *server_json(const tg_upstream_server_t *s, uint64_t now)
{
    return json_pack("{s:s, s:I, s:b, s:s, s:I, s:I, s:I, s:I}", "address", s->cfg->address, "weight",
                     (json_int_t)s->cfg->weight, "backup", s->cfg->backup, "health",
                     tg_upstream_server_health(s, now), "active",
                     (json_int_t)atomic_load_explicit(&s->active, memory_order_relaxed), "requests",
                     (json_int_t)atomic_load_explicit(&s->requests, memory_order_relaxed), "failures",
                     (json_int_t)atomic_load_explicit(&s->failures, memory_order_relaxed), "ejections",
                     (json_int_t)atomic_load_explicit(&s->ejections, memory_order_relaxed));
}

static void upstreams(tg_admin_req_t *r)
{
    const tg_upstreams_t *ups = &RT(r)->gen->ups;
    uint64_t now = tg_upstream_now_ms();
    json_t *list = json_array();
    for (size_t i = 0; list && i < ups->n; i++) {
        const tg_upstream_t *u = &ups->v[i];
        json_t *servers = json_array();
        for (size_t j = 0; servers && j < u->nservers; j++)
            json_array_append_new(servers, server_json(&u->servers[j], now));
        json_array_append_new(list, json_pack("{s:s, s:s, s:o*}", "name", u->cfg->name, "balance",
                                              balance_name(u->cfg->balance), "servers", servers));
    }
    reply_jansson(r, 200, list ? json_pack("{s:o}", "upstreams", list) : NULL);
}

static void config(tg_admin_req_t *r)
{
    char *text = tg_config_to_json(RT(r)->gen->cfg);
    if (text == NULL) {
        tg__admin_error(r, 500, "out_of_memory", NULL);
        return;
    }
    tg__admin_reply(r, 200, "application/json", text, strlen(text));
    free(text);
}

static void stats(tg_admin_req_t *r)
{
    tg_runtime_t *rt = RT(r);
    json_t *doc = json_pack("{s:I, s:i, s:I, s:b, s:{s:I, s:I}}", "generation",
                            (json_int_t)rt->gen->cfg->generation, "workers", rt->nworkers,
                            "connections_active", (json_int_t)atomic_load(&rt->conns), "draining",
                            rt->draining, "reloads", "ok", (json_int_t)tg_reload_count(rt, true),
                            "failed", (json_int_t)tg_reload_count(rt, false));
    reply_jansson(r, 200, doc);
}

/* Called once the reload is live everywhere or was refused. `r` may have
 * lost its connection meanwhile (then the reply only frees it). */
static void reload_done(void *arg, const tg_reload_result_t *res)
{
    tg_admin_req_t *r = arg;
    if (res->status == 200) {
        char body[64];
        snprintf(body, sizeof body, "{\"generation\":%llu}\n", (unsigned long long)res->generation);
        tg__admin_reply_json(r, 200, body);
        return;
    }
    json_t *details = json_array();
    for (size_t i = 0; details && i < res->nerrors; i++)
        json_array_append_new(details, json_string(res->errors[i]));
    const char *word = res->status == 400 ? "invalid_config" : "unavailable";
    reply_jansson(r, res->status, json_pack("{s:s, s:i, s:o*, s:I, s:s}", "error", word, "status",
                                            res->status, "details", details, "generation",
                                            (json_int_t)res->generation, "request_id", r->request_id));
}

static void reload(tg_admin_req_t *r) { tg_reload_request(RT(r), reload_done, r); }

const tg_admin_endpoint_t tg__admin_endpoints[] = {
    { "GET", "/health", true, health },
    { "GET", "/ready", true, ready },
    { "GET", "/metrics", true, metrics },
    { "GET", "/upstreams", false, upstreams },
    { "GET", "/config", false, config },
    { "GET", "/stats", false, stats },
    { "POST", "/reload", false, reload },
    { "POST", "/cache/purge", false, tg__admin_cache_purge },
    { NULL, NULL, false, NULL },
};

/* ---- /metrics: gauges read from the runtime at scrape time ---- */

void tg__admin_collect(tg_metrics_out_t *o, void *arg)
{
    tg_runtime_t *rt = arg;
    tg_metrics_out_family(o, "tollgate_connections_active", "Client connections open now.", TG_METRIC_T_GAUGE);
    tg_metrics_out_sample(o, "tollgate_connections_active", NULL, NULL, (double)atomic_load(&rt->conns));
    tg_metrics_out_family(o, "tollgate_config_generation", "Generation of the configuration in effect (1 at start).",
                          TG_METRIC_T_GAUGE);
    tg_metrics_out_sample(o, "tollgate_config_generation", NULL, NULL, (double)rt->gen->cfg->generation);
    static const char *const result[] = { "result", NULL };
    tg_metrics_out_family(o, "tollgate_config_reloads_total", "Configuration reloads by result (ok, failed).",
                          TG_METRIC_T_COUNTER);
    tg_metrics_out_sample(o, "tollgate_config_reloads_total", result, (const char *const[]){ "ok" },
                          (double)tg_reload_count(rt, true));
    tg_metrics_out_sample(o, "tollgate_config_reloads_total", result, (const char *const[]){ "failed" },
                          (double)tg_reload_count(rt, false));
    static const char *const us[] = { "upstream", "server", NULL };
    tg_metrics_out_family(o, "tollgate_upstream_server_up",
                          "1 when the server takes traffic (not down by health checks, not ejected).",
                          TG_METRIC_T_GAUGE);
    const tg_upstreams_t *ups = &rt->gen->ups;
    uint64_t now = tg_upstream_now_ms();
    for (size_t i = 0; i < ups->n; i++)
        for (size_t j = 0; j < ups->v[i].nservers; j++) {
            const tg_upstream_server_t *s = &ups->v[i].servers[j];
            bool up = strcmp(tg_upstream_server_health(s, now), "up") == 0;
            tg_metrics_out_sample(o, "tollgate_upstream_server_up", us,
                                  (const char *const[]){ ups->v[i].cfg->name, s->cfg->address }, up ? 1 : 0);
        }
}
