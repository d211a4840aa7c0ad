/* The one table of configuration features that the contract defines but this
 * build does not implement yet.
 *
 * A key (value == NULL) or a value listed here is recognised — never "unknown
 * key" — and rejected with "not supported by this build yet". Silently
 * ignoring such a key would be dangerous: a dropped `auth:` serves the route
 * without authentication. Enabling a feature = implement its handler (or enum
 * value) in the section's table, then delete its line here. This table is
 * consulted before the section tables, so a line here wins over a handler. */
#include "config/internal.h"

#include <string.h>

static const struct feature {
    const char *section; /* tg__schema_t.name of the section */
    const char *key;
    const char *value;   /* NULL = the whole key */
} unsupported[] = {
    /* top level */
    { "", "tracing", NULL },
    /* listeners: automatic certificates (docs/tls.md) */
    { "server.listen[].tls", "acme", NULL },
    /* upstreams */
    /* routes */
    { "routes[]", "cors", NULL },
    { "routes[]", "compress", NULL },
};

#define NFEATURES (sizeof unsupported / sizeof unsupported[0])

bool tg__feature_key_unsupported(const char *section, const char *key)
{
    for (size_t i = 0; i < NFEATURES; i++)
        if (unsupported[i].value == NULL && strcmp(unsupported[i].section, section) == 0 &&
            strcmp(unsupported[i].key, key) == 0)
            return true;
    return false;
}

bool tg__feature_value_unsupported(const char *section, const char *key, const char *value)
{
    for (size_t i = 0; i < NFEATURES; i++)
        if (unsupported[i].value != NULL && strcmp(unsupported[i].section, section) == 0 &&
            strcmp(unsupported[i].key, key) == 0 && strcmp(unsupported[i].value, value) == 0)
            return true;
    return false;
}

void tg__feature_keys(const char *section, const char **cands, size_t *n, size_t cap)
{
    for (size_t i = 0; i < NFEATURES && *n < cap; i++)
        if (unsupported[i].value == NULL && strcmp(unsupported[i].section, section) == 0)
            cands[(*n)++] = unsupported[i].key;
}
