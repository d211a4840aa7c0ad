/* server.listen[].tls: certificates (cert, key, ocsp), client_ca; acme is
 * recognised and refused (config/features.c). Paths are relative to the
 * configuration file's folder. Files are checked at load
 * time, so `tollgate -t` catches a missing file or a key that does not match
 * its certificate, with the position of the entry. docs/tls.md. */
#include "config/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "net/tls.h"

#define TG__MAX_CERTS 256

/* A path relative to the configuration file's folder (as the other file
 * keys), or the path itself when absolute; it must be readable now. */
static bool readable_file(tg__ctx_t *cx, tg__node_t *v, const char **out)
{
    if (!tg__str_nonempty(cx, v, out))
        return false;
    if ((*out = tg__resolve_path(cx, *out)) == NULL)
        return false;
    FILE *f = fopen(*out, "rb");
    if (f == NULL) {
        tg__err(cx, v, "cannot open \"%s\": %s", *out, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

static void cert_cert(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    readable_file(cx, v, &((tg_tls_cert_cfg_t *)obj)->cert);
}

static void cert_key(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    readable_file(cx, v, &((tg_tls_cert_cfg_t *)obj)->key);
}

static void cert_ocsp(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    readable_file(cx, v, &((tg_tls_cert_cfg_t *)obj)->ocsp);
}

static const tg__key_t cert_keys[] = {
    { "cert", cert_cert },
    { "key", cert_key },
    { "ocsp", cert_ocsp },
    { NULL, NULL },
};
static const tg__schema_t cert_schema = { "server.listen[].tls.certificates[]", cert_keys, false };

static void load_cert(tg__ctx_t *cx, tg__node_t *n, tg_tls_cert_cfg_t *c)
{
    size_t before = cx->nerrs + cx->dropped;
    if (!tg__apply(cx, n, &cert_schema, c))
        return;
    if (tg__map_get(n, "cert") == NULL || tg__map_get(n, "key") == NULL) {
        tg__err(cx, n, "needs both \"cert\" and \"key\"");
        return;
    }
    if (cx->nerrs + cx->dropped != before || c->cert == NULL || c->key == NULL)
        return;
    char why[400];
    if (tg_tls_check_pair(c->cert, c->key, why, sizeof why) < 0)
        tg__err(cx, n, "%s", why);
}

static void tls_certificates(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    tg_listen_tls_cfg_t *t = obj;
    tg__node_t **items;
    size_t n;
    if (!tg__list(cx, v, true, &items, &n))
        return;
    if (n == 0 || n > TG__MAX_CERTS) {
        tg__err(cx, v, "expected 1 to %d certificates", TG__MAX_CERTS);
        return;
    }
    t->certs = tg__alloc_array(cx, n, sizeof *t->certs);
    if (t->certs == NULL)
        return;
    t->ncerts = n;
    for (size_t i = 0; i < n; i++) {
        size_t mark = v->kind == TG__NODE_SEQ ? tg__path_index(cx, i) : cx->pathlen;
        load_cert(cx, items[i], &t->certs[i]);
        tg__path_pop(cx, mark);
    }
}

static void tls_client_ca(tg__ctx_t *cx, tg__node_t *v, void *obj)
{
    readable_file(cx, v, &((tg_listen_tls_cfg_t *)obj)->client_ca);
}

static const tg__key_t tls_keys[] = {
    { "certificates", tls_certificates },
    { "client_ca", tls_client_ca },
    { NULL, NULL },
};
static const tg__schema_t tls_schema = { "server.listen[].tls", tls_keys, false };

void tg__load_listen_tls(tg__ctx_t *cx, tg__node_t *v, tg_listen_cfg_t *l)
{
    tg_listen_tls_cfg_t *t = tg__alloc(cx, sizeof *t);
    if (t == NULL)
        return;
    memset(t, 0, sizeof *t);
    l->has_tls = true;
    if (!tg__apply(cx, v, &tls_schema, t))
        return;
    if (tg__map_get(v, "certificates") == NULL && tg__map_get(v, "acme") == NULL) {
        tg__err(cx, v, "missing required key \"certificates\"");
        return;
    }
    if (t->ncerts > 0)
        l->tls = t;
}
