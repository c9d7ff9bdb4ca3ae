/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issued against served (served.h): the comparison with its grace period, the index of a
 * dataplane's GET /status by Host, and a Host's status.served and Served condition.
 */
#include "served.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aegis/alloc.h"
#include "aegis/api.h"
#include "status.h"

#define BIT(i) (UINT64_C(1) << (i))
/* The schema's maxLength of ServedCertificate's hostname and serialNumber. */
#define SERVED_HOSTNAME_MAX 253
#define SERVED_SERIAL_MAX 128

/* Serials are hex: "00AB" and "ab" are the same number. */
static bool same_serial(const char *a, const char *b)
{
    while (*a == '0' && a[1] != '\0')
        a++;
    while (*b == '0' && b[1] != '\0')
        b++;
    return strcasecmp(a, b) == 0;
}

void served_compare(const char *issued_serial, const struct served_report *rep, int64_t grace_s,
                    int64_t now, struct served_state *st, struct served_result *out)
{
    char since[STATUS_TIME_MAX];

    memset(out, 0, sizeof(*out));
    if (grace_s <= 0)
        grace_s = SERVED_GRACE_S_DEFAULT;
    if (issued_serial == NULL || issued_serial[0] == '\0') {
        st->differs_since = 0;
        out->verdict = SERVED_VERDICT_NONE;
        return;
    }
    if (rep->found && rep->serial != NULL && same_serial(rep->serial, issued_serial)) {
        st->differs_since = 0;
        out->verdict = SERVED_VERDICT_MATCH;
        snprintf(out->message, sizeof(out->message),
                 "the dataplane serves the issued certificate (serial %s)", issued_serial);
        return;
    }
    if (st->differs_since == 0 || st->differs_since > now)
        st->differs_since = now;
    out->verdict =
        now - st->differs_since > grace_s ? SERVED_VERDICT_MISMATCH : SERVED_VERDICT_PENDING;
    /* The start of the difference, not its length: the message stays the same from one poll to
     * the next, so the status file is not rewritten every time. */
    if (status_time_format(st->differs_since, since, sizeof(since)) < 0)
        snprintf(since, sizeof(since), "(unknown)");
    if (!rep->found)
        snprintf(out->message, sizeof(out->message),
                 "the dataplane does not serve this Host; the issued certificate is serial %s "
                 "(differing since %s)",
                 issued_serial, since);
    else if (rep->serial == NULL)
        snprintf(out->message, sizeof(out->message),
                 "the dataplane serves no certificate for this Host; the issued certificate is "
                 "serial %s (differing since %s)",
                 issued_serial, since);
    else
        snprintf(out->message, sizeof(out->message),
                 "the dataplane serves serial %.128s%s%s%s but the issued certificate is serial "
                 "%s (differing since %s)",
                 rep->serial, rep->source != NULL ? " (" : "",
                 rep->source != NULL ? rep->source : "", rep->source != NULL ? ")" : "",
                 issued_serial, since);
}

json_t *served_index_new(const json_t *dp_status)
{
    json_t *index = json_object();
    const json_t *hosts = json_object_get(dp_status, "hosts"), *h;
    size_t i;

    json_array_foreach(hosts, i, h)
    {
        const char *name = json_string_value(json_object_get(h, "name"));

        if (name != NULL)
            json_object_set(index, name, (json_t *)h);
    }
    return index;
}

void served_report_of(const json_t *index, const char *ns, const char *name,
                      struct served_report *out)
{
    char key[512];
    const json_t *h, *cert;

    memset(out, 0, sizeof(*out));
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    h = json_object_get(index, key);
    if (h == NULL)
        return;
    out->found = true;
    out->hostnames = json_object_get(h, "hostnames");
    cert = json_object_get(h, "certificate");
    if (!json_is_object(cert))
        return;
    out->serial = json_string_value(json_object_get(cert, "serial"));
    out->not_after = json_string_value(json_object_get(cert, "notAfter"));
    out->since = json_string_value(json_object_get(cert, "since"));
    out->source = json_string_value(json_object_get(cert, "source"));
}

/* Sets an optional RFC 3339 field from the dataplane's text, rewritten in our form (or left
 * out when it does not parse: the status never holds what the schema refuses). */
static void set_time(char **field, uint64_t *present, int bit, const char *text)
{
    char buf[STATUS_TIME_MAX];
    int64_t t;

    if (text == NULL || status_time_parse(text, &t) < 0 ||
        status_time_format(t, buf, sizeof(buf)) < 0)
        return;
    *field = aegis_strdup(buf);
    *present |= BIT(bit);
}

static void served_list_set(struct aegis_host_status *st, const struct served_report *rep,
                            const char *dataplane)
{
    size_t n = json_array_size(rep->hostnames), k = 0;
    struct aegis_served_certificate *v = n > 0 ? aegis_calloc(n, sizeof(*v)) : NULL;

    for (size_t i = 0; i < st->served.n; i++)
        api_dispose(&api_t_served_certificate, &st->served.v[i]);
    free(st->served.v);
    for (size_t i = 0; i < n; i++) {
        const char *hn = json_string_value(json_array_get(rep->hostnames, i));
        struct aegis_served_certificate *e = &v[k];

        if (hn == NULL || hn[0] == '\0' || strlen(hn) > SERVED_HOSTNAME_MAX)
            continue;
        e->hostname = aegis_strdup(hn);
        e->present |= BIT(API_F_SERVED_CERTIFICATE_HOSTNAME);
        if (dataplane != NULL && strlen(dataplane) <= SERVED_HOSTNAME_MAX) {
            e->dataplane = aegis_strdup(dataplane);
            e->present |= BIT(API_F_SERVED_CERTIFICATE_DATAPLANE);
        }
        if (rep->serial != NULL && strlen(rep->serial) <= SERVED_SERIAL_MAX) {
            e->serial_number = aegis_strdup(rep->serial);
            e->present |= BIT(API_F_SERVED_CERTIFICATE_SERIAL_NUMBER);
        }
        set_time(&e->not_after, &e->present, API_F_SERVED_CERTIFICATE_NOT_AFTER, rep->not_after);
        set_time(&e->since, &e->present, API_F_SERVED_CERTIFICATE_SINCE, rep->since);
        k++;
    }
    if (k == 0) {
        free(v);
        v = NULL;
    }
    st->served.v = v;
    st->served.n = k;
    if (k > 0)
        st->present |= BIT(API_F_HOST_STATUS_SERVED);
    else
        st->present &= ~BIT(API_F_HOST_STATUS_SERVED);
}

static void condition_remove(struct aegis_host_status *st, const char *type)
{
    for (size_t i = 0; i < st->conditions.n; i++) {
        if (st->conditions.v[i].type == NULL || strcmp(st->conditions.v[i].type, type) != 0)
            continue;
        api_dispose(&api_t_condition, &st->conditions.v[i]);
        memmove(&st->conditions.v[i], &st->conditions.v[i + 1],
                (st->conditions.n - i - 1) * sizeof(st->conditions.v[0]));
        st->conditions.n--;
        return;
    }
}

bool served_status_update(struct aegis_host_status *st, const struct served_report *rep,
                          const char *dataplane, const struct served_result *res,
                          int64_t generation, int64_t now)
{
    json_t *before = status_to_json(&api_t_host_status, st), *after;
    bool changed;

    served_list_set(st, rep, dataplane);
    switch (res->verdict) {
    case SERVED_VERDICT_NONE:
        condition_remove(st, SERVED_CONDITION);
        break;
    case SERVED_VERDICT_MATCH:
        status_condition_set(&st->conditions.v, &st->conditions.n, SERVED_CONDITION,
                             AEGIS_CONDITION_STATUS_TRUE, SERVED_REASON_MATCH, res->message,
                             generation, now);
        break;
    case SERVED_VERDICT_PENDING:
        /* A difference within the grace period says nothing yet: keep what was said. */
        if (status_condition_find(st->conditions.v, st->conditions.n, SERVED_CONDITION) == NULL)
            status_condition_set(&st->conditions.v, &st->conditions.n, SERVED_CONDITION,
                                 AEGIS_CONDITION_STATUS_UNKNOWN, SERVED_REASON_PENDING,
                                 res->message, generation, now);
        break;
    case SERVED_VERDICT_MISMATCH:
        status_condition_set(&st->conditions.v, &st->conditions.n, SERVED_CONDITION,
                             AEGIS_CONDITION_STATUS_FALSE, SERVED_REASON_MISMATCH, res->message,
                             generation, now);
        break;
    }
    if (st->conditions.n > 0)
        st->present |= BIT(API_F_HOST_STATUS_CONDITIONS);
    after = status_to_json(&api_t_host_status, st);
    changed = !json_equal(before, after);
    json_decref(before);
    json_decref(after);
    return changed;
}
