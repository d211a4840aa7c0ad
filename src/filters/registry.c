#include "filters/filter.h"
#include "filters/cache.h"
#include "filters/ratelimit.h"
#include "filters/security.h"

#include <stdio.h>
#include <stdlib.h>

/* Phase order of the config contract: limits/validate → auth → allow/deny →
 * rate_limit → cache lookup → request headers → upstream → response headers. */
const tg_filter_t *const tg_filters[] = {
    &tg_filter_validate,
    &tg_filter_auth,
    &tg_filter_acl,
    /* auth, allow/deny go above this line; cache below it */
    &tg_filter_ratelimit,
    &tg_filter_cache, /* last request filter: answers only what the filters above allowed */
    NULL, /* keeps the array non-empty until the first filter lands */
};
const size_t tg_nfilters = sizeof tg_filters / sizeof *tg_filters - 1;

int tg_filter_states_build(tg_filter_states_t *fs, const tg_config_t *cfg, char *err, size_t errlen)
{
    fs->nroutes = cfg->nroutes;
    fs->v = NULL;
    if (tg_nfilters == 0 || cfg->nroutes == 0)
        return 0;
    fs->v = calloc(cfg->nroutes * tg_nfilters, sizeof *fs->v);
    if (fs->v == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t r = 0; r < cfg->nroutes; r++) {
        for (size_t f = 0; f < tg_nfilters; f++) {
            char msg[256] = "";
            if (tg_filters[f]->build(cfg, &cfg->routes[r], &fs->v[r * tg_nfilters + f], msg, sizeof msg) < 0) {
                snprintf(err, errlen, "routes[%zu] (%s): %s: %s", r, cfg->routes[r].name, tg_filters[f]->name, msg);
                tg_filter_states_free(fs);
                return -1;
            }
        }
    }
    return 0;
}

void tg_filter_states_free(tg_filter_states_t *fs)
{
    if (fs->v == NULL)
        return;
    for (size_t r = 0; r < fs->nroutes; r++)
        for (size_t f = 0; f < tg_nfilters; f++)
            if (fs->v[r * tg_nfilters + f] && tg_filters[f]->free_state)
                tg_filters[f]->free_state(fs->v[r * tg_nfilters + f]);
    free(fs->v);
    fs->v = NULL;
}
