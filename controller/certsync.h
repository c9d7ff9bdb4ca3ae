/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One reconcile step for one Certificate: read what is stored, decide (decide.h), obtain a
 * certificate when the decision says so - from its Issuer (issuer.h), or from a supplied source
 * (custom / pkcs12 through import.h, csr through csrflow.h) - store it with the spec digest the
 * decision computed, and bring the Certificate's status up to date (status.h).
 *
 * The reconcile loop calls it for every explicit and implicit Certificate whenever its resources
 * change and when the returned next_check comes, and keeps the struct certsync_state between
 * calls (failures and status). It never reads the clock (now is a parameter) and is safe to call
 * from several threads for different Certificates.
 */
#ifndef AEGIS_CERTSYNC_H
#define AEGIS_CERTSYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "aegis/api_types.gen.h"
#include "aegis/err.h"
#include "decide.h"
#include "issuer/issuer.h"

struct store;

struct certsync_env {
    struct store *store;                /* opened with the master key */
    const char *secrets_dir;            /* where secretRefs resolve (secret.h) */
    const struct issuer_http01 *http01; /* NULL: no dataplane answers HTTP-01 challenges */
    /* Stop before asking an Issuer: the step only reads and decides, and says `deferred` when
     * an issuance is due (so that the caller runs it elsewhere, e.g. on a worker thread). */
    bool defer_issue;
};

/* One Certificate. Every pointer is borrowed for the call. */
struct certsync_request {
    const char *ns;
    const char *name;
    const struct aegis_certificate_spec *spec;
    int64_t generation; /* metadata.generation, for observedGeneration */
    /* The Issuer of spec.issuerRef: its spec (NULL when it does not exist) and readiness. Unused
     * for supplied certificates. */
    const struct aegis_issuer_spec *issuer;
    bool issuer_ready;
    const char *issuer_message; /* why the Issuer is not ready; may be NULL */
};

/* What the loop keeps per Certificate between calls. Zero it before the first call. */
struct certsync_state {
    struct decide_failures failures;
    struct aegis_certificate_status status; /* api_dispose(&api_t_certificate_status, ...) */
};

struct certsync_result {
    bool stored;         /* a new certificate was stored: the configuration must be rendered */
    bool status_changed; /* state->status changed: write it out */
    /* When to call again (Unix seconds); 0: only when its resources change. */
    int64_t next_check;
    struct decide_cert_result decision; /* the decision after this step */
    /* An issuance or import completed (or failed) in this step - not a PENDING one - for the
     * metrics: by which issuer type ("ca", "selfSigned", "custom", "pkcs12", "csr"; static
     * strings), and why it failed. */
    /* env->defer_issue and an Issuer must be asked: nothing else in out is set, and state is
     * as it was. */
    bool deferred;
    bool attempted;
    bool attempt_failed;
    enum issuer_reason failure_reason;
    const char *issuer_type;
    /* The issuer answered PENDING: what it waits for (issuer_result.message); "" otherwise. */
    char pending_message[256];
};

/*
 * Runs the step at now. Returns 0 - problems of the Certificate itself (an issuer refusing, a
 * source that does not validate) are recorded in state (failures, status conditions) and are
 * not errors of the call - or a negative code when the store cannot be read, with err.
 */
int certsync_run(const struct certsync_env *env, const struct certsync_request *req,
                 struct certsync_state *state, int64_t now, struct certsync_result *out,
                 struct aegis_err *err);

/* Frees what state holds; it can be zeroed and used again. */
void certsync_state_dispose(struct certsync_state *state);

#endif
