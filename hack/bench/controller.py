#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# The controller benchmark (issue 5, "Benchmark"; run by hand, never by ctest):
#   cold start   N Certificates from the local CA (plus their Issuer) in a fresh state directory:
#                the time from starting aegis-controller to every Certificate Ready and served by
#                the supervised dataplane, and the controller's peak RSS (VmHWM);
#   write->served  --edits times: one Certificate's dnsNames edited (temp file + rename, as editors
#                do), the time until a TLS handshake with the new name as SNI gets a certificate
#                naming it (measured as a client sees it, without loading the admin API);
#                p50 and p99;
#   idle CPU     the controller's CPU over --idle seconds with nothing to do, in % of one core.
# Targets (issue 5): under 30 s, under 250 MB, p50 under 100 ms, idle CPU under 1 %.
#
# Usage: hack/bench/controller.py [-n N] [--edits E] [--idle S] [--bin-dir DIR] [--keep]
# Builds nothing: point --bin-dir at a build (default build/, what hack/quickstart.sh makes).

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from cryptography import x509

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS_PER_FILE = 1000  # the resource loader's per-file document limit


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, sock_path):
        super().__init__("localhost", timeout=30)
        self.sock_path = sock_path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.sock_path)


def dp_status(sock_path):
    try:
        c = UnixHTTP(sock_path)
        c.request("GET", "/status")
        r = c.getresponse()
        body = r.read()
        c.close()
        return json.loads(body) if r.status == 200 else None
    except (OSError, ValueError):
        return None


def served_serials(sock_path):
    st = dp_status(sock_path)
    if not st:
        return {}
    return {c["name"]: c["serial"] for c in st.get("certificates", [])}


def serves_name(port, name):
    """True when a TLS handshake with SNI name gets a certificate naming it (not the fallback)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                der = tls.getpeercert(binary_form=True)
    except OSError:
        return False
    try:
        san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    return name in san.get_values_for_type(x509.DNSName)


def cert_doc(i, extra=""):
    return (f"---\napiVersion: aegis.dev/v1alpha1\nkind: Certificate\n"
            f"metadata: {{name: c{i}}}\n"
            f"spec: {{issuerRef: {{name: local}}, dnsNames: [c{i}.bench.test{extra}]}}\n")


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def proc_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--idle", type=float, default=20.0)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    ctl = os.path.join(a.bin_dir, "aegis-controller")
    dp = os.path.join(a.bin_dir, "aegis-dataplane")
    for b in (ctl, dp):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} is not built (hack/quickstart.sh or cmake --build build)")
    tmp = tempfile.mkdtemp(prefix="aegis-bench-ctl.")
    res, state = os.path.join(tmp, "res"), os.path.join(tmp, "state")
    os.makedirs(res)
    write_atomic(os.path.join(res, "issuer.yaml"),
                 "apiVersion: aegis.dev/v1alpha1\nkind: Issuer\nmetadata: {name: local}\n"
                 "spec: {ca: {}}\n")
    for f in range(0, a.n, DOCS_PER_FILE):
        write_atomic(os.path.join(res, f"certs-{f // DOCS_PER_FILE:03d}.yaml"),
                     "".join(cert_doc(i) for i in range(f, min(f + DOCS_PER_FILE, a.n))))
    sock = os.path.join(state, "dataplane", "admin.sock")
    hp, hs = 18080, 18443
    log = open(os.path.join(tmp, "controller.log"), "w")
    t0 = time.time()
    p = subprocess.Popen([ctl, "--watch", res, "--state-dir", state, "--http",
                          f"127.0.0.1:{hp}", "--https", f"127.0.0.1:{hs}", "--workers", "1",
                          "--dataplane-bin", dp, "--log-level", "warn"],
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        served = {}
        while time.time() - t0 < 600:
            served = served_serials(sock)
            if len(served) >= a.n:
                break
            time.sleep(0.5)
        cold = time.time() - t0
        hwm = proc_kb(p.pid, "VmHWM") / 1024
        print(f"cold start: {len(served)}/{a.n} Certificates issued and served in {cold:.1f} s; "
              f"controller peak RSS {hwm:.0f} MB")

        lat = []
        for k in range(a.edits):
            i = (k * 7919) % a.n
            f = i // DOCS_PER_FILE
            path = os.path.join(res, f"certs-{f:03d}.yaml")
            name = f"e{k}.c{i}.bench.test"
            docs = "".join(cert_doc(j, f", {name}" if j == i else "")
                           for j in range(f * DOCS_PER_FILE, min((f + 1) * DOCS_PER_FILE, a.n)))
            t = time.time()
            write_atomic(path, docs)
            while time.time() - t < 60:
                if serves_name(hs, name):
                    lat.append((time.time() - t) * 1000)
                    break
                time.sleep(0.002)
        if lat:
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"write -> served: p50 {statistics.median(lat):.0f} ms, p99 {p99:.0f} ms "
                  f"over {len(lat)} edits (each re-reads a 1,000-document file)")
        time.sleep(2)
        c0, w0 = cpu_ticks(p.pid), time.time()
        time.sleep(a.idle)
        c1, w1 = cpu_ticks(p.pid), time.time()
        hz = os.sysconf("SC_CLK_TCK")
        print(f"idle CPU: {100.0 * (c1 - c0) / hz / (w1 - w0):.2f} % of one core over "
              f"{w1 - w0:.0f} s; RSS {proc_kb(p.pid, 'VmRSS') / 1024:.0f} MB")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
