/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aegis-controller: flags and wiring only. The controller watches Issuer, Certificate and Host
 * resources (a YAML directory or the Kubernetes API), obtains and renews certificates, and pushes
 * the rendered configuration to the dataplanes. In this version it only answers --help and
 * --version, so that the build, packaging and tests have a real binary to work with.
 */
#include <stdio.h>
#include <string.h>

#define PROG "aegis-controller"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [--help] [--version]\n"
            "\n"
            "The Aegis controller: reconciles Issuer, Certificate and Host resources into\n"
            "certificates and a rendered dataplane configuration.\n"
            "\n"
            "This version is a placeholder; the daemon (--watch DIR, Kubernetes mode) arrives\n"
            "in a later version. Use `aegisctl validate PATH` to check resources today.\n"
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
