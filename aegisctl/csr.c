/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegisctl csr: the CSR flow from the command line (controller/csrflow.h,
 * docs/custom-certificates.md).
 *   get     prints the CSR of a Certificate with spec.csr, read from the
 * resource files given; the key and CSR are made and stored on first use, then
 * the same CSR is printed import  takes the certificate an outside CA signed
 * for that CSR, checks it against the stored key, and stores it as the
 * Certificate's certificate Never prints a private key.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/err.h"
#include "aegis/masterkey.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "csrflow.h"
#include "ctl.h"
#include "secret.h"

struct opts {
    const char *ns;
    struct ctl_store_opts store; /* --state-dir, --master-key-file */
    const char *cert_file;
    bool renew;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: aegisctl csr get NAME [-n NAMESPACE] [--state-dir DIR] "
            "[--master-key-file F]\n"
            "                        [--renew] PATH...\n"
            "       aegisctl csr import NAME --cert FILE [-n NAMESPACE] "
            "[--state-dir DIR]\n"
            "                        [--master-key-file F]\n"
            "\n"
            "get prints the CSR (PEM) of the Certificate NAME, which the "
            "resource files or\n"
            "directories PATH... define with spec.csr; its key is made and "
            "sealed in the store on\n"
            "first use, and the same CSR is printed until the Certificate's "
            "names, subject or key\n"
            "type change (--renew makes a new one, with a new key unless "
            "rotationPolicy is Never).\n"
            "import checks FILE (the signed certificate, then any intermediates) "
            "against the key of\n"
            "that CSR and stores it. The namespace defaults to \"default\"; the "
            "state directory to\n"
            "$%s or %s (see docs/custom-certificates.md).\n",
            STORE_STATE_DIR_ENV, STORE_STATE_DIR_DEFAULT);
}

/* Parses the flags; returns the index of the first operand, or -1 after a usage
 * error. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        CTL_NAMESPACE_LONGOPT,
        CTL_STORE_LONGOPTS,
        {"cert", required_argument, NULL, 'c'},
        {"renew", no_argument, NULL, 'r'},
        CTL_HELP_LONGOPTS_END,
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->ns = "default";
    ctl_store_getopt_begin(&o->store);
    while ((c = ctl_store_getopt(argc, argv, "n:d:k:c:h", longopts, &o->store, usage)) != -1) {
        if (c == 'n')
            o->ns = optarg;
        else if (c == 'c')
            o->cert_file = optarg;
        else if (c == 'r')
            o->renew = true;
        else
            return -1;
    }
    return optind;
}

static void print_err(const char *what, int rc, const struct aegis_err *err)
{
    char cmd[32];

    snprintf(cmd, sizeof(cmd), "csr %s", what);
    ctl_print_err(cmd, rc, err);
}

static int cmd_get(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct aegis_resource_set set;
    struct aegis_diags diags;
    struct csrflow_request req;
    const struct aegis_resource *r;
    struct store *st = NULL;
    struct opts o;
    char *pem = NULL;
    bool made = false;
    int first = parse_opts(argc, argv, &o), rc, status = CTL_EXIT_INVALID;

    if (first < 0 || argc - first < 2) {
        if (first >= 0)
            usage(stderr);
        return CTL_EXIT_USAGE;
    }
    resource_set_init(&set);
    aegis_diags_init(&diags);
    ctl_load(&set, &diags, argv + first + 1, argc - first - 1);
    r = resource_set_find(&set, AEGIS_KIND_CERTIFICATE, o.ns, argv[first]);
    if (r == NULL) {
        ctl_print_diags(&diags, stderr);
        fprintf(stderr, "aegisctl csr get: no valid Certificate %s/%s in the files given\n", o.ns,
                argv[first]);
        goto out;
    }
    if (!API_HAS(&r->spec.certificate, API_F_CERTIFICATE_SPEC_CSR)) {
        fprintf(stderr,
                "aegisctl csr get: Certificate %s/%s (%s) has no spec.csr; add "
                "`csr: {}` to make "
                "its key and CSR here (for a certificate and key you have, use "
                "`aegisctl "
                "certificate import`)\n",
                o.ns, argv[first], r->file);
        goto out;
    }
    rc = ctl_open_store(&o.store, true, &st, &err);
    if (rc == 0) {
        memset(&req, 0, sizeof(req));
        req.ns = o.ns;
        req.name = argv[first];
        req.cert = &r->spec.certificate;
        req.store = st;
        req.now = (int64_t)time(NULL);
        req.renew = o.renew;
        rc = csrflow_csr(&req, &pem, &made, &err);
    }
    if (rc < 0) {
        print_err("get", rc, &err);
        goto out;
    }
    if (made)
        fprintf(stderr, "aegisctl csr get: made a new key and CSR for Certificate %s/%s\n", o.ns,
                argv[first]);
    fputs(pem, stdout);
    status = CTL_EXIT_OK;
out:
    free(pem);
    store_close(st);
    aegis_diags_dispose(&diags);
    resource_set_dispose(&set);
    return status;
}

static int cmd_import(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct csrflow_request req;
    struct import_result res;
    struct store *st = NULL;
    struct opts o;
    char *pem = NULL, field[64 + 4096], when[32];
    size_t len = 0;
    bool unchanged = false;
    int first = parse_opts(argc, argv, &o), rc, status = CTL_EXIT_INVALID;

    if (first < 0 || argc - first != 1 || o.cert_file == NULL) {
        if (first >= 0)
            usage(stderr);
        return CTL_EXIT_USAGE;
    }
    import_result_init(&res);
    snprintf(field, sizeof(field), "--cert %s", o.cert_file);
    rc = secret_read_file(o.cert_file, "--cert", &pem, &len, &err);
    if (rc == 0)
        rc = ctl_open_store(&o.store, false, &st, &err);
    if (rc == 0) {
        memset(&req, 0, sizeof(req));
        req.ns = o.ns;
        req.name = argv[first];
        req.store = st;
        req.now = (int64_t)time(NULL);
        rc = csrflow_import(&req, pem, len, field, &res, &unchanged, &err);
    }
    for (size_t i = 0; i < res.n_warnings; i++)
        fprintf(stderr, "aegisctl csr import: warning: %s\n", res.warnings[i]);
    if (rc < 0) {
        print_err("import", rc, &err);
        goto out;
    }
    {
        time_t t = (time_t)res.rec.meta.not_after;
        struct tm tm;

        when[0] = '\0';
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    printf("Certificate %s/%s: %s (serial %s, notAfter %s, SHA-256 %s)\n", o.ns, argv[first],
           unchanged ? "unchanged, already stored" : "imported", res.rec.meta.serial, when,
           res.rec.meta.fingerprint);
    status = CTL_EXIT_OK;
out:
    pki_secret_free(pem, len);
    import_result_dispose(&res);
    store_close(st);
    return status;
}

int ctl_csr(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    if (strcmp(argv[1], "get") == 0)
        return cmd_get(argc - 1, argv + 1);
    if (strcmp(argv[1], "import") == 0)
        return cmd_import(argc - 1, argv + 1);
    fprintf(stderr, "aegisctl csr: unknown subcommand \"%s\"\n", argv[1]);
    usage(stderr);
    return CTL_EXIT_USAGE;
}
