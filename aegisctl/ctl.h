/* SPDX-License-Identifier: Apache-2.0 */
/* aegisctl's commands: each takes the arguments after its name and returns the exit status. */
#ifndef AEGISCTL_CTL_H
#define AEGISCTL_CTL_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
/* aegisctl certificate revoke (revoke.c): argv[0] is "revoke". */
int ctl_certificate_revoke(int argc, char **argv);
int ctl_describe(int argc, char **argv);
/* aegisctl get KIND ...: argv[0] is "get", argv[1] the kind word (ctl_kind_word). */
int ctl_get_status(int argc, char **argv);

/* ---- status files (statusview.c) ---- */

/* What a table shows for a value that is not known (kubectl's form). */
#define CTL_UNKNOWN "<unknown>"

struct api_type;

/* The kind of "certificates", "cert", "host", "aiss", ...: 0, or -1 for another word. */
int ctl_kind_word(const char *word, enum aegis_kind *kind);
/* The status type of a kind (&api_t_certificate_status, ...). */
const struct api_type *ctl_status_type(enum aegis_kind kind);
/* "<state_dir>/status"; the caller frees it. */
char *ctl_status_dir(const char *state_dir);
/*
 * Reads <state_dir>/status/<Kind>/<ns>/<name>.json and checks its status against the schema.
 * Returns 0 with *status (a new reference to the "status" object), -1 when there is no such
 * file, -2 when it cannot be read or is not valid; msg says what and how to fix it.
 */
int ctl_status_read(const char *state_dir, enum aegis_kind kind, const char *ns, const char *name,
                    json_t **status, char *msg, size_t size);

struct ctl_status_ref {
    char *ns, *name;
};

/*
 * The objects of kind that have a status file (in namespace ns, or all when NULL), sorted by
 * namespace and name. Returns 0, or -1 when <state_dir>/status does not exist (msg says so).
 */
int ctl_status_list(const char *state_dir, enum aegis_kind kind, const char *ns,
                    struct ctl_status_ref **out, size_t *n, char *msg, size_t size);
void ctl_status_refs_free(struct ctl_status_ref *v, size_t n);

/* A duration as kubectl prints ages: "45s", "5m", "7h", "89d" (negative: "-3d"). */
void ctl_human_duration(int64_t s, char *buf, size_t size);
/* How long ago an RFC 3339 time was (future: how long until it); CTL_UNKNOWN for NULL. */
void ctl_relative_time(const char *rfc3339, int64_t now, bool future, char *buf, size_t size);
/* The condition of that type in a status object, or NULL. */
const json_t *ctl_condition(const json_t *status, const char *type);
/* A string member, or CTL_UNKNOWN. */
const char *ctl_str(const json_t *obj, const char *key);
/* Prints a JSON value as block-style YAML. */
void ctl_print_yaml(FILE *out, const json_t *v);

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
/* --namespace (-n), for the commands that name a resource. */
#define CTL_NAMESPACE_LONGOPT {"namespace", required_argument, NULL, 'n'}
/* --help and the table's end: the last entries of every command's table. */
#define CTL_HELP_LONGOPTS_END                                                                      \
    {"help", no_argument, NULL, 'h'},                                                              \
    {NULL, 0, NULL, 0}
/* clang-format on */

void ctl_store_opts_init(struct ctl_store_opts *o);
/* Takes getopt's c and optarg when c is one of the shared flags; returns whether it was. */
bool ctl_store_opt(struct ctl_store_opts *o, int c, const char *arg);
/* ctl_store_opts_init, and a fresh scan for ctl_store_getopt (optind back to 1). */
void ctl_store_getopt_begin(struct ctl_store_opts *o);
/*
 * getopt_long for a store-using command: the store flags go to o (ctl_store_opt), --help prints
 * usage to stdout and exits 0, a wrong option prints usage to stderr and gives '?'. Returns the
 * command's next own option, -1 after the last option.
 */
int ctl_store_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
                     struct ctl_store_opts *o, void (*usage)(FILE *out));
/*
 * Opens the store under o->state_dir with the master key from o->key_file, $AEGIS_MASTER_KEY or
 * the state directory (made there on first use when create).
 */
int ctl_open_store(const struct ctl_store_opts *o, bool create, struct store **st,
                   struct aegis_err *err);
/* Prints diagnostics, one per line, in the compiler-style form. */
void ctl_print_diags(const struct aegis_diags *diags, FILE *out);

#endif
