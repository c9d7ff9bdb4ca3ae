/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dataplane/metrics.c: the registry, the histogram arithmetic and the Prometheus text rendering
 * (families, label escaping, hosts leaving and rejoining the configuration, counters summed over
 * the per-thread shards).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/rconf.h"
#include "check.h"
#include "metrics.h"

#define THREADS 4
#define PER_THREAD 25000

/* The value of the line starting with series (exactly, then a space), or -1 when absent. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static bool has_line_prefix(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);

    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0)
            return true;
    }
    return false;
}

/* Every line is a comment (# HELP / # TYPE) or "name[{labels}] value", and every family has
 * HELP and TYPE before its samples. */
static bool well_formed(const char *text)
{
    char family[128] = "";

    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len;
        char line[512];

        if (nl == NULL)
            return false; /* the format wants a final newline */
        len = (size_t)(nl - p);
        if (len == 0 || len >= sizeof(line))
            return false;
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl + 1;
        if (strncmp(line, "# HELP ", 7) == 0) {
            sscanf(line + 7, "%127s", family);
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128];

            if (sscanf(line + 7, "%127s", name) != 1 || strcmp(name, family) != 0)
                return false;
            continue;
        }
        if (line[0] == '#' || strncmp(line, family, strlen(family)) != 0 || family[0] == '\0')
            return false;
        if (strrchr(line, ' ') == NULL)
            return false;
    }
    return true;
}

static void *hammer(void *arg)
{
    struct dp_host_metrics *hm = arg;

    for (int i = 0; i < PER_THREAD; i++)
        dp_metrics_request(hm, 200 + i % 2, 1000);
    return NULL;
}

int main(void)
{
    struct rconf_cert cert_a = {.not_after = 1893456000}; /* 2030-01-01 */
    /* On the heap: clang-tidy's padding check objects to an array of rconf_host on the stack. */
    struct rconf_host *hosts = aegis_calloc(3, sizeof(*hosts));
    struct rconf rc1 = {.generation = 7, .hosts = hosts, .n_hosts = 3};
    struct rconf rc2 = {.generation = 8, .hosts = hosts + 1, .n_hosts = 1};
    struct dp_host_metrics *a, *weird;
    pthread_t threads[THREADS];
    char *text;
    size_t len;

    hosts[0] = (struct rconf_host){.name = "default/a", .tls = true, .cert = &cert_a};
    hosts[1] = (struct rconf_host){.name = "ns/we\"ird\\name\nx"}; /* no TLS: no not-after */
    hosts[2] = (struct rconf_host){.name = "default/b", .tls = true, .cert = &cert_a};

    /* Before any configuration. */
    text = dp_metrics_render(&len);
    CHECK(text != NULL && strlen(text) == len, "render returns its length");
    CHECK(well_formed(text), "empty registry: well-formed exposition");
    CHECK(value_of(text, "aegis_dataplane_config_generation") == -1, "no generation yet: -1");
    CHECK(value_of(text, "aegis_dataplane_requests_total{host=\"\",code=\"2xx\"}") == 0,
          "requests without a host are always present");
    CHECK(value_of(text, "aegis_dataplane_request_duration_seconds_count") == 0, "count 0");
    free(text);

    a = dp_metrics_host("default/a");
    CHECK(a == dp_metrics_host("default/a"), "the same name gives the same counters");
    CHECK(a != dp_metrics_host("default/b"), "another name gives other counters");
    weird = dp_metrics_host(hosts[1].name);
    for (int i = 0; i < 200; i++) /* many hosts: the table grows without losing any */
        dp_metrics_host(i % 2 ? "filler/odd" : "filler/even");
    CHECK(a == dp_metrics_host("default/a"), "still the same counters after growth");

    dp_metrics_config_applied(&rc1);
    dp_metrics_request(a, 200, 0);
    dp_metrics_request(a, 204, 5000); /* exactly on the 0.005 bound: le is inclusive */
    dp_metrics_request(a, 404, 5001); /* just above: the 0.01 bucket */
    dp_metrics_request(weird, 503, 10000000);
    dp_metrics_request(NULL, 400, 10000001); /* above every bound: only +Inf */
    dp_metrics_request(a, 0, 1);             /* no response: not counted */
    dp_metrics_request(a, 99, 1);
    dp_metrics_request(a, 600, 1);
    dp_metrics_upstream_error(a, DP_UPSTREAM_ERR_CONNECT);
    dp_metrics_upstream_error(a, DP_UPSTREAM_ERR_CONNECT);
    dp_metrics_upstream_error(NULL, DP_UPSTREAM_ERR_NO_HEALTHY);
    dp_metrics_tls_handshake();
    dp_metrics_tls_failure(DP_TLS_FAIL_UNKNOWN_NAME);
    dp_metrics_tls_failure(DP_TLS_FAIL__COUNT); /* out of range: other */
    dp_metrics_conn_opened();
    dp_metrics_conn_opened();
    dp_metrics_conn_closed();

    text = dp_metrics_render(&len);
    CHECK(well_formed(text), "well-formed exposition");
    CHECK(value_of(text, "aegis_dataplane_config_generation") == 7, "generation");
    CHECK(value_of(text, "aegis_dataplane_config_last_swap_timestamp_seconds") > 1.6e9,
          "last swap time is now-ish");
    CHECK(value_of(text, "aegis_dataplane_config_hosts") == 3, "current hosts");
    CHECK(value_of(text, "aegis_dataplane_requests_total{host=\"default/a\",code=\"2xx\"}") == 2,
          "2xx of a");
    CHECK(value_of(text, "aegis_dataplane_requests_total{host=\"default/a\",code=\"4xx\"}") == 1,
          "4xx of a");
    CHECK(value_of(text, "aegis_dataplane_requests_total{host=\"default/a\",code=\"5xx\"}") == -1,
          "a zero per-host counter is left out");
    CHECK(value_of(text, "aegis_dataplane_requests_total{host=\"ns/we\\\"ird\\\\name\\nx\","
                         "code=\"5xx\"}") == 1,
          "label value escaped: quote, backslash, newline");
    CHECK(value_of(text, "aegis_dataplane_requests_total{host=\"\",code=\"4xx\"}") == 1,
          "request without a host");
    CHECK(!has_line_prefix(text, "aegis_dataplane_requests_total{host=\"filler/"),
          "registered hosts outside the configuration are not rendered");
#define B(le) "aegis_dataplane_request_duration_seconds_bucket{le=\"" le "\"}"
    CHECK(value_of(text, B("0.005")) == 2, "bucket 0.005 (inclusive bound)");
    CHECK(value_of(text, B("0.01")) == 3, "bucket 0.01 is cumulative");
    CHECK(value_of(text, B("5")) == 3, "bucket 5");
    CHECK(value_of(text, B("10")) == 4, "bucket 10 (inclusive bound)");
    CHECK(value_of(text, B("+Inf")) == 5, "bucket +Inf holds everything");
#undef B
    CHECK(value_of(text, "aegis_dataplane_request_duration_seconds_count") == 5, "count");
    CHECK(value_of(text, "aegis_dataplane_request_duration_seconds_sum") > 20.010002 - 1e-9 &&
              value_of(text, "aegis_dataplane_request_duration_seconds_sum") < 20.010002 + 1e-9,
          "sum in seconds");
    CHECK(strstr(text, "aegis_dataplane_request_duration_seconds_sum 20.010002\n") != NULL,
          "sum printed with microsecond precision");
    CHECK(value_of(text, "aegis_dataplane_upstream_errors_total{host=\"default/a\","
                         "kind=\"connect\"}") == 2,
          "upstream errors by kind");
    CHECK(value_of(text, "aegis_dataplane_upstream_errors_total{host=\"\",kind=\"no_healthy\"}") ==
              1,
          "upstream error without a host");
    CHECK(value_of(text, "aegis_dataplane_tls_handshakes_total") == 1, "handshakes");
    CHECK(value_of(text, "aegis_dataplane_tls_handshake_failures_total{reason=\"unknown_name\"}") ==
              1,
          "failure by reason");
    CHECK(value_of(text, "aegis_dataplane_tls_handshake_failures_total{reason=\"other\"}") == 1,
          "an out-of-range reason counts as other");
    CHECK(value_of(text, "aegis_dataplane_tls_handshake_failures_total{reason=\"protocol\"}") == 0,
          "every reason is rendered, zero included");
    CHECK(value_of(text, "aegis_dataplane_connections_active") == 1, "active connections");
    CHECK(value_of(text, "aegis_dataplane_certificate_not_after_timestamp_seconds{host=\"default/"
                         "a\"}") == 1893456000,
          "certificate not-after");
    CHECK(!has_line_prefix(text, "aegis_dataplane_certificate_not_after_timestamp_seconds{host="
                                 "\"ns/"),
          "no not-after for a host without TLS");
    CHECK(strstr(text, "# TYPE aegis_dataplane_request_duration_seconds histogram\n") != NULL &&
              strstr(text, "# TYPE aegis_dataplane_requests_total counter\n") != NULL &&
              strstr(text, "# TYPE aegis_dataplane_config_generation gauge\n") != NULL,
          "TYPE lines");
    free(text);

    /* A configuration without a: its series go, its counters stay for when it comes back. */
    dp_metrics_config_applied(&rc2);
    text = dp_metrics_render(&len);
    CHECK(value_of(text, "aegis_dataplane_config_generation") == 8, "new generation");
    CHECK(!has_line_prefix(text, "aegis_dataplane_requests_total{host=\"default/a\"") &&
              !has_line_prefix(text, "aegis_dataplane_certificate_not_after_timestamp_seconds{"
                                     "host=\"default/a\""),
          "a host left out of the configuration disappears");
    CHECK(value_of(text, "aegis_dataplane_config_hosts") == 1, "one host now");
    free(text);
    dp_metrics_config_applied(&rc1);
    text = dp_metrics_render(&len);
    CHECK(value_of(text, "aegis_dataplane_requests_total{host=\"default/a\",code=\"2xx\"}") == 2,
          "a host coming back keeps its counters (monotonic)");
    free(text);

    /* Concurrent requests from several threads: nothing lost across the shards. */
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, hammer, a);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    text = dp_metrics_render(&len);
    CHECK(value_of(text, "aegis_dataplane_request_duration_seconds_count") ==
              5 + THREADS * PER_THREAD,
          "histogram count from every thread");
    CHECK(value_of(text, "aegis_dataplane_requests_total{host=\"default/a\",code=\"2xx\"}") ==
              2 + THREADS * PER_THREAD,
          "host counter from every thread");
    free(text);
    free(hosts);
    return check_done();
}
