#include "upstream/upstream.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "upstream/balancer.h"
#include "upstream/tls_client.h"
#include "util/log.h"

static unsigned resolve(const tg_server_addr_cfg_t *cfg, struct sockaddr_storage *addrs,
                        socklen_t *lens, unsigned max)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    int r = getaddrinfo(cfg->host, port, &hints, &res);
    if (r != 0) {
        tg_log_warn("upstream server %s: cannot resolve: %s", cfg->address, gai_strerror(r));
        return 0;
    }
    unsigned n = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        memcpy(&addrs[n], ai->ai_addr, ai->ai_addrlen);
        lens[n] = ai->ai_addrlen;
        n++;
    }
    freeaddrinfo(res);
    return n;
}

static void publish(tg_upstream_server_t *s, const struct sockaddr_storage *addrs,
                    const socklen_t *lens, unsigned n)
{
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel); /* odd: writing */
    atomic_thread_fence(memory_order_release);
    memcpy(s->addrs, addrs, sizeof(*addrs) * n);
    memcpy(s->addr_lens, lens, sizeof(*lens) * n);
    s->naddrs = n;
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_release); /* even: stable */
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* cfg->hash_key was validated by the loader: client_ip | path | header:N |
 * cookie:N | query:N. */
static int compile_hash_key(tg_upstream_t *u)
{
    static const struct { const char *prefix; tg_hash_kind_t kind; } tab[] = {
        { "client_ip", TG_HASH_CLIENT_IP }, { "path", TG_HASH_PATH }, { "header:", TG_HASH_HEADER },
        { "cookie:", TG_HASH_COOKIE }, { "query:", TG_HASH_QUERY },
    };
    const char *k = u->cfg->hash_key;
    for (size_t i = 0; k && i < sizeof tab / sizeof tab[0]; i++) {
        size_t l = strlen(tab[i].prefix);
        if (strncmp(k, tab[i].prefix, l) == 0) {
            u->hash_kind = tab[i].kind;
            u->hash_name = k + l;
            u->hash_name_len = strlen(k + l);
            return 0;
        }
    }
    return -1;
}

int tg_upstreams_init(tg_upstreams_t *ups, const tg_config_t *cfg)
{
    ups->n = cfg->nupstreams;
    ups->v = calloc(ups->n ? ups->n : 1, sizeof(*ups->v));
    if (ups->v == NULL)
        return -1;
    for (size_t i = 0; i < ups->n; i++) {
        tg_upstream_t *u = &ups->v[i];
        u->cfg = &cfg->upstreams[i];
        u->nservers = u->cfg->nservers;
        u->servers = calloc(u->nservers ? u->nservers : 1, sizeof(*u->servers));
        if (u->servers == NULL) {
            tg_upstreams_free(ups);
            return -1;
        }
        for (size_t j = 0; j < u->nservers; j++) {
            tg_upstream_server_t *s = &u->servers[j];
            s->cfg = &u->cfg->servers[j];
            s->index = j;
            s->is_literal = is_ip_literal(s->cfg->host);
            struct sockaddr_storage addrs[TG_MAX_SERVER_ADDRS];
            socklen_t lens[TG_MAX_SERVER_ADDRS];
            unsigned n = resolve(s->cfg, addrs, lens, TG_MAX_SERVER_ADDRS);
            publish(s, addrs, lens, n);
        }
        if (u->cfg->tls.enabled)
            u->tls_ctx = tg_tlsc_ctx_for(u->cfg); /* reads CA/cert files: off the loops */
        if (u->cfg->balance == TG_BALANCE_HASH && (compile_hash_key(u) < 0 || tg_hash_ring_build(u) < 0)) {
            tg_upstreams_free(ups);
            return -1;
        }
    }
    return 0;
}

void tg_upstreams_free(tg_upstreams_t *ups)
{
    if (ups->v == NULL)
        return;
    for (size_t i = 0; i < ups->n; i++) {
        free(ups->v[i].servers);
        free(ups->v[i].ring);
        SSL_CTX_free(ups->v[i].tls_ctx);
    }
    free(ups->v);
    ups->v = NULL;
    ups->n = 0;
}

void tg_upstreams_refresh_dns(tg_upstreams_t *ups)
{
    for (size_t i = 0; i < ups->n; i++) {
        tg_upstream_t *u = &ups->v[i];
        for (size_t j = 0; j < u->nservers; j++) {
            tg_upstream_server_t *s = &u->servers[j];
            if (s->is_literal)
                continue;
            struct sockaddr_storage addrs[TG_MAX_SERVER_ADDRS];
            socklen_t lens[TG_MAX_SERVER_ADDRS];
            unsigned n = resolve(s->cfg, addrs, lens, TG_MAX_SERVER_ADDRS);
            /* Keep the last good answer when the resolver fails (like nginx's
             * "valid" cache): a DNS outage must not take healthy servers away. */
            if (n > 0)
                publish(s, addrs, lens, n);
        }
    }
}

bool tg_upstream_server_addr(tg_upstream_server_t *srv, struct sockaddr_storage *out, socklen_t *len)
{
    for (;;) {
        unsigned seq = atomic_load_explicit(&srv->seq, memory_order_acquire);
        if (seq & 1)
            continue;
        unsigned n = srv->naddrs;
        if (n == 0)
            return false;
        unsigned k = atomic_fetch_add_explicit(&srv->next_addr, 1, memory_order_relaxed) % n;
        memcpy(out, &srv->addrs[k], sizeof *out);
        *len = srv->addr_lens[k];
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&srv->seq, memory_order_relaxed) == seq)
            return true;
    }
}

uint64_t tg_upstream_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *tg_upstream_server_health(const tg_upstream_server_t *s, uint64_t now_ms)
{
    if (atomic_load_explicit(&s->health, memory_order_relaxed) != TG_HEALTH_UP)
        return "down";
    uint64_t until = atomic_load_explicit(&s->ejected_until, memory_order_relaxed);
    return until != 0 && until > now_ms ? "ejected" : "up";
}
