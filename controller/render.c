/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The renderer (render.h). Hostname claims use a jansson object as the hash set: the renderer
 * builds JSON anyway, and jansson's objects are hash tables.
 */
#include "render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aegis/alloc.h"
#include "aegis/pki.h"
#include "decide.h"

/* The rendered-config format this renderer writes (docs/rendered-config.md). */
#define RENDER_VERSION 1

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)

static int by_ns_name(const void *a, const void *b)
{
    const struct aegis_resource *x = *(const struct aegis_resource *const *)a;
    const struct aegis_resource *y = *(const struct aegis_resource *const *)b;
    int c = strcmp(x->meta.namespace, y->meta.namespace);

    return c != 0 ? c : strcmp(x->meta.name, y->meta.name);
}

/* The resources of kind in set, sorted by namespace/name (a new array of *n entries). */
static const struct aegis_resource **collect(const struct aegis_resource_set *set,
                                             enum aegis_kind kind, size_t *n)
{
    const struct aegis_resource **v = aegis_calloc(set->n + 1, sizeof(*v));

    *n = 0;
    for (size_t i = 0; i < set->n; i++) {
        if (set->v[i]->kind == kind)
            v[(*n)++] = set->v[i];
    }
    qsort(v, *n, sizeof(*v), by_ns_name);
    return v;
}

static void set_str(json_t *o, const char *key, const char *s)
{
    json_object_set_new(o, key, json_string(s));
}

/* Sets key to a PEM text (taking ownership of pem); key material is cleansed when freed. */
static void set_pem(json_t *o, const char *key, char *pem, bool secret)
{
    set_str(o, key, pem);
    if (secret)
        pki_secret_free_str(pem);
    else
        free(pem);
}

static bool pem_source_given(const struct aegis_pem_source *s)
{
    return s->pem != NULL || s->file != NULL || s->secret_ref.name != NULL;
}

/* The host's problem that keeps it out of the document. */
static int host_error(struct render_host_result *r, const char *field, const struct aegis_err *e)
{
    snprintf(r->message, sizeof(r->message), "%s: %s", field, e->msg);
    r->serve = RENDER_SERVE_NONE;
    return -1;
}

static int client_auth_json(const struct aegis_resource *h, const struct render_source *src,
                            json_t *tls, struct render_host_result *r)
{
    const struct aegis_client_auth *ca = &h->spec.host.tls.client_auth;
    json_t *o = json_object();
    struct aegis_err e = {0};
    char *pem = NULL;
    int rc = 0;

    json_object_set_new(tls, "clientAuth", o);
    set_str(o, "mode", api_client_auth_mode_names[ca->mode]);
    if (ca->mode == AEGIS_CLIENT_AUTH_MODE_NONE)
        return 0;
    if (pem_source_given(&ca->ca_certificate)) {
        rc = src->pem(src->ctx, h->meta.namespace, &ca->ca_certificate, &pem, &e);
        if (rc < 0)
            return host_error(r, "spec.tls.clientAuth.caCertificate", &e);
    } else if (ca->issuer_ref.name != NULL) {
        rc = src->issuer_ca(src->ctx, h->meta.namespace, ca->issuer_ref.name, &pem, &e);
        if (rc == -AEGIS_E_NOTFOUND && e.msg[0] == '\0')
            aegis_err_set(&e, rc, NULL, "Issuer %s has no CA certificate yet", ca->issuer_ref.name);
        if (rc < 0)
            return host_error(r, "spec.tls.clientAuth.issuerRef", &e);
    } else {
        aegis_err_set(&e, -AEGIS_E_INVALID, NULL,
                      "mode %s needs caCertificate or issuerRef to verify client certificates",
                      api_client_auth_mode_names[ca->mode]);
        return host_error(r, "spec.tls.clientAuth", &e);
    }
    set_pem(o, "caPEM", pem, false);
    return 0;
}

static int tls_json(const struct aegis_resource *h, const struct render_source *src, json_t *host,
                    struct render_host_result *r)
{
    const struct aegis_host_tls *t = &h->spec.host.tls;
    json_t *tls = json_object();
    struct aegis_err e = {0};
    char *chain = NULL, *key = NULL;
    int rc;

    json_object_set_new(host, "tls", tls);
    rc = decide_host_certificate_name(h, r->certificate, sizeof(r->certificate), &e);
    if (rc < 0)
        return host_error(r, "spec.tls", &e);
    rc = src->certificate(src->ctx, h->meta.namespace, r->certificate, &chain, &key, &e);
    if (rc == 0) {
        set_pem(tls, "certificatePEM", chain, false);
        set_pem(tls, "privateKeyPEM", key, true);
        r->serve = RENDER_SERVE_CERTIFICATE;
    } else {
        r->serve = RENDER_SERVE_FALLBACK;
        snprintf(r->message, sizeof(r->message),
                 "Certificate %s has no valid certificate%s%s; served with the fallback",
                 r->certificate, e.msg[0] != '\0' ? ": " : " yet", e.msg);
    }
    set_str(tls, "minVersion", api_tls_version_names[t->min_version]);
    if (client_auth_json(h, src, tls, r) < 0)
        return -1;
    json_object_set_new(host, "forceHTTPS", json_boolean(t->force_https));
    if (HAS(t, API_F_HOST_TLS_HSTS) && t->hsts.enabled)
        json_object_set_new(host, "hsts",
                            json_pack("{s:b, s:I, s:b, s:b}", "enabled", 1, "maxAge",
                                      (json_int_t)t->hsts.max_age, "includeSubdomains",
                                      t->hsts.include_subdomains, "preload", t->hsts.preload));
    return 0;
}

/* True when url starts with scheme (case-insensitive, as URL schemes compare). */
static bool has_scheme(const char *url, const char *scheme)
{
    return strncasecmp(url, scheme, strlen(scheme)) == 0;
}

static void upstreams_json(const struct aegis_host_spec *s, json_t *host)
{
    bool tls = HAS(s, API_F_HOST_SPEC_UPSTREAM_TLS) && s->upstream_tls.enabled;
    json_t *v = json_array();

    for (size_t i = 0; i < s->upstreams.n; i++) {
        const struct aegis_upstream *u = &s->upstreams.v[i];
        json_t *url;

        /* upstreamTLS.enabled makes an http:// URL speak TLS to the same host and port. */
        if (tls && has_scheme(u->url, "http://"))
            url = json_sprintf("https://%s", u->url + strlen("http://"));
        else
            url = json_string(u->url);
        json_array_append_new(v, json_pack("{s:o, s:I}", "url", url, "weight",
                                           (json_int_t)(u->weight > 0 ? u->weight : 1)));
    }
    json_object_set_new(host, "upstreams", v);
}

static int upstream_tls_json(const struct aegis_resource *h, const struct render_source *src,
                             json_t *host, struct render_host_result *r)
{
    const struct aegis_upstream_tls *t = &h->spec.host.upstream_tls;
    json_t *o;
    struct aegis_err e = {0};
    char *pem = NULL, *key = NULL;
    int rc;

    if (!HAS(&h->spec.host, API_F_HOST_SPEC_UPSTREAM_TLS))
        return 0;
    o = json_object();
    json_object_set_new(host, "upstreamTLS", o);
    if (t->client_certificate_ref.name != NULL) {
        rc = src->certificate(src->ctx, h->meta.namespace, t->client_certificate_ref.name, &pem,
                              &key, &e);
        if (rc == -AEGIS_E_NOTFOUND && e.msg[0] == '\0')
            aegis_err_set(&e, rc, NULL, "Certificate %s has no valid certificate yet",
                          t->client_certificate_ref.name);
        if (rc < 0)
            return host_error(r, "spec.upstreamTLS.clientCertificateRef", &e);
        set_pem(o, "clientCertPEM", pem, false);
        set_pem(o, "clientKeyPEM", key, true);
    }
    if (pem_source_given(&t->ca_certificate)) {
        rc = src->pem(src->ctx, h->meta.namespace, &t->ca_certificate, &pem, &e);
        if (rc < 0)
            return host_error(r, "spec.upstreamTLS.caCertificate", &e);
        set_pem(o, "caPEM", pem, false);
    }
    if (t->insecure_skip_verify)
        json_object_set_new(o, "insecureSkipVerify", json_true());
    if (t->server_name != NULL)
        set_str(o, "serverName", t->server_name);
    return 0;
}

/*
 * Claims every hostname of h in claimed (hostname -> Host); on a clash claims none and explains
 * it in r.
 */
static int claim_hostnames(const struct aegis_resource *h, json_t *claimed,
                           struct render_host_result *r)
{
    const struct aegis_strv *names = &h->spec.host.hostnames;
    char who[512];

    for (size_t i = 0; i < names->n; i++) {
        json_t *other = json_object_get(claimed, names->v[i]);

        if (other != NULL) {
            struct aegis_err e;

            aegis_err_set(&e, -AEGIS_E_EXISTS, NULL,
                          "\"%s\" is already served by Host %s; remove it from one of them",
                          names->v[i], json_string_value(other));
            return host_error(r, "spec.hostnames", &e);
        }
    }
    snprintf(who, sizeof(who), "%s/%s", h->meta.namespace, h->meta.name);
    for (size_t i = 0; i < names->n; i++)
        json_object_set_new(claimed, names->v[i], json_string(who));
    return 0;
}

static json_t *host_json(const struct aegis_resource *h, const struct render_source *src,
                         json_t *claimed, struct render_host_result *r)
{
    const struct aegis_host_spec *s = &h->spec.host;
    json_t *o = json_object(), *names = json_array();
    char who[512];

    snprintf(who, sizeof(who), "%s/%s", h->meta.namespace, h->meta.name);
    set_str(o, "name", who);
    for (size_t i = 0; i < s->hostnames.n; i++)
        json_array_append_new(names, json_string(s->hostnames.v[i]));
    json_object_set_new(o, "hostnames", names);
    r->serve = RENDER_SERVE_PLAIN;
    if (s->tls.mode != AEGIS_TLS_MODE_NONE && tls_json(h, src, o, r) < 0)
        goto refused;
    upstreams_json(s, o);
    if (HAS(s, API_F_HOST_SPEC_HEALTH_CHECK)) {
        const struct aegis_health_check *hc = &s->health_check;

        json_object_set_new(o, "healthCheck",
                            json_pack("{s:s, s:I, s:I, s:I, s:I}", "path",
                                      hc->path != NULL ? hc->path : "/healthz", "intervalMs",
                                      (json_int_t)hc->interval_ms, "timeoutMs",
                                      (json_int_t)hc->timeout_ms, "healthyThreshold",
                                      (json_int_t)hc->healthy_threshold, "unhealthyThreshold",
                                      (json_int_t)hc->unhealthy_threshold));
    }
    if (upstream_tls_json(h, src, o, r) < 0)
        goto refused;
    json_object_set_new(o, "timeouts",
                        json_pack("{s:I, s:I}", "connectMs", (json_int_t)s->timeouts.connect_ms,
                                  "readMs", (json_int_t)s->timeouts.read_ms));
    json_object_set_new(o, "websocket", json_boolean(s->websocket));
    json_object_set_new(o, "preserveHost", json_boolean(s->preserve_host));
    if (claim_hostnames(h, claimed, r) < 0)
        goto refused;
    return o;
refused:
    json_decref(o);
    return NULL;
}

/* The explicit Certificates no rendered Host is bound to, with their stored material. */
static void certificates_json(const struct aegis_resource_set *set, const struct render_source *src,
                              const struct render_result *res, json_t *doc, size_t *count)
{
    size_t n;
    const struct aegis_resource **certs = collect(set, AEGIS_KIND_CERTIFICATE, &n);
    json_t *v = json_array();

    for (size_t i = 0; i < n; i++) {
        const struct aegis_resource *c = certs[i];
        const struct aegis_strv *u = &c->spec.certificate.usages;
        struct aegis_err e = {0};
        unsigned mask = PKI_USAGES_DEFAULT;
        char *chain = NULL, *key = NULL, who[512];
        bool bound = false;

        for (size_t k = 0; k < res->n_hosts && !bound; k++) {
            const struct render_host_result *r = &res->hosts[k];

            bound = r->serve == RENDER_SERVE_CERTIFICATE &&
                    strcmp(r->host->meta.namespace, c->meta.namespace) == 0 &&
                    strcmp(r->certificate, c->meta.name) == 0;
        }
        if (bound || (u->n > 0 && pki_usages_parse(u->v, u->n, &mask, &e) < 0) ||
            !(mask & PKI_USAGE(SERVER_AUTH)))
            continue;
        if (src->certificate(src->ctx, c->meta.namespace, c->meta.name, &chain, &key, &e) < 0)
            continue;
        snprintf(who, sizeof(who), "%s/%s", c->meta.namespace, c->meta.name);
        json_array_append_new(v, json_pack("{s:s, s:s, s:s}", "name", who, "certificatePEM", chain,
                                           "privateKeyPEM", key));
        free(chain);
        pki_secret_free_str(key);
        (*count)++;
    }
    if (json_array_size(v) > 0)
        json_object_set_new(doc, "certificates", v);
    else
        json_decref(v);
    free(certs);
}

static json_t *listeners_json(const char *const *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

int render_config(const struct aegis_resource_set *set, const struct render_settings *settings,
                  const struct render_source *src, json_t **out, struct render_result *res,
                  struct aegis_err *err)
{
    const struct aegis_resource **hosts;
    json_t *doc, *hv, *claimed;
    size_t n;

    *out = NULL;
    memset(res, 0, sizeof(*res));
    if (settings->generation < 0 || settings->n_http + settings->n_https == 0 ||
        (settings->fallback_chain_pem == NULL) != (settings->fallback_key_pem == NULL))
        return aegis_err_set(err, -AEGIS_E_INVALID, "render",
                             "a generation >= 0, at least one listener, and a fallback with both "
                             "certificate and key (or neither) are needed");
    doc = json_object();
    json_object_set_new(doc, "version", json_integer(RENDER_VERSION));
    json_object_set_new(doc, "generation", json_integer((json_int_t)settings->generation));
    json_object_set_new(doc, "listeners",
                        json_pack("{s:o, s:o}", "http",
                                  listeners_json(settings->http, settings->n_http), "https",
                                  listeners_json(settings->https, settings->n_https)));
    if (settings->workers > 0)
        json_object_set_new(doc, "workers", json_integer(settings->workers));
    if (settings->redirect_port > 0)
        json_object_set_new(doc, "redirectPort", json_integer(settings->redirect_port));

    hosts = collect(set, AEGIS_KIND_HOST, &n);
    res->hosts = aegis_calloc(n + 1, sizeof(*res->hosts));
    res->n_hosts = n;
    hv = json_array();
    claimed = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *h;

        res->hosts[i].host = hosts[i];
        h = host_json(hosts[i], src, claimed, &res->hosts[i]);
        if (h != NULL)
            json_array_append_new(hv, h);
    }
    json_decref(claimed);
    free(hosts);
    json_object_set_new(doc, "hosts", hv);
    certificates_json(set, src, res, doc, &res->n_certificates);
    if (settings->fallback_chain_pem != NULL)
        json_object_set_new(doc, "fallback",
                            json_pack("{s:s, s:s}", "certificatePEM", settings->fallback_chain_pem,
                                      "privateKeyPEM", settings->fallback_key_pem));
    if (settings->n_challenges > 0) {
        json_t *cv = json_array();

        for (size_t i = 0; i < settings->n_challenges; i++)
            json_array_append_new(cv, json_pack("{s:s, s:s}", "token",
                                                settings->challenges[i].token, "keyAuthorization",
                                                settings->challenges[i].key_authorization));
        json_object_set_new(doc, "acmeChallenges", cv);
    }
    *out = doc;
    return 0;
}

void render_result_dispose(struct render_result *res)
{
    free(res->hosts);
    memset(res, 0, sizeof(*res));
}
