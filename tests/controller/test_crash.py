#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Crash safety of issuance, end to end (issue 5): aegis-controller issues 300 Certificates from
# the local CA on its worker threads and is killed with SIGKILL (its supervised dataplane too, as
# a host crash or an OOM kill of the service's cgroup would) while the issuances are under way.
# After a restart:
#   - every Certificate becomes Ready, each issued exactly once (store revision 1): what was
#     stored before the crash is not issued again (same serial), what was not is issued now;
#   - the store holds no half-written file;
#   - every key matches its certificate: TLS handshakes with SNI verify against the local CA's
#     root through the restarted dataplane, for certificates stored before and after the crash.
#
# Environment: AEGIS_CONTROLLER, AEGIS_DATAPLANE, AEGISCTL (default: build/...).

import json
import os
import signal
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "dataplane"))
from dptest import (AEGISCTL, free_port, no_sanitizer_report, path, result, run,  # noqa: E402
                    start_controller, stop, strays, summary, write)

N = 300
PER_FILE = 100
ISSUER = """apiVersion: aegis.dev/v1alpha1
kind: Issuer
metadata: {name: local}
spec: {ca: {}}
"""


def cert_doc(i):
    return (f"---\napiVersion: aegis.dev/v1alpha1\nkind: Certificate\n"
            f"metadata: {{name: k{i}}}\n"
            f"spec: {{issuerRef: {{name: local}}, dnsNames: [k{i}.crash.test]}}\n")


def stored():
    """{name: (serial, revision)} of the stored certificates, read through aegisctl."""
    r = run([AEGISCTL, "store", "list", "--state-dir", path("state"), "--output", "json",
             "certificate"])
    if r.returncode != 0:
        return {}
    return {e["name"]: (e["meta"]["serial"], e["meta"]["revision"])
            for e in json.loads(r.stdout) if e.get("meta", {}).get("serial")}


def count_stored():
    d = path("state/store/certificate/default")
    try:
        return sum(1 for n in os.listdir(d) if os.path.exists(os.path.join(d, n, "current.json")))
    except OSError:
        return 0


def ready(name):
    try:
        with open(path(f"state/status/Certificate/default/{name}.json")) as f:
            st = json.load(f)["status"]
    except (OSError, ValueError, KeyError):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in st.get("conditions", []))


def handshake(port, name, ca):
    """True when a TLS handshake with SNI name verifies against ca (chain, name and key)."""
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=name):
                return True
    except (OSError, ssl.SSLError):
        return False


def kill_all():
    """SIGKILL to the controller and everything it started."""
    for pid in strays():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def main():
    started = time.time()
    write("res/issuer.yaml", ISSUER)
    for f in range(N // PER_FILE):
        write(f"res/certs-{f}.yaml",
              "".join(cert_doc(i) for i in range(f * PER_FILE, (f + 1) * PER_FILE)))
    hp, hs = free_port(), free_port()

    p, log = start_controller("controller", hp, hs, "--issue-workers", "4")
    deadline = time.time() + 60
    while time.time() < deadline and count_stored() < 10 and p.poll() is None:
        time.sleep(0.005)
    kill_all()
    p.wait()
    at_kill = count_stored()
    before = stored()
    result(0 < len(before) < N,
           f"the controller is killed mid-issuance ({len(before)} of {N} stored)",
           [f"stored at the kill: {at_kill}"])
    # The store writes a temp file and renames it: each record is the old or the new one.
    result(len(before) == at_kill,
           f"every record in the store is whole: aegisctl reads all {at_kill} of them",
           [f"readable: {len(before)}"])

    p, log = start_controller("controller2", hp, hs, "--issue-workers", "4")
    deadline = time.time() + 180
    names = [f"k{i}" for i in range(N)]
    missing = names
    while time.time() < deadline and missing:
        missing = [n for n in missing if not ready(n)]
        time.sleep(0.2)
    result(not missing, f"after the restart every Certificate is Ready ({N - len(missing)}/{N})",
           missing[:10])
    after = stored()
    redone = [n for n, v in before.items() if after.get(n) != v]
    result(not redone, f"the {len(before)} stored before the crash are not issued again "
           "(same serial, same revision)", redone[:10])
    twice = [n for n, (_, rev) in after.items() if rev != 1]
    result(len(after) == N and not twice, "every Certificate was issued exactly once (revision 1)",
           [f"stored: {len(after)}", *twice[:10]])

    ca = path("ca.pem")
    run([AEGISCTL, "ca", "bundle", "--state-dir", path("state"), "-o", ca])
    sample = sorted(before)[:10] + [n for n in names if n not in before][:10] + names[::37]
    bad = []
    for n in sample:
        ok = False
        for _ in range(50):  # the last render may still be on its way to the dataplane
            ok = handshake(hs, f"{n}.crash.test", ca)
            if ok:
                break
            time.sleep(0.1)
        if not ok:
            bad.append(n)
    result(not bad, f"keys match their certificates: {len(sample)} TLS handshakes verify, for "
           "certificates stored before and after the crash", bad[:10])

    rc, text = stop(p, log)
    result(rc == 0, "the restarted controller stops cleanly", [rc])
    with open(path("controller.log")) as f:
        first = f.read()
    result(no_sanitizer_report(text) and no_sanitizer_report(first), "no sanitizer report",
           [text[-2000:]])
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
