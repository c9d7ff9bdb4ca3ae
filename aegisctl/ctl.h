/* SPDX-License-Identifier: Apache-2.0 */
/* aegisctl's commands: each takes the arguments after its name and returns the exit status. */
#ifndef AEGISCTL_CTL_H
#define AEGISCTL_CTL_H

#include <stdbool.h>
#include <stdio.h>

#include "aegis/diag.h"
#include "aegis/resource.h"

/* Exit statuses shared by every command. */
#define CTL_EXIT_OK 0
#define CTL_EXIT_INVALID 1 /* the input has errors */
#define CTL_EXIT_USAGE 2

int ctl_validate(int argc, char **argv);
int ctl_get(int argc, char **argv);
int ctl_store(int argc, char **argv);
int ctl_ca(int argc, char **argv);
int ctl_csr(int argc, char **argv);
int ctl_certificate(int argc, char **argv);

/* Loads and checks every path into set; every problem goes to diags, sorted. */
void ctl_load(struct aegis_resource_set *set, struct aegis_diags *diags, char **paths, int npaths);
/*
 * Parses "[--output FORMAT] [--help] PATH..." for the commands that read resource files.
 * formats[0] is the default; *format is set to the index of the one chosen and *first to the
 * first PATH argument. Returns -1 to go on, or the exit status to return (help or usage error).
 */
int ctl_parse_paths_args(int argc, char **argv, const char *cmd, const char *const *formats,
                         size_t nformats, void (*usage)(FILE *out), int *format, int *first);
struct aegis_err;
struct store;

/* Prints "aegisctl CMD: where: message" (or the code's text) to stderr. */
void ctl_print_err(const char *cmd, int rc, const struct aegis_err *err);
/*
 * The flags every store-using command takes: --state-dir (-d) and --master-key-file (-k). Put
 * CTL_STORE_LONGOPTS in the command's getopt_long table and "d:k:" in its short options where
 * the short forms apply, and offer each option to ctl_store_opt before the command's own.
 */
struct ctl_store_opts {
    const char *state_dir; /* --state-dir, else $AEGIS_STATE_DIR, else ./.aegis */
    const char *key_file;  /* --master-key-file; NULL: $AEGIS_MASTER_KEY or the state dir */
};

/* One entry per line; clang-format would split the second over four. */
/* clang-format off */
#define CTL_STORE_LONGOPTS                                                                         \
    {"state-dir", required_argument, NULL, 'd'},                                                   \
    {"master-key-file", required_argument, NULL, 'k'}
/* clang-format on */

void ctl_store_opts_init(struct ctl_store_opts *o);
/* Takes getopt's c and optarg when c is one of the shared flags; returns whether it was. */
bool ctl_store_opt(struct ctl_store_opts *o, int c, const char *arg);
/*
 * Opens the store under o->state_dir with the master key from o->key_file, $AEGIS_MASTER_KEY or
 * the state directory (made there on first use when create).
 */
int ctl_open_store(const struct ctl_store_opts *o, bool create, struct store **st,
                   struct aegis_err *err);
/* Prints diagnostics, one per line, in the compiler-style form. */
void ctl_print_diags(const struct aegis_diags *diags, FILE *out);

#endif
