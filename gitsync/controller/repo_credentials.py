"""Which Git credentials an Application's repository gets, read from labelled Secrets.

Two places may hold credentials, and both are Secrets labelled
``gitsync.dev/secret-type: repository`` (so a Secret made for something else - a database
password - is never sent to a Git server because an Application named it):

* **repository-credential entries** in the controller's namespace, each with a ``url`` prefix
  (``gitsync.source.credentials``) and a ``namespaces`` scope: an Application without
  ``secretRef`` gets, of the entries offered to its namespace, the one whose prefix matches its
  ``repoURL`` best, or nothing. The operator's ``GITSYNC_GIT_*`` environment is one more entry
  with the prefix ``GITSYNC_GIT_URL`` and the scope ``GITSYNC_GIT_NAMESPACES``.
* an Application's own ``spec.source.secretRef``, in the Application's namespace (so already
  that namespace's own). Its ``url`` and ``namespaces`` keys are optional; when present the
  ``repoURL`` and the namespace must match them.

Chart repositories (``spec.source.chart``: Helm ``https://``/``http://`` repositories and
``oci://`` registries) get their credentials from the same entries, as a ``ChartCredential``
(``chart_credential_for``).

Both are read through the controller's kube client and kept for a few seconds, so a new or
changed entry is used within ``TTL_SECONDS``. A malformed entry is skipped and logged by name
only; nothing here logs or raises a value.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import structlog

from gitsync.application import Application
from gitsync.controller.clusters import SECRET_TYPE_LABEL
from gitsync.errors import TransientError
from gitsync.kube import ApiError, KubeClient
from gitsync.source import GitCredentials
from gitsync.source.charts import ChartCredential
from gitsync.source.credentials import (
    CredentialsError,
    RepositoryCredential,
    credentials_for,
    parse_entry,
    select,
)

log = structlog.get_logger(__name__)

REPOSITORY_SECRET_TYPE: Final = "repository"  # noqa: S105 - a label value
REPOSITORY_SELECTOR: Final = f"{SECRET_TYPE_LABEL}={REPOSITORY_SECRET_TYPE}"
TTL_SECONDS: Final = 10.0


class CredentialsUnavailableError(TransientError):
    """The Secrets could not be read (API down, the Secret not created yet); retried."""


def _decoded(secret: dict[str, Any], origin: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, raw in (secret.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(str(raw), validate=True).decode()
        except (binascii.Error, ValueError):
            raise CredentialsError(f"{origin}: key {key!r} is not base64 text") from None
    return values


class RepositoryCredentials:
    """Credentials for Applications, from entries in ``namespace`` and their own secretRefs."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        *,
        env_entry: RepositoryCredential | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.env_entry = env_entry
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: tuple[float, list[RepositoryCredential]] | None = None
        self._refs: dict[tuple[str, str], tuple[float, RepositoryCredential | Exception]] = {}

    def for_app(self, app: Application) -> GitCredentials | None:
        return _git_credentials(self._entry_for(app), app.source.repo_url, app.namespace)

    def for_repository(self, url: str, namespace: str) -> GitCredentials | None:
        """What a Git repository an ApplicationSet in ``namespace`` reads is sent: the entry
        offered to that namespace whose prefix covers ``url``, or nothing."""
        return _git_credentials(select(self.entries(), url, namespace), url, namespace)

    def chart_credential_for(self, app: Application) -> ChartCredential:
        """What the app's chart repository is sent (the empty credential without an entry)."""
        return _chart_credential(self._entry_for(app), app.source.repo_url, app.namespace)

    def dependency_credential_for(self, app: Application, url: str) -> ChartCredential:
        """What the repository ``url`` of one of the app's chart dependencies is sent: the
        entry offered to the app's namespace whose prefix covers ``url``, never the app's own
        ``secretRef`` (made for its ``repoURL``), nothing without such an entry."""
        return _chart_credential(select(self.entries(), url, app.namespace), url, app.namespace)

    def _entry_for(self, app: Application) -> RepositoryCredential | None:
        url = app.source.repo_url
        name = app.source.credentials_secret
        if name:
            return self._secret_ref(app.namespace, name)
        return select(self.entries(), url, app.namespace)

    def entries(self) -> list[RepositoryCredential]:
        """The entries of the controller namespace (and the environment's), read at most every
        ``TTL_SECONDS``."""
        with self._lock:
            if self._entries is not None and self.clock() - self._entries[0] < TTL_SECONDS:
                return self._entries[1]
        try:
            secrets = self.kube.list(
                "v1", "Secret", self.namespace, label_selector=REPOSITORY_SELECTOR
            )["items"]
        except ApiError as exc:
            raise CredentialsUnavailableError(
                f"cannot read repository credentials in {self.namespace}: {exc.message}"
            ) from None
        entries = [self.env_entry] if self.env_entry is not None else []
        for secret in secrets:
            origin = f"Secret {self.namespace}/{secret['metadata']['name']}"
            try:
                entries.append(parse_entry(origin, _decoded(secret, origin)))
            except CredentialsError as exc:
                log.warning("repository credential entry skipped", entry=origin, error=str(exc))
        with self._lock:
            self._entries = (self.clock(), entries)
        return entries

    def _secret_ref(self, namespace: str, name: str) -> RepositoryCredential:
        key = (namespace, name)
        with self._lock:
            cached = self._refs.get(key)
        if cached is None or self.clock() - cached[0] >= TTL_SECONDS:
            result: RepositoryCredential | Exception
            try:
                result = self._read_secret_ref(namespace, name)
            except (CredentialsError, CredentialsUnavailableError) as exc:
                result = exc
            cached = (self.clock(), result)
            with self._lock:
                self._refs[key] = cached
        if isinstance(cached[1], Exception):
            raise cached[1]
        return cached[1]

    def _read_secret_ref(self, namespace: str, name: str) -> RepositoryCredential:
        origin = f"spec.source.secretRef: Secret {namespace}/{name}"
        try:
            secret = self.kube.get("v1", "Secret", name, namespace)
        except ApiError as exc:
            raise CredentialsUnavailableError(f"{origin}: cannot be read: {exc.message}") from None
        if secret is None:
            raise CredentialsUnavailableError(f"{origin} does not exist")
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get(SECRET_TYPE_LABEL) != REPOSITORY_SECRET_TYPE:
            # Checked before any value is decoded: the data of such a Secret is never used.
            raise CredentialsError(
                f"{origin} is not labelled {SECRET_TYPE_LABEL}: {REPOSITORY_SECRET_TYPE}; "
                "only Secrets carrying that label are used as Git credentials"
            )
        return parse_entry(origin, _decoded(secret, origin), controller_wide=False)


def _git_credentials(
    entry: RepositoryCredential | None, url: str, namespace: str
) -> GitCredentials | None:
    if entry is None:
        return None
    if entry.insecure:
        raise CredentialsError(
            f"{entry.origin}: insecure (skip TLS verification) is honoured for chart "
            "repositories only; for a Git repository give its CA in caData"
        )
    return credentials_for(entry, url, namespace)


def _chart_credential(
    entry: RepositoryCredential | None, url: str, namespace: str
) -> ChartCredential:
    """``entry``'s credential for the chart repository ``url`` (checked by ``credentials_for``:
    offered to ``namespace``, ``url`` under its prefix); the empty credential without one."""
    if entry is None:
        return ChartCredential()
    git = credentials_for(entry, url, namespace)
    return ChartCredential(
        username=git.username or "",
        password=git.password or "",
        ca_data=git.ca_data or "",
        allow_plain_http=entry.insecure_allow_http,
        insecure=entry.insecure,
    )
