/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics: one process-wide registry, rendered in the Prometheus text exposition format (0.0.4)
 * on the metrics listener (--metrics-listen). Series (names are part of the interface, documented
 * in docs/metrics.md):
 *   aegis_dataplane_requests_total{host,code}            code: 1xx..5xx
 *   aegis_dataplane_request_duration_seconds{...}        histogram (all hosts together)
 *   aegis_dataplane_upstream_errors_total{host,kind}     enum dp_upstream_error
 *   aegis_dataplane_tls_handshakes_total                 completed handshakes
 *   aegis_dataplane_tls_handshake_failures_total{reason} enum dp_tls_failure
 *   aegis_dataplane_connections_active
 *   aegis_dataplane_config_generation, aegis_dataplane_config_last_swap_timestamp_seconds
 *   aegis_dataplane_certificate_not_after_timestamp_seconds{host}
 *
 * CONTRACT (written before the implementation; metrics.c implements it): every function is safe
 * from any thread; the request-path ones (dp_metrics_request, _upstream_error, _tls_*, _conn_*)
 * take no lock and allocate nothing. Host labels are the Host resource names
 * (rconf_host.name); a host's series live for the process (counters stay monotonic across swaps)
 * and disappear from the output when no current generation has the host.
 */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct dp_host_metrics; /* one host's counters */
struct rconf;

enum dp_upstream_error {
    DP_UPSTREAM_ERR_CONNECT,         /* refused, unreachable, reset while connecting */
    DP_UPSTREAM_ERR_CONNECT_TIMEOUT, /* timeouts.connectMs passed */
    DP_UPSTREAM_ERR_READ_TIMEOUT,    /* timeouts.readMs passed */
    DP_UPSTREAM_ERR_TLS,             /* the upstream TLS handshake failed */
    DP_UPSTREAM_ERR_PROTOCOL,        /* a broken response, or the connection closed early */
    DP_UPSTREAM_ERR_NO_HEALTHY,      /* every upstream down or ejected: 503 */
    DP_UPSTREAM_ERR__COUNT
};

enum dp_tls_failure {
    DP_TLS_FAIL_UNKNOWN_NAME, /* no certificate for the SNI and no fallback */
    DP_TLS_FAIL_PROTOCOL,     /* version below the host's minimum, no shared cipher, ... */
    DP_TLS_FAIL_CLIENT_CERT,  /* client certificate missing or not verified */
    DP_TLS_FAIL_OTHER,
    DP_TLS_FAIL__COUNT
};

/* The counters of host name (found or created; the pointer is valid for the process). */
struct dp_host_metrics *dp_metrics_host(const char *name);
/* Marks the hosts of rc as the current ones (with their certificates' notAfter) and records the
 * generation and the time of the swap. Called after every configuration becomes current. */
void dp_metrics_config_applied(const struct rconf *rc);

void dp_metrics_request(struct dp_host_metrics *hm, int status, uint64_t duration_us);
void dp_metrics_upstream_error(struct dp_host_metrics *hm, enum dp_upstream_error kind);
void dp_metrics_tls_handshake(void);
void dp_metrics_tls_failure(enum dp_tls_failure reason);
void dp_metrics_conn_opened(void);
void dp_metrics_conn_closed(void);

/* The exposition text (a new NUL-terminated string, *len bytes; free with free()). */
char *dp_metrics_render(size_t *len);

#endif
