/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's metrics registry and its health: what the reconcile loop reports (one call per
 * step, one per push, one per object whose status changed) is kept here under one lock, and the
 * HTTP thread (httpapi.h) renders it in the Prometheus text exposition format 0.0.4 and answers
 * /healthz and /readyz from it. Names follow cert-manager's (certmanager_certificate_* ->
 * aegis_certificate_*), so dashboards and alerts carry over. Nothing here holds key material:
 * names, times, counters.
 *
 * The registry is process-wide (one controller per process), like the dataplane's metrics.h.
 * Every function is thread-safe.
 */
#ifndef AEGIS_CMETRICS_H
#define AEGIS_CMETRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/api_types.gen.h"

struct reconcile_report;

/* A loop that has not beaten for this long is reported unhealthy by /healthz. */
#define CMETRICS_HEARTBEAT_STALE_S 30
/* The longest /readyz reason kept. */
#define CMETRICS_REASON_MAX 512

/* One object's state, as the reconcile loop last wrote its status. Every pointer is borrowed. */
struct cmetrics_object {
    const char *kind; /* "Issuer", "Certificate" or "Host" */
    const char *ns;
    const char *name;
    bool removed; /* the object is gone: forget it */
    /* Certificates: spec.issuerRef.name ("" for supplied ones) */
    const char *issuer_name;
    /* The Ready condition: false when there is none yet (then rendered as Unknown) */
    bool has_ready;
    enum aegis_condition_status ready;
    int64_t not_after;    /* Unix seconds; 0: no certificate stored */
    int64_t renewal_time; /* Unix seconds; 0: none */
    /* Hosts: the Certificate they serve ("" or NULL: none) and whether what the dataplane serves
     * lastingly differs from it (served.h): aegis_certificate_served_mismatch of that Certificate */
    const char *served_certificate;
    bool served_mismatch;
};

/* Forgets everything (for tests); the process start time and the setters' values included. */
void cmetrics_reset(void);

/* Records (or forgets, with o->removed) one object. */
void cmetrics_object(const struct cmetrics_object *o);

/* One reconcile step that took duration_s: its counters (reconcile.h's report). Also marks the
 * first snapshot reconciled, for /readyz. */
void cmetrics_step(const struct reconcile_report *rep, double duration_s);

/* One push to the dataplane: ok or not (error: why, for /readyz), how long it took, and the
 * generation that the dataplane serves after it when ok. */
void cmetrics_push(bool ok, const char *error, double duration_s, int64_t generation);

/* Hosts whose served certificate differs from the issued one for longer than tolerated (the
 * served-status checker sets it; 0 until then). */
void cmetrics_set_served_mismatch(const char *ns, const char *name, bool mismatch);

/* The loop is alive at now (Unix seconds); called on every turn of the loop. */
void cmetrics_heartbeat(int64_t now);

/* /healthz: true while the loop beat within CMETRICS_HEARTBEAT_STALE_S of now. */
bool cmetrics_healthy(int64_t now);
/* /readyz: true once a step ran and the last push succeeded; else false with why in reason. */
bool cmetrics_ready(char *reason, size_t size);

/* The exposition (text/plain; version=0.0.4) at now, a new NUL-terminated string of *len bytes;
 * the process metrics are read from /proc/self. */
char *cmetrics_render(int64_t now, size_t *len);

/* "InvalidRequest" -> "invalid_request": issuer reasons as Prometheus label values. Writes at most
 * size bytes (NUL included). */
void cmetrics_snake_case(const char *camel, char *out, size_t size);

#endif
