#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Holds the two validators of the API to one answer. Every example and valid fixture must be
# accepted, and every invalid fixture rejected, both by the JSON Schemas (schemas/*.schema.json,
# what editors and GitOps linters use) and by the C validator (`aegisctl validate`, what the
# controller uses). Fixtures marked `# schema: c-only <reason>` state that JSON Schema cannot
# express their rule; they must be accepted by the schemas, so the label stays honest.
#
# Documents are loaded with ruamel.yaml under the YAML 1.2 core schema as the C loader resolves
# it (common/include/aegis/yaml.h): no timestamps, no yes/no booleans, no 1_000 integers, so both
# sides see the same types.
#
# Environment: AEGISCTL (path of the aegisctl binary; default build/aegisctl or build/test/aegisctl
# under the source tree) and AEGIS_SOURCE_DIR (repository root; default: two levels up from here).
# `--schema-only` checks the schema side alone, for working on fixtures without a build.
# Output is TAP-like and ends with "N passed, N failed"; the exit status is 1 on any failure.

import glob
import json
import os
import re
import subprocess
import sys

import jsonschema
from ruamel.yaml import YAML
from ruamel.yaml.resolver import VersionedResolver

API_VERSION = "aegis.dev/v1alpha1"

# The implicit scalar types of the YAML 1.2 core schema, exactly as aegis_yscalar lists them.
_CORE_RESOLVERS = {
    None: [
        ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$")),
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")),
        ("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")),
        ("tag:yaml.org,2002:float", re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")),
    ]
}


class CoreResolver(VersionedResolver):
    """VersionedResolver with ruamel's 1.2 rules (which add timestamps, merge keys and
    underscores in numbers) replaced by the plain core schema."""

    @property
    def versioned_resolver(self):
        # resolve() does `list += ...` on the entry for the first character; keep that a fresh
        # list each time by storing everything under None.
        return _CORE_RESOLVERS


def make_loader():
    y = YAML(typ="safe", pure=True)
    y.Resolver = CoreResolver
    return y


class Fixture:
    """A file and what its header comments say about it."""

    def __init__(self, path, rel):
        self.path = path
        self.rel = rel
        self.expects = []
        self.substrings = []
        self.schema = None        # "reject", "c-only" or None
        self.schema_reason = ""
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for line in text.splitlines():
            m = re.match(r"^# (expect|expect-substring|schema): (.*)$", line)
            if not m:
                continue
            key, val = m.group(1), m.group(2).rstrip()
            if key == "expect":
                self.expects.append(val)
            elif key == "expect-substring":
                self.substrings.append(val)
            else:
                word, _, reason = val.partition(" ")
                self.schema, self.schema_reason = word, reason.strip()


class Checker:
    def __init__(self, src, aegisctl):
        self.src = src
        self.aegisctl = aegisctl
        self.n = 0
        self.passed = 0
        self.failed = 0
        self.loader = make_loader()
        self.validators = {}
        for path in glob.glob(os.path.join(src, "schemas", "*.schema.json")):
            with open(path) as f:
                schema = json.load(f)
            jsonschema.Draft202012Validator.check_schema(schema)
            # Schemas of other documents (rendered-config.schema.json) are not API kinds.
            if "/v1alpha1/" not in schema.get("$id", ""):
                continue
            kind = schema.get("properties", {}).get("kind", {}).get("const")
            if kind is None:
                kind = schema.get("title")
            self.validators[kind] = jsonschema.Draft202012Validator(
                schema, format_checker=jsonschema.FormatChecker())

    def result(self, ok, what, notes=()):
        self.n += 1
        if ok:
            self.passed += 1
            print(f"ok {self.n} - {what}")
        else:
            self.failed += 1
            print(f"not ok {self.n} - {what}")
        for note in notes:
            for line in str(note).splitlines():
                print(f"#   {line}")
        sys.stdout.flush()

    # ---- the JSON Schema side ----------------------------------------------------------------

    def schema_errors(self, path):
        """Returns a list of (document index, message) for every document the schemas reject;
        empty when all documents are accepted. A load error counts as a rejection."""
        errors = []
        try:
            with open(path, "rb") as f:
                docs = list(self.loader.load_all(f))
        except Exception as e:  # any YAML error: the schema side cannot accept the file
            return [(0, f"YAML load error: {e}")]
        for i, doc in enumerate(docs):
            if doc is None:
                continue  # empty document; skipped by both sides
            if not isinstance(doc, dict):
                errors.append((i, f"document is a {type(doc).__name__}, not a mapping"))
                continue
            kind = doc.get("kind")
            validator = self.validators.get(kind) if isinstance(kind, str) else None
            if validator is None:
                errors.append((i, f"no schema for kind {kind!r}"))
                continue
            for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                where = ".".join(str(p) for p in err.absolute_path) or "(document)"
                msg = err.message
                if len(msg) > 200:
                    msg = msg[:200] + "..."
                errors.append((i, f"{where}: {msg}"))
        return errors

    # ---- the C side --------------------------------------------------------------------------

    def run_c(self, paths):
        """Runs aegisctl validate --output json; returns (report dict, problem string)."""
        cmd = [self.aegisctl, "validate", "--output", "json"] + paths
        try:
            p = subprocess.run(cmd, cwd=self.src, capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            return None, f"{' '.join(cmd)}: timed out"
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode not in (0, 1):
            return None, f"{' '.join(cmd)}: exit status {p.returncode}\n{err.strip()}"
        if "Sanitizer" in err or "runtime error:" in err:
            return None, f"{' '.join(cmd)}: sanitizer report\n{err.strip()}"
        try:
            report = json.loads(out)
        except ValueError as e:
            return None, f"{' '.join(cmd)}: stdout is not JSON ({e}):\n{out[:500]}"
        nerr = sum(1 for d in report.get("diagnostics", []) if d.get("severity") == "error")
        if (p.returncode == 0) != (report.get("errors") == 0) or report.get("errors") != nerr:
            return None, (f"{' '.join(cmd)}: exit status {p.returncode} but errors = "
                          f"{report.get('errors')} and {nerr} error diagnostics")
        return report, None

    def diag_file(self, d):
        """The real path of a diagnostic's file; aegisctl ran in the source directory."""
        return os.path.realpath(os.path.join(self.src, d.get("file") or ""))

    def c_error_lines(self, report, only_file=None):
        lines = []
        for d in report.get("diagnostics", []):
            if d.get("severity") != "error":
                continue
            if only_file is not None and self.diag_file(d) != only_file:
                continue
            lines.append(f"{d.get('file')}:{d.get('line')}:{d.get('column')}: "
                         f"{d.get('path')}: {d.get('message')}")
        return lines

    # ---- the checks --------------------------------------------------------------------------

    def check_valid_set(self, files, label, c_paths):
        """Files that must be accepted by both sides; C checks c_paths (files or a directory)
        as one set."""
        report, problem = (None, None)
        if self.aegisctl:
            report, problem = self.run_c(c_paths)
        for fx in files:
            notes = []
            serr = self.schema_errors(fx.path)
            if serr:
                notes.append("the JSON Schema rejects it:")
                notes += [f"  document {i}: {m}" for i, m in serr[:10]]
            if self.aegisctl:
                if problem:
                    notes.append(problem)
                else:
                    cerr = self.c_error_lines(report, os.path.realpath(fx.path))
                    if cerr:
                        notes.append("aegisctl rejects it:")
                        notes += ["  " + l for l in cerr[:10]]
            self.result(not notes, f"{label}: {fx.rel} accepted by "
                        + ("schema and C" if self.aegisctl else "schema"), notes)
        if self.aegisctl and not problem and report.get("errors", 0) != 0:
            # Errors attributed to no listed file (e.g. a path printed differently).
            known = {os.path.realpath(fx.path) for fx in files}
            stray = [d for d in report.get("diagnostics", [])
                     if d.get("severity") == "error"
                     and self.diag_file(d) not in known]
            if stray:
                self.result(False, f"{label}: set of {' '.join(c_paths)} accepted by C",
                            [json.dumps(d) for d in stray[:10]])

    def check_invalid(self, fx):
        notes = []
        if fx.schema not in ("reject", "c-only"):
            notes.append("header has no '# schema: reject' or '# schema: c-only <reason>' line")
        if fx.schema == "c-only" and not fx.schema_reason:
            notes.append("'# schema: c-only' needs a reason")
        if not fx.expects:
            notes.append("header has no '# expect:' line")
        serr = self.schema_errors(fx.path)
        if fx.schema == "reject" and not serr:
            notes.append("marked 'schema: reject' but the JSON Schema accepts every document")
        if fx.schema == "c-only" and serr:
            notes.append("marked 'schema: c-only' but the JSON Schema rejects it; "
                         "mark it 'schema: reject':")
            notes += [f"  document {i}: {m}" for i, m in serr[:10]]
        if self.aegisctl:
            report, problem = self.run_c([fx.path])
            if problem:
                notes.append(problem)
            elif report.get("errors", 0) == 0:
                notes.append("aegisctl accepts it (exit status 0, no errors)")
        side = "schema and C" if self.aegisctl else "schema"
        what = "rejected by C only" if fx.schema == "c-only" else f"rejected by {side}"
        if fx.schema == "c-only" and not self.aegisctl:
            what = "accepted by schema (c-only)"
        self.result(not notes, f"invalid: {fx.rel} {what}", notes)


def main():
    args = sys.argv[1:]
    schema_only = "--schema-only" in args
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.abspath(os.environ.get("AEGIS_SOURCE_DIR") or os.path.join(here, "..", ".."))
    aegisctl = os.environ.get("AEGISCTL")
    if not aegisctl:
        for cand in ("build/aegisctl", "build/test/aegisctl"):
            if os.access(os.path.join(src, cand), os.X_OK):
                aegisctl = os.path.join(src, cand)
                break
    if schema_only:
        aegisctl = None
    elif not aegisctl or not os.access(aegisctl, os.X_OK):
        print(f"Bail out! aegisctl not found (AEGISCTL={aegisctl!r}); set AEGISCTL to the binary "
              "or pass --schema-only")
        print("0 passed, 1 failed")
        return 1
    else:
        aegisctl = os.path.abspath(aegisctl)

    c = Checker(src, aegisctl)
    if sorted(c.validators) != ["Certificate", "Host", "Issuer"]:
        print(f"Bail out! expected schemas for Certificate, Host and Issuer under "
              f"{src}/schemas, found {sorted(c.validators)}")
        print("0 passed, 1 failed")
        return 1

    def fixtures(sub, pattern):
        paths = sorted(glob.glob(os.path.join(src, sub, pattern)))
        return [Fixture(p, os.path.relpath(p, src)) for p in paths]

    examples = fixtures("examples", "*.y*ml")
    valid = fixtures("tests/data/valid", "*.y*ml")
    invalid = fixtures("tests/data/invalid", "*.yaml")
    for label, group in (("examples", examples), ("valid", valid), ("invalid", invalid)):
        if not group:
            c.result(False, f"{label}: fixtures found")

    # examples/ refer to each other across files: they are one set.
    c.check_valid_set(examples, "examples", ["examples"])
    # Each valid fixture stands alone.
    for fx in valid:
        c.check_valid_set([fx], "valid", [fx.rel])
    for fx in invalid:
        c.check_invalid(fx)

    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
