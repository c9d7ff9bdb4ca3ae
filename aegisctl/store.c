/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegisctl store: look at and maintain the encrypted store (common/store.h, docs/store.md).
 *   list        metadata of every record (never a key)
 *   show        one record's metadata and certificate; checks that its key opens, and prints
 *               only the public key's SHA-256, never the key
 *   rotate-key  re-seals every key under a new master key, crash-safely
 */
#include <getopt.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aegis/err.h"
#include "aegis/masterkey.h"
#include "aegis/store.h"
#include "ctl.h"

/*
 * Test hook, for tests/integration/20-store-rotate.sh only: when AEGIS_TEST_ROTATE_PAUSE_AFTER=k,
 * rotate-key stops after k re-sealed values (k = 0: once the new key is saved), says so on
 * stderr and waits to be killed, so the test can kill it at every step.
 */
#define ROTATE_PAUSE_ENV "AEGIS_TEST_ROTATE_PAUSE_AFTER"

struct opts {
    struct ctl_store_opts store; /* --state-dir, --master-key-file */
    const char *new_key_file;
    bool json;
    bool no_key;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: aegisctl store list [--state-dir DIR] [--output table|json] [KIND]\n"
            "       aegisctl store show [--state-dir DIR] [--master-key-file F] [--no-key] "
            "KIND/NAMESPACE/NAME\n"
            "       aegisctl store rotate-key [--state-dir DIR] [--master-key-file F] "
            "[--new-key-file F]\n"
            "\n"
            "The state directory defaults to $%s or %s. The master key comes from\n"
            "--master-key-file, $%s, or DIR/%s (see docs/store.md).\n",
            STORE_STATE_DIR_ENV, STORE_STATE_DIR_DEFAULT, MASTERKEY_ENV, MASTERKEY_STATE_FILE);
}

/* Parses the shared flags; returns the index of the first operand, or -1 after a usage error. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        CTL_STORE_LONGOPTS,
        {"new-key-file", required_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"no-key", no_argument, NULL, 'K'},
        CTL_HELP_LONGOPTS_END,
    };
    int c;

    memset(o, 0, sizeof(*o));
    ctl_store_getopt_begin(&o->store);
    while ((c = ctl_store_getopt(argc, argv, "d:k:n:o:h", longopts, &o->store, usage)) != -1) {
        if (c == 'n') {
            o->new_key_file = optarg;
        } else if (c == 'o') {
            if (strcmp(optarg, "json") == 0) {
                o->json = true;
            } else if (strcmp(optarg, "table") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "aegisctl store: --output is table or json\n");
                return -1;
            }
        } else if (c == 'K') {
            o->no_key = true;
        } else {
            return -1;
        }
    }
    return optind;
}

static void print_err(const char *what, int rc, const struct aegis_err *err)
{
    char cmd[32];

    snprintf(cmd, sizeof(cmd), "store %s", what);
    ctl_print_err(cmd, rc, err);
}

static void fmt_time(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (t == 0 || gmtime_r(&tt, &tm) == NULL) {
        snprintf(buf, size, "-");
        return;
    }
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fmt_list(char *const *v, size_t n, char *buf, size_t size)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && o < size; i++) {
        int r = snprintf(buf + o, size - o, "%s%s", i ? "," : "", v[i]);

        if (r < 0)
            break;
        o += (size_t)r;
    }
    if (n == 0)
        snprintf(buf, size, "-");
}

static int cmd_list(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct opts o;
    struct store *st = NULL;
    struct store_id *ids = NULL;
    size_t n = 0;
    json_t *arr = NULL;
    int first = parse_opts(argc, argv, &o), rc, status = CTL_EXIT_OK;

    if (first < 0 || argc - first > 1) {
        if (first >= 0)
            usage(stderr);
        return CTL_EXIT_USAGE;
    }
    /* Metadata only: no master key is needed or loaded. */
    rc = store_open_fs(o.store.state_dir, NULL, &st, &err);
    if (rc == 0)
        rc = store_list(st, first < argc ? argv[first] : NULL, &ids, &n, &err);
    if (rc < 0) {
        print_err("list", rc, &err);
        status = CTL_EXIT_INVALID;
        goto out;
    }
    if (o.json)
        arr = json_array();
    else
        printf("%-40s %-32s %-20s %-34s %s\n", "RECORD", "DNSNAMES", "NOTAFTER", "SERIAL",
               "SOURCE");
    for (size_t i = 0; i < n; i++) {
        struct store_meta meta;
        char idstr[STORE_ID_STR_MAX], names[1024], when[32];

        store_id_format(&ids[i], idstr, sizeof(idstr));
        rc = store_get_meta(st, &ids[i], &meta, &err);
        if (rc < 0) {
            print_err("list", rc, &err);
            status = CTL_EXIT_INVALID;
            continue;
        }
        if (o.json) {
            json_t *obj = json_object();

            json_object_set_new(obj, "kind", json_string(ids[i].kind));
            json_object_set_new(obj, "namespace", json_string(ids[i].ns));
            json_object_set_new(obj, "name", json_string(ids[i].name));
            json_object_set_new(obj, "meta", store__meta_to_json(&meta));
            json_array_append_new(arr, obj);
        } else {
            fmt_list(meta.dns_names, meta.n_dns_names, names, sizeof(names));
            fmt_time(meta.not_after, when, sizeof(when));
            printf("%-40s %-32s %-20s %-34s %s\n", idstr, names, when,
                   meta.serial ? meta.serial : "-", meta.source ? meta.source : "-");
        }
        store_meta_dispose(&meta);
    }
    if (o.json) {
        json_dumpf(arr, stdout, JSON_INDENT(2));
        printf("\n");
    }
out:
    json_decref(arr);
    free(ids);
    store_close(st);
    return status;
}

/* SHA-256 of the key's public half (its DER SubjectPublicKeyInfo), as lowercase hex. */
static int pubkey_sha256(const char *key_pem, char *hex, size_t size)
{
    BIO *bio = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int len = pkey ? i2d_PUBKEY(pkey, &der) : -1, rc = -1;

    if (len > 0 && EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1 &&
        size >= 2 * (size_t)mdlen + 1) {
        for (size_t i = 0; i < mdlen; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        rc = 0;
    }
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return rc;
}

static void print_meta(const struct store_meta *m)
{
    char buf[4096], t[32];

    printf("source:            %s\n", m->source ? m->source : "-");
    printf("revision:          %llu\n", (unsigned long long)m->revision);
    fmt_time(m->updated_at, t, sizeof(t));
    printf("updatedAt:         %s\n", t);
    printf("subject:           %s\n", m->subject ? m->subject : "-");
    printf("issuer:            %s\n", m->issuer ? m->issuer : "-");
    printf("serial:            %s\n", m->serial ? m->serial : "-");
    fmt_time(m->not_before, t, sizeof(t));
    printf("notBefore:         %s\n", t);
    fmt_time(m->not_after, t, sizeof(t));
    printf("notAfter:          %s\n", t);
    fmt_list(m->dns_names, m->n_dns_names, buf, sizeof(buf));
    printf("dnsNames:          %s\n", buf);
    fmt_list(m->ip_addresses, m->n_ip_addresses, buf, sizeof(buf));
    printf("ipAddresses:       %s\n", buf);
    printf("fingerprintSHA256: %s\n", m->fingerprint[0] ? m->fingerprint : "-");
    if (m->extra != NULL) {
        char *s = json_dumps(m->extra, JSON_COMPACT | JSON_SORT_KEYS);

        printf("extra:             %s\n", s ? s : "{}");
        free(s);
    }
}

static int cmd_show(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct aegis_keyring ring;
    struct masterkey_source src = {0};
    struct store_record rec;
    struct store_meta *hist = NULL;
    struct store *st = NULL;
    struct store_id id;
    struct opts o;
    size_t nhist = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1], t[32];
    int first = parse_opts(argc, argv, &o), rc, status = CTL_EXIT_INVALID;

    masterkey_ring_init(&ring);
    store_record_init(&rec);
    if (first < 0 || argc - first != 1) {
        if (first >= 0)
            usage(stderr);
        return CTL_EXIT_USAGE;
    }
    rc = store_id_parse(&id, argv[first], &err);
    if (rc < 0) {
        print_err("show", rc, &err);
        return CTL_EXIT_USAGE;
    }
    if (!o.no_key) {
        src.state_dir = o.store.state_dir;
        src.key_file = o.store.key_file;
        src.create = false;
        rc = masterkey_ring_load(&ring, &src, &err);
        if (rc < 0)
            goto fail;
    }
    rc = store_open_fs(o.store.state_dir, &ring, &st, &err);
    if (rc < 0)
        goto fail;
    rc = o.no_key ? store_get_public(st, &id, &rec, &err) : store_get(st, &id, &rec, &err);
    if (rc < 0)
        goto fail;
    printf("record:            %s\n", argv[first]);
    print_meta(&rec.meta);
    if (o.no_key)
        printf("privateKey:        not opened (--no-key)\n");
    else if (rec.key_pem == NULL)
        printf("privateKey:        none\n");
    else if (pubkey_sha256(rec.key_pem, hex, sizeof(hex)) == 0)
        printf("privateKey:        sealed; opens with the master key; public key SHA-256 %s\n",
               hex);
    else
        printf("privateKey:        sealed; opens, but is not a readable PEM private key\n");
    rc = store_history_list(st, &id, &hist, &nhist, &err);
    if (rc < 0)
        goto fail;
    for (size_t i = 0; i < nhist; i++) {
        fmt_time(hist[i].not_after, t, sizeof(t));
        printf("history:           revision %llu, serial %s, notAfter %s\n",
               (unsigned long long)hist[i].revision, hist[i].serial ? hist[i].serial : "-", t);
    }
    if (rec.chain_pem != NULL)
        printf("\n%s", rec.chain_pem);
    if (rec.csr_pem != NULL)
        printf("\n%s", rec.csr_pem);
    status = CTL_EXIT_OK;
    goto out;
fail:
    print_err("show", rc, &err);
out:
    store_meta_array_free(hist, nhist);
    store_record_dispose(&rec);
    store_close(st);
    masterkey_ring_dispose(&ring);
    return status;
}

struct pause_hook {
    long after; /* -1: no pause */
};

static int rotate_progress(void *arg, const struct store_id *id, size_t done)
{
    const struct pause_hook *hook = arg;
    char s[STORE_ID_STR_MAX];

    if (id != NULL) {
        store_id_format(id, s, sizeof(s));
        fprintf(stderr, "re-sealed %s (%zu)\n", s, done);
    }
    if (hook->after >= 0 && (size_t)hook->after == done) {
        fprintf(stderr, "rotate-key: paused after %zu (%s)\n", done, ROTATE_PAUSE_ENV);
        fflush(stderr);
        for (;;)
            pause();
    }
    return 0;
}

static int cmd_rotate(int argc, char **argv)
{
    struct aegis_err err = {0};
    struct aegis_keyring ring;
    struct aegis_masterkey new_key, *newp = NULL;
    struct masterkey_source src = {0};
    struct pause_hook hook = {-1};
    struct store *st = NULL;
    struct opts o;
    const char *env_new = getenv(MASTERKEY_NEW_ENV), *pause_env = getenv(ROTATE_PAUSE_ENV);
    char old_id[MASTERKEY_ID_HEX_LEN + 1], new_id[MASTERKEY_ID_HEX_LEN + 1];
    enum masterkey_origin origin;
    bool started = false;
    int first = parse_opts(argc, argv, &o), rc, status = CTL_EXIT_INVALID;

    masterkey_ring_init(&ring);
    memset(&new_key, 0, sizeof(new_key));
    if (first < 0 || argc - first != 0) {
        if (first >= 0)
            usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (pause_env != NULL && pause_env[0] != '\0') {
        char *end = NULL;

        hook.after = strtol(pause_env, &end, 10);
        if (*end != '\0' || hook.after < 0) {
            fprintf(stderr, "aegisctl store rotate-key: %s must be a count\n", ROTATE_PAUSE_ENV);
            return CTL_EXIT_USAGE;
        }
    }
    if (o.new_key_file != NULL && env_new != NULL && env_new[0] != '\0') {
        fprintf(stderr,
                "aegisctl store rotate-key: both --new-key-file and %s are set; give the "
                "new key once\n",
                MASTERKEY_NEW_ENV);
        return CTL_EXIT_USAGE;
    }
    if (o.new_key_file != NULL)
        rc = masterkey_load_file(&new_key, o.new_key_file, &err);
    else if (env_new != NULL && env_new[0] != '\0')
        rc = masterkey_from_hex(&new_key, env_new, strlen(env_new), &err);
    else
        rc = 1;
    if (rc < 0)
        goto fail;
    if (rc == 0)
        newp = &new_key;
    src.state_dir = o.store.state_dir;
    src.key_file = o.store.key_file;
    src.create = false;
    rc = masterkey_ring_load(&ring, &src, &err);
    if (rc < 0)
        goto fail;
    origin = ring.origin;
    masterkey_id_hex(masterkey_ring_current(&ring)->id, old_id, sizeof(old_id));
    /* In external mode, an interrupted rotation is resumed by giving the same new key again. */
    if (origin != MASTERKEY_ORIGIN_STATE && newp != NULL) {
        rc = masterkey_ring_add(&ring, newp, &err);
        if (rc < 0)
            goto fail;
    }
    rc = store_open_fs(o.store.state_dir, &ring, &st, &err);
    if (rc < 0)
        goto fail;
    started = true;
    rc = store_rotate_key(st, newp, rotate_progress, &hook, &err);
    if (rc < 0)
        goto fail;
    masterkey_id_hex(masterkey_ring_current(&st->ring)->id, new_id, sizeof(new_id));
    if (origin == MASTERKEY_ORIGIN_STATE) {
        printf("master key rotated: every record in %s is sealed with key id %s, now in %s/%s; "
               "the old key (id %s) is gone\n",
               o.store.state_dir, new_id, o.store.state_dir, MASTERKEY_STATE_FILE, old_id);
    } else {
        printf("every record in %s is re-sealed with key id %s.\n"
               "Now give every process using this state directory the new key: set %s to it, or "
               "point --master-key-file at it. The old key (id %s) opens nothing any more.\n",
               o.store.state_dir, new_id, MASTERKEY_ENV, old_id);
    }
    status = CTL_EXIT_OK;
    goto out;
fail:
    print_err("rotate-key", rc, &err);
    if (started)
        fprintf(stderr, "aegisctl store rotate-key: every record still opens with the old or "
                        "the new key; run the same command again to finish\n");
out:
    store_close(st);
    masterkey_ring_dispose(&ring);
    masterkey_cleanse(&new_key);
    return status;
}

int ctl_store(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    if (strcmp(argv[1], "list") == 0)
        return cmd_list(argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0)
        return cmd_show(argc - 1, argv + 1);
    if (strcmp(argv[1], "rotate-key") == 0)
        return cmd_rotate(argc - 1, argv + 1);
    fprintf(stderr, "aegisctl store: unknown subcommand \"%s\"\n", argv[1]);
    usage(stderr);
    return CTL_EXIT_USAGE;
}
