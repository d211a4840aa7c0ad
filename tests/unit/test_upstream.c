/* Unit tests for the upstream balancer (smooth weighted round robin). */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include "upstream/upstream.h"
#include "check_run.h"

typedef struct fixture {
    tg_upstream_cfg_t cfg;
    tg_server_addr_cfg_t scfg[8];
    tg_upstream_server_t srv[8];
    tg_upstream_t up;
    int64_t current[8];
} fixture_t;

static void setup_fixture(fixture_t *f, const uint32_t *weights, const bool *backup, size_t n)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        f->scfg[i].weight = weights[i];
        f->scfg[i].backup = backup ? backup[i] : false;
        f->srv[i].cfg = &f->scfg[i];
        f->srv[i].index = i;
        f->srv[i].naddrs = 1; /* usable */
    }
    f->cfg.nservers = n;
    f->up.cfg = &f->cfg;
    f->up.servers = f->srv;
    f->up.nservers = n;
}

START_TEST(swrr_nginx_sequence)
{
    /* nginx's documented example: weights 5,1,1 give a a b a c a a. */
    fixture_t f;
    const uint32_t w[] = { 5, 1, 1 };
    setup_fixture(&f, w, NULL, 3);
    const int want[] = { 0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0 };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        ck_assert_int_eq(tg_swrr_pick(&f.up, f.current, NULL), want[i]);
}
END_TEST

START_TEST(swrr_exact_shares)
{
    fixture_t f;
    const uint32_t w[] = { 1, 2, 3 };
    setup_fixture(&f, w, NULL, 3);
    int count[3] = { 0 };
    for (int i = 0; i < 600; i++)
        count[tg_swrr_pick(&f.up, f.current, NULL)]++;
    ck_assert_int_eq(count[0], 100);
    ck_assert_int_eq(count[1], 200);
    ck_assert_int_eq(count[2], 300);
}
END_TEST

START_TEST(swrr_skip_and_backup)
{
    fixture_t f;
    const uint32_t w[] = { 1, 1, 1 };
    const bool b[] = { false, false, true };
    setup_fixture(&f, w, b, 3);
    for (int i = 0; i < 10; i++)
        ck_assert_int_ne(tg_swrr_pick(&f.up, f.current, NULL), 2); /* backup idle */
    uint8_t skip[3] = { 1, 0, 0 };
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tg_swrr_pick(&f.up, f.current, skip), 1);
    skip[1] = 1;
    ck_assert_int_eq(tg_swrr_pick(&f.up, f.current, skip), 2); /* only the backup is left */
    skip[2] = 1;
    ck_assert_int_eq(tg_swrr_pick(&f.up, f.current, skip), -1);
}
END_TEST

START_TEST(swrr_unresolved_server_skipped)
{
    fixture_t f;
    const uint32_t w[] = { 1, 1 };
    setup_fixture(&f, w, NULL, 2);
    f.srv[0].naddrs = 0;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tg_swrr_pick(&f.up, f.current, NULL), 1);
}
END_TEST

START_TEST(server_addr_rotates)
{
    fixture_t f;
    const uint32_t w[] = { 1 };
    setup_fixture(&f, w, NULL, 1);
    tg_upstream_server_t *s = &f.srv[0];
    s->naddrs = 2;
    ((struct sockaddr_in *)&s->addrs[0])->sin_port = 1;
    ((struct sockaddr_in *)&s->addrs[1])->sin_port = 2;
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert(tg_upstream_server_addr(s, &ss, &len));
    int a = ((struct sockaddr_in *)&ss)->sin_port;
    ck_assert(tg_upstream_server_addr(s, &ss, &len));
    int b = ((struct sockaddr_in *)&ss)->sin_port;
    ck_assert_int_ne(a, b);
    s->naddrs = 0;
    ck_assert(!tg_upstream_server_addr(s, &ss, &len));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("balancer");
    tcase_add_test(tc, swrr_nginx_sequence);
    tcase_add_test(tc, swrr_exact_shares);
    tcase_add_test(tc, swrr_skip_and_backup);
    tcase_add_test(tc, swrr_unresolved_server_skipped);
    tcase_add_test(tc, server_addr_rotates);
    suite_add_tcase(s, tc);
    return tg_check_run(s);
}
