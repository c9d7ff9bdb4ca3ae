/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegisctl ca: the local CA from the command line (controller/issuer/ca.h, docs/local-ca.md).
 *   bundle   print the trust bundle (the root certificate; save it as aegis-local-ca.crt)
 *   sign     sign a CSR with the local CA and print the chain (leaf, then intermediate)
 *   crl      print the current revocation list, PEM or DER
 *   revoke   add a serial to the revocation list
 * The CA is made in the store on first use, so every subcommand works on a fresh state
 * directory. Only certificates and CRLs are printed, never a key.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "aegis/format.h"
#include "aegis/masterkey.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "ctl.h"
#include "issuer/ca.h"
#include "secret.h"

#define CTL_CA_DEFAULT_DURATION "2160h"

struct opts {
    struct ctl_store_opts store; /* --state-dir, --master-key-file */
    const char *out_file;
    const char *csr_file;
    const char *duration;
    const char *usages;
    const char *reason;
    bool der;
    bool is_ca;
    bool help; /* --help was given (and answered) */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: aegisctl ca bundle [-o FILE]\n"
            "       aegisctl ca sign --csr FILE [--duration D] [--usages LIST] [--ca] [-o FILE]\n"
            "       aegisctl ca crl [--der] [-o FILE]\n"
            "       aegisctl ca revoke [--reason R] SERIAL\n"
            "common options: [--state-dir DIR] [--master-key-file F]\n"
            "\n"
            "The local CA (a root and an intermediate, ECDSA P-256) is made in the store on\n"
            "first use.\n"
            "  bundle  prints the root certificate: the trust bundle to give clients, e.g.\n"
            "          aegisctl ca bundle -o %s   (see docs/local-ca.md)\n"
            "  sign    signs the CSR (PEM; its subject, SANs and key are used, its signature\n"
            "          checked) and prints the chain: the certificate, then the intermediate.\n"
            "          --duration defaults to %s; --usages is a comma-separated list of\n"
            "          usages (default: digital signature, key encipherment, server auth);\n"
            "          --ca makes a sub-CA (signed by the root).\n"
            "  crl     prints the revocation list (PEM, or DER with --der).\n"
            "  revoke  lists SERIAL (hex, ':' allowed, as openssl x509 -serial prints it)\n"
            "          on the revocation list; --reason is one of unspecified, keyCompromise,\n"
            "          cACompromise, affiliationChanged, superseded, cessationOfOperation,\n"
            "          certificateHold, privilegeWithdrawn.\n"
            "\n"
            "The state directory defaults to $%s or %s. The master key comes from\n"
            "--master-key-file, $%s, or DIR/%s (made on first use).\n",
            CA_BUNDLE_FILE_NAME, CTL_CA_DEFAULT_DURATION, STORE_STATE_DIR_ENV,
            STORE_STATE_DIR_DEFAULT, MASTERKEY_ENV, MASTERKEY_STATE_FILE);
}

/* Parses the flags; returns the index of the first operand, or -1 after a usage error. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        CTL_STORE_LONGOPTS,
        {"output", required_argument, NULL, 'o'},
        {"csr", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 't'},
        {"usages", required_argument, NULL, 'u'},
        {"reason", required_argument, NULL, 'r'},
        {"der", no_argument, NULL, 'D'},
        {"ca", no_argument, NULL, 'A'},
        CTL_HELP_LONGOPTS_END,
    };
    int c;

    memset(o, 0, sizeof(*o));
    ctl_store_opts_init(&o->store);
    o->duration = CTL_CA_DEFAULT_DURATION;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:k:o:h", longopts, NULL)) != -1) {
        if (ctl_store_opt(&o->store, c, optarg))
            continue;
        switch (c) {
        case 'o':
            o->out_file = optarg;
            break;
        case 'c':
            o->csr_file = optarg;
            break;
        case 't':
            o->duration = optarg;
            break;
        case 'u':
            o->usages = optarg;
            break;
        case 'r':
            o->reason = optarg;
            break;
        case 'D':
            o->der = true;
            break;
        case 'A':
            o->is_ca = true;
            break;
        case 'h':
            usage(stdout);
            o->help = true;
            return -1;
        default:
            usage(stderr);
            return -1;
        }
    }
    return optind;
}

static void print_err(const char *cmd, int rc, const struct aegis_err *err)
{
    char what[32];

    snprintf(what, sizeof(what), "ca %s", cmd);
    ctl_print_err(what, rc, err);
}

/* Writes len bytes to -o FILE or stdout. */
static int emit(const struct opts *o, const void *data, size_t len, struct aegis_err *err)
{
    FILE *f = stdout;
    int rc = 0;

    if (o->out_file != NULL) {
        f = fopen(o->out_file, "wb");
        if (f == NULL)
            return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "cannot write %s: %s", o->out_file,
                                 strerror(errno));
    }
    if (fwrite(data, 1, len, f) != len || fflush(f) != 0)
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL, "cannot write %s",
                           o->out_file ? o->out_file : "the output");
    if (f != stdout && fclose(f) != 0 && rc == 0)
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL, "cannot write %s", o->out_file);
    return rc;
}

static int cmd_bundle(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct opts o;
    struct store *st = NULL;
    struct ca *ca = NULL;
    char *pem = NULL;
    size_t len = 0;
    int first = parse_opts(argc, argv, &o), rc;

    if (first < 0)
        return o.help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
    if (first != argc) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    rc = ctl_open_store(&o.store, true, &st, &err);
    if (rc == 0)
        rc = ca_local_open(st, (int64_t)time(NULL), &ca, &err);
    if (rc == 0)
        rc = ca_bundle_pem(ca, &pem, &len, &err);
    if (rc == 0)
        rc = emit(&o, pem, len, &err);
    if (rc < 0)
        print_err("bundle", rc, &err);
    free(pem);
    ca_free(ca);
    store_close(st);
    return rc < 0 ? CTL_EXIT_INVALID : CTL_EXIT_OK;
}

/* Splits "a, b,c" into usage names and parses them. */
static int parse_usage_list(const char *list, unsigned *mask, struct aegis_err *err)
{
    char *copy = aegis_strdup(list), *p = copy;
    char **names = NULL;
    size_t n = 0;
    int rc;

    while (p != NULL) {
        char *comma = strchr(p, ',');
        char *end;
        if (comma != NULL)
            *comma = '\0';
        while (*p == ' ')
            p++;
        end = p + strlen(p);
        while (end > p && end[-1] == ' ')
            *--end = '\0';
        if (*p != '\0') {
            names = aegis_realloc(names, (n + 1) * sizeof(*names));
            names[n++] = p;
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
    rc = pki_usages_parse(names, n, mask, err);
    free(names);
    free(copy);
    return rc;
}

static int cmd_sign(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct opts o;
    struct store *st = NULL;
    struct ca *ca = NULL;
    struct pki_csr_info info;
    struct pki_cert_req req;
    STACK_OF(X509) *chain = NULL;
    enum pki_key_type type;
    char *csr = NULL, *pem = NULL;
    size_t csr_len = 0, len = 0;
    int64_t duration_ms = 0, now = (int64_t)time(NULL);
    int first = parse_opts(argc, argv, &o), rc;

    memset(&info, 0, sizeof(info));
    if (first < 0)
        return o.help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
    if (first != argc || o.csr_file == NULL) {
        fprintf(stderr, "aegisctl ca sign: --csr FILE is required\n");
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    memset(&req, 0, sizeof(req));
    rc = aegis_duration_parse(o.duration, strlen(o.duration), &duration_ms);
    if (rc < 0 || duration_ms < 60000) {
        fprintf(stderr,
                "aegisctl ca sign: --duration \"%s\" is not a duration of at least 1m "
                "(e.g. 2160h, 90d)\n",
                o.duration);
        return CTL_EXIT_USAGE;
    }
    if (o.usages != NULL) {
        rc = parse_usage_list(o.usages, &req.usages, &err);
        if (rc < 0) {
            print_err("sign", rc, &err);
            return CTL_EXIT_USAGE;
        }
    }
    rc = secret_read_file(o.csr_file, "the CSR", &csr, &csr_len, &err);
    if (rc == 0)
        rc = pki_csr_read(csr, csr_len, &info, &err);
    if (rc < 0)
        goto out;
    if (pki_key_type_of(info.public_key, &type) < 0) {
        rc = aegis_err_set(&err, -AEGIS_E_UNSUPPORTED, NULL,
                           "the CSR's key (%d-bit %s) is not supported; use RSA 2048, 3072 or "
                           "4096, ECDSA P-256 or P-384, or Ed25519",
                           EVP_PKEY_get_bits(info.public_key),
                           EVP_PKEY_get0_type_name(info.public_key));
        goto out;
    }
    if (info.dns.n + info.ip.n + info.uri.n + info.email.n == 0 && info.common_name == NULL) {
        rc = aegis_err_set(&err, -AEGIS_E_INVALID, NULL,
                           "the CSR names nothing: give it a subjectAltName (e.g. openssl req "
                           "-addext \"subjectAltName=DNS:app.test\")");
        goto out;
    }
    req.subject_name = info.subject;
    req.dns = (struct pki_strs){info.dns.v, info.dns.n};
    req.ip = (struct pki_strs){info.ip.v, info.ip.n};
    req.uri = (struct pki_strs){info.uri.v, info.uri.n};
    req.email = (struct pki_strs){info.email.v, info.email.n};
    req.is_ca = o.is_ca;
    req.path_len = o.is_ca ? 0 : -1;
    if (o.is_ca && req.usages == 0)
        req.usages = PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(CERT_SIGN) | PKI_USAGE(CRL_SIGN);
    req.not_before = now - ISSUER_BACKDATE_S;
    req.not_after = now + duration_ms / 1000;
    rc = ctl_open_store(&o.store, true, &st, &err);
    if (rc == 0)
        rc = ca_local_open(st, now, &ca, &err);
    if (rc == 0)
        rc = ca_sign(ca, &req, info.public_key, &chain, &err);
    if (rc == 0)
        rc = pki_chain_to_pem(chain, &pem, &len, &err);
    if (rc == 0)
        rc = emit(&o, pem, len, &err);
out:
    if (rc < 0)
        print_err("sign", rc, &err);
    free(pem);
    pki_chain_free(chain);
    pki_csr_info_dispose(&info);
    free(csr);
    ca_free(ca);
    store_close(st);
    return rc < 0 ? CTL_EXIT_INVALID : CTL_EXIT_OK;
}

static int cmd_crl(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct opts o;
    struct store *st = NULL;
    X509_CRL *crl = NULL;
    char *pem = NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    int first = parse_opts(argc, argv, &o), rc;

    if (first < 0)
        return o.help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
    if (first != argc) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    rc = ctl_open_store(&o.store, true, &st, &err);
    if (rc == 0)
        rc = ca_crl(st, (int64_t)time(NULL), &crl, &err);
    if (rc == 0 && o.der) {
        rc = pki_crl_to_der(crl, &der, &len, &err);
        if (rc == 0)
            rc = emit(&o, der, len, &err);
    } else if (rc == 0) {
        rc = pki_crl_to_pem(crl, &pem, &len, &err);
        if (rc == 0)
            rc = emit(&o, pem, len, &err);
    }
    if (rc < 0)
        print_err("crl", rc, &err);
    free(pem);
    free(der);
    X509_CRL_free(crl);
    store_close(st);
    return rc < 0 ? CTL_EXIT_INVALID : CTL_EXIT_OK;
}

static int cmd_revoke(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct opts o;
    struct store *st = NULL;
    enum pki_crl_reason reason = PKI_CRL_REASON_UNSPECIFIED;
    char serial[PKI_SERIAL_HEX_SIZE];
    int first = parse_opts(argc, argv, &o), rc;

    if (first < 0)
        return o.help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
    if (argc - first != 1) {
        fprintf(stderr, "aegisctl ca revoke: give one SERIAL\n");
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    /* "serial=0A1B..." as `openssl x509 -serial` prints it is taken as well. */
    {
        const char *s = argv[first];
        if (strncmp(s, "serial=", 7) == 0)
            s += 7;
        rc = pki_serial_normalize(s, serial, &err);
    }
    if (rc == 0 && o.reason != NULL)
        rc = pki_crl_reason_parse(o.reason, &reason, &err);
    if (rc < 0) {
        print_err("revoke", rc, &err);
        return CTL_EXIT_USAGE;
    }
    rc = ctl_open_store(&o.store, true, &st, &err);
    if (rc == 0)
        rc = ca_revoke(st, serial, reason, (int64_t)time(NULL), &err);
    if (rc < 0)
        print_err("revoke", rc, &err);
    else
        fprintf(stderr, "aegisctl ca revoke: serial %s is revoked (%s)\n", serial,
                pki_crl_reason_names[reason]);
    store_close(st);
    return rc < 0 ? CTL_EXIT_INVALID : CTL_EXIT_OK;
}

int ctl_ca(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } subs[] = {
        {"bundle", cmd_bundle},
        {"sign", cmd_sign},
        {"crl", cmd_crl},
        {"revoke", cmd_revoke},
    };

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "aegisctl ca: unknown subcommand \"%s\"\n", argv[1]);
    usage(stderr);
    return CTL_EXIT_USAGE;
}
