/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegisctl certificate revoke: has the CA that issued a Certificate's stored certificate revoke
 * it (the Issuer's revoke op, issuer.h: for acme, revokeCert signed with the account key, RFC
 * 8555 section 7.6), then marks the stored record revoked (decide.h DECIDE_REVOKED_KEY) so that
 * the controller issues a new certificate at its next look at the Certificate - at once when it
 * gets SIGHUP. The Issuer's spec (server, trust bundle) comes from the resource files, as the
 * controller reads them; the account key and the certificate come from the store. Never prints
 * a key.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "ctl.h"
#include "decide.h"
#include "issuer/issuer.h"

#define CMD "certificate revoke"

/* RFC 5280 CRLReason codes, in the order of PKI_CRL_REASONS. */
static const int reason_codes[PKI_CRL_REASON_COUNT_] = {
#define REASON_CODE(name, text, code) code,
    PKI_CRL_REASONS(REASON_CODE)
#undef REASON_CODE
};

struct opts {
    const char *ns;
    const char *reason;
    const char *secrets_dir;
    struct ctl_store_opts store;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: aegisctl certificate revoke NAME [-n NAMESPACE] [--reason R]\n"
            "                                   [--state-dir DIR] [--master-key-file F]\n"
            "                                   [--secrets-dir DIR] PATH...\n"
            "\n"
            "Has the CA revoke the stored certificate of the Certificate NAME (or of a Host's\n"
            "implicit NAME = <host>-tls), signed with its Issuer's ACME account key, then marks\n"
            "the stored certificate revoked: aegis-controller issues a new one at its next look\n"
            "at the Certificate (send it SIGHUP to make that now). PATH... are the resource\n"
            "files or directories the controller watches (for the Issuer's server and trust\n"
            "bundle). R is an RFC 5280 reason: unspecified (default), keyCompromise,\n"
            "superseded, cessationOfOperation, affiliationChanged, ... See docs/acme.md.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        CTL_NAMESPACE_LONGOPT,
        CTL_STORE_LONGOPTS,
        {"reason", required_argument, NULL, 'r'},
        {"secrets-dir", required_argument, NULL, 's'},
        CTL_HELP_LONGOPTS_END,
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->ns = "default";
    o->reason = "unspecified";
    ctl_store_getopt_begin(&o->store);
    while ((c = ctl_store_getopt(argc, argv, "n:d:k:h", longopts, &o->store, usage)) != -1) {
        if (c == 'n')
            o->ns = optarg;
        else if (c == 'r')
            o->reason = optarg;
        else if (c == 's')
            o->secrets_dir = optarg;
        else
            return -1;
    }
    return optind;
}

/*
 * The Issuer of Certificate ns/name: an explicit Certificate's issuerRef, or the Host's whose
 * implicit Certificate it is. NULL (with a message printed) when there is none.
 */
static const struct aegis_resource *find_issuer(const struct aegis_resource_set *set,
                                                const char *ns, const char *name)
{
    const struct aegis_resource *r = resource_set_find(set, AEGIS_KIND_CERTIFICATE, ns, name);
    const char *issuer = NULL;
    size_t n = strlen(name), sfx = strlen(DECIDE_IMPLICIT_SUFFIX);

    if (r != NULL && API_HAS(&r->spec.certificate, API_F_CERTIFICATE_SPEC_ISSUER_REF)) {
        issuer = r->spec.certificate.issuer_ref.name;
    } else if (r == NULL && n > sfx && strcmp(name + n - sfx, DECIDE_IMPLICIT_SUFFIX) == 0) {
        char *host = aegis_strndup(name, n - sfx);

        r = resource_set_find(set, AEGIS_KIND_HOST, ns, host);
        free(host);
        if (r != NULL && r->spec.host.tls.mode == AEGIS_TLS_MODE_ACME)
            issuer = r->spec.host.tls.issuer_ref.name;
    }
    if (issuer == NULL) {
        fprintf(stderr,
                "aegisctl " CMD ": no Certificate %s/%s with an issuerRef (nor a Host with "
                "tls.mode acme whose implicit Certificate it is) in the files given\n",
                ns, name);
        return NULL;
    }
    r = resource_set_find(set, AEGIS_KIND_ISSUER, ns, issuer);
    if (r == NULL)
        fprintf(stderr, "aegisctl " CMD ": Issuer %s/%s is not in the files given\n", ns, issuer);
    return r;
}

/* Marks the stored record revoked; the certificate and key stay until a new one replaces them. */
static int mark_revoked(struct store *st, const struct store_id *id, const char *reason,
                        int64_t now, struct aegis_err *err)
{
    struct store_record rec;
    int rc = store_get(st, id, &rec, err);

    if (rc == 0) {
        if (rec.meta.extra == NULL)
            rec.meta.extra = json_object();
        json_object_set_new(rec.meta.extra, DECIDE_REVOKED_KEY,
                            json_pack("{s:I, s:s}", "at", (json_int_t)now, "reason", reason));
        rec.meta.updated_at = now;
        rc = store_put(st, id, &rec, err);
    }
    store_record_dispose(&rec);
    return rc;
}

static int cmd_revoke(int argc, char **argv)
{
    struct aegis_resource_set set;
    struct aegis_diags diags;
    struct aegis_err err = {0};
    const struct aegis_resource *issuer;
    const struct issuer_ops *ops = NULL;
    enum pki_crl_reason reason = PKI_CRL_REASON_UNSPECIFIED;
    struct store_record rec;
    struct store *st = NULL;
    STACK_OF(X509) *chain = NULL;
    struct store_id id;
    struct opts o;
    char *secrets = NULL;
    int first = parse_opts(argc, argv, &o), rc, status = CTL_EXIT_INVALID;
    int64_t now = (int64_t)time(NULL);

    if (first < 0 || argc - first < 2) {
        if (first >= 0) {
            fprintf(stderr, "aegisctl " CMD ": give NAME and the resource PATHs\n");
            usage(stderr);
        }
        return CTL_EXIT_USAGE;
    }
    if (pki_crl_reason_parse(o.reason, &reason, &err) < 0) {
        ctl_print_err(CMD, -AEGIS_E_INVALID, &err);
        return CTL_EXIT_USAGE;
    }
    resource_set_init(&set);
    aegis_diags_init(&diags);
    store_record_init(&rec);
    ctl_load(&set, &diags, argv + first + 1, argc - first - 1);
    issuer = find_issuer(&set, o.ns, argv[first]);
    if (issuer == NULL) {
        ctl_print_diags(&diags, stderr);
        goto out;
    }
    rc = issuer_for_spec(&issuer->spec.issuer, &ops, &err);
    if (rc == 0 && ops->revoke == NULL)
        rc = aegis_err_set(
            &err, -AEGIS_E_UNSUPPORTED, issuer->file,
            "Issuer %s/%s (%s) cannot revoke through its CA%s", o.ns, issuer->meta.name, ops->name,
            strcmp(ops->name, "ca") == 0 ? ": list the serial with aegisctl ca revoke SERIAL" : "");
    if (rc == 0)
        rc = store_id_set(&id, STORE_KIND_CERTIFICATE, o.ns, argv[first], &err);
    if (rc == 0)
        rc = ctl_open_store(&o.store, false, &st, &err);
    if (rc == 0)
        rc = store_get_public(st, &id, &rec, &err);
    if (rc == 0 && rec.chain_pem == NULL)
        rc = aegis_err_set(&err, -AEGIS_E_NOTFOUND, NULL,
                           "Certificate %s/%s has no stored certificate to revoke", o.ns,
                           argv[first]);
    else if (rc == 0)
        rc = pki_chain_from_pem(rec.chain_pem, strlen(rec.chain_pem), &chain, &err);
    if (rc == 0 && ops != NULL && ops->revoke != NULL) {
        struct issuer_revoke_request rr = {
            .issuer_namespace = o.ns,
            .issuer_name = issuer->meta.name,
            .issuer = &issuer->spec.issuer,
            .store = st,
            .now = now,
            .cert = sk_X509_value(chain, 0),
            .reason = reason_codes[reason],
        };

        secrets = o.secrets_dir != NULL ? aegis_strdup(o.secrets_dir)
                                        : aegis_asprintf("%s/secrets", o.store.state_dir);
        rr.secrets_dir = secrets;
        rc = ops->revoke(&rr, &err);
    }
    if (rc == 0)
        rc = mark_revoked(st, &id, pki_crl_reason_names[reason], now, &err);
    if (rc < 0) {
        ctl_print_err(CMD, rc, &err);
        goto out;
    }
    printf("Certificate %s/%s: serial %s revoked by Issuer %s (reason %s); the controller "
           "issues a new one at its next look (SIGHUP: now)\n",
           o.ns, argv[first], rec.meta.serial != NULL ? rec.meta.serial : "?", issuer->meta.name,
           pki_crl_reason_names[reason]);
    status = CTL_EXIT_OK;
out:
    free(secrets);
    pki_chain_free(chain);
    store_record_dispose(&rec);
    store_close(st);
    aegis_diags_dispose(&diags);
    resource_set_dispose(&set);
    return status;
}

int ctl_certificate_revoke(int argc, char **argv)
{
    return cmd_revoke(argc, argv);
}
