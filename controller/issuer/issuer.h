/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The issuer interface. Each kind of Issuer (spec.ca, spec.selfSigned, later spec.acme and
 * spec.cloudflareOriginCA) is one `const struct issuer_ops` in its own file under
 * controller/issuer/, listed in the one registry table of registry.c; a fake (fake.c) stands in
 * for tests. An issuer turns one Certificate (its decoded spec and name) plus its Issuer's decoded
 * spec into a signed chain and the private key, or says why not in words a user can act on.
 *
 * Issuance may take several steps (ACME: order, authorizations, challenges, finalize, download).
 * issue() therefore returns either DONE (a chain and key) or PENDING ("call me again at or after
 * retry_at"). An issuer keeps whatever it needs between calls in the store (so a restart resumes
 * where it was, and the reconciler stays level-triggered): calling issue() again with the same
 * request continues the same attempt, and a request whose spec changed starts a new one. The
 * synchronous issuers (ca, selfSigned) always answer DONE or an error in one call.
 *
 * Time comes from the caller (req->now, from the controller's injected clock); no issuer reads
 * the clock itself, so tests can move time.
 */
#ifndef AEGIS_ISSUER_H
#define AEGIS_ISSUER_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "aegis/api_types.gen.h"
#include "aegis/err.h"

struct store;

/*
 * How an issuer has the dataplanes answer ACME HTTP-01 challenges (RFC 8555 section 8.3). The
 * reconciler implements it: present() adds the token to the rendered configuration's
 * acmeChallenges and pushes it; published() is true once the dataplanes have acknowledged a
 * generation holding it (only then may the CA be told to validate); cleanup() takes it out
 * again. Every function is safe to call from any thread (issue() runs on the issuance workers).
 */
struct issuer_http01 {
    void *ctx;
    int (*present)(void *ctx, const char *token, const char *key_authorization,
                   struct aegis_err *err);
    bool (*published)(void *ctx, const char *token);
    void (*cleanup)(void *ctx, const char *token);
};

/* Kubernetes-style condition reasons an issuer reports (CamelCase, for status conditions). */
#define ISSUER_REASONS(X)                                                                          \
    X(ISSUED, "Issued")                                                                            \
    X(PENDING, "Pending")                                                                          \
    X(INVALID_REQUEST, "InvalidRequest")       /* the Certificate asks for something bad */        \
    X(INVALID_ISSUER, "InvalidIssuer")         /* the Issuer's spec cannot be used */              \
    X(SECRET_NOT_FOUND, "SecretNotFound")      /* a referenced secret/file is missing */           \
    X(UNSUPPORTED_ISSUER, "UnsupportedIssuer") /* no implementation for this kind yet */           \
    X(STORE_ERROR, "StoreError")               /* the store failed (disk, master key) */           \
    X(SIGNING_FAILED, "SigningFailed")         /* a cryptographic operation failed */              \
    X(REJECTED, "Rejected")                    /* a remote CA refused the request */

enum issuer_reason {
#define ISSUER_REASON_ENUM(name, text) ISSUER_REASON_##name,
    ISSUER_REASONS(ISSUER_REASON_ENUM)
#undef ISSUER_REASON_ENUM
        ISSUER_REASON_COUNT_
};
extern const char *const issuer_reason_names[ISSUER_REASON_COUNT_];

/* One request to an issuer. Every pointer is borrowed for the duration of the call. */
struct issuer_request {
    const char *cert_namespace; /* the Certificate's metadata.namespace ("default" when unset) */
    const char *cert_name;      /* its metadata.name */
    const struct aegis_certificate_spec *cert;
    const char *issuer_name; /* the Issuer's metadata.name */
    const struct aegis_issuer_spec *issuer;
    int64_t now;             /* Unix seconds, from the controller's injected clock */
    struct store *store;     /* for issuer state (CA keys, ACME accounts and orders) */
    const char *secrets_dir; /* where secretRefs resolve in directory mode (secret.h) */
    /*
     * The private key to certify, or NULL to let the issuer generate one per cert->private_key
     * (rotationPolicy Never hands the previous key back here). Borrowed: a result's key is a new
     * reference (EVP_PKEY_up_ref) to it.
     */
    EVP_PKEY *key;
    /* The HTTP-01 publisher, or NULL where no dataplane answers challenges (then http01 solvers
     * cannot be used and say so). */
    const struct issuer_http01 *http01;
};

enum issuer_status {
    ISSUER_DONE,    /* chain and key are set */
    ISSUER_PENDING, /* nothing yet; call issue() again at or after retry_at */
};

/* What issue() hands back; initialized by issuer_result_init, released by _dispose. */
struct issuer_result {
    enum issuer_status status;
    enum issuer_reason reason; /* ISSUED, PENDING, or the failure's reason on error */
    STACK_OF(X509) * chain;    /* DONE: leaf first, then intermediates, without the root */
    EVP_PKEY *key;             /* DONE: the leaf's private key */
    X509 *ca;                  /* DONE: the trust anchor the chain leads to (ca.crt), or NULL */
    int64_t retry_at;          /* PENDING: Unix seconds */
    char message[256];         /* PENDING: what is awaited, for the status message */
};

/*
 * One revocation (RFC 5280 reason codes), from aegisctl certificate revoke. Every pointer is
 * borrowed for the call.
 */
struct issuer_revoke_request {
    const char *issuer_namespace; /* the Issuer's (and its Certificate's) namespace */
    const char *issuer_name;
    const struct aegis_issuer_spec *issuer;
    struct store *store;     /* where the issuer keeps its state (the ACME account) */
    const char *secrets_dir; /* where secretRefs resolve */
    int64_t now;
    X509 *cert; /* the leaf to revoke */
    int reason; /* CRLReason: 0 unspecified, 1 keyCompromise, 4 superseded, 5 cessation ... */
};

struct issuer_ops {
    const char *name; /* the Issuer spec key: "ca", "selfSigned", ... */
    int spec_field;   /* API_F_ISSUER_SPEC_*: the member of struct aegis_issuer_spec it serves */
    /*
     * Checks an Issuer spec beyond the schema (e.g. that a given CA's certificate and key load
     * and match) without issuing anything. May be NULL when there is nothing more to check.
     */
    int (*check)(const struct aegis_issuer_spec *spec, const char *issuer_namespace,
                 const char *secrets_dir, struct aegis_err *err);
    /*
     * Issues or continues issuing for req into res (initialized by the caller). Returns 0 with
     * res->status DONE or PENDING, or a negative code with err's message saying what to fix and
     * res->reason saying which kind of failure it was.
     */
    int (*issue)(const struct issuer_request *req, struct issuer_result *res,
                 struct aegis_err *err);
    /*
     * Has the CA revoke req->cert. Returns 0, or a negative code with err saying why (the CA's
     * words). NULL when this kind of Issuer cannot revoke through it (the local CA keeps its own
     * list: aegisctl ca revoke).
     */
    int (*revoke)(const struct issuer_revoke_request *req, struct aegis_err *err);
};

/* The registry (registry.c): every issuer, NULL-terminated. */
extern const struct issuer_ops *const issuer_registry[];

/*
 * The issuer serving spec (the one member present), or -AEGIS_E_UNSUPPORTED (with a message)
 * for a kind without an implementation yet, -AEGIS_E_INVALID when no kind is present.
 */
int issuer_for_spec(const struct aegis_issuer_spec *spec, const struct issuer_ops **ops,
                    struct aegis_err *err);
/*
 * Finds the issuer for req->issuer and runs it: the one entry point the reconciler calls.
 * res->reason is UNSUPPORTED_ISSUER when no issuer serves the spec.
 */
int issuer_issue(const struct issuer_request *req, struct issuer_result *res,
                 struct aegis_err *err);

void issuer_result_init(struct issuer_result *res);
void issuer_result_dispose(struct issuer_result *res);

/* ---- shared by the issuers (issuer.c) ---- */

/*
 * The leaf's key for req: a new reference to req->key, or a new key per
 * req->cert->private_key. On error res->reason is set.
 */
int issuer__leaf_key(const struct issuer_request *req, EVP_PKEY **key, struct issuer_result *res,
                     struct aegis_err *err);
/*
 * Fills a pki_cert_req from a Certificate spec: names, subject, usages (parsed; defaults when
 * empty), isCA, validity [now - ISSUER_BACKDATE_S, now + duration). On error res->reason is
 * INVALID_REQUEST.
 */
struct pki_cert_req;
int issuer__cert_req(const struct aegis_certificate_spec *cert, int64_t now,
                     struct pki_cert_req *out, struct issuer_result *res, struct aegis_err *err);

/* Certificates start this long before "now" so that a client whose clock is behind accepts them. */
#define ISSUER_BACKDATE_S 60

/* ---- the fake issuer (fake.c), for tests of the code that calls issuers ---- */

/* What the fake does; tests set the global issuer_fake before calling it. */
struct issuer_fake_control {
    int pending_calls; /* answer PENDING this many times first (counting down) */
    int64_t pending_delay_s;
    int fail_code;                  /* non-zero: fail with this code ... */
    enum issuer_reason fail_reason; /* ... this reason ... */
    const char *fail_message;       /* ... and this message */
    int calls;                      /* counts every issue() call */
};
extern struct issuer_fake_control issuer_fake;
/* Signs self-signed certificates for the request, after the scripted PENDING answers. */
extern const struct issuer_ops issuer_fake_ops;
/*
 * Tests of the code that calls issuer_issue set this (e.g. to &issuer_fake_ops) to have every
 * Issuer served by it; NULL (the default) uses the registry.
 */
extern const struct issuer_ops *issuer_override;

#endif
