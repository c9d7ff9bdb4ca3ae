/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reconcile loop's core, level-triggered: it is handed the current resources (a snapshot of
 * the watched directories) and the time, and brings everything in line - Issuers checked,
 * explicit and implicit Certificates issued or renewed through certsync.h, Hosts' statuses, the
 * rendered configuration (render.h) handed to a push callback when its content changed, and
 * status files written when a status changed. No I/O of its own beyond the store, the status
 * files and the callbacks; time is a parameter, so tests drive it step by step.
 *
 * Scheduling: every object has a due time in one min-heap. A new snapshot makes everything due
 * at once; after that a Certificate comes back at its certsync next_check (renewalTime, the end
 * of a backoff, an issuer's retry time) - a timer keyed on that time, not a poll over all of
 * them - and at the latest after opts.resync_s (the periodic resync that heals anything missed).
 * A step runs at most opts.max_issuances issuances; the rest stay due and the step says so
 * (next due = now), so a burst of 10,000 new Certificates neither starves the rest of the loop
 * nor stops status and pushes from happening in between.
 */
#ifndef AEGIS_RECONCILE_H
#define AEGIS_RECONCILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/err.h"
#include "issuer/issuer.h"
#include "render.h"

struct challenges;
struct cmetrics_object;
struct store;
struct watch_snapshot;

struct reconcile_opts {
    struct store *store;     /* borrowed; opened with the master key */
    const char *secrets_dir; /* where secretRefs resolve */
    const char *status_dir;  /* status files go to <status_dir>/<Kind>/<ns>/<name>.json; NULL:
                                none */
    /* Certificates synced at once (on the pool: jobs out; without: issuances per step);
     * 0: RECONCILE_MAX_ISSUANCES_DEFAULT */
    unsigned max_issuances;
    /* Threads that sync Certificates (issue, import, store) off the step's thread; 0: on it,
     * within reconcile_step (tests). With workers, a step only starts the work: reconcile_fd
     * becomes readable when some comes back, and the next step takes it in. */
    unsigned workers;
    int64_t resync_s; /* 0: RECONCILE_RESYNC_DEFAULT_S */
    /* Dataplane settings the renderer needs (listeners, fallback, workers); generation and
     * challenges are filled in by the reconciler. Borrowed for the reconciler's life. */
    struct render_settings render;
    /*
     * Called with a rendered configuration whose content differs from the last one pushed
     * successfully (json: len bytes, NUL-terminated). Returns 0 when the dataplane took it; a
     * refusal (negative, err saying why; -EIO when the dataplane was not reached) is reported on
     * every Host and retried shortly.
     * NULL: nothing is pushed.
     */
    int (*push)(void *ctx, const char *json, size_t len, int64_t generation, struct aegis_err *err);
    void *push_ctx;
    /*
     * Called on the step's thread for every object whose status is written and for every object
     * that is gone (o->removed), so that metrics follow the statuses without a scan of all
     * objects per step. NULL: none.
     */
    void (*observe)(void *ctx, const struct cmetrics_object *o);
    void *observe_ctx;
    /*
     * The HTTP-01 challenge set (challenges.h), borrowed; NULL: no dataplane answers HTTP-01.
     * Its tokens are rendered into acmeChallenges, a change of its version makes a render due,
     * and an acknowledged push tells it which version was served. Issuers get its publisher.
     */
    struct challenges *challenges;
};

#define RECONCILE_MAX_ISSUANCES_DEFAULT 16
/* The daemon's worker threads: issuances wait on fsync and (ACME) on the network. */
#define RECONCILE_WORKERS_DEFAULT 4
#define RECONCILE_RESYNC_DEFAULT_S 600

/* The kinds of objects, for the per-kind counters of a report. */
enum reconcile_kind { RECONCILE_KIND_ISSUER, RECONCILE_KIND_CERTIFICATE, RECONCILE_KIND_HOST };
#define RECONCILE_KIND_COUNT 3
extern const char *const reconcile_kind_names[RECONCILE_KIND_COUNT];

/* Issuer types counted separately in one report; more than that share the last slot. */
#define RECONCILE_ISSUER_TYPES_MAX 8
#define RECONCILE_ISSUER_TYPE_NAME_MAX 32

/* Completed issuances (or imports) of one issuer type in one step. */
struct reconcile_issuances {
    char issuer_type[RECONCILE_ISSUER_TYPE_NAME_MAX]; /* "ca", "selfSigned", "custom", ... */
    uint32_t succeeded;
    uint32_t failed[ISSUER_REASON_COUNT_]; /* by enum issuer_reason */
};

/* What one step did, for logs, metrics and tests. */
struct reconcile_report {
    /* Objects reconciled, by kind and result ([k][0]: success, [k][1]: error - an Issuer not
     * ready, a Certificate whose issuance failed or whose store could not be read, a Host that is
     * not served or whose configuration was not pushed). */
    uint32_t reconciled[RECONCILE_KIND_COUNT][2];
    struct reconcile_issuances issuances[RECONCILE_ISSUER_TYPES_MAX];
    size_t n_issuances;
    size_t certificates_synced;
    size_t issued; /* new certificates stored */
    size_t failed; /* issuances that failed */
    size_t statuses_written;
    bool rendered;                      /* a configuration with new content was made */
    bool pushed;                        /* ... and the push callback accepted it */
    int64_t generation;                 /* of that configuration */
    char push_error[AEGIS_ERR_MSG_MAX]; /* the push callback's error; "" */
    /* Hosts whose served certificate differs from the issued one beyond the grace period, as
     * of the last reconcile_served (the aegis_certificate_served_mismatch gauge). */
    size_t served_mismatch;
};

struct reconciler;

int reconcile_new(const struct reconcile_opts *opts, struct reconciler **out,
                  struct aegis_err *err);
/* Frees the reconciler (the snapshot reference included). Accepts NULL. */
void reconcile_free(struct reconciler *r);

/* Hands over a new snapshot (taking a reference; the previous one is released at the next
 * step): every object becomes due. */
void reconcile_set_snapshot(struct reconciler *r, struct watch_snapshot *snap);

/* The dataplane lost its configuration (it was restarted): render and push at the next step
 * even if nothing changed. */
void reconcile_repush(struct reconciler *r);

/* Makes every object due at now (SIGHUP: e.g. after aegisctl changed the store). */
void reconcile_resync_all(struct reconciler *r, int64_t now);

/* Readable when work done on the workers waits for a step; -1 without workers. */
int reconcile_fd(const struct reconciler *r);
/* Certificates whose step is out on the workers. */
unsigned reconcile_in_flight(const struct reconciler *r);

/*
 * Runs what is due at now (Unix seconds). Returns when something is due next (Unix seconds;
 * now when work is left over), never 0 while the reconciler has objects (the resync).
 */
int64_t reconcile_step(struct reconciler *r, int64_t now, struct reconcile_report *rep);

/*
 * Issued against served: takes a dataplane's GET /status document (named dataplane in the
 * statuses, e.g. "local") and updates every Host's status.served and Served condition
 * (served.h); changed statuses are written at the next reconcile_step. Returns the number of
 * Hosts whose served certificate has differed from the issued one beyond the grace period.
 */
size_t reconcile_served(struct reconciler *r, const json_t *dp_status, const char *dataplane,
                        int64_t now);

/* The status JSON of an object (kind "Issuer", "Certificate" or "Host"), a new reference, or
 * NULL when there is no such object: for the read-only API and tests. */
json_t *reconcile_status_json(const struct reconciler *r, const char *kind, const char *ns,
                              const char *name);

#endif
