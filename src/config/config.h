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
typedef struct tg_listen_cfg {
    const char *address;        /* as written */
    struct sockaddr_storage addr; /* resolved at load; unix paths use sockaddr_un */
    socklen_t addr_len;
    bool has_tls;               /* tls: given (not served yet by this build: load error) */
} tg_listen_cfg_t;

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

typedef struct tg_upstream_cfg {
    const char *name;
    size_t index;                 /* position in tg_config_t.upstreams */
    tg_server_addr_cfg_t *servers;
    size_t nservers;
    tg_balance_t balance;
    const char *hash_key;         /* as written, NULL unless balance: hash */
    tg_up_protocol_t protocol;
    uint32_t keepalive_max_idle;  /* 64 */
    uint64_t keepalive_idle_timeout_ms; /* 60s */
    uint64_t connect_timeout_ms;  /* 2s */
    uint64_t response_timeout_ms; /* 30s */
    uint64_t idle_timeout_ms;     /* 60s: pooled connection unused time */
    uint32_t retry_attempts;      /* 0 without retries:; retries: without attempts: = 2 */
    uint32_t retry_on;            /* TG_RETRY_* */
    uint32_t retry_budget_pct;    /* 20 */
    bool has_health_check;        /* always false in this build: health_check: is refused
                                     (config/features.c) */
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
    tg_upstream_cfg_t *upstreams;
    size_t nupstreams;
    tg_route_cfg_t *routes;
    size_t nroutes;
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
/* "host:port" "[v6]:port" ":port" "unix:/path" → sockaddr (host must be a
 * literal address or "localhost"; empty host = all interfaces). */
int tg_parse_listen_address(const char *s, struct sockaddr_storage *ss, socklen_t *len);
bool tg_cidr_contains(const tg_cidr_t *c, const struct sockaddr *sa);

#endif
