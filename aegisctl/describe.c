/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegisctl describe certificate|host|issuer NAME: the whole status of one object, read from the
 * status file aegis-controller writes, in a readable form (kubectl describe's layout):
 * conditions with reasons, messages and times, then per kind the certificate's validity, serial,
 * fingerprint and failure bookkeeping, or what the dataplanes serve for a Host, and the recent
 * transitions as events. -o json|yaml prints the status object itself.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/store.h"
#include "ctl.h"
#include "status.h"

#define EVENTS_MAX 16

/* "2025-06-15T00:00:00Z (5d ago)" or "(in 89d)". */
static void when(int ind, const char *label, const json_t *obj, const char *key, int64_t now)
{
    const char *s = json_string_value(json_object_get(obj, key));
    char rel[32];
    int64_t t;

    if (s == NULL)
        return;
    if (status_time_parse(s, &t) < 0) {
        printf("%*s%-*s %s\n", ind, "", 24 - ind, label, s);
        return;
    }
    ctl_human_duration(t > now ? t - now : now - t, rel, sizeof(rel));
    printf("%*s%-*s %s (%s%s%s)\n", ind, "", 24 - ind, label, s, t > now ? "in " : "", rel,
           t > now ? "" : " ago");
}

static void field(int ind, const char *label, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    if (json_is_string(v))
        printf("%*s%-*s %s\n", ind, "", 24 - ind, label, json_string_value(v));
    else if (json_is_integer(v))
        printf("%*s%-*s %lld\n", ind, "", 24 - ind, label, (long long)json_integer_value(v));
}

static void conditions(const json_t *st, int64_t now)
{
    const json_t *c;
    size_t i;

    printf("Conditions:\n");
    if (json_array_size(json_object_get(st, "conditions")) == 0)
        printf("  <none>\n");
    json_array_foreach(json_object_get(st, "conditions"), i, c)
    {
        printf("  %s=%s", ctl_str(c, "type"), ctl_str(c, "status"));
        if (json_is_string(json_object_get(c, "reason")))
            printf(" (%s)", json_string_value(json_object_get(c, "reason")));
        printf("\n");
        if (json_is_string(json_object_get(c, "message")))
            printf("    %-20s %s\n", "Message:", json_string_value(json_object_get(c, "message")));
        {
            const char *s = json_string_value(json_object_get(c, "lastTransitionTime"));
            int64_t t;
            char rel[32];

            if (s != NULL && status_time_parse(s, &t) == 0) {
                ctl_human_duration(now - t, rel, sizeof(rel));
                printf("    %-20s %s (%s ago)\n", "Last transition:", s, rel);
            }
        }
        if (json_is_integer(json_object_get(c, "observedGeneration")))
            printf("    %-20s %lld\n", "Observed generation:",
                   (long long)json_integer_value(json_object_get(c, "observedGeneration")));
    }
}

static void certificate(const json_t *st, int64_t now)
{
    printf("Certificate:\n");
    if (json_object_get(st, "serialNumber") == NULL) {
        printf("  <none stored yet>\n");
    } else {
        field(2, "Serial number:", st, "serialNumber");
        field(2, "Fingerprint SHA-256:", st, "fingerprintSHA256");
        field(2, "Issuer:", st, "issuer");
        field(2, "Revision:", st, "revision");
        when(2, "Not before:", st, "notBefore", now);
        when(2, "Not after:", st, "notAfter", now);
        when(2, "Renewal time:", st, "renewalTime", now);
    }
    printf("Failures:\n");
    if (json_integer_value(json_object_get(st, "failedIssuanceAttempts")) == 0) {
        printf("  <none>\n");
    } else {
        field(2, "Failed attempts:", st, "failedIssuanceAttempts");
        when(2, "Last failure:", st, "lastFailureTime", now);
        when(2, "Next retry:", st, "nextRetryTime", now);
    }
}

static void served(const json_t *st, int64_t now)
{
    const json_t *e;
    size_t i;

    printf("Served:\n");
    if (json_array_size(json_object_get(st, "served")) == 0)
        printf("  <nothing reported by a dataplane>\n");
    json_array_foreach(json_object_get(st, "served"), i, e)
    {
        printf("  %s (dataplane %s)\n", ctl_str(e, "hostname"), ctl_str(e, "dataplane"));
        field(4, "Serial number:", e, "serialNumber");
        when(4, "Not after:", e, "notAfter", now);
        when(4, "Served since:", e, "since", now);
    }
}

static int cmp_time(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "lastTransitionTime"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "lastTransitionTime"));

    return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

/* The conditions' last transitions, oldest first, as kubectl describe's events. */
static void events(const json_t *st, int64_t now)
{
    const json_t *v[EVENTS_MAX], *c;
    size_t n = 0, i;

    json_array_foreach(json_object_get(st, "conditions"), i, c)
    {
        if (n < EVENTS_MAX && json_is_string(json_object_get(c, "lastTransitionTime")))
            v[n++] = c;
    }
    printf("Events:\n");
    if (n == 0) {
        printf("  <none>\n");
        return;
    }
    qsort(v, n, sizeof(v[0]), cmp_time);
    printf("  %-8s %-22s %s\n", "AGE", "REASON", "TRANSITION");
    for (i = 0; i < n; i++) {
        char rel[32];

        ctl_relative_time(json_string_value(json_object_get(v[i], "lastTransitionTime")), now,
                          false, rel, sizeof(rel));
        printf("  %-8s %-22s %s became %s\n", rel, ctl_str(v[i], "reason"), ctl_str(v[i], "type"),
               ctl_str(v[i], "status"));
    }
}

static void usage(FILE *out)
{
    fprintf(out, "usage: aegisctl describe certificate|host|issuer NAME [-n NS] [--state-dir DIR]\n"
                 "                         [-o json|yaml]\n"
                 "\n"
                 "Prints the whole status aegis-controller reports for one object: conditions\n"
                 "with reasons, messages and times; validity, serial, fingerprint and failures of\n"
                 "a Certificate; what the dataplane serves for a Host.\n"
                 "\n"
                 "  -n, --namespace NS   the namespace (default \"default\")\n"
                 "  -d, --state-dir DIR  the controller's state directory (default\n"
                 "                       $AEGIS_STATE_DIR, else ./.aegis)\n"
                 "  -o, --output FORMAT  json or yaml: the status object itself\n");
}

int ctl_describe(int argc, char **argv)
{
    static const struct option longopts[] = {
        CTL_NAMESPACE_LONGOPT,
        {"state-dir", required_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},
        CTL_HELP_LONGOPTS_END,
    };
    const char *ns = "default", *state_dir = store_state_dir_default(), *output = NULL;
    enum aegis_kind kind;
    json_t *st = NULL;
    char msg[1024];
    int64_t now = (int64_t)time(NULL);
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "n:d:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            ns = optarg;
            break;
        case 'd':
            state_dir = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "yaml") != 0) {
                fprintf(stderr, "aegisctl describe: --output must be json or yaml\n");
                return CTL_EXIT_USAGE;
            }
            output = optarg;
            break;
        case 'h':
            usage(stdout);
            return CTL_EXIT_OK;
        default:
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 2 || ctl_kind_word(argv[optind], &kind) < 0) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    rc = ctl_status_read(state_dir, kind, ns, argv[optind + 1], &st, msg, sizeof(msg));
    if (rc < 0) {
        fprintf(stderr, "aegisctl describe: %s\n", msg);
        return CTL_EXIT_INVALID;
    }
    if (output != NULL && strcmp(output, "yaml") == 0) {
        ctl_print_yaml(stdout, st);
    } else if (output != NULL) {
        char *text = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        if (text != NULL)
            printf("%s\n", text);
        free(text);
    } else {
        printf("%-24s %s\n", "Name:", argv[optind + 1]);
        printf("%-24s %s\n", "Namespace:", ns);
        printf("%-24s %s\n", "Kind:", resource_kind_name(kind));
        printf("%-24s %s/status/%s/%s/%s.json\n", "Status file:", state_dir,
               resource_kind_name(kind), ns, argv[optind + 1]);
        if (json_is_integer(json_object_get(st, "observedGeneration")))
            printf("%-24s %lld\n", "Observed generation:",
                   (long long)json_integer_value(json_object_get(st, "observedGeneration")));
        if (json_is_string(json_object_get(st, "acmeAccountURI")))
            printf("%-24s %s\n", "ACME account:", ctl_str(st, "acmeAccountURI"));
        conditions(st, now);
        if (kind == AEGIS_KIND_CERTIFICATE)
            certificate(st, now);
        else if (kind == AEGIS_KIND_HOST)
            served(st, now);
        events(st, now);
    }
    json_decref(st);
    return CTL_EXIT_OK;
}
