/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/render.c: resources decoded from YAML as the controller decodes them,
 * certificates made with common/pki.c, and every rendered document read back with rconf_parse,
 * the dataplane's own parser - so "renders" means "the dataplane accepts and serves it". Checked:
 * bound certificates, the fallback for a Certificate without material (and the reason), clientAuth
 * and upstream TLS resolved through the sources, a Host left out (not served weaker) when a CA
 * cannot be resolved, a hostname clash decided by namespace/name, upstreamTLS.enabled turning
 * http:// into https://, an unbound Certificate listed for its SANs, bound and client-only ones
 * not, and the same
 * bytes for the same inputs whatever the file order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/diag.h"
#include "aegis/pki.h"
#include "aegis/rconf.h"
#include "aegis/resource.h"
#include "check.h"
#include "render.h"

#define T0 1750000000LL

struct pair {
    char *chain, *key;
};

/* A self-signed P-256 certificate for dns (and its key), valid around now. */
static struct pair make_pair(const char *dns)
{
    char *names[1] = {(char *)dns};
    struct pki_cert_req req = {.common_name = dns,
                               .dns = {names, 1},
                               .path_len = -1,
                               .not_before = T0,
                               .not_after = 4102444800LL};
    struct pair p = {0};
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    size_t len;

    if (pki_key_generate(PKI_KEY_EC_P256, &key, NULL) < 0 ||
        pki_sign(&req, key, NULL, key, &x, NULL) < 0 ||
        pki_cert_to_pem(x, &p.chain, &len, NULL) < 0 ||
        pki_key_to_pem(key, &p.key, &len, NULL) < 0) {
        fprintf(stderr, "cannot make a certificate for %s\n", dns);
        exit(2);
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return p;
}

/* The test's store: Certificate name -> material; Issuer "local" -> CA; PEM sources by text. */
static struct {
    struct pair app, shared, client, ca;
} m;

static int src_certificate(void *ctx, const char *ns, const char *name, char **chain, char **key,
                           struct aegis_err *err)
{
    const struct pair *p = NULL;

    (void)ctx;
    if (strcmp(ns, "default") == 0 && strcmp(name, "app-tls") == 0)
        p = &m.app;
    else if (strcmp(ns, "default") == 0 &&
             (strcmp(name, "shared") == 0 || strcmp(name, "spare") == 0))
        p = &m.shared;
    else if (strcmp(ns, "default") == 0 &&
             (strcmp(name, "up-client") == 0 || strcmp(name, "client-only") == 0))
        p = &m.client;
    if (p == NULL)
        return strcmp(name, "broken") == 0
                   ? aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "the stored key does not open")
                   : -AEGIS_E_NOTFOUND;
    *chain = aegis_strdup(p->chain);
    *key = aegis_strdup(p->key);
    return 0;
}

static int src_pem(void *ctx, const char *ns, const struct aegis_pem_source *s, char **pem,
                   struct aegis_err *err)
{
    (void)ctx;
    (void)ns;
    if (s->file != NULL)
        return aegis_err_set(err, -AEGIS_E_NOTFOUND, NULL, "%s: no such file", s->file);
    if (s->secret_ref.name != NULL && strcmp(s->secret_ref.name, "up-ca") == 0) {
        *pem = aegis_strdup(m.ca.chain);
        return 0;
    }
    return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "unexpected source");
}

static int src_issuer_ca(void *ctx, const char *ns, const char *name, char **pem,
                         struct aegis_err *err)
{
    (void)ctx;
    (void)ns;
    (void)err;
    if (strcmp(name, "local") != 0)
        return -AEGIS_E_NOTFOUND;
    *pem = aegis_strdup(m.ca.chain);
    return 0;
}

static const struct render_source SRC = {NULL, src_certificate, src_pem, src_issuer_ca};

#define HOST(name, extra)                                                                          \
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Host\nmetadata: {name: " name "}\nspec:\n" extra

static const char *const DOCS[] = {
    HOST("app", "  hostnames: [app.test]\n"
                "  upstreams: [{url: 'http://127.0.0.1:8080', weight: 3}]\n"
                "  healthCheck: {path: /ready}\n"
                "  tls: {mode: acme, issuerRef: {name: local}, hsts: {enabled: true}}\n"),
    HOST("waiting", "  hostnames: [waiting.test]\n"
                    "  upstreams: [{url: 'http://127.0.0.1:8081'}]\n"
                    "  tls: {mode: custom, certificateRef: {name: missing}}\n"),
    HOST("edge-mtls", "  hostnames: [mtls.test]\n"
                      "  upstreams: [{url: 'http://127.0.0.1:8082'}]\n"
                      "  tls: {mode: custom, certificateRef: {name: shared},\n"
                      "        clientAuth: {mode: require, issuerRef: {name: local}}}\n"),
    HOST("bad-ca", "  hostnames: [badca.test]\n"
                   "  upstreams: [{url: 'http://127.0.0.1:8083'}]\n"
                   "  tls: {mode: custom, certificateRef: {name: shared},\n"
                   "        clientAuth: {mode: optional, caCertificate: {file: /nope.pem}}}\n"),
    HOST("a-first", "  hostnames: [clash.test]\n"
                    "  upstreams: [{url: 'http://127.0.0.1:8084'}]\n"
                    "  tls: {mode: none}\n"),
    HOST("b-second", "  hostnames: [other.test, clash.test]\n"
                     "  upstreams: [{url: 'http://127.0.0.1:8085'}]\n"
                     "  tls: {mode: none}\n"),
    HOST("backend", "  hostnames: [backend.test]\n"
                    "  upstreams: [{url: 'http://10.0.0.9:8443/api'}]\n"
                    "  tls: {mode: none}\n"
                    "  upstreamTLS: {enabled: true, clientCertificateRef: {name: up-client},\n"
                    "                caCertificate: {secretRef: {name: up-ca, key: ca.crt}}, "
                    "serverName: backend.internal}\n"),
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Certificate\nmetadata: {name: shared}\n"
    "spec: {dnsNames: [shared.test], issuerRef: {name: local}}\n",
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Certificate\nmetadata: {name: client-only}\n"
    "spec: {dnsNames: [client.test], issuerRef: {name: local}, usages: [client auth]}\n",
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Certificate\nmetadata: {name: spare}\n"
    "spec: {dnsNames: [shared.test], issuerRef: {name: local}}\n",
    "---\napiVersion: aegis.dev/v1alpha1\nkind: Issuer\nmetadata: {name: local}\nspec: {ca: {}}\n",
};
#define NDOCS (sizeof(DOCS) / sizeof(DOCS[0]))

static const char *const HTTP[] = {"127.0.0.1:8000"};
static const char *const HTTPS[] = {"127.0.0.1:8443", "[::1]:8443"};

/* Loads DOCS in the order given by order (NULL: as listed) into set. */
static void load(struct aegis_resource_set *set, const size_t *order)
{
    struct aegis_diags d;

    resource_set_init(set);
    aegis_diags_init(&d);
    for (size_t i = 0; i < NDOCS; i++) {
        const char *doc = DOCS[order != NULL ? order[i] : i];
        char name[32];

        snprintf(name, sizeof(name), "f%zu.yaml", i);
        resource_load_buffer(set, name, doc, strlen(doc), &d);
    }
    for (size_t i = 0; i < d.n; i++) {
        char line[512];

        aegis_diag_format(&d.v[i], line, sizeof(line));
        printf("# %s\n", line);
    }
    CHECK_INT(d.nerrors, 0, "the resources load");
    aegis_diags_dispose(&d);
}

static char *render(const struct aegis_resource_set *set, struct render_result *res)
{
    struct render_settings s = {
        .generation = 7,
        .http = HTTP,
        .n_http = 1,
        .https = HTTPS,
        .n_https = 2,
        .fallback_chain_pem = m.ca.chain, /* any pair does for a fallback */
        .fallback_key_pem = m.ca.key,
    };
    struct aegis_err err = {0};
    json_t *doc = NULL;
    char *text;

    CHECK_INT(render_config(set, &s, &SRC, &doc, res, &err), 0, "render_config succeeds");
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static const struct render_host_result *result_of(const struct render_result *res, const char *n)
{
    for (size_t i = 0; i < res->n_hosts; i++) {
        if (strcmp(res->hosts[i].host->meta.name, n) == 0)
            return &res->hosts[i];
    }
    return NULL;
}

static const struct rconf_host *host_of(const struct rconf *rc, const char *name)
{
    for (size_t i = 0; i < rc->n_hosts; i++) {
        if (strcmp(rc->hosts[i].name, name) == 0)
            return &rc->hosts[i];
    }
    return NULL;
}

static void test_render(void)
{
    struct aegis_resource_set set;
    struct render_result res;
    struct aegis_diags d;
    struct rconf *rc = NULL;
    const struct render_host_result *r;
    const struct rconf_host *h;
    struct rconf_sel sel;
    char *text;

    load(&set, NULL);
    text = render(&set, &res);
    aegis_diags_init(&d);
    CHECK_INT(rconf_parse(text, strlen(text), NULL, &rc, &d), 0,
              "the dataplane's parser accepts the rendered document");
    for (size_t i = 0; i < d.n && d.nerrors > 0; i++) {
        char line[512];

        aegis_diag_format(&d.v[i], line, sizeof(line));
        printf("#   %s\n", line);
    }
    aegis_diags_dispose(&d);
    if (rc == NULL) {
        free(text);
        render_result_dispose(&res);
        resource_set_dispose(&set);
        return;
    }
    CHECK_INT(rc->generation, 7, "generation");
    CHECK_INT(rc->n_http + rc->n_https, 3, "listeners");
    CHECK(rc->fallback != NULL, "fallback");

    r = result_of(&res, "app");
    h = host_of(rc, "default/app");
    CHECK(r != NULL && r->serve == RENDER_SERVE_CERTIFICATE, "app: served with its certificate");
    CHECK_STR(r != NULL ? r->certificate : "", "app-tls", "app: bound to the implicit Certificate");
    CHECK(h != NULL && h->cert != NULL && h->hsts.enabled && h->force_https,
          "app: certificate, HSTS and forceHTTPS rendered");
    CHECK(h != NULL && h->n_upstreams == 1 && h->upstreams[0].weight == 3 &&
              h->health_check.enabled && strcmp(h->health_check.path, "/ready") == 0,
          "app: upstream weight and health check");
    CHECK(rconf_select(rc, "app.test", 8, &sel) == 0 && h != NULL && sel.cert == h->cert,
          "app: the dataplane selects the bound certificate for its name");

    r = result_of(&res, "waiting");
    h = host_of(rc, "default/waiting");
    CHECK(r != NULL && r->serve == RENDER_SERVE_FALLBACK && strstr(r->message, "missing") != NULL,
          "waiting: served with the fallback, and the result says which Certificate");
    CHECK(h != NULL && h->tls && h->cert == NULL, "waiting: TLS without a bound certificate");

    h = host_of(rc, "default/edge-mtls");
    CHECK(h != NULL && h->client_auth.mode == RCONF_CLIENT_AUTH_REQUIRE &&
              h->client_auth.store != NULL,
          "edge-mtls: clientAuth with the Issuer's CA");

    r = result_of(&res, "bad-ca");
    CHECK(r != NULL && r->serve == RENDER_SERVE_NONE && host_of(rc, "default/bad-ca") == NULL,
          "bad-ca: an unresolvable client CA leaves the host out instead of serving it open");
    CHECK(r != NULL && strstr(r->message, "spec.tls.clientAuth.caCertificate") != NULL &&
              strstr(r->message, "/nope.pem") != NULL,
          "bad-ca: the reason names the field and the file");

    r = result_of(&res, "b-second");
    CHECK(host_of(rc, "default/a-first") != NULL && host_of(rc, "default/b-second") == NULL,
          "hostname clash: the first by namespace/name keeps it, the other is left out");
    CHECK(r != NULL && strstr(r->message, "clash.test") != NULL &&
              strstr(r->message, "default/a-first") != NULL,
          "hostname clash: the reason names the hostname and the other Host");

    h = host_of(rc, "default/backend");
    CHECK(h != NULL && h->upstreams[0].tls && strcmp(h->upstreams[0].path, "/api") == 0,
          "backend: upstreamTLS.enabled makes the http:// upstream https://, path kept");
    CHECK(h != NULL && h->upstream_tls.client != NULL && h->upstream_tls.ca != NULL &&
              h->upstream_tls.server_name != NULL &&
              strcmp(h->upstream_tls.server_name, "backend.internal") == 0,
          "backend: client certificate, CA and serverName rendered");

    CHECK_INT(res.n_certificates, 1, "one unbound server Certificate listed");
    CHECK(rc->n_certs == 1 && strcmp(rc->certs[0].name, "default/spare") == 0,
          "spare is listed; shared is bound to a Host; client-only is not for servers");

    rconf_unref(rc);
    free(text);
    render_result_dispose(&res);
    resource_set_dispose(&set);
}

static void test_deterministic(void)
{
    static const size_t order[NDOCS] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}; /* reversed */
    struct aegis_resource_set set;
    struct render_result res;
    char *a, *b;

    load(&set, NULL);
    a = render(&set, &res);
    render_result_dispose(&res);
    resource_set_dispose(&set);
    load(&set, order);
    b = render(&set, &res);
    CHECK(a != NULL && b != NULL && strcmp(a, b) == 0,
          "the same resources in another file order render the same bytes");
    render_result_dispose(&res);
    resource_set_dispose(&set);
    free(a);
    free(b);
}

int main(void)
{
    m.app = make_pair("app.test");
    m.shared = make_pair("shared.test");
    m.client = make_pair("client.test");
    m.ca = make_pair("ca.test");
    test_render();
    test_deterministic();
    free(m.app.chain);
    free(m.shared.chain);
    free(m.client.chain);
    free(m.ca.chain);
    pki_secret_free_str(m.app.key);
    pki_secret_free_str(m.shared.key);
    pki_secret_free_str(m.client.key);
    pki_secret_free_str(m.ca.key);
    return check_done();
}
