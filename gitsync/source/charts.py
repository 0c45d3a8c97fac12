"""What a chart repository is to the rest of gitsync, whatever protocol serves it.

Helm charts come from two kinds of repository besides Git: a Helm HTTP repository (an
``index.yaml`` listing versions and archive URLs; ``gitsync.source.helmrepo``) and an OCI registry
(tags of an artifact; ``gitsync.source.oci``). The engine picks a version the same way for both
(the highest matching a semver range, as for Git tags) and records the same facts in status and
history, so the two adapters share these types and one ``ChartRepository`` protocol.

Pure: types only. Everything read from a repository is untrusted; ``ChartLimits`` bounds each
read (bytes, entries, seconds) and the adapters raise ``ChartSourceError`` subclasses that say
whether the reconcile loop stalls (terminal: wrong credentials, no such chart, over a limit) or
retries (transient: a server that is down or slow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol

from gitsync.errors import TerminalError, TransientError

MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class ChartLimits:
    """Bounds on what one repository may make gitsync read, parse or unpack."""

    max_index_bytes: int = 20 * MIB
    max_index_entries: int = 50_000
    """Chart versions in one index, or tags in one OCI tag list."""
    max_archive_bytes: int = 20 * MIB
    max_unpacked_bytes: int = 100 * MIB
    max_archive_files: int = 10_000
    timeout_seconds: float = 60.0
    """Wall-clock bound on one operation (index fetch, tag listing, archive download)."""


@dataclass(frozen=True)
class ChartCredential:
    """What a chart repository is sent, from the repository-credential entry whose URL prefix
    matched (``gitsync.source.credentials``); the empty credential sends nothing. Secrets are kept
    out of ``repr`` so a logged object never carries them."""

    username: str = ""
    password: str = field(default="", repr=False)
    ca_data: str = field(default="", repr=False)
    """PEM CA bundle the server's certificate must chain to (else the system roots)."""
    allow_plain_http: bool = False
    """The entry allows ``http://`` (and, for OCI, a registry without TLS)."""
    insecure: bool = False
    """The entry's ``insecure`` (Argo CD's meaning): the server's TLS certificate is not
    verified."""


@dataclass(frozen=True)
class ChartVersion:
    """One published version of one chart.

    ``digest`` is ``sha256:<hex>``: the archive's digest for an HTTP repository (from the index,
    checked against the bytes on download), the manifest digest for OCI. ``url`` is where the
    archive is fetched from (absolute).
    """

    name: str
    version: str
    digest: str
    url: str

    @property
    def revision(self) -> str:
        """The app's revision as status, history and ``kubectl get applications`` show it."""
        return f"{self.name}@{self.version}"


class ChartRepository(Protocol):
    """One chart repository (HTTP index or OCI registry), with its credentials bound in."""

    def versions(self, chart: str) -> list[ChartVersion]:
        """Every published version of ``chart`` (bounded by ``ChartLimits``)."""
        ...

    def fetch(self, version: ChartVersion) -> bytes:
        """The chart archive (``.tgz``) of ``version``, verified against its digest."""
        ...


class ChartSourceError(Exception):
    """A chart repository could not give what was asked; the message names the repository
    (redacted URL), the chart and the version, never a credential."""


class ChartSourceTerminalError(ChartSourceError, TerminalError):
    """Retrying will not help: wrong credentials, no such chart or version, a limit exceeded,
    a malformed index or archive."""


class ChartSourceTransientError(ChartSourceError, TransientError):
    """The repository is down, slow or answered a server error; retried with backoff."""
