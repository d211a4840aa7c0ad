/* Unit tests for runtime/deadline.c on a real libuv loop: a deadline never
 * fires early, a later set or a clear costs no re-arm, an earlier set
 * re-arms at once. */
#include <check.h>
#include <uv.h>
#include "runtime/deadline.h"
#include "check_run.h"

typedef struct probe {
    int fired;
    uint64_t at;       /* loop time of the last callback */
} probe_t;

static void on_due(tg_deadline_t *d)
{
    probe_t *p = tg_deadline_data(d);
    p->fired++;
    p->at = uv_now(d->timer.loop);
}

static void run_until(uv_loop_t *loop, const probe_t *p, int fired)
{
    while (p->fired < fired && uv_run(loop, UV_RUN_ONCE))
        ;
}

static void close_loop(uv_loop_t *loop, tg_deadline_t *d)
{
    uv_close(tg_deadline_handle(d), NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

START_TEST(fires_once_not_early)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    probe_t p = { 0 };
    tg_deadline_t d;
    tg_deadline_init(&d, &loop, on_due, &p);
    uint64_t t0 = uv_now(&loop);
    tg_deadline_set(&d, 30);
    run_until(&loop, &p, 1);
    ck_assert_int_eq(p.fired, 1);
    ck_assert_uint_ge(p.at, t0 + 30);
    ck_assert(!tg_deadline_pending(&d));
    ck_assert_int_eq(uv_run(&loop, UV_RUN_NOWAIT), 0); /* nothing left armed */
    ck_assert_int_eq(p.fired, 1);
    close_loop(&loop, &d);
}
END_TEST

START_TEST(later_set_is_lazy_and_exact)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    probe_t p = { 0 };
    tg_deadline_t d;
    tg_deadline_init(&d, &loop, on_due, &p);
    tg_deadline_set(&d, 20);
    uint64_t armed = d.armed_at;
    uint64_t t0 = uv_now(&loop);
    tg_deadline_set(&d, 80); /* later: the uv timer stays where it was */
    ck_assert_uint_eq(d.armed_at, armed);
    run_until(&loop, &p, 1);
    ck_assert_int_eq(p.fired, 1);
    ck_assert_uint_ge(p.at, t0 + 80); /* the early wake-up re-armed, did not fire */
    close_loop(&loop, &d);
}
END_TEST

START_TEST(earlier_set_rearms)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    probe_t p = { 0 };
    tg_deadline_t d;
    tg_deadline_init(&d, &loop, on_due, &p);
    tg_deadline_set(&d, 60000);
    uint64_t t0 = uv_now(&loop);
    tg_deadline_set(&d, 10);
    ck_assert_uint_le(d.armed_at, t0 + 10);
    run_until(&loop, &p, 1);
    ck_assert_int_eq(p.fired, 1);
    ck_assert_uint_lt(p.at, t0 + 60000);
    close_loop(&loop, &d);
}
END_TEST

START_TEST(clear_suppresses_and_set_revives)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    probe_t p = { 0 };
    tg_deadline_t d;
    tg_deadline_init(&d, &loop, on_due, &p);
    tg_deadline_set(&d, 10);
    tg_deadline_clear(&d);
    ck_assert(!tg_deadline_pending(&d));
    uv_run(&loop, UV_RUN_DEFAULT); /* the armed timer runs out, calls nothing */
    ck_assert_int_eq(p.fired, 0);
    tg_deadline_set(&d, 0); /* 0 = the next loop iteration */
    run_until(&loop, &p, 1);
    ck_assert_int_eq(p.fired, 1);
    close_loop(&loop, &d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deadline");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, fires_once_not_early);
    tcase_add_test(tc, later_set_is_lazy_and_exact);
    tcase_add_test(tc, earlier_set_rearms);
    tcase_add_test(tc, clear_suppresses_and_set_revives);
    suite_add_tcase(s, tc);
    return tg_check_run(s);
}
