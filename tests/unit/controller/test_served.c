/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/served.c: a table of comparisons stepped through an injected clock
 * (a match, a difference within and past the grace period, recovery, a Host the dataplane does
 * not have, no certificate served, nothing to compare, serials differing only in case and
 * leading zeros), then the index of a GET /status document and a Host's status.served and
 * Served condition built from it.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "aegis/api.h"
#include "check.h"
#include "served.h"
#include "status.h"

#define T0 1750000000LL /* 2025-06-15 */
#define GRACE 120

/* One step of a sequence: at t, the dataplane reports (found, serial); want that verdict. */
struct step {
    int64_t t;
    bool found;
    const char *serial;
    enum served_verdict want;
};

struct seq {
    const char *name;
    const char *issued;
    struct step steps[6];
    size_t n;
};

static const struct seq seqs[] = {
    {"match", "0A1B", {{T0, true, "0A1B", SERVED_VERDICT_MATCH}}, 1},
    {"case and leading zeros do not matter",
     "A1B",
     {{T0, true, "000a1b", SERVED_VERDICT_MATCH}},
     1},
    {"nothing issued: nothing to compare",
     NULL,
     {{T0, true, "0A1B", SERVED_VERDICT_NONE}, {T0 + 999, false, NULL, SERVED_VERDICT_NONE}},
     2},
    {"a difference within the grace period is pending, past it a mismatch",
     "BB",
     {{T0, true, "AA", SERVED_VERDICT_PENDING},
      {T0 + GRACE, true, "AA", SERVED_VERDICT_PENDING},
      {T0 + GRACE + 1, true, "AA", SERVED_VERDICT_MISMATCH},
      {T0 + 3600, true, "AA", SERVED_VERDICT_MISMATCH}},
     4},
    {"recovery: a match clears the mismatch and restarts the clock",
     "BB",
     {{T0, true, "AA", SERVED_VERDICT_PENDING},
      {T0 + 300, true, "AA", SERVED_VERDICT_MISMATCH},
      {T0 + 330, true, "BB", SERVED_VERDICT_MATCH},
      {T0 + 360, true, "AA", SERVED_VERDICT_PENDING},
      {T0 + 360 + GRACE + 1, true, "AA", SERVED_VERDICT_MISMATCH}},
     5},
    {"a Host missing from the dataplane differs too",
     "BB",
     {{T0, false, NULL, SERVED_VERDICT_PENDING},
      {T0 + GRACE + 30, false, NULL, SERVED_VERDICT_MISMATCH}},
     2},
    {"no certificate served for a TLS Host differs",
     "BB",
     {{T0, true, NULL, SERVED_VERDICT_PENDING},
      {T0 + GRACE + 30, true, NULL, SERVED_VERDICT_MISMATCH}},
     2},
    {"a clock that went back restarts the difference",
     "BB",
     {{T0 + 1000, true, "AA", SERVED_VERDICT_PENDING},
      {T0, true, "AA", SERVED_VERDICT_PENDING},
      {T0 + GRACE + 1, true, "AA", SERVED_VERDICT_MISMATCH}},
     3},
};

static void test_sequences(void)
{
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        struct served_state st = {0};

        for (size_t k = 0; k < seqs[i].n; k++) {
            const struct step *s = &seqs[i].steps[k];
            struct served_report rep = {.found = s->found, .serial = s->serial};
            struct served_result res;
            char what[256];

            served_compare(seqs[i].issued, &rep, GRACE, s->t, &st, &res);
            snprintf(what, sizeof(what), "%s: step %zu", seqs[i].name, k);
            CHECK_INT(res.verdict, s->want, what);
        }
    }
}

static void test_messages(void)
{
    struct served_state st = {0};
    struct served_report rep = {.found = true, .serial = "AA", .source = "fallback"};
    struct served_result res;

    served_compare("BB", &rep, 0, T0, &st, &res);
    served_compare("BB", &rep, 0, T0 + SERVED_GRACE_S_DEFAULT + 1, &st, &res);
    CHECK_INT(res.verdict, SERVED_VERDICT_MISMATCH, "grace 0 is the default grace period");
    CHECK(strstr(res.message, "serial AA (fallback)") != NULL &&
              strstr(res.message, "issued certificate is serial BB") != NULL,
          "the mismatch message names both serials and the source");
    CHECK(strstr(res.message, "2025-06-15T") != NULL, "... and since when they differ");
    rep.found = false;
    served_compare("BB", &rep, 0, T0 + 500, &st, &res);
    CHECK(strstr(res.message, "does not serve this Host") != NULL, "a missing Host is named so");
}

static const char *const DOC =
    "{\"serving\": true, \"generation\": 7, \"hosts\": ["
    " {\"name\": \"default/app\", \"hostnames\": [\"app.test\", \"www.app.test\"], \"tls\": true,"
    "  \"certificate\": {\"serial\": \"0A1B\", \"notBefore\": \"2025-06-15T00:00:00Z\","
    "   \"notAfter\": \"2025-09-13T00:00:00Z\", \"fingerprint\": \"ff\", \"source\": \"bound\","
    "   \"since\": \"2025-06-15T01:00:00Z\"}, \"upstreams\": [], \"warnings\": []},"
    " {\"name\": \"default/plain\", \"hostnames\": [\"plain.test\"], \"tls\": false,"
    "  \"certificate\": null, \"upstreams\": [], \"warnings\": []}]}";

static void test_index_and_status(void)
{
    json_error_t je;
    json_t *doc = json_loads(DOC, 0, &je), *index = served_index_new(doc), *j;
    struct served_report rep;
    struct served_state st = {0};
    struct served_result res;
    struct aegis_host_status hs;
    const struct aegis_condition *c;

    memset(&hs, 0, sizeof(hs));
    CHECK_INT(json_object_size(index), 2, "the index has both Hosts");
    served_report_of(index, "default", "app", &rep);
    CHECK(rep.found, "default/app is found");
    CHECK_STR(rep.serial, "0A1B", "its serial");
    CHECK_STR(rep.source, "bound", "its source");
    served_report_of(index, "default", "plain", &rep);
    CHECK(rep.found && rep.serial == NULL, "a Host without TLS has no serial");
    served_report_of(index, "other", "app", &rep);
    CHECK(!rep.found, "another namespace is not found");

    served_report_of(index, "default", "app", &rep);
    served_compare("0a1b", &rep, GRACE, T0, &st, &res);
    CHECK(served_status_update(&hs, &rep, "local", &res, 3, T0), "a first update changes it");
    CHECK_INT(hs.served.n, 2, "one served entry per hostname");
    CHECK_STR(hs.served.v[1].hostname, "www.app.test", "the second hostname");
    CHECK_STR(hs.served.v[0].serial_number, "0A1B", "the serial served");
    CHECK_STR(hs.served.v[0].not_after, "2025-09-13T00:00:00Z", "notAfter");
    CHECK_STR(hs.served.v[0].since, "2025-06-15T01:00:00Z", "since");
    CHECK_STR(hs.served.v[0].dataplane, "local", "the dataplane's name");
    c = status_condition_find(hs.conditions.v, hs.conditions.n, SERVED_CONDITION);
    CHECK(c != NULL && c->status == AEGIS_CONDITION_STATUS_TRUE, "Served is True on a match");
    CHECK(!served_status_update(&hs, &rep, "local", &res, 3, T0 + 30),
          "the same report again changes nothing");

    /* The dataplane loses the Host: pending keeps Served True, then it turns False. */
    served_report_of(index, "default", "gone", &rep);
    served_compare("0A1B", &rep, GRACE, T0 + 60, &st, &res);
    served_status_update(&hs, &rep, "local", &res, 3, T0 + 60);
    c = status_condition_find(hs.conditions.v, hs.conditions.n, SERVED_CONDITION);
    CHECK(c != NULL && c->status == AEGIS_CONDITION_STATUS_TRUE,
          "a pending difference keeps the condition as it was");
    CHECK_INT(hs.served.n, 0, "nothing served: no entries");
    served_compare("0A1B", &rep, GRACE, T0 + 60 + GRACE + 1, &st, &res);
    CHECK(served_status_update(&hs, &rep, "local", &res, 3, T0 + 60 + GRACE + 1),
          "a lasting mismatch changes the status");
    c = status_condition_find(hs.conditions.v, hs.conditions.n, SERVED_CONDITION);
    CHECK(c != NULL && c->status == AEGIS_CONDITION_STATUS_FALSE && c->reason != NULL &&
              strcmp(c->reason, SERVED_REASON_MISMATCH) == 0,
          "Served is False with ServedMismatch");
    j = status_to_json(&api_t_host_status, &hs);
    {
        struct aegis_host_status back;
        struct aegis_err e = {0};

        CHECK_INT(status_from_json(&api_t_host_status, j, &back, &e), 0,
                  "the status validates against the schema's HostStatus");
        api_dispose(&api_t_host_status, &back);
    }
    json_decref(j);

    /* Nothing to compare any more (e.g. the Host went plain HTTP): the condition goes. */
    served_report_of(index, "default", "plain", &rep);
    served_compare(NULL, &rep, GRACE, T0 + 1000, &st, &res);
    served_status_update(&hs, &rep, "local", &res, 4, T0 + 1000);
    CHECK(status_condition_find(hs.conditions.v, hs.conditions.n, SERVED_CONDITION) == NULL,
          "nothing to compare removes the Served condition");
    CHECK_INT(hs.served.n, 1, "the plain Host's hostname is listed");
    CHECK(hs.served.v[0].serial_number == NULL, "... without a serial");

    /* A pending difference on a Host that never had the condition: Unknown. */
    {
        struct aegis_host_status fresh;
        struct served_state st2 = {0};

        memset(&fresh, 0, sizeof(fresh));
        served_report_of(index, "default", "app", &rep);
        served_compare("FFFF", &rep, GRACE, T0, &st2, &res);
        served_status_update(&fresh, &rep, "local", &res, 1, T0);
        c = status_condition_find(fresh.conditions.v, fresh.conditions.n, SERVED_CONDITION);
        CHECK(c != NULL && c->status == AEGIS_CONDITION_STATUS_UNKNOWN && c->reason != NULL &&
                  strcmp(c->reason, SERVED_REASON_PENDING) == 0,
              "a first pending difference is Unknown, ServedPending");
        api_dispose(&api_t_host_status, &fresh);
    }

    api_dispose(&api_t_host_status, &hs);
    json_decref(index);
    json_decref(doc);
    {
        json_t *empty = json_object(), *ix = served_index_new(empty);

        CHECK_INT(json_object_size(ix), 0, "a document without hosts gives an empty index");
        json_decref(ix);
        json_decref(empty);
    }
}

int main(void)
{
    test_sequences();
    test_messages();
    test_index_and_status();
    return check_done();
}
