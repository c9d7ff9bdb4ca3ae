/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's decisions, as pure functions over state gathered by someone else: is this
 * Certificate due for issuance, and why; when should it be looked at again; what Certificate does
 * a Host with tls.issuerRef imply; what does a Host serve. Like cert-manager's
 * certificates-trigger and readiness controllers, with the I/O (store, issuers, files) kept out:
 * time is a parameter (the injected clock), nothing here reads the clock, the disk or the
 * network, so tests move time freely and the reconciler gets the same answer on every pass.
 *
 * Issuance is triggered, in this order of precedence, when
 *   DoesNotExist  no certificate is stored;
 *   Expired       the stored one is past notAfter;
 *   SpecChanged   a field that shapes the certificate differs from the one it was issued for
 *                 (the spec hash below; the field is named);
 *   Renewing      renewalTime (renewal.h, jittered by the fingerprint) is reached. A
 *                 renewBefore at least as long as the certificate's real lifetime (a CA that
 *                 issued for less than spec.duration) counts as unset - renewal two thirds in,
 *                 as cert-manager does - rather than "renew now", which would re-issue forever.
 * Otherwise the Certificate is UpToDate. A triggered issuance still waits when
 *   IssuerNotReady  its Issuer is missing or not ready (no attempt is spent), or
 *   BackoffActive   earlier attempts for the same spec failed: the next attempt comes
 *                   DECIDE_BACKOFF_INITIAL_S after the first failure, doubling per failure up
 *                   to DECIDE_BACKOFF_MAX_S (1 min, 2 min, 4 min ... 32 h; cert-manager uses
 *                   1 h ... 32 h), never a tight loop. A spec changed since the failures skips
 *                   the backoff once, as cert-manager's trigger controller does (it backs off
 *                   only while the failed CertificateRequest still matches the spec): the user
 *                   fixed something, so try it now. The count is not reset by that; only a
 *                   success resets it.
 *
 * A valid stored certificate is never re-issued because the controller restarted or a file was
 * re-read: the same spec hash and a renewalTime not reached is UpToDate, whatever else happened.
 *
 * Certificates with custom, pkcs12 or csr are supplied, not issued: the caller loads the source
 * and passes its leaf fingerprint; a different one is imported (SourceChanged), none yet waits
 * (WaitingForCertificate), and an expired supplied certificate cannot be renewed here (Expired,
 * no action). Neither backoff nor the Issuer applies to them.
 */
#ifndef AEGIS_DECIDE_H
#define AEGIS_DECIDE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/api_types.gen.h"
#include "aegis/diag.h"
#include "aegis/err.h"
#include "aegis/resource.h"
#include "aegis/store.h"

/* Backoff after failed issuances: 1 min, doubling per failure in a row, capped at 32 h. */
#define DECIDE_BACKOFF_INITIAL_S 60
#define DECIDE_BACKOFF_MAX_S (32 * 3600)

/* The API's default duration (schemas/api.yaml), for specs built by hand without one. */
#define DECIDE_DEFAULT_DURATION_MS ((int64_t)2160 * 3600 * 1000)

/* X(ENUM, "Name") - why a certificate is (or is not) being issued. Names are status reasons. */
#define DECIDE_REASONS(X)                                                                          \
    X(UP_TO_DATE, "UpToDate")                           /* nothing to do until renewalTime */      \
    X(DOES_NOT_EXIST, "DoesNotExist")                   /* nothing stored: issue */                \
    X(EXPIRED, "Expired")                               /* past notAfter: issue */                 \
    X(REVOKED, "Revoked")                               /* revoked (aegisctl): issue */            \
    X(SPEC_CHANGED, "SpecChanged")                      /* a hashed field changed: issue */        \
    X(RENEWING, "Renewing")                             /* renewalTime reached: issue */           \
    X(SOURCE_CHANGED, "SourceChanged")                  /* supplied certificate differs: import */ \
    X(WAITING_FOR_CERTIFICATE, "WaitingForCertificate") /* supplied source holds none yet */       \
    X(ISSUER_NOT_READY, "IssuerNotReady")               /* would issue; the Issuer is not ready */ \
    X(BACKOFF_ACTIVE, "BackoffActive")                  /* would issue; failures: wait */

enum decide_reason {
#define DECIDE_REASON_ENUM(e, name) DECIDE_REASON_##e,
    DECIDE_REASONS(DECIDE_REASON_ENUM)
#undef DECIDE_REASON_ENUM
        DECIDE_REASON_COUNT_
};
extern const char *const decide_reason_names[DECIDE_REASON_COUNT_];

/*
 * X(ENUM, "spec path") - the fields of a Certificate spec that shape the issued certificate, in
 * the order they enter the spec hash. Everything else is left out on purpose:
 *   renewBefore                only moves renewalTime, which is recomputed on every pass;
 *   privateKey.rotationPolicy  says what the next issuance does with the key, not that one is due;
 *   secretName                 where Kubernetes mode writes the pair, not what the pair is;
 *   custom, pkcs12, csr        supplied certificates are compared by their leaf fingerprint;
 *   metadata (labels, annotations, generation) - Kubernetes bumps generation for renewBefore
 *                              too, so generation cannot be the trigger.
 */
#define DECIDE_SPEC_FIELDS(X)                                                                      \
    X(DNS_NAMES, "dnsNames")             /* a set: order, case and duplicates do not count */      \
    X(IP_ADDRESSES, "ipAddresses")       /* a set of canonical (inet_ntop) addresses */            \
    X(URIS, "uris")                      /* a set */                                               \
    X(EMAIL_ADDRESSES, "emailAddresses") /* a set */                                               \
    X(COMMON_NAME, "commonName")                                                                   \
    X(SUBJECT, "subject") /* each attribute list in order: it is the DN's */                       \
    X(IS_CA, "isCA")                                                                               \
    X(USAGES, "usages") /* the effective set (defaults applied) */                                 \
    X(KEY_ALGORITHM, "privateKey.algorithm")                                                       \
    X(KEY_SIZE, "privateKey.size") /* the effective size (defaults applied) */                     \
    X(ISSUER_REF, "issuerRef")     /* kind and name */                                             \
    X(DURATION, "duration")        /* the effective duration */

enum decide_spec_field {
#define DECIDE_SPEC_FIELD_ENUM(e, name) DECIDE_SPEC_FIELD_##e,
    DECIDE_SPEC_FIELDS(DECIDE_SPEC_FIELD_ENUM)
#undef DECIDE_SPEC_FIELD_ENUM
        DECIDE_SPEC_FIELD_COUNT_,
    /* SpecChanged, but the record only says that the hash differs, not where. */
    DECIDE_SPEC_FIELD_UNKNOWN = DECIDE_SPEC_FIELD_COUNT_
};
extern const char *const decide_spec_field_names[DECIDE_SPEC_FIELD_COUNT_];

/* Hex digits of one field's digest: the first 64 bits of its SHA-256, enough to tell which. */
#define DECIDE_FIELD_HEX 16

/*
 * The spec hash: hex SHA-256 over the canonical encoding of the fields above (the version tag
 * "aegis-certificate-spec/1", then per field netstrings of its name, its item count and its
 * canonical items), plus a short digest per field so that a change can be named. Stored with
 * each issuance (in the store record's meta.extra, decide_spec_digest_to_json).
 */
struct decide_spec_digest {
    char hex[65];
    /* "" for a field the record does not know (written by an older version, or absent). */
    char field[DECIDE_SPEC_FIELD_COUNT_][DECIDE_FIELD_HEX + 1];
};

/* meta.extra keys of the stored digest. */
#define DECIDE_EXTRA_SPEC_HASH "specHash"
#define DECIDE_EXTRA_SPEC_FIELDS "specFields"

/*
 * Computes the digest of spec (borrowed). Defaults are applied to fields a hand-built spec left
 * out (duration, privateKey, usages), so a decoded spec and the same spec built by hand agree.
 * Always succeeds.
 */
void decide_spec_hash(const struct aegis_certificate_spec *spec, struct decide_spec_digest *out);

/* Sets the digest's two keys in extra (a JSON object, borrowed), replacing earlier values. */
void decide_spec_digest_to_json(const struct decide_spec_digest *d, json_t *extra);
/*
 * Reads the digest from extra (may be NULL). Returns 0, -AEGIS_E_NOTFOUND when extra holds no
 * spec hash, or -AEGIS_E_INVALID when it holds a malformed one (err says which key). Unknown
 * field names are ignored and missing ones are left "" so that a later version adding a field
 * does not re-issue every certificate.
 */
int decide_spec_digest_from_json(const json_t *extra, struct decide_spec_digest *out,
                                 struct aegis_err *err);

/* Failed issuances in a row since the last success: kept by the reconciler and in the status. */
struct decide_failures {
    uint32_t attempts;         /* 0: none */
    int64_t last_failure_time; /* Unix seconds of the latest failure */
    /*
     * The spec hash the failing attempts were made for; "" when not known (e.g. read back from
     * a status after a restart): then the spec counts as unchanged and the backoff runs out.
     */
    char spec_hash[65];
    char reason[64];   /* the failure's CamelCase reason (issuer_reason_names), for the status */
    char message[256]; /* what the issuer said, for the status */
};

/* 0 for no failures; else DECIDE_BACKOFF_INITIAL_S * 2^(attempts-1), at most ..._MAX_S. */
int64_t decide_backoff_delay(uint32_t attempts);
/* Records one more failure at now for the spec with this hash (NULL: unknown). */
void decide_failure_record(struct decide_failures *f, int64_t now, const char *spec_hash,
                           const char *reason, const char *message);
/* A success: no failures. */
void decide_failure_clear(struct decide_failures *f);

/* What decide_certificate looks at. Every pointer is borrowed. */
/*
 * The member of a stored certificate's meta.extra that marks it revoked (aegisctl certificate
 * revoke): {"at": Unix seconds, "reason": "keyCompromise"}. A revoked certificate is replaced
 * like an expired one, and is served meanwhile (there is nothing better to serve).
 */
#define DECIDE_REVOKED_KEY "revoked"

struct decide_cert_input {
    const struct aegis_certificate_spec *spec;
    int64_t generation;              /* metadata.generation, handed on to the status */
    const struct store_meta *stored; /* the stored record's metadata; NULL when none */
    /* The digest stored with that certificate; NULL when the record holds none. */
    const struct decide_spec_digest *stored_digest;
    const struct decide_failures *failures; /* NULL: none */
    bool issuer_ready;                      /* the referenced Issuer exists and is Ready */
    /*
     * custom, pkcs12, csr: the SHA-256 fingerprint (lowercase hex) of the leaf the source holds
     * now; NULL or "" when it holds none yet (a CSR not signed yet). Unused with issuerRef.
     */
    const char *supplied_fingerprint;
};

struct decide_cert_result {
    bool issue;                 /* obtain a certificate now (issue, or import a supplied one) */
    enum decide_reason reason;  /* why it is obtained, or why not */
    enum decide_reason trigger; /* what calls for a new certificate; UP_TO_DATE when nothing */
    /* SpecChanged (also noted when another trigger won): the first field that differs. */
    enum decide_spec_field changed_field;
    bool spec_changed;
    /*
     * The stored certificate matches the spec but the record's digest is missing or older than
     * this version's: the caller records digest with it (nothing is issued for that).
     */
    bool adopt;
    bool valid;    /* a stored certificate exists and now < notAfter: it keeps being served */
    bool ready;    /* valid, and nothing but renewal calls for a new one: the Ready condition */
    bool supplied; /* custom, pkcs12 or csr */
    int64_t generation;
    int64_t renewal_time;  /* of the stored certificate; 0 without one */
    int64_t backoff_until; /* end of the backoff of the failures, 0 when none applies */
    /*
     * When to decide again (Unix seconds), 0 for "only on an event" (an Issuer or a file
     * changing). now when issue is set; an issuer answering PENDING brings its own time.
     */
    int64_t next_check;
    struct decide_spec_digest digest; /* of the spec: stored with the next issuance */
};

/* Decides for in at now (Unix seconds) into out. Pure; always succeeds. */
void decide_certificate(const struct decide_cert_input *in, int64_t now,
                        struct decide_cert_result *out);

/* ---- Hosts ---- */

/*
 * A Host with tls.mode acme and tls.issuerRef gets an implicit Certificate named
 * "<host name>" DECIDE_IMPLICIT_SUFFIX in the Host's namespace (the "-tls" of Kubernetes TLS
 * Secret names): dnsNames are the Host's hostnames, issuerRef the Host's, everything else the
 * API's defaults.
 */
#define DECIDE_IMPLICIT_SUFFIX "-tls"

/*
 * Writes the implicit Certificate's name for host_name into buf (size >= STORE_NAME_MAX + 1 is
 * always enough). -AEGIS_E_LIMIT (err says so) when the name would be longer than a resource
 * name may be (253).
 */
int decide_implicit_name(const char *host_name, char *buf, size_t size, struct aegis_err *err);

/*
 * Builds the spec of host's implicit Certificate into out (caller's storage, initialised here; a
 * deep copy, freed with api_dispose(&api_t_certificate_spec, out)). -AEGIS_E_INVALID when host is
 * not a Host with tls.mode acme and an issuerRef.
 */
int decide_implicit_certificate(const struct aegis_resource *host,
                                struct aegis_certificate_spec *out, struct aegis_err *err);

/*
 * The explicit Certificate of set whose namespace and name are those of host's implicit one, or
 * NULL. Following cert-manager's ingress-shim, which never takes over a Certificate it does not
 * own, the explicit one wins: no implicit Certificate is made and the Host is bound to it.
 */
const struct aegis_resource *decide_implicit_conflict(const struct aegis_resource_set *set,
                                                      const struct aegis_resource *host);
/*
 * Reports every such collision (and every implicit name that is too long) to diags, naming the
 * Host, its tls.issuerRef and the Certificate's file and line. Returns how many were reported.
 */
size_t decide_implicit_conflicts(const struct aegis_resource_set *set, struct aegis_diags *diags);

/*
 * The name of the Certificate host serves for its names into buf (>= STORE_NAME_MAX + 1): the
 * implicit one (mode acme) or tls.certificateRef (mode custom). Returns 1 when there is one, 0
 * for mode none, or a negative code.
 */
int decide_host_certificate_name(const struct aegis_resource *host, char *buf, size_t size,
                                 struct aegis_err *err);

/* X(ENUM, "Reason") of a Host's Ready condition. */
#define DECIDE_HOST_REASONS(X)                                                                     \
    X(READY, "Ready")                                /* its certificate is ready and served */     \
    X(PLAIN_HTTP, "PlainHTTP")                       /* tls.mode none: nothing to wait for */      \
    X(CERTIFICATE_NOT_FOUND, "CertificateNotFound")  /* no such Certificate: fallback */           \
    X(CERTIFICATE_NOT_READY, "CertificateNotReady")  /* not ready: previous one or fallback */     \
    X(NOT_SERVED, "NotServed")                       /* left out of the configuration: why */      \
    X(CONFIGURATION_REFUSED, "ConfigurationRefused") /* the dataplane refused the config */        \
    X(DATAPLANE_UNREACHABLE, "DataplaneUnreachable") /* the push did not reach it */

enum decide_host_reason {
#define DECIDE_HOST_REASON_ENUM(e, name) DECIDE_HOST_REASON_##e,
    DECIDE_HOST_REASONS(DECIDE_HOST_REASON_ENUM)
#undef DECIDE_HOST_REASON_ENUM
        DECIDE_HOST_REASON_COUNT_
};
extern const char *const decide_host_reason_names[DECIDE_HOST_REASON_COUNT_];

/* What the dataplane serves for a Host's names. */
enum decide_host_serve {
    DECIDE_SERVE_PLAIN,       /* tls.mode none */
    DECIDE_SERVE_CERTIFICATE, /* the bound Certificate's stored certificate */
    DECIDE_SERVE_FALLBACK,    /* the self-signed fallback covering the names */
};

struct decide_host_input {
    bool tls;        /* tls.mode is not none */
    bool cert_found; /* the bound Certificate exists (explicit, or implicit and made) */
    bool cert_ready; /* its Ready condition is True (decide_cert_result.ready) */
    bool cert_valid; /* a stored certificate of it is within its validity (.valid) */
    bool conflict;   /* an explicit Certificate took the implicit one's name */
};

struct decide_host_result {
    enum decide_host_serve serve;
    bool ready;
    enum decide_host_reason reason;
};

/*
 * A Host is Ready when it serves plain HTTP or its Certificate is Ready. A missing Certificate,
 * or one without a valid stored certificate, is served with the fallback; a not-ready one that
 * still has a valid certificate (a renewal or a spec change under way, a failing issuer) keeps
 * serving it: replacing a working certificate by the fallback would only break clients.
 */
void decide_host(const struct decide_host_input *in, struct decide_host_result *out);

#endif
