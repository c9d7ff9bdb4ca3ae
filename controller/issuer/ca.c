/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CA issuer: the built-in local CA (`ca: {}`) and given CAs (`ca: {secretRef}` or
 * `ca: {certificate, privateKey}`), plus the local CA's revocation list (RFC 5280 v2 CRL).
 * See ca.h for the layout of the local CA and the rules it signs by.
 */
#include "issuer/ca.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"
#include "aegis/store.h"
#include "secret.h"

/* In the state directory; see lock_take. */
#define CA_LOCK_FILE "ca.lock"

struct ca {
    /* References beyond the first (the local CA is shared by every issuance: local_cache). */
    _Atomic int extra_refs;
    X509 *signer;           /* signs leaves: the intermediate, or the given CA certificate */
    EVP_PKEY *signer_key;   /* its private key */
    STACK_OF(X509) * chain; /* what follows a leaf: the signer and its issuers, minus the root */
    X509 *root;             /* the trust anchor */
    EVP_PKEY *root_key;     /* the local CA's root key (signs sub-CAs); NULL for a given CA */
};

void ca_free(struct ca *ca)
{
    if (ca == NULL || atomic_fetch_sub(&ca->extra_refs, 1) > 0)
        return;
    X509_free(ca->signer);
    EVP_PKEY_free(ca->signer_key);
    pki_chain_free(ca->chain);
    X509_free(ca->root);
    EVP_PKEY_free(ca->root_key);
    free(ca);
}

X509 *ca_root(const struct ca *ca)
{
    return ca->root;
}

int ca_bundle_pem(const struct ca *ca, char **pem, size_t *len, struct aegis_err *err)
{
    return pki_cert_to_pem(ca->root, pem, len, err);
}

/* ---- the local CA in the store --------------------------------------------------------------- */

static int ca_id(struct store_id *id, const char *name, struct aegis_err *err)
{
    return store_id_set(id, STORE_KIND_CA, CA_STORE_NAMESPACE, name, err);
}

/* A loaded CA certificate and key from the store. */
struct ca_pair {
    X509 *cert;
    EVP_PKEY *key;
};

static void pair_dispose(struct ca_pair *p)
{
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
    p->cert = NULL;
    p->key = NULL;
}

/* Reads record name into p; -AEGIS_E_NOTFOUND (without a message) when it does not exist. */
static int pair_load(struct store *st, const char *name, struct ca_pair *p, struct aegis_err *err)
{
    struct store_id id;
    struct store_record rec;
    STACK_OF(X509) *chain = NULL;
    int rc;

    store_record_init(&rec);
    rc = ca_id(&id, name, err);
    if (rc < 0)
        goto out;
    rc = store_get(st, &id, &rec, err); /* the caller handles -AEGIS_E_NOTFOUND */
    if (rc < 0)
        goto out;
    if (rec.chain_pem == NULL || rec.key_pem == NULL) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                           "the local CA record ca/%s/%s lacks its certificate or key",
                           CA_STORE_NAMESPACE, name);
        goto out;
    }
    rc = pki_chain_from_pem(rec.chain_pem, strlen(rec.chain_pem), &chain, err);
    if (rc == 0)
        rc = pki_key_from_pem(rec.key_pem, strlen(rec.key_pem), &p->key, err);
    if (rc < 0)
        goto out;
    p->cert = sk_X509_shift(chain);
out:
    pki_chain_free(chain);
    store_record_dispose(&rec);
    return rc;
}

/* Writes a CA certificate and its key (sealed by the store) as record name. */
static int pair_store(struct store *st, const char *name, const struct ca_pair *p, int64_t now,
                      struct aegis_err *err)
{
    struct store_id id;
    struct store_record rec;
    int rc;

    store_record_init(&rec);
    rc = ca_id(&id, name, err);
    if (rc == 0)
        rc = pki_cert_to_pem(p->cert, &rec.chain_pem, NULL, err);
    if (rc == 0)
        rc = pki_key_to_pem(p->key, &rec.key_pem, NULL, err);
    if (rc == 0)
        rc = store_meta_from_x509(&rec.meta, p->cert, err);
    if (rc < 0)
        goto out;
    rec.meta.source = aegis_strdup("ca");
    rec.meta.updated_at = now;
    rc = store_put(st, &id, &rec, err);
out:
    store_record_dispose(&rec); /* cleanses the key PEM */
    return rc;
}

/*
 * Makes a CA certificate and key: the root (issuer NULL, self-signed, pathLen 1) or the
 * intermediate (signed by issuer, pathLen 0). The names carry a random tag so that two
 * installations' CAs never share a subject, which trust stores would confuse.
 */
static int ca_make(const char *what, const struct ca_pair *issuer, int path_len, int64_t now,
                   int64_t lifetime, struct ca_pair *out, struct aegis_err *err)
{
    unsigned char tag[4];
    char cn[64];
    char *org[] = {"Aegis"};
    struct aegis_x509_subject subject;
    struct pki_cert_req req;
    int64_t nb = 0, na = 0;
    int rc;

    out->cert = NULL;
    out->key = NULL;
    if (RAND_bytes(tag, sizeof(tag)) != 1)
        return aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "no random bytes for the CA name");
    snprintf(cn, sizeof(cn), "Aegis Local %s CA %02x%02x%02x%02x", what, tag[0], tag[1], tag[2],
             tag[3]);
    memset(&subject, 0, sizeof(subject));
    subject.organizations.v = org;
    subject.organizations.n = 1;
    memset(&req, 0, sizeof(req));
    req.common_name = cn;
    req.subject = &subject;
    req.is_ca = true;
    req.path_len = path_len;
    req.usages = PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(CERT_SIGN) | PKI_USAGE(CRL_SIGN);
    req.not_before = now - ISSUER_BACKDATE_S;
    req.not_after = now + lifetime;
    /* An intermediate never outlives its root. */
    if (issuer != NULL && pki_cert_validity(issuer->cert, &nb, &na) == 0 && req.not_after > na)
        req.not_after = na;
    /*
     * ECDSA P-256 for both CA keys: every TLS client verifies it (browsers, curl, Go, Java,
     * OpenSSL), it gives 128-bit security like the default leaf key, and its signatures are
     * small and fast - RSA would make every chain larger and issuance slower, and Ed25519 is
     * not accepted in certificate chains by browsers.
     */
    rc = pki_key_generate(PKI_KEY_EC_P256, &out->key, err);
    if (rc == 0)
        rc = pki_sign(&req, out->key, issuer ? issuer->cert : NULL, issuer ? issuer->key : out->key,
                      &out->cert, err);
    if (rc < 0)
        pair_dispose(out);
    return rc;
}

/* Whether cert was signed by issuer's key (and names it as issuer). */
static bool issued_by(X509 *cert, X509 *issuer)
{
    EVP_PKEY *pub = X509_get0_pubkey(issuer);
    bool ok =
        X509_check_issued(issuer, cert) == X509_V_OK && pub != NULL && X509_verify(cert, pub) == 1;

    ERR_clear_error();
    return ok;
}

/*
 * The local CA's lock, <state>/ca.lock: an exclusive flock held while the CA is checked for and
 * made, so that two processes opening a fresh state directory at once (the controller and
 * aegisctl) agree on one root instead of each storing its own, which would leave one of them
 * signing with a CA that nobody trusts. It is a file of its own, not the store's .lock: every
 * open store, this process's included, holds that one shared, so an exclusive flock on it would
 * wait forever. *fd is -1 when the store has no state directory (no other process shares it).
 */
static int lock_take(struct store *st, int *fd, struct aegis_err *err)
{
    const char *dir = store_fs_state_dir(st);
    char *path = NULL;
    int rc = 0;

    *fd = -1;
    if (dir == NULL)
        goto out;
    path = aegis_asprintf("%s/" CA_LOCK_FILE, dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*fd < 0) {
        rc = aegis_err_set(err, -errno, path, "cannot open the local CA's lock: %s",
                           strerror(errno));
        goto out;
    }
    /* Blocking is safe: the holder only makes and stores two certificates, waiting on nothing. */
    while (flock(*fd, LOCK_EX) != 0) {
        if (errno == EINTR)
            continue;
        rc = aegis_err_set(err, -errno, path, "cannot lock the local CA: %s", strerror(errno));
        close(*fd);
        *fd = -1;
        goto out;
    }
out:
    free(path);
    return rc;
}

static void lock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* drops the flock */
}

/*
 * Loads the local CA's root and intermediate into root and inter. With make false, returns 1
 * (loading nothing) when either is missing or due for replacement; with make true (under the
 * lock), makes and stores what is missing or due.
 */
static int local_pairs(struct store *st, int64_t now, bool make, struct ca_pair *root,
                       struct ca_pair *inter, struct aegis_err *err)
{
    int64_t nb = 0, na = 0;
    int rc;

    rc = pair_load(st, CA_ROOT_NAME, root, err);
    if (rc == -AEGIS_E_NOTFOUND && !make) {
        rc = 1;
        goto out;
    }
    if (rc == -AEGIS_E_NOTFOUND) {
        struct ca_pair orphan = {0};
        /* An intermediate without its root cannot be trusted by anyone; say so, do not guess. */
        rc = pair_load(st, CA_INTERMEDIATE_NAME, &orphan, NULL);
        pair_dispose(&orphan);
        if (rc != -AEGIS_E_NOTFOUND) {
            rc = aegis_err_set(err, -AEGIS_E_STATE, NULL,
                               "the local CA's intermediate exists without its root; delete "
                               "ca/%s/%s from the store to make a new CA",
                               CA_STORE_NAMESPACE, CA_INTERMEDIATE_NAME);
            goto out;
        }
        rc = ca_make("Root", NULL, 1, now, CA_ROOT_LIFETIME_S, root, err);
        if (rc == 0)
            rc = pair_store(st, CA_ROOT_NAME, root, now, err);
    }
    if (rc < 0)
        goto out;
    rc = pair_load(st, CA_INTERMEDIATE_NAME, inter, err);
    if (rc < 0 && rc != -AEGIS_E_NOTFOUND)
        goto out;
    /*
     * A new intermediate when there is none (first use, or a crash between the two writes), when
     * it nears its end, when it is not valid yet (the clock was set back), or when it is not
     * the root's (the root was replaced).
     */
    if (rc == -AEGIS_E_NOTFOUND || pki_cert_validity(inter->cert, &nb, &na) < 0 ||
        na - now < CA_INTERMEDIATE_RENEW_S || nb > now || !issued_by(inter->cert, root->cert)) {
        pair_dispose(inter);
        if (!make) {
            rc = 1;
            goto out;
        }
        rc = ca_make("Intermediate", root, 0, now, CA_INTERMEDIATE_LIFETIME_S, inter, err);
        if (rc == 0)
            rc = pair_store(st, CA_INTERMEDIATE_NAME, inter, now, err);
        if (rc < 0)
            goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        pair_dispose(root);
        pair_dispose(inter);
    }
    return rc;
}

/*
 * The local CA once opened, shared by every issuance: opening it decodes two private keys, which
 * with OpenSSL 3's decoders costs several times the signing itself (half of a 10,000-Certificate
 * cold start). It is used again while the store holds the same root and intermediate (their
 * fingerprints, read from the public part of the records) and the intermediate is not due for
 * renewal; anything else goes the long way, which renews and reloads.
 */
static pthread_mutex_t local_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    struct ca *ca;
    char root_fp[65], inter_fp[65];
    int64_t inter_not_before, inter_not_after;
} local_cache;

/* The stored fingerprint of ca/<ns>/name into fp ("" when unreadable). */
static void stored_fingerprint(struct store *st, const char *name, char fp[65])
{
    struct store_id id;
    struct store_record rec;

    fp[0] = '\0';
    store_record_init(&rec);
    if (ca_id(&id, name, NULL) == 0 && store_get_public(st, &id, &rec, NULL) == 0)
        snprintf(fp, 65, "%s", rec.meta.fingerprint);
    store_record_dispose(&rec);
}

static struct ca *local_cached(struct store *st, int64_t now, char root_fp[65], char inter_fp[65])
{
    struct ca *ca = NULL;

    stored_fingerprint(st, CA_ROOT_NAME, root_fp);
    stored_fingerprint(st, CA_INTERMEDIATE_NAME, inter_fp);
    pthread_mutex_lock(&local_mu);
    if (local_cache.ca != NULL && root_fp[0] != '\0' && strcmp(root_fp, local_cache.root_fp) == 0 &&
        strcmp(inter_fp, local_cache.inter_fp) == 0 && local_cache.inter_not_before <= now &&
        local_cache.inter_not_after - now >= CA_INTERMEDIATE_RENEW_S) {
        ca = local_cache.ca;
        atomic_fetch_add(&ca->extra_refs, 1);
    }
    pthread_mutex_unlock(&local_mu);
    return ca;
}

static void local_remember(struct ca *ca, const char *root_fp, const char *inter_fp)
{
    struct ca *old;

    atomic_fetch_add(&ca->extra_refs, 1);
    pthread_mutex_lock(&local_mu);
    old = local_cache.ca;
    local_cache.ca = ca;
    snprintf(local_cache.root_fp, sizeof(local_cache.root_fp), "%s", root_fp);
    snprintf(local_cache.inter_fp, sizeof(local_cache.inter_fp), "%s", inter_fp);
    if (pki_cert_validity(ca->signer, &local_cache.inter_not_before, &local_cache.inter_not_after) <
        0)
        local_cache.inter_not_after = 0; /* never used: renewal is always due */
    pthread_mutex_unlock(&local_mu);
    ca_free(old);
}

void ca_local_forget(void)
{
    struct ca *old;

    pthread_mutex_lock(&local_mu);
    old = local_cache.ca;
    memset(&local_cache, 0, sizeof(local_cache));
    pthread_mutex_unlock(&local_mu);
    ca_free(old);
}

static int local_open(struct store *st, int64_t now, struct ca **out, struct aegis_err *err);

int ca_local_open(struct store *st, int64_t now, struct ca **out, struct aegis_err *err)
{
    char root_fp[65], inter_fp[65];
    int rc;

    *out = local_cached(st, now, root_fp, inter_fp);
    if (*out != NULL)
        return 0;
    rc = local_open(st, now, out, err);
    if (rc == 0 && *out != NULL) {
        /* What is stored now: the long way may have made or renewed a pair. */
        stored_fingerprint(st, CA_ROOT_NAME, root_fp);
        stored_fingerprint(st, CA_INTERMEDIATE_NAME, inter_fp);
        if (root_fp[0] != '\0' && inter_fp[0] != '\0')
            local_remember(*out, root_fp, inter_fp);
    }
    return rc;
}

static int local_open(struct store *st, int64_t now, struct ca **out, struct aegis_err *err)
{
    struct ca_pair root = {0}, inter = {0};
    struct ca *ca = NULL;
    int lockfd = -1;
    int rc;

    *out = NULL;
    /*
     * Without the lock first: once the CA exists, opening it only reads. When something must be
     * made, everything is checked again under the lock, since another process may have made it
     * in the meantime (or be making it now).
     */
    rc = local_pairs(st, now, false, &root, &inter, err);
    if (rc == 1) {
        rc = lock_take(st, &lockfd, err);
        if (rc == 0)
            rc = local_pairs(st, now, true, &root, &inter, err);
    }
    if (rc < 0)
        goto out;
    ca = aegis_calloc(1, sizeof(*ca));
    ca->chain = sk_X509_new_null();
    if (ca->chain == NULL || sk_X509_push(ca->chain, inter.cert) <= 0) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "cannot make the CA chain");
        goto out;
    }
    X509_up_ref(inter.cert);
    ca->signer = inter.cert;
    ca->signer_key = inter.key;
    ca->root = root.cert;
    ca->root_key = root.key;
    inter = (struct ca_pair){0};
    root = (struct ca_pair){0};
    *out = ca;
    ca = NULL;
    rc = 0;
out:
    lock_release(lockfd);
    pair_dispose(&root);
    pair_dispose(&inter);
    ca_free(ca);
    return rc;
}

/* ---- a given CA ------------------------------------------------------------------------------ */

int ca_from_pem(const char *chain_pem, size_t chain_len, const char *key_pem, size_t key_len,
                struct ca **out, struct aegis_err *err)
{
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    struct ca *ca = NULL;
    X509 *cert;
    int rc, n;

    *out = NULL;
    rc = pki_chain_from_pem(chain_pem, chain_len, &chain, err);
    if (rc < 0)
        goto out;
    rc = pki_key_from_pem(key_pem, key_len, &key, err);
    if (rc < 0)
        goto out;
    cert = sk_X509_value(chain, 0);
    rc = pki_key_matches_cert(cert, key, err);
    if (rc < 0) {
        aegis_err_set(err, rc, NULL,
                      "the CA private key does not belong to the CA certificate (the first "
                      "certificate given)");
        goto out;
    }
    if (!(X509_get_extension_flags(cert) & EXFLAG_CA)) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                           "the CA certificate is not a CA (basicConstraints CA:TRUE is missing)");
        goto out;
    }
    if ((X509_get_extension_flags(cert) & EXFLAG_KUSAGE) &&
        !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                           "the CA certificate may not sign certificates (keyUsage lacks "
                           "keyCertSign)");
        goto out;
    }
    n = sk_X509_num(chain);
    for (int i = 0; i + 1 < n; i++)
        if (X509_check_issued(sk_X509_value(chain, i + 1), sk_X509_value(chain, i)) != X509_V_OK) {
            rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                               "the CA chain is out of order: certificate %d did not issue "
                               "certificate %d (give the CA certificate first, then its issuers)",
                               i + 2, i + 1);
            goto out;
        }
    ERR_clear_error();
    ca = aegis_calloc(1, sizeof(*ca));
    ca->signer = cert;
    X509_up_ref(cert);
    ca->root = sk_X509_value(chain, n - 1);
    X509_up_ref(ca->root);
    /* A self-signed top is the trust anchor: clients have it already, the chain leaves it out. */
    if (X509_get_extension_flags(ca->root) & EXFLAG_SS)
        X509_free(sk_X509_pop(chain));
    ca->signer_key = key;
    key = NULL;
    ca->chain = chain;
    chain = NULL;
    *out = ca;
    rc = 0;
out:
    pki_chain_free(chain);
    EVP_PKEY_free(key);
    return rc;
}

/* ---- signing --------------------------------------------------------------------------------- */

int ca_sign(struct ca *ca, const struct pki_cert_req *req, EVP_PKEY *subject_key,
            STACK_OF(X509) * *out, struct aegis_err *err)
{
    struct pki_cert_req r = *req;
    X509 *signer = ca->signer, *leaf = NULL;
    EVP_PKEY *signer_key = ca->signer_key;
    STACK_OF(X509) *chain = NULL;
    bool append_chain = true;
    int64_t na = 0;
    int rc;

    *out = NULL;
    if (r.is_ca) {
        r.path_len = 0;
        /* The intermediate's pathLen 0 allows no CA below it: the root signs sub-CAs. */
        if (ca->root_key != NULL) {
            signer = ca->root;
            signer_key = ca->root_key;
            append_chain = false;
        }
    }
    if (pki_cert_validity(signer, NULL, &na) == 0 && r.not_after > na)
        r.not_after = na;
    if (r.not_after <= r.not_before) {
        rc = aegis_err_set(err, -AEGIS_E_STATE, NULL,
                           "the CA certificate has expired; it cannot sign anything");
        goto out;
    }
    rc = pki_sign(&r, subject_key, signer, signer_key, &leaf, err);
    if (rc < 0)
        goto out;
    chain = sk_X509_new_null();
    if (chain == NULL || sk_X509_push(chain, leaf) <= 0) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "cannot make the chain");
        goto out;
    }
    leaf = NULL;
    for (int i = 0; append_chain && i < sk_X509_num(ca->chain); i++) {
        X509 *c = sk_X509_value(ca->chain, i);
        if (sk_X509_push(chain, c) <= 0) {
            rc = aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "cannot make the chain");
            goto out;
        }
        X509_up_ref(c);
    }
    *out = chain;
    chain = NULL;
out:
    X509_free(leaf);
    pki_chain_free(chain);
    return rc;
}

/* ---- the issuer ------------------------------------------------------------------------------ */

/* Loads the CA an Issuer spec names; res->reason says what went wrong. */
static int ca_for_spec(const struct aegis_ca_issuer *spec, const char *ns, const char *secrets_dir,
                       struct store *st, int64_t now, struct ca **ca, struct issuer_result *res,
                       struct aegis_err *err)
{
    char *crt = NULL, *key = NULL;
    size_t crt_len = 0, key_len = 0;
    int rc;

    *ca = NULL;
    if (API_HAS(spec, API_F_CA_ISSUER_SECRET_REF)) {
        rc = secret_read(secrets_dir, ns, spec->secret_ref.name, "tls.crt", &crt, &crt_len, err);
        if (rc == 0)
            rc =
                secret_read(secrets_dir, ns, spec->secret_ref.name, "tls.key", &key, &key_len, err);
    } else if (API_HAS(spec, API_F_CA_ISSUER_CERTIFICATE) ||
               API_HAS(spec, API_F_CA_ISSUER_PRIVATE_KEY)) {
        rc = secret_read_pem_source(&spec->certificate, ns, secrets_dir, "spec.ca.certificate",
                                    &crt, &crt_len, err);
        if (rc == 0)
            rc = secret_read_pem_source(&spec->private_key, ns, secrets_dir, "spec.ca.privateKey",
                                        &key, &key_len, err);
    } else {
        rc = st == NULL ? aegis_err_set(err, -AEGIS_E_STATE, NULL, "the local CA needs a store")
                        : ca_local_open(st, now, ca, err);
        if (rc < 0)
            res->reason = ISSUER_REASON_STORE_ERROR;
        goto out;
    }
    if (rc < 0) {
        res->reason =
            rc == -AEGIS_E_NOTFOUND ? ISSUER_REASON_SECRET_NOT_FOUND : ISSUER_REASON_INVALID_ISSUER;
        goto out;
    }
    rc = ca_from_pem(crt, crt_len, key, key_len, ca, err);
    if (rc < 0)
        res->reason = ISSUER_REASON_INVALID_ISSUER;
out:
    pki_secret_free(crt, crt_len);
    pki_secret_free(key, key_len);
    return rc;
}

static int ca_check(const struct aegis_issuer_spec *spec, const char *issuer_namespace,
                    const char *secrets_dir, struct aegis_err *err)
{
    struct issuer_result res;
    struct ca *ca = NULL;
    int rc;

    /* The local CA is checked (and made) on first use; only a given CA can be checked now. */
    if (!API_HAS(&spec->ca, API_F_CA_ISSUER_SECRET_REF) &&
        !API_HAS(&spec->ca, API_F_CA_ISSUER_CERTIFICATE) &&
        !API_HAS(&spec->ca, API_F_CA_ISSUER_PRIVATE_KEY))
        return 0;
    issuer_result_init(&res);
    rc = ca_for_spec(&spec->ca, issuer_namespace, secrets_dir, NULL, 0, &ca, &res, err);
    ca_free(ca);
    return rc;
}

static int ca_issue(const struct issuer_request *req, struct issuer_result *res,
                    struct aegis_err *err)
{
    struct pki_cert_req creq;
    struct ca *ca = NULL;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    int rc;

    rc = issuer__cert_req(req->cert, req->now, &creq, res, err);
    if (rc < 0)
        goto out;
    rc = ca_for_spec(&req->issuer->ca, req->cert_namespace, req->secrets_dir, req->store, req->now,
                     &ca, res, err);
    if (rc < 0 || ca == NULL)
        goto out;
    rc = issuer__leaf_key(req, &key, res, err);
    if (rc < 0)
        goto out;
    rc = ca_sign(ca, &creq, key, &chain, err);
    if (rc < 0) {
        res->reason =
            rc == -AEGIS_E_CRYPTO ? ISSUER_REASON_SIGNING_FAILED : ISSUER_REASON_INVALID_REQUEST;
        goto out;
    }
    res->ca = ca_root(ca);
    X509_up_ref(res->ca);
    res->chain = chain;
    chain = NULL;
    res->key = key;
    key = NULL;
    res->status = ISSUER_DONE;
    res->reason = ISSUER_REASON_ISSUED;
out:
    pki_chain_free(chain);
    EVP_PKEY_free(key);
    ca_free(ca);
    return rc;
}

const struct issuer_ops issuer_ca_ops = {
    .name = "ca",
    .spec_field = API_F_ISSUER_SPEC_CA,
    .check = ca_check,
    .issue = ca_issue,
};

/* ---- the revocation list --------------------------------------------------------------------- */

/*
 * The CRL's state, kept as the public "extra" JSON of the store record ca/<ns>/crl:
 *   {"number": N, "thisUpdate": t, "nextUpdate": t, "signer": "<intermediate fingerprint>",
 *    "revoked": [{"serial": "hex", "revokedAt": t, "reason": "keyCompromise"}, ...],
 *    "pem": "-----BEGIN X509 CRL-----..."}
 */
struct crl_state {
    uint64_t number;
    int64_t next_update;
    char signer[PKI_FINGERPRINT_HEX_SIZE];
    struct pki_revoked *revoked;
    size_t n;
    char *pem;
};

static void crl_state_dispose(struct crl_state *s)
{
    free(s->revoked);
    free(s->pem);
    memset(s, 0, sizeof(*s));
}

static int crl_id(struct store_id *id, struct aegis_err *err)
{
    return ca_id(id, CA_CRL_NAME, err);
}

/* Reads the CRL state; an absent record is an empty state. */
static int crl_state_load(struct store *st, struct crl_state *s, struct aegis_err *err)
{
    struct store_id id;
    struct store_meta meta;
    const json_t *revoked, *item;
    size_t i;
    int rc;

    memset(s, 0, sizeof(*s));
    store_meta_init(&meta);
    rc = crl_id(&id, err);
    if (rc < 0)
        goto out;
    rc = store_get_meta(st, &id, &meta, err);
    if (rc == -AEGIS_E_NOTFOUND) {
        rc = 0; /* no revocation yet */
        goto out;
    }
    if (rc < 0)
        goto out;
    if (meta.extra == NULL || !json_is_object(meta.extra))
        goto out;
    s->number = (uint64_t)json_integer_value(json_object_get(meta.extra, "number"));
    s->next_update = json_integer_value(json_object_get(meta.extra, "nextUpdate"));
    if (json_is_string(json_object_get(meta.extra, "signer")))
        snprintf(s->signer, sizeof(s->signer), "%s",
                 json_string_value(json_object_get(meta.extra, "signer")));
    if (json_is_string(json_object_get(meta.extra, "pem")))
        s->pem = aegis_strdup(json_string_value(json_object_get(meta.extra, "pem")));
    revoked = json_object_get(meta.extra, "revoked");
    if (!json_is_array(revoked))
        goto out;
    if (json_array_size(revoked) > AEGIS_LIMIT_CRL_ENTRIES) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, NULL, "the CRL record lists over %d serials",
                           AEGIS_LIMIT_CRL_ENTRIES);
        goto out;
    }
    s->revoked = aegis_calloc(json_array_size(revoked) + 1, sizeof(*s->revoked));
    json_array_foreach(revoked, i, item)
    {
        struct pki_revoked *r = &s->revoked[s->n];
        const char *serial = json_string_value(json_object_get(item, "serial"));
        const char *reason = json_string_value(json_object_get(item, "reason"));
        enum pki_crl_reason code = PKI_CRL_REASON_UNSPECIFIED;

        if (serial == NULL || pki_serial_normalize(serial, r->serial_hex, NULL) < 0)
            continue; /* a damaged entry is skipped rather than blocking every later CRL */
        if (reason != NULL)
            (void)pki_crl_reason_parse(reason, &code, NULL);
        r->reason = code;
        r->revoked_at = json_integer_value(json_object_get(item, "revokedAt"));
        s->n++;
    }
out:
    store_meta_dispose(&meta);
    return rc;
}

/* Signs a new CRL from s with the local CA's intermediate and stores the state with it. */
static int crl_rebuild(struct store *st, struct crl_state *s, int64_t now, X509_CRL **out,
                       struct aegis_err *err)
{
    struct ca *ca = NULL;
    X509_CRL *crl = NULL;
    struct store_id id;
    struct store_record rec;
    json_t *extra = NULL, *list = NULL;
    char *pem = NULL;
    int rc;

    store_record_init(&rec);
    *out = NULL;
    rc = ca_local_open(st, now, &ca, err);
    if (rc < 0)
        goto out;
    s->number++;
    s->next_update = now + CA_CRL_LIFETIME_S;
    if (ca == NULL) /* not reached: ca_local_open sets it when it succeeds */
        goto out;
    rc = pki_crl_make(ca->signer, ca->signer_key, s->revoked, s->n, now, s->next_update, s->number,
                      &crl, err);
    if (rc == 0)
        rc = pki_crl_to_pem(crl, &pem, NULL, err);
    if (rc == 0)
        rc = pki_fingerprint_sha256(ca->signer, s->signer);
    if (rc == 0)
        rc = crl_id(&id, err);
    if (rc < 0)
        goto out;
    list = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(list,
                              json_pack("{s:s, s:I, s:s}", "serial", s->revoked[i].serial_hex,
                                        "revokedAt", (json_int_t)s->revoked[i].revoked_at, "reason",
                                        pki_crl_reason_names[s->revoked[i].reason]));
    extra = json_pack("{s:I, s:I, s:I, s:s, s:o, s:s}", "number", (json_int_t)s->number,
                      "thisUpdate", (json_int_t)now, "nextUpdate", (json_int_t)s->next_update,
                      "signer", s->signer, "revoked", list, "pem", pem);
    list = NULL; /* json_pack's "o" took it */
    if (extra == NULL) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL, "cannot encode the CRL state");
        goto out;
    }
    rec.meta.source = aegis_strdup("ca");
    rec.meta.updated_at = now;
    rec.meta.extra = extra;
    extra = NULL;
    rc = store_put(st, &id, &rec, err);
    if (rc < 0)
        goto out;
    free(s->pem);
    s->pem = pem;
    pem = NULL;
    *out = crl;
    crl = NULL;
out:
    json_decref(list);
    json_decref(extra);
    store_record_dispose(&rec);
    free(pem);
    X509_CRL_free(crl);
    ca_free(ca);
    return rc;
}

int ca_revoke(struct store *st, const char *serial, enum pki_crl_reason reason, int64_t now,
              struct aegis_err *err)
{
    struct crl_state s;
    struct pki_revoked r;
    X509_CRL *crl = NULL;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = pki_serial_normalize(serial, r.serial_hex, err);
    if (rc < 0)
        return rc;
    r.revoked_at = now;
    r.reason = reason;
    rc = crl_state_load(st, &s, err);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < s.n; i++)
        if (strcmp(s.revoked[i].serial_hex, r.serial_hex) == 0)
            goto rebuild; /* already listed: the first revocation's date and reason stand */
    if (s.n >= AEGIS_LIMIT_CRL_ENTRIES) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, NULL, "the CRL already lists %d serials",
                           AEGIS_LIMIT_CRL_ENTRIES);
        goto out;
    }
    s.revoked = aegis_realloc(s.revoked, (s.n + 1) * sizeof(*s.revoked));
    s.revoked[s.n++] = r;
rebuild:
    rc = crl_rebuild(st, &s, now, &crl, err);
out:
    X509_CRL_free(crl);
    crl_state_dispose(&s);
    return rc;
}

int ca_crl(struct store *st, int64_t now, X509_CRL **out, struct aegis_err *err)
{
    struct crl_state s;
    struct ca *ca = NULL;
    char fp[PKI_FINGERPRINT_HEX_SIZE];
    BIO *bio = NULL;
    int rc;

    *out = NULL;
    rc = crl_state_load(st, &s, err);
    if (rc < 0)
        goto out;
    /* The intermediate may have been replaced since: then the CRL must be signed anew. */
    rc = ca_local_open(st, now, &ca, err);
    if (rc == 0 && ca != NULL)
        rc = pki_fingerprint_sha256(ca->signer, fp);
    if (rc < 0)
        goto out;
    if (s.pem != NULL && s.next_update - now >= CA_CRL_REFRESH_S && strcmp(fp, s.signer) == 0) {
        bio = BIO_new_mem_buf(s.pem, -1);
        *out = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
        if (*out != NULL)
            goto out;
        ERR_clear_error(); /* unreadable: rebuild it */
    }
    rc = crl_rebuild(st, &s, now, out, err);
out:
    BIO_free(bio);
    ca_free(ca);
    crl_state_dispose(&s);
    return rc;
}
