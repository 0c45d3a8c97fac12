"""Fetch -> render -> compare -> sync -> health for one Application.

Each stage fails with an error that names the stage and the cause, and nothing after a failed
stage runs: a fetch or render failure never reaches the sync stage, so nothing is applied and,
above all, nothing is pruned because Git "looked empty". Rendering is memoised per
(commit, path, render parameters), so an unchanged commit is never rendered twice.

A chart source (``spec.source.chart``) goes through the same stages: its "commit" is the chart
version the range picks (``chart@version``, the revision status and history show), fetched and
unpacked by ``ChartStore``, rendered by the Helm renderer and memoised by the archive's digest.

An app with ``spec.sources`` (Argo CD's multiple sources) runs each stage per source, each with
its own credentials and policy check; its revision is the sources' revisions in order, joined by
``,`` (``REVISION_SEPARATOR``), so the controller's "did the revision change" check, rollbacks and
history need nothing new. Every source that renders is rendered (a ``$REF/...`` value file read
from that ref's checkout, and the ref's revision part of the render's cache key) and the
manifests are concatenated; an object two sources render is a render error naming both, and any
source failing fails the whole compare, so nothing is applied or pruned.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gitsync import kinds
from gitsync.application import Application, HelmSource, JsonnetVariable, SpecError
from gitsync.engine.argo_children import as_gitsync_applications
from gitsync.engine.chart_dependencies import fetch_dependencies
from gitsync.engine.chart_sources import ChartStore
from gitsync.engine.healthmemo import HealthMemo
from gitsync.errors import GitsyncError, TerminalError, TransientError
from gitsync.health import Health, aggregate
from gitsync.kube import ServerCapabilities
from gitsync.model import REVISION_SEPARATOR, ResourceKey, SyncStatus
from gitsync.render import (
    DirectoryOptions,
    HelmOptions,
    JsonnetOptions,
    JsonnetVar,
    KustomizeOptions,
    RenderCache,
    RenderedManifest,
    RenderError,
    RenderLimits,
    RenderRequest,
    SourceType,
    helm_set_expression,
    source_type,
    what_was_found,
)
from gitsync.render.confinement import Repo
from gitsync.render.hooks import HookPhase
from gitsync.rollout.executor import RolloutExecutor, RolloutStepResult
from gitsync.source import Checkout, GitCredentials, Revision, SourceCache
from gitsync.source.charts import ChartCredential, ChartSourceTerminalError, ChartVersion
from gitsync.sync import POLICY_DENIED, Comparison, Syncer, SyncResult
from gitsync.sync.deletion import AppDeletion, Propagation, delete_app_objects
from gitsync.sync.hooks import HookResult
from gitsync.sync.inventory import Inventory

CredentialsLookup = Callable[[Application], GitCredentials | None]
CAPABILITIES_TTL_SECONDS = 60.0
"""How long one discovery of the destination (for Helm's ``.Capabilities``) is reused: a CRD
installed since shows up in charts' ``APIVersions.Has`` within this time."""
ChartCredentialsLookup = Callable[[Application], ChartCredential]
DependencyCredentialsLookup = Callable[[Application, str], ChartCredential]
"""The credential an app's chart dependency at a URL is sent (matched by that URL's prefix)."""
SourceKind = SourceType | Literal["helm-repository", "oci"]
"""The renderer a Git source got, or where a chart came from (``SOURCE_TYPES`` keys)."""
MAX_REMEMBERED_CHART_VERSIONS = 4096
MAX_REMEMBERED_DETECTIONS = 8192


class SourceNotPermittedError(SpecError):
    """The app's ``repoURL`` is outside its project's ``sourceRepos``: stalled until the spec
    (or the policy) changes."""


class StageError(GitsyncError):
    """A pipeline stage failed; ``stage`` is fetch|render|compare|sync|hooks (an app's deletion
    hooks), ``cause`` the error."""

    def __init__(self, stage: str, cause: Exception):
        self.stage = stage
        self.cause = cause
        self.transient = isinstance(cause, TransientError)
        self.terminal = isinstance(cause, TerminalError)
        super().__init__(f"{stage} failed: {cause}")


class FetchError(StageError):
    def __init__(self, cause: Exception):
        super().__init__("fetch", cause)


# every live object's health by resourceVersion, shared by all compares of this process
HEALTHS = HealthMemo()


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
        # assessed once per compare: a reconcile asks for the app's health and each object's;
        # an object unchanged since the last compare keeps its answer (``HEALTHS``)
        return tuple((item.key, HEALTHS.assess(item.live)) for item in self.comparison.items)


@dataclass(frozen=True)
class RenderedRevision:
    """What one revision of an app renders to, without a compare (a history entry's manifests,
    for the diff between two deploys)."""

    revision: Revision
    manifests: tuple[RenderedManifest, ...]


class Engine:
    """Runs the pipeline for Applications against one cluster.

    Built from its collaborators, never completed afterwards: ``syncer`` compares and applies
    (and hands pod-template changes to the rollouts through its ``takeover``), ``rollouts``
    advances the Rollouts between syncs, ``sources`` fetches, ``credentials`` says what an app's
    repository is sent. The controller and the CLI build these once per cluster."""

    def __init__(
        self,
        sources: SourceCache,
        syncer: Syncer,
        rollouts: RolloutExecutor,
        *,
        renders: RenderCache | None = None,
        credentials: CredentialsLookup | None = None,
        limits: RenderLimits | None = None,
        chart_credentials: ChartCredentialsLookup | None = None,
        charts: ChartStore | None = None,
        dependency_credentials: DependencyCredentialsLookup | None = None,
    ):
        self.sources = sources
        self.syncer = syncer
        self.rollouts = rollouts
        self.renders = renders or RenderCache()
        self.credentials = credentials or (lambda app: None)
        self.chart_credentials = chart_credentials or (lambda app: ChartCredential())
        self.dependency_credentials = dependency_credentials or (lambda app, url: ChartCredential())
        self.limits = limits or RenderLimits()
        self.capabilities_ttl = CAPABILITIES_TTL_SECONDS
        self._capabilities: tuple[float, ServerCapabilities] | None = None
        self._capabilities_lock = threading.Lock()

        self.charts = charts or ChartStore(sources.root / "charts")
        # the version each resolved chart@version stands for, so fetch needs no second listing
        self._chart_versions: dict[tuple[str, str], ChartVersion] = {}
        self._detected: dict[tuple[str, str], SourceType] = {}  # (checkout, path) -> renderer

    def capabilities(self) -> ServerCapabilities:
        """The destination's version and API versions, read at most once per
        ``capabilities_ttl`` for all apps on this cluster (one Engine per cluster). A failed
        read raises: a chart is never rendered with defaults that could drop objects (and
        prune them) only because discovery failed."""
        with self._capabilities_lock:  # one discovery at a time; the others wait for it
            now = time.monotonic()
            if self._capabilities is None or now - self._capabilities[0] >= self.capabilities_ttl:
                self._capabilities = (now, self.syncer.kube.server_capabilities())
            return self._capabilities[1]

    # -- stages ------------------------------------------------------------------------------

    def check_source(self, app: Application) -> None:
        """Refuse, before any credential is looked up or any connection made, a repository the
        destination policy's ``sourceRepos`` does not list for the app's project (every one of
        a ``spec.sources`` app's)."""
        for i, src in enumerate(app.all_sources):
            why = self.syncer.policy.check_source(app.namespace, src.repo_url)
            if why:
                where = f"spec.sources[{i}]" if app.sources else "spec.source"
                raise SourceNotPermittedError(f"{where}.repoURL", f"{POLICY_DENIED}: {why}")

    def resolve_revision(self, app: Application, *, max_age: float = 0.0) -> str:
        """The revision the app's source names right now: a commit SHA (one ``ls-remote``,
        maybe shared: ``SourceCache.resolve``), or for a chart ``chart@version`` (one
        conditional index request, maybe shared: ``ChartStore.resolve``); for ``spec.sources``
        every source's, joined."""
        if app.sources:
            return REVISION_SEPARATOR.join(
                self.resolve_revision(one, max_age=max_age) for one in _each_source(app)
            )
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

    def fetch_sources(self, app: Application, revision: str | None) -> list[Checkout]:
        """A ``spec.sources`` app's checkouts, in order, at ``revision`` (the joined form; None:
        each source's target)."""
        try:  # every repository checked first, the error naming the entry (spec.sources[i])
            self.check_source(app)
        except GitsyncError as exc:
            raise FetchError(exc) from exc
        parts: list[str | None] = [None] * len(app.sources)
        if revision:
            parts = list(revision.split(REVISION_SEPARATOR))
            if len(parts) != len(app.sources):  # e.g. a rollback to before a source was added
                raise FetchError(
                    TerminalError(
                        f"revision {revision!r} has {len(parts)} parts, "
                        f"but the app has {len(app.sources)} sources"
                    )
                )
        return [self.fetch(one, part) for one, part in zip(_each_source(app), parts, strict=True)]

    def render_sources(
        self, app: Application, checkouts: Sequence[Checkout]
    ) -> tuple[list[RenderedManifest], SourceKind]:
        """Every rendering source's manifests, concatenated in order; the kind is the first's."""
        refs = {
            src.ref: checkout
            for src, checkout in zip(app.sources, checkouts, strict=True)
            if src.ref
        }
        manifests: list[RenderedManifest] = []
        made_by: dict[ResourceKey, int] = {}
        kinds_seen: list[SourceKind] = []
        for i, (one, checkout) in enumerate(zip(_each_source(app), checkouts, strict=True)):
            if one.source.ref_only:
                continue
            rendered, kind = self.render(one, checkout, refs)
            kinds_seen.append(kind)
            for manifest in rendered:
                first = made_by.setdefault(manifest.key, i)
                if first != i:
                    raise StageError(
                        "render",
                        RenderError(
                            f"{manifest.key} is rendered by both spec.sources[{first}] and "
                            f"spec.sources[{i}]"
                        ),
                    )
            manifests.extend(rendered)
        return manifests, kinds_seen[0]

    def render_request(
        self, app: Application, root: Path, refs: Mapping[str, Checkout] | None = None
    ) -> RenderRequest:
        src = app.source
        req = RenderRequest(
            repo_root=root,
            path=src.path,
            # Argo CD's helm.namespace: the namespace the chart is templated with
            namespace=(src.helm.namespace if src.helm else "") or app.destination.namespace,
            directory=(
                DirectoryOptions(
                    recurse=src.directory.recurse,
                    include=src.directory.include or None,
                    exclude=src.directory.exclude or None,
                    jsonnet=JsonnetOptions(
                        tlas=_jsonnet_vars(src.directory.jsonnet.tlas),
                        ext_vars=_jsonnet_vars(src.directory.jsonnet.ext_vars),
                        libs=src.directory.jsonnet.libs,
                    ),
                )
                if src.directory
                else None
            ),
            helm=self._helm_options(app, refs or {}),
            kustomize=KustomizeOptions(src.kustomize) if src.kustomize is not None else None,
            limits=self.limits,
        )
        if self._source_type(req) != "helm":
            return req
        helm = req.helm or HelmOptions(release_name="")  # a detected chart: named by the renderer
        spec = src.helm
        kube_version = spec.kube_version if spec else ""
        api_versions = spec.api_versions if spec else None
        if not kube_version or api_versions is None:
            found = self.capabilities()
            kube_version = kube_version or found.kube_version
            api_versions = found.api_versions if api_versions is None else api_versions
        return dataclasses.replace(
            req,
            helm=dataclasses.replace(helm, kube_version=kube_version, api_versions=api_versions),
        )

    @staticmethod
    def _helm_options(app: Application, refs: Mapping[str, Checkout]) -> HelmOptions | None:
        helm = app.source.helm
        if helm is None:
            if not app.source.is_chart:
                return None
            helm = HelmSource()  # a chart from a repository: Helm with the defaults
        return HelmOptions(
            release_name=helm.release_name or app.name,
            value_files=helm.value_files,
            ignore_missing_value_files=helm.ignore_missing_value_files,
            values=dict(helm.values) or None,
            values_yaml=helm.values_yaml,
            set_values=tuple(
                helm_set_expression(p.name, p.value) for p in helm.parameters if not p.force_string
            ),
            set_string_values=tuple(
                helm_set_expression(p.name, p.value) for p in helm.parameters if p.force_string
            ),
            skip_crds=helm.skip_crds,
            ref_roots={name: checkout.path for name, checkout in refs.items()},
        )

    def render(
        self, app: Application, checkout: Checkout, refs: Mapping[str, Checkout] | None = None
    ) -> tuple[list[RenderedManifest], SourceKind]:
        """The manifests and the renderer that made them (decided anew: a cached render
        does not say, and the decision is a stat or two). A chart renders from its
        directory, memoised by its digest. ``refs``: the app's ref sources' checkouts, whose
        revisions are part of the memo key (their files are value files of this render)."""
        kind: SourceKind
        key = checkout.revision.sha
        if app.source.is_chart:
            kind = "oci" if app.source.is_oci else "helm-repository"
            key = checkout.revision.digest or key
        for name, ref in sorted((refs or {}).items()):
            key += f"+${name}={ref.revision.sha}"
        try:
            # inside: the request reads the destination's discovery for a chart, and a failed
            # discovery is a failed render (nothing applied or pruned), not a crash
            req = self.render_request(app, checkout.path, refs)
            if not app.source.is_chart:
                kind = self._source_type(req)
                if kind == "helm":
                    req = self._with_dependencies(app, req)
            manifests = self.renders.get_or_render(key, req)
            # Argo CD's app of apps: its child Applications become gitsync's (argo_children)
            manifests = as_gitsync_applications(manifests, app)
        except (RenderError, GitsyncError) as exc:
            raise StageError("render", exc) from exc
        if not manifests and not app.sync_policy.allow_empty:
            # a render of nothing is a mistake far more often than an intent (a chart's
            # dependency left out, Jsonnet or YAML in the wrong directory): say what is there
            # instead, never report an empty success, and neither apply nor prune
            raise StageError("render", self._empty_render_error(app, req, kind))
        return manifests, kind

    def _source_type(self, req: RenderRequest) -> SourceType:
        """``source_type``, remembered per checkout and path when it has to look: a checkout
        is one commit's read-only tree, so what it holds never changes, and looking is a few
        ``realpath`` and ``stat`` calls that every refresh of every app paid twice."""
        if req.helm is not None or req.kustomize is not None or req.directory is not None:
            return source_type(req)
        key = (str(req.repo_root), req.path)
        found = self._detected.get(key)
        if found is None:
            found = source_type(req)
            if len(self._detected) >= MAX_REMEMBERED_DETECTIONS:
                self._detected.clear()
            self._detected[key] = found
        return found

    def _empty_render_error(self, app: Application, req: RenderRequest, kind: str) -> RenderError:
        found = ""
        if kind == "plain":
            try:
                options = req.directory or DirectoryOptions()
                found = ": " + what_was_found(req.repo_root, req.path, options, self.limits)
            except (RenderError, OSError):
                found = ""  # the directory vanished since the render; the plain message stands
        return RenderError(
            f"the render produced no objects{found} (set syncPolicy.automated.allowEmpty if "
            "that is intended)",
            source=app.source.path or ".",
        )

    def _with_dependencies(self, app: Application, req: RenderRequest) -> RenderRequest:
        """``req`` with the chart's remote dependencies fetched (their digests then key the
        render cache, so a new dependency version is a new render)."""
        chart_dir = Repo.at(req.repo_root).app_dir(req.path)
        fetched = fetch_dependencies(
            self.charts,
            req.repo_root,
            chart_dir,
            self.limits,
            lambda url: self.dependency_credentials(app, url),
        )
        if not fetched:
            return req
        helm = req.helm or HelmOptions(release_name="")
        return dataclasses.replace(req, helm=dataclasses.replace(helm, dependencies=fetched))

    def _fetch_and_render(
        self, app: Application, sha: str | None
    ) -> tuple[Revision, list[RenderedManifest], SourceKind]:
        try:  # whom the app runs as is settled before its repository is even fetched
            self.syncer.client_for(app)
        except GitsyncError as exc:
            raise StageError("compare", exc) from exc
        if app.sources:
            checkouts = self.fetch_sources(app, sha)
            manifests, kind = self.render_sources(app, checkouts)
            return combined_revision(app, checkouts), manifests, kind
        checkout = self.fetch(app, sha)
        manifests, kind = self.render(app, checkout)
        return checkout.revision, manifests, kind

    def compare(self, app: Application, sha: str | None = None) -> AppState:
        revision, manifests, kind = self._fetch_and_render(app, sha)
        try:
            comparison = self.syncer.compare(app, manifests)
        except GitsyncError as exc:
            raise StageError("compare", exc) from exc
        return AppState(app, revision, tuple(manifests), comparison, kind)

    def render_revision(self, app: Application, revision: str) -> RenderedRevision:
        """The manifests ``revision`` (a history entry's: a commit, ``chart@version``, or the
        joined revisions of ``spec.sources``) renders to with the app's current spec - fetch and
        render only, the render cached per commit as for a reconcile; nothing is read from or
        written to the cluster. Raises ``StageError`` (``FetchError`` when the revision cannot
        be fetched, e.g. its commit is gone from the repository)."""
        fetched, manifests, _ = self._fetch_and_render(app, revision)
        return RenderedRevision(fetched, tuple(manifests))

    def sync(
        self,
        app: Application,
        *,
        dry_run: bool = False,
        prune: bool | None = None,
        state: AppState | None = None,
        operation: str = "",
    ) -> tuple[AppState, SyncResult]:
        """Sync ``state`` (a fresh compare when not given). ``operation``: the sync
        operation's id, the same when a restarted controller resumes it (its hooks are found,
        not created again)."""
        state = state or self.compare(app)
        try:
            result = self.syncer.sync(
                app,
                state.manifests,
                revision=state.revision.sha,
                dry_run=dry_run,
                prune=prune,
                comparison=state.comparison,
                operation=operation,
            )
        except GitsyncError as exc:
            raise StageError("sync", exc) from exc
        return state, result

    def delete_resources(self, app: Application, propagation: Propagation) -> AppDeletion:
        """One round of deleting the app's objects (it was deleted with a resources
        finalizer), acting as the app; the inventory is read afresh, not from the memo."""
        return delete_app_objects(
            self.syncer.client_for(app),
            Inventory(self.syncer.kube, app.namespace, app.name),
            app,
            policy=self.syncer.policy,
            propagation=propagation,
        )

    def run_delete_hooks(
        self, app: Application, revision: str, phase: HookPhase, *, operation: str
    ) -> list[HookResult]:
        """Run the ``phase`` hooks (PreDelete, PostDelete) of the app deleted with a resources
        finalizer, rendered at ``revision`` (the one it last synced; "": its target) through
        the same fetch and render as a compare, and run as the app under the destination
        policy like sync hooks. A fetch or render failure raises ``StageError``: the hooks are
        never skipped because Git could not be read."""
        try:  # whom the app runs as is settled before its repository is even fetched
            self.syncer.client_for(app)
        except GitsyncError as exc:
            raise StageError("hooks", exc) from exc
        if app.sources:
            manifests, _ = self.render_sources(app, self.fetch_sources(app, revision or None))
        else:
            manifests, _ = self.render(app, self.fetch(app, revision or None))
        try:
            return self.syncer.run_hooks(app, manifests, phase, operation=operation)
        except GitsyncError as exc:
            raise StageError("hooks", exc) from exc

    def tick_rollouts(
        self, app: Application, rollouts: Sequence[ResourceKey]
    ) -> list[RolloutStepResult] | None:
        """Advance each of the app's ``rollouts`` one step, acting as the app (its
        ServiceAccount); None when there is no ServiceAccount to act as - the compare reports
        that (Stalled), so the rollouts wait for it."""
        try:
            kube = self.syncer.client_for(app)
        except GitsyncError:
            return None
        return [self.rollouts.tick(key.namespace, key.name, kube=kube) for key in rollouts]


def _each_source(app: Application) -> list[Application]:
    """A ``spec.sources`` app as one single-source app per entry, so each is resolved, fetched,
    checked against the policy and given credentials (matched by its own URL) like any app."""
    return [dataclasses.replace(app, source=src, sources=()) for src in app.sources]


def combined_revision(app: Application, checkouts: Sequence[Checkout]) -> Revision:
    """A ``spec.sources`` app's revision: the parts joined (``sha``), each part kept in
    ``sources``; message, author and date are the first rendering source's."""
    parts = tuple(c.revision for c in checkouts)
    pairs = zip(app.sources, checkouts, strict=True)
    first = next(c.revision for src, c in pairs if not src.ref_only)
    return Revision(
        REVISION_SEPARATOR.join(p.sha for p in parts),
        first.ref,
        first.message,
        first.author,
        first.date,
        first.digest,
        sources=parts,
    )


def _jsonnet_vars(variables: tuple[JsonnetVariable, ...]) -> tuple[JsonnetVar, ...]:
    return tuple(JsonnetVar(v.name, v.value, v.code) for v in variables)
