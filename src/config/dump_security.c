/* The security keys in the effective configuration (tg_config_to_json, see
 * dump.c): consumers, htpasswd, route auth/allow/deny/validate and
 * match.json, with defaults filled in. Credentials (API keys, password
 * hashes, the JWT secret) read "[redacted]". Paths are the resolved ones. */
#include "config/internal.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>

#define REDACTED "[redacted]"

static json_t *strs(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *ms(uint64_t v)
{
    char b[32];
    if (v % 1000)
        snprintf(b, sizeof b, "%llums", (unsigned long long)v);
    else
        snprintf(b, sizeof b, "%llus", (unsigned long long)(v / 1000));
    return json_string(b);
}

static json_t *consumer(const tg_consumer_cfg_t *c)
{
    json_t *j = json_pack("{s:s, s:o}", "name", c->name, "groups", strs(c->groups, c->ngroups));
    if (j && c->napi_keys) {
        json_t *k = json_array();
        for (size_t i = 0; k && i < c->napi_keys; i++)
            json_array_append_new(k, json_string(REDACTED));
        json_object_set_new(j, "api_keys", k);
    }
    if (j && c->basic_password)
        json_object_set_new(j, "basic_password", json_string(REDACTED));
    return j;
}

void tg__dump_security_top(const tg_config_t *c, json_t *root)
{
    if (c->nconsumers) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < c->nconsumers; i++)
            json_array_append_new(a, consumer(&c->consumers[i]));
        json_object_set_new(root, "consumers", a);
    }
    if (c->htpasswd)
        json_object_set_new(root, "htpasswd", json_string(c->htpasswd));
}

static json_t *jwt(const tg_jwt_cfg_t *jc)
{
    json_t *j = json_object(), *algs = json_array(), *c2h = json_object();
    for (int a = 0; algs && a < TG_JWT_NALGS; a++) {
        static const char *const names[TG_JWT_NALGS] = { "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                                                          "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA" };
        if (jc->algorithms & (1u << a))
            json_array_append_new(algs, json_string(names[a]));
    }
    for (size_t i = 0; c2h && i < jc->nclaims_to_headers; i++)
        json_object_set_new(c2h, jc->claims_to_headers[i].name, json_string(jc->claims_to_headers[i].value));
    if (j == NULL)
        return NULL;
    if (jc->jwks)
        json_object_set_new(j, "jwks", json_string(jc->jwks));
    if (jc->secret)
        json_object_set_new(j, "secret", json_string(REDACTED));
    json_object_set_new(j, "algorithms", algs);
    if (jc->issuer)
        json_object_set_new(j, "issuer", json_string(jc->issuer));
    if (jc->naudiences)
        json_object_set_new(j, "audiences", strs(jc->audiences, jc->naudiences));
    json_object_set_new(j, "clock_skew", ms(jc->clock_skew_ms));
    json_object_set_new(j, "claims_to_headers", c2h);
    json_object_set_new(j, "jwks_refresh", ms(jc->jwks_refresh_ms));
    if (jc->consumer_claim)
        json_object_set_new(j, "consumer_claim", json_string(jc->consumer_claim));
    json_object_set_new(j, "require", strs(jc->require, jc->nrequire));
    json_object_set_new(j, "realm", json_string(jc->realm));
    return j;
}

static json_t *auth(const tg_auth_cfg_t *a)
{
    static const char *const names[] = { "", "jwt", "api_key", "basic" };
    json_t *j = json_object(), *any = json_array();
    if (j == NULL || any == NULL) {
        json_decref(j);
        json_decref(any);
        return NULL;
    }
    json_object_set_new(j, "any", any);
    for (size_t i = 0; i < a->nmethods; i++) {
        json_array_append_new(any, json_string(names[a->methods[i]]));
        if (a->methods[i] == TG_AUTH_JWT)
            json_object_set_new(j, "jwt", jwt(&a->jwt));
        else if (a->methods[i] == TG_AUTH_BASIC)
            json_object_set_new(j, "basic", json_pack("{s:s}", "realm", a->basic.realm));
        else {
            json_t *k = json_pack("{s:b, s:s}", "hide", a->api_key.hide, "realm", a->api_key.realm);
            if (k && a->api_key.header)
                json_object_set_new(k, "header", json_string(a->api_key.header));
            if (k && a->api_key.query)
                json_object_set_new(k, "query", json_string(a->api_key.query));
            json_object_set_new(j, "api_key", k);
        }
    }
    json_object_set_new(j, "optional", json_boolean(a->optional));
    return j;
}

static json_t *acl(const tg_acl_cfg_t *l)
{
    json_t *j = json_object();
    if (j && l->ngroups)
        json_object_set_new(j, "groups", strs(l->groups, l->ngroups));
    if (j && l->nscopes)
        json_object_set_new(j, "scopes", strs(l->scopes, l->nscopes));
    if (j && l->nip) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < l->nip; i++) {
            char ip[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN + 8];
            inet_ntop(l->ip[i].family, l->ip[i].addr, ip, sizeof ip);
            snprintf(b, sizeof b, "%s/%u", ip, l->ip[i].prefix_len);
            json_array_append_new(a, json_string(b));
        }
        json_object_set_new(j, "ip", a);
    }
    return j;
}

void tg__dump_security_route(const tg_route_cfg_t *r, json_t *j)
{
    if (r->auth.enabled)
        json_object_set_new(j, "auth", auth(&r->auth));
    if (r->allow.enabled)
        json_object_set_new(j, "allow", acl(&r->allow));
    if (r->deny.enabled)
        json_object_set_new(j, "deny", acl(&r->deny));
    if (r->validate.enabled) {
        json_t *v = json_object();
        if (v && r->validate.ncontent_types)
            json_object_set_new(v, "content_types", strs(r->validate.content_types, r->validate.ncontent_types));
        if (v && r->validate.json_schema)
            json_object_set_new(v, "json_schema", json_string(r->validate.json_schema));
        json_object_set_new(j, "validate", v);
    }
    json_t *m = json_object_get(j, "match");
    if (r->match.njson && m) {
        json_t *o = json_object();
        for (size_t i = 0; o && i < r->match.njson; i++) {
            const tg_json_match_cfg_t *jm = &r->match.json[i];
            json_t *v = jm->kind == TG_HMATCH_PRESENT ? json_string("present")
                      : jm->kind == TG_HMATCH_REGEX ? json_sprintf("~%s", jm->value) : json_string(jm->value);
            json_object_set_new(o, jm->pointer, v);
        }
        json_object_set_new(m, "json", o);
    }
}
