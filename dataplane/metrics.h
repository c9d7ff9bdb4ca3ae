/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics: one process-wide registry, rendered in the Prometheus text exposition format (0.0.4)
 * on the metrics listener (--metrics-listen, metrics_server.h). Series (names are part of the
 * interface, documented in docs/metrics.md):
 *   aegis_dataplane_requests_total{host,code}            code: 1xx..5xx
 *   aegis_dataplane_request_duration_seconds             histogram (all hosts together)
 *   aegis_dataplane_upstream_errors_total{host,kind}     enum dp_upstream_error
 *   aegis_dataplane_tls_handshakes_total                 completed handshakes
 *   aegis_dataplane_tls_handshake_failures_total{reason} enum dp_tls_failure
 *   aegis_dataplane_connections_active
 *   aegis_dataplane_config_generation, aegis_dataplane_config_last_swap_timestamp_seconds,
 *   aegis_dataplane_config_hosts
 *   aegis_dataplane_certificate_not_after_timestamp_seconds{host}
 *
 * Every function is safe from any thread; the request-path ones (dp_metrics_request,
 * _upstream_error, _tls_*, _conn_*) take no lock and allocate nothing: per-host counters are
 * relaxed atomics, and the histogram is sharded per thread so that workers do not contend on its
 * cache lines. The host registry (a hash table by name behind a mutex) is only used at
 * configuration time (dp_metrics_host, dp_metrics_config_applied) and by the renderer.
 *
 * Host labels are the Host resource names (rconf_host.name); requests that matched no configured
 * host (an unknown Host, a malformed request, an HTTP-01 answer for any name) are counted under
 * host="". A host's series live for the process (counters stay monotonic across swaps) and
 * disappear from the output when the current configuration no longer has the host. Per-host
 * counters still at zero are left out of the output, which keeps a scrape of 10,000 hosts small.
 */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct dp_host_metrics; /* one host's counters */
struct rconf;

/* Upstream error kinds: X(enum suffix, label value). */
#define DP_UPSTREAM_ERRORS(X)                                                                      \
    X(CONNECT, "connect")                 /* refused, unreachable, reset while connecting */       \
    X(CONNECT_TIMEOUT, "connect_timeout") /* timeouts.connectMs passed */                          \
    X(READ_TIMEOUT, "read_timeout")       /* timeouts.readMs passed */                             \
    X(TLS, "tls")                         /* the upstream TLS handshake failed */                  \
    X(PROTOCOL, "protocol")               /* a broken response, or the connection closed early */  \
    X(NO_HEALTHY, "no_healthy")           /* every upstream down or ejected: 503 */

#define DP_UPSTREAM_ERR_ENUM_(name, label) DP_UPSTREAM_ERR_##name,
enum dp_upstream_error { DP_UPSTREAM_ERRORS(DP_UPSTREAM_ERR_ENUM_) DP_UPSTREAM_ERR__COUNT };
#undef DP_UPSTREAM_ERR_ENUM_

/* TLS handshake failure reasons: X(enum suffix, label value). Counted from the fatal alert of a
 * failed handshake (tls.c); a handshake abandoned without an alert (a client that disconnects or
 * times out mid-handshake) is not a failure here. */
#define DP_TLS_FAILURES(X)                                                                         \
    X(UNKNOWN_NAME, "unknown_name")     /* no certificate for the SNI and no fallback */           \
    X(PROTOCOL, "protocol")             /* version below the host's minimum, no shared cipher */   \
    X(CLIENT_CERT, "client_cert")       /* client certificate missing or not verified */           \
    X(CLIENT_REFUSED, "client_refused") /* the client aborted: it distrusts the certificate */     \
    X(OTHER, "other")

#define DP_TLS_FAIL_ENUM_(name, label) DP_TLS_FAIL_##name,
enum dp_tls_failure { DP_TLS_FAILURES(DP_TLS_FAIL_ENUM_) DP_TLS_FAIL__COUNT };
#undef DP_TLS_FAIL_ENUM_

/* The counters of host name (found or created; the pointer is valid for the process). */
struct dp_host_metrics *dp_metrics_host(const char *name);
/* Marks the hosts of rc as the current ones (with the notAfter of the certificate each TLS host
 * serves) and records the generation and the time of the swap. Called after every configuration
 * becomes current. */
void dp_metrics_config_applied(const struct rconf *rc);

/* One answered request of host hm (NULL: no configured host) with its status and duration. A
 * status outside 100-599 (no response was sent) is not counted. */
void dp_metrics_request(struct dp_host_metrics *hm, int status, uint64_t duration_us);
void dp_metrics_upstream_error(struct dp_host_metrics *hm, enum dp_upstream_error kind);
void dp_metrics_tls_handshake(void);
void dp_metrics_tls_failure(enum dp_tls_failure reason);
void dp_metrics_conn_opened(void);
void dp_metrics_conn_closed(void);

/* The exposition text (a new NUL-terminated string, *len bytes; free with free()). */
char *dp_metrics_render(size_t *len);

/* The label values of the enums (for tests and logs). */
const char *dp_metrics_upstream_error_name(enum dp_upstream_error kind);
const char *dp_metrics_tls_failure_name(enum dp_tls_failure reason);

#endif
