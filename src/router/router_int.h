/* Router internals shared by the files of src/router/ (and by the router's
 * unit test and fuzzer, which check the index against a plain scan). Nothing
 * here is part of the module's public face (router.h). */
#ifndef TG_ROUTER_ROUTER_INT_H
#define TG_ROUTER_ROUTER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "router/router.h"

/* Capture pairs kept in each thread's match data: $0..$9 for rewrites. Plain
 * matching needs only pair 0; pcre2 reports "matched" (rc 0) when a pattern
 * has more groups than fit. */
#define TG__RX_PAIRS 10

/* Decoded query values handed to a regex live in a stack buffer this big;
 * longer values that contain escapes do not match a regex (see match.c). */
#define TG__QUERY_DECODE_MAX 2048

/* Bits of TG_M_* for a request method token (case-sensitive, RFC 9110 §9.1),
 * or 0 for an extension method. */
unsigned tg__method_bit(tg_str_t method);

/* True when host pattern `pattern` (exact name or "*.suffix") admits `host`.
 * The single definition of host semantics: the index is built from it. */
bool tg__host_pattern_matches(const char *pattern, tg_str_t host);

/* Host pattern with case folded and one trailing dot dropped, written to
 * out[0..cap). Returns its length or -1 when it does not fit. */
int tg__host_pattern_fold(const char *pattern, char *out, size_t cap);

/* True when any of the route's host patterns admits `host` (nhosts 0: any). */
bool tg__route_host_ok(const tg_match_cfg_t *m, tg_str_t host);

/* Every matcher but host (the index has already vouched for the host).
 * `method_bit` is tg__method_bit(in->method), computed once per request. */
bool tg__route_rest_ok(const tg_match_cfg_t *m, const tg_route_input_t *in, unsigned method_bit);

/* True when `path` starts with `prefix` at a segment boundary: "/a" admits
 * "/a" and "/a/..." but not "/ab"; "/" and a prefix ending in '/' admit any
 * path that starts with them. */
bool tg__prefix_ok(tg_str_t prefix, tg_str_t path);

/* Runs `re` over `subject` with this thread's match data. Returns true on a
 * match and, when `ov` is given, points it at the offset vector and sets
 * *npairs to the number of valid pairs (<= TG__RX_PAIRS; pairs may still be
 * PCRE2_UNSET). Errors (match or heap limit hit, OOM of the one-time
 * per-thread match data) count as "no match". */
bool tg__regex_run(tg_regex_t *re, tg_str_t subject, const size_t **ov, uint32_t *npairs);

/* Process-wide regex setup (pthread_once inside) plus this thread's match
 * data. Called by tg_router_build so the building thread never allocates at
 * match time; other threads allocate their match data on first regex use.
 * Returns 0, or -1 on OOM. */
int tg__regex_thread_warm(void);

/* JIT-compiles `re` when PCRE2 supports it (idempotent; failure leaves the
 * interpreter in charge). Only while nobody matches with `re` yet. */
void tg__regex_jit(tg_regex_t *re);

/* The reference matcher: every route in file order, no index. Used by tests
 * and the fuzzer to check tg_router_match. */
const tg_route_cfg_t *tg__router_match_linear(const tg_router_t *r, const tg_route_input_t *in);

#endif
