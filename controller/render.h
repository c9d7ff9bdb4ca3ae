/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The renderer: resources + stored certificates -> the dataplane's rendered configuration
 * (docs/rendered-config.md). A pure function of its inputs: the reconcile loop resolves key
 * material and PEM sources through struct render_source, and pushes the result when its bytes
 * change. The same inputs always give the same bytes (hosts and certificates in namespace/name
 * order, fields in a fixed order), so a re-read that changes nothing is not a push.
 *
 * What it decides, per Host (struct render_host_result, for the Host's status):
 * - tls.mode none: plain HTTP. acme: the implicit Certificate "<host>-tls" (decide.h); an explicit
 *   Certificate of that name wins. custom: tls.certificateRef. A bound Certificate without a
 *   usable stored certificate is served with the fallback (tls: {}), and the result says so.
 * - Security settings that cannot be resolved (a client-auth CA, an upstream CA bundle, an
 *   upstream client certificate) leave the Host OUT of the document with an error: serving it
 *   without them would silently drop a protection. The other Hosts are unaffected.
 * - A hostname already served by another Host (namespace/name order decides) leaves the later
 *   Host out with an error naming the other.
 * - Certificates bound to no Host are listed under "certificates" (matched by their SANs) when they
 *   have a stored certificate and are for server authentication.
 */
#ifndef AEGIS_CONTROLLER_RENDER_H
#define AEGIS_CONTROLLER_RENDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/err.h"
#include "aegis/resource.h"

/*
 * Resolvers for what the resources only reference. Each returns 0 with *pem (and *key_pem) set to
 * new NUL-terminated text the renderer frees (keys with pki_secret_free_str), -AEGIS_E_NOTFOUND
 * when there is none (yet), or another negative code with err saying why.
 */
struct render_source {
    void *ctx;
    /* The stored chain and key of Certificate ns/name, when it holds a currently valid one. */
    int (*certificate)(void *ctx, const char *ns, const char *name, char **chain_pem,
                       char **key_pem, struct aegis_err *err);
    /* The PEM text of src (inline, file or Secret) for a resource in ns. */
    int (*pem)(void *ctx, const char *ns, const struct aegis_pem_source *src, char **pem,
               struct aegis_err *err);
    /* The CA certificate of Issuer ns/name (spec.ca), for tls.clientAuth.issuerRef. */
    int (*issuer_ca)(void *ctx, const char *ns, const char *name, char **pem,
                     struct aegis_err *err);
};

struct render_challenge {
    const char *token;
    const char *key_authorization;
};

/* Settings of the dataplane rather than of any resource (controller flags). */
struct render_settings {
    int64_t generation;
    const char *const *http; /* listener addresses, "0.0.0.0:80", "[::]:80" */
    size_t n_http;
    const char *const *https;
    size_t n_https;
    unsigned workers;               /* 0: the dataplane's default */
    uint16_t redirect_port;         /* 0: the dataplane's default */
    const char *fallback_chain_pem; /* NULL: no fallback */
    const char *fallback_key_pem;
    const struct render_challenge *challenges;
    size_t n_challenges;
};

enum render_serve {
    RENDER_SERVE_PLAIN,       /* tls.mode none */
    RENDER_SERVE_CERTIFICATE, /* its bound Certificate */
    RENDER_SERVE_FALLBACK,    /* TLS with the fallback: the Certificate is missing or not ready */
    RENDER_SERVE_NONE,        /* left out of the document: see message */
};

struct render_host_result {
    const struct aegis_resource *host; /* in the set */
    enum render_serve serve;
    char certificate[256]; /* the bound Certificate's name; "" for mode none */
    char message[256 + AEGIS_ERR_MSG_MAX + 128]; /* why NONE or FALLBACK; "" otherwise */
};

struct render_result {
    struct render_host_result *hosts; /* one per Host of the set, in namespace/name order */
    size_t n_hosts;
    size_t n_certificates; /* listed under "certificates" */
};

/*
 * Renders set (its resources are only read) into *out (a new JSON object; json_decref it) and
 * res (render_result_dispose). Returns 0, or a negative code when nothing could be rendered
 * (only for invalid settings); problems of single resources are in res, not in the return value.
 */
int render_config(const struct aegis_resource_set *set, const struct render_settings *settings,
                  const struct render_source *src, json_t **out, struct render_result *res,
                  struct aegis_err *err);
void render_result_dispose(struct render_result *res);

#endif
