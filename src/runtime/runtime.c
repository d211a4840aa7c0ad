#include "runtime/runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "upstream/health.h"
#include "net/tls.h"
#include "admin/admin.h"
#include "observe/gateway_metrics.h"
#include "runtime/reload.h"
#include "util/log.h"

#define DNS_REFRESH_MS 30000

tg_gen_t *tg_gen_create(tg_config_t *cfg)
{
    tg_gen_t *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    atomic_init(&g->refs, 1);
    g->cfg = cfg;
    g->router = tg_router_build(cfg);
    char err[512];
    if (g->router == NULL || tg_upstreams_init(&g->ups, cfg) < 0) {
        tg_log_error("out of memory building the configuration");
        tg_gen_release(g);
        return NULL;
    }
    if (tg_filter_states_build(&g->filters, cfg, err, sizeof err) < 0) {
        tg_log_error("%s: %s", cfg->path, err);
        tg_gen_release(g);
        return NULL;
    }
    /* Certificates are read here, so a reload picks up renewed files. */
    if (tg_tls_build_listeners(cfg, &g->tls, err, sizeof err) < 0) {
        tg_log_error("%s: %s", cfg->path, err);
        tg_gen_release(g);
        return NULL;
    }
    return g;
}

void tg_gen_release(tg_gen_t *g)
{
    if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    tg_filter_states_free(&g->filters);
    tg_tls_free_listeners(g->tls, g->cfg->server.nlisten);
    tg_upstreams_free(&g->ups);
    if (g->router)
        tg_router_free(g->router);
    tg_config_release(g->cfg);
    free(g);
}

static void command_all(tg_runtime_t *rt, int cmd)
{
    for (int i = 0; i < rt->nworkers; i++)
        tg_worker_command(&rt->workers[i], cmd);
}

static void on_grace(uv_timer_t *t)
{
    tg_runtime_t *rt = t->data;
    tg_log_warn("shutdown grace period over: closing the remaining connections");
    command_all(rt, TG_CMD_STOP);
}

static void on_signal(uv_signal_t *s, int signum)
{
    tg_runtime_t *rt = s->data;
    if (signum == SIGHUP) {
        tg_log_info("SIGHUP: reloading the configuration");
        tg_reload_request(rt, NULL, NULL);
        return;
    }
    if (signum == SIGINT) {
        tg_log_info("SIGINT: stopping now");
        command_all(rt, TG_CMD_STOP);
        return;
    }
    if (rt->draining)
        return;
    rt->draining = true;
    tg_log_info("%s: draining for up to %llu ms", signum == SIGTERM ? "SIGTERM" : "SIGQUIT",
                (unsigned long long)rt->gen->cfg->server.shutdown_grace_ms);
    command_all(rt, TG_CMD_DRAIN);
    uv_timer_start(&rt->grace_timer, on_grace, rt->gen->cfg->server.shutdown_grace_ms, 0);
}

static void dns_work(uv_work_t *req)
{
    tg_runtime_t *rt = req->data;
    tg_upstreams_refresh_dns(&rt->dns_gen->ups);
}

static void dns_done(uv_work_t *req, int status)
{
    tg_runtime_t *rt = req->data;
    rt->dns_busy = false;
    tg_gen_release(rt->dns_gen);
    rt->dns_gen = NULL;
}

static void on_dns_timer(uv_timer_t *t)
{
    tg_runtime_t *rt = t->data;
    if (rt->dns_busy)
        return;
    rt->dns_busy = true;
    rt->dns_work.data = rt;
    rt->dns_gen = rt->gen; /* a reload may replace rt->gen meanwhile */
    atomic_fetch_add(&rt->dns_gen->refs, 1);
    if (uv_queue_work(&rt->loop, &rt->dns_work, dns_work, dns_done) != 0) {
        rt->dns_busy = false;
        tg_gen_release(rt->dns_gen);
        rt->dns_gen = NULL;
    }
}

static void on_worker_exit(uv_async_t *a)
{
    tg_runtime_t *rt = a->data;
    if (atomic_load(&rt->workers_left) > 0)
        return;
    uv_stop(&rt->loop);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int open_error_log(const tg_config_t *cfg)
{
    const char *path = cfg->server.error_log_path;
    int fd = 2;
    if (path && strcmp(path, "stderr") != 0) {
        fd = strcmp(path, "stdout") == 0 ? 1 : open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            tg_log_error("cannot open error log %s", path);
            return -1;
        }
    }
    tg_log_setup(fd, (int)cfg->server.error_log_level);
    return 0;
}

static void close_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Initialises every worker (binding its listeners), then starts the threads.
 * On failure nothing is running: the initialised loops are closed here. */
static int start_workers(tg_runtime_t *rt)
{
    int n = rt->gen->cfg->server.workers > 0 ? rt->gen->cfg->server.workers : 1;
    rt->workers = calloc((size_t)n, sizeof *rt->workers);
    if (rt->workers == NULL)
        return -1;
    int ready = 0;
    while (ready < n && tg_worker_init(&rt->workers[ready], rt, ready, rt->gen) == 0)
        ready++;
    if (ready < n) {
        for (int i = 0; i <= ready && i < n; i++)
            tg_worker_abandon(&rt->workers[i]);
        return -1;
    }
    rt->nworkers = n;
    atomic_store(&rt->workers_left, n);
    for (int i = 0; i < n; i++)
        if (tg_worker_start(&rt->workers[i]) != 0)
            return -1; /* cannot happen short of thread exhaustion at start-up */
    return 0;
}

int tg_runtime_run(tg_config_t *cfg)
{
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    if (open_error_log(cfg) < 0) {
        tg_config_release(cfg);
        return 1;
    }
    tg_runtime_t *rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        return 1;
    const char *err = NULL;
    rt->alog = tg_alog_open(cfg->server.access_log_path, cfg->server.access_log_format, &err);
    if (rt->alog == NULL) {
        tg_log_error("cannot open access log %s: %s", cfg->server.access_log_path, err);
        tg_config_release(cfg);
        free(rt);
        return 1;
    }
    rt->gen = tg_gen_create(cfg);
    if (rt->gen == NULL) {
        tg_alog_close(rt->alog);
        free(rt);
        return 1;
    }
    uv_loop_init(&rt->loop);
    uv_async_init(&rt->loop, &rt->worker_exit, on_worker_exit);
    rt->worker_exit.data = rt;
    /* Signals are watched before any worker listens: a SIGTERM that comes as
     * soon as the port accepts must drain, not kill (the default action). */
    uv_signal_t *sigs[] = { &rt->sig_term, &rt->sig_quit, &rt->sig_int, &rt->sig_hup };
    int nums[] = { SIGTERM, SIGQUIT, SIGINT, SIGHUP };
    for (int i = 0; i < 4; i++) {
        uv_signal_init(&rt->loop, sigs[i]);
        sigs[i]->data = rt;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    /* The admin API listens before the traffic ports: once a client can reach
     * the gateway, an operator can reach /health, /metrics and /config too. */
    tg_gateway_metrics_register();
    if (tg_reload_init(rt) < 0 || tg_admin_start(rt) < 0 || start_workers(rt) < 0) {
        tg_log_error("start-up failed");
        tg_admin_close(rt);
        tg_reload_close(rt);
        uv_walk(&rt->loop, close_handle, NULL);
        uv_run(&rt->loop, UV_RUN_DEFAULT);
        uv_loop_close(&rt->loop);
        tg_alog_close(rt->alog);
        tg_gen_release(rt->gen);
        free(rt->workers);
        free(rt);
        return 1;
    }
    tg_log_info("tollgate %s started: %d worker(s), %zu route(s), %zu upstream(s)", TG_VERSION,
                rt->nworkers, cfg->nroutes, cfg->nupstreams);
    uv_timer_init(&rt->loop, &rt->grace_timer);
    rt->grace_timer.data = rt;
    uv_timer_init(&rt->loop, &rt->dns_timer);
    rt->dns_timer.data = rt;
    uv_timer_start(&rt->dns_timer, on_dns_timer, DNS_REFRESH_MS, DNS_REFRESH_MS);
    /* Active health checks: once per server for the whole process, here. */
    rt->health = tg_health_start(&rt->loop, &rt->gen->ups);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    tg_health_stop(rt->health);
    rt->health = NULL;
    for (int i = 0; i < rt->nworkers; i++)
        tg_worker_join(&rt->workers[i]);
    tg_admin_close(rt);  /* before the reload: it forgets its waiters */
    tg_reload_close(rt);
    uv_walk(&rt->loop, close_handle, NULL);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    uv_loop_close(&rt->loop);
    int code = rt->exit_code;
    tg_alog_close(rt->alog);
    tg_gen_release(rt->gen);
    free(rt->workers);
    free(rt);
    tg_metrics_shutdown();
    tg_log_info("stopped");
    return code;
}
