/* SPDX-License-Identifier: Apache-2.0 */
/* aegisctl: the command-line tool. Flags and dispatch only; each command lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

#ifndef AEGIS_VERSION
#define AEGIS_VERSION "0.0.0"
#endif

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"validate", ctl_validate, "check resource files and print every error"},
    {"get", ctl_get, "print resources, or the objects of a kind with their status"},
    {"describe", ctl_describe, "print the whole status of a Certificate, Host or Issuer"},
    {"ca", ctl_ca, "the local CA: trust bundle, sign a CSR, revocation list"},
    {"store", ctl_store, "list, show and re-key the encrypted store (never prints keys)"},
    {"csr", ctl_csr, "print a Certificate's CSR, or import the certificate signed for it"},
    {"certificate", ctl_certificate, "import a custom certificate and key, or a PKCS#12 bundle"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: aegisctl COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-12s %s\n", "version", "print the version");
    fprintf(out, "\nRun 'aegisctl COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CTL_EXIT_OK;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("aegisctl %s\n", AEGIS_VERSION);
        return CTL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "aegisctl: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return CTL_EXIT_USAGE;
}
