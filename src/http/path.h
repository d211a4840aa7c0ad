/* Request path normalisation: the path that routing, auth and rate limiting
 * decide on is exactly the path sent upstream. Pure function. */
#ifndef TG_HTTP_PATH_H
#define TG_HTTP_PATH_H

#include <stddef.h>

enum {
    TG_PATH_OK = 0,
    TG_PATH_ERR_BAD = -1,      /* not origin-form, invalid percent-escape, CTL, ... */
    TG_PATH_ERR_FORBIDDEN = -2 /* %2F %5C %00 or ".." climbing above "/" */
};

/* Normalises `in` (the path part only, no query) into out[0..cap):
 * percent-decodes unreserved characters (ALPHA DIGIT - . _ ~), uppercases the
 * hex of remaining escapes, merges repeated slashes, removes dot segments
 * (RFC 3986 §5.2.4). Rejected as TG_PATH_ERR_FORBIDDEN, because a backend
 * could read them as a different path than the one routed: %2F, %5C, %00,
 * ".." above "/", ';' (path parameters), and a segment ending in encoded
 * whitespace (%20, %09). Returns TG_PATH_OK and sets *outlen, or an error.
 * cap >= len suffices (normalisation never grows the path). */
int tg_path_normalize(const char *in, size_t len, char *out, size_t cap, size_t *outlen);

#endif
