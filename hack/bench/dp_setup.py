#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Writes what hack/bench/dataplane.sh runs the proxies with, into DIR: one ECDSA P-256 CA, the
# certificate of the measured host "localhost" (the load generators connect to localhost, which
# is also their SNI) and, for the many-host configurations, N-1 more hosts h<i>.bench.test, each
# with its own P-256 key and certificate - made with python3-cryptography because 10,000 openssl
# CLI runs would take minutes. Then, for N hosts:
#   aegis-<N>.json        the rendered configuration (TLS 1.3 minimum, one upstream each)
#   nginx-hosts-<N>.conf  N server blocks (included by the nginx configuration)
#   haproxy-<N>.crtlist   a crt-list naming N combined PEM files
#   h2o-hosts-<N>.yaml    N h2o hosts (only when N is small: h2o would take minutes for 10,000)
# Not a test; run by hand through dataplane.sh.
#
# Usage: dp_setup.py DIR HTTPS_PORT UPSTREAM_PORT N [N ...]

import datetime
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert(name, key, ca_key, ca_name, is_ca=False):
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)]))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - datetime.timedelta(hours=1))
         .not_valid_after(NOW + datetime.timedelta(days=7)))
    if is_ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def main():
    out, https_port, upstream_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    counts = sorted(int(n) for n in sys.argv[4:])
    os.makedirs(os.path.join(out, "certs"), exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_pem = cert("Aegis bench CA", ca_key, ca_key, "Aegis bench CA", is_ca=True)
    with open(os.path.join(out, "ca.pem"), "w") as f:
        f.write(ca_pem)
    hosts = []  # (name, cert pem, key pem, combined file)
    for i in range(max(counts)):
        name = "localhost" if i == 0 else f"h{i}.bench.test"
        key = ec.generate_private_key(ec.SECP256R1())
        c, k = cert(name, key, ca_key, "Aegis bench CA"), key_pem(key)
        base = os.path.join(out, "certs", name)
        with open(base + ".pem", "w") as f:
            f.write(c)
        with open(base + ".key", "w") as f:
            f.write(k)
        with open(base + ".combined.pem", "w") as f:
            f.write(c + k)
        hosts.append((name, c, k, base))
    for n in counts:
        cfg = {"version": 1, "generation": 1,
               "listeners": {"https": [f"127.0.0.1:{https_port}"]},
               "hosts": [{"name": f"bench/{h[0]}", "hostnames": [h[0]],
                          "tls": {"certificatePEM": h[1], "privateKeyPEM": h[2],
                                  "minVersion": "1.3"},
                          "upstreams": [{"url": f"http://127.0.0.1:{upstream_port}"}]}
                         for h in hosts[:n]]}
        with open(os.path.join(out, f"aegis-{n}.json"), "w") as f:
            json.dump(cfg, f)
        with open(os.path.join(out, f"nginx-hosts-{n}.conf"), "w") as f:
            for h in hosts[:n]:
                f.write(f"server {{ listen 127.0.0.1:{https_port} ssl http2; "
                        f"server_name {h[0]}; ssl_certificate {h[3]}.pem; "
                        f"ssl_certificate_key {h[3]}.key; location / {{ proxy_pass "
                        f"http://upstream; proxy_http_version 1.1; "
                        f"proxy_set_header Connection \"\"; }} }}\n")
        with open(os.path.join(out, f"haproxy-{n}.crtlist"), "w") as f:
            for h in hosts[:n]:
                f.write(f"{h[3]}.combined.pem {h[0]}\n")
        if n <= 1000:
            with open(os.path.join(out, f"h2o-hosts-{n}.yaml"), "w") as f:
                for h in hosts[:n]:
                    f.write(f"  \"{h[0]}:{https_port}\":\n"
                            f"    listen:\n      port: {https_port}\n      host: 127.0.0.1\n"
                            f"      ssl:\n        certificate-file: {h[3]}.pem\n"
                            f"        key-file: {h[3]}.key\n        min-version: TLSv1.3\n"
                            f"    paths:\n      \"/\":\n"
                            f"        proxy.reverse.url: http://127.0.0.1:{upstream_port}/\n")


if __name__ == "__main__":
    main()
