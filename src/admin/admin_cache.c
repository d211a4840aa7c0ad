/* POST /cache/purge on the admin listener: the cache's purge entry point
 * (filters/cache.h) behind the admin's token check. */
#include <stdlib.h>
#include "admin/admin_int.h"
#include "filters/cache.h"

void tg__admin_cache_purge(tg_admin_req_t *r)
{
    char *out = NULL;
    int status = tg_cache_purge_json(r->body, r->body_len, &out);
    if (status == 200 && out)
        tg__admin_reply_json(r, 200, out);
    else if (out)
        tg__admin_error(r, status, "invalid_purge", NULL);
    else
        tg__admin_error(r, 503, "out_of_memory", NULL);
    free(out);
}
