/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers several unit tests share: removing a temporary tree, opening a store under a fixed test
 * master key, and running a directory watcher until it is idle. Header-only (static inline) like
 * check.h, so each test stays one file; include it only where used.
 */
#ifndef AEGIS_TEST_TESTUTIL_H
#define AEGIS_TEST_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <string.h>

#include "aegis/err.h"
#include "aegis/masterkey.h"
#include "aegis/store.h"

static inline int testutil_rm_one_(const char *path, const struct stat *sb, int flag,
                                   struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes path and everything below it (links are not followed). */
static inline void testutil_rm_rf(const char *path)
{
    if (nftw(path, testutil_rm_one_, 16, FTW_DEPTH | FTW_PHYS) != 0)
        printf("# cannot remove %s\n", path);
}

/* Opens (creating) the store under dir with a master key of 32 bytes of fill. */
static inline int testutil_store_open(const char *dir, unsigned char fill, struct store **out,
                                      struct aegis_err *err)
{
    struct aegis_keyring ring;
    struct aegis_masterkey mk;
    unsigned char raw[MASTERKEY_BYTES];
    int rc;

    memset(raw, fill, sizeof(raw));
    masterkey_set(&mk, raw);
    masterkey_ring_init(&ring);
    masterkey_ring_add(&ring, &mk, err);
    ring.origin = MASTERKEY_ORIGIN_MEMORY;
    rc = store_open_fs(dir, &ring, out, err);
    masterkey_ring_dispose(&ring);
    masterkey_cleanse(&mk);
    return rc;
}

#endif
