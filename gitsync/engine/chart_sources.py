"""Charts from Helm repositories and OCI registries, as the pipeline's fetch stage sees them.

``open_chart_repository`` picks the adapter for a repository URL (``https://``/``http://``: a Helm
HTTP repository; ``oci://``: an OCI registry) and gives the Helm adapter the project's safe YAML
loader for its index (the loader lives in the render layer, which the source layer may not
import; the engine sits above both).

``ChartStore`` turns an Application's chart source into files on disk, like ``SourceCache`` does
for Git: ``resolve`` picks the highest published version matching ``targetRevision`` (the same
semver rules as Git tags: ``select_semver_tag``), and ``checkout`` downloads its archive once
and unpacks it (``unpack_chart``) into a read-only directory named by the digest the version was
recorded with (the archive's for an HTTP repository, the manifest's for OCI), renamed into place
whole; the archive itself is not kept (the directory is what is reused).
Like ``SourceCache.resolve``, ``resolve(..., max_age=s)`` may reuse a listing of the same chart
in the same repository with the same credentials that is at most ``s`` seconds old, so many apps
refreshing together cost one conditional index request, not one each.

Unpacked charts are kept per (repository, credential identity): a digest is no secret (status
shows it), so a tenant naming another tenant's digest from an index of their own must not be
handed that tenant's private chart from the cache. Nothing is evicted yet: the store grows by
one unpacked chart per version deployed.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gitsync.render import RenderError, RenderLimits
from gitsync.render.safe_yaml import load_yaml_documents
from gitsync.source.chart_archive import unpack_chart
from gitsync.source.charts import (
    ChartCredential,
    ChartLimits,
    ChartRepository,
    ChartSourceTerminalError,
    ChartVersion,
)
from gitsync.source.helmrepo import HttpChartRepository, IndexParser, credential_identity
from gitsync.source.oci import OciChartRepository
from gitsync.source.revision import normalize_url, parse_tag_version, select_semver_tag

NEWEST_SHOWN = 5
MAX_SHARED_LISTINGS = 1024


def parse_index_yaml(limits: ChartLimits) -> IndexParser:
    """The index parser for ``limits``: one YAML document, within the size cap, alias and
    nesting bounds of the project's safe loader."""
    yaml_limits = RenderLimits(max_bytes=limits.max_index_bytes, max_documents=1)

    def parse(text: bytes, source: str) -> object:
        try:
            docs = load_yaml_documents(text, source=source, limits=yaml_limits)
        except RenderError as exc:
            raise ChartSourceTerminalError(f"{source}: {exc}") from None
        return docs[0] if docs else {}

    return parse


def open_chart_repository(
    repo_url: str, credential: ChartCredential, limits: ChartLimits
) -> ChartRepository:
    """The adapter for the chart repository at ``repo_url`` (without the chart's name)."""
    scheme = repo_url.split("://", 1)[0].lower()
    if scheme in ("https", "http"):
        return HttpChartRepository(
            repo_url, credential, limits, parse_index=parse_index_yaml(limits)
        )
    if scheme == "oci":
        return OciChartRepository(repo_url, credential, limits)
    raise ChartSourceTerminalError(f"{repo_url}: not an https://, http:// or oci:// repository")


def choose_version(versions: list[ChartVersion], chart: str, target: str) -> ChartVersion:
    """The highest version of ``chart`` matching ``target`` (a version or semver range), by
    ``select_semver_tag``'s rules; a terminal error naming the range and the newest versions
    published when none matches."""
    by_version = {v.version: v for v in versions}
    try:
        chosen = select_semver_tag(by_version, target)
    except ValueError:
        raise ChartSourceTerminalError(f"{target!r} is not a semver range") from None
    if chosen is None:
        parsed = [(parse_tag_version(v), v) for v in by_version]
        newest = sorted(((p.precedence_key, v) for p, v in parsed if p is not None), reverse=True)[
            :NEWEST_SHOWN
        ]
        seen = ", ".join(v for _, v in newest) or "none"
        raise ChartSourceTerminalError(
            f"no version of chart {chart!r} matches {target!r} (newest published: {seen})"
        )
    return by_version[chosen]


@dataclass(frozen=True)
class ChartCheckout:
    """An unpacked chart: ``root`` holds the chart's directory ``path``; ``digest`` is the
    archive's ``sha256:``."""

    root: Path
    path: str
    digest: str


class ChartStore:
    """Archives and unpacked charts under ``root``, per repository and credential identity."""

    def __init__(self, root: Path, limits: ChartLimits | None = None) -> None:
        self.root = Path(root)
        self.limits = limits or ChartLimits()
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        # (scope, chart) -> (when listed, the versions), for resolve(max_age=...)
        self._listings: dict[tuple[str, str], tuple[float, list[ChartVersion]]] = {}
        # one adapter per repository and credential identity, so its connection pool (and an OCI
        # registry's bearer token) is reused: a new adapter per refresh paid a TCP and TLS
        # handshake on every unchanged poll
        self._repositories: dict[str, ChartRepository] = {}

    def repository(self, repo_url: str, credential: ChartCredential) -> ChartRepository:
        scope = _scope(repo_url, credential)
        with self._lock:
            repository = self._repositories.get(scope)
        if repository is None:
            repository = open_chart_repository(repo_url, credential, self.limits)
            with self._lock:
                if len(self._repositories) >= MAX_SHARED_LISTINGS:
                    self._repositories.clear()
                repository = self._repositories.setdefault(scope, repository)
        return repository

    def resolve(
        self,
        repo_url: str,
        chart: str,
        target: str,
        credential: ChartCredential,
        *,
        max_age: float = 0.0,
    ) -> ChartVersion:
        key = (_scope(repo_url, credential), chart)
        with self._lock:
            listed = self._listings.get(key)
        repository = self.repository(repo_url, credential)
        if listed is None or time.monotonic() - listed[0] > max_age:
            listed = (time.monotonic(), repository.versions(chart))
            with self._lock:
                if len(self._listings) >= MAX_SHARED_LISTINGS:
                    self._listings.clear()
                self._listings[key] = listed
        # an OCI tag list carries no digests: the chosen one's manifest is read now
        return repository.resolve(choose_version(listed[1], chart, target))

    def checkout(
        self, repo_url: str, version: ChartVersion, credential: ChartCredential
    ) -> ChartCheckout:
        """``version`` unpacked (downloaded unless this repository and credential already
        fetched an archive with its digest)."""
        scope = _scope(repo_url, credential)
        with self._lock:
            lock = self._locks.setdefault(scope, threading.Lock())
        with lock:
            if version.digest:
                found = self._unpacked(scope, version.digest)
                if found is not None:
                    return found
            archive = self.repository(repo_url, credential).fetch(version)
            # Kept under the digest the version was recorded with (the archive's for an HTTP
            # repository, the manifest's for OCI, both verified by ``fetch``), so the next
            # checkout of the same version finds it without downloading.
            digest = version.digest or "sha256:" + hashlib.sha256(archive).hexdigest()
            found = self._unpacked(scope, digest)
            if found is not None:
                return found
            source = f"{version.revision} from {repo_url}"
            chart_dir = unpack_chart(archive, self._dir(scope, digest), self.limits, source=source)
            _make_read_only(chart_dir.parent)
            return ChartCheckout(chart_dir.parent, chart_dir.name, digest)

    def _dir(self, scope: str, digest: str) -> Path:
        return self.root / scope / digest.removeprefix("sha256:")

    def _unpacked(self, scope: str, digest: str) -> ChartCheckout | None:
        directory = self._dir(scope, digest)
        if not directory.is_dir():
            return None
        charts = [p for p in directory.iterdir() if (p / "Chart.yaml").is_file()]
        if len(charts) != 1:
            return None
        return ChartCheckout(directory, charts[0].name, digest)


def _scope(repo_url: str, credential: ChartCredential) -> str:
    """The repository and who reads it (the credential's keyed identity, never reversible)."""
    material = f"{normalize_url(repo_url)}\n{credential_identity(credential)}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _make_read_only(top: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            (Path(dirpath) / name).chmod(0o444)
        for name in dirnames:
            (Path(dirpath) / name).chmod(0o555)
    top.chmod(0o555)
