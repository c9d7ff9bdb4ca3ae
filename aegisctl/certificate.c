/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegisctl certificate import: checks a custom certificate and key (PEM files)
 * or a PKCS#12 bundle with the same rules as the controller
 * (controller/import.h: key match, one chain put in order, names covered, not
 * expired, key strength, wrong password) and stores it as the record
 * certificate/<namespace>/<name>. Importing the same certificate again changes
 * nothing. When resource files are given, the Certificate NAME must be in them,
 * and its dnsNames and ipAddresses must be covered. Never prints a private key.
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
#include "ctl.h"
#include "import.h"
#include "secret.h"

/* Room for "--pkcs12 " and a path. */
#define FIELD_MAX (16 + 4096)

struct opts {
    const char *ns;
    struct ctl_store_opts store; /* --state-dir, --master-key-file */
    const char *cert;
    const char *key;
    const char *pkcs12;
    const char *password_file;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: aegisctl certificate import NAME --cert FILE --key FILE "
            "[options] [PATH...]\n"
            "       aegisctl certificate import NAME --pkcs12 FILE "
            "[--password-file FILE]\n"
            "                                   [options] [PATH...]\n"
            "options: [-n NAMESPACE] [--state-dir DIR] [--master-key-file F]\n"
            "\n"
            "Checks the certificate chain (leaf and intermediates, in any order) "
            "and its private\n"
            "key, or a PKCS#12 bundle, and stores them as the certificate of the "
            "Certificate NAME.\n"
            "With resource files or directories PATH..., the Certificate must be "
            "defined there and\n"
            "its dnsNames and ipAddresses must be covered. The password file's "
            "one line end is\n"
            "ignored. The namespace defaults to \"default\"; the state directory "
            "to $%s\n"
            "or %s (see docs/custom-certificates.md).\n"
            "\n"
            "       aegisctl certificate revoke NAME [-n NAMESPACE] [--reason R] PATH...\n"
            "has the CA revoke it and the controller issue a new one (--help for more).\n",
            STORE_STATE_DIR_ENV, STORE_STATE_DIR_DEFAULT);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        CTL_NAMESPACE_LONGOPT,
        CTL_STORE_LONGOPTS,
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'K'},
        {"pkcs12", required_argument, NULL, 'p'},
        {"password-file", required_argument, NULL, 'P'},
        CTL_HELP_LONGOPTS_END,
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->ns = "default";
    ctl_store_getopt_begin(&o->store);
    while ((c = ctl_store_getopt(argc, argv, "n:d:h", longopts, &o->store, usage)) != -1) {
        if (c == 'n')
            o->ns = optarg;
        else if (c == 'c')
            o->cert = optarg;
        else if (c == 'K')
            o->key = optarg;
        else if (c == 'p')
            o->pkcs12 = optarg;
        else if (c == 'P')
            o->password_file = optarg;
        else
            return -1;
    }
    /* Exactly one of the two forms. */
    if ((o->pkcs12 != NULL) == (o->cert != NULL || o->key != NULL) ||
        (o->pkcs12 == NULL && (o->cert == NULL || o->key == NULL)) ||
        (o->pkcs12 == NULL && o->password_file != NULL)) {
        fprintf(stderr, "aegisctl certificate import: give --cert and --key, or --pkcs12 (with "
                        "--password-file when it has a password)\n");
        return -1;
    }
    return optind;
}

static void print_err(int rc, const struct aegis_err *err)
{
    ctl_print_err("certificate import", rc, err);
}

/*
 * With resource files: finds the Certificate and refuses one whose certificate
 * comes from elsewhere (an Issuer or the CSR flow would replace or refuse the
 * import). 0 or CTL_EXIT_*.
 */
static int find_spec(struct aegis_resource_set *set, const struct opts *o, const char *name,
                     char **paths, int npaths, const struct aegis_certificate_spec **spec)
{
    struct aegis_diags diags;
    const struct aegis_resource *r;
    int status = 0;

    *spec = NULL;
    if (npaths == 0)
        return 0;
    aegis_diags_init(&diags);
    ctl_load(set, &diags, paths, npaths);
    r = resource_set_find(set, AEGIS_KIND_CERTIFICATE, o->ns, name);
    if (r == NULL) {
        ctl_print_diags(&diags, stderr);
        fprintf(stderr,
                "aegisctl certificate import: no valid Certificate %s/%s in the files "
                "given\n",
                o->ns, name);
        status = CTL_EXIT_INVALID;
    } else if (API_HAS(&r->spec.certificate, API_F_CERTIFICATE_SPEC_ISSUER_REF)) {
        fprintf(stderr,
                "aegisctl certificate import: Certificate %s/%s (%s) is issued by "
                "Issuer \"%s\", "
                "which would replace an imported certificate; give it spec.custom or "
                "spec.pkcs12 instead of spec.issuerRef\n",
                o->ns, name, r->file, r->spec.certificate.issuer_ref.name);
        status = CTL_EXIT_INVALID;
    } else if (API_HAS(&r->spec.certificate, API_F_CERTIFICATE_SPEC_CSR)) {
        fprintf(stderr,
                "aegisctl certificate import: Certificate %s/%s (%s) uses the CSR "
                "flow; import "
                "the certificate signed for its CSR with `aegisctl csr import %s "
                "--cert FILE`\n",
                o->ns, name, r->file, name);
        status = CTL_EXIT_INVALID;
    } else {
        *spec = &r->spec.certificate;
    }
    aegis_diags_dispose(&diags);
    return status;
}

/* Reads the inputs and checks them into res. */
static int check_inputs(const struct opts *o, const struct import_check *chk,
                        struct import_result *res, struct aegis_err *err)
{
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    int rc;

    if (o->pkcs12 != NULL) {
        rc = secret_read_file(o->pkcs12, "--pkcs12", &a, &alen, err);
        if (rc == 0 && o->password_file != NULL) {
            rc = secret_read_file(o->password_file, "--password-file", &b, &blen, err);
            if (rc == 0)
                import_password_trim(b, &blen);
        }
        if (rc == 0)
            rc = import_pkcs12((const unsigned char *)a, alen, b, chk, res, err);
    } else {
        rc = secret_read_file(o->cert, "--cert", &a, &alen, err);
        if (rc == 0)
            rc = secret_read_file(o->key, "--key", &b, &blen, err);
        if (rc == 0)
            rc = import_pem(a, alen, b, blen, chk, res, err);
    }
    pki_secret_free(a, alen);
    pki_secret_free(b, blen);
    return rc;
}

static int cmd_import(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct aegis_resource_set set;
    struct aegis_keyring ring;
    struct masterkey_source src = {0};
    struct import_result res;
    struct import_check chk;
    const struct aegis_certificate_spec *spec = NULL;
    struct store *st = NULL;
    struct opts o;
    char resource[STORE_ID_STR_MAX + 16], cfield[FIELD_MAX], kfield[FIELD_MAX], when[32];
    bool unchanged = false;
    int first = parse_opts(argc, argv, &o), rc, status = CTL_EXIT_INVALID;

    if (first < 0 || argc - first < 1) {
        if (first >= 0)
            usage(stderr);
        return CTL_EXIT_USAGE;
    }
    resource_set_init(&set);
    masterkey_ring_init(&ring);
    import_result_init(&res);
    status = find_spec(&set, &o, argv[first], argv + first + 1, argc - first - 1, &spec);
    if (status != 0)
        goto out;
    status = CTL_EXIT_INVALID;

    snprintf(resource, sizeof(resource), "Certificate %s/%s", o.ns, argv[first]);
    snprintf(cfield, sizeof(cfield), "%s %s", o.pkcs12 ? "--pkcs12" : "--cert",
             o.pkcs12 ? o.pkcs12 : o.cert);
    snprintf(kfield, sizeof(kfield), "%s %s", o.pkcs12 ? "--pkcs12" : "--key",
             o.pkcs12 ? o.pkcs12 : o.key);
    memset(&chk, 0, sizeof(chk));
    chk.resource = resource;
    chk.cert_field = cfield;
    chk.key_field = kfield;
    chk.now = (int64_t)time(NULL);
    chk.source = o.pkcs12 != NULL ? IMPORT_SOURCE_PKCS12 : IMPORT_SOURCE_CUSTOM;
    if (spec != NULL) {
        chk.dns = (struct pki_strs){spec->dns_names.v, spec->dns_names.n};
        chk.ip = (struct pki_strs){spec->ip_addresses.v, spec->ip_addresses.n};
    }
    rc = check_inputs(&o, &chk, &res, &err);
    if (rc == 0) {
        src.state_dir = o.store.state_dir;
        src.key_file = o.store.key_file;
        src.create = true;
        rc = masterkey_ring_load(&ring, &src, &err);
    }
    if (rc == 0)
        rc = store_open_fs(o.store.state_dir, &ring, &st, &err);
    if (rc == 0)
        rc = import_store(st, o.ns, argv[first], &res, &unchanged, &err);
    for (size_t i = 0; i < res.n_warnings; i++)
        fprintf(stderr, "aegisctl certificate import: warning: %s\n", res.warnings[i]);
    if (rc < 0) {
        print_err(rc, &err);
        goto out;
    }
    {
        time_t t = (time_t)res.rec.meta.not_after;
        struct tm tm;

        when[0] = '\0';
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    printf("%s: %s (source %s, serial %s, notAfter %s, SHA-256 %s)\n", resource,
           unchanged ? "unchanged, already stored" : "imported", res.rec.meta.source,
           res.rec.meta.serial, when, res.rec.meta.fingerprint);
    status = CTL_EXIT_OK;
out:
    import_result_dispose(&res);
    store_close(st);
    masterkey_ring_dispose(&ring);
    resource_set_dispose(&set);
    return status;
}

int ctl_certificate(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    if (strcmp(argv[1], "import") == 0)
        return cmd_import(argc - 1, argv + 1);
    if (strcmp(argv[1], "revoke") == 0)
        return ctl_certificate_revoke(argc - 1, argv + 1);
    fprintf(stderr, "aegisctl certificate: unknown subcommand \"%s\"\n", argv[1]);
    usage(stderr);
    return CTL_EXIT_USAGE;
}
