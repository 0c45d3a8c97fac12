"""The ApplicationSet controller: generators -> Applications in the set's namespace.

A pass over one set: parse the spec (an invalid one stalls until it changes), run the
generators (Git through the source cache with the set's namespace's credentials and the
destination policy's ``sourceRepos``; clusters from the registered cluster Secrets), render the
template per parameter set (``gitsync.appset``), then compare with the namespace's Applications
and create, update or delete per ``syncPolicy.applicationsSync`` (``gitsync.appset.plan``). A
generator or template that fails stops the pass before anything is written: nothing is created,
updated or - above all - deleted because a repository was unreachable or a file did not parse.
A generation that made no Application stops there too (``EmptyGeneration``, with one Warning
Event per change, not per pass) unless the set is annotated
``gitsync.dev/allow-empty-generation: "true"``.

Writes: server-side apply with the field manager ``gitsync-applicationset``, only for an
Application that is missing or differs, and the status only when it changed - a pass where
nothing changed writes nothing. Generated Applications carry an owner reference to the set
(``controller: true``; the API server's garbage collector removes them with the set) and the
label ``gitsync.dev/application-set``. The set's own namespace is the only one written to.

Triggers: the set's spec or annotations change, one of its Applications changes (status only;
recreated when deleted), the requeue interval (``requeueAfterSeconds`` of its git generators, 3
minutes by default), a push to a repository a git generator reads, and this replica becoming
leader. Only the leader (with ``--shards``, the holder of shard 0) runs sets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from gitsync import kinds
from gitsync.application import SpecError
from gitsync.appset.generate import (
    SET_LABEL,
    ClusterInfo,
    GenerationLimits,
    SetIdentity,
    generate_applications,
)
from gitsync.appset.plan import Plan, empty_generation, plan, with_hash
from gitsync.appset.rolling import (
    PROMOTE_ANNOTATION,
    AppState,
    decide,
    parse_promotion,
    report,
)
from gitsync.appset.spec import (
    ALLOW_EMPTY_ANNOTATION,
    ApplicationSetSpec,
    GitGenerator,
    MatrixGenerator,
    MergeGenerator,
    RollingSync,
    parse_application_set,
)
from gitsync.appset.status import (
    Reason,
    Resource,
    RollingReport,
    Stage,
    reports_anew,
    set_status,
)
from gitsync.appset.template import TemplateError
from gitsync.controller.apps import EventRecorder, status_patch
from gitsync.controller.clusters import ClusterRegistry
from gitsync.controller.queue import WorkQueue
from gitsync.controller.repo_credentials import RepositoryCredentials
from gitsync.controller.status import now_rfc3339
from gitsync.errors import GitsyncError, TerminalError
from gitsync.kube import ApiError, KubeClient
from gitsync.kube.cache import NotWatchedError, WatchCache
from gitsync.model import AppKey, ResourceKey
from gitsync.policy import Policy
from gitsync.source import GitCredentials, SourceCache, normalize_url
from gitsync.source.revision import is_full_sha
from gitsync.sync.deletion import RESOURCES_FINALIZER, RESOURCES_FINALIZERS

log = structlog.get_logger(__name__)

FIELD_MANAGER = "gitsync-applicationset"
API_VERSION = kinds.API_VERSION
MAX_BACKOFF_SECONDS = 60.0
ROLLING_REQUEUE_SECONDS = 10.0


class SourceRefusedError(TerminalError):
    """A git generator's repository is outside the namespace's ``sourceRepos``."""


@dataclass
class _Remembered:
    """What the last full pass of a set decided, so an Application's status change refreshes
    the set's status without running its generators again."""

    generation: int
    names: list[str]
    messages: dict[str, str]
    stage: Stage
    error: str
    failures: int = 0
    rolling: RollingReport | None = None  # a set with a RollingSync strategy: its last decision
    parameters: dict[str, dict[str, str]] = field(default_factory=dict)  # per app, last known
    allowed_empty: str = ""  # an empty generation the annotation allows: what the status says


@dataclass
class _Inputs:
    """``GeneratorInputs`` for one set: its namespace's credentials and policy."""

    owner: ApplicationSets
    namespace: str
    revisions: dict[str, str] = field(default_factory=dict)

    def _credentials(self, repo_url: str, what: str) -> GitCredentials | None:
        why = self.owner.policy.check_source(self.namespace, repo_url)
        if why:
            raise SourceRefusedError(f"{what}: denied by destination policy: {why}")
        return self.owner.credentials.for_repository(repo_url, self.namespace)

    def checkout(self, repo_url: str, revision: str) -> Path:
        credentials = self._credentials(repo_url, "git generator repoURL")
        found = self.owner.sources.checkout(repo_url, revision, credentials)
        self.revisions[repo_url] = found.revision.sha
        return found.path

    def resolve(self, repo_url: str, revision: str) -> str:
        """The commit ``revision`` names now (one ``ls-remote``): what a rolling sync rolls."""
        credentials = self._credentials(repo_url, "spec.template.spec.source.repoURL")
        return self.owner.sources.resolve(repo_url, revision, credentials)

    def clusters(self) -> list[ClusterInfo]:
        return self.owner.clusters.registered()


class ApplicationSets:
    """Watches ApplicationSets and keeps their Applications; one per controller process."""

    def __init__(
        self,
        kube: KubeClient,
        cache: WatchCache,
        *,
        sources: SourceCache,
        credentials: RepositoryCredentials,
        clusters: ClusterRegistry,
        policy: Policy,
        namespaces: list[str] | None,
        limits: GenerationLimits,
        may_run: Callable[[], bool],
        workers: int = 2,
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.sources = sources
        self.credentials = credentials
        self.clusters = clusters
        self.policy = policy
        self.namespaces = namespaces
        self.limits = limits
        self.may_run = may_run
        self.workers = workers
        self.queue: WorkQueue[AppKey] = WorkQueue()
        self.events = EventRecorder(kube)
        self.enabled = False
        self._lock = threading.Lock()
        self._seen: dict[AppKey, tuple[int, dict[str, str]]] = {}
        self._remembered: dict[AppKey, _Remembered] = {}
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Watch ApplicationSets when the API server serves the kind; without the CRD the
        controller runs Applications alone (logged once)."""
        try:
            if self.namespaces:
                self.cache.ensure_namespaces(API_VERSION, kinds.APPLICATION_SET, self.namespaces)
            else:
                self.cache.ensure(API_VERSION, kinds.APPLICATION_SET)
        except ApiError as exc:
            if exc.status not in (403, 404):
                raise
            log.info("ApplicationSets are not watched", reason=exc.message)
            return
        self.enabled = True
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"gitsync-appset-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self.queue_all("startup")

    def stop(self) -> None:
        self._stopped.set()
        self.queue.close()

    def _sets(self) -> list[dict[str, Any]]:
        if not self.enabled:
            return []
        try:
            return self.cache.list(API_VERSION, kinds.APPLICATION_SET)
        except NotWatchedError:
            return []

    def objects(self) -> list[dict[str, Any]]:
        """The sets as the watch cache holds them, status included (for the web layer)."""
        return self._sets()

    def keys(self) -> list[AppKey]:
        return sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in self._sets())

    def queue_all(self, reason: str) -> None:
        for obj in self._sets():
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            with self._lock:  # seen now: the status this pass writes is not a spec change
                self._seen[key] = _seen_of(obj)
            self.queue.add(key, reason)

    # -- triggers ------------------------------------------------------------------------------

    def on_event(self, event_type: str, key: ResourceKey, obj: dict[str, Any] | None) -> None:
        if not self.enabled:
            return
        if key.group == kinds.GROUP and key.kind == kinds.APPLICATION_SET:
            set_key = (key.namespace, key.name)
            if event_type == "DELETED" or obj is None:
                with self._lock:
                    self._seen.pop(set_key, None)
                    self._remembered.pop(set_key, None)
                return
            seen = _seen_of(obj)
            with self._lock:
                changed = self._seen.get(set_key) != seen
                self._seen[set_key] = seen
            if changed:
                self.queue.add(set_key, "spec-changed")
            return
        if kinds.is_application(key.group, key.kind):
            labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
            owner = labels.get(SET_LABEL)
            if isinstance(owner, str) and owner:
                reason = "application-deleted" if event_type == "DELETED" else "application"
                self.queue.add((key.namespace, owner), reason, delay=1.0)

    def on_push(self, follows: Callable[[str, str], bool]) -> int:
        """Queue the sets with a git generator ``follows(repo_url, revision)`` says the push
        moved; returns how many."""
        count = 0
        for key in self.keys():
            obj = self._get(key)
            try:
                spec = parse_application_set(obj)
            except SpecError:
                continue
            if any(follows(url, revision) for url, revision in _followed(spec)):
                self.queue.add(key, "push")
                count += 1
        return count

    # -- the loop ------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopped.is_set():
            item = self.queue.get(timeout=0.5)
            if item is None:
                continue
            key, reasons = item
            try:
                if self.may_run():
                    self.reconcile(key, reasons)
            except Exception:  # one set's bug must not end the worker
                log.exception("application set pass crashed", appset=f"{key[0]}/{key[1]}")
                self.queue.add(key, "retry-after-crash", delay=30.0)
            finally:
                self.queue.done(key)

    def _get(self, key: AppKey) -> dict[str, Any] | None:
        try:
            return self.cache.get(API_VERSION, kinds.APPLICATION_SET, key[1], key[0])
        except NotWatchedError:
            return None

    def _applications(self, namespace: str) -> list[dict[str, Any]]:
        try:
            return self.cache.list(API_VERSION, kinds.APPLICATION, namespace)
        except NotWatchedError:
            return []

    def reconcile(self, key: AppKey, reasons: set[str]) -> None:
        obj = self._get(key)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return  # the garbage collector removes its Applications through the owner refs
        meta = obj["metadata"]
        generation = int(meta.get("generation") or 0)
        with self._lock:
            last = self._remembered.get(key)
        # a rolling sync decides on its apps' statuses: their change is a full pass for it
        status_only = reasons <= {"application"} and last is not None and last.rolling is None
        if status_only and last is not None and last.generation == generation:
            self._write_status(key, obj, last, self._owned(key, str(meta.get("uid"))))
            return
        self._full_pass(key, obj, last)

    def _owned(self, key: AppKey, uid: str) -> dict[str, dict[str, Any]]:
        return {
            a["metadata"]["name"]: a
            for a in self._applications(key[0])
            if (a["metadata"].get("labels") or {}).get(SET_LABEL) == key[1]
            and any(r.get("uid") == uid for r in a["metadata"].get("ownerReferences") or [])
        }

    def _full_pass(self, key: AppKey, obj: dict[str, Any], last: _Remembered | None) -> None:
        meta = obj["metadata"]
        uid = str(meta.get("uid") or "")
        generation = int(meta.get("generation") or 0)
        owner = SetIdentity(key[0], key[1], uid)
        try:
            spec = parse_application_set(obj)
        except SpecError as exc:  # stalled until the spec changes (a new generation)
            self._failed(
                key,
                obj,
                stage=Stage.SPEC,
                error=str(exc),
                generation=generation,
                spec=None,
                last=last,
            )
            return
        inputs = _Inputs(self, key[0])
        annotations = meta.get("annotations") or {}
        rolling: tuple[dict[str, dict[str, Any]], RollingReport, dict[str, str]] | None = None
        try:
            generated = generate_applications(
                spec,
                owner,
                inputs,
                self.limits,
                resources_finalizers=frozenset(RESOURCES_FINALIZERS),
                default_finalizer=RESOURCES_FINALIZER,
            )
            docs = generated.applications
            empty = empty_generation(
                generated, allow_empty=annotations.get(ALLOW_EMPTY_ANNOTATION) == "true"
            )
            if empty is not None and not empty.allowed:
                self._failed(
                    key,
                    obj,
                    stage=Stage.EMPTY,
                    error=empty.message,
                    generation=generation,
                    spec=spec,
                    last=last,
                )
                return
            if spec.strategy is not None and docs:
                rolling = self._roll(key, obj, spec.strategy, docs, inputs)
                docs = rolling[0]
        except GitsyncError as exc:  # a template or template-made spec error, or a generator's
            template = isinstance(exc, TemplateError | SpecError)
            stage = Stage.APPLICATIONS if template else Stage.PARAMETERS
            self._failed(
                key, obj, stage=stage, error=str(exc), generation=generation, spec=spec, last=last
            )
            return
        desired = {name: with_hash(doc) for name, doc in docs.items()}
        live = {
            a["metadata"]["name"]: a
            for a in self._applications(key[0])
            if a["metadata"]["name"] in desired
            or (a["metadata"].get("labels") or {}).get(SET_LABEL) == key[1]
        }
        decided = plan(
            desired,
            live,
            owner_uid=uid,
            policy=spec.applications_sync,
            allow_empty=annotations.get(ALLOW_EMPTY_ANNOTATION) == "true",
        )
        errors = self._carry_out(key, decided, desired, live)
        waiting = rolling[2] if rolling else {}
        messages = {**waiting, **decided.held, **decided.conflicts, **errors}
        names = sorted({*desired, *waiting, *decided.held, *decided.conflicts})
        remembered = _Remembered(
            generation,
            names,
            messages,
            Stage.DONE,
            "; ".join(errors.values())[:2048],
            rolling=rolling[1] if rolling else None,
            parameters=generated.parameters,
            allowed_empty=empty.message if empty is not None else "",
        )
        if errors:
            remembered.failures = (last.failures if last else 0) + 1
        with self._lock:
            self._remembered[key] = remembered
        (log.info if decided.writes or errors else log.debug)(
            "application set generated",
            appset=f"{key[0]}/{key[1]}",
            applications=len(desired),
            created=len(decided.create),
            updated=len(decided.update),
            deleted=len(decided.delete),
            held=len(decided.held),
            conflicts=len(decided.conflicts),
        )
        # the watch cache may not show this pass's own creations yet: counted from the cache
        # alone, the status said fewer apps than the set made until an Application event came
        # to correct it (a deleted app counts until it is gone, as in every later pass)
        owned = self._owned(key, uid)
        owned.update({n: desired[n] for n in decided.create if n not in errors})
        self._write_status(key, obj, remembered, owned)
        self.queue.add(key, "requeue", delay=self._delay(spec, remembered))

    def _roll(
        self,
        key: AppKey,
        obj: dict[str, Any],
        strategy: RollingSync,
        docs: dict[str, dict[str, Any]],
        inputs: _Inputs,
    ) -> tuple[dict[str, dict[str, Any]], RollingReport, dict[str, str]]:
        """The generated apps with ``spec.source.targetRevision`` pinned as the rolling sync
        decides (``gitsync.appset.rolling``), its report, and the apps not created yet."""
        repo_url, revision = _rolling_source(docs)
        sha = inputs.resolve(repo_url, revision)
        live = {a["metadata"]["name"]: a for a in self._applications(key[0])}
        states = [_app_state(name, doc, live.get(name)) for name, doc in docs.items()]
        meta = obj.get("metadata") or {}
        previous = (obj.get("status") or {}).get("rollingSync") or {}
        proven = str(previous.get("provenRevision") or "")
        approved = parse_promotion((meta.get("annotations") or {}).get(PROMOTE_ANNOTATION))
        decided = decide(strategy, states, sha, proven=proven, approved=approved)
        pinned = {
            name: _pinned(doc, decided.pins[name])
            for name, doc in docs.items()
            if name in decided.pins
        }
        return pinned, report(decided, sha), decided.held

    def _carry_out(
        self,
        key: AppKey,
        decided: Plan,
        desired: dict[str, dict[str, Any]],
        live: dict[str, dict[str, Any]],
    ) -> dict[str, str]:
        """Apply the plan; returns the Applications whose write failed, with the reason."""
        errors: dict[str, str] = {}
        for name in decided.create + decided.update:
            try:
                self.kube.apply(desired[name], field_manager=FIELD_MANAGER, force=True)
            except ApiError as exc:
                errors[name] = f"application {name!r} could not be written: {exc.message}"
        for name in decided.delete:
            try:
                self.kube.delete(
                    API_VERSION,
                    kinds.APPLICATION,
                    name,
                    key[0],
                    precondition_uid=str(live[name]["metadata"].get("uid") or "") or None,
                )
            except ApiError as exc:
                errors[name] = f"application {name!r} could not be deleted: {exc.message}"
        return errors

    def _failed(
        self,
        key: AppKey,
        obj: dict[str, Any],
        *,
        stage: Stage,
        error: str,
        generation: int,
        spec: ApplicationSetSpec | None,
        last: _Remembered | None,
    ) -> None:
        """A pass that stopped before any write: the status says why; the set's Applications
        stay exactly as they are."""
        uid = str(obj["metadata"].get("uid") or "")
        owned = self._owned(key, uid)
        failures = (last.failures if last else 0) + 1
        remembered = _Remembered(
            generation,
            sorted(owned),
            {},
            stage,
            error,
            failures,
            parameters=last.parameters if last else {},  # a failed pass keeps what was known
        )
        with self._lock:
            self._remembered[key] = remembered
        log.warning(
            "application set not generated", appset=f"{key[0]}/{key[1]}", stage=stage, error=error
        )
        if stage is Stage.EMPTY and reports_anew(
            stage,
            error,
            last=(last.stage, last.error) if last else None,
            previous=obj.get("status") or {},
        ):
            involved = {**obj, "apiVersion": API_VERSION, "kind": kinds.APPLICATION_SET}
            self.events.record(involved, Reason.EMPTY_GENERATION.value, error, warning=True)
        self._write_status(key, obj, remembered, owned)
        if spec is not None:
            self.queue.add(key, "requeue", delay=self._delay(spec, remembered))

    def _delay(self, spec: ApplicationSetSpec, remembered: _Remembered) -> float:
        if remembered.rolling is not None and remembered.rolling.reason is not (
            Reason.ROLLING_COMPLETE
        ):  # the apps' events drive a rollout; this is the net under them
            return min(spec.requeue_after, ROLLING_REQUEUE_SECONDS)
        if remembered.failures:
            backoff = min(2.0**remembered.failures, MAX_BACKOFF_SECONDS)
            return min(backoff, spec.requeue_after)
        return spec.requeue_after

    def _write_status(
        self,
        key: AppKey,
        obj: dict[str, Any],
        remembered: _Remembered,
        owned: dict[str, dict[str, Any]],
    ) -> None:
        apps = {a["metadata"]["name"]: a for a in self._applications(key[0])}
        resources = []
        for name in remembered.names:
            status = (apps.get(name) or {}).get("status") or {}
            resources.append(
                Resource(
                    name=name,
                    namespace=key[0],
                    sync=str((status.get("sync") or {}).get("status") or ""),
                    health=str((status.get("health") or {}).get("status") or ""),
                    message=remembered.messages.get(name, ""),
                    parameters=remembered.parameters.get(name, {}),
                )
            )
        previous = obj.get("status") or {}
        new = set_status(
            stage=remembered.stage,
            error=remembered.error,
            resources=resources,
            previous=previous,
            now=now_rfc3339(),
            observed_generation=remembered.generation,
            application_count=len(owned),
            rolling=remembered.rolling,
            allowed_empty=remembered.allowed_empty,
        )
        if new == previous:
            return
        try:
            self.kube.patch(
                API_VERSION,
                kinds.APPLICATION_SET,
                key[1],
                {"status": status_patch(new, previous)},
                namespace=key[0],
                subresource="status",
                field_manager="gitsync",
            )
        except ApiError as exc:  # the next pass writes it again (a 404: the set is gone)
            if exc.status != 404:
                log.warning(
                    "application set status not written",
                    appset=f"{key[0]}/{key[1]}",
                    error=str(exc),
                )


def _seen_of(obj: dict[str, Any]) -> tuple[int, dict[str, str]]:
    """What makes a set worth a new pass when it changes: its generation and annotations."""
    meta = obj.get("metadata") or {}
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    return int(meta.get("generation") or 0), annotations


def _followed(spec: ApplicationSetSpec) -> list[tuple[str, str]]:
    """The (repoURL, revision) pairs a push to which regenerates the set: its git generators',
    and with a rolling sync the template's source when it is written out (not templated)."""
    out = [(g.repo_url, g.revision) for g in _git_generators(spec)]
    source = (spec.template.get("spec") or {}).get("source")
    if spec.strategy is not None and isinstance(source, dict):
        url, revision = source.get("repoURL"), source.get("targetRevision") or "HEAD"
        if isinstance(url, str) and isinstance(revision, str) and "{{" not in url + revision:
            out.append((url, revision))
    return out


def _rolling_source(docs: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The one Git (repoURL, targetRevision) every generated app takes: a rolling sync rolls
    one commit, so apps of other sources or revisions are a spec error."""
    found: dict[tuple[str, str], str] = {}
    for name, doc in sorted(docs.items()):
        spec = doc.get("spec") or {}
        source = spec.get("source")
        if "sources" in spec or not isinstance(source, dict) or "chart" in source:
            raise SpecError(
                "spec.template.spec.source",
                f"RollingSync pins a Git spec.source; application {name!r} has none",
            )
        pair = (str(source.get("repoURL") or ""), str(source.get("targetRevision") or "HEAD"))
        found.setdefault(pair, name)
    if len(found) > 1:
        (a, first), (b, second) = sorted(found.items())[:2]
        raise SpecError(
            "spec.template.spec.source",
            f"RollingSync rolls one repoURL and targetRevision; {first!r} takes {a[0]}@{a[1]}, "
            f"{second!r} takes {b[0]}@{b[1]}",
        )
    return next(iter(found))


def _app_state(name: str, doc: dict[str, Any], live: dict[str, Any] | None) -> AppState:
    """What the rollout reads of one app. Its pin: the live ``targetRevision`` when the set
    pinned it to a commit; an app made before the strategy (a branch there) counts as pinned
    to the commit it last synced, so enabling the strategy does not move it."""
    labels = {str(k): str(v) for k, v in ((doc.get("metadata") or {}).get("labels") or {}).items()}
    if live is None:
        return AppState(name, labels, "")
    status = live.get("status") or {}
    sync = status.get("sync") or {}
    revision = str(sync.get("revision") or "")
    target = str(((live.get("spec") or {}).get("source") or {}).get("targetRevision") or "")
    pinned = target if is_full_sha(target) else revision if is_full_sha(revision) else target
    health = str((status.get("health") or {}).get("status") or "")
    return AppState(name, labels, pinned, revision, str(sync.get("status") or ""), health)


def _pinned(doc: dict[str, Any], sha: str) -> dict[str, Any]:
    spec = doc["spec"]
    return {**doc, "spec": {**spec, "source": {**spec["source"], "targetRevision": sha}}}


def _git_generators(spec: ApplicationSetSpec) -> list[GitGenerator]:
    out: list[GitGenerator] = []
    stack = list(spec.generators)
    while stack:
        g = stack.pop()
        if isinstance(g, GitGenerator):
            out.append(g)
        elif isinstance(g, MatrixGenerator | MergeGenerator):
            stack.extend(g.generators)
    return out


def push_follower(urls: set[str], matches: Callable[[str], bool]) -> Callable[[str, str], bool]:
    """``follows(repo_url, revision)`` for ``ApplicationSets.on_push``: the repository is one
    the push names and ``matches(revision)``."""

    def follows(repo_url: str, revision: str) -> bool:
        try:
            return normalize_url(repo_url) in urls and matches(revision)
        except ValueError:
            return False

    return follows
