/* A JWKS served at an http(s) URL, kept fresh by a fetcher thread of its
 * own (blocking I/O with timeouts there, never on an event loop). The
 * current key set is published under a mutex as a reference-counted
 * pointer; the last good set stays when a fetch fails. */
#ifndef TG_FILTERS_JWKS_FETCH_H
#define TG_FILTERS_JWKS_FETCH_H

#include <openssl/x509_vfy.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "filters/jwks.h"

#define TG_JWKS_KICK_INTERVAL_MS 10000u   /* unknown kid: refetch at most this often */
#define TG_JWKS_FETCH_TIMEOUT_MS 5000u    /* connect, TLS, and each read */

typedef struct tg_jwks_src tg_jwks_src_t;

/* A request waiting for a fetch. The fetcher thread sends `wake` (an
 * initialised uv_async_t of the waiter's loop) each time a fetch ends,
 * successful or not, until the waiter unregisters. */
typedef struct tg_jwks_waiter {
    uv_async_t *wake;
    struct tg_jwks_waiter *prev, *next; /* owned by the source */
} tg_jwks_waiter_t;

/* Reads a PEM file of CA certificates into a trust store (jwks_ca). NULL
 * with err when the file holds no readable certificate. */
X509_STORE *tg_jwks_ca_load(const char *path, char *err, size_t errlen);
/* Starts fetching `url` now and every refresh_ms. With ca_file, an https
 * server must chain to those CAs only (else the system trust store). NULL
 * with err. */
tg_jwks_src_t *tg_jwks_src_new(const char *url, const char *ca_file, uint64_t refresh_ms, char *err,
                               size_t errlen);
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
/* Registers w and returns true when a fetch is due or running (w is woken
 * when it ends); returns false, w not registered, when none is. *version is
 * the current set's. A registered waiter must unwatch before its handle is
 * closed and before the source is freed. */
bool tg_jwks_src_watch(tg_jwks_src_t *s, tg_jwks_waiter_t *w, uint64_t *version);
void tg_jwks_src_unwatch(tg_jwks_src_t *s, tg_jwks_waiter_t *w);

/* Fetches an http or https URL with GET into a malloc'd buffer (bounded to
 * max_bytes). https trusts `trust` alone, or the system store when NULL.
 * 0 with body and len set, or -1 with err. Blocking: fetcher threads only. */
int tg_http_get(const char *url, X509_STORE *trust, size_t max_bytes, unsigned timeout_ms, char **body,
                size_t *len, char *err, size_t errlen);

#endif
