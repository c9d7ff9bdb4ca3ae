/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegisctl get issuers|certificates|hosts: a kubectl-like table of the objects of one kind with
 * their status, read from the status files aegis-controller writes under its state directory,
 * joined with the resources of files and directories when paths are given (then every resource
 * is listed, "<unknown>" where it has no status yet). -o wide adds columns, -o json|yaml prints
 * a List of the objects with their status for machines.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/api.h"
#include "aegis/store.h"
#include "ctl.h"
#include "decide.h"
#include "status.h"

#define COLS_MAX 12
#define CELL_MAX 512

enum out_format { OUT_TABLE, OUT_WIDE, OUT_JSON, OUT_YAML };

struct row {
    const char *ns, *name;
    const struct aegis_resource *res;  /* NULL: from the status files only */
    const struct aegis_resource *host; /* the Host of an implicit Certificate, or NULL */
    char implicit_name[STORE_NAME_MAX + 1];
    json_t *status; /* NULL: no status */
};

struct table {
    size_t ncols, nrows;
    const char *head[COLS_MAX];
    char (*cells)[COLS_MAX][CELL_MAX];
};

static void join_strv(char *buf, size_t size, const struct aegis_strv *sv)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < sv->n && o < size; i++) {
        int r = snprintf(buf + o, size - o, "%s%s", i ? "," : "", sv->v[i]);

        if (r < 0)
            break;
        o += (size_t)r;
    }
}

/* The hostnames status.served lists, each once. */
static void served_hostnames(const json_t *st, char *buf, size_t size)
{
    const json_t *e;
    size_t i, o = 0;

    buf[0] = '\0';
    json_array_foreach(json_object_get(st, "served"), i, e)
    {
        const char *h = json_string_value(json_object_get(e, "hostname"));
        int r;

        if (h == NULL || strstr(buf, h) != NULL || o >= size)
            continue;
        r = snprintf(buf + o, size - o, "%s%s", o ? "," : "", h);
        if (r < 0)
            break;
        o += (size_t)r;
    }
    if (buf[0] == '\0')
        snprintf(buf, size, "%s", CTL_UNKNOWN);
}

/* The CN of a distinguished name ("CN=Aegis Local Intermediate,O=..."), else the whole. */
static void dn_cn(const char *dn, char *buf, size_t size)
{
    const char *cn = dn != NULL ? strstr(dn, "CN=") : NULL;

    if (cn == NULL) {
        snprintf(buf, size, "%s", dn != NULL ? dn : CTL_UNKNOWN);
        return;
    }
    cn += 3;
    snprintf(buf, size, "%.*s", (int)strcspn(cn, ",/"), cn);
}

/* AGE: since metadata.creationTimestamp (Kubernetes); directory mode has none, so since the
 * oldest condition's lastTransitionTime - when the controller first reported on the object. */
static void age(const struct row *r, int64_t now, char *buf, size_t size)
{
    const json_t *c;
    const char *oldest = NULL;
    int64_t best = INT64_MAX, t;
    size_t i;

    if (r->res != NULL && r->res->meta.creation_timestamp != NULL) {
        ctl_relative_time(r->res->meta.creation_timestamp, now, false, buf, size);
        return;
    }
    json_array_foreach(json_object_get(r->status, "conditions"), i, c)
    {
        const char *s = json_string_value(json_object_get(c, "lastTransitionTime"));

        if (s != NULL && status_time_parse(s, &t) == 0 && t < best) {
            best = t;
            oldest = s;
        }
    }
    ctl_relative_time(oldest, now, false, buf, size);
}

static const char *cond_field(const json_t *st, const char *type, const char *field,
                              const char *none)
{
    const json_t *c = ctl_condition(st, type);

    if (st == NULL)
        return CTL_UNKNOWN;
    return c != NULL ? ctl_str(c, field) : none;
}

static void add_col(struct table *t, const char *head)
{
    t->head[t->ncols++] = head;
}

static void build(struct table *t, enum aegis_kind kind, const struct row *rows, size_t n,
                  bool wide, int64_t now)
{
    memset(t, 0, sizeof(*t));
    add_col(t, "NAMESPACE");
    add_col(t, "NAME");
    if (kind == AEGIS_KIND_ISSUER) {
        add_col(t, "READY");
        add_col(t, "AGE");
        if (wide)
            add_col(t, "STATUS");
    } else if (kind == AEGIS_KIND_CERTIFICATE) {
        add_col(t, "READY");
        add_col(t, "ISSUER");
        add_col(t, "EXPIRES");
        add_col(t, "RENEWAL");
        add_col(t, "AGE");
        if (wide) {
            add_col(t, "REVISION");
            add_col(t, "SERIAL");
            add_col(t, "STATUS");
        }
    } else {
        add_col(t, "HOSTNAMES");
        add_col(t, "TLS");
        add_col(t, "READY");
        add_col(t, "SERVED");
        add_col(t, "AGE");
        if (wide) {
            add_col(t, "SERIAL");
            add_col(t, "STATUS");
        }
    }
    t->nrows = n;
    t->cells = aegis_calloc(n + 1, sizeof(*t->cells));
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        const json_t *st = r->status;
        char(*c)[CELL_MAX] = t->cells[i];
        size_t k = 0;

        snprintf(c[k++], CELL_MAX, "%s", r->ns);
        snprintf(c[k++], CELL_MAX, "%s", r->name);
        if (kind == AEGIS_KIND_ISSUER) {
            snprintf(c[k++], CELL_MAX, "%s", cond_field(st, "Ready", "status", CTL_UNKNOWN));
            age(r, now, c[k++], CELL_MAX);
            if (wide)
                snprintf(c[k++], CELL_MAX, "%s", cond_field(st, "Ready", "message", ""));
        } else if (kind == AEGIS_KIND_CERTIFICATE) {
            const struct aegis_certificate_spec *s = r->res ? &r->res->spec.certificate : NULL;
            const json_t *rev = json_object_get(st, "revision");

            snprintf(c[k++], CELL_MAX, "%s", cond_field(st, "Ready", "status", CTL_UNKNOWN));
            if (r->host != NULL)
                snprintf(c[k++], CELL_MAX, "%s", r->host->spec.host.tls.issuer_ref.name);
            else if (s != NULL && API_HAS(s, API_F_CERTIFICATE_SPEC_ISSUER_REF))
                snprintf(c[k++], CELL_MAX, "%s", s->issuer_ref.name);
            else if (s != NULL)
                snprintf(c[k++], CELL_MAX, "%s",
                         API_HAS(s, API_F_CERTIFICATE_SPEC_CUSTOM)   ? "<custom>"
                         : API_HAS(s, API_F_CERTIFICATE_SPEC_PKCS12) ? "<pkcs12>"
                                                                     : "<csr>");
            else
                dn_cn(json_string_value(json_object_get(st, "issuer")), c[k++], CELL_MAX);
            ctl_relative_time(json_string_value(json_object_get(st, "notAfter")), now, true, c[k++],
                              CELL_MAX);
            ctl_relative_time(json_string_value(json_object_get(st, "renewalTime")), now, true,
                              c[k++], CELL_MAX);
            age(r, now, c[k++], CELL_MAX);
            if (wide) {
                if (json_is_integer(rev))
                    snprintf(c[k++], CELL_MAX, "%lld", (long long)json_integer_value(rev));
                else
                    snprintf(c[k++], CELL_MAX, "%s", CTL_UNKNOWN);
                snprintf(c[k++], CELL_MAX, "%s", ctl_str(st, "serialNumber"));
                snprintf(c[k++], CELL_MAX, "%s", cond_field(st, "Ready", "message", ""));
            }
        } else {
            const struct aegis_host_spec *h = r->res ? &r->res->spec.host : NULL;

            if (h != NULL)
                join_strv(c[k++], CELL_MAX, &h->hostnames);
            else
                served_hostnames(st, c[k++], CELL_MAX);
            snprintf(c[k++], CELL_MAX, "%s",
                     h != NULL ? api_tls_mode_names[h->tls.mode] : CTL_UNKNOWN);
            snprintf(c[k++], CELL_MAX, "%s", cond_field(st, "Ready", "status", CTL_UNKNOWN));
            snprintf(c[k++], CELL_MAX, "%s", cond_field(st, "Served", "status", "<none>"));
            age(r, now, c[k++], CELL_MAX);
            if (wide) {
                const json_t *e = json_array_get(json_object_get(st, "served"), 0);

                snprintf(c[k++], CELL_MAX, "%s", e != NULL ? ctl_str(e, "serialNumber") : "<none>");
                snprintf(c[k++], CELL_MAX, "%s", cond_field(st, "Ready", "message", ""));
            }
        }
    }
}

/* A cell padded to width w and a gap of three spaces, as kubectl does; the last ends the line. */
static void cell(const char *s, size_t w, bool last)
{
    if (last)
        printf("%s\n", s);
    else
        printf("%-*s   ", (int)w, s);
}

static void print_table(const struct table *t)
{
    size_t w[COLS_MAX];

    for (size_t k = 0; k < t->ncols; k++) {
        w[k] = strlen(t->head[k]);
        for (size_t i = 0; i < t->nrows; i++)
            if (strlen(t->cells[i][k]) > w[k])
                w[k] = strlen(t->cells[i][k]);
    }
    for (size_t k = 0; k < t->ncols; k++)
        cell(t->head[k], w[k], k + 1 == t->ncols);
    for (size_t i = 0; i < t->nrows; i++)
        for (size_t k = 0; k < t->ncols; k++)
            cell(t->cells[i][k], w[k], k + 1 == t->ncols);
}

static json_t *item(enum aegis_kind kind, const struct row *r)
{
    json_t *o = json_object();

    json_object_set_new(o, "apiVersion", json_string(AEGIS_API_VERSION));
    json_object_set_new(o, "kind", json_string(resource_kind_name(kind)));
    if (r->res != NULL) {
        json_object_set_new(o, "metadata", api_to_json(&api_t_object_meta, &r->res->meta));
        json_object_set_new(o, "spec", api_to_json(resource_kind_spec_type(kind), &r->res->spec));
    } else {
        json_object_set_new(o, "metadata",
                            json_pack("{s:s,s:s}", "name", r->name, "namespace", r->ns));
    }
    if (r->status != NULL)
        json_object_set(o, "status", r->status);
    return o;
}

static void print_list(enum aegis_kind kind, const struct row *rows, size_t n, bool yaml)
{
    json_t *list = json_pack("{s:s,s:s,s:[]}", "apiVersion", "v1", "kind", "List", "items");
    json_t *items = json_object_get(list, "items");
    char *text;

    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, item(kind, &rows[i]));
    if (yaml) {
        ctl_print_yaml(stdout, list);
    } else {
        text = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text != NULL)
            printf("%s\n", text);
        free(text);
    }
    json_decref(list);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: aegisctl get issuers|certificates|hosts [-n NS] [--state-dir DIR]\n"
            "                    [-o wide|json|yaml] [PATH...]\n"
            "\n"
            "Lists the objects of a kind with their status, read from the status files\n"
            "aegis-controller writes under DIR/status. With PATHs, lists the resources of\n"
            "those files and directories joined with their status (\"<unknown>\" when none).\n"
            "\n"
            "  -n, --namespace NS   only this namespace\n"
            "  -d, --state-dir DIR  the controller's state directory (default $AEGIS_STATE_DIR,\n"
            "                       else ./.aegis)\n"
            "  -o, --output FORMAT  table (default), wide, json or yaml\n");
}

int ctl_get_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        CTL_NAMESPACE_LONGOPT,
        {"state-dir", required_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},
        CTL_HELP_LONGOPTS_END,
    };
    static const char *const formats[] = {"table", "wide", "json", "yaml"};
    const char *ns = NULL, *state_dir = store_state_dir_default();
    enum out_format format = OUT_TABLE;
    enum aegis_kind kind;
    struct aegis_resource_set set;
    struct aegis_diags diags;
    struct ctl_status_ref *refs = NULL;
    struct row *rows = NULL;
    size_t nrefs = 0, n = 0;
    char msg[1024];
    int c, status = CTL_EXIT_OK;

    if (argc < 2 || ctl_kind_word(argv[1], &kind) < 0) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "n:d:o:h", longopts, NULL)) != -1) {
        size_t i = 0;

        switch (c) {
        case 'n':
            ns = optarg;
            break;
        case 'd':
            state_dir = optarg;
            break;
        case 'o':
            while (i < 4 && strcmp(optarg, formats[i]) != 0)
                i++;
            if (i == 4) {
                fprintf(stderr, "aegisctl get: --output must be table, wide, json or yaml\n");
                return CTL_EXIT_USAGE;
            }
            format = (enum out_format)i;
            break;
        case 'h':
            usage(stdout);
            return CTL_EXIT_OK;
        default:
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
    }
    resource_set_init(&set);
    aegis_diags_init(&diags);
    if (optind < argc) {
        ctl_load(&set, &diags, argv + optind, argc - optind);
        ctl_print_diags(&diags, stderr);
        if (diags.nerrors != 0)
            status = CTL_EXIT_INVALID;
        rows = aegis_calloc(2 * set.n + 1, sizeof(*rows));
        for (size_t i = 0; i < set.n; i++) {
            const struct aegis_resource *res = set.v[i];

            if (ns != NULL && strcmp(ns, res->meta.namespace) != 0)
                continue;
            if (res->kind == kind) {
                rows[n].ns = res->meta.namespace;
                rows[n].name = res->meta.name;
                rows[n++].res = res;
            }
            /* A Host with tls.issuerRef has an implicit Certificate the controller reports on. */
            if (kind == AEGIS_KIND_CERTIFICATE && res->kind == AEGIS_KIND_HOST &&
                res->spec.host.tls.mode == AEGIS_TLS_MODE_ACME &&
                decide_implicit_conflict(&set, res) == NULL &&
                decide_implicit_name(res->meta.name, rows[n].implicit_name,
                                     sizeof(rows[n].implicit_name), NULL) == 0) {
                rows[n].ns = res->meta.namespace;
                rows[n].name = rows[n].implicit_name;
                rows[n++].host = res;
            }
        }
    } else {
        if (ctl_status_list(state_dir, kind, ns, &refs, &nrefs, msg, sizeof(msg)) < 0) {
            fprintf(stderr, "aegisctl get: %s\n", msg);
            status = CTL_EXIT_INVALID;
            goto out;
        }
        rows = aegis_calloc(nrefs + 1, sizeof(*rows));
        for (size_t i = 0; i < nrefs; i++) {
            rows[n].ns = refs[i].ns;
            rows[n++].name = refs[i].name;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int rc = ctl_status_read(state_dir, kind, rows[i].ns, rows[i].name, &rows[i].status, msg,
                                 sizeof(msg));

        if (rc == -2) {
            fprintf(stderr, "aegisctl get: %s\n", msg);
            status = CTL_EXIT_INVALID;
        }
    }
    if (format == OUT_JSON || format == OUT_YAML) {
        print_list(kind, rows, n, format == OUT_YAML);
    } else if (n == 0) {
        fprintf(stderr, "No %s found%s%s.\n", resource_kind_name(kind), ns ? " in namespace " : "",
                ns ? ns : "");
    } else {
        struct table t;

        build(&t, kind, rows, n, format == OUT_WIDE, (int64_t)time(NULL));
        print_table(&t);
        free(t.cells);
    }
out:
    for (size_t i = 0; i < n; i++)
        json_decref(rows[i].status);
    free(rows);
    ctl_status_refs_free(refs, nrefs);
    aegis_diags_dispose(&diags);
    resource_set_dispose(&set);
    return status;
}
