/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for common/rconf.c: any bytes must parse into a snapshot or a list of errors
 * without a crash, a leak, undefined behaviour or a hang; an accepted snapshot must answer the
 * lookups the dataplane makes (server names, Host headers, tokens) consistently, and parsing it
 * again with itself as the previous snapshot must give the same answers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/diag.h"
#include "aegis/rconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void probe(const struct rconf *rc, const char *name, size_t len)
{
    struct rconf_sel sel, again;

    if (rconf_select(rc, name, len, &sel) == 0) {
        if (sel.cert == NULL || sel.policy == NULL)
            abort();
        if (rconf_select(rc, name, len, &again) != 0 || !rconf_sel_compatible(&sel, &again))
            abort();
    } else if (rc->fallback != NULL) {
        abort(); /* with a fallback every name has a certificate */
    }
    (void)rconf_find_host(rc, name, len, false);
    (void)rconf_find_challenge(rc, name, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_diags diags;
    struct rconf *rc = NULL, *again = NULL;
    char buf[300];
    char *js;
    int r;

    aegis_diags_init(&diags);
    r = rconf_parse((const char *)data, size, NULL, &rc, &diags);
    if ((r == 0) != (rc != NULL) || (r == 0) != (diags.nerrors == 0))
        abort();
    js = rconf_diags_to_json(&diags);
    free(js);
    for (size_t i = 0; i < diags.n; i++)
        (void)aegis_diag_format(&diags.v[i], buf, sizeof(buf));
    aegis_diags_dispose(&diags);
    if (rc == NULL)
        return 0;

    probe(rc, NULL, 0);
    probe(rc, "x.test", 6);
    for (size_t i = 0; i < rc->n_hosts; i++) {
        for (size_t j = 0; j < rc->hosts[i].n_hostnames; j++) {
            const char *n = rc->hosts[i].hostnames[j];
            const struct rconf_host *h = rconf_find_host(rc, n, strlen(n), false);

            if (n[0] != '*' && h != &rc->hosts[i])
                abort(); /* every exact hostname finds its own host */
            probe(rc, n, strlen(n));
        }
    }
    for (size_t i = 0; i < rc->n_challenges; i++) {
        const struct rconf_challenge *c = &rc->challenges[i];

        if (rconf_find_challenge(rc, c->token, strlen(c->token)) != c)
            abort();
    }

    /* A second parse that reuses the first one's certificates selects the same ones. */
    aegis_diags_init(&diags);
    if (rconf_parse((const char *)data, size, rc, &again, &diags) != 0)
        abort();
    aegis_diags_dispose(&diags);
    for (size_t i = 0; i < rc->n_hosts; i++) {
        if (again->hosts[i].cert != rc->hosts[i].cert)
            abort();
    }
    rconf_unref(again);
    rconf_unref(rc);
    return 0;
}
