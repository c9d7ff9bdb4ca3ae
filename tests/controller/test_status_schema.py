#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Holds the controller's status JSON (controller/status.c) to the generated JSON Schemas: the
# status part of schemas/<kind>.schema.json ($defs/<Kind>Status, additionalProperties false, the
# date-time pattern, enums, minimums, lengths). The C unit test prints sample statuses - a
# Certificate missing, issued, failing a renewal with a private key in the failure message,
# expired with its Issuer gone; a Host; an Issuer - with `test_status --dump`; each must validate,
# together the Certificate samples must use every CertificateStatus field, none may hold key
# material, and a sample broken on purpose must be refused (so the validator is known to bite).
#
# Environment: AEGIS_BUILD_DIR (the build tree holding tests/unit/controller/test_status) and
# AEGIS_SOURCE_DIR (repository root; default: two levels up from here). Output is TAP-like and
# ends with "N passed, N failed"; the exit status is 1 on any failure.

import copy
import json
import os
import subprocess
import sys

import jsonschema

results = []


def check(ok, what):
    results.append(ok)
    print("%s %d - %s" % ("ok" if ok else "not ok", len(results), what))
    return ok


def validator(source, kind):
    with open(os.path.join(source, "schemas", kind.lower() + ".schema.json")) as f:
        full = json.load(f)
    schema = {"$schema": full["$schema"], "$ref": "#/$defs/%sStatus" % kind, "$defs": full["$defs"]}
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema), full["$defs"]["%sStatus" % kind]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.environ.get("AEGIS_SOURCE_DIR") or os.path.dirname(os.path.dirname(here))
    build = os.environ.get("AEGIS_BUILD_DIR")
    if not build:
        print("AEGIS_BUILD_DIR is not set (run through ctest)", file=sys.stderr)
        return 1
    tool = os.path.join(build, "tests", "unit", "controller", "test_status")
    out = subprocess.run([tool, "--dump"], capture_output=True, text=True, check=False)
    check(out.returncode == 0, "test_status --dump runs")
    docs = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    check(len(docs) >= 6, "samples printed (%d)" % len(docs))
    check("PRIVATE KEY" not in out.stdout, "no private key in any status")

    validators = {}
    seen = {}
    for i, doc in enumerate(docs):
        kind = doc["kind"]
        if kind not in validators:
            validators[kind] = validator(source, kind)
        v, _ = validators[kind]
        errors = sorted(v.iter_errors(doc["status"]), key=lambda e: list(e.path))
        for e in errors:
            print("#   %s: %s" % ("/".join(map(str, e.path)), e.message))
        check(not errors, "sample %d (%s) validates against $defs/%sStatus" % (i, kind, kind))
        seen.setdefault(kind, set()).update(doc["status"].keys())

    _, cert_def = validators["Certificate"]
    missing = set(cert_def["properties"]) - seen.get("Certificate", set())
    check(not missing, "the Certificate samples use every status field (missing: %s)"
          % ", ".join(sorted(missing)))

    # The validator must bite: break a valid sample in the ways status.c could go wrong.
    v, _ = validators["Certificate"]
    good = next(d["status"] for d in docs if "notAfter" in d["status"])
    for name, mutate in [
        ("an unknown field", lambda s: s.update(expires="soon")),
        ("a time without a zone", lambda s: s.update(notAfter=s["notAfter"].rstrip("Z"))),
        ("a negative revision", lambda s: s.update(revision=-1)),
        ("a condition status outside the enum", lambda s: s["conditions"][0].update(status="Yes")),
        ("a condition without type", lambda s: s["conditions"][0].pop("type")),
    ]:
        bad = copy.deepcopy(good)
        mutate(bad)
        check(not v.is_valid(bad), "refused: %s" % name)

    failed = results.count(False)
    print("1..%d" % len(results))
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
