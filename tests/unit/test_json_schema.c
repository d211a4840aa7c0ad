/* The JSON Schema subset (filters/json_schema.c) against a table of cases:
 * schema, instance, expected validity and, when invalid, the pointer. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "filters/json_schema.h"
#include "check_run.h"

typedef struct vcase {
    const char *schema;
    const char *instance;
    bool valid;
    const char *pointer;   /* when invalid */
} vcase_t;

static const vcase_t cases[] = {
    /* type */
    { "{\"type\":\"string\"}", "\"x\"", true, NULL },
    { "{\"type\":\"string\"}", "1", false, "" },
    { "{\"type\":\"integer\"}", "1.0", true, NULL },
    { "{\"type\":\"integer\"}", "1.5", false, "" },
    { "{\"type\":\"number\"}", "1.5", true, NULL },
    { "{\"type\":[\"null\",\"boolean\"]}", "null", true, NULL },
    { "{\"type\":[\"null\",\"boolean\"]}", "0", false, "" },
    { "true", "{\"a\":1}", true, NULL },
    { "false", "1", false, "" },
    /* objects */
    { "{\"required\":[\"a\",\"b\"]}", "{\"a\":1}", false, "/b" },
    { "{\"properties\":{\"a\":{\"type\":\"string\"}}}", "{\"a\":2}", false, "/a" },
    { "{\"additionalProperties\":false,\"properties\":{\"a\":{}}}", "{\"a\":1,\"b\":2}", false, "/b" },
    { "{\"additionalProperties\":{\"type\":\"integer\"}}", "{\"x\":1,\"y\":\"2\"}", false, "/y" },
    { "{\"properties\":{\"a/b\":{\"type\":\"integer\"},\"c~d\":{\"type\":\"integer\"}}}", "{\"a/b\":\"x\"}", false, "/a~1b" },
    { "{\"properties\":{\"c~d\":{\"type\":\"integer\"}}}", "{\"c~d\":\"x\"}", false, "/c~0d" },
    { "{\"required\":[\"a\"]}", "[1]", true, NULL }, /* required applies to objects only */
    /* arrays */
    { "{\"items\":{\"type\":\"integer\"}}", "[1,2,\"3\"]", false, "/2" },
    { "{\"minItems\":2}", "[1]", false, "" },
    { "{\"maxItems\":1}", "[1,2]", false, "" },
    { "{\"items\":{\"properties\":{\"q\":{\"minimum\":1}}}}", "[{\"q\":1},{\"q\":0}]", false, "/1/q" },
    /* enum, const */
    { "{\"enum\":[\"a\",1,null]}", "null", true, NULL },
    { "{\"enum\":[\"a\",1,null]}", "\"b\"", false, "" },
    { "{\"const\":{\"k\":[1]}}", "{\"k\":[1]}", true, NULL },
    { "{\"const\":3}", "4", false, "" },
    /* numbers */
    { "{\"minimum\":1,\"maximum\":10}", "10", true, NULL },
    { "{\"minimum\":1,\"maximum\":10}", "11", false, "" },
    { "{\"exclusiveMinimum\":1}", "1", false, "" },
    { "{\"exclusiveMaximum\":1.5}", "1.4", true, NULL },
    /* strings */
    { "{\"minLength\":2}", "\"\\u00e9\"", false, "" },   /* one code point, two bytes */
    { "{\"maxLength\":1}", "\"\\u00e9\"", true, NULL },
    { "{\"pattern\":\"^[a-z]+$\"}", "\"abc\"", true, NULL },
    { "{\"pattern\":\"^[a-z]+$\"}", "\"abC\"", false, "" },
    { "{\"pattern\":\"b\"}", "\"abc\"", true, NULL },     /* not anchored */
    { "{\"pattern\":\"^x\"}", "5", true, NULL },         /* applies to strings only */
    /* $ref */
    { "{\"$defs\":{\"p\":{\"type\":\"integer\"}},\"properties\":{\"a\":{\"$ref\":\"#/$defs/p\"}}}", "{\"a\":\"x\"}", false, "/a" },
    { "{\"definitions\":{\"n\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#/definitions/n\"},\"v\":{\"type\":\"integer\"}}}},\"$ref\":\"#/definitions/n\"}",
      "{\"next\":{\"next\":{\"v\":\"x\"}}}", false, "/next/next/v" },
    /* annotations are accepted */
    { "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"title\":\"t\",\"description\":\"d\",\"type\":\"object\"}", "{}", true, NULL },
};

static const char *const bad_schemas[] = {
    "{\"oneOf\":[{}]}",               /* unsupported keyword */
    "{\"type\":\"text\"}",
    "{\"required\":\"a\"}",
    "{\"minLength\":-1}",
    "{\"pattern\":\"(\"}",
    "{\"$ref\":\"#/nope\"}",
    "{\"$ref\":\"http://example.com/s.json\"}",
    "{\"properties\":{\"a\":3}}",
    "[1]",
};

START_TEST(test_table)
{
    const vcase_t *c = &cases[_i];
    json_error_t je;
    json_t *sdoc = json_loads(c->schema, JSON_DECODE_ANY, &je);
    json_t *inst = json_loads(c->instance, JSON_DECODE_ANY, &je);
    ck_assert_ptr_nonnull(sdoc);
    ck_assert_ptr_nonnull(inst);
    char err[256], ptr[256], reason[256];
    tg_jschema_t *s = tg_jschema_compile(sdoc, err, sizeof err);
    ck_assert_msg(s != NULL, "case %d: %s", _i, err);
    bool ok = tg_jschema_validate(s, inst, ptr, sizeof ptr, reason, sizeof reason);
    ck_assert_msg(ok == c->valid, "case %d: valid=%d reason=%s", _i, ok, reason);
    if (!ok) {
        ck_assert_msg(strcmp(ptr, c->pointer) == 0, "case %d: pointer %s, wanted %s", _i, ptr, c->pointer);
        ck_assert(reason[0] != '\0');
    }
    tg_jschema_free(s);
    json_decref(sdoc);
    json_decref(inst);
}
END_TEST

START_TEST(test_bad_schemas)
{
    json_t *sdoc = json_loads(bad_schemas[_i], JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(sdoc);
    char err[256] = "";
    tg_jschema_t *s = tg_jschema_compile(sdoc, err, sizeof err);
    ck_assert_msg(s == NULL, "bad schema %d compiled", _i);
    ck_assert(err[0] != '\0');
    json_decref(sdoc);
}
END_TEST

START_TEST(test_ref_cycle_is_bounded)
{
    json_t *sdoc = json_loads("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}", 0, NULL);
    char err[256], ptr[64], reason[128];
    tg_jschema_t *s = tg_jschema_compile(sdoc, err, sizeof err);
    ck_assert_ptr_nonnull(s);
    json_t *inst = json_integer(1);
    ck_assert(!tg_jschema_validate(s, inst, ptr, sizeof ptr, reason, sizeof reason));
    tg_jschema_free(s);
    json_decref(inst);
    json_decref(sdoc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json_schema");
    TCase *tc = tcase_create("validate");
    tcase_add_loop_test(tc, test_table, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_loop_test(tc, test_bad_schemas, 0, (int)(sizeof bad_schemas / sizeof bad_schemas[0]));
    tcase_add_test(tc, test_ref_cycle_is_bounded);
    suite_add_tcase(s, tc);
    return tg_check_run(s);
}
