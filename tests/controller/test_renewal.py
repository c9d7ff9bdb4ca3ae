#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Renewal on time under load, end to end: aegis-controller with the local CA and a Certificate
# renewed about every minute (duration 1h - the API's minimum, as cert-manager's - and
# renewBefore 59m), served by the supervised aegis-dataplane, while a client keeps making new
# verified TLS connections. Checked: two renewals happen, each at the renewalTime the status
# announced (within a few seconds - the timer, not a poll); after each, the dataplane serves the
# new certificate within seconds; no request fails in between; the old certificate is never
# served again after the new one.
#
# Environment: AEGIS_CONTROLLER, AEGIS_DATAPLANE, AEGISCTL (default: build/...).

import datetime
import json
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "dataplane"))
from dptest import (AEGISCTL, CONTROLLER, DATAPLANE, free_port, no_sanitizer_report,  # noqa: E402
                    path, result, run, start_controller, start_upstream, stop, summary)

# Two renewals about a minute apart, plus start-up: the test gives up after this long.
DEADLINE_S = 200
# How late a renewal may come after its announced renewalTime (the loop's timer, a second of
# status-file granularity, a busy machine).
LATE_S = 5

RESOURCES = """apiVersion: aegis.dev/v1alpha1
kind: Issuer
metadata: {name: local}
spec: {ca: {}}
---
apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {name: short}
spec: {issuerRef: {name: local}, dnsNames: [short.test], duration: 1h, renewBefore: 59m}
---
apiVersion: aegis.dev/v1alpha1
kind: Host
metadata: {name: short}
spec:
  hostnames: [short.test]
  upstreams: [{url: "http://127.0.0.1:%d"}]
  tls: {mode: custom, certificateRef: {name: short}}
"""


def status():
    try:
        with open(path("state/status/Certificate/default/short.json")) as f:
            return json.load(f)["status"]
    except (OSError, ValueError, KeyError):
        return None


def ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class Client(threading.Thread):
    """New verified TLS connections to short.test, one after another: every outcome recorded
    as (time, serial or None, error)."""

    def __init__(self, port, ca):
        super().__init__(daemon=True)
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.seen = []
        self.stop = False

    def one(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            with self.ctx.wrap_socket(s, server_hostname="short.test") as t:
                serial = int(t.getpeercert()["serialNumber"], 16)
                t.sendall(b"GET / HTTP/1.1\r\nHost: short.test\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if not data.startswith(b"HTTP/1.1 200"):
                    raise OSError(data[:60])
                return serial

    def run(self):
        while not self.stop:
            try:
                self.seen.append((time.time(), self.one(), None))
            except (OSError, ssl.SSLError) as e:
                self.seen.append((time.time(), None, str(e)))
            time.sleep(0.05)


def main():
    started = time.time()
    for binary in (CONTROLLER, DATAPLANE, AEGISCTL):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is not built")
    upstream = start_upstream()
    hp, hs = free_port(), free_port()
    os.makedirs(path("res"))
    with open(path("res/short.yaml"), "w") as f:
        f.write(RESOURCES % upstream)
    p, log = start_controller("controller", hp, hs)
    ca = path("ca.crt")
    client = None
    deadline = time.time() + 30
    while time.time() < deadline:
        st = status()
        if (st and st.get("revision") == 1 and
                run([AEGISCTL, "ca", "bundle", "--state-dir", path("state"),
                     "-o", ca]).returncode == 0):
            probe = Client(hs, ca)
            try:
                probe.one()
                client = probe
                break
            except (OSError, ssl.SSLError):
                pass
        time.sleep(0.2)
    result(client is not None, "the short-lived certificate is issued and served")
    if client is None:
        stop(p, log, timeout=30)
        return summary(started)

    client.start()
    # Revision -> (serial, renewalTime announced by the previous revision, when it was seen).
    revisions = {1: (int(status()["serialNumber"], 16), None, time.time())}
    announced = ts(status()["renewalTime"])
    result(30 <= announced - ts(status()["notBefore"]) <= 130,
           "renewalTime is about a minute after issuance (renewBefore 59m of 1h)",
           [status()])
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline and max(revisions) < 3:
        st = status()
        if st and st.get("revision", 0) > max(revisions):
            revisions[st["revision"]] = (int(st["serialNumber"], 16), announced, time.time())
            announced = ts(st["renewalTime"])
        time.sleep(0.2)
    time.sleep(3)  # let the client see the last one
    client.stop = True
    client.join(timeout=10)

    result(max(revisions) >= 3, "two renewals happened", [revisions])
    for rev in sorted(revisions)[1:]:
        serial, due, seen = revisions[rev]
        result(due is not None and due - 1 <= seen <= due + LATE_S,
               f"renewal to revision {rev} came at the announced renewalTime "
               f"({seen - due:+.1f} s)", [revisions])
        first = next((t for t, s, _ in client.seen if s == serial), None)
        result(first is not None and first - seen <= LATE_S,
               f"revision {rev} is served within {LATE_S} s of its issuance",
               [first and first - seen])
    failed = [(t - started, e) for t, _, e in client.seen if e is not None]
    result(len(client.seen) > 100 and not failed,
           f"{len(client.seen)} verified TLS connections during the renewals, none failed",
           failed[:5])
    order = [s for _, s, _ in client.seen if s is not None]
    back = [i for i in range(1, len(order))
            if order[i] != order[i - 1] and order[i] in order[:i - 1]]
    result(not back, "a replaced certificate is never served again", [back[:3]])

    rc, text = stop(p, log, timeout=30)
    result(rc == 0 and no_sanitizer_report(text), "the controller stops cleanly",
           [rc, text[-3000:]])
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
