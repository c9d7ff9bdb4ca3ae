/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegisctl validate: reads files and directories as one set of resources and prints every
 * problem in the compiler-style form (file:line:column: Kind ns/name: path: message), or as
 * JSON for tools. Exit 0 when clean, 1 on any error (warnings alone do not fail), 2 on usage.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "ctl.h"

void ctl_load(struct aegis_resource_set *set, struct aegis_diags *diags, char **paths, int npaths)
{
    for (int i = 0; i < npaths; i++)
        resource_load_path(set, paths[i], diags);
    resource_set_check(set, diags);
    aegis_diags_sort(diags);
}

int ctl_parse_paths_args(int argc, char **argv, const char *cmd, const char *const *formats,
                         size_t nformats, void (*usage)(FILE *out), int *format, int *first)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        CTL_HELP_LONGOPTS_END,
    };
    int c;

    *format = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        size_t i = 0;

        switch (c) {
        case 'o':
            while (i < nformats && strcmp(optarg, formats[i]) != 0)
                i++;
            if (i == nformats) {
                fprintf(stderr, "aegisctl %s: --output must be %s or %s\n", cmd, formats[0],
                        formats[nformats - 1]);
                return CTL_EXIT_USAGE;
            }
            *format = (int)i;
            break;
        case 'h':
            usage(stdout);
            return CTL_EXIT_OK;
        default:
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    *first = optind;
    return -1;
}

void ctl_print_diags(const struct aegis_diags *diags, FILE *out)
{
    char line[4096];

    for (size_t i = 0; i < diags->n; i++) {
        aegis_diag_format(&diags->v[i], line, sizeof(line));
        fprintf(out, "%s\n", line);
    }
    if (diags->dropped != 0)
        fprintf(out, "(%zu more not shown)\n", diags->dropped);
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static void print_json(const struct aegis_diags *diags, const struct aegis_resource_set *set)
{
    json_t *root = json_object();
    json_t *arr = json_array();
    char *text;

    for (size_t i = 0; i < diags->n; i++) {
        const struct aegis_diag *d = &diags->v[i];
        json_t *o = json_object();

        json_object_set_new(o, "file", str_or_null(d->file));
        json_object_set_new(o, "line", json_integer(d->mark.line));
        json_object_set_new(o, "column", json_integer(d->mark.col));
        json_object_set_new(o, "severity",
                            json_string(d->sev == AEGIS_SEV_ERROR ? "error" : "warning"));
        json_object_set_new(o, "kind", str_or_null(d->kind));
        json_object_set_new(o, "namespace", str_or_null(d->ns));
        json_object_set_new(o, "name", str_or_null(d->name));
        json_object_set_new(o, "path", str_or_null(d->path));
        json_object_set_new(o, "message", str_or_null(d->msg));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "diagnostics", arr);
    json_object_set_new(root, "errors", json_integer((json_int_t)diags->nerrors));
    json_object_set_new(root, "warnings", json_integer((json_int_t)diags->nwarnings));
    json_object_set_new(root, "files", json_integer((json_int_t)set->nfiles));
    json_object_set_new(root, "resources", json_integer((json_int_t)set->n));
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text != NULL)
        printf("%s\n", text);
    free(text);
    json_decref(root);
}

static void validate_usage(FILE *out)
{
    fprintf(out, "usage: aegisctl validate [--output text|json] PATH...\n"
                 "\n"
                 "Checks Issuer, Certificate and Host resources in YAML files and in directories\n"
                 "(walked for *.yaml and *.yml). All paths are checked together as one set, so\n"
                 "references between files resolve. Prints every error; exits 1 when there is\n"
                 "any, 0 when the set is valid.\n"
                 "\n"
                 "  -o, --output FORMAT  text (default) or json\n");
}

int ctl_validate(int argc, char **argv)
{
    static const char *const formats[] = {"text", "json"};
    struct aegis_resource_set set;
    struct aegis_diags diags;
    bool json;
    int format, first, status;

    status =
        ctl_parse_paths_args(argc, argv, "validate", formats, 2, validate_usage, &format, &first);
    if (status >= 0)
        return status;
    json = format == 1;

    resource_set_init(&set);
    aegis_diags_init(&diags);
    ctl_load(&set, &diags, argv + first, argc - first);
    if (json) {
        print_json(&diags, &set);
    } else {
        ctl_print_diags(&diags, stdout);
        fprintf(stderr, "%zu error%s, %zu warning%s in %zu file%s (%zu valid resource%s)\n",
                diags.nerrors, diags.nerrors == 1 ? "" : "s", diags.nwarnings,
                diags.nwarnings == 1 ? "" : "s", set.nfiles, set.nfiles == 1 ? "" : "s", set.n,
                set.n == 1 ? "" : "s");
    }
    status = diags.nerrors != 0 ? CTL_EXIT_INVALID : CTL_EXIT_OK;
    aegis_diags_dispose(&diags);
    resource_set_dispose(&set);
    return status;
}
