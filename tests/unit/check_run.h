/* The one main() body of every Check unit test: run the suite, report,
 * exit non-zero when any test failed. Header-only (static inline). */
#ifndef TG_TESTS_CHECK_RUN_H
#define TG_TESTS_CHECK_RUN_H

#include <check.h>
#include <stdlib.h>

static inline int tg_check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
