/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A scripted issuer for tests of the code that drives issuers: it answers PENDING a set number
 * of times, or fails with a set error, and otherwise signs a self-signed certificate for the
 * request (through the selfSigned issuer), counting every call. It is not in the registry;
 * tests hand issuer_fake_ops to the code under test, or set issuer_override to it.
 */
#include <stdio.h>

#include "issuer/issuer.h"
#include "issuer/selfsigned.h"

struct issuer_fake_control issuer_fake;

static int fake_issue(const struct issuer_request *req, struct issuer_result *res,
                      struct aegis_err *err)
{
    issuer_fake.calls++;
    if (issuer_fake.fail_code != 0) {
        res->reason = issuer_fake.fail_reason;
        return aegis_err_set(err, issuer_fake.fail_code, NULL, "%s",
                             issuer_fake.fail_message ? issuer_fake.fail_message
                                                      : "the fake issuer was told to fail");
    }
    if (issuer_fake.pending_calls > 0) {
        issuer_fake.pending_calls--;
        res->status = ISSUER_PENDING;
        res->reason = ISSUER_REASON_PENDING;
        res->retry_at = req->now + issuer_fake.pending_delay_s;
        snprintf(res->message, sizeof(res->message), "the fake issuer is pending (%d more)",
                 issuer_fake.pending_calls);
        return 0;
    }
    return issuer_selfsigned_ops.issue(req, res, err);
}

const struct issuer_ops issuer_fake_ops = {
    .name = "fake",
    .spec_field = -1,
    .check = NULL,
    .issue = fake_issue,
};
