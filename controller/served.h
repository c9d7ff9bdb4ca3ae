/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issued against served: a Host's status.served (schemas/api.yaml, ServedCertificate) filled from
 * what a dataplane reports in GET /status (docs/dataplane.md: per Host the certificate a
 * handshake is served, its serial, notAfter and since when), and the comparison of the serial
 * served with the serial of the certificate the controller issued and rendered for the Host.
 *
 * A difference is normal for a moment - a push is in flight, the dataplane is restarting - so it
 * becomes a mismatch only once it has lasted longer than a grace period: then the Host gets the
 * condition Served=False (reason ServedMismatch, naming both serials) and the reconciler counts
 * it (reconcile_report.served_mismatch, the aegis_certificate_served_mismatch gauge). The
 * comparison is a pure function of its inputs and an injected time; the reading is the daemon's.
 */
#ifndef AEGIS_SERVED_H
#define AEGIS_SERVED_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/api_types.gen.h"

/* How long issued and served may differ before it is a mismatch: a push in flight is not one. */
#define SERVED_GRACE_S_DEFAULT 120
/* How often the daemon reads GET /status besides after each push. */
#define SERVED_POLL_S 30
#define SERVED_CONDITION "Served"
#define SERVED_REASON_MATCH "Served"
#define SERVED_REASON_MISMATCH "ServedMismatch"
#define SERVED_REASON_PENDING "ServedPending"
/* Room for a message naming two serials (up to 128 hex digits each) and a duration. */
#define SERVED_MESSAGE_MAX 512

enum served_verdict {
    SERVED_VERDICT_NONE,     /* nothing to compare: no issued certificate is meant to be served */
    SERVED_VERDICT_MATCH,    /* the issued certificate is served */
    SERVED_VERDICT_PENDING,  /* they differ, for less than the grace period so far */
    SERVED_VERDICT_MISMATCH, /* they differ, for longer than the grace period */
};

/* What a dataplane's GET /status says of one Host. Every pointer borrows from that JSON. */
struct served_report {
    bool found;              /* the dataplane has the Host */
    const char *serial;      /* the certificate it serves (uppercase hex); NULL: none */
    const char *not_after;   /* RFC 3339, or NULL */
    const char *since;       /* since when it serves that certificate, or NULL */
    const char *source;      /* "bound", "stored", "fallback", or NULL */
    const json_t *hostnames; /* array of strings, or NULL */
};

/* The comparison's memory for one Host, caller's storage, zeroed at first. */
struct served_state {
    int64_t differs_since; /* when the difference was first seen; 0: none */
};

struct served_result {
    enum served_verdict verdict;
    char message[SERVED_MESSAGE_MAX]; /* for the Served condition; "" with NONE */
};

/*
 * Compares issued_serial (the serial of the certificate rendered for the Host; NULL or "" when
 * none is: no TLS, the fallback) with what the dataplane reports at now, and moves st along: a
 * difference starts its clock, a match or nothing to compare stops it. Serials compare without
 * case and leading zeros. grace_s <= 0: SERVED_GRACE_S_DEFAULT. A Host the dataplane does not
 * have (rep->found false) differs like a wrong serial does.
 */
void served_compare(const char *issued_serial, const struct served_report *rep, int64_t grace_s,
                    int64_t now, struct served_state *st, struct served_result *out);

/*
 * The hosts of a dataplane's GET /status document as an object keyed by "namespace/name" (a new
 * reference; an empty object for a document without hosts), so each Host is found in constant
 * time among 10,000.
 */
json_t *served_index_new(const json_t *dp_status);

/* What index (from served_index_new) says of Host ns/name. */
void served_report_of(const json_t *index, const char *ns, const char *name,
                      struct served_report *out);

/*
 * Brings a Host's status up to date: status.served becomes one entry per hostname the dataplane
 * (named dataplane, e.g. "local") reports for it with the serial, notAfter and since of what it
 * serves (empty when it does not have the Host), and the Served condition follows res: True on
 * a match, False with ServedMismatch on a lasting mismatch, left as it was while one is pending
 * (Unknown when there was none), removed when there is nothing to compare. Returns true when
 * anything changed.
 */
bool served_status_update(struct aegis_host_status *st, const struct served_report *rep,
                          const char *dataplane, const struct served_result *res,
                          int64_t generation, int64_t now);

#endif
