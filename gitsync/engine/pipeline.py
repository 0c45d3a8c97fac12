"""Fetch -> render -> compare -> sync -> health for one Application.

Each stage fails with an error that names the stage and the cause, and nothing after a failed
stage runs: a fetch or render failure never reaches the sync stage, so nothing is applied and,
above all, nothing is pruned because Git "looked empty". Rendering is memoised per
(commit, path, render parameters), so an unchanged commit is never rendered twice.

A chart source (``spec.source.chart``) goes through the same stages: its "commit" is the chart
version the range picks (``chart@version``, the revision status and history show), fetched and
unpacked by ``ChartStore``, rendered by the Helm renderer and memoised by the archive's digest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gitsync import kinds
from gitsync.application import Application, HelmSource, SpecError
from gitsync.engine.chart_sources import ChartStore
from gitsync.errors import GitsyncError, TerminalError, TransientError
from gitsync.health import Health, aggregate, assess
from gitsync.kube import KubeClient
from gitsync.model import ResourceKey, SyncStatus
from gitsync.render import (
    DirectoryOptions,
    HelmOptions,
    KustomizeOptions,
    RenderCache,
    RenderedManifest,
    RenderError,
    RenderLimits,
    RenderRequest,
    SourceType,
    source_type,
)
from gitsync.rollout.executor import RolloutExecutor, RolloutSyncHook
from gitsync.rollout.providers import MetricProviders
from gitsync.source import Checkout, GitCredentials, Revision, SourceCache
from gitsync.source.charts import ChartCredential, ChartSourceTerminalError, ChartVersion
from gitsync.sync import POLICY_DENIED, Comparison, Syncer, SyncResult

CredentialsLookup = Callable[[Application], GitCredentials | None]
ChartCredentialsLookup = Callable[[Application], ChartCredential]
SourceKind = SourceType | Literal["helm-repository", "oci"]
"""The renderer a Git source got, or where a chart came from (``SOURCE_TYPES`` keys)."""
MAX_REMEMBERED_CHART_VERSIONS = 4096


class SourceNotPermittedError(SpecError):
    """The app's ``repoURL`` is outside its project's ``sourceRepos``: stalled until the spec
    (or the policy) changes."""


class StageError(GitsyncError):
    """A pipeline stage failed; ``stage`` is fetch|render|compare|sync, ``cause`` the error."""

    def __init__(self, stage: str, cause: Exception):
        self.stage = stage
        self.cause = cause
        self.transient = isinstance(cause, TransientError)
        self.terminal = isinstance(cause, TerminalError)
        super().__init__(f"{stage} failed: {cause}")


class FetchError(StageError):
    def __init__(self, cause: Exception):
        super().__init__("fetch", cause)


@dataclass(frozen=True)
class AppState:
    """What one compare found: the revision, the rendered objects and how the cluster differs."""

    app: Application
    revision: Revision
    manifests: tuple[RenderedManifest, ...]
    comparison: Comparison
    source_type: SourceKind = "plain"

    @property
    def sync_status(self) -> SyncStatus:
        return SyncStatus.SYNCED if self.comparison.in_sync else SyncStatus.OUT_OF_SYNC

    def rollouts(self) -> list[ResourceKey]:
        """The Rollouts this app renders (the controller advances them between syncs)."""
        return [i.key for i in self.comparison.items if kinds.is_rollout(i.key.group, i.key.kind)]

    def resource_health(self) -> list[tuple[ResourceKey, Health]]:
        return list(self._healths)

    @property
    def health(self) -> Health:
        return aggregate(h for _, h in self._healths)

    @functools.cached_property
    def _healths(self) -> tuple[tuple[ResourceKey, Health], ...]:
        # assessed once per compare: a reconcile asks for the app's health and each object's
        return tuple((item.key, assess(item.live)) for item in self.comparison.items)


class Engine:
    """Runs the pipeline for Applications against one cluster."""

    def __init__(
        self,
        kube: KubeClient,
        sources: SourceCache,
        *,
        renders: RenderCache | None = None,
        syncer: Syncer | None = None,
        credentials: CredentialsLookup | None = None,
        limits: RenderLimits | None = None,
        metric_providers: MetricProviders | None = None,
        chart_credentials: ChartCredentialsLookup | None = None,
        charts: ChartStore | None = None,
    ):
        self.kube = kube
        self.sources = sources
        self.renders = renders or RenderCache()
        # without providers, analysis reads nothing: every URL is refused (no --analysis-allow)
        executor = RolloutExecutor(kube, providers=metric_providers or MetricProviders())
        self.rollouts = RolloutSyncHook(kube, executor=executor)
        self.syncer = syncer or Syncer(kube, takeover=self.rollouts)
        if self.syncer.takeover is None:
            self.syncer.takeover = self.rollouts
        self.credentials = credentials or (lambda app: None)
        self.chart_credentials = chart_credentials or (lambda app: ChartCredential())
        self.limits = limits or RenderLimits()
        self.charts = charts or ChartStore(sources.root / "charts")
        # the version each resolved chart@version stands for, so fetch needs no second listing
        self._chart_versions: dict[tuple[str, str], ChartVersion] = {}

    # -- stages ------------------------------------------------------------------------------

    def check_source(self, app: Application) -> None:
        """Refuse, before any credential is looked up or any connection made, a repository the
        destination policy's ``sourceRepos`` does not list for the app's project."""
        why = self.syncer.policy.check_source(app.namespace, app.source.repo_url)
        if why:
            raise SourceNotPermittedError("spec.source.repoURL", f"{POLICY_DENIED}: {why}")

    def resolve(self, app: Application, *, max_age: float = 0.0) -> str:
        """The revision the app's source names right now: a commit SHA (one ``ls-remote``,
        maybe shared: ``SourceCache.resolve``), or for a chart ``chart@version`` (one
        conditional index request, maybe shared: ``ChartStore.resolve``)."""
        src = app.source
        if src.is_chart:
            version = self.charts.resolve(
                src.repo_url,
                src.chart,
                src.target_revision,
                self.chart_credentials(app),
                max_age=max_age,
            )
            if len(self._chart_versions) >= MAX_REMEMBERED_CHART_VERSIONS:
                self._chart_versions.clear()  # bounded; a miss only costs one index request
            self._chart_versions[(src.repo_url, version.revision)] = version
            return version.revision
        return self.sources.resolve(
            src.repo_url, src.target_revision, self.credentials(app), max_age=max_age
        )

    def fetch(self, app: Application, sha: str | None = None) -> Checkout:
        """Check out the app's revision; ``sha`` (already resolved by the caller's cheap remote
        check) skips the second ls-remote."""
        try:
            self.check_source(app)
            if app.source.is_chart:
                return self._fetch_chart(app, sha)
            return self.sources.checkout(
                app.source.repo_url, sha or app.source.target_revision, self.credentials(app)
            )
        except GitsyncError as exc:
            raise FetchError(exc) from exc

    def _fetch_chart(self, app: Application, revision: str | None) -> Checkout:
        src = app.source
        credential = self.chart_credentials(app)
        version = self._chart_versions.get((src.repo_url, revision or ""))
        if version is None:  # not resolved in this process (a rollback to chart@version)
            target = src.target_revision
            if revision:
                name, _, target = revision.rpartition("@")
                if name != src.chart:
                    raise ChartSourceTerminalError(
                        f"revision {revision!r} is not a version of chart {src.chart!r}"
                    )
            version = self.charts.resolve(src.repo_url, src.chart, target, credential)
        checkout = self.charts.checkout(src.repo_url, version, credential)
        return Checkout(
            checkout.root / checkout.path,
            Revision(version.revision, f"{src.repo_url}/{src.chart}", "", "", "", checkout.digest),
        )

    def render_request(self, app: Application, root: Path) -> RenderRequest:
        src = app.source
        helm = src.helm
        if helm is None and src.is_chart:
            helm = HelmSource()
        return RenderRequest(
            repo_root=root,
            path=src.path,
            namespace=app.destination.namespace,
            directory=(
                DirectoryOptions(
                    recurse=src.directory.recurse,
                    include=src.directory.include or None,
                    exclude=src.directory.exclude or None,
                )
                if src.directory
                else None
            ),
            helm=(
                HelmOptions(
                    release_name=helm.release_name or app.name,
                    value_files=helm.value_files,
                    values=dict(helm.values) or None,
                )
                if helm
                else None
            ),
            kustomize=KustomizeOptions() if src.kustomize else None,
            limits=self.limits,
        )

    def render(
        self, app: Application, checkout: Checkout
    ) -> tuple[list[RenderedManifest], SourceKind]:
        """The manifests and the renderer that made them (decided anew: a cached render
        does not say, and the decision is a stat or two). A chart renders from its
        directory, memoised by its digest."""
        req = self.render_request(app, checkout.path)
        kind: SourceKind
        key = checkout.revision.sha
        if app.source.is_chart:
            kind = "oci" if app.source.is_oci else "helm-repository"
            key = checkout.revision.digest or key
        try:
            if not app.source.is_chart:
                kind = source_type(req)
            return self.renders.get_or_render(key, req), kind
        except (RenderError, GitsyncError) as exc:
            raise StageError("render", exc) from exc

    def compare(self, app: Application, sha: str | None = None) -> AppState:
        try:  # whom the app runs as is settled before its repository is even fetched
            self.syncer.client_for(app)
        except GitsyncError as exc:
            raise StageError("compare", exc) from exc
        checkout = self.fetch(app, sha)
        manifests, kind = self.render(app, checkout)
        try:
            comparison = self.syncer.compare(app, manifests)
        except GitsyncError as exc:
            raise StageError("compare", exc) from exc
        return AppState(app, checkout.revision, tuple(manifests), comparison, kind)

    def sync(
        self,
        app: Application,
        *,
        dry_run: bool = False,
        prune: bool | None = None,
        state: AppState | None = None,
    ) -> tuple[AppState, SyncResult]:
        """Sync ``state`` (a fresh compare when not given)."""
        state = state or self.compare(app)
        try:
            result = self.syncer.sync(
                app,
                state.manifests,
                revision=state.revision.sha,
                dry_run=dry_run,
                prune=prune,
                comparison=state.comparison,
            )
        except GitsyncError as exc:
            raise StageError("sync", exc) from exc
        return state, result
