/* POST /cache/purge (filters/cache.h): by URL, path prefix or tag. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "filters/cache.h"
#include "store/cache.h"

static int answer(char **out, int status, const char *json)
{
    *out = strdup(json);
    return status;
}

static int bad(char **out, const char *reason)
{
    json_t *j = json_pack("{s:s, s:i, s:s}", "error", "invalid_purge", "status", 400, "reason", reason);
    *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return 400;
}

static size_t purge_tags(tg_cache_t *c, json_t *tags)
{
    size_t n = 0, i;
    json_t *t;
    json_array_foreach(tags, i, t)
        n += tg_cache_purge_tag(c, tg_str(json_string_value(t), json_string_length(t)));
    return n;
}

static bool all_strings(json_t *arr)
{
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t)
        if (!json_is_string(t) || json_string_length(t) == 0)
            return false;
    return true;
}

static int purge(tg_cache_t *c, json_t *j, size_t *n, char **out)
{
    json_t *url = json_object_get(j, "url"), *host = json_object_get(j, "host");
    json_t *prefix = json_object_get(j, "prefix"), *tag = json_object_get(j, "tag");
    json_t *tags = json_object_get(j, "tags");
    int given = (url != NULL) + (prefix != NULL) + (tag != NULL) + (tags != NULL);
    if (given != 1)
        return bad(out, "expected exactly one of url, prefix, tag, tags");
    if (host && (!url || !json_is_string(host)))
        return bad(out, "host goes with url, as a string");
    if (url) {
        if (!json_is_string(url) || json_string_value(url)[0] != '/')
            return bad(out, "url must be a path starting with /, with its query if any");
        tg_str_t h = host ? tg_str(json_string_value(host), json_string_length(host)) : TG_STR_NULL;
        *n = c ? tg_cache_purge_uri(c, h, tg_str(json_string_value(url), json_string_length(url))) : 0;
    } else if (prefix) {
        if (!json_is_string(prefix) || json_string_length(prefix) == 0)
            return bad(out, "prefix must be a non-empty string");
        *n = c ? tg_cache_purge_prefix(c, tg_str(json_string_value(prefix), json_string_length(prefix))) : 0;
    } else if (tag) {
        if (!json_is_string(tag) || json_string_length(tag) == 0)
            return bad(out, "tag must be a non-empty string");
        *n = c ? tg_cache_purge_tag(c, tg_str(json_string_value(tag), json_string_length(tag))) : 0;
    } else {
        if (!json_is_array(tags) || json_array_size(tags) == 0 || !all_strings(tags))
            return bad(out, "tags must be a non-empty list of strings");
        *n = c ? purge_tags(c, tags) : 0;
    }
    return 0;
}

int tg_cache_purge_json(const char *body, size_t len, char **out)
{
    *out = NULL;
    json_error_t e;
    json_t *j = json_loadb(body, len, 0, &e);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        return bad(out, "expected a JSON object");
    }
    size_t n = 0;
    int st = purge(tg_cache_get(), j, &n, out);
    json_decref(j);
    if (st)
        return st;
    char buf[48];
    snprintf(buf, sizeof buf, "{\"purged\":%zu}", n);
    return answer(out, 200, buf);
}
