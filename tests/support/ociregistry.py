"""A real OCI registry on loopback for the tests: Debian's ``docker-registry`` (the CNCF
distribution registry 2.8), with filesystem storage, htpasswd (bcrypt) auth and TLS from a test CA.

Charts are pushed with helm-python-sdk exactly as a user's ``helm push`` would, so the tags,
manifests and blobs the OCI chart source reads are the registry's own. Tests that need a
registry behaving differently (token auth pointing elsewhere, blobs redirected to other storage)
start a second process over the *same* storage directory with another config, rather than
faking the protocol. Tests that need what no client can push in reasonable time (100,000 tags)
write the registry's storage layout directly (``tag_directory``).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import bcrypt

from gitsync.localenv.pki import ControlPlanePKI, make_pki
from gitsync.localenv.processes import ManagedProcess, free_port

REGISTRY_BINARY = "docker-registry"
AUTH_SERVICE = "gitsync-test-registry"
AUTH_ISSUER = "gitsync-test-issuer"


@dataclass
class OciRegistry:
    """One ``docker-registry serve`` process. ``auth`` is ``"htpasswd"`` (``username`` and
    ``password``), ``"none"``, or ``"token"`` (a ``Bearer`` challenge naming ``token_realm``).
    ``redirect_to`` turns on the registry's ``redirect`` storage middleware: blob reads answer
    ``307`` to that base URL + the blob's storage path."""

    directory: Path
    storage: Path | None = None
    tls: bool = True
    auth: str = "htpasswd"
    username: str = "chart-pusher"
    password: str = field(default="oci-secret-91c4e7", repr=False)
    token_realm: str = ""
    redirect_to: str = ""
    pki_directory: Path | None = None
    """Where the test CA and serving certificate are (made there if missing); a second registry
    over the same storage passes the first's, so one ``caData`` trusts both."""
    access_log: bool = False
    """Log every request (``requested``) in the registry's own access log."""
    port: int = 0
    process: ManagedProcess | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.storage is None:
            self.storage = self.directory / "storage"
        if self.pki_directory is None:
            self.pki_directory = self.directory / "pki"
        self.pki = make_pki(self.pki_directory)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> str:
        """The test CA the registry's certificate chains to (``caData`` of a credential)."""
        return self.pki.ca_cert.read_text()

    def url(self, path: str = "charts") -> str:
        """The ``oci://`` repository URL of ``path`` (without a chart name)."""
        return f"oci://{self.host}/{path}" if path else f"oci://{self.host}"

    def start(self) -> Self:
        assert shutil.which(REGISTRY_BINARY), "apt-get install docker-registry (scripts/setup.sh)"
        assert self.storage is not None
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": not self.access_log}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}},
            "http": {"addr": self.host, "secret": "gitsync-test-registry"},
        }
        if self.tls:
            config["http"]["tls"] = {
                "certificate": str(self.pki.serving_cert),
                "key": str(self.pki.serving_key),
            }
        if self.auth == "htpasswd":
            htpasswd = self.directory / "htpasswd"
            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
            htpasswd.write_text(f"{self.username}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "gitsync-test", "path": str(htpasswd)}}
        elif self.auth == "token":
            config["auth"] = {
                "token": {
                    "realm": self.token_realm,
                    "service": AUTH_SERVICE,
                    "issuer": AUTH_ISSUER,
                    "rootcertbundle": str(self.pki.ca_cert),
                }
            }
        elif self.auth != "none":
            raise ValueError(f"auth {self.auth!r}: htpasswd, token or none")
        if self.redirect_to:
            config["middleware"] = {
                "storage": [{"name": "redirect", "options": {"baseurl": self.redirect_to}}]
            }
        path = self.directory / "config.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        self.process = ManagedProcess(
            "docker-registry",
            [shutil.which(REGISTRY_BINARY) or REGISTRY_BINARY, "serve", str(path)],
            self.directory / "registry.log",
        )
        self.process.start()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 20.0) -> None:
        scheme = "https" if self.tls else "http"
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if not self.process.running():
                raise RuntimeError(f"docker-registry exited:\n{self.process.log_tail()}")
            try:
                urllib.request.urlopen(f"{scheme}://{self.host}/v2/", timeout=2, context=context)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not answer in {timeout}s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requested(self, path_prefix: str, method: str = "GET") -> list[str]:
        """The paths of the ``method`` requests the registry logged (``access_log``) whose path
        starts with ``path_prefix`` (``/v2/charts/web/blobs/``), oldest first."""
        assert self.access_log, "start the registry with access_log=True"
        text = (self.directory / "registry.log").read_text(errors="replace")
        paths = re.findall(rf'"{method} (\S+) HTTP/[0-9.]+"', text)
        return [p for p in paths if p.startswith(path_prefix)]

    # -- content ------------------------------------------------------------------------------

    def push(self, archive: Path, path: str = "charts") -> None:
        """``helm push archive oci://host/path`` (logged in when the registry wants it). The
        client skips TLS verification: helm-python-sdk takes no CA file, and this is the test
        publishing its own content, not the code under test."""
        from helm_python.registry import RegistryClient

        plain = not self.tls
        with RegistryClient(
            credentials_file=self.directory / "helm-registry.json", plain_http=plain
        ) as client:
            if self.auth == "htpasswd":
                client.login(self.host, self.username, self.password, insecure=not plain)
            client.push(
                archive, self.url(path), plain_http=plain, insecure_skip_tls_verify=not plain
            )

    def repository_directory(self, name: str) -> Path:
        """The storage directory of repository ``name`` (``charts/demo``)."""
        assert self.storage is not None
        return self.storage / "docker/registry/v2/repositories" / name

    def tag_directory(self, name: str, tag: str) -> Path:
        """Where the registry keeps tag ``tag`` of ``name``; listing tags reads only these
        directory names, so creating one adds a tag to the list."""
        return self.repository_directory(name) / "_manifests/tags" / tag

    def blob_path(self, digest: str) -> Path:
        """The file holding blob ``sha256:<hex>``."""
        assert self.storage is not None
        hexdigest = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"


def package_chart(directory: Path, name: str, version: str, *, padding_bytes: int = 0) -> Path:
    """A chart archive ``<name>-<version>.tgz`` made with helm-python-sdk's ``create`` and
    ``package``; ``padding_bytes`` of incompressible data in ``files/`` make it that much larger."""
    from helm_python.chart import Chart, package

    source = directory / "src" / version
    source.mkdir(parents=True, exist_ok=True)
    if not (source / name).exists():
        Chart.create(name, source)
    if padding_bytes:
        import os

        (source / name / "files").mkdir(exist_ok=True)
        (source / name / "files" / "padding.bin").write_bytes(os.urandom(padding_bytes))
    out = directory / "dist"
    out.mkdir(parents=True, exist_ok=True)
    return Path(package(source / name, destination=out, version=version))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def registry_token(pki: ControlPlanePKI, scope: str, lifetime: int = 300) -> str:
    """A bearer token a token-auth registry of this module accepts for ``scope``
    (``repository:charts/demo:pull``): a JWT signed (RS256, with ``openssl``) by the serving
    key, whose ``x5c`` certificate chains to the CA the registry's ``rootcertbundle`` names."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    der = subprocess.run(
        ["openssl", "x509", "-in", str(pki.serving_cert), "-outform", "DER"],
        check=True, capture_output=True, timeout=30,
    ).stdout  # fmt: skip
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode("ascii")]}
    claims = {
        "iss": AUTH_ISSUER,
        "sub": "",
        "aud": AUTH_SERVICE,
        "exp": now + lifetime,
        "nbf": now - 10,
        "iat": now,
        "jti": secrets.token_hex(8),
        "access": [{"type": kind, "name": name, "actions": actions.split(",")}],
    }
    signing_input = ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims))
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(pki.serving_key)],
        input=signing_input.encode(), check=True, capture_output=True, timeout=30,
    ).stdout  # fmt: skip
    return f"{signing_input}.{_b64url(signature)}"
