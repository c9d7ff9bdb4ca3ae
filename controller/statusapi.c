/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's read-only API (statusapi.h): routing, status files to JSON, the health
 * endpoints and the metrics exposition. Paths name files only after every segment was checked
 * against the Kubernetes name syntax, so no request reaches outside the status directory.
 */
#include "statusapi.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "cmetrics.h"

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
/* Path segments looked at: namespaces/{ns}/{kind}/{name} and one more to refuse. */
#define SEGMENTS_MAX 5

static const struct {
    const char *plural, *kind;
} kinds[] = {
    {"issuers", "Issuer"},
    {"certificates", "Certificate"},
    {"hosts", "Host"},
};

struct seg {
    const char *p;
    size_t len;
};

static bool seg_is(const struct seg *s, const char *lit)
{
    return s->len == strlen(lit) && memcmp(s->p, lit, s->len) == 0;
}

/* A Kubernetes name (DNS subdomain): lowercase alphanumerics, '-' and '.', starting and ending
 * with an alphanumeric - so never "", "." or "..". */
static bool valid_name(const struct seg *s)
{
    if (s->len == 0 || s->len > STATUSAPI_NAME_MAX)
        return false;
    for (size_t i = 0; i < s->len; i++) {
        char c = s->p[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

        if (!alnum && ((c != '-' && c != '.') || i == 0 || i + 1 == s->len))
            return false;
    }
    return true;
}

static void set_body(struct statusapi_response *out, int status, const char *reason,
                     const char *ctype, char *body)
{
    out->status = status;
    out->reason = reason;
    out->content_type = ctype;
    out->body = body;
    out->len = strlen(body);
}

static void set_json(struct statusapi_response *out, int status, const char *reason, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);

    json_decref(doc);
    if (text == NULL)
        text = aegis_strdup("{}");
    /* A trailing newline makes curl output end cleanly; JSON allows it. */
    set_body(out, status, reason, CT_JSON, aegis_asprintf("%s\n", text));
    free(text);
}

static void not_found(struct statusapi_response *out, const char *message)
{
    set_json(out, 404, "Not Found",
             json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion", "v1",
                       "status", "Failure", "reason", "NotFound", "message", message, "code", 404));
}

/* Reads a status file (at most STATUSAPI_FILE_MAX bytes) as JSON; NULL when it is missing or
 * does not parse. */
static json_t *read_status(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char *buf = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    struct stat st;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATUSAPI_FILE_MAX)
        goto out;
    buf = aegis_malloc((size_t)st.st_size + 1);
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    doc = json_loadb(buf, len, 0, NULL);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
out:
    free(buf);
    close(fd);
    return doc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of dir (without dot files), sorted: a new array of *n new strings; suffix: only
 * names ending in it, with it removed. */
static char **list_dir(const char *dir, const char *suffix, size_t *n)
{
    DIR *d = opendir(dir);
    char **v = NULL;
    size_t cap = 0, slen = suffix != NULL ? strlen(suffix) : 0;
    const struct dirent *de;

    *n = 0;
    if (d == NULL)
        return NULL;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        if (de->d_name[0] == '.' || len <= slen ||
            (suffix != NULL && strcmp(de->d_name + len - slen, suffix) != 0))
            continue;
        aegis_grow((void **)&v, &cap, *n + 1, sizeof(*v));
        v[(*n)++] = aegis_strndup(de->d_name, len - slen);
    }
    closedir(d);
    if (*n > 0)
        qsort(v, *n, sizeof(*v), by_name);
    return v;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Appends the objects of one namespace directory to items. */
static void list_namespace(const char *status_dir, const char *kind, const char *ns, json_t *items)
{
    char *dir = aegis_asprintf("%s/%s/%s", status_dir, kind, ns);
    size_t n = 0;
    char **names = list_dir(dir, ".json", &n);

    for (size_t i = 0; i < n; i++) {
        char *path = aegis_asprintf("%s/%s.json", dir, names[i]);
        json_t *doc = read_status(path);

        if (doc != NULL)
            json_array_append_new(items, doc);
        free(path);
    }
    free_list(names, n);
    free(dir);
}

/* GET STATUSAPI_PREFIX/...: seg[0..n) are the segments after the prefix. */
static void api(const char *status_dir, const struct seg *seg, size_t n,
                struct statusapi_response *out)
{
    const struct seg *kind_seg = NULL, *ns = NULL, *name = NULL;
    const char *kind = NULL;
    char ns_buf[STATUSAPI_NAME_MAX + 1], name_buf[STATUSAPI_NAME_MAX + 1];

    if (n == 1) {
        kind_seg = &seg[0];
    } else if ((n == 3 || n == 4) && seg_is(&seg[0], "namespaces")) {
        ns = &seg[1];
        kind_seg = &seg[2];
        name = n == 4 ? &seg[3] : NULL;
    } else {
        not_found(out, "no such path; see docs/controller.md, \"HTTP API and metrics\"");
        return;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && kind == NULL; i++) {
        if (seg_is(kind_seg, kinds[i].plural))
            kind = kinds[i].kind;
    }
    if (kind == NULL) {
        not_found(out, "no such resource type; there are issuers, certificates and hosts");
        return;
    }
    if ((ns != NULL && !valid_name(ns)) || (name != NULL && !valid_name(name))) {
        not_found(out, "no such object (not a valid namespace or name)");
        return;
    }
    if (ns != NULL) {
        memcpy(ns_buf, ns->p, ns->len);
        ns_buf[ns->len] = '\0';
    }
    if (name != NULL) {
        char *path, msg[STATUSAPI_NAME_MAX * 2 + 64];
        json_t *doc;

        memcpy(name_buf, name->p, name->len);
        name_buf[name->len] = '\0';
        path = aegis_asprintf("%s/%s/%s/%s.json", status_dir, kind, ns_buf, name_buf);
        doc = read_status(path);
        free(path);
        if (doc == NULL) {
            snprintf(msg, sizeof(msg), "%s %s/%s not found", kind, ns_buf, name_buf);
            not_found(out, msg);
            return;
        }
        set_json(out, 200, "OK", doc);
        return;
    }
    {
        json_t *items = json_array();
        char *list_kind = aegis_asprintf("%sList", kind);

        if (ns != NULL) {
            list_namespace(status_dir, kind, ns_buf, items);
        } else {
            char *dir = aegis_asprintf("%s/%s", status_dir, kind);
            size_t nn = 0;
            char **nss = list_dir(dir, NULL, &nn);

            for (size_t i = 0; i < nn; i++)
                list_namespace(status_dir, kind, nss[i], items);
            free_list(nss, nn);
            free(dir);
        }
        set_json(out, 200, "OK",
                 json_pack("{s:s, s:s, s:o}", "kind", list_kind, "apiVersion", "aegis.dev/v1alpha1",
                           "items", items));
        free(list_kind);
    }
}

void statusapi_handle(const char *status_dir, const char *method, size_t method_len,
                      const char *path, size_t path_len, int64_t now,
                      struct statusapi_response *out)
{
    struct seg seg[SEGMENTS_MAX];
    size_t n = 0, plen = strlen(STATUSAPI_PREFIX);
    char reason[CMETRICS_REASON_MAX];

    memset(out, 0, sizeof(*out));
    if (!(method_len == 3 && memcmp(method, "GET", 3) == 0) &&
        !(method_len == 4 && memcmp(method, "HEAD", 4) == 0)) {
        set_body(out, 405, "Method Not Allowed", CT_TEXT,
                 aegis_strdup("this API is read-only: use GET\n"));
        return;
    }
    if (path_len == 8 && memcmp(path, "/healthz", 8) == 0) {
        bool ok = cmetrics_healthy(now);

        set_body(out, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", CT_TEXT,
                 aegis_strdup(ok ? "ok\n" : "the reconcile loop has not run for 30 s\n"));
        return;
    }
    if (path_len == 7 && memcmp(path, "/readyz", 7) == 0) {
        bool ok = cmetrics_ready(reason, sizeof(reason));

        set_body(out, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", CT_TEXT,
                 aegis_asprintf("%s\n", reason));
        return;
    }
    if (path_len == 8 && memcmp(path, "/metrics", 8) == 0) {
        size_t len = 0;

        out->status = 200;
        out->reason = "OK";
        out->content_type = CT_METRICS;
        out->body = cmetrics_render(now, &len);
        out->len = len;
        return;
    }
    if (path_len <= plen || memcmp(path, STATUSAPI_PREFIX, plen) != 0 || path[plen] != '/') {
        not_found(out, "no such path; the API is under " STATUSAPI_PREFIX
                       ", health at /healthz and /readyz, metrics at /metrics");
        return;
    }
    /* Split what follows the prefix at '/'; a trailing '/' is allowed, empty segments are not. */
    for (size_t i = plen + 1; i < path_len;) {
        size_t j = i;

        while (j < path_len && path[j] != '/')
            j++;
        if (j == i || n == SEGMENTS_MAX) {
            not_found(out, "no such path");
            return;
        }
        seg[n].p = path + i;
        seg[n].len = j - i;
        n++;
        i = j + 1;
    }
    api(status_dir, seg, n, out);
}

void statusapi_response_dispose(struct statusapi_response *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}
