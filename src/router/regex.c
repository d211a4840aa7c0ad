/* PCRE2 glue for the router: per-thread match data and a shared match
 * context with bounded limits.
 *
 * Why per thread: pcre2_match needs a match data block for its offsets (and,
 * since 10.41, it keeps the interpreter's backtracking frames there), so
 * creating one per call would allocate on every request. Each thread instead
 * keeps one block for its whole life: created on the thread's first regex use
 * (tg_router_build warms the building thread), reused by every later match,
 * freed by a pthread key destructor when the thread exits.
 *
 * Why limits: header, query and path values are the client's; a pattern
 * that backtracks badly must not let one request burn a core or a lot of
 * memory. Hitting a limit means "no match". */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

#include "router/router_int.h"

/* Backtracking steps and interpreter frame memory per match. Generous for
 * real route patterns over inputs of the sizes server.limits allows. */
#define RX_MATCH_LIMIT 1000000u
#define RX_HEAP_LIMIT_KIB 8192u

static pthread_once_t rx_once = PTHREAD_ONCE_INIT;
static pthread_key_t rx_key;
static bool rx_key_ok;
static pcre2_match_context *rx_mctx; /* read-only once set up; NULL = defaults */
static __thread pcre2_match_data *rx_md;

static void rx_md_destroy(void *md) { pcre2_match_data_free(md); }

static void rx_setup(void)
{
    rx_key_ok = pthread_key_create(&rx_key, rx_md_destroy) == 0;
    rx_mctx = pcre2_match_context_create(NULL);
    if (rx_mctx) {
        pcre2_set_match_limit(rx_mctx, RX_MATCH_LIMIT);
        pcre2_set_heap_limit(rx_mctx, RX_HEAP_LIMIT_KIB);
    }
}

static pcre2_match_data *rx_thread_md(void)
{
    if (rx_md != NULL)
        return rx_md;
    pthread_once(&rx_once, rx_setup);
    rx_md = pcre2_match_data_create(TG__RX_PAIRS, NULL);
    /* Registered so that the destructor frees it at thread exit; without a
     * key (practically never) it is kept until the process ends. */
    if (rx_md != NULL && rx_key_ok)
        pthread_setspecific(rx_key, rx_md);
    return rx_md;
}

int tg__regex_thread_warm(void) { return rx_thread_md() ? 0 : -1; }

void tg__regex_jit(tg_regex_t *re)
{
    if (re != NULL)
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
}

bool tg__regex_run(tg_regex_t *re, tg_str_t subject, const size_t **ov, uint32_t *npairs)
{
    pcre2_match_data *md = rx_thread_md();
    if (md == NULL || re == NULL)
        return false;
    /* A NULL subject is only legal with length 0; give pcre2 a real pointer. */
    PCRE2_SPTR s = (PCRE2_SPTR)(subject.p ? subject.p : "");
    int rc = pcre2_match(re, s, subject.len, 0, 0, md, rx_mctx);
    if (rc < 0)
        return false;
    if (ov != NULL) {
        *ov = pcre2_get_ovector_pointer(md);
        /* rc == 0: more groups than pairs; every pair we have is filled. */
        *npairs = rc == 0 ? pcre2_get_ovector_count(md) : (uint32_t)rc;
    }
    return true;
}
