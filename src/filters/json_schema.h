/* A validator for a documented subset of JSON Schema 2020-12 (docs/security.md):
 * type, properties, required, additionalProperties, items, enum, const,
 * minimum/maximum (and the exclusive forms), minLength/maxLength, pattern
 * (PCRE2), minItems/maxItems, and $ref to "#" or "#/..." within the same
 * document. Annotations ($schema, $id, $defs, definitions, title,
 * description, default, examples, $comment) are accepted and ignored; any
 * other keyword is a compile error, so a schema never silently checks less
 * than it says.
 *
 * A compiled schema is immutable and may be used by many threads at once. */
#ifndef TG_FILTERS_JSON_SCHEMA_H
#define TG_FILTERS_JSON_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct tg_jschema tg_jschema_t;

/* Compiles `doc` (a reference is taken). NULL with a message in err. */
tg_jschema_t *tg_jschema_compile(json_t *doc, char *err, size_t errlen);
/* Reads and compiles a schema file. NULL with a message in err. */
tg_jschema_t *tg_jschema_load(const char *path, char *err, size_t errlen);
void tg_jschema_free(tg_jschema_t *s);

/* Checks `inst`. Returns true when valid; otherwise false with the JSON
 * Pointer of the failing instance location in ptr (for a missing required
 * member: the member's pointer) and a short reason. */
bool tg_jschema_validate(const tg_jschema_t *s, const json_t *inst, char *ptr, size_t ptrlen,
                         char *reason, size_t reasonlen);

#endif
