/* Loading YAML text for config unit tests, with the loader's errors
 * checked. The file name the errors carry is CFX_FILE ("t.yaml" unless the
 * test defines it before including). Header-only (static functions): each
 * test executable that includes it uses what it needs. */
#ifndef TG_TESTS_CONFIG_FIXTURE_H
#define TG_TESTS_CONFIG_FIXTURE_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "config/config.h"

#ifndef CFX_FILE
#define CFX_FILE "t.yaml"
#endif

static inline tg_config_t *load(const char *yaml, tg_config_errors_t *e)
{
    memset(e, 0, sizeof *e);
    return tg_config_load_string(CFX_FILE, yaml, strlen(yaml), e);
}

/* Asserts the load succeeds with no error; the caller frees the config. */
static inline tg_config_t *load_ok(const char *yaml)
{
    tg_config_errors_t e;
    tg_config_t *c = load(yaml, &e);
    for (size_t i = 0; i < e.n; i++)
        fprintf(stderr, "unexpected: %s\n", e.v[i].text);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_ptr_nonnull(c);
    tg_config_errors_free(&e);
    return c;
}

/* Asserts the load fails and one error reads exactly `want` (or, with
 * exact == false, contains it). Returns the number of errors. */
static inline size_t expect_err(const char *yaml, const char *want, bool exact)
{
    tg_config_errors_t e;
    tg_config_t *c = load(yaml, &e);
    ck_assert_ptr_null(c);
    bool found = false;
    for (size_t i = 0; i < e.n; i++)
        found |= exact ? strcmp(e.v[i].text, want) == 0 : strstr(e.v[i].text, want) != NULL;
    if (!found)
        for (size_t i = 0; i < e.n; i++)
            fprintf(stderr, "  got: %s\n", e.v[i].text);
    ck_assert_msg(found, "missing error: %s", want);
    size_t n = e.n;
    tg_config_errors_free(&e);
    return n;
}

#define EXPECT_EXACT(yaml, want) expect_err((yaml), (want), true)
#define EXPECT_SUB(yaml, want) expect_err((yaml), (want), false)

#endif
