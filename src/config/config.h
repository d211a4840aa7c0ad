/* The validated, immutable configuration snapshot (shared/spec/config.md).
 * tg_config_load builds one from a YAML file; every string, regex and table in
 * it is owned by the snapshot's arena (and its regex list) and lives until
 * tg_config_release drops the last reference. Workers read it without locks. */
#ifndef TG_CONFIG_CONFIG_H
#define TG_CONFIG_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include "util/arena.h"
#include "util/str.h"

/* pcre2_code_8, opaque here so that only users of regexes include pcre2.h. */
typedef struct pcre2_real_code_8 tg_regex_t;

typedef struct tg_cidr {
    int family;          /* AF_INET or AF_INET6 */
    uint8_t addr[16];    /* network byte order, masked */
    uint8_t prefix_len;
} tg_cidr_t;

typedef struct tg_kv {
    const char *name;
    const char *value;
} tg_kv_t;

/* ---- server ---- */
/* server.listen[].tls (schema_tls.c; docs/tls.md). Paths as written. */
typedef struct tg_tls_cert_cfg {
    const char *cert;           /* PEM: the certificate, then its chain */
    const char *key;            /* PEM private key */
    const char *ocsp;           /* DER OCSP response to staple, or NULL */
} tg_tls_cert_cfg_t;

typedef struct tg_listen_tls_cfg {
    tg_tls_cert_cfg_t *certs;   /* chosen by SNI; certs[0] is the default */
    size_t ncerts;              /* >= 1 */
    const char *client_ca;      /* PEM CA bundle: client certificates required; or NULL */
} tg_listen_tls_cfg_t;

enum { TG_ALPN_HTTP11 = 1, TG_ALPN_H2 = 2 }; /* server.listen[].protocols values */

typedef struct tg_listen_cfg {
    const char *address;        /* as written */
    struct sockaddr_storage addr; /* resolved at load; unix paths use sockaddr_un */
    socklen_t addr_len;
    bool has_tls;               /* tls: given */
    tg_listen_tls_cfg_t *tls;   /* NULL = plaintext */
    uint8_t protocols[2];       /* TG_ALPN_*, preference order; nprotocols == 0: the
                                   default (TLS: h2, http/1.1; plaintext: http/1.1 + h2c) */
    uint8_t nprotocols;
} tg_listen_cfg_t;

/* May this listener speak HTTP/2 (ALPN h2 over TLS; h2c when plaintext)? */
static inline bool tg_listen_allows_h2(const tg_listen_cfg_t *l)
{
    if (l->nprotocols == 0)
        return true;
    for (uint8_t i = 0; i < l->nprotocols; i++)
        if (l->protocols[i] == TG_ALPN_H2)
            return true;
    return false;
}

typedef struct tg_limits_cfg {
    uint64_t header_timeout_ms; /* 10s */
    uint64_t idle_timeout_ms;   /* 75s */
    uint64_t body_timeout_ms;   /* 60s */
    uint64_t max_header_bytes;  /* 16KiB */
    uint32_t max_headers;       /* 100 */
    uint64_t max_uri_bytes;     /* 8KiB */
    uint64_t max_body_bytes;    /* 10MiB */
    uint32_t max_connections;   /* 100000 */
} tg_limits_cfg_t;

typedef enum tg_log_format { TG_LOG_JSON = 0, TG_LOG_COMBINED, TG_LOG_OFF } tg_log_format_t;
typedef enum tg_log_level { TG_LEVEL_DEBUG = 0, TG_LEVEL_INFO, TG_LEVEL_WARN, TG_LEVEL_ERROR } tg_log_level_t;

typedef struct tg_server_cfg {
    tg_listen_cfg_t *listen;
    size_t nlisten;
    int workers;                /* resolved: "auto" = CPU count */
    tg_limits_cfg_t limits;
    tg_cidr_t *trusted_proxies;
    size_t ntrusted_proxies;
    const char *access_log_path;   /* "stdout", "stderr" or a file path; default stdout */
    tg_log_format_t access_log_format; /* default json */
    const char *error_log_path;    /* default stderr */
    tg_log_level_t error_log_level; /* default info */
    uint64_t shutdown_grace_ms;    /* 30s */
} tg_server_cfg_t;

/* ---- upstreams ---- */
typedef enum tg_balance { TG_BALANCE_ROUND_ROBIN = 0, TG_BALANCE_LEAST_CONN, TG_BALANCE_RANDOM,
                          TG_BALANCE_P2C, TG_BALANCE_HASH } tg_balance_t;
typedef enum tg_up_protocol { TG_PROTO_HTTP1 = 0, TG_PROTO_H2C, TG_PROTO_H2, TG_PROTO_GRPC } tg_up_protocol_t;

/* Retry conditions, a bit set. */
enum {
    TG_RETRY_CONNECT_FAILURE = 1u << 0,
    TG_RETRY_RESET = 1u << 1,
    TG_RETRY_TIMEOUT = 1u << 2,
    TG_RETRY_502 = 1u << 3,
    TG_RETRY_503 = 1u << 4,
    TG_RETRY_504 = 1u << 5,
};

typedef struct tg_server_addr_cfg {
    const char *address; /* as written: "host:port" */
    const char *host;    /* host part (name or literal, no brackets) */
    uint16_t port;
    uint32_t weight;     /* default 1 */
    bool backup;
} tg_server_addr_cfg_t;

/* Upstream resilience (schema_upstream_resilience.c; docs/operations.md). */
typedef struct tg_status_range {
    uint16_t lo, hi;              /* inclusive */
} tg_status_range_t;

#define TG_HEALTH_SERVICE_MAX 127    /* health_check.service: a one-byte protobuf length */

typedef struct tg_health_check_cfg {
    const char *path;             /* "/" */
    uint64_t interval_ms;         /* 5s */
    uint64_t timeout_ms;          /* 1s */
    uint32_t healthy;             /* 2 consecutive successes to come back */
    uint32_t unhealthy;           /* 3 consecutive failures to go out */
    const tg_status_range_t *expect; /* default [200-399] */
    size_t nexpect;
    const char *service;          /* grpc: the HealthCheckRequest service; "" = the whole server */
} tg_health_check_cfg_t;

typedef struct tg_outlier_cfg {
    uint32_t consecutive_failures; /* 5 when outlier: is given; 0 = off */
    uint64_t eject_ms;            /* 30s */
} tg_outlier_cfg_t;

typedef struct tg_breaker_cfg {
    uint32_t max_connections;     /* upstream connections in use, process-wide; 0 = unlimited */
    uint32_t max_pending;         /* requests waiting for a new connection; 0 = unlimited */
} tg_breaker_cfg_t;

/* upstreams.*.tls (schema_upstream_tls.c): TLS to the servers. */
typedef struct tg_upstream_tls_cfg {
    bool enabled;                 /* tls: given */
    bool verify;                  /* true: chain and name are verified */
    const char *ca;               /* PEM bundle; NULL = the system store */
    const char *sni;              /* server name sent and verified; NULL = the server's host */
    const char *cert, *key;       /* client certificate (both or neither) */
} tg_upstream_tls_cfg_t;

typedef struct tg_upstream_cfg {
    const char *name;
    size_t index;                 /* position in tg_config_t.upstreams */
    tg_server_addr_cfg_t *servers;
    size_t nservers;
    tg_balance_t balance;
    const char *hash_key;         /* as written, NULL unless balance: hash */
    tg_up_protocol_t protocol;
    tg_upstream_tls_cfg_t tls;
    uint32_t keepalive_max_idle;  /* 64 */
    uint64_t keepalive_idle_timeout_ms; /* 60s */
    uint64_t connect_timeout_ms;  /* 2s */
    uint64_t response_timeout_ms; /* 30s */
    uint64_t idle_timeout_ms;     /* 60s: pooled connection unused time */
    uint32_t retry_attempts;      /* 0 without retries:; retries: without attempts: = 2 */
    uint32_t retry_on;            /* TG_RETRY_* */
    uint32_t retry_budget_pct;    /* 20 */
    bool retry_non_idempotent;    /* retries.non_idempotent: false (schema_upstream_resilience.c) */
    bool has_health_check;        /* health_check: given */
    tg_health_check_cfg_t health_check;
    tg_outlier_cfg_t outlier;     /* consecutive_failures 0 = passive ejection off */
    tg_breaker_cfg_t breaker;     /* 0 = no limit */
    uint64_t dns_refresh_ms;      /* re-resolve period for names: key dns_refresh, default 30s */
} tg_upstream_cfg_t;

/* ---- routes ---- */
enum { /* method bit set for match.methods; 0 = any */
    TG_M_GET = 1u << 0, TG_M_HEAD = 1u << 1, TG_M_POST = 1u << 2, TG_M_PUT = 1u << 3,
    TG_M_DELETE = 1u << 4, TG_M_PATCH = 1u << 5, TG_M_OPTIONS = 1u << 6,
    TG_M_CONNECT = 1u << 7, TG_M_TRACE = 1u << 8,
};

typedef enum tg_hmatch_kind { TG_HMATCH_EXACT = 0, TG_HMATCH_PRESENT, TG_HMATCH_REGEX } tg_hmatch_kind_t;

typedef struct tg_header_match_cfg {
    const char *name;
    tg_hmatch_kind_t kind;
    const char *value;   /* exact value, or the regex source without the leading '~' */
    tg_regex_t *regex;   /* compiled when kind == REGEX */
} tg_header_match_cfg_t;

typedef struct tg_query_match_cfg {
    const char *name;
    tg_hmatch_kind_t kind; /* same three forms as headers */
    const char *value;
    tg_regex_t *regex;
} tg_query_match_cfg_t;

typedef struct tg_match_cfg {
    const char **hosts;  /* lowercase; "*.example.com" wildcards kept as written */
    size_t nhosts;       /* 0 = any host */
    const char *path;    /* prefix at a segment boundary, or NULL */
    const char *path_exact;
    const char *path_regex_src;
    tg_regex_t *path_regex;
    uint32_t methods;    /* TG_M_* bits, 0 = any */
    const char **other_methods; /* methods outside the bit set (extension tokens) */
    size_t nother_methods;
    tg_header_match_cfg_t *headers;
    size_t nheaders;
    tg_query_match_cfg_t *query;
    size_t nquery;
    struct tg_json_match_cfg *json; /* match.json (schema_security.c); the body is read first */
    size_t njson;
} tg_match_cfg_t;

typedef struct tg_header_ops_cfg {
    tg_kv_t *set;        /* replace (or add when absent) */
    size_t nset;
    tg_kv_t *add;        /* append another field line */
    size_t nadd;
    const char **remove;
    size_t nremove;
} tg_header_ops_cfg_t;

typedef struct tg_respond_cfg {
    int status;
    const char *body;    /* may be NULL (empty) */
    size_t body_len;
    tg_kv_t *headers;
    size_t nheaders;
} tg_respond_cfg_t;

typedef enum tg_rewrite_kind { TG_REWRITE_NONE = 0, TG_REWRITE_STRIP_PREFIX, TG_REWRITE_REPLACE_PREFIX,
                               TG_REWRITE_REGEX } tg_rewrite_kind_t;

typedef struct tg_rewrite_cfg {
    tg_rewrite_kind_t kind;
    const char *from;     /* strip_prefix value, or replace_prefix.from */
    const char *to;       /* replace_prefix.to */
    const char *pattern_src;
    tg_regex_t *pattern;  /* regex.pattern */
    const char *replace;  /* regex.replace, with $1..$9 */
} tg_rewrite_cfg_t;

/* ---- rate limits (schema_ratelimit.c; docs/rate-limiting.md) ---- */
typedef enum tg_rl_key { TG_RL_KEY_CONSUMER = 0, TG_RL_KEY_CLIENT_IP, TG_RL_KEY_ROUTE,
                         TG_RL_KEY_HEADER, TG_RL_KEY_QUERY, TG_RL_KEY_JWT } tg_rl_key_t;
typedef enum tg_rl_store { TG_RL_STORE_LOCAL = 0, TG_RL_STORE_REDIS } tg_rl_store_t;

typedef struct tg_rate_limit_cfg {
    tg_rl_key_t key;
    const char *key_arg;   /* header name, query parameter or JWT claim; NULL otherwise */
    const char *key_text;  /* the key as written, for messages and dumps */
    uint64_t requests;     /* rate: `requests` per `window_ms` */
    uint64_t window_ms;    /* 1000 (/s), 60000 (/m), 3600000 (/h) or 86400000 (/d) */
    uint64_t burst;        /* extra requests allowed at once (nginx burst=N nodelay); 0 */
    tg_rl_store_t store;   /* local */
    const char *name;      /* `name:` (buckets shared by every entry of that name), or NULL */
} tg_rate_limit_cfg_t;

/* The top-level redis: section (rate limits with store: redis). */
typedef struct tg_redis_cfg {
    bool enabled;          /* the section exists */
    const char *address;   /* as written; default 127.0.0.1:6379 */
    const char *host;      /* host name or literal, or the socket path for unix: */
    uint16_t port;         /* 0 for unix: */
    const char *password;  /* NULL = no AUTH */
    uint64_t timeout_ms;   /* 50ms: the most a request waits for Redis */
    bool fail_open;        /* on_error: allow (true, default) | deny */
} tg_redis_cfg_t;

/* ---- security: consumers, auth, allow/deny, validate, match.json
 * (schema_security.c; docs/security.md) ---- */
typedef struct tg_json_match_cfg {
    const char *pointer;   /* RFC 6901 JSON Pointer, "" = the whole document */
    tg_hmatch_kind_t kind; /* exact (scalar as text), present, or ~regex on strings */
    const char *value;
    tg_regex_t *regex;
} tg_json_match_cfg_t;

typedef struct tg_consumer_cfg {
    const char *name;
    const char **groups;
    size_t ngroups;
    const char **api_keys;      /* as written: plain, or "sha256:<64 hex>" */
    size_t napi_keys;
    const char *basic_password; /* crypt(3) hash, or NULL */
} tg_consumer_cfg_t;

typedef enum tg_auth_method { TG_AUTH_JWT = 1, TG_AUTH_API_KEY, TG_AUTH_BASIC } tg_auth_method_t;

/* JWS algorithms (RFC 7518 §3.1, RFC 8037); none is never accepted. */
typedef enum tg_jwt_alg {
    TG_JWT_HS256 = 0, TG_JWT_HS384, TG_JWT_HS512, TG_JWT_RS256, TG_JWT_RS384, TG_JWT_RS512,
    TG_JWT_PS256, TG_JWT_PS384, TG_JWT_PS512, TG_JWT_ES256, TG_JWT_ES384, TG_JWT_EDDSA,
    TG_JWT_NALGS
} tg_jwt_alg_t;

typedef struct tg_jwt_cfg {
    const char *issuer;           /* NULL = not checked */
    const char **audiences;
    size_t naudiences;            /* 0 = not checked */
    uint32_t algorithms;          /* bit set of 1u << tg_jwt_alg_t */
    const char *jwks;             /* file path (resolved) or http(s) URL; NULL with secret */
    bool jwks_is_url;
    const char *jwks_ca;          /* PEM CA file (resolved): the only trust for an https jwks; NULL = system */
    const char *secret;           /* HS* shared secret */
    uint64_t clock_skew_ms;       /* 30s */
    tg_kv_t *claims_to_headers;   /* claim → header */
    size_t nclaims_to_headers;
    uint64_t jwks_refresh_ms;     /* 10m */
    const char *consumer_claim;   /* NULL: no consumer */
    const char **require;         /* claims that must be present; default [exp] */
    size_t nrequire;
    const char *realm;
} tg_jwt_cfg_t;

typedef struct tg_api_key_cfg {
    const char *header;           /* NULL = not read from a header */
    const char *query;            /* NULL = not read from the query */
    bool hide;                    /* remove before forwarding; default true */
    const char *realm;
} tg_api_key_cfg_t;

typedef struct tg_basic_cfg {
    const char *realm;
} tg_basic_cfg_t;

typedef struct tg_auth_cfg {
    bool enabled;
    tg_auth_method_t methods[3];  /* order of `any` (or of the keys) */
    size_t nmethods;
    bool optional;
    tg_jwt_cfg_t jwt;
    tg_api_key_cfg_t api_key;
    tg_basic_cfg_t basic;
} tg_auth_cfg_t;

typedef struct tg_acl_cfg {
    bool enabled;
    const char **groups;
    size_t ngroups;
    const char **scopes;
    size_t nscopes;
    tg_cidr_t *ip;
    size_t nip;
} tg_acl_cfg_t;

typedef struct tg_validate_cfg {
    bool enabled;
    const char **content_types;   /* lowercase media types "type/subtype" */
    size_t ncontent_types;
    const char *json_schema;      /* path (resolved against the config's folder) */
} tg_validate_cfg_t;

/* ---- response cache (schema_cache.c; docs/caching.md) ---- */
#define TG_CACHE_DEFAULT_MEMORY (256ull << 20) /* cache.memory when not given */
typedef enum tg_ckey_kind { TG_CKEY_METHOD = 0, TG_CKEY_SCHEME, TG_CKEY_HOST, TG_CKEY_PATH,
                            TG_CKEY_QUERY, TG_CKEY_HEADER, TG_CKEY_COOKIE, TG_CKEY_QUERY_ARG,
                            TG_CKEY_CONSUMER } tg_ckey_kind_t;

typedef struct tg_ckey_part {
    tg_ckey_kind_t kind;
    const char *arg;              /* header, cookie or query parameter name; NULL otherwise */
} tg_ckey_part_t;

typedef struct tg_cache_cfg {
    bool enabled;                 /* routes[].cache given */
    uint64_t ttl_ms;              /* freshness when the origin gives none; 0 = none */
    uint64_t max_object_bytes;    /* 1MiB: larger responses stream through unstored */
    tg_ckey_part_t *key;          /* default [method, host, path, query] */
    size_t nkey;
    uint32_t methods;             /* TG_M_* cached; default GET, HEAD */
    uint16_t *statuses;           /* default: the heuristically cacheable ones */
    size_t nstatuses;
    bool respect_origin;          /* true */
    uint64_t stale_while_revalidate_ms; /* 0 */
    uint64_t stale_if_error_ms;   /* 0 */
    const char *tags_header;      /* NULL = no tags */
    bool store_set_cookie;        /* false: responses with Set-Cookie are not stored */
    bool collapse;                /* true: concurrent misses wait for one fetch */
} tg_cache_cfg_t;

typedef struct tg_route_cfg {
    const char *name;     /* given, or "route-<index>" */
    size_t index;
    tg_match_cfg_t match;
    const tg_upstream_cfg_t *upstream; /* NULL when respond is used */
    bool has_respond;
    tg_respond_cfg_t respond;
    tg_rewrite_cfg_t rewrite;
    tg_header_ops_cfg_t request_headers;
    tg_header_ops_cfg_t response_headers;
    uint64_t response_timeout_ms;  /* 0 = the upstream's */
    uint64_t max_body_bytes;       /* 0 = server.limits.max_body_bytes */
    bool has_retries;
    uint32_t retry_attempts;       /* overrides upstream's when has_retries */
    bool websocket;                /* websocket: Upgrade (and RFC 8441) tunnelled */
    bool grpc_web;                 /* grpc_web: gRPC-Web translated to gRPC */
    tg_auth_cfg_t auth;            /* security (schema_security.c) */
    tg_acl_cfg_t allow, deny;
    tg_validate_cfg_t validate;
    tg_rate_limit_cfg_t *rate_limits; /* rate_limit: entries, all apply */
    size_t nrate_limits;
    tg_cache_cfg_t cache;          /* schema_cache.c */
} tg_route_cfg_t;

typedef struct tg_admin_cfg {
    bool enabled;         /* an admin: section exists */
    tg_listen_cfg_t listen; /* default 127.0.0.1:9901 */
    const char *token;    /* NULL = no token */
} tg_admin_cfg_t;

typedef struct tg_config {
    atomic_int refs;
    uint64_t generation;  /* set by the runtime when published */
    const char *path;     /* the file it was loaded from */
    tg_arena_t arena;     /* owns every string and array below */
    tg_regex_t **regexes; /* compiled regexes, freed with the snapshot */
    size_t nregexes;
    tg_server_cfg_t server;
    tg_admin_cfg_t admin;
    tg_redis_cfg_t redis;
    bool has_cache;                /* top-level cache: given (schema_cache.c) */
    uint64_t cache_memory;         /* cache.memory, TG_CACHE_DEFAULT_MEMORY */
    tg_upstream_cfg_t *upstreams;
    size_t nupstreams;
    tg_route_cfg_t *routes;
    size_t nroutes;
    tg_consumer_cfg_t *consumers;  /* security (schema_security.c) */
    size_t nconsumers;
    const char *htpasswd;          /* path (resolved), or NULL */
    tg_kv_t *htpasswd_users;       /* read at load: user → crypt(3) hash */
    size_t nhtpasswd_users;
} tg_config_t;

/* One problem found in a file, already formatted as
 * "file:line:col: key.path: message". */
typedef struct tg_config_error {
    char *text;           /* malloc'd, owned by the tg_config_errors_t */
} tg_config_error_t;

typedef struct tg_config_errors {
    tg_config_error_t *v; /* malloc'd */
    size_t n;
} tg_config_errors_t;

/* Loads and validates `path`. Returns a snapshot with refs == 1, or NULL with
 * every error found appended to *errs (the caller frees them with
 * tg_config_errors_free). Never exits, never prints. */
tg_config_t *tg_config_load(const char *path, tg_config_errors_t *errs);
/* The same from a string (for tests and the fuzzer); `name` is used in messages. */
tg_config_t *tg_config_load_string(const char *name, const char *yaml, size_t len,
                                   tg_config_errors_t *errs);
void tg_config_errors_free(tg_config_errors_t *errs);
void tg_config_errors_print(const tg_config_errors_t *errs, FILE *out);

tg_config_t *tg_config_retain(tg_config_t *c);
void tg_config_release(tg_config_t *c);

/* The effective configuration as JSON (for GET /config): the file's key
 * names and units with every default filled in, so the text is itself a
 * loadable config. Secrets (admin.token, credential-like header values) read
 * "[redacted]". Returns a malloc'd string the caller frees, NULL on OOM. */
char *tg_config_to_json(const tg_config_t *c);

/* Unit parsers, exported for reuse and tests. Return 0 or -1. */
int tg_parse_duration_ms(const char *s, uint64_t *out); /* "250ms" "5s" "2m" "1h" "1d" bare = s */
int tg_parse_size(const char *s, uint64_t *out);        /* "512" "16KiB" "10MiB" "1GiB" "KB/MB/GB" */
int tg_parse_cidr(const char *s, tg_cidr_t *out);       /* "10.0.0.0/8", "::1" (host = full len) */
int tg_parse_rate(const char *s, uint64_t *requests, uint64_t *window_ms); /* "100/s" "600/m" "/h" "/d" */
/* "host:port" "[v6]:port" ":port" "unix:/path" → sockaddr (host must be a
 * literal address or "localhost"; empty host = all interfaces). */
int tg_parse_listen_address(const char *s, struct sockaddr_storage *ss, socklen_t *len);
bool tg_cidr_contains(const tg_cidr_t *c, const struct sockaddr *sa);

#endif
