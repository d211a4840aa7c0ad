/* Hooks that let a filter answer from memory it shares with others (cache
 * hits: borrowed bodies) and replace the upstream's answer (a 304 that
 * refreshes a stored response, a failure answered with a stale one).
 *
 * The exchange calls tg__ex_subst_head for every final upstream head and
 * tg__ex_subst_error before answering 502/503/504. A claimed exchange keeps
 * reading the upstream response (discarding its body) so the connection
 * goes back to the pool, then calls tg__ex_subst_respond from its end. */
#include "proxy/exchange_int.h"

void tg_ex_set_substitute(tg_exchange_t *ex, const tg_ex_subst_t *s, void *arg)
{
    ex->subst = s;
    ex->subst_arg = arg;
}

bool tg__ex_subst_head(tg_exchange_t *ex, const tg_response_t *resp)
{
    if (ex->subst == NULL || ex->subst_claimed || ex->resp_head_sent)
        return false;
    if (!ex->subst->claim(ex, ex->subst_arg, resp, 0))
        return false;
    ex->subst_claimed = true;
    return true;
}

void tg__ex_subst_respond(tg_exchange_t *ex)
{
    const tg_ex_subst_t *s = ex->subst;
    ex->subst = NULL; /* once */
    s->respond(ex, ex->subst_arg);
}

bool tg__ex_subst_error(tg_exchange_t *ex, int err)
{
    if (ex->subst == NULL || ex->resp_head_sent)
        return false;
    if (!ex->subst_claimed && !ex->subst->claim(ex, ex->subst_arg, NULL, err))
        return false;
    ex->subst_claimed = true;
    tg__ex_subst_respond(ex);
    return true;
}

void tg__ex_release_borrowed(tg_exchange_t *ex)
{
    void (*fn)(void *) = ex->body_release;
    ex->body_release = NULL;
    if (fn)
        fn(ex->body_release_arg);
}

void tg_ex_respond_borrowed(tg_exchange_t *ex, int status, const tg_header_t *h, size_t n,
                            const char *body, size_t len, void (*release)(void *), void *arg)
{
    tg__ex_release_borrowed(ex); /* at most one borrowed answer per exchange */
    ex->body_release = release;
    ex->body_release_arg = arg;
    /* tg__ex_respond copies the array of slices (filters edit that copy);
     * the bytes they point to stay borrowed until tg__ex_finish. */
    tg__ex_respond(ex, status, h, n, body ? body : "", body ? len : 0, NULL);
}
