/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper (not installed): writes one record into the filesystem store from PEM files, so
 * shell tests can fill a store without an issuer. The master key is found as the controller
 * finds it (--master-key-file, AEGIS_MASTER_KEY, or <state>/master.key, made when missing).
 *
 * usage: store-put [--state-dir D] [--master-key-file F] [--source S] [--cert F] [--key F]
 *                  KIND/NAMESPACE/NAME
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"
#include "aegis/masterkey.h"
#include "aegis/store.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = aegis_malloc((size_t)AEGIS_LIMIT_PEM_BYTES + 1);
    n = fread(buf, 1, (size_t)AEGIS_LIMIT_PEM_BYTES, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 'd'},
        {"master-key-file", required_argument, NULL, 'k'},
        {"source", required_argument, NULL, 's'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    struct masterkey_source src = {0};
    struct aegis_err err = {0};
    struct aegis_keyring ring;
    struct store_record rec;
    struct store *st = NULL;
    struct store_id id;
    const char *cert = NULL, *key = NULL;
    int c, rc = 0;

    masterkey_ring_init(&ring);
    store_record_init(&rec);
    src.state_dir = store_state_dir_default();
    src.create = true;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            src.state_dir = optarg;
            break;
        case 'k':
            src.key_file = optarg;
            break;
        case 's':
            free(rec.meta.source);
            rec.meta.source = aegis_strdup(optarg);
            break;
        case 'c':
            cert = optarg;
            break;
        case 'p':
            key = optarg;
            break;
        default:
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: store-put [--state-dir D] [--cert F] [--key F] KIND/NS/NAME\n");
        return 2;
    }
    rc = store_id_parse(&id, argv[optind], &err);
    if (rc == 0 && cert != NULL && (rec.chain_pem = slurp(cert)) == NULL)
        rc = aegis_err_set(&err, -AEGIS_E_NOTFOUND, cert, "cannot read");
    if (rc == 0 && key != NULL && (rec.key_pem = slurp(key)) == NULL)
        rc = aegis_err_set(&err, -AEGIS_E_NOTFOUND, key, "cannot read");
    if (rc == 0)
        rc = masterkey_ring_load(&ring, &src, &err);
    if (rc == 0)
        rc = store_open_fs(src.state_dir, &ring, &st, &err);
    if (rc == 0)
        rc = store_put(st, &id, &rec, &err);
    if (rc < 0)
        fprintf(stderr, "store-put: %s%s%s\n", err.where, err.where[0] ? ": " : "", err.msg);
    store_close(st);
    store_record_dispose(&rec);
    masterkey_ring_dispose(&ring);
    return rc < 0 ? 1 : 0;
}
