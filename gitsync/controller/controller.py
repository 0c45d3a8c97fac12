"""The controller process: watches Applications, schedules refreshes, reacts to pushes and
drift, and runs reconciles on a bounded worker pool - only while it holds the leader Lease.

Triggers and where they come from:

* the interval (``RefreshScheduler``, APScheduler) - a cheap remote-head check per app;
* a push webhook (``on_push``) - the apps whose normalized repo URL and branch/tag match; those
  whose files the push changed (``gitsync.controller.push_paths``) are queued urgent, first.
  Pushes for one repository are coalesced: at most one push-triggered head check per
  repository per push window (``--push-window``; later pushes join one run at the end of the
  window), and a follower hands a push over with at most one annotation write per app per window;
* a live change (the watch cache's events) - an object carrying an app's tracking annotation
  was edited or deleted, so drift is noticed within seconds;
* an Application change (spec generation or request annotations);
* a dependency change: an Application named in others' ``spec.dependsOn`` changed its readiness,
  revision or spec, so its dependents decide again (``gitsync.controller.dependencies``).

All of them go through one coalescing ``WorkQueue``: one reconcile per app at a time, bursts
merged. One worker more than ``--workers`` takes only pushed apps, and at most
``--git-max-per-host`` reconciles talk to one Git host at once (the others wait in the queue), so
a tenant's Git server that never answers cannot delay another tenant's push. With leader
election only the leader runs workers (and so only the leader writes); followers keep watching
so they can take over at once and still serve read-only status. With
``--shards`` every replica runs workers, and each reconcile first checks that this replica holds
the app's shard (``gitsync.controller.sharding``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from gitsync import kinds
from gitsync.application import Application, SpecError, is_semver_range, parse_application
from gitsync.application_status import ApplicationStatus
from gitsync.appset.generate import GenerationLimits
from gitsync.controller.apps import (
    ApplicationStore,
    CrdApplications,
    EventRecorder,
    FileApplications,
    app_of_tracked,
)
from gitsync.controller.appsets import ApplicationSets, push_follower
from gitsync.controller.clusters import ClusterRegistry
from gitsync.controller.dependencies import DependentsIndex
from gitsync.controller.events import (
    DEFAULT_PER_APP,
    ApplicationEvents,
    OwnerLookup,
)
from gitsync.controller.health_checks import DeclaredHealthChecks
from gitsync.controller.interface import REFRESH_REQUEST, AppEvents, EventQuery
from gitsync.controller.live_tree import LiveTree
from gitsync.controller.metrics import Metrics
from gitsync.controller.notifications import Notifications
from gitsync.controller.push_paths import touched, watched_paths
from gitsync.controller.queue import Coalescer, Priority, WorkQueue
from gitsync.controller.reconciler import Reconciler, Trigger
from gitsync.controller.repo_credentials import RepositoryCredentials
from gitsync.controller.scheduler import RefreshScheduler
from gitsync.controller.sharding import ShardSet
from gitsync.engine import AppState, Engine, RenderedRevision
from gitsync.engine.chart_sources import ChartStore
from gitsync.kube import ApiError, KubeClient
from gitsync.kube.cache import NotWatchedError, WatchCache
from gitsync.kube.leader import LeaderElector
from gitsync.model import AppKey, ResourceKey
from gitsync.policy import Policy, PolicyError
from gitsync.render import RenderCache
from gitsync.rollout.endpoints import AnalysisAllowList
from gitsync.rollout.executor import RolloutExecutor, RolloutSyncHook
from gitsync.rollout.providers import MetricProviders
from gitsync.source import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_MAX_OUTPUT_BYTES,
    SourceCache,
    normalize_url,
)
from gitsync.source.credentials import RepositoryCredential
from gitsync.sync import Impersonation, Syncer
from gitsync.webhook import PushEvent

log = structlog.get_logger(__name__)

PUSH_WINDOW = 1.0
"""Default seconds (``--push-window``) between two push-triggered runs for one repository (its
apps' head checks) and between two hand-over writes for one app: a flood of deliveries, replayed
or not, costs at most one ``ls-remote`` and one Application PATCH per window, and the last push of
a burst is still seen at the end of its window. It was 5 s; a developer's second push within
those 5 s then waited for the window's end (push-to-live p50 4.65 s instead of 0.2 s in the
bench's 20 back-to-back pushes), while 1 s still bounds a storm to one ``ls-remote`` a second per
repository, inside ``--git-max-per-host``."""


@dataclass
class ControllerConfig:
    cache_dir: Path
    namespaces: list[str] | None = None
    config_file: Path | None = None
    workers: int = 4
    controller_namespace: str = "gitsync"
    leader_elect: bool = False
    identity: str = ""
    lease_duration: float = 15.0
    shards: int = 0  # > 0: Applications are spread over replicas in this many Lease-held shards
    allow_exec_credentials: bool = False
    full_compare_every: float = 300.0
    push_window: float = PUSH_WINDOW
    apply_workers: int = 8
    # the GITSYNC_GIT_* environment as one repository-credential entry (with its URL prefix)
    credential_entry: RepositoryCredential | None = None
    policy_file: Path | None = None  # destination policy (gitsync.policy); None: built-in default
    policy_allow_all: bool = False  # --policy-allow-all: no fence at all (single-team clusters)
    allow_local_repos: bool = False  # file:// repositories (--allow-local-repos)
    git_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    git_max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    analysis_allow: tuple[str, ...] = ()  # URL globs rollout analysis may read (rollout.endpoints)
    impersonate: bool = True  # each app runs as its ServiceAccount (gitsync.sync.identity)
    allow_shared_resource_takeover: bool = False  # apply objects another app tracks
    default_service_account: str = ""  # for Applications without spec.serviceAccountName
    git_max_per_host: int = 0  # reconciles talking to one Git host at once; 0: max(1, workers//2)
    health_checks_file: Path | None = None  # --health-checks: declared CEL health checks
    no_cross_namespace_refs: bool = False  # refuse spec.dependsOn entries in another namespace
    appset_limits: GenerationLimits = field(default_factory=GenerationLimits)
    notification_allow: tuple[str, ...] = ()  # URL globs notifications may go to; (): https://*
    external_url: str = ""  # the UI's address as people reach it, for links in notifications
    events_per_app: int = DEFAULT_PER_APP  # --events-per-app: Kubernetes Events kept per app

    @property
    def max_per_host(self) -> int:
        return self.git_max_per_host or max(1, self.workers // 2)


@dataclass
class _Cluster:
    kube: KubeClient
    cache: WatchCache
    engine: Engine
    tree: LiveTree


@dataclass
class _Seen:
    generation: int = -1
    annotations: dict[str, str] = field(default_factory=dict)
    deleting: bool = False  # metadata.deletionTimestamp set: the finalizer's work begins


class Controller:
    def __init__(
        self, kube: KubeClient, config: ControllerConfig, *, metrics: Metrics | None = None
    ):
        self.kube = kube
        self.config = config
        self.metrics = metrics or Metrics()
        # one reader for every cluster's rollouts; a bad entry fails here, naming the flag
        self._metric_providers = MetricProviders(
            allow=AnalysisAllowList.parse(config.analysis_allow)
        )
        kube.requests.listeners.append(self.metrics.kube_request)
        self.sources = SourceCache(
            config.cache_dir / "sources",
            on_request=self.metrics.git_request,
            allow_local_repos=config.allow_local_repos,
            connect_timeout=config.git_connect_timeout,
            max_output_bytes=config.git_max_output_bytes,
        )
        self.renders = RenderCache()
        self.charts = ChartStore(self.sources.root / "charts")
        self.policy = load_policy(config.policy_file, allow_all=config.policy_allow_all)
        self.impersonation = impersonation_of(config)
        self.clusters = ClusterRegistry(
            kube, config.controller_namespace, allow_exec=config.allow_exec_credentials
        )
        self.repo_credentials = RepositoryCredentials(
            kube, config.controller_namespace, env_entry=config.credential_entry
        )
        # raises HealthCheckError for an invalid --health-checks file, before anything starts
        self.health_checks = DeclaredHealthChecks(
            config.controller_namespace,
            file=config.health_checks_file,
            record_event=EventRecorder(kube).record,
            requeue_all=self._requeue_all,
        )
        self._clusters: dict[int, _Cluster] = {}
        self._clusters_lock = threading.Lock()
        local = self._cluster(kube)
        self.store: ApplicationStore
        if config.config_file is not None:
            self.store = FileApplications(kube, config.config_file)
        else:
            self.store = CrdApplications(kube, local.cache, config.namespaces)
        # ApplicationSets generate Application objects, so they need the CRD store
        self.appsets: ApplicationSets | None = None
        if isinstance(self.store, CrdApplications):
            self.appsets = ApplicationSets(
                kube,
                local.cache,
                sources=self.sources,
                credentials=self.repo_credentials,
                clusters=self.clusters,
                policy=self.policy,
                namespaces=config.namespaces,
                limits=config.appset_limits,
                may_run=self._runs_application_sets,
            )
        self.notifications = Notifications(
            kube,
            local.cache,
            self.store,
            self.metrics,
            allow=config.notification_allow,
            external_url=config.external_url,
            namespaces=config.namespaces,
        )
        self.events = ApplicationEvents(
            kube,
            applications=self.application_objects,
            allowed_namespaces=self.policy.allowed_namespaces,
            lookup=_cached_object(local.cache),
            watch_children=lambda ns: _watch_children(local.cache, ns),
            per_app=config.events_per_app,
        )
        self.reconciler = Reconciler(
            self.store,
            self._engine_for,
            metrics=self.metrics,
            full_compare_every=config.full_compare_every,
            sync_windows=lambda app: self.policy.sync_windows(app.namespace),
            cross_namespace_refs=not config.no_cross_namespace_refs,
            notifier=self.notifications,
        )
        self.dependents = DependentsIndex()
        self.queue: WorkQueue[AppKey] = WorkQueue(
            host_of=self._git_host_of, max_per_host=config.max_per_host
        )
        self._push_lock = threading.Lock()
        self._repo_pushes: Coalescer[str] = Coalescer(config.push_window)
        self._handover_writes: Coalescer[AppKey] = Coalescer(config.push_window)
        self._handovers: WorkQueue[AppKey] = WorkQueue()
        self._handover_nonce: dict[AppKey, str] = {}
        self._handover_thread: threading.Thread | None = None
        self.scheduler = RefreshScheduler(lambda key: self.queue.add(key, Trigger.INTERVAL))
        self._seen: dict[AppKey, _Seen] = {}
        # called with every Application event of the watch (the web UI's live updates): one
        # watch serves every open page
        self.application_listeners: list[Callable[[str, AppKey, dict[str, Any] | None], None]] = []
        self._workers: list[threading.Thread] = []
        self._leading = threading.Event()
        self._stopped = threading.Event()
        self._started = threading.Event()
        self.elector: LeaderElector | None = None
        self.sharding: ShardSet | None = None
        if config.shards > 0:  # each shard's Lease replaces the one leader Lease
            self.sharding = ShardSet(
                kube,
                shards=config.shards,
                namespace=config.controller_namespace,
                identity=config.identity,
                lease_duration=config.lease_duration,
                uid_of=self._uid_of,
                on_gained=self._shard_gained,
                registry=self.metrics.registry,
            )
        elif config.leader_elect:
            self.elector = LeaderElector(
                kube,
                namespace=config.controller_namespace,
                name="gitsync-controller",
                identity=config.identity,
                lease_duration=config.lease_duration,
                renew_deadline=config.lease_duration * 2 / 3,
                retry_period=max(config.lease_duration / 7.5, 0.5),
                on_started_leading=self._start_leading,
                on_stopped_leading=self._stop_leading,
            )

    # -- clusters and engines -------------------------------------------------------------------

    def _cluster(self, kube: KubeClient) -> _Cluster:
        with self._clusters_lock:
            cluster = self._clusters.get(id(kube))
            if cluster is None:
                cache = WatchCache(kube, on_event=self._on_event)
                rollouts = RolloutExecutor(kube, providers=self._metric_providers)
                syncer = Syncer(
                    kube,
                    workers=self.config.apply_workers,
                    live=self._live_reader(cache),
                    inventory_version=inventory_version_of(cache),
                    takeover=RolloutSyncHook(kube, executor=rollouts),
                    policy=self.policy,
                    impersonation=self.impersonation,
                    allow_shared_takeover=self.config.allow_shared_resource_takeover,
                )
                engine = Engine(
                    self.sources,
                    syncer,
                    rollouts,
                    renders=self.renders,
                    credentials=self.repo_credentials.for_app,
                    chart_credentials=self.repo_credentials.chart_credential_for,
                    dependency_credentials=self.repo_credentials.dependency_credential_for,
                    charts=self.charts,
                )
                cluster = _Cluster(kube, cache, engine, LiveTree(kube, cache))
                self._clusters[id(kube)] = cluster
            return cluster

    def _live_reader(
        self, cache: WatchCache
    ) -> Callable[[str, str, str, str], dict[str, Any] | None]:
        namespaces = self.config.namespaces

        def read(api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
            if namespaces:
                cache.ensure(api_version, kind, namespace or None)
            else:
                cache.ensure(api_version, kind)
            return cache.get(api_version, kind, name, namespace)

        return read

    def _engine_for(self, app: Application) -> Engine:
        return self._cluster(self.clusters.client(app.destination.name)).engine

    # -- what the web layer asks (gitsync.controller.interface.ControllerView) ------------------

    def application_diff(self, key: AppKey) -> AppState | None:
        """Compare one Application with Git now, through the engine of its destination cluster
        - the compare a reconcile runs, without a write or a sync; None when there is no such
        Application. Raises ``SpecError`` (invalid spec) or another ``GitsyncError``."""
        obj = self.store.get(key)
        if obj is None:
            return None
        app = parse_application(obj)
        return self._engine_for(app).compare(app)

    def application_tree(self, key: AppKey, *, orphans: bool = False) -> dict[str, Any] | None:
        """The app's managed objects with their live children, from the destination cluster's
        watch cache (``gitsync.controller.live_tree``); None when there is no such Application.
        Raises ``ClusterError`` when its destination cluster is not registered."""
        obj = self.store.get(key)
        if obj is None:
            return None
        spec = obj.get("spec")
        spec = spec if isinstance(spec, dict) else {}
        destination = spec.get("destination")
        destination = destination if isinstance(destination, dict) else {}
        cluster = self._cluster(self.clusters.client(str(destination.get("name") or "")))
        status = ApplicationStatus.from_dict(obj.get("status"))
        return cluster.tree.document(
            f"{key[0]}/{key[1]}",
            status.resources or (),
            destination_namespace=str(destination.get("namespace") or ""),
            may_read=lambda resource: self.policy.allows(key[0], resource),
            orphans=orphans,
        )

    def application_manifests(self, key: AppKey, revision: str) -> RenderedRevision | None:
        """What ``revision`` (a history entry's) renders to with the app's current spec, through
        the engine of its destination cluster (renders cached per commit); None when there is
        no such Application. Raises ``SpecError`` or another ``GitsyncError``."""
        obj = self.store.get(key)
        if obj is None:
            return None
        app = parse_application(obj)
        return self._engine_for(app).render_revision(app, revision)

    def cluster_client(self, name: str) -> KubeClient:
        """The client of destination cluster ``name`` ("" and ``in-cluster``: this one).
        Raises ``ClusterError`` when it is not registered or its kubeconfig is refused."""
        return self.clusters.client(name)

    def _git_host_of(self, key: AppKey) -> str | None:
        """The Git host (``name[:port]``) the app's reconciles talk to, for the per-host limit;
        None when the app or its URL is unknown (its reconcile then asks no Git server)."""
        obj = self.store.get(key)
        source = ((obj or {}).get("spec") or {}).get("source") or {}
        url = source.get("repoURL") if isinstance(source, dict) else None
        if not isinstance(url, str) or not url:
            return None
        try:
            parts = urlsplit(normalize_url(url))
            host, port = parts.hostname, parts.port
        except ValueError:
            return None
        if not host:
            return None
        return f"{host}:{port}" if port else host

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.health_checks.start(self.kube)
        starter = getattr(self.store, "start", None)
        if starter is not None:
            starter()
        if self.appsets is not None:
            self.appsets.start()
        self.notifications.start()
        if self.sharding is not None:
            self.sharding.start()
        if self.elector is not None:
            self.elector.start()
        else:
            self._start_leading()  # sharded: workers run, each reconcile checks the app's shard
        self._started.set()

    def stop(self) -> None:
        self._stopped.set()
        if self.sharding is not None:
            self.sharding.stop()  # waits for in-flight reconciles before releasing the shards
        if self.elector is not None:
            self.elector.stop()
        self._stop_leading()
        self.notifications.stop()
        self.events.stop()
        self.queue.close()
        self._handovers.close()
        if self.appsets is not None:
            self.appsets.stop()
        for cluster in list(self._clusters.values()):
            cluster.cache.stop()
        self.health_checks.stop()

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    @property
    def ready(self) -> bool:
        return self._started.is_set() and not self._stopped.is_set()

    def _start_leading(self) -> None:
        if self._leading.is_set() or self._stopped.is_set():
            return
        log.info("started leading", identity=self.config.identity or "(single)")
        self._leading.set()
        self.scheduler.start()
        for i in range(self.config.workers):
            t = threading.Thread(target=self._work, name=f"gitsync-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        # one more, for pushes only: busy workers (a Git server that never answers) never delay
        # a deploy somebody just pushed
        t = threading.Thread(
            target=self._work, args=(Priority.PUSHED,), name="gitsync-push-worker", daemon=True
        )
        t.start()
        self._workers.append(t)
        for key in self.store.app_keys():
            self.queue.add(key, Trigger.STARTUP)
        if self.appsets is not None:
            self.appsets.queue_all(Trigger.STARTUP)

    def _runs_application_sets(self) -> bool:
        """Whether this replica writes ApplicationSets' Applications now: the leader, or with
        ``--shards`` the holder of shard 0 (one writer per set either way)."""
        if not self._leading.is_set():
            return False
        return self.sharding is None or self.sharding.owns(0)

    def _stop_leading(self) -> None:
        if not self._leading.is_set():
            return
        log.info("stopped leading")
        self._leading.clear()
        self.scheduler.stop()

    def _work(self, min_priority: Priority = Priority.NORMAL) -> None:
        while not self._stopped.is_set():
            item = self.queue.get(timeout=0.5, min_priority=min_priority)
            if item is None:
                continue
            key, reasons = item
            try:
                if not self._leading.is_set():
                    continue  # a follower never reconciles (and so never writes)
                with self._claim(key) as mine:
                    if mine:  # sharded: only the holder of the app's shard reconciles it
                        self._reconcile(key, reasons)
            except Exception:  # one app's bug must not kill the worker
                log.exception("reconcile crashed", app=f"{key[0]}/{key[1]}")
                self.queue.add(key, Trigger.RETRY_AFTER_CRASH, delay=30.0)
            finally:
                self.queue.done(key)

    def _reconcile(self, key: AppKey, reasons: set[str]) -> None:
        outcome = self.reconciler.reconcile(key, reasons)
        obj = self.store.get(key)
        if isinstance(self.store, FileApplications):  # no watch events tell of its changes
            self._dependency_changed(key, obj)
        if obj is None:
            self.scheduler.unschedule(key)
            return
        # the reconcile parsed the spec already; an invalid spec is looked at again at 3m
        self.scheduler.schedule(key, outcome.interval or 180.0)
        if outcome.requeue is not None:
            self.queue.add(key, Trigger.REQUEUE, delay=outcome.requeue)

    # -- sharding -------------------------------------------------------------------------------

    def _claim(self, key: AppKey) -> contextlib.AbstractContextManager[bool]:
        if self.sharding is None:
            return contextlib.nullcontext(True)
        return self.sharding.reconciling(key)

    def _uid_of(self, key: AppKey) -> str | None:
        obj = self.store.get(key)
        if obj is None:
            return None
        return str((obj.get("metadata") or {}).get("uid") or f"{key[0]}/{key[1]}")

    def _shard_gained(self, shard: int) -> None:
        assert self.sharding is not None
        for key in self.store.app_keys():
            if self.sharding.shard_of_key(key) == shard:
                self.refresh(key, Trigger.SHARD_ACQUIRED)  # compare afresh: another replica had it

    def _held_elsewhere(self, key: AppKey) -> bool:
        """Another replica reconciles ``key`` and watches it as an Application object: a
        follower under ``--leader-elect``, or a replica without the app's shard. A push that
        lands here is then handed over (``_forward_push``) instead of waiting for that
        replica's next poll. Without leader election and shards everything is ours."""
        if not isinstance(self.store, CrdApplications):
            return False
        if self.sharding is not None:
            shard = self.sharding.shard_of_key(key)
            return shard is not None and not self.sharding.owns(shard)
        return self.elector is not None and not self.elector.is_leader

    def _forward_push(self, keys: list[AppKey], event: PushEvent) -> None:
        """Hand a push for apps other replicas hold to them: a refresh request on each
        Application, which its holder sees through its watch (as with `gitsync refresh`).

        At most one write per app per push window: the writes go through their own queue
        (one thread, started on first use), delayed to the app's next free slot, so a burst of
        deliveries costs the API server one PATCH per app now and one at the end of the window,
        carrying the latest push's nonce."""
        nonce = f"push-{event.after[:12] or time.time_ns()}"
        with self._push_lock:
            if self._handover_thread is None:
                self._handover_thread = threading.Thread(
                    target=self._hand_over, name="gitsync-push-handover", daemon=True
                )
                self._handover_thread.start()
            for key in keys:
                self._handover_nonce[key] = nonce
                self._handovers.add(key, "push", delay=self._handover_writes.delay(key))

    def _hand_over(self) -> None:
        while not self._stopped.is_set():
            item = self._handovers.get(timeout=0.5)
            if item is None:
                continue
            (namespace, name), _ = item
            with self._push_lock:
                nonce = self._handover_nonce.pop((namespace, name), "")
            try:
                if nonce:
                    self.kube.patch(
                        kinds.API_VERSION,
                        kinds.APPLICATION,
                        name,
                        {"metadata": {"annotations": {REFRESH_REQUEST: nonce}}},
                        namespace=namespace,
                    )
            except ApiError as exc:
                log.warning("could not forward a push", app=f"{namespace}/{name}", error=str(exc))
            finally:
                self._handovers.done((namespace, name))

    # -- triggers ------------------------------------------------------------------------------

    def _requeue_all(self) -> None:
        """Declared health checks changed: every app's health is assessed again now."""
        if not self._started.is_set():
            return  # the start queues every app anyway
        for key in self.store.app_keys():
            self.refresh(key, Trigger.LIVE_CHANGE)

    def refresh(self, key: AppKey, reason: str = Trigger.MANUAL) -> None:
        self.reconciler.mark_live_change(key)
        self.queue.add(key, reason)

    def _on_event(self, event_type: str, key: ResourceKey, obj: dict[str, Any] | None) -> None:
        if self.appsets is not None:
            self.appsets.on_event(event_type, key, obj)
        if kinds.is_application(key.group, key.kind):
            self._on_application(event_type, (key.namespace, key.name), obj)
            self._tell_application_listeners(event_type, (key.namespace, key.name), obj)
            # an Application managed by another one (app of apps): its status is the parent's
            # health, so the parent looks again - below, like any other managed object
        app = app_of_tracked(obj)
        if app is not None:
            self.reconciler.mark_live_change(app)
            self.queue.add(app, Trigger.LIVE_CHANGE, delay=0.3)

    def _tell_application_listeners(
        self, event_type: str, key: AppKey, obj: dict[str, Any] | None
    ) -> None:
        for listener in self.application_listeners:
            try:
                listener(event_type, key, obj)
            except Exception:  # a listener's bug must not stop the watch that feeds reconciles
                log.exception("application listener failed", app=f"{key[0]}/{key[1]}")

    def _dependency_changed(self, key: AppKey, obj: dict[str, Any] | None) -> None:
        """Queue the apps whose ``spec.dependsOn`` names ``key`` when what they read of it
        changed: a wait or a cycle of theirs may have ended."""
        for dependent in self.dependents.observe(key, obj):
            self.queue.add(dependent, Trigger.DEPENDENCY)

    def _on_application(self, event_type: str, key: AppKey, obj: dict[str, Any] | None) -> None:
        self._dependency_changed(key, None if event_type == "DELETED" else obj)
        if event_type == "DELETED" or obj is None:
            self._seen.pop(key, None)
            self.scheduler.unschedule(key)
            self.queue.add(key, Trigger.DELETED)
            return
        meta = obj.get("metadata") or {}
        seen = self._seen.setdefault(key, _Seen())
        generation = int(meta.get("generation") or 0)
        annotations = {k: str(v) for k, v in (meta.get("annotations") or {}).items()}
        deleting = bool(meta.get("deletionTimestamp"))
        if (
            generation != seen.generation
            or annotations != seen.annotations
            or deleting != seen.deleting
        ):
            seen.generation, seen.annotations, seen.deleting = generation, annotations, deleting
            self.queue.add(key, Trigger.APPLICATION_CHANGED)

    def on_push(self, event: PushEvent) -> int:
        """Refresh the Applications following the pushed repository and ref; returns how many.

        When the push says which files it changed, the apps they touch are queued first and
        urgent, so in a monorepo the app that changed does not wait behind every other app's
        no-op refresh; the others are refreshed all the same (the paths are only a hint).
        """
        matched = self._apps_following(event)
        first: set[AppKey] = set()
        if event.changed_paths is not None:
            first = touched(
                {key: watched_paths(app.source) for key, app in matched.items()},
                event.changed_paths,
            )
        ordered = sorted(matched, key=lambda key: key not in first)  # stable: touched first
        elsewhere: list[AppKey] = []
        delays: dict[str, float] = {}  # per repository: when its next push-triggered run may be
        for key in ordered:
            if self._held_elsewhere(key):
                elsewhere.append(key)
                continue
            repo = normalize_url(matched[key].source.repo_url)
            if repo not in delays:
                with self._push_lock:
                    delays[repo] = self._repo_pushes.delay(repo)
            self.reconciler.mark_pushed(key)  # before queueing: see head_max_age
            self.queue.add(
                key,
                Trigger.push(event.provider),
                delay=delays[repo],
                urgent=key in first,
                pushed=True,
            )
        if elsewhere:  # writes happen on the hand-over thread, not in the webhook's answer
            self._forward_push(elsewhere, event)
        if self.appsets is not None:  # sets whose git generators read the pushed repository
            self.appsets.on_push(
                push_follower(set(event.repo_urls), lambda rev: _ref_matches(rev, event))
            )
        return len(matched)

    def _apps_following(self, event: PushEvent) -> dict[AppKey, Application]:
        """The Applications whose repository and target revision the push moved."""
        urls = set(event.repo_urls)
        matched: dict[AppKey, Application] = {}
        for key in self.store.app_keys():
            obj = self.store.get(key)
            if obj is None:
                continue
            try:
                app = parse_application(obj)
            except SpecError:
                continue
            # a spec.sources app follows each of its Git sources (a ref source's push too)
            for src in app.all_sources:
                try:
                    src_url = normalize_url(src.repo_url)
                except ValueError:  # urlsplit refuses it (e.g. "http://[::1/x"): no forge pushes
                    continue
                if src_url in urls and _ref_matches(src.target_revision, event):
                    matched[key] = app
                    break
        return matched

    def application_objects(self) -> list[dict[str, Any]]:
        """Every Application with its status, for the read-only API (followers too)."""
        out = []
        for key in self.store.app_keys():
            obj = self.store.get(key)
            if obj is not None:
                out.append(obj)
        return out

    def application_set_objects(self) -> list[dict[str, Any]]:
        """Every ApplicationSet with its status, for the read-only API and the set pages."""
        return [] if self.appsets is None else self.appsets.objects()

    def application_events(self, key: AppKey, query: EventQuery) -> AppEvents | None:
        """The app's Kubernetes Events, newest first, at most ``--events-per-app``, and the
        namespaces still loading (None: no such app); raises ``EventsUnavailableError`` when a
        namespace's Events cannot be listed."""
        found = self.events.events(key, query)
        if found is None:
            return None
        return AppEvents([r.to_dict() for r in found.records], found.loading)


def _cached_object(cache: WatchCache) -> OwnerLookup:
    """An object from the watch cache, or None when its kind or namespace is not watched: the
    Event index walks ownerReferences in memory only, never with a request per Event."""

    def lookup(api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return cache.get(api_version, kind, name, namespace)
        except NotWatchedError:
            return None

    return lookup


def _watch_children(cache: WatchCache, namespace: str) -> None:
    """Watch the Pods and ReplicaSets of ``namespace`` (where an app's Events are read), so an
    Event about a Pod can be walked to the Deployment or Rollout an app manages."""
    kinds = (("apps/v1", "ReplicaSet"), ("v1", "Pod"))
    for api_version, kind in kinds:  # start both lists at once (not one after the other)
        with contextlib.suppress(TimeoutError):
            cache.ensure(api_version, kind, namespace, timeout=0.0)
    for api_version, kind in kinds:
        cache.ensure(api_version, kind, namespace, timeout=10.0)


def inventory_version_of(cache: WatchCache) -> Callable[[str, str], str | None]:
    """The resourceVersion of an inventory ConfigMap in the watch cache (watching ConfigMaps in
    the app's namespace on first use), or None when it cannot say: the inventory is then GET."""

    def version(namespace: str, name: str) -> str | None:
        try:
            cache.ensure("v1", "ConfigMap", namespace, timeout=10.0)  # else a GET answers
            obj = cache.get("v1", "ConfigMap", name, namespace)
        except (ApiError, TimeoutError, NotWatchedError, RuntimeError):  # stopped, unlistable
            return None
        return str((obj.get("metadata") or {}).get("resourceVersion") or "") if obj else None

    return version


def _ref_matches(target: str, event: PushEvent) -> bool:
    if target == "HEAD":
        return event.branch is not None
    if is_semver_range(target):
        return event.tag is not None
    if event.ref in (target, f"refs/heads/{target}", f"refs/tags/{target}"):
        return True
    return bool(event.after) and event.after.startswith(target)


def impersonation_of(config: ControllerConfig) -> Impersonation | None:
    """Whom Applications run as; None (with a warning) when impersonation is switched off."""
    if not config.impersonate:
        log.warning(
            "impersonation is off (--impersonate=false): every Application reads, applies and "
            "prunes with the controller's own rights - only for a cluster whose Application "
            "authors may all be trusted with them"
        )
        return None
    log.info(
        "Applications run as their ServiceAccounts",
        default_service_account=config.default_service_account or None,
    )
    return Impersonation(config.default_service_account)


def load_policy(path: Path | None, *, allow_all: bool = False) -> Policy:
    """The destination policy in ``path``; without one the built-in default (each namespace's
    Applications deploy only into that namespace), or, only when the operator says
    ``allow_all``, no fence at all (warned about). Raises ``PolicyError`` (naming the field or
    flag) or ``OSError``."""
    if path is not None and allow_all:
        raise PolicyError("--policy-allow-all", "give either --policy FILE or --policy-allow-all")
    if allow_all:
        log.warning(
            "--policy-allow-all: Applications may deploy any object to any namespace, including "
            "cluster-scoped objects and bindings to cluster-admin; whoever may create an "
            "Application is cluster-admin"
        )
        return Policy.allow_all()
    if path is None:
        log.info(
            "no --policy file: the built-in destination policy applies (each namespace's "
            "Applications deploy only into that namespace; no cluster-scoped kinds)"
        )
        return Policy()
    policy = Policy.from_yaml(path.read_bytes())
    log.info("destination policy loaded", path=str(path), projects=len(policy.projects))
    return policy


def ensure_crd(kube: KubeClient, crd: dict[str, Any]) -> None:
    """Install or update a CRD and wait until it is Established."""
    kube.apply(crd, field_manager="gitsync")
    name = crd["metadata"]["name"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
        conds = (live.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
            kube.forget_discovery()
            return
        time.sleep(0.2)
    raise ApiError(0, "Timeout", f"CRD {name} not Established after 30s")


__all__ = ["Controller", "ControllerConfig", "ensure_crd", "load_policy"]
