/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the store-using commands (ca, csr, certificate, store) share: printing an error the same
 * way, and opening the store with the master key from --master-key-file, $AEGIS_MASTER_KEY or
 * the state directory.
 */
#include <stdio.h>

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

int ctl_open_store(const char *state_dir, const char *key_file, bool create, struct store **st,
                   struct aegis_err *err)
{
    struct aegis_keyring ring;
    struct masterkey_source src = {0};
    int rc;

    masterkey_ring_init(&ring);
    src.state_dir = state_dir;
    src.key_file = key_file;
    src.create = create;
    rc = masterkey_ring_load(&ring, &src, err);
    if (rc == 0)
        rc = store_open_fs(state_dir, &ring, st, err);
    masterkey_ring_dispose(&ring);
    return rc;
}
