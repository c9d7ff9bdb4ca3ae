/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegisctl get: prints the resources of files and directories - a table by default, or JSON with
 * every default applied (the effective resources the controller will act on). Problems in the
 * input go to stderr and make the exit status 1; the valid resources are still printed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/api.h"
#include "aegis/format.h"
#include "ctl.h"

/* Appends the strings of a list, comma-separated, to buf. */
static void join(char *buf, size_t size, const struct aegis_strv *sv)
{
    size_t o = strlen(buf);

    for (size_t i = 0; i < sv->n && o < size; i++) {
        int r = snprintf(buf + o, size - o, "%s%s", o != 0 && i != 0 ? "," : "", sv->v[i]);

        if (r < 0)
            break;
        o += (size_t)r;
    }
}

static void summary(const struct aegis_resource *r, char *buf, size_t size)
{
    buf[0] = '\0';
    switch (r->kind) {
    case AEGIS_KIND_ISSUER: {
        const struct aegis_issuer_spec *s = &r->spec.issuer;

        if (API_HAS(s, API_F_ISSUER_SPEC_ACME))
            snprintf(buf, size, "acme %s", s->acme.server);
        else if (API_HAS(s, API_F_ISSUER_SPEC_CLOUDFLARE_ORIGIN_CA))
            snprintf(buf, size, "cloudflareOriginCA %s",
                     api_origin_ca_request_type_names[s->cloudflare_origin_ca.request_type]);
        else if (API_HAS(s, API_F_ISSUER_SPEC_CA))
            snprintf(buf, size, "ca %s", s->ca.present == 0 ? "(built-in local CA)" : "(given CA)");
        else
            snprintf(buf, size, "selfSigned");
        break;
    }
    case AEGIS_KIND_CERTIFICATE: {
        const struct aegis_certificate_spec *c = &r->spec.certificate;
        char d[32];

        if (API_HAS(c, API_F_CERTIFICATE_SPEC_ISSUER_REF))
            snprintf(buf, size, "issuer=%s ", c->issuer_ref.name);
        else if (API_HAS(c, API_F_CERTIFICATE_SPEC_CUSTOM))
            snprintf(buf, size, "custom ");
        else if (API_HAS(c, API_F_CERTIFICATE_SPEC_PKCS12))
            snprintf(buf, size, "pkcs12 ");
        else
            snprintf(buf, size, "csr ");
        aegis_duration_format(c->duration_ms, d, sizeof(d));
        snprintf(buf + strlen(buf), size - strlen(buf), "duration=%s names=", d);
        join(buf, size, &c->dns_names);
        break;
    }
    case AEGIS_KIND_HOST: {
        const struct aegis_host_spec *h = &r->spec.host;

        snprintf(buf, size, "tls=%s names=", api_tls_mode_names[h->tls.mode]);
        join(buf, size, &h->hostnames);
        snprintf(buf + strlen(buf), size - strlen(buf), " upstreams=%zu", h->upstreams.n);
        break;
    }
    case AEGIS_KIND_COUNT_:
        break;
    }
}

static void print_table(const struct aegis_resource_set *set)
{
    char line[1024];

    printf("%-12s %-12s %-24s %s\n", "KIND", "NAMESPACE", "NAME", "SUMMARY");
    for (size_t i = 0; i < set->n; i++) {
        const struct aegis_resource *r = set->v[i];

        summary(r, line, sizeof(line));
        printf("%-12s %-12s %-24s %s\n", resource_kind_name(r->kind), r->meta.namespace,
               r->meta.name, line);
    }
}

static void print_json(const struct aegis_resource_set *set)
{
    json_t *items = json_array();
    json_t *list = json_object();
    char *text;

    for (size_t i = 0; i < set->n; i++) {
        const struct aegis_resource *r = set->v[i];
        json_t *o = json_object();

        json_object_set_new(o, "apiVersion", json_string(AEGIS_API_VERSION));
        json_object_set_new(o, "kind", json_string(resource_kind_name(r->kind)));
        json_object_set_new(o, "metadata", api_to_json(&api_t_object_meta, &r->meta));
        json_object_set_new(o, "spec", api_to_json(resource_kind_spec_type(r->kind), &r->spec));
        json_array_append_new(items, o);
    }
    json_object_set_new(list, "apiVersion", json_string("v1"));
    json_object_set_new(list, "kind", json_string("List"));
    json_object_set_new(list, "items", items);
    text = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text != NULL)
        printf("%s\n", text);
    free(text);
    json_decref(list);
}

static void get_usage(FILE *out)
{
    fprintf(out, "usage: aegisctl get [--output table|json] PATH...\n"
                 "       aegisctl get issuers|certificates|hosts [-n NS] [--state-dir DIR]\n"
                 "                    [-o wide|json|yaml] [PATH...]   (with status; see --help\n"
                 "                    after the kind)\n"
                 "\n"
                 "Prints the resources found in files and directories. json shows each\n"
                 "resource with every default applied. Errors go to stderr (exit 1).\n"
                 "\n"
                 "  -o, --output FORMAT  table (default) or json\n");
}

int ctl_get(int argc, char **argv)
{
    static const char *const formats[] = {"table", "json"};
    struct aegis_resource_set set;
    struct aegis_diags diags;
    enum aegis_kind kind;
    int format, first, status;

    /* "get certificates [PATH...]": the objects of a kind with their status (getstatus.c). */
    if (argc >= 2 && ctl_kind_word(argv[1], &kind) == 0)
        return ctl_get_status(argc, argv);
    status = ctl_parse_paths_args(argc, argv, "get", formats, 2, get_usage, &format, &first);
    if (status >= 0)
        return status;
    resource_set_init(&set);
    aegis_diags_init(&diags);
    ctl_load(&set, &diags, argv + first, argc - first);
    ctl_print_diags(&diags, stderr);
    if (format == 1)
        print_json(&set);
    else
        print_table(&set);
    status = diags.nerrors != 0 ? CTL_EXIT_INVALID : CTL_EXIT_OK;
    aegis_diags_dispose(&diags);
    resource_set_dispose(&set);
    return status;
}
