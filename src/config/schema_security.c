/* The security keys: top-level consumers and htpasswd, route auth, allow,
 * deny, validate and match.json (docs/security.md). Files named here (the
 * htpasswd file, JWKS files, JSON schemas) are read at load time, so a bad
 * file is a load error with the key's position, and a reload re-reads them. */
#include "config/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "filters/json_schema.h"
#include "filters/jwks.h"
#include "filters/jwks_fetch.h"

#define TG__HTPASSWD_MAX_BYTES (4u << 20)

/* A string or list of non-empty strings into a fresh array. */
static bool str_list(tg__ctx_t *cx, tg__node_t *v, const char ***out, size_t *n)
{
    tg__node_t **items;
    size_t count;
    *n = 0;
    if (!tg__list(cx, v, true, &items, &count))
        return false;
    *out = tg__alloc_array(cx, count, sizeof **out);
    if (*out == NULL)
        return false;
    for (size_t i = 0; i < count; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        const char *s;
        if (tg__str_nonempty(cx, items[i], &s))
            (*out)[(*n)++] = s;
        tg__path_pop(cx, mark);
    }
    return *n == count;
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return s[n] == '\0';
}

/* crypt(3) schemes libcrypt verifies and that are not broken by design. */
static const char *hash_problem(const char *h)
{
    static const char *const ok[] = { "$2a$", "$2b$", "$2y$", "$5$", "$6$", "$y$", "$7$", "$gy$" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strncmp(h, ok[i], strlen(ok[i])) == 0)
            return NULL;
    if (strncmp(h, "$apr1$", 6) == 0 || strncmp(h, "$1$", 3) == 0)
        return "MD5 hashes ($apr1$, $1$) are not supported by this build (use bcrypt: htpasswd -B)";
    if (strncmp(h, "{SHA}", 5) == 0)
        return "{SHA} hashes are unsalted and not accepted (use bcrypt: htpasswd -B)";
    return "expected a crypt(3) hash: bcrypt ($2y$), sha512-crypt ($6$), sha256-crypt ($5$) or yescrypt ($y$)";
}

/* ---- consumers ---- */

static void c_name(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s;
    if (tg__str_nonempty(cx, v, &s)) {
        if (strlen(s) > 256 || !tg__is_field_value(s) || strchr(s, ','))
            tg__err(cx, v, "a consumer name is at most 256 characters, without commas or control characters");
        else
            ((tg_consumer_cfg_t *)obj)->name = s;
    }
}

static void c_groups(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_consumer_cfg_t *c = obj;
    if (!str_list(cx, v, &c->groups, &c->ngroups))
        return;
    for (size_t i = 0; i < c->ngroups; i++)
        if (strchr(c->groups[i], ',') || !tg__is_field_value(c->groups[i]))
            tg__err(cx, v, "group \"%s\" must not contain commas or control characters", c->groups[i]);
}

static void c_api_keys(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_consumer_cfg_t *c = obj;
    if (!str_list(cx, v, &c->api_keys, &c->napi_keys))
        return;
    for (size_t i = 0; i < c->napi_keys; i++) {
        const char *k = c->api_keys[i];
        tg__node_t *at = v->kind == TG__NODE_SEQ ? v->seq.v[i] : v;
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        if (strncmp(k, "sha256:", 7) == 0 && !(strlen(k) == 71 && is_hex(k + 7, 64)))
            tg__err(cx, at, "sha256: must be followed by 64 hex digits");
        else if (!tg__is_field_value(k) || strchr(k, ' '))
            tg__err(cx, at, "a key must not contain spaces or control characters");
        tg__path_pop(cx, mark);
    }
}

static void c_basic_password(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s, *why;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    if ((why = hash_problem(s)) != NULL)
        tg__err(cx, v, "%s", why);
    else
        ((tg_consumer_cfg_t *)obj)->basic_password = s;
}

static const tg__key_t consumer_keys[] = {
    { "name", c_name }, { "groups", c_groups }, { "api_keys", c_api_keys },
    { "basic_password", c_basic_password }, { NULL, NULL },
};
static const tg__schema_t consumer_schema = { "consumers[]", consumer_keys, false };

/* Names and API keys must be unique: a key that two consumers hold would
 * make the identity depend on table order. */
static void check_consumers(tg__ctx_t *cx, tg__node_t **items)
{
    tg_config_t *c = cx->cfg;
    for (size_t i = 0; i < c->nconsumers; i++) {
        for (size_t j = 0; j < i; j++) {
            if (c->consumers[i].name && c->consumers[j].name &&
                strcmp(c->consumers[i].name, c->consumers[j].name) == 0) {
                size_t mark = tg__path_index(cx, i);
                tg__err(cx, items[i], "duplicate consumer name \"%s\" (also consumers[%zu])",
                        c->consumers[i].name, j);
                tg__path_pop(cx, mark);
            }
            for (size_t a = 0; a < c->consumers[i].napi_keys; a++)
                for (size_t b = 0; b < c->consumers[j].napi_keys; b++)
                    if (strcmp(c->consumers[i].api_keys[a], c->consumers[j].api_keys[b]) == 0) {
                        size_t mark = tg__path_index(cx, i);
                        tg__err(cx, items[i], "api key also held by consumers[%zu]", j);
                        tg__path_pop(cx, mark);
                    }
        }
    }
}

void tg__load_consumers(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg__node_t **items;
    size_t count;
    tg_config_t *c = cx->cfg;
    if (!tg__list(cx, v, false, &items, &count))
        return;
    if ((c->consumers = tg__alloc_array(cx, count, sizeof *c->consumers)) == NULL)
        return;
    for (size_t i = 0; i < count && !cx->oom; i++) {
        size_t mark = tg__path_index(cx, i);
        tg_consumer_cfg_t *cc = &c->consumers[i];
        if (tg__apply(cx, items[i], &consumer_schema, cc) && cc->name == NULL)
            tg__err(cx, items[i], "a consumer needs a name");
        tg__path_pop(cx, mark);
    }
    c->nconsumers = count;
    check_consumers(cx, items);
}

/* ---- htpasswd ---- */

static void parse_htpasswd(tg__ctx_t *cx, tg__node_t *v, char *text, size_t len)
{
    tg_config_t *c = cx->cfg;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    if ((c->htpasswd_users = tg__alloc_array(cx, lines, sizeof *c->htpasswd_users)) == NULL)
        return;
    size_t lineno = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[--l] = '\0';
        if (l == 0 || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        const char *why = colon == NULL || colon == line ? "expected user:hash" : hash_problem(colon + 1);
        if (why != NULL) {
            tg__err(cx, v, "%s line %zu: %s", c->htpasswd, lineno, why);
            continue;
        }
        *colon = '\0';
        const char *user = tg__strdup(cx, line), *hash = tg__strdup(cx, colon + 1);
        if (user == NULL || hash == NULL)
            return;
        c->htpasswd_users[c->nhtpasswd_users++] = (tg_kv_t){ user, hash };
    }
}

void tg__load_htpasswd(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *p;
    if (!tg__str_nonempty(cx, v, &p) || (p = tg__resolve_path(cx, p)) == NULL)
        return;
    cx->cfg->htpasswd = p;
    FILE *f = fopen(p, "rb");
    if (f == NULL) {
        char eb[128];
        tg__err(cx, v, "cannot open %s: %s", p, strerror_r(errno, eb, sizeof eb));
        return;
    }
    char *buf = malloc(TG__HTPASSWD_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, TG__HTPASSWD_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (buf == NULL) {
        tg__oom(cx);
        return;
    }
    if (n > TG__HTPASSWD_MAX_BYTES)
        tg__err(cx, v, "%s is larger than %u MiB", p, TG__HTPASSWD_MAX_BYTES >> 20);
    else {
        buf[n] = '\0';
        parse_htpasswd(cx, v, buf, n);
    }
    free(buf);
}

/* ---- auth ---- */

static const tg__enum_t method_names[] = {
    { "jwt", TG_AUTH_JWT }, { "api_key", TG_AUTH_API_KEY }, { "basic", TG_AUTH_BASIC }, { NULL, 0 },
};

typedef struct auth_obj {
    tg_auth_cfg_t *a;
    tg__node_t *any;
    bool given[4];           /* a method block was written, by tg_auth_method_t */
    tg__node_t *block[4];
    tg_auth_method_t order[3];
    size_t norder;
} auth_obj_t;

static void note_block(auth_obj_t *o, tg_auth_method_t m, tg__node_t *v)
{
    o->given[m] = true;
    o->block[m] = v;
    o->order[o->norder++] = m;
}

static void realm(tg__ctx_t *cx, tg__node_t *v, const char **out)
{
    const char *s;
    if (tg__str_nonempty(cx, v, &s)) {
        if (strchr(s, '"') || strchr(s, '\\') || !tg__is_field_value(s))
            tg__err(cx, v, "a realm must not contain quotes, backslashes or control characters");
        else
            *out = s;
    }
}

static void j_issuer(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__str_nonempty(cx, v, &((tg_jwt_cfg_t *)obj)->issuer); }
static void j_audiences(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_jwt_cfg_t *j = obj;
    str_list(cx, v, &j->audiences, &j->naudiences);
}

static void j_algorithms(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_jwt_cfg_t *j = obj;
    const char **names;
    size_t n;
    if (!str_list(cx, v, &names, &n))
        return;
    if (n == 0)
        tg__err(cx, v, "needs at least one algorithm");
    for (size_t i = 0; i < n; i++) {
        int a = tg_jwt_alg_from_name(names[i], strlen(names[i]));
        if (a < 0)
            tg__err(cx, v, "unknown or refused algorithm \"%s\" (expected RS256/384/512, PS256/384/512, "
                           "ES256/384, HS256/384/512 or EdDSA)", names[i]);
        else
            j->algorithms |= 1u << a;
    }
}

static void j_jwks(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_jwt_cfg_t *j = obj;
    const char *s;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    if (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) {
        j->jwks = s;
        j->jwks_is_url = true;
        return;
    }
    if ((s = tg__resolve_path(cx, s)) == NULL)
        return;
    char err[256];
    tg_jwks_t *set = tg_jwks_load_file(s, err, sizeof err);
    if (set == NULL)
        tg__err(cx, v, "%s", err);
    tg_jwks_release(set);
    j->jwks = s;
}

/* jwks_ca: read now so a bad file is a load error at its position. */
static void j_jwks_ca(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s;
    if (!tg__str_nonempty(cx, v, &s) || (s = tg__resolve_path(cx, s)) == NULL)
        return;
    char err[300];
    X509_STORE *st = tg_jwks_ca_load(s, err, sizeof err);
    if (st == NULL)
        tg__err(cx, v, "%s", err);
    X509_STORE_free(st);
    ((tg_jwt_cfg_t *)obj)->jwks_ca = s;
}

static void j_secret(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s;
    if (!tg__str_nonempty(cx, v, &s))
        return;
    if (strlen(s) < 32) /* RFC 7518 §3.2: at least the hash size; 256 bits for HS256 */
        tg__err(cx, v, "an HMAC secret needs at least 32 bytes");
    else
        ((tg_jwt_cfg_t *)obj)->secret = s;
}

static void j_clock_skew(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__duration(cx, v, 0, &((tg_jwt_cfg_t *)obj)->clock_skew_ms); }
static void j_refresh(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__duration(cx, v, 1000, &((tg_jwt_cfg_t *)obj)->jwks_refresh_ms); }
static void j_consumer_claim(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__str_nonempty(cx, v, &((tg_jwt_cfg_t *)obj)->consumer_claim); }
static void j_realm(tg__ctx_t *cx, tg__node_t *v, void *obj) { realm(cx, v, &((tg_jwt_cfg_t *)obj)->realm); }

static void j_claims_to_headers(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_jwt_cfg_t *j = obj;
    tg_kv_t *kv;
    size_t n;
    if (!tg__header_map(cx, v, &kv, &n))
        return;
    /* The map reads claim → header name: check the values as header names. */
    for (size_t i = 0; i < n; i++)
        if (!tg__is_token(kv[i].value))
            tg__err(cx, v, "claims_to_headers.%s: \"%s\" is not a valid header name", kv[i].name, kv[i].value);
    j->claims_to_headers = kv;
    j->nclaims_to_headers = n;
}

static void j_require(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_jwt_cfg_t *j = obj;
    str_list(cx, v, &j->require, &j->nrequire);
}

static const tg__key_t jwt_keys[] = {
    { "issuer", j_issuer }, { "audiences", j_audiences }, { "algorithms", j_algorithms },
    { "jwks", j_jwks }, { "jwks_ca", j_jwks_ca }, { "secret", j_secret }, { "clock_skew", j_clock_skew },
    { "claims_to_headers", j_claims_to_headers }, { "jwks_refresh", j_refresh },
    { "consumer_claim", j_consumer_claim }, { "require", j_require }, { "realm", j_realm },
    { NULL, NULL },
};
static const tg__schema_t jwt_schema = { "routes[].auth.jwt", jwt_keys, false };

static void k_header(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s = NULL;
    if (tg__str_nonempty(cx, v, &s) && !tg__is_token(s))
        tg__err(cx, v, "\"%s\" is not a valid header name", s);
    else if (s)
        ((tg_api_key_cfg_t *)obj)->header = s;
}
static void k_query(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *s = NULL;
    if (tg__str_nonempty(cx, v, &s) && strpbrk(s, "&=# ") != NULL)
        tg__err(cx, v, "\"%s\" is not a valid query parameter name", s);
    else if (s)
        ((tg_api_key_cfg_t *)obj)->query = s;
}
static void k_hide(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__bool(cx, v, &((tg_api_key_cfg_t *)obj)->hide); }
static void k_realm(tg__ctx_t *cx, tg__node_t *v, void *obj) { realm(cx, v, &((tg_api_key_cfg_t *)obj)->realm); }
static void b_realm(tg__ctx_t *cx, tg__node_t *v, void *obj) { realm(cx, v, &((tg_basic_cfg_t *)obj)->realm); }

static const tg__key_t api_key_keys[] = {
    { "header", k_header }, { "query", k_query }, { "hide", k_hide }, { "realm", k_realm }, { NULL, NULL },
};
static const tg__schema_t api_key_schema = { "routes[].auth.api_key", api_key_keys, false };
static const tg__key_t basic_keys[] = { { "realm", b_realm }, { NULL, NULL } };
static const tg__schema_t basic_schema = { "routes[].auth.basic", basic_keys, false };

static void a_jwt(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    auth_obj_t *o = obj;
    note_block(o, TG_AUTH_JWT, v);
    tg__apply(cx, v, &jwt_schema, &o->a->jwt);
}
static void a_api_key(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    auth_obj_t *o = obj;
    note_block(o, TG_AUTH_API_KEY, v);
    tg__apply(cx, v, &api_key_schema, &o->a->api_key);
}
static void a_basic(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    auth_obj_t *o = obj;
    note_block(o, TG_AUTH_BASIC, v);
    tg__apply(cx, v, &basic_schema, &o->a->basic);
}
static void a_optional(tg__ctx_t *cx, tg__node_t *v, void *obj) { tg__bool(cx, v, &((auth_obj_t *)obj)->a->optional); }

static void a_any(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    auth_obj_t *o = obj;
    tg__node_t **items;
    size_t n;
    o->any = v;
    if (!tg__list(cx, v, false, &items, &n))
        return;
    if (n == 0)
        tg__err(cx, v, "needs at least one method");
    for (size_t i = 0; i < n; i++) {
        size_t mark = tg__path_index(cx, i);
        int m;
        bool dup = false;
        if (tg__enum(cx, items[i], method_names, "routes[].auth", "any", &m)) {
            for (size_t k = 0; k < o->a->nmethods; k++)
                dup |= o->a->methods[k] == (tg_auth_method_t)m;
            if (dup)
                tg__err(cx, items[i], "method listed twice");
            else
                o->a->methods[o->a->nmethods++] = (tg_auth_method_t)m;
        }
        tg__path_pop(cx, mark);
    }
}

static const tg__key_t auth_keys[] = {
    { "any", a_any }, { "jwt", a_jwt }, { "api_key", a_api_key }, { "basic", a_basic },
    { "optional", a_optional }, { NULL, NULL },
};
static const tg__schema_t auth_schema = { "routes[].auth", auth_keys, false };

static void jwt_finish(tg__ctx_t *cx, tg__node_t *at, tg_jwt_cfg_t *j)
{
    const uint32_t hs = 1u << TG_JWT_HS256 | 1u << TG_JWT_HS384 | 1u << TG_JWT_HS512;
    size_t mark = tg__path_key(cx, "jwt");
    if ((j->jwks != NULL) == (j->secret != NULL))
        tg__err(cx, at, "give exactly one of jwks and secret");
    else if (j->algorithms == 0)
        j->algorithms = j->secret ? hs : ((1u << TG_JWT_NALGS) - 1) & ~hs;
    else if (j->secret && (j->algorithms & ~hs))
        tg__err(cx, at, "a secret verifies only HS256/384/512; the other algorithms need jwks");
    if (j->jwks_ca && !(j->jwks_is_url && strncmp(j->jwks, "https://", 8) == 0))
        tg__err(cx, at, "jwks_ca applies only to a jwks https:// URL");
    if (j->realm == NULL)
        j->realm = "tollgate";
    if (j->jwks_refresh_ms == 0)
        j->jwks_refresh_ms = 10 * 60 * 1000;
    tg__path_pop(cx, mark);
}

void tg__load_auth(tg__ctx_t *cx, tg__node_t *v, tg_route_cfg_t *r)
{
    tg_auth_cfg_t *a = &r->auth;
    auth_obj_t o = { .a = a };
    a->api_key.hide = true;
    a->jwt.clock_skew_ms = 30000;
    a->jwt.nrequire = SIZE_MAX;
    if (!tg__apply(cx, v, &auth_schema, &o))
        return;
    a->enabled = true;
    if (o.any == NULL) {
        memcpy(a->methods, o.order, sizeof o.order);
        a->nmethods = o.norder;
    }
    if (a->nmethods == 0) {
        tg__err(cx, v, "give at least one of jwt, api_key and basic");
        return;
    }
    bool listed[4] = { false };
    for (size_t i = 0; i < a->nmethods; i++)
        listed[a->methods[i]] = true;
    static const char *const block_names[] = { "", "jwt", "api_key", "basic" };
    for (int m = TG_AUTH_JWT; m <= TG_AUTH_BASIC; m++) {
        if (o.given[m] && !listed[m]) {
            size_t mark = tg__path_key(cx, block_names[m]);
            tg__err(cx, o.block[m], "configured but not listed in auth.any");
            tg__path_pop(cx, mark);
        }
    }
    if (a->jwt.nrequire == SIZE_MAX) {
        static const char *const exp[] = { "exp" };
        a->jwt.require = (const char **)exp;
        a->jwt.nrequire = 1;
    }
    if (listed[TG_AUTH_JWT])
        jwt_finish(cx, o.block[TG_AUTH_JWT] ? o.block[TG_AUTH_JWT] : v, &a->jwt);
    if (a->api_key.header == NULL && a->api_key.query == NULL)
        a->api_key.header = "X-API-Key";
    if (a->api_key.realm == NULL)
        a->api_key.realm = "tollgate";
    if (a->basic.realm == NULL)
        a->basic.realm = "tollgate";
}

/* ---- allow / deny ---- */

static void l_groups(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_acl_cfg_t *l = obj;
    str_list(cx, v, &l->groups, &l->ngroups);
}
static void l_scopes(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_acl_cfg_t *l = obj;
    str_list(cx, v, &l->scopes, &l->nscopes);
}
static void l_ip(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_acl_cfg_t *l = obj;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n) || (l->ip = tg__alloc_array(cx, n, sizeof *l->ip)) == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        const char *s;
        if (tg__str_nonempty(cx, items[i], &s)) {
            if (tg_parse_cidr(s, &l->ip[l->nip]) == 0)
                l->nip++;
            else
                tg__err(cx, items[i], "expected a CIDR like 10.0.0.0/8 or 2001:db8::/32, got \"%s\"", s);
        }
        tg__path_pop(cx, mark);
    }
}

static const tg__key_t acl_keys[] = { { "groups", l_groups }, { "scopes", l_scopes }, { "ip", l_ip }, { NULL, NULL } };
static const tg__schema_t allow_schema = { "routes[].allow", acl_keys, false };
static const tg__schema_t deny_schema = { "routes[].deny", acl_keys, false };

static void load_acl(tg__ctx_t *cx, tg__node_t *v, tg_acl_cfg_t *l, const tg__schema_t *s)
{
    if (!tg__apply(cx, v, s, l))
        return;
    if (l->ngroups + l->nscopes + l->nip == 0)
        tg__err(cx, v, "give at least one of groups, scopes and ip");
    l->enabled = true;
}

void tg__load_allow(tg__ctx_t *cx, tg__node_t *v, tg_route_cfg_t *r) { load_acl(cx, v, &r->allow, &allow_schema); }
void tg__load_deny(tg__ctx_t *cx, tg__node_t *v, tg_route_cfg_t *r) { load_acl(cx, v, &r->deny, &deny_schema); }

/* ---- validate ---- */

static void v_content_types(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_validate_cfg_t *val = obj;
    if (!str_list(cx, v, &val->content_types, &val->ncontent_types))
        return;
    for (size_t i = 0; i < val->ncontent_types; i++) {
        char *t = tg__strdup(cx, val->content_types[i]);
        if (t == NULL)
            return;
        for (char *p = t; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        const char *slash = strchr(t, '/');
        if (slash == NULL || slash == t || slash[1] == '\0' || strchr(t, ';') || strchr(t, ' '))
            tg__err(cx, v, "\"%s\" is not a media type like application/json", val->content_types[i]);
        val->content_types[i] = t;
    }
}

static void v_json_schema(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    const char *p;
    char err[300];
    if (!tg__str_nonempty(cx, v, &p) || (p = tg__resolve_path(cx, p)) == NULL)
        return;
    tg_jschema_t *s = tg_jschema_load(p, err, sizeof err);
    if (s == NULL)
        tg__err(cx, v, "%s", err);
    tg_jschema_free(s);
    ((tg_validate_cfg_t *)obj)->json_schema = p;
}

static const tg__key_t validate_keys[] = {
    { "content_types", v_content_types }, { "json_schema", v_json_schema }, { NULL, NULL },
};
static const tg__schema_t validate_schema = { "routes[].validate", validate_keys, false };

void tg__load_validate(tg__ctx_t *cx, tg__node_t *v, tg_route_cfg_t *r)
{
    if (!tg__apply(cx, v, &validate_schema, &r->validate))
        return;
    if (r->validate.ncontent_types == 0 && r->validate.json_schema == NULL)
        tg__err(cx, v, "give at least one of content_types and json_schema");
    r->validate.enabled = true;
}

/* ---- match.json ---- */

static bool valid_pointer(const char *p)
{
    if (*p != '\0' && *p != '/')
        return false;
    for (; *p; p++)
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return false;
    return true;
}

void tg__load_match_json(tg__ctx_t *cx, tg__node_t *v, tg_match_cfg_t *m)
{
    if (!tg__is_map(cx, v) || tg__node_is_null(v))
        return;
    if ((m->json = tg__alloc_array(cx, v->map.n, sizeof *m->json)) == NULL)
        return;
    for (size_t i = 0; i < v->map.n && !cx->oom; i++) {
        tg__pair_t *p = &v->map.v[i];
        size_t mark = tg__path_key(cx, p->key->sc.s);
        tg_json_match_cfg_t *j = &m->json[m->njson];
        const char *s;
        if (!valid_pointer(p->key->sc.s))
            tg__err(cx, p->key, "\"%s\" is not a JSON Pointer (RFC 6901) like /order/type", p->key->sc.s);
        else if (tg__str(cx, p->value, &s)) {
            j->pointer = p->key->sc.s;
            if (strcmp(s, "present") == 0)
                j->kind = TG_HMATCH_PRESENT;
            else if (s[0] == '~') {
                j->kind = TG_HMATCH_REGEX;
                j->value = s + 1;
                if (!tg__regex(cx, p->value, s + 1, &j->regex))
                    j->pointer = NULL;
            } else {
                j->kind = TG_HMATCH_EXACT;
                j->value = s;
            }
            if (j->pointer && (j->pointer = tg__strdup(cx, j->pointer)) != NULL)
                m->njson++;
        }
        tg__path_pop(cx, mark);
    }
}
