/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upstream health: active checks and passive ejection, shared by every worker.
 *
 * CONTRACT (written before the implementation; health.c implements it):
 * - Each upstream of each host has one struct dp_upstream_health, shared by all workers and
 *   reference counted, found again across generations by (host name, upstream URL) so that a
 *   configuration swap neither resets an upstream to healthy nor forgets an ejection.
 * - Active checks (the host's healthCheck) run on one thread of their own with its own event loop,
 *   never on a worker: GET <path> over the host's upstream TLS settings, interval/timeout/healthy-
 *   and unhealthyThreshold as configured. Upstreams start healthy.
 * - Passive ejection: a connect error marks the upstream ejected for a while (see health.c); the
 *   balancer skips unhealthy and ejected upstreams, and when every upstream is out it answers 503.
 * - The request path only reads atomics: no lock, no allocation.
 */
#ifndef DP_HEALTH_H
#define DP_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "aegis/err.h"

struct dp_gen;
struct dp_health;

/* What GET /status reports for one upstream (admin API). */
struct dp_upstream_report {
    bool healthy; /* the active checks' verdict (true without health checks) */
    bool ejected; /* passively ejected right now */
    int64_t
        last_change_ms;   /* wall clock (ms since the epoch) of the last verdict change; 0: never */
    char last_error[128]; /* the last check or connect error; "" when none */
};

/*
 * Passive ejection: an upstream whose connection failed (refused, connect timeout, TLS handshake)
 * is skipped for this long, or until an active check passes again, whichever comes first.
 */
#define DP_HEALTH_EJECT_MS 10000

/*
 * One upstream's shared state (health.c). Found or created by (host name, upstream URL) with one
 * more reference; dp_upstream_health_put drops it. Both take a process-wide lock: they are called
 * when a generation is built or freed, never per request.
 */
struct dp_upstream_health;
struct dp_upstream_health *dp_upstream_health_get(const char *host, const char *url);
/* Drops a reference. Accepts NULL. */
void dp_upstream_health_put(struct dp_upstream_health *uh);
/* Whether the balancer may use the upstream now: healthy and not ejected. Atomics only. */
bool dp_upstream_health_usable(struct dp_upstream_health *uh);
/* Whether the active checks hold the upstream healthy (ejected or not). Atomics only. */
bool dp_upstream_health_healthy(struct dp_upstream_health *uh);
/* Ejects the upstream for DP_HEALTH_EJECT_MS after a connect error (reason, e.g. "connect
 * refused"); logs a warning unless it was already ejected. Any thread. */
void dp_upstream_health_eject(struct dp_upstream_health *uh, const char *reason);
/* What GET /status shows (any thread). */
void dp_upstream_health_report(struct dp_upstream_health *uh, struct dp_upstream_report *out);

/* The checker: made by the server at start, freed at stop. */
int dp_health_new(struct dp_health **out, struct aegis_err *err);
/* Makes g the generation whose upstreams are checked (taking a reference; the previous one is
 * released). Called at start and after every swap, from any one thread. */
void dp_health_set_gen(struct dp_health *h, struct dp_gen *g);
/* Stops the thread and frees everything. Accepts NULL. */
void dp_health_free(struct dp_health *h);

#endif
