/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegis-dataplane: flags and wiring only. The dataplane is an h2o-based proxy that receives a
 * rendered TLS and routing configuration from the controller, validates it, and swaps it in live.
 * In this version it only answers --help and --version, so that the build, packaging and tests
 * have a real binary to work with.
 */
#include <stdio.h>
#include <string.h>

#define PROG "aegis-dataplane"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [--help] [--version]\n"
            "\n"
            "The Aegis dataplane: an h2o-based TLS proxy configured live by aegis-controller.\n"
            "\n"
            "This version is a placeholder; the proxy daemon (listeners, SNI certificate\n"
            "selection, routing, the config push socket) arrives in a later version.\n"
            "\n"
            "Options:\n"
            "  -h, --help     show this help and exit\n"
            "  -V, --version  show the version and exit\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            printf(PROG " %s\n", AEGIS_VERSION);
            return 0;
        }
        fprintf(stderr, PROG ": unknown argument '%s'\n\n", arg);
        usage(stderr);
        return 2;
    }
    /* Without a daemon to start, running with no flags is a usage error, not a silent success. */
    usage(stderr);
    return 2;
}
