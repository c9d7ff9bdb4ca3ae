/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the resource model: decoded values and defaults, positions in messages, every error
 * of a file reported, the set checks - and the table of invalid fixtures in tests/data/invalid/,
 * each of which lists the exact errors (path and message) the validator must report.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/api.h"
#include "aegis/resource.h"
#include "check.h"

static const char *source_dir(void)
{
    const char *d = getenv("AEGIS_SOURCE_DIR");

    return d != NULL ? d : ".";
}

/* Loads a buffer as one set, checks it, and returns the number of errors. */
static size_t load(struct aegis_resource_set *set, struct aegis_diags *d, const char *yaml)
{
    resource_set_init(set);
    aegis_diags_init(d);
    resource_load_buffer(set, "t.yaml", yaml, strlen(yaml), d);
    resource_set_check(set, d);
    aegis_diags_sort(d);
    return d->nerrors;
}

static void done(struct aegis_resource_set *set, struct aegis_diags *d)
{
    resource_set_dispose(set);
    aegis_diags_dispose(d);
}

/* The formatted diagnostic i, or "" when there is none. */
static const char *diag_text(const struct aegis_diags *d, size_t i, char *buf, size_t size)
{
    if (i >= d->n)
        return "";
    aegis_diag_format(&d->v[i], buf, size);
    return buf;
}

static void test_decoded_values_and_defaults(void)
{
    struct aegis_resource_set set;
    struct aegis_diags d;
    const struct aegis_resource *c, *h;
    size_t nerr = load(&set, &d,
                       "apiVersion: aegis.dev/v1alpha1\n"
                       "kind: Issuer\n"
                       "metadata: {name: local}\n"
                       "spec: {ca: {}}\n"
                       "---\n"
                       "apiVersion: aegis.dev/v1alpha1\n"
                       "kind: Certificate\n"
                       "metadata: {name: app, labels: {team: web}}\n"
                       "spec:\n"
                       "  dnsNames: [app.example.test, '*.app.example.test']\n"
                       "  issuerRef: {name: local}\n"
                       "  duration: 90d\n"
                       "---\n"
                       "apiVersion: aegis.dev/v1alpha1\n"
                       "kind: Host\n"
                       "metadata: {name: app}\n"
                       "spec:\n"
                       "  hostnames: [app.example.test]\n"
                       "  upstreams: [{url: 'http://127.0.0.1:8080'}]\n"
                       "  tls: {issuerRef: {name: local}}\n");
    char buf[512];

    CHECK_INT(nerr, 0, "a valid set has no errors");
    CHECK_STR(diag_text(&d, 0, buf, sizeof(buf)), "", "and no diagnostics");
    CHECK_INT(set.n, 3, "three resources");
    c = resource_set_find(&set, AEGIS_KIND_CERTIFICATE, "default", "app");
    h = resource_set_find(&set, AEGIS_KIND_HOST, "default", "app");
    CHECK(c != NULL && h != NULL, "found by kind, default namespace and name");
    if (c == NULL || h == NULL)
        goto out;
    CHECK_INT(c->spec.certificate.dns_names.n, 2, "two dnsNames");
    CHECK_STR(c->spec.certificate.dns_names.v[1], "*.app.example.test", "wildcard kept");
    CHECK_INT(c->spec.certificate.duration_ms, 90LL * 24 * 3600 * 1000, "90d in ms");
    CHECK_INT(c->spec.certificate.renew_before_ms, 30LL * 24 * 3600 * 1000,
              "renewBefore defaults to a third of the duration");
    CHECK_INT(c->spec.certificate.private_key.algorithm, AEGIS_KEY_ALGORITHM_ECDSA,
              "key algorithm defaults to ECDSA");
    CHECK_INT(c->spec.certificate.private_key.size, 256, "ECDSA size defaults to 256");
    CHECK_INT(c->spec.certificate.private_key.rotation_policy, AEGIS_ROTATION_POLICY_ALWAYS,
              "rotationPolicy defaults to Always");
    CHECK_INT(c->spec.certificate.issuer_ref.kind, AEGIS_ISSUER_REF_KIND_ISSUER,
              "issuerRef.kind defaults to Issuer");
    CHECK_INT(c->meta.labels.n, 1, "one label");
    CHECK_STR(c->meta.labels.v[0].value, "web", "label value");
    CHECK_INT(h->spec.host.tls.mode, AEGIS_TLS_MODE_ACME, "tls.mode defaults to acme");
    CHECK_INT(h->spec.host.tls.min_version, AEGIS_TLS_VERSION_1_2, "minVersion defaults to 1.2");
    CHECK(h->spec.host.tls.force_https, "forceHTTPS defaults to true");
    CHECK(h->spec.host.tls.hsts.enabled, "HSTS defaults to on");
    CHECK_INT(h->spec.host.tls.hsts.max_age, 31536000, "HSTS maxAge defaults to a year");
    CHECK(API_HAS(&h->spec.host.tls, API_F_HOST_TLS_HSTS), "defaulted hsts object is present");
    CHECK(!API_HAS(&h->spec.host, API_F_HOST_SPEC_HEALTH_CHECK), "healthCheck stays absent");
    CHECK_INT(h->spec.host.upstreams.n, 1, "one upstream");
    CHECK_INT(h->spec.host.upstreams.v[0].weight, 1, "upstream weight defaults to 1");
    CHECK_INT(h->spec.host.timeouts.connect_ms, 5000, "connect timeout defaults to 5s");
    CHECK(h->spec.host.websocket, "websocket defaults to true");
    CHECK(!h->spec.host.preserve_host, "preserveHost defaults to false");
out:
    done(&set, &d);
}

static void test_every_error_with_position(void)
{
    struct aegis_resource_set set;
    struct aegis_diags d;
    char buf[512];
    size_t nerr = load(&set, &d,
                       "apiVersion: aegis.dev/v1alpha1\n"
                       "kind: Certificate\n"
                       "metadata: {name: app}\n"
                       "spec:\n"
                       "  dnsNames: [a.example.test, b.example.test, exa mple.com]\n"
                       "  issuerRef: {name: local}\n"
                       "  duraton: 90d\n"
                       "  privateKey: {algorithm: RSA, size: 1024}\n");

    CHECK_INT(nerr, 3, "every error of the document is reported");
    CHECK_STR(diag_text(&d, 0, buf, sizeof(buf)),
              "t.yaml:5:46: Certificate default/app: spec.dnsNames[2]: \"exa mple.com\" is not a "
              "valid DNS name: contains a character other than letters, digits, '-' and '.'",
              "bad DNS name, at its column");
    CHECK_STR(diag_text(&d, 1, buf, sizeof(buf)),
              "t.yaml:7:3: Certificate default/app: spec.duraton: unknown field; did you mean "
              "\"duration\"?",
              "typo gets a suggestion");
    CHECK_STR(diag_text(&d, 2, buf, sizeof(buf)),
              "t.yaml:8:15: Certificate default/app: spec.privateKey.size: 1024 is not allowed "
              "when algorithm is \"RSA\"; use one of 2048, 3072, 4096",
              "rule with its condition");
    done(&set, &d);
}

static void test_set_checks(void)
{
    struct aegis_resource_set set;
    struct aegis_diags d;
    char buf[512];
    static const char host[] = "apiVersion: aegis.dev/v1alpha1\n"
                               "kind: Host\n"
                               "metadata: {name: %s}\n"
                               "spec:\n"
                               "  hostnames: [%s]\n"
                               "  upstreams: [{url: 'http://127.0.0.1:1'}]\n"
                               "  tls: {mode: none}\n"
                               "---\n";
    char *yaml = aegis_asprintf("%s", "");
    const char *hosts[][2] = {{"a", "x.example.test"}, {"b", "X.example.test"}, {"a", "y.test"}};

    for (size_t i = 0; i < 3; i++) {
        char *doc = aegis_asprintf(host, hosts[i][0], hosts[i][1]);
        char *all = aegis_asprintf("%s%s", yaml, doc);

        free(doc);
        free(yaml);
        yaml = all;
    }
    load(&set, &d, yaml);
    CHECK_INT(d.nerrors, 2, "a duplicate and a hostname claimed twice");
    CHECK_STR(diag_text(&d, 0, buf, sizeof(buf)),
              "t.yaml:13:15: Host default/b: spec.hostnames[0]: \"X.example.test\" is already "
              "served by Host default/a at t.yaml:5:15",
              "hostnames compare case-insensitively and name the first place");
    CHECK_STR(diag_text(&d, 1, buf, sizeof(buf)),
              "t.yaml:19:11: Host default/a: metadata.name: Host default/a is already defined at "
              "t.yaml:3:11",
              "duplicate names the first definition");
    done(&set, &d);
    free(yaml);
}

/* ---- the table of invalid fixtures --------------------------------------------------- */

struct expect {
    char **lines;
    size_t n;
};

/* Replaces each "{file}" in line by file; returns a new string. */
static char *subst_file(const char *line, const char *file)
{
    const char *p = strstr(line, "{file}");
    char *head, *rest, *out;

    if (p == NULL)
        return aegis_strdup(line);
    head = aegis_strndup(line, (size_t)(p - line));
    rest = subst_file(p + 6, file);
    out = aegis_asprintf("%s%s%s", head, file, rest);
    free(head);
    free(rest);
    return out;
}

static void read_expect(const char *path, const char *name, struct expect *e, char **text,
                        size_t *len)
{
    FILE *f = fopen(path, "rb");
    char line[2048];
    size_t cap = 0, tcap = 0;

    e->lines = NULL;
    e->n = 0;
    *text = NULL;
    *len = 0;
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t l = strlen(line);

        aegis_grow((void **)text, &tcap, *len + l + 1, 1);
        memcpy(*text + *len, line, l + 1);
        *len += l;
        if (strncmp(line, "# expect: ", 10) == 0) {
            line[strcspn(line, "\n")] = '\0';
            aegis_grow((void **)&e->lines, &cap, e->n + 1, sizeof(*e->lines));
            e->lines[e->n++] = subst_file(line + 10, name);
        }
    }
    fclose(f);
}

/* Strips "file:line:col: " so the comparison is on resource, path and message. */
static const char *strip_location(const char *s, const char *file)
{
    size_t fl = strlen(file);
    const char *p;

    if (strncmp(s, file, fl) != 0 || s[fl] != ':')
        return s;
    p = s + fl + 1;
    for (int i = 0; i < 2; i++) {
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p == ':')
            p++;
    }
    return *p == ' ' ? p + 1 : p;
}

static void test_invalid_fixtures(void)
{
    char *dir = aegis_asprintf("%s/tests/data/invalid", source_dir());
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    int nfix = 0;

    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        size_t l = strlen(nm);
        char *path, *text = NULL;
        struct expect e;
        struct aegis_resource_set set;
        struct aegis_diags d;
        size_t tlen = 0;
        bool ok = true;

        if (l < 6 || strcmp(nm + l - 5, ".yaml") != 0) {
            free(ents[i]);
            continue;
        }
        path = aegis_asprintf("%s/%s", dir, nm);
        read_expect(path, nm, &e, &text, &tlen);
        resource_set_init(&set);
        aegis_diags_init(&d);
        resource_load_buffer(&set, nm, text != NULL ? text : "", tlen, &d);
        resource_set_check(&set, &d);
        aegis_diags_sort(&d);
        nfix++;
        ok = e.n > 0 && d.n == e.n && d.nerrors > 0;
        /* Every expected line (errors and warnings) must be reported, and nothing else. */
        for (size_t k = 0; k < d.n && ok; k++) {
            char buf[2048];
            bool found = false;

            aegis_diag_format(&d.v[k], buf, sizeof(buf));
            for (size_t j = 0; j < e.n && !found; j++)
                found = strcmp(strip_location(buf, nm), e.lines[j]) == 0;
            ok = found;
        }
        if (!CHECK(ok, nm)) {
            for (size_t j = 0; j < e.n; j++)
                printf("#   want: %s\n", e.lines[j]);
            for (size_t k = 0; k < d.n; k++) {
                char buf[2048];

                aegis_diag_format(&d.v[k], buf, sizeof(buf));
                printf("#   got:  %s\n", buf);
            }
        }
        for (size_t j = 0; j < e.n; j++)
            free(e.lines[j]);
        free(e.lines);
        free(text);
        free(path);
        done(&set, &d);
        free(ents[i]);
    }
    free(ents);
    CHECK(nfix >= 60, "at least 60 invalid fixtures");
    free(dir);
}

static void test_valid_fixtures(void)
{
    const char *dirs[] = {"examples", "tests/data/valid"};

    for (size_t i = 0; i < 2; i++) {
        char *dir = aegis_asprintf("%s/%s", source_dir(), dirs[i]);
        struct aegis_resource_set set;
        struct aegis_diags d;
        char name[256];

        resource_set_init(&set);
        aegis_diags_init(&d);
        resource_load_path(&set, dir, &d);
        resource_set_check(&set, &d);
        snprintf(name, sizeof(name), "%s validates clean", dirs[i]);
        if (!CHECK(d.nerrors == 0 && set.n > 0, name)) {
            for (size_t k = 0; k < d.n; k++) {
                char buf[2048];

                aegis_diag_format(&d.v[k], buf, sizeof(buf));
                printf("#   %s\n", buf);
            }
        }
        done(&set, &d);
        free(dir);
    }
}

/* Relative file: paths are the YAML file's neighbours; absolute ones stay as written. */
static void test_file_paths_anchored(void)
{
    struct aegis_resource_set set;
    struct aegis_diags d;
    const char *yaml =
        "apiVersion: aegis.dev/v1alpha1\nkind: Certificate\nmetadata: {name: a}\n"
        "spec: {dnsNames: [a.test], custom: {certificate: {file: certs/a.crt}, "
        "privateKey: {file: /etc/aegis/a.key}}}\n"
        "---\napiVersion: aegis.dev/v1alpha1\nkind: Host\nmetadata: {name: h}\n"
        "spec: {hostnames: [h.test], upstreams: [{url: 'https://10.0.0.1'}], tls: {mode: none},"
        " upstreamTLS: {enabled: true, caCertificate: {file: ca.pem}}}\n";
    const struct aegis_resource *c, *h;

    resource_set_init(&set);
    aegis_diags_init(&d);
    resource_load_buffer(&set, "repo/site/app.yaml", yaml, strlen(yaml), &d);
    c = set.n == 2 ? set.v[0] : NULL;
    h = set.n == 2 ? set.v[1] : NULL;
    CHECK(c != NULL && h != NULL, "both documents load");
    if (c != NULL && h != NULL) {
        CHECK_STR(c->spec.certificate.custom.certificate.file, "repo/site/certs/a.crt",
                  "a relative path is anchored to the YAML file's directory");
        CHECK_STR(c->spec.certificate.custom.private_key.file, "/etc/aegis/a.key",
                  "an absolute path stays as written");
        CHECK_STR(h->spec.host.upstream_tls.ca_certificate.file, "repo/site/ca.pem",
                  "... in every field of that format, nested ones too");
    }
    done(&set, &d);
    load(&set, &d, yaml);
    CHECK(set.n == 2 &&
              strcmp(set.v[0]->spec.certificate.custom.certificate.file, "certs/a.crt") == 0,
          "a file named without a directory leaves paths relative to the working directory");
    done(&set, &d);
}

int main(void)
{
    test_decoded_values_and_defaults();
    test_every_error_with_position();
    test_set_checks();
    test_valid_fixtures();
    test_invalid_fixtures();
    test_file_paths_anchored();
    return check_done();
}
