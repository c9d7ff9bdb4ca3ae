/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_pki: how fast the local CA issues and the store keeps records, measured by hand
 * (hack/bench/pki.sh runs it beside the OpenSSL CLI doing the same work; never run by ctest,
 * as timings on a shared machine are not something to assert on).
 *
 * Each line runs one operation for a wall-clock budget (--seconds, and at least --min-count
 * times) or a fixed count (--iterations), after one untimed warm-up call, timed with
 * CLOCK_MONOTONIC:
 *   - key generation alone, local-CA signing alone (ca_sign, CA held open), opening the local CA
 *     (reading and unsealing its root and intermediate keys), and issuer_issue() with and without
 *     a pre-made key: the one entry point the reconciler calls for a Certificate whose Issuer is
 *     `ca: {}` (open the CA from the store, generate the key, sign);
 *   - store_put of a new record and over an existing one, and store_get (the key unsealed), of a
 *     small record, and beside them the floor: a plain atomic write (temp file, write, fsync,
 *     rename, fsync of the directory, as the store does) and a plain read of the very bytes the
 *     store wrote, interleaved with the store's operations so that both see the same disk.
 * The store lives in a temporary state directory (removed at the end) under a fixed test master
 * key, so nothing of a real installation is read or touched.
 *
 * usage: bench_pki [--seconds S [--min-count N] | --iterations N] [--only SUBSTRING]
 *                  [--state-dir D] [--tsv]
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "aegis/alloc.h"
#include "aegis/api.h"
#include "aegis/masterkey.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "issuer/ca.h"
#include "issuer/issuer.h"

/* A fixed test key: the bench's records are throwaway and must not need a key file. */
#define BENCH_MASTER_KEY_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define BENCH_NS "bench"
#define BENCH_SECONDS_DEFAULT 2.0
#define BENCH_DURATION_MS (90 * 86400 * 1000LL) /* leaves valid 90 days, as `-days 90` */
#define BENCH_FLOOR_DIR "floor"

/* The leaf every issuance asks for: two DNS names and an address, as pki.sh's peers do. */
static char *bench_dns[] = {"bench.example.com", "www.bench.example.com"};
static char *bench_ip[] = {"127.0.0.1"};
#define BENCH_CN "bench.example.com"

struct key_kind {
    const char *id;
    enum pki_key_type type;
    enum aegis_key_algorithm alg;
    int64_t size;
};

static const struct key_kind key_kinds[] = {
    {"p256", PKI_KEY_EC_P256, AEGIS_KEY_ALGORITHM_ECDSA, 256},
    {"rsa2048", PKI_KEY_RSA_2048, AEGIS_KEY_ALGORITHM_RSA, 2048},
};
#define KEY_KINDS (sizeof(key_kinds) / sizeof(key_kinds[0]))

struct bench {
    char *state_dir;
    bool own_state_dir; /* made here, so removed here */
    struct aegis_keyring ring;
    struct store *st;
    struct ca *ca;
    int64_t now;
    struct aegis_issuer_spec issuer;
    struct aegis_certificate_spec cert[KEY_KINDS];
    struct pki_cert_req creq[KEY_KINDS];
    EVP_PKEY *key[KEY_KINDS];
    struct store_record rec; /* what store.put writes: a P-256 chain and its key */
    size_t n_put;            /* records r000000 .. written so far */
    char *floor_dir;
    char *floor_bytes; /* a copy of the first record file the store wrote */
    size_t floor_len;
    size_t n_floor; /* floor files f000000 .. written so far */
};

typedef int (*bench_op)(struct bench *b, size_t kind, struct aegis_err *err);

struct bench_case {
    const char *id; /* "<what>.<key kind>"; --only matches a substring of it */
    const char *what;
    bench_op op;
    size_t kind; /* index into key_kinds, for the operations that take one */
    /*
     * Run interleaved with the next case (one of each, in turn; chains of these make a group),
     * each timed on its own: a shared disk's speed drifts by several times within seconds, and
     * the ratio of the store to its floor is only meaningful when both see the same drift.
     */
    bool with_next;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the operations -------------------------------------------------------------------------- */

static int op_keygen(struct bench *b, size_t kind, struct aegis_err *err)
{
    EVP_PKEY *key = NULL;
    int rc = pki_key_generate(key_kinds[kind].type, &key, err);

    (void)b;
    EVP_PKEY_free(key);
    return rc;
}

static int op_ca_open(struct bench *b, size_t kind, struct aegis_err *err)
{
    struct ca *ca = NULL;
    int rc = ca_local_open(b->st, b->now, &ca, err);

    (void)kind;
    ca_free(ca);
    return rc;
}

static int op_sign(struct bench *b, size_t kind, struct aegis_err *err)
{
    STACK_OF(X509) *chain = NULL;
    int rc = ca_sign(b->ca, &b->creq[kind], b->key[kind], &chain, err);

    pki_chain_free(chain);
    return rc;
}

/* issuer_issue() for key_kinds[kind], with the pre-made key when keyed; *res is disposed. */
static int issue(struct bench *b, size_t kind, bool keyed, struct issuer_result *res,
                 struct aegis_err *err)
{
    struct issuer_request req = {
        .cert_namespace = BENCH_NS,
        .cert_name = key_kinds[kind].id,
        .cert = &b->cert[kind],
        .issuer_name = "local",
        .issuer = &b->issuer,
        .now = b->now,
        .store = b->st,
        .key = keyed ? b->key[kind] : NULL,
    };
    int rc = issuer_issue(&req, res, err);

    if (rc == 0 && res->status != ISSUER_DONE)
        rc = aegis_err_set(err, -AEGIS_E_STATE, NULL, "the local CA answered pending");
    return rc;
}

static int op_issue(struct bench *b, size_t kind, struct aegis_err *err)
{
    struct issuer_result res;
    int rc;

    issuer_result_init(&res);
    rc = issue(b, kind, false, &res, err);
    issuer_result_dispose(&res);
    return rc;
}

static int op_issue_keyed(struct bench *b, size_t kind, struct aegis_err *err)
{
    struct issuer_result res;
    int rc;

    issuer_result_init(&res);
    rc = issue(b, kind, true, &res, err);
    issuer_result_dispose(&res);
    return rc;
}

static int record_id(struct store_id *id, size_t i, struct aegis_err *err)
{
    char name[32];

    snprintf(name, sizeof(name), "r%06zu", i);
    return store_id_set(id, STORE_KIND_CERTIFICATE, BENCH_NS, name, err);
}

static int op_put(struct bench *b, size_t kind, struct aegis_err *err)
{
    struct store_id id;
    int rc = record_id(&id, b->n_put, err);

    (void)kind;
    if (rc == 0)
        rc = store_put(b->st, &id, &b->rec, err);
    if (rc == 0)
        b->n_put++;
    return rc;
}

/* The steady state of a renewal-free rewrite: the record exists, its certificate is unchanged. */
static int op_update(struct bench *b, size_t kind, struct aegis_err *err)
{
    struct store_id id;
    int rc = record_id(&id, (size_t)rand() % b->n_put, err);

    (void)kind;
    if (rc == 0)
        rc = store_put(b->st, &id, &b->rec, err);
    return rc;
}

static int op_get(struct bench *b, size_t kind, struct aegis_err *err)
{
    struct store_record rec;
    struct store_id id;
    int rc;

    (void)kind;
    store_record_init(&rec);
    /* A different record each time, over every one written, as a controller reads many. */
    rc = record_id(&id, (size_t)rand() % b->n_put, err);
    if (rc == 0)
        rc = store_get(b->st, &id, &rec, err);
    if (rc == 0 && rec.key_pem == NULL)
        rc = aegis_err_set(err, -AEGIS_E_STATE, NULL, "store_get gave no key");
    store_record_dispose(&rec);
    return rc;
}

static char *floor_path(const struct bench *b, size_t i)
{
    return aegis_asprintf("%s/f%06zu", b->floor_dir, i);
}

/* The least an atomic, durable write can do: what store__write_file does, minus the store. */
static int op_floor_write(struct bench *b, size_t kind, struct aegis_err *err)
{
    char *path = floor_path(b, b->n_floor), *tmp = aegis_asprintf("%s.tmp", path);
    const char *p = b->floor_bytes;
    size_t left = b->floor_len;
    int fd = -1, dfd = -1, rc = 0;

    (void)kind;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = aegis_err_set(err, -errno, tmp, "cannot create: %s", strerror(errno));
        goto out;
    }
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = aegis_err_set(err, -EIO, tmp, "cannot write");
            goto out;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        rc = aegis_err_set(err, -errno, tmp, "cannot sync: %s", strerror(errno));
        goto out;
    }
    rc = close(fd);
    fd = -1;
    if (rc != 0) {
        rc = aegis_err_set(err, -errno, tmp, "cannot close: %s", strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = aegis_err_set(err, -errno, path, "cannot rename: %s", strerror(errno));
        goto out;
    }
    dfd = open(b->floor_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        rc = aegis_err_set(err, -errno, b->floor_dir, "cannot sync: %s", strerror(errno));
        goto out;
    }
    b->n_floor++;
out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    free(tmp);
    free(path);
    return rc;
}

/* Reads a whole file into a new buffer (NUL-terminated) of *len bytes. */
static int read_whole(const char *path, char **data, size_t *len, struct aegis_err *err)
{
    struct stat sb;
    char *buf = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    *data = NULL;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        rc = aegis_err_set(err, -errno, path, "cannot open: %s", strerror(errno));
        goto out;
    }
    buf = aegis_malloc((size_t)sb.st_size + 1);
    while (got < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = aegis_err_set(err, -EIO, path, "cannot read");
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    buf = NULL;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static int op_floor_read(struct bench *b, size_t kind, struct aegis_err *err)
{
    char *path = floor_path(b, (size_t)rand() % b->n_floor), *data = NULL;
    size_t len = 0;
    int rc = read_whole(path, &data, &len, err);

    (void)kind;
    if (rc == 0 && len != b->floor_len)
        rc = aegis_err_set(err, -AEGIS_E_STATE, path, "read %zu bytes, wrote %zu", len,
                           b->floor_len);
    free(data);
    free(path);
    return rc;
}

static const struct bench_case cases[] = {
    {"keygen.p256", "key generation only, ECDSA P-256", op_keygen, 0, false},
    {"keygen.rsa2048", "key generation only, RSA 2048", op_keygen, 1, false},
    {"ca.open", "ca_local_open: read + unseal root and intermediate", op_ca_open, 0, false},
    {"sign.p256", "ca_sign only: P-256 key pre-made, CA held open", op_sign, 0, false},
    {"sign.rsa2048", "ca_sign only: RSA 2048 key pre-made, CA held open", op_sign, 1, false},
    {"issue-keyed.p256", "issuer_issue, P-256 key pre-made: CA open + sign", op_issue_keyed, 0,
     false},
    {"issue-keyed.rsa2048", "issuer_issue, RSA key pre-made: CA open + sign", op_issue_keyed, 1,
     false},
    {"issue.p256", "issuer_issue: CA open + P-256 keygen + sign", op_issue, 0, false},
    {"issue.rsa2048", "issuer_issue: CA open + RSA 2048 keygen + sign", op_issue, 1, false},
    {"store.put", "store_put: P-256 chain + sealed key, new record", op_put, 0, true},
    {"store.update", "store_put over an existing record, same certificate", op_update, 0, true},
    {"floor.write", "floor: temp, write, fsync, rename, fsync dir", op_floor_write, 0, false},
    {"store.get", "store_get: a random record, key unsealed", op_get, 0, true},
    {"floor.read", "floor: open, read, close of a same-size file", op_floor_read, 0, false},
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))
/* The most cases chained by with_next into one interleaved group. */
#define BENCH_GROUP_MAX 4

/* ---- setup and teardown ---------------------------------------------------------------------- */

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -errno;
}

static int setup(struct bench *b, const char *state_dir, struct aegis_err *err)
{
    struct aegis_masterkey mk;
    struct issuer_result res;
    struct store_id id;
    char *first = NULL;
    int rc;

    issuer_result_init(&res);
    masterkey_ring_init(&b->ring);
    store_record_init(&b->rec);
    b->now = (int64_t)time(NULL);
    if (state_dir != NULL) {
        b->state_dir = aegis_strdup(state_dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        b->state_dir = aegis_asprintf("%s/bench_pki.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (mkdtemp(b->state_dir) == NULL) {
            rc = aegis_err_set(err, -errno, b->state_dir, "cannot make a temporary directory: %s",
                               strerror(errno));
            goto out;
        }
        b->own_state_dir = true;
    }
    rc = masterkey_from_hex(&mk, BENCH_MASTER_KEY_HEX, strlen(BENCH_MASTER_KEY_HEX), err);
    if (rc == 0)
        rc = masterkey_ring_add(&b->ring, &mk, err);
    masterkey_cleanse(&mk);
    if (rc < 0)
        goto out;
    b->ring.origin = MASTERKEY_ORIGIN_MEMORY;
    rc = store_open_fs(b->state_dir, &b->ring, &b->st, err);
    if (rc < 0)
        goto out;

    /* `ca: {}`, and one Certificate per key kind asking for the same names. */
    b->issuer.present = 1u << API_F_ISSUER_SPEC_CA;
    for (size_t k = 0; k < KEY_KINDS; k++) {
        struct aegis_certificate_spec *c = &b->cert[k];
        c->common_name = BENCH_CN;
        c->dns_names.v = bench_dns;
        c->dns_names.n = sizeof(bench_dns) / sizeof(bench_dns[0]);
        c->ip_addresses.v = bench_ip;
        c->ip_addresses.n = sizeof(bench_ip) / sizeof(bench_ip[0]);
        c->duration_ms = BENCH_DURATION_MS;
        c->private_key.algorithm = key_kinds[k].alg;
        c->private_key.size = key_kinds[k].size;
        c->present =
            (1u << API_F_CERTIFICATE_SPEC_COMMON_NAME) | (1u << API_F_CERTIFICATE_SPEC_DNS_NAMES) |
            (1u << API_F_CERTIFICATE_SPEC_IP_ADDRESSES) | (1u << API_F_CERTIFICATE_SPEC_DURATION) |
            (1u << API_F_CERTIFICATE_SPEC_PRIVATE_KEY);
        rc = issuer__cert_req(c, b->now, &b->creq[k], &res, err);
        if (rc == 0)
            rc = pki_key_generate(key_kinds[k].type, &b->key[k], err);
        if (rc < 0)
            goto out;
    }
    /* The first issuance makes the local CA, so no timed call pays for that. */
    rc = issue(b, 0, false, &res, err);
    if (rc < 0)
        goto out;
    /* A bench of something that does not sign for real would measure nothing: check once. */
    if (sk_X509_num(res.chain) != 2 ||
        X509_verify(sk_X509_value(res.chain, 0), X509_get0_pubkey(sk_X509_value(res.chain, 1))) !=
            1) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, NULL,
                           "the issued leaf does not verify against the intermediate");
        goto out;
    }
    rc = ca_local_open(b->st, b->now, &b->ca, err);
    if (rc < 0)
        goto out;

    /* The record store.put writes, and a first one for store.get to find. */
    rc = pki_chain_to_pem(res.chain, &b->rec.chain_pem, NULL, err);
    if (rc == 0)
        rc = pki_key_to_pem(res.key, &b->rec.key_pem, NULL, err);
    if (rc < 0)
        goto out;
    b->rec.meta.source = aegis_strdup("ca");
    rc = record_id(&id, 0, err);
    if (rc == 0)
        rc = store_put(b->st, &id, &b->rec, err);
    if (rc < 0)
        goto out;
    b->n_put = 1;

    /* The floor writes exactly what the store wrote (its layout is in store_fs.c). */
    first = aegis_asprintf("%s/store/%s/%s/%s/current.json", b->state_dir, id.kind, id.ns, id.name);
    rc = read_whole(first, &b->floor_bytes, &b->floor_len, err);
    if (rc < 0)
        goto out;
    b->floor_dir = aegis_asprintf("%s/%s", b->state_dir, BENCH_FLOOR_DIR);
    if (mkdir(b->floor_dir, 0700) != 0) {
        rc = aegis_err_set(err, -errno, b->floor_dir, "cannot mkdir: %s", strerror(errno));
        goto out;
    }
    rc = op_floor_write(b, 0, err);
out:
    free(first);
    issuer_result_dispose(&res);
    return rc;
}

static void teardown(struct bench *b)
{
    store_close(b->st);
    ca_free(b->ca);
    for (size_t k = 0; k < KEY_KINDS; k++)
        EVP_PKEY_free(b->key[k]);
    store_record_dispose(&b->rec);
    masterkey_ring_dispose(&b->ring);
    free(b->floor_bytes);
    free(b->floor_dir);
    if (b->own_state_dir && nftw(b->state_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "bench_pki: could not remove %s\n", b->state_dir);
    free(b->state_dir);
}

/* ---- the runner ------------------------------------------------------------------------------ */

struct result {
    long count;
    double seconds;
};

static void print_result(const struct bench_case *c, const struct result *r, bool tsv)
{
    double rate = r->seconds > 0 ? (double)r->count / r->seconds : 0;

    if (tsv)
        printf("%s\t%ld\t%.6f\t%.2f\t%s\n", c->id, r->count, r->seconds, rate, c->what);
    else
        printf("%-20s %8ld %9.3f %10.1f  %s\n", c->id, r->count, r->seconds, rate, c->what);
    fflush(stdout);
}

struct limits {
    double budget;   /* seconds of wall clock per case */
    long iterations; /* > 0: exactly this many per case instead */
    long min_count;  /* with a budget: at least this many per case */
};

/*
 * Runs the n cases c[0..n) in turn, one operation of each per round, until the limits are met;
 * r[i] receives the count and the time spent in c[i] alone. A budget is per case, so n
 * interleaved cases take n times as long as one.
 */
static int run(struct bench *b, const struct bench_case *const *c, size_t n,
               const struct limits *lim, struct result *r, struct aegis_err *err)
{
    double start, elapsed = 0;
    long rounds = 0;
    int rc;

    /* One untimed call each: first-use costs (page faults, lazy OpenSSL init) are not the rate. */
    for (size_t i = 0; i < n; i++) {
        rc = c[i]->op(b, c[i]->kind, err);
        if (rc < 0)
            return rc;
        r[i] = (struct result){0};
    }
    start = now_s();
    while (lim->iterations > 0
               ? rounds < lim->iterations
               : rounds == 0 || rounds < lim->min_count || elapsed < lim->budget * (double)n) {
        for (size_t i = 0; i < n; i++) {
            double t = now_s();
            rc = c[i]->op(b, c[i]->kind, err);
            if (rc < 0)
                return rc;
            r[i].seconds += now_s() - t;
        }
        rounds++;
        elapsed = now_s() - start;
    }
    for (size_t i = 0; i < n; i++)
        r[i].count = rounds;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_pki [--seconds S [--min-count N] | --iterations N] "
            "[--only SUBSTRING] [--state-dir D] [--tsv]\n"
            "  --seconds S      wall-clock budget per line (default %.0f)\n"
            "  --min-count N    with --seconds, at least N operations per line (default 1)\n"
            "  --iterations N   a fixed count per line instead\n"
            "  --only SUBSTR    run the lines whose id contains SUBSTR (repeatable)\n"
            "  --state-dir D    an empty directory for the store, kept afterwards\n"
            "                   (default: a temporary one, removed)\n"
            "  --tsv            print id, count, seconds, ops/s, description, tab-separated\n"
            "store.put/floor.write and store.get/floor.read run interleaved, in pairs.\n",
            BENCH_SECONDS_DEFAULT);
}

#define BENCH_ONLY_MAX 16

static bool selected(const char *id, char *const *only, size_t n_only)
{
    for (size_t i = 0; i < n_only; i++)
        if (strstr(id, only[i]) != NULL)
            return true;
    return n_only == 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"seconds", required_argument, NULL, 's'},
        {"iterations", required_argument, NULL, 'n'},
        {"min-count", required_argument, NULL, 'm'},
        {"only", required_argument, NULL, 'o'},
        {"state-dir", required_argument, NULL, 'd'},
        {"tsv", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct bench b = {0};
    struct aegis_err err = {0};
    char *only[BENCH_ONLY_MAX];
    size_t n_only = 0;
    const char *state_dir = NULL;
    struct limits lim = {BENCH_SECONDS_DEFAULT, 0, 1};
    bool tsv = false;
    char *end;
    int c, rc;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            errno = 0;
            lim.budget = strtod(optarg, &end);
            if (errno != 0 || *end != '\0' || !(lim.budget > 0)) {
                fprintf(stderr, "bench_pki: --seconds wants a positive number\n");
                return 2;
            }
            break;
        case 'n':
            errno = 0;
            lim.iterations = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || lim.iterations <= 0) {
                fprintf(stderr, "bench_pki: --iterations wants a positive integer\n");
                return 2;
            }
            break;
        case 'm':
            errno = 0;
            lim.min_count = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || lim.min_count <= 0) {
                fprintf(stderr, "bench_pki: --min-count wants a positive integer\n");
                return 2;
            }
            break;
        case 'o':
            if (n_only == BENCH_ONLY_MAX) {
                fprintf(stderr, "bench_pki: at most %d --only\n", BENCH_ONLY_MAX);
                return 2;
            }
            only[n_only++] = optarg;
            break;
        case 'd':
            state_dir = optarg;
            break;
        case 't':
            tsv = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    /* The random record picks need no quality, only to be the same from run to run. */
    srand(1);

    rc = setup(&b, state_dir, &err);
    if (rc < 0) {
        fprintf(stderr, "bench_pki: setup: %s%s%s\n", err.where, err.where[0] ? ": " : "",
                err.msg[0] ? err.msg : aegis_strerror(rc));
        goto out;
    }
    if (!tsv)
        printf("%-20s %8s %9s %10s  %s\n", "operation", "count", "seconds", "ops/s", "what");
    for (size_t i = 0; i < N_CASES; i++) {
        struct result r[BENCH_GROUP_MAX];
        const struct bench_case *group[BENCH_GROUP_MAX];
        size_t n = 0, last = i;

        /* The group of i: i and the cases chained to it by with_next, those selected. */
        while (cases[last].with_next && last + 1 < N_CASES)
            last++;
        for (size_t j = i; j <= last; j++) {
            assert(n < BENCH_GROUP_MAX);
            if (selected(cases[j].id, only, n_only))
                group[n++] = &cases[j];
        }
        i = last;
        if (n == 0)
            continue;
        rc = run(&b, group, n, &lim, r, &err);
        if (rc < 0) {
            fprintf(stderr, "bench_pki: %s: %s%s%s\n", group[0]->id, err.where,
                    err.where[0] ? ": " : "", err.msg[0] ? err.msg : aegis_strerror(rc));
            goto out;
        }
        for (size_t j = 0; j < n; j++)
            print_result(group[j], &r[j], tsv);
    }
out:
    teardown(&b);
    return rc < 0 ? 1 : 0;
}
