/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rendered configuration: the versioned JSON document (schemas/rendered-config.schema.json,
 * docs/rendered-config.md) the controller renders and pushes to the dataplane. rconf_parse reads
 * and validates it completely - every certificate parses and matches its key, every upstream URL
 * parses, no hostname is served twice, every limit of limits.h holds - and turns it into a typed,
 * immutable snapshot shared by reference counting: the dataplane keeps one per configuration
 * generation, and every connection accepted under it holds a reference.
 *
 * Certificate selection for a TLS handshake (rconf_select) is a hash lookup over the snapshot: the
 * host's bound certificate; else a stored certificate whose SAN matches the name, exact before
 * wildcard; else the fallback. Its cost does not depend on the number of hosts.
 *
 * Thread safety: a snapshot is never modified after rconf_parse returns it, so any thread may read
 * it; rconf_ref and rconf_unref are atomic.
 */
#ifndef AEGIS_RCONF_H
#define AEGIS_RCONF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include "aegis/diag.h"

/* The document version this code reads ("version": 1). */
#define RCONF_VERSION 1

enum rconf_tls_version {
    RCONF_TLS_1_2,
    RCONF_TLS_1_3,
};

enum rconf_client_auth_mode {
    RCONF_CLIENT_AUTH_NONE,
    RCONF_CLIENT_AUTH_OPTIONAL, /* a certificate is asked for; one that is sent must verify */
    RCONF_CLIENT_AUTH_REQUIRE,  /* the handshake fails without a verified certificate */
};

/*
 * A certificate chain and its private key, parsed once. Shared between the hosts that use it and,
 * through rconf_parse's prev argument, between generations: it is immutable and reference counted.
 */
struct rconf_cert {
    atomic_size_t refs_;
    X509 *leaf;
    STACK_OF(X509) * chain; /* the certificates after the leaf, in the PEM's order; may be empty */
    EVP_PKEY *key;
    unsigned char digest[32]; /* SHA-256 over the PEM texts of chain and key: the cache key */
    char fingerprint[65];     /* SHA-256 of the leaf's DER, lowercase hex */
    char serial[67];          /* the leaf's serial, uppercase hex */
    int64_t not_before;       /* Unix seconds */
    int64_t not_after;        /* Unix seconds */
    char **dns_names;         /* the leaf's dNSName SANs, lowercased */
    size_t n_dns_names;
};

/* Edge client-certificate authentication of one host. */
struct rconf_client_auth {
    enum rconf_client_auth_mode mode;
    X509_STORE *store;              /* the CA certificates of caPEM; NULL with mode none */
    STACK_OF(X509_NAME) * ca_names; /* their subjects, sent in CertificateRequest */
};

struct rconf_upstream {
    char *url;  /* as written */
    bool tls;   /* https:// */
    char *host; /* without brackets for IPv6 */
    uint16_t port;
    char *path; /* "/" when the URL has none */
    unsigned weight;
};

struct rconf_health_check {
    bool enabled;
    char *path;
    int64_t interval_ms;
    int64_t timeout_ms;
    unsigned healthy_threshold;
    unsigned unhealthy_threshold;
};

struct rconf_upstream_tls {
    bool enabled;              /* upstreamTLS present */
    struct rconf_cert *client; /* clientCertPEM + clientKeyPEM; NULL: none */
    STACK_OF(X509) * ca;       /* caPEM; NULL: the system trust store */
    bool insecure_skip_verify;
    char *server_name; /* NULL: the upstream URL's host */
};

struct rconf_host {
    char *name;       /* the Host resource ("namespace/name") */
    char **hostnames; /* lowercased; "*.example.com" matches one label */
    size_t n_hostnames;
    bool tls;                /* served over HTTPS */
    struct rconf_cert *cert; /* the bound certificate; NULL: stored or fallback */
    enum rconf_tls_version min_version;
    struct rconf_client_auth client_auth;
    /* What a session or an HTTP/2 connection made for this host may be reused for: SHA-256 of the
     * minimum version, the client-auth mode and the client CA certificates. Equal policies and the
     * same certificate make two hosts interchangeable on one connection. */
    unsigned char policy[32];
    bool force_https;
    struct {
        bool enabled;
        int64_t max_age;
        bool include_subdomains;
        bool preload;
    } hsts;
    struct rconf_upstream *upstreams;
    size_t n_upstreams;
    struct rconf_health_check health_check;
    struct rconf_upstream_tls upstream_tls;
    int64_t connect_timeout_ms;
    int64_t read_timeout_ms;
    bool websocket;
    bool preserve_host;
};

struct rconf_listener {
    char *text; /* "0.0.0.0:80", "[::]:443" */
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

struct rconf_stored_cert {
    char *name; /* the Certificate resource */
    struct rconf_cert *cert;
};

struct rconf_challenge {
    char *token;
    char *key_authorization;
};

struct rconf_index; /* the name lookup tables (private) */

struct rconf {
    atomic_size_t refs_;
    int64_t version;
    int64_t generation;
    unsigned char sha256[32]; /* of the document's bytes */
    struct rconf_listener *http, *https;
    size_t n_http, n_https;
    unsigned workers;       /* 0: the dataplane's own default */
    uint16_t redirect_port; /* port of https:// redirects; 443 is left out of the URL */
    struct rconf_host *hosts;
    size_t n_hosts;
    struct rconf_stored_cert *certs;
    size_t n_certs;
    struct rconf_cert *fallback; /* NULL: unknown names fail the handshake */
    struct rconf_challenge *challenges;
    size_t n_challenges;
    struct rconf_index *index_;
};

/*
 * Parses and validates the document json (len bytes, at most AEGIS_LIMIT_RCONF_BYTES; need not be
 * NUL-terminated). Every problem is added to diags as an error whose path names the field
 * ("hosts[2].tls.certificatePEM"); doubtful but servable settings (insecureSkipVerify, an expired
 * certificate, a hostname the bound certificate does not cover) are warnings. On success (no
 * error) *out is a new snapshot with one reference; otherwise *out is NULL and the return value is
 * -AEGIS_E_INVALID (or -AEGIS_E_SYNTAX when the bytes are not JSON, -AEGIS_E_LIMIT when too large).
 *
 * prev, when not NULL, is a snapshot whose parsed certificates may be reused: a certificate and key
 * whose PEM texts are byte-identical to one of prev's is shared instead of parsed again, which
 * keeps a swap of 10,000 hosts cheap. prev is only read.
 */
int rconf_parse(const char *json, size_t len, const struct rconf *prev, struct rconf **out,
                struct aegis_diags *diags);

/* Takes one more reference to rc and returns it. */
struct rconf *rconf_ref(struct rconf *rc);
/* Drops a reference; the last one frees the snapshot. Accepts NULL. */
void rconf_unref(struct rconf *rc);

/* The result of a selection, pointing into the snapshot it was made from. */
struct rconf_sel {
    const struct rconf_cert *cert;               /* never NULL on success */
    const struct rconf_host *host;               /* the TLS host serving the name; NULL: none */
    enum rconf_tls_version min_version;          /* the host's, else 1.2 */
    const struct rconf_client_auth *client_auth; /* the host's, else NULL (none) */
    const unsigned char *policy;                 /* the host's policy, else the default policy's */
};

/*
 * Selects the certificate for a TLS server name (len bytes, any case, a trailing dot allowed;
 * NULL or empty when the client sent none): the bound certificate of the TLS host serving the name
 * (exact name, then the wildcard one label up), else a stored certificate whose SAN matches (exact,
 * then wildcard), else the fallback. Returns 0, or -AEGIS_E_NOTFOUND when no certificate applies.
 */
int rconf_select(const struct rconf *rc, const char *name, size_t len, struct rconf_sel *sel);

/*
 * The host serving name (as in rconf_select: exact, then wildcard; any case, a port is not
 * allowed), or NULL. tls_only leaves out hosts without TLS.
 */
const struct rconf_host *rconf_find_host(const struct rconf *rc, const char *name, size_t len,
                                         bool tls_only);

/* The ACME HTTP-01 challenge for token (len bytes), or NULL. */
const struct rconf_challenge *rconf_find_challenge(const struct rconf *rc, const char *token,
                                                   size_t len);

/*
 * True when a connection whose handshake selected a may carry a request for the host selected by
 * b: the same certificate and the same TLS policy (minimum version, client authentication). A
 * request failing this gets 421 Misdirected Request (RFC 9110 15.5.20).
 */
bool rconf_sel_compatible(const struct rconf_sel *a, const struct rconf_sel *b);

/* Lowercases name into buf (size bytes) without a trailing dot; returns the length, or 0 when the
 * name is empty or does not fit. Used for every lookup key. */
size_t rconf_name_normalize(const char *name, size_t len, char *buf, size_t size);

/*
 * The diagnostics as a JSON document (a new NUL-terminated string; free with free()):
 * {"errors": [{"path": "...", "message": "..."}], "warnings": [...], "dropped": N}
 * This is the body the admin API answers a refused configuration with.
 */
char *rconf_diags_to_json(const struct aegis_diags *diags);

#endif
