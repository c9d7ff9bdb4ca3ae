/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One reconcile step for one Certificate (certsync.h). The decision is made twice when something
 * was obtained: once to know whether to act, once more over what is stored afterwards, so the
 * status, the readiness and next_check always describe the certificate actually stored.
 */
#include "certsync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "csrflow.h"
#include "import.h"
#include "issuer/issuer.h"
#include "status.h"

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)

/* What is stored for the Certificate: metadata and the spec digest it was issued for. */
struct stored {
    bool found;
    struct store_meta meta;
    bool has_digest;
    struct decide_spec_digest digest;
};

static int read_stored(const struct certsync_env *env, const struct store_id *id, struct stored *s,
                       struct aegis_err *err)
{
    struct aegis_err ignored;
    int rc;

    store_meta_dispose(&s->meta);
    memset(s, 0, sizeof(*s));
    store_meta_init(&s->meta);
    rc = store_get_meta(env->store, id, &s->meta, err);
    if (rc == -AEGIS_E_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    s->found = true;
    /* A malformed digest counts as none: the certificate is adopted, not re-issued. */
    s->has_digest = decide_spec_digest_from_json(s->meta.extra, &s->digest, &ignored) == 0;
    return 0;
}

static void decide(const struct certsync_request *req, const struct stored *s,
                   const struct certsync_state *state, const char *supplied_fp, int64_t now,
                   struct decide_cert_result *d)
{
    struct decide_cert_input in = {
        .spec = req->spec,
        .generation = req->generation,
        .stored = s->found ? &s->meta : NULL,
        .stored_digest = s->has_digest ? &s->digest : NULL,
        .failures = &state->failures,
        .issuer_ready = req->issuer_ready,
        .supplied_fingerprint = supplied_fp,
    };

    decide_certificate(&in, now, d);
}

/* The key to certify: the stored one with rotationPolicy Never, else NULL (the issuer makes one). */
static EVP_PKEY *key_to_keep(const struct certsync_env *env, const struct store_id *id,
                             const struct aegis_certificate_spec *spec, bool stored)
{
    struct store_record rec;
    struct aegis_err ignored;
    EVP_PKEY *key = NULL;

    if (!stored || spec->private_key.rotation_policy != AEGIS_ROTATION_POLICY_NEVER)
        return NULL;
    if (store_get(env->store, id, &rec, &ignored) == 0 && rec.key_pem != NULL &&
        pki_key_from_pem(rec.key_pem, strlen(rec.key_pem), &key, &ignored) < 0)
        key = NULL;
    store_record_dispose(&rec);
    return key;
}

/* Stores an issuer's DONE result with the spec digest. */
static int store_issued(const struct certsync_env *env, const struct store_id *id,
                        const char *source, const struct issuer_result *res,
                        const struct decide_spec_digest *digest, struct aegis_err *err)
{
    struct store_record rec;
    size_t len;
    int rc;

    store_record_init(&rec);
    rc = pki_chain_to_pem(res->chain, &rec.chain_pem, &len, err);
    if (rc == 0)
        rc = pki_key_to_pem(res->key, &rec.key_pem, &len, err);
    if (rc == 0)
        rc = store_meta_from_pem(&rec.meta, rec.chain_pem, err);
    if (rc == 0) {
        rec.meta.source = aegis_strdup(source);
        rec.meta.extra = json_object();
        decide_spec_digest_to_json(digest, rec.meta.extra);
        rc = store_put(env->store, id, &rec, err);
    }
    store_record_dispose(&rec);
    return rc;
}

/* Records the digest with a certificate that matches the spec but has none (decide.h adopt). */
static void adopt(const struct certsync_env *env, const struct store_id *id,
                  const struct decide_spec_digest *digest)
{
    struct store_record rec;
    struct aegis_err ignored;

    if (store_get(env->store, id, &rec, &ignored) == 0) {
        if (rec.meta.extra == NULL)
            rec.meta.extra = json_object();
        decide_spec_digest_to_json(digest, rec.meta.extra);
        store_put(env->store, id, &rec, &ignored);
    }
    store_record_dispose(&rec);
}

/* Asks the Issuer; on DONE stores the result. Failures go to state->failures. */
static void issue(const struct certsync_env *env, const struct certsync_request *req,
                  const struct store_id *id, const struct stored *s,
                  const struct decide_cert_result *d, struct certsync_state *state, int64_t now,
                  struct certsync_result *out)
{
    struct issuer_request ir = {
        .cert_namespace = req->ns,
        .cert_name = req->name,
        .cert = req->spec,
        .issuer_name = req->spec->issuer_ref.name,
        .issuer = req->issuer,
        .now = now,
        .store = env->store,
        .secrets_dir = env->secrets_dir,
        .http01 = env->http01,
    };
    const struct issuer_ops *ops = NULL;
    struct issuer_result res;
    struct aegis_err e = {0};
    int rc;

    issuer_result_init(&res);
    ir.key = key_to_keep(env, id, req->spec, s->found);
    rc = issuer_for_spec(req->issuer, &ops, &e);
    if (rc == 0)
        rc = issuer_issue(&ir, &res, &e);
    if (rc == 0 && res.status == ISSUER_DONE) {
        rc = store_issued(env, id, ops->name, &res, &d->digest, &e);
        if (rc < 0)
            res.reason = ISSUER_REASON_STORE_ERROR;
    }
    out->issuer_type = ops != NULL ? ops->name : "unknown";
    out->attempted = rc < 0 || res.status == ISSUER_DONE;
    out->attempt_failed = rc < 0;
    out->failure_reason = res.reason;
    if (rc < 0) {
        decide_failure_record(&state->failures, now, d->digest.hex, issuer_reason_names[res.reason],
                              e.msg);
    } else if (res.status == ISSUER_PENDING) {
        out->next_check = res.retry_at;
        snprintf(out->pending_message, sizeof(out->pending_message), "%s", res.message);
    } else {
        decide_failure_clear(&state->failures);
        out->stored = true;
    }
    EVP_PKEY_free(ir.key);
    issuer_result_dispose(&res);
}

/*
 * Reads a supplied source (custom, pkcs12, csr) into imp; returns the leaf's fingerprint, or NULL
 * when the source holds none yet or does not validate (then why is in state->failures).
 */
static const char *read_supplied(const struct certsync_env *env, const struct certsync_request *req,
                                 struct certsync_state *state, int64_t now,
                                 struct import_result *imp, struct certsync_result *out)
{
    const struct aegis_certificate_spec *spec = req->spec;
    struct aegis_err e = {0};
    int rc;

    if (HAS(spec, API_F_CERTIFICATE_SPEC_CSR)) {
        struct csrflow_request cr = {
            .ns = req->ns, .name = req->name, .cert = spec, .store = env->store, .now = now};
        enum csrflow_state cs = CSRFLOW_WAITING;

        rc = csrflow_reconcile(&cr, env->secrets_dir, &cs, imp, &e);
        if (rc == 0 && cs == CSRFLOW_WAITING)
            return NULL;
    } else {
        rc = import_from_spec(spec, req->ns, req->name, env->secrets_dir, now, imp, &e);
    }
    if (rc < 0) {
        enum issuer_reason reason = rc == -AEGIS_E_NOTFOUND ? ISSUER_REASON_SECRET_NOT_FOUND
                                                            : ISSUER_REASON_INVALID_REQUEST;

        decide_failure_record(&state->failures, now, NULL, issuer_reason_names[reason], e.msg);
        out->attempted = true;
        out->attempt_failed = true;
        out->failure_reason = reason;
        return NULL;
    }
    decide_failure_clear(&state->failures);
    return imp->rec.meta.fingerprint;
}

int certsync_run(const struct certsync_env *env, const struct certsync_request *req,
                 struct certsync_state *state, int64_t now, struct certsync_result *out,
                 struct aegis_err *err)
{
    const struct aegis_certificate_spec *spec = req->spec;
    bool supplied = HAS(spec, API_F_CERTIFICATE_SPEC_CUSTOM) ||
                    HAS(spec, API_F_CERTIFICATE_SPEC_PKCS12) ||
                    HAS(spec, API_F_CERTIFICATE_SPEC_CSR);
    struct status_cert_input si = {0};
    struct import_result imp;
    struct stored s = {0};
    const char *fp = NULL;
    struct store_id id;
    char before[65];
    int rc;

    memset(out, 0, sizeof(*out));
    import_result_init(&imp);
    store_meta_init(&s.meta);
    rc = store_id_set(&id, STORE_KIND_CERTIFICATE, req->ns, req->name, err);
    if (rc == 0)
        rc = read_stored(env, &id, &s, err);
    if (rc < 0)
        goto done;
    snprintf(before, sizeof(before), "%s", s.found ? s.meta.fingerprint : "");
    if (supplied) {
        out->issuer_type = HAS(spec, API_F_CERTIFICATE_SPEC_CSR)      ? "csr"
                           : HAS(spec, API_F_CERTIFICATE_SPEC_PKCS12) ? "pkcs12"
                                                                      : "custom";
        fp = read_supplied(env, req, state, now, &imp, out);
    }
    decide(req, &s, state, fp, now, &out->decision);

    if (out->decision.issue && supplied && !HAS(spec, API_F_CERTIFICATE_SPEC_CSR)) {
        bool unchanged = false;
        struct aegis_err e = {0};

        out->attempted = true;
        if (import_store(env->store, req->ns, req->name, &imp, &unchanged, &e) < 0) {
            decide_failure_record(&state->failures, now, NULL,
                                  issuer_reason_names[ISSUER_REASON_STORE_ERROR], e.msg);
            out->attempt_failed = true;
            out->failure_reason = ISSUER_REASON_STORE_ERROR;
        }
    } else if (out->decision.issue && !supplied && env->defer_issue) {
        out->deferred = true;
        goto done;
    } else if (out->decision.issue && !supplied) {
        issue(env, req, &id, &s, &out->decision, state, now, out);
    } else if (out->decision.adopt) {
        adopt(env, &id, &out->decision.digest);
    }

    /* Decide again over what is stored now: that is what the status describes. */
    rc = read_stored(env, &id, &s, err);
    if (rc < 0)
        goto done;
    out->stored = s.found && strcmp(before, s.meta.fingerprint) != 0;
    {
        int64_t pending = out->next_check;

        decide(req, &s, state, fp, now, &out->decision);
        out->next_check = out->decision.next_check;
        /* An issuer that is still working brings its own time; the decision would say "now". */
        if (pending != 0 && (out->next_check == 0 || out->next_check <= now))
            out->next_check = pending;
    }
    si.decision = &out->decision;
    si.stored = s.found ? &s.meta : NULL;
    si.failures = &state->failures;
    si.issuer_message = req->issuer_message;
    si.pending_message = out->pending_message;
    out->status_changed = status_certificate_update(&state->status, &si, now);
done:
    store_meta_dispose(&s.meta);
    import_result_dispose(&imp);
    return rc;
}

void certsync_state_dispose(struct certsync_state *state)
{
    api_dispose(&api_t_certificate_status, &state->status);
    memset(state, 0, sizeof(*state));
}
