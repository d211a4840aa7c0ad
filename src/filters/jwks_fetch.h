/* A JWKS served at an http(s) URL, kept fresh by a fetcher thread of its
 * own (blocking I/O with timeouts there, never on an event loop). The
 * current key set is published under a mutex as a reference-counted
 * pointer; the last good set stays when a fetch fails. */
#ifndef TG_FILTERS_JWKS_FETCH_H
#define TG_FILTERS_JWKS_FETCH_H

#include <stdbool.h>
#include <stdint.h>
#include "filters/jwks.h"

#define TG_JWKS_KICK_INTERVAL_MS 10000u   /* unknown kid: refetch at most this often */
#define TG_JWKS_FETCH_TIMEOUT_MS 5000u    /* connect, TLS, and each read */

typedef struct tg_jwks_src tg_jwks_src_t;

/* Starts fetching `url` now and every refresh_ms. NULL with err. */
tg_jwks_src_t *tg_jwks_src_new(const char *url, uint64_t refresh_ms, char *err, size_t errlen);
/* Stops; the thread finishes its current fetch (if any) and frees it all. */
void tg_jwks_src_free(tg_jwks_src_t *s);
/* The current set (retained: release it), or NULL when never fetched.
 * *version changes whenever a new set is published. */
tg_jwks_t *tg_jwks_src_get(tg_jwks_src_t *s, uint64_t *version);
/* True while a fetch is due or running (waiting for it is worthwhile). */
bool tg_jwks_src_busy(tg_jwks_src_t *s);
/* Asks for a refetch (a kid was not found); ignored within
 * TG_JWKS_KICK_INTERVAL_MS of the last refetch asked this way (the periodic
 * fetches do not count). Returns true when a fetch
 * is now due or running. */
bool tg_jwks_src_kick(tg_jwks_src_t *s);

/* Fetches an http or https URL with GET into a malloc'd buffer (bounded to
 * max_bytes). 0 with body and len set, or -1 with err. Blocking: fetcher threads
 * only. */
int tg_http_get(const char *url, size_t max_bytes, unsigned timeout_ms, char **body, size_t *len, char *err,
                size_t errlen);

#endif
