/* Authorization (route `allow` and `deny`), after authentication. deny
 * wins: a request is refused when any deny condition holds (the client IP
 * is in a deny CIDR, the consumer is in a denied group, the token holds a
 * denied scope). Then every allow condition that is given must hold: the
 * consumer is in at least one of the groups, the token holds every listed
 * scope, the client IP is in one of the CIDRs. Refusals are 403 JSON. */
#include "filters/filter.h"

#include <stdio.h>
#include <string.h>
#include "proxy/filter_api.h"

/* The state is the route itself (the config outlives the filter states). */
static int build(const tg_config_t *cfg, const tg_route_cfg_t *route, void **state, char *err, size_t errlen)
{
    *state = route->allow.enabled || route->deny.enabled ? (void *)route : NULL;
    return 0;
}

static bool in_list(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        if (strcmp(v, list[i]) == 0)
            return true;
    return false;
}

static bool any_group(const tg_identity_t *id, const tg_acl_cfg_t *l)
{
    for (size_t i = 0; i < id->ngroups; i++)
        if (in_list(id->groups[i], l->groups, l->ngroups))
            return true;
    return false;
}

static bool has_scope(const tg_identity_t *id, const char *scope)
{
    for (size_t i = 0; i < id->nscopes; i++)
        if (strcmp(id->scopes[i], scope) == 0)
            return true;
    return false;
}

static bool ip_in(const tg_ex_request_t *rq, const tg_acl_cfg_t *l)
{
    for (size_t i = 0; i < l->nip; i++)
        if (tg_cidr_contains(&l->ip[i], rq->client_addr))
            return true;
    return false;
}

static bool denied(const tg_ex_request_t *rq, const tg_identity_t *id, const tg_acl_cfg_t *d)
{
    if (!d->enabled)
        return false;
    if (d->nip && ip_in(rq, d))
        return true;
    if (d->ngroups && any_group(id, d))
        return true;
    for (size_t i = 0; i < d->nscopes; i++)
        if (has_scope(id, d->scopes[i]))
            return true;
    return false;
}

static bool allowed(const tg_ex_request_t *rq, const tg_identity_t *id, const tg_acl_cfg_t *a)
{
    if (!a->enabled)
        return true;
    if (a->nip && !ip_in(rq, a))
        return false;
    if (a->ngroups && !any_group(id, a))
        return false;
    for (size_t i = 0; i < a->nscopes; i++)
        if (!has_scope(id, a->scopes[i]))
            return false;
    return true;
}

static tg_filter_ret_t on_request(tg_exchange_t *ex, void *state)
{
    const tg_ex_request_t *rq = tg_ex_request(ex);
    const tg_identity_t *id = tg_ex_identity(ex);
    if (denied(rq, id, &rq->route->deny) || !allowed(rq, id, &rq->route->allow)) {
        tg_ex_respond_error(ex, 403, "forbidden", NULL, 0);
        return TG_FILTER_DONE;
    }
    return TG_FILTER_CONTINUE;
}

const tg_filter_t tg_filter_acl = {
    .name = "acl",
    .build = build,
    .on_request = on_request,
};
