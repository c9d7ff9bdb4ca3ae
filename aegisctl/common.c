/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the store-using commands (ca, csr, certificate, store) share: printing an error the same
 * way, and opening the store with the master key from --master-key-file, $AEGIS_MASTER_KEY or
 * the state directory; the option parsing they have in common.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "aegis/err.h"
#include "aegis/masterkey.h"
#include "aegis/store.h"
#include "ctl.h"

void ctl_print_err(const char *cmd, int rc, const struct aegis_err *err)
{
    if (err->msg[0] != '\0')
        fprintf(stderr, "aegisctl %s: %s%s%s\n", cmd, err->where, err->where[0] ? ": " : "",
                err->msg);
    else
        fprintf(stderr, "aegisctl %s: %s\n", cmd, aegis_strerror(rc));
}

void ctl_store_opts_init(struct ctl_store_opts *o)
{
    o->state_dir = store_state_dir_default();
    o->key_file = NULL;
}

bool ctl_store_opt(struct ctl_store_opts *o, int c, const char *arg)
{
    if (c == 'd')
        o->state_dir = arg;
    else if (c == 'k')
        o->key_file = arg;
    else
        return false;
    return true;
}

void ctl_store_getopt_begin(struct ctl_store_opts *o)
{
    ctl_store_opts_init(o);
    optind = 1; /* aegisctl's tests parse several command lines in one process */
}

int ctl_store_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
                     struct ctl_store_opts *o, void (*usage)(FILE *out))
{
    int c;

    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (ctl_store_opt(o, c, optarg))
            continue;
        if (c == 'h') {
            usage(stdout);
            exit(CTL_EXIT_OK);
        }
        if (c == '?' || c == ':')
            usage(stderr);
        return c == ':' ? '?' : c;
    }
    return -1;
}

int ctl_open_store(const struct ctl_store_opts *o, bool create, struct store **st,
                   struct aegis_err *err)
{
    struct aegis_keyring ring;
    struct masterkey_source src = {0};
    int rc;

    masterkey_ring_init(&ring);
    src.state_dir = o->state_dir;
    src.key_file = o->key_file;
    src.create = create;
    rc = masterkey_ring_load(&ring, &src, err);
    if (rc == 0)
        rc = store_open_fs(o->state_dir, &ring, st, err);
    masterkey_ring_dispose(&ring);
    return rc;
}
