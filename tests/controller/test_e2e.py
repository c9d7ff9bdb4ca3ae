#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# The controller end to end with the real binaries: aegis-controller watching a directory, the
# local CA issuing, the controller starting and supervising aegis-dataplane, and curl verifying
# the served certificate against the local CA's root (aegisctl ca bundle). Checked: a Host is
# served over HTTPS with a certificate for its name; editing its hostnames serves a new
# certificate for the new name; a broken file is reported and the other Hosts keep being served;
# deleting a Host stops serving it; a killed dataplane is restarted and serves again; a restarted
# controller issues nothing new (same revision); a Host's status.served shows the serial of its
# issued certificate read back from the dataplane; no private key in the status files or the logs.
#
# Environment: AEGIS_CONTROLLER, AEGIS_DATAPLANE, AEGISCTL (default: build/...).

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "dataplane"))
from dptest import (AEGISCTL, CONTROLLER, DATAPLANE, free_port, no_sanitizer_report,  # noqa: E402
                    path, result, run, start_controller, start_upstream, stop, summary, write)


ISSUER = """apiVersion: aegis.dev/v1alpha1
kind: Issuer
metadata: {name: local}
spec: {ca: {}}
"""


def host_yaml(name, hostnames, upstream):
    return f"""apiVersion: aegis.dev/v1alpha1
kind: Host
metadata: {{name: {name}}}
spec:
  hostnames: {json.dumps(hostnames)}
  upstreams: [{{url: "http://127.0.0.1:{upstream}"}}]
  tls: {{mode: acme, issuerRef: {{name: local}}}}
"""


def fetch(hs, name, ca):
    """(status, body, certificate subject/SAN text) of https://name:hs/ through curl -v."""
    r = run(["curl", "-sS", "-v", "--max-time", "5", "--cacert", ca, "--resolve",
             f"{name}:{hs}:127.0.0.1", f"https://{name}:{hs}/"])
    code = r.stdout.decode(errors="replace")
    err = r.stderr.decode(errors="replace")
    return r.returncode, code, err


def wait_served(hs, name, ca, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        rc, out, err = fetch(hs, name, ca)
        if rc == 0:
            return True, out
        last = err
        time.sleep(0.2)
    return False, last


def wait_not_served(hs, name, ca, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rc, out, err = fetch(hs, name, ca)
        if rc != 0:
            return True, err
        time.sleep(0.2)
    return False, "still served"


def status(kind, name):
    try:
        with open(path(f"state/status/{kind}/default/{name}.json")) as f:
            return json.load(f)["status"]
    except (OSError, ValueError, KeyError):
        return None


def wait_status_served(name, serial, timeout=10):
    """The Host's status once status.served lists serial (and Served is True), else None."""
    deadline = time.time() + timeout
    while serial and time.time() < deadline:
        st = status("Host", name) or {}
        entries = st.get("served", [])
        cond = [c for c in st.get("conditions", []) if c["type"] == "Served"]
        if entries and all(e.get("serialNumber") == serial and e.get("dataplane") == "local"
                           for e in entries) and cond and cond[0]["status"] == "True":
            return st
        time.sleep(0.2)
    return None


def main():
    started = time.time()
    for binary in (CONTROLLER, DATAPLANE, AEGISCTL):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is not built")
    upstream = start_upstream()
    hp, hs = free_port(), free_port()
    write("res/issuer.yaml", ISSUER)
    write("res/app.yaml", host_yaml("app", ["app.test"], upstream))
    write("res/web.yaml", host_yaml("web", ["web.test"], upstream))
    p, log = start_controller("controller", hp, hs, "--log-level", "debug")

    ca = path("ca.crt")
    deadline = time.time() + 20
    while time.time() < deadline:
        if run([AEGISCTL, "ca", "bundle", "--state-dir", path("state"), "-o", ca]).returncode == 0:
            break
        time.sleep(0.2)
    ok, detail = wait_served(hs, "app.test", ca)
    result(ok, "a Host is served over HTTPS with a certificate the local CA verifies", [detail])
    st = status("Certificate", "app-tls")
    result(st is not None and st.get("revision") == 1 and
           any(c["type"] == "Ready" and c["status"] == "True" for c in st["conditions"]),
           "its implicit Certificate is Ready, revision 1", [st])
    hst = status("Host", "app")
    result(hst is not None and hst["conditions"][0]["status"] == "True", "the Host is Ready",
           [hst])
    served = wait_status_served("app", st.get("serialNumber") if st else None)
    result(served is not None,
           "the Host's status.served shows the serial of its issued certificate, Served=True",
           [st, status("Host", "app")])

    write("res/app.yaml", host_yaml("app", ["app2.test"], upstream))
    ok, detail = wait_served(hs, "app2.test", ca)
    result(ok, "editing the hostnames serves a certificate for the new name", [detail])
    st = status("Certificate", "app-tls")
    result(st is not None and st.get("revision") == 2, "... issued once more (revision 2)", [st])

    write("res/broken.yaml", "apiVersion: aegis.dev/v1alpha1\nkind: Host\nmetadata: {name: x}\n"
                             "spec: {hostnames: [x.test], upstreams: []}\n")
    time.sleep(1.0)
    ok, detail = wait_served(hs, "web.test", ca, timeout=5)
    result(ok, "a broken file does not stop the other Hosts from being served", [detail])

    os.unlink(path("res/web.yaml"))
    ok, detail = wait_not_served(hs, "web.test", ca)
    result(ok, "deleting a Host stops serving it with its certificate", [detail])
    result(status("Host", "web") is None, "... and its status file goes")

    dp = run(["pgrep", "-f", "--", f"--state-dir {path('state/dataplane')}"]).stdout.split()
    if dp:
        os.kill(int(dp[0]), signal.SIGKILL)
        time.sleep(0.5)
    ok, detail = wait_served(hs, "app2.test", ca)
    result(bool(dp) and ok, "a killed dataplane is restarted and serves again", [detail])

    rc, text = stop(p, log, timeout=30)
    result(rc == 0, "the controller stops on SIGTERM with status 0", [rc, text[-2000:]])
    p, log = start_controller("controller2", hp, hs, "--log-level", "debug")
    ok, detail = wait_served(hs, "app2.test", ca)
    st = status("Certificate", "app-tls")
    result(ok and st is not None and st.get("revision") == 2,
           "a restarted controller serves again without issuing anything", [detail, st])
    rc, text2 = stop(p, log, timeout=30)
    result(rc == 0, "the second controller stops cleanly", [rc, text2[-2000:]])

    leaked = []
    for root, _, files in os.walk(path("state/status")):
        for f in files:
            if "PRIVATE KEY" in open(os.path.join(root, f)).read():
                leaked.append(f)
    for t in (text, text2):
        if "PRIVATE KEY" in t:
            leaked.append("log")
    result(not leaked, "no private key in the status files or the logs", leaked)
    result(no_sanitizer_report(text) and no_sanitizer_report(text2), "no sanitizer report",
           [text[-3000:], text2[-3000:]])
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
