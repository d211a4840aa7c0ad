/* HTTP caching arithmetic and directive parsing (RFC 9111, RFC 5861), as pure
 * functions over bytes: no I/O, no allocation, no clock. The cache filter
 * (filters/cache*.c) feeds them the headers and the times; unit tests drive
 * them with tables (tests/unit/test_cache.c).
 *
 * Times are milliseconds since the Unix epoch (int64); "absent" is -1. */
#ifndef TG_STORE_CACHE_POLICY_H
#define TG_STORE_CACHE_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include "http/msg.h"
#include "util/str.h"

enum {
    TG_CC_NO_STORE = 1u << 0,
    TG_CC_NO_CACHE = 1u << 1,        /* also no-cache="field" (treated as unqualified) */
    TG_CC_PRIVATE = 1u << 2,         /* also private="field" */
    TG_CC_PUBLIC = 1u << 3,
    TG_CC_MUST_REVALIDATE = 1u << 4,
    TG_CC_PROXY_REVALIDATE = 1u << 5,
    TG_CC_ONLY_IF_CACHED = 1u << 6,
    TG_CC_MAX_STALE_ANY = 1u << 7,   /* max-stale without a value */
};

/* A Cache-Control field (all lines of it), parsed. Delta-seconds are
 * clamped to 2^31 (RFC 9111 §1.2.2); -1 = directive absent. */
typedef struct tg_cc {
    uint32_t flags;
    int64_t max_age, s_maxage, max_stale, min_fresh;
    int64_t stale_while_revalidate, stale_if_error;
} tg_cc_t;

void tg_cc_init(tg_cc_t *cc);
/* Adds the directives of one field line (call once per line). Unknown
 * directives are ignored; a malformed delta-seconds makes the directive
 * count as present with value 0 (the conservative reading). */
void tg_cc_parse(tg_cc_t *cc, tg_str_t value);
/* Parses every Cache-Control line of a header list. */
void tg_cc_from_headers(tg_cc_t *cc, const tg_header_t *h, size_t n);

/* HTTP-date (IMF-fixdate, RFC 850, asctime) → ms since the epoch, or -1. */
int64_t tg_http_date_parse(tg_str_t s);
/* ms since the epoch → IMF-fixdate into out (30 bytes with the NUL). */
void tg_http_date_format(int64_t ms, char out[30]);

/* Statuses that are heuristically cacheable (RFC 9110 §15.1). */
bool tg_cache_status_heuristic(int status);

/* What §4.2 needs from a stored response. */
typedef struct tg_fresh_in {
    int status;
    const tg_cc_t *cc;        /* the response's Cache-Control */
    int64_t date;             /* Date, -1 absent */
    int64_t expires;          /* Expires, -1 absent; an invalid value counts as the past (0) */
    int64_t last_modified;    /* -1 absent */
    int64_t age;              /* Age field value in ms, -1 absent */
    int64_t request_time;     /* when the request went upstream */
    int64_t response_time;    /* when the response head arrived */
    int64_t default_ttl;      /* route ttl (ms) for responses without explicit freshness; 0 = none */
} tg_fresh_in_t;

/* Freshness lifetime in ms for a shared cache (§4.2.1): s-maxage, max-age,
 * Expires - Date, then the route's ttl, then the Last-Modified heuristic
 * (10% of Date - Last-Modified, capped at one day) for heuristically
 * cacheable statuses (or `public`). 0 when none applies. */
int64_t tg_cache_freshness_lifetime(const tg_fresh_in_t *in);
/* corrected_initial_age of §4.2.3 in ms. */
int64_t tg_cache_initial_age(const tg_fresh_in_t *in);
/* True when the response carries explicit freshness (max-age, s-maxage, Expires). */
bool tg_cache_has_explicit_freshness(const tg_fresh_in_t *in);

/* §3.5: may a shared cache store a response to a request with Authorization? */
bool tg_cache_auth_storable(const tg_cc_t *resp_cc);

/* Entity-tag comparison for If-None-Match (weak comparison, §13.1.2 of RFC 9110):
 * true when the list `inm` ("*" or a list of tags) matches `etag`. */
bool tg_etag_list_matches(tg_str_t inm, tg_str_t etag);

/* Normalises an Accept-Encoding value for Vary matching: codings lowercased,
 * q=0 entries dropped, sorted and deduplicated, joined by ','. Returns the
 * length written (truncated to cap - 1; out is NUL-terminated). */
size_t tg_cache_normalize_ae(tg_str_t in, char *out, size_t cap);

#endif
