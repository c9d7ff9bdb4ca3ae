/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What `aegisctl get KIND` and `aegisctl describe` share: kind names as kubectl takes them
 * (plural, singular, short names), reading the status files aegis-controller writes
 * (<state>/status/<Kind>/<ns>/<name>.json, checked against the schema's status types), the
 * relative times of tables ("89d"), and a JSON value printed as YAML.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "aegis/alloc.h"
#include "aegis/api.h"
#include "ctl.h"
#include "status.h"

struct kind_alias {
    const char *word;
    enum aegis_kind kind;
};

/* The names and short names of schemas/api.yaml's kinds (their CRDs' names). */
static const struct kind_alias aliases[] = {
    {"issuers", AEGIS_KIND_ISSUER},
    {"issuer", AEGIS_KIND_ISSUER},
    {"aiss", AEGIS_KIND_ISSUER},
    {"certificates", AEGIS_KIND_CERTIFICATE},
    {"certificate", AEGIS_KIND_CERTIFICATE},
    {"cert", AEGIS_KIND_CERTIFICATE},
    {"certs", AEGIS_KIND_CERTIFICATE},
    {"acert", AEGIS_KIND_CERTIFICATE},
    {"acerts", AEGIS_KIND_CERTIFICATE},
    {"hosts", AEGIS_KIND_HOST},
    {"host", AEGIS_KIND_HOST},
    {"ahost", AEGIS_KIND_HOST},
    {"ahosts", AEGIS_KIND_HOST},
};

int ctl_kind_word(const char *word, enum aegis_kind *kind)
{
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (strcasecmp(word, aliases[i].word) == 0) {
            *kind = aliases[i].kind;
            return 0;
        }
    }
    return -1;
}

const struct api_type *ctl_status_type(enum aegis_kind kind)
{
    switch (kind) {
    case AEGIS_KIND_ISSUER:
        return &api_t_issuer_status;
    case AEGIS_KIND_CERTIFICATE:
        return &api_t_certificate_status;
    case AEGIS_KIND_HOST:
    case AEGIS_KIND_COUNT_:
        break;
    }
    return &api_t_host_status;
}

char *ctl_status_dir(const char *state_dir)
{
    return aegis_asprintf("%s/status", state_dir);
}

int ctl_status_read(const char *state_dir, enum aegis_kind kind, const char *ns, const char *name,
                    json_t **status, char *msg, size_t size)
{
    char *path =
        aegis_asprintf("%s/status/%s/%s/%s.json", state_dir, resource_kind_name(kind), ns, name);
    const struct api_type *type = ctl_status_type(kind);
    void *decoded = aegis_calloc(1, type->size);
    struct aegis_err e = {0};
    json_error_t je;
    struct stat sb;
    bool missing = stat(path, &sb) != 0 && errno == ENOENT;
    json_t *doc = missing ? NULL : json_load_file(path, 0, &je);
    const json_t *st = json_object_get(doc, "status");
    int rc = 0;

    *status = NULL;
    if (missing) {
        snprintf(msg, size,
                 "no status for %s %s/%s in %s/status: is aegis-controller running with "
                 "--state-dir %s?",
                 resource_kind_name(kind), ns, name, state_dir, state_dir);
        rc = -1;
    } else if (doc == NULL) {
        snprintf(msg, size, "%s: %s", path, je.text);
        rc = -2;
    } else if (!json_is_object(st)) {
        snprintf(msg, size, "%s: no \"status\" object; the controller writes one per resource",
                 path);
        rc = -2;
    } else if (status_from_json(type, st, decoded, &e) < 0) {
        snprintf(msg, size, "%s: not a valid %s status: %s%s%s", path, resource_kind_name(kind),
                 e.where, e.where[0] ? ": " : "", e.msg);
        rc = -2;
    } else {
        *status = json_incref((json_t *)st);
        api_dispose(type, decoded);
    }
    free(decoded);
    json_decref(doc);
    free(path);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of dir not starting with '.', sorted; NULL when it cannot be read. */
static char **list_dir(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **v = NULL;
    size_t cap = 0;

    *n = 0;
    if (d == NULL)
        return NULL;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            v = aegis_realloc(v, cap * sizeof(*v));
        }
        v[(*n)++] = aegis_strdup(de->d_name);
    }
    closedir(d);
    if (*n > 0)
        qsort(v, *n, sizeof(*v), cmp_str);
    return v != NULL ? v : aegis_calloc(1, sizeof(*v));
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int ctl_status_list(const char *state_dir, enum aegis_kind kind, const char *ns,
                    struct ctl_status_ref **out, size_t *n, char *msg, size_t size)
{
    char *kdir = aegis_asprintf("%s/status/%s", state_dir, resource_kind_name(kind));
    char *sdir = ctl_status_dir(state_dir);
    struct ctl_status_ref *v = NULL;
    size_t nns = 0, cap = 0;
    char **nss;
    struct stat sb;

    *out = NULL;
    *n = 0;
    if (stat(sdir, &sb) != 0) {
        snprintf(msg, size,
                 "no status in %s: is aegis-controller running with --state-dir %s? (or give "
                 "--state-dir DIR)",
                 sdir, state_dir);
        free(sdir);
        free(kdir);
        return -1;
    }
    nss = list_dir(kdir, &nns);
    for (size_t i = 0; i < nns; i++) {
        char *nsdir;
        char **files;
        size_t nf = 0;

        if (ns != NULL && strcmp(ns, nss[i]) != 0)
            continue;
        nsdir = aegis_asprintf("%s/%s", kdir, nss[i]);
        files = list_dir(nsdir, &nf);
        for (size_t k = 0; k < nf; k++) {
            size_t len = strlen(files[k]);

            if (len <= 5 || strcmp(files[k] + len - 5, ".json") != 0)
                continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                v = aegis_realloc(v, cap * sizeof(*v));
            }
            v[*n].ns = aegis_strdup(nss[i]);
            v[*n].name = aegis_strdup(files[k]);
            v[*n].name[len - 5] = '\0';
            (*n)++;
        }
        free_list(files, nf);
        free(nsdir);
    }
    free_list(nss, nns);
    free(sdir);
    free(kdir);
    *out = v;
    return 0;
}

void ctl_status_refs_free(struct ctl_status_ref *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].ns);
        free(v[i].name);
    }
    free(v);
}

void ctl_human_duration(int64_t s, char *buf, size_t size)
{
    const char *sign = s < 0 ? "-" : "";
    int64_t a = s < 0 ? -s : s;

    /* kubectl's steps: seconds, then minutes, hours, days, each once the smaller unit is long. */
    if (a < 120)
        snprintf(buf, size, "%s%" PRId64 "s", sign, a);
    else if (a < 3 * 3600)
        snprintf(buf, size, "%s%" PRId64 "m", sign, a / 60);
    else if (a < 2 * 86400)
        snprintf(buf, size, "%s%" PRId64 "h", sign, a / 3600);
    else
        snprintf(buf, size, "%s%" PRId64 "d", sign, a / 86400);
}

void ctl_relative_time(const char *rfc3339, int64_t now, bool future, char *buf, size_t size)
{
    int64_t t;

    if (rfc3339 == NULL || status_time_parse(rfc3339, &t) < 0) {
        snprintf(buf, size, "%s", CTL_UNKNOWN);
        return;
    }
    ctl_human_duration(future ? t - now : now - t, buf, size);
}

const json_t *ctl_condition(const json_t *status, const char *type)
{
    const json_t *c;
    size_t i;

    json_array_foreach(json_object_get(status, "conditions"), i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));

        if (t != NULL && strcmp(t, type) == 0)
            return c;
    }
    return NULL;
}

const char *ctl_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s != NULL ? s : CTL_UNKNOWN;
}

/* ---- YAML ---------------------------------------------------------------------------------- */

static void indent(FILE *out, int n)
{
    fprintf(out, "%*s", n, "");
}

/* A scalar: strings in JSON's double-quoted form, which YAML reads the same. */
static void yaml_scalar(FILE *out, const json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY);

    fprintf(out, "%s", s != NULL ? s : "null");
    free(s);
}

static bool is_collection(const json_t *v)
{
    return (json_is_object(v) && json_object_size(v) > 0) ||
           (json_is_array(v) && json_array_size(v) > 0);
}

static void yaml_value(FILE *out, const json_t *v, int level);

static void yaml_object(FILE *out, const json_t *v, int level, bool first_inline)
{
    const char *k;
    const json_t *x;
    bool first = true;

    json_object_foreach((json_t *)v, k, x)
    {
        if (!(first && first_inline))
            indent(out, level);
        first = false;
        fprintf(out, "%s:", k);
        if (is_collection(x)) {
            fputc('\n', out);
            yaml_value(out, x, json_is_array(x) ? level : level + 2);
        } else {
            fputc(' ', out);
            yaml_scalar(out, x);
            fputc('\n', out);
        }
    }
}

static void yaml_value(FILE *out, const json_t *v, int level)
{
    size_t i;
    const json_t *x;

    if (json_is_object(v) && json_object_size(v) > 0) {
        yaml_object(out, v, level, false);
        return;
    }
    if (json_is_array(v) && json_array_size(v) > 0) {
        json_array_foreach(v, i, x)
        {
            indent(out, level);
            fprintf(out, "- ");
            if (json_is_object(x) && json_object_size(x) > 0) {
                yaml_object(out, x, level + 2, true);
            } else if (is_collection(x)) {
                fputc('\n', out);
                yaml_value(out, x, level + 2);
            } else {
                yaml_scalar(out, x);
                fputc('\n', out);
            }
        }
        return;
    }
    indent(out, level);
    yaml_scalar(out, v);
    fputc('\n', out);
}

void ctl_print_yaml(FILE *out, const json_t *v)
{
    yaml_value(out, v, 0);
}
