"""Certificates and keys for the local control plane, made with the ``openssl`` command.

The API server needs a serving certificate that clients can verify (tests must not use
``insecure-skip-tls-verify``), and a key pair to sign service-account tokens. A throw-away CA signs
the serving certificate for ``127.0.0.1``, ``localhost`` and the in-cluster service names.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ControlPlanePKI:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> ControlPlanePKI:
    """Create (or reuse, when all files exist) the CA, serving cert and SA keys in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = ControlPlanePKI(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    if all(p.exists() for p in vars(pki).values()):
        return pki
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
        "-keyout", str(pki.ca_key), "-out", str(pki.ca_cert), "-subj", "/CN=gitsync-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    csr = directory / "apiserver.csr"
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(pki.serving_key), "-out", str(csr), "-subj", "/CN=kube-apiserver",
    )  # fmt: skip
    ext = directory / "apiserver.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
        "-CAcreateserial", "-days", "3650", "-out", str(pki.serving_cert), "-extfile", str(ext),
    )  # fmt: skip
    _openssl("genrsa", "-out", str(pki.sa_key), "2048")
    _openssl("rsa", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    for key in (pki.ca_key, pki.serving_key, pki.sa_key):
        key.chmod(0o600)
    return pki


def make_kubelet_cert(directory: Path, addresses: list[str]) -> tuple[Path, Path]:
    """A serving certificate for the simulated kubelets (signed by the control plane's CA, one
    IP SAN per node address), so the API server verifies them with
    ``--kubelet-certificate-authority`` when it proxies ``pods/log``. Made anew on every start:
    the node count can change between runs; an EC key takes milliseconds."""
    pki = make_pki(directory)
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    csr, ext = directory / "kubelet.csr", directory / "kubelet.ext"
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=gitsync-simulated-kubelet",
    )  # fmt: skip
    key.chmod(0o600)
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=" + ",".join(f"IP:{a}" for a in addresses) + "\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
        "-CAcreateserial", "-days", "3650", "-out", str(cert), "-extfile", str(ext),
    )  # fmt: skip
    return cert, key
