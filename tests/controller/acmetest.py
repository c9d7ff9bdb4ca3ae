#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Shared helpers of the controller tests that run an ACME CA (imported by tests/controller/
# test_acme.py and test_cloudflare.py; not a test itself): Pebble and pebble-challtestsrv started
# on free ports with a TLS certificate made here, Issuer and Certificate YAML, and readers of the
# controller's status files and store. Processes go through dptest.track(), so they are killed on
# the way out whatever happens.

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "dataplane"))
from dptest import CONTROLLER, DATAPLANE, free_port, path, run, track, write  # noqa: E402,F401

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
EAB_KID = "kid-1"
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
# Certificates of the renewal Pebble live this long (seconds): renewed ~2/3 in.
SHORT_LIFETIME = 33


def wait_port(port, timeout=10):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start_challtestsrv():
    dns, mgmt = free_port(), free_port()
    log = open(path("challtestsrv.log"), "w+")
    p = track(subprocess.Popen(
        [CHALLTESTSRV, "-dns01", f"127.0.0.1:{dns}", "-management", f"127.0.0.1:{mgmt}",
         "-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1",
         "-defaultIPv6", ""], stdout=log, stderr=subprocess.STDOUT))
    if not wait_port(mgmt):
        sys.exit("pebble-challtestsrv did not start")
    return p, dns, mgmt


def start_pebble(name, http_port, dns, env=None, eab=False, validity=None):
    """A Pebble with its own TLS certificate; returns (process, acme port, mgmt port, log)."""
    port, mgmt = free_port(), free_port()
    cfg = {"pebble": {"listenAddress": f"127.0.0.1:{port}",
                      "managementListenAddress": f"127.0.0.1:{mgmt}",
                      "certificate": path("pebble.crt"), "privateKey": path("pebble.key"),
                      "httpPort": http_port, "tlsPort": free_port(),
                      "ocspResponderURL": "", "externalAccountBindingRequired": eab}}
    if eab:
        cfg["pebble"]["externalAccountMACKeys"] = {EAB_KID: EAB_HMAC}
    if validity:
        cfg["pebble"]["certificateValidityPeriod"] = validity
    write(f"{name}.json", json.dumps(cfg))
    e = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0",
             PEBBLE_AUTHZREUSE="0")
    e.update(env or {})
    log = open(path(f"{name}.log"), "w+")
    p = track(subprocess.Popen([PEBBLE, "-config", path(f"{name}.json"), "-dnsserver",
                                f"127.0.0.1:{dns}"], stdout=log, stderr=subprocess.STDOUT, env=e))
    if not wait_port(port):
        sys.exit(f"{name} did not start")
    return p, port, mgmt, log


def issuer_yaml(name, port, solvers, extra=""):
    return f"""apiVersion: aegis.dev/v1alpha1
kind: Issuer
metadata: {{name: {name}}}
spec:
  acme:
    server: https://127.0.0.1:{port}/dir
    email: ops@example.test
    caBundle: {{file: {path("pebble.crt")}}}
{extra}    solvers:
{solvers}"""


def cert_yaml(name, issuer, names):
    return f"""apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {{name: {name}}}
spec:
  issuerRef: {{name: {issuer}}}
  dnsNames: {json.dumps(names)}
"""


def status(kind, name):
    try:
        with open(path(f"state/status/{kind}/default/{name}.json")) as f:
            return json.load(f)["status"]
    except (OSError, ValueError, KeyError):
        return None


def ready(name):
    st = status("Certificate", name) or {}
    for c in st.get("conditions", []):
        if c["type"] == "Ready":
            return c
    return None


def failure(name):
    """The message of the Issuing condition (where a failed attempt says why)."""
    for c in (status("Certificate", name) or {}).get("conditions", []):
        if c["type"] == "Issuing":
            return c.get("message", "")
    return ""


def wait_ready(name, want="True", timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        c = ready(name)
        if c is not None and c["status"] == want:
            return c
        time.sleep(0.2)
    return ready(name)


def stored_names(name):
    """The dnsNames of the stored certificate (the store's public metadata)."""
    try:
        with open(path(f"state/store/certificate/default/{name}/current.json")) as f:
            return json.load(f)["meta"]["dnsNames"]
    except (OSError, ValueError, KeyError):
        return None


def pebble_root(mgmt, index=0):
    r = run(["curl", "-sS", "--max-time", "5", "--cacert", path("pebble.crt"),
             f"https://127.0.0.1:{mgmt}/roots/{index}"])
    return r.stdout.decode()


def make_pebble_cert():
    """pebble.crt and pebble.key in the work directory: Pebble's TLS certificate (127.0.0.1)."""
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=pebble", "-keyout", path("pebble.key"),
         "-out", path("pebble.crt"), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])


def prepare_pebble():
    """Exits when a binary the Pebble tests run is missing, then makes Pebble's certificate."""
    for binary in (CONTROLLER, DATAPLANE, PEBBLE, CHALLTESTSRV):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is missing (hack/deps.sh installs pebble)")
    make_pebble_cert()
