"""Resource hooks (Argo CD's phases): which rendered objects are hooks, and the runner that
creates them, waits for them and deletes them per their policy.

A hook is not a managed object: it is never compared (so never OutOfSync), never in the
inventory, never pruned as extraneous. It is *created* (POST, so ``generateName`` works) on every
sync operation, in its phase, wave by wave; each wave waits until its hooks have finished - a Job
Complete, a Pod Succeeded, any other kind Healthy (``gitsync.health``) - and a wave with a failed
hook stops the phase.

Every hook object carries two labels: ``gitsync.dev/hook-id`` (a digest of the app and the hook's
identity in Git: kind, namespace, name or generateName prefix) and ``gitsync.dev/hook-operation``
(the sync operation's id). They are what makes the runner safe and resumable:

- a restarted controller resuming the same operation finds the hook it already created (same id,
  same operation) and waits on it instead of creating it twice;
- ``BeforeHookCreation`` deletes only earlier objects carrying this app's hook id - never an
  object someone else made, even with the same name (then the create fails with the API
  server's "already exists");
- the delete policy acts on the server's name and UID recorded at creation (a precondition), so a
  newer object of the same name is never deleted by mistake.

Every hook is checked against the destination policy like a main resource, and created with the
app's client (its ServiceAccount under impersonation).

``plan_hooks`` and ``hook_verdict`` are pure; ``HookRunner.run`` is the side effect. App deletion
runs ``PreDelete``/``PostDelete`` hooks through ``Syncer.run_hooks``.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from gitsync.health import assess
from gitsync.kube import ApiError, KubeClient
from gitsync.model import HealthStatus, ResourceKey
from gitsync.render import RenderedManifest, copy_object
from gitsync.render.hooks import DeletePolicy, HookPhase, HookSpec, hook_spec

log = structlog.get_logger(__name__)

HOOK_ID_LABEL = "gitsync.dev/hook-id"
OPERATION_LABEL = "gitsync.dev/hook-operation"
PHASE_ANNOTATION = "gitsync.dev/hook-phase"
MESSAGE_LIMIT = 512


class HookOutcome(enum.StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    RUNNING = "Running"


@dataclass(frozen=True)
class Hook:
    """One hook as Git declares it, prepared (namespace resolved) for the app."""

    key: ResourceKey
    """Its identity in Git: ``name`` is the generateName prefix when it has no name."""
    obj: dict[str, Any]
    spec: HookSpec
    generated: bool
    source: str = ""
    denied: str = ""
    """Why the destination policy refuses it ("" = allowed): it is then Failed, never created."""


@dataclass(frozen=True)
class HookResult:
    """What one hook did in one phase. ``key.name`` is the server's name once created."""

    key: ResourceKey
    phase: HookPhase
    outcome: HookOutcome
    message: str = ""
    duration: float = 0.0
    wave: int = 0


def split_hooks(
    manifests: Iterable[RenderedManifest],
) -> tuple[list[RenderedManifest], list[tuple[RenderedManifest, HookSpec]]]:
    """The main resources and the hooks (with their declaration) of a render. The render has
    already refused unknown phases, so a declaration that fails here is the render's bug."""
    main: list[RenderedManifest] = []
    hooks: list[tuple[RenderedManifest, HookSpec]] = []
    for m in manifests:
        spec = hook_spec(m.obj)
        if spec is None:
            main.append(m)
        else:
            hooks.append((m, spec))
    return main, hooks


def plan_hooks(hooks: Iterable[Hook], phase: HookPhase) -> list[tuple[int, list[Hook]]]:
    """The hooks of ``phase``, grouped by wave, lowest wave first, in a stable order."""
    waves: dict[int, list[Hook]] = {}
    for hook in hooks:
        if hook.spec.runs_in(phase):
            waves.setdefault(hook.spec.wave, []).append(hook)
    return [(n, sorted(waves[n], key=lambda h: h.key)) for n in sorted(waves)]


def hook_id(app: str, key: ResourceKey) -> str:
    """The label value naming this app's hook ``key`` (a digest: label values are short)."""
    text = f"{app}|{key.group}|{key.kind}|{key.namespace}|{key.name}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def hook_verdict(live: dict[str, Any] | None) -> tuple[HookOutcome, str]:
    """A hook object's outcome from its live state."""
    if live is None:
        return HookOutcome.FAILED, "the hook object disappeared"
    health = assess(live)
    if health.status == HealthStatus.HEALTHY:
        return HookOutcome.SUCCEEDED, health.message
    if health.status == HealthStatus.DEGRADED:
        return HookOutcome.FAILED, health.message
    return HookOutcome.RUNNING, health.message


def should_delete(policies: frozenset[DeletePolicy], outcome: HookOutcome) -> bool:
    """Whether a finished hook is deleted now (``BeforeHookCreation`` acts at the next run)."""
    return (outcome == HookOutcome.SUCCEEDED and DeletePolicy.HOOK_SUCCEEDED in policies) or (
        outcome == HookOutcome.FAILED and DeletePolicy.HOOK_FAILED in policies
    )


def phase_failed(results: Sequence[HookResult]) -> HookResult | None:
    return next((r for r in results if r.outcome != HookOutcome.SUCCEEDED), None)


@dataclass
class _Started:
    hook: Hook
    name: str
    uid: str
    started: float
    result: HookResult | None = None


@dataclass
class HookRunner:
    """Runs one app's hooks of one operation against the cluster (the app's client)."""

    kube: KubeClient
    app: str
    operation: str
    timeout: float = 300.0
    poll_interval: float = 0.5
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    results: list[HookResult] = field(default_factory=list)

    def run(self, hooks: Sequence[Hook], phase: HookPhase) -> list[HookResult]:
        """Run the hooks of ``phase`` wave by wave; stop after a wave with a failed hook.
        Returns this phase's results (also appended to ``results``)."""
        out: list[HookResult] = []
        for wave, members in plan_hooks(hooks, phase):
            started = [self._start(hook, phase, wave) for hook in members]
            out.extend(self._wait(started, phase, wave))
            if phase_failed(out) is not None:
                break
        self.results.extend(out)
        return out

    def run_wave(self, hooks: Sequence[Hook], phase: HookPhase, wave: int) -> list[HookResult]:
        """Only the hooks of ``phase`` in ``wave`` (Sync hooks run next to the main wave)."""
        return self.run([h for h in hooks if h.spec.wave == wave], phase)

    # -- steps -------------------------------------------------------------------------------

    def _api_version(self, hook: Hook) -> str:
        return str(hook.obj["apiVersion"])

    def _ours(self, hook: Hook) -> list[dict[str, Any]]:
        """This app's live objects of ``hook`` (any operation), by its hook-id label."""
        listed = self.kube.list(
            self._api_version(hook),
            hook.key.kind,
            hook.key.namespace,
            label_selector=f"{HOOK_ID_LABEL}={hook_id(self.app, hook.key)}",
        )
        return [i for i in listed.get("items") or [] if isinstance(i, dict)]

    def _delete(self, hook: Hook, name: str, uid: str, *, wait: bool) -> None:
        self.kube.delete(
            self._api_version(hook),
            hook.key.kind,
            name,
            hook.key.namespace,
            propagation="Foreground" if wait else "Background",
            precondition_uid=uid or None,
        )
        deadline = self.clock() + self.timeout
        while wait and self.clock() < deadline:
            live = self.kube.get(self._api_version(hook), hook.key.kind, name, hook.key.namespace)
            if live is None or (live.get("metadata") or {}).get("uid") != uid:
                return
            self.sleep(self.poll_interval)
        if wait:
            raise TimeoutError(f"{hook.key.kind} {name} was not deleted within {self.timeout:.0f}s")

    def _body(self, hook: Hook, phase: HookPhase) -> dict[str, Any]:
        obj: dict[str, Any] = copy_object(hook.obj)
        meta = obj.setdefault("metadata", {})
        labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
        meta["labels"] = {
            **labels,
            HOOK_ID_LABEL: hook_id(self.app, hook.key),
            OPERATION_LABEL: self.operation,
        }
        annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
        meta["annotations"] = {**annotations, PHASE_ANNOTATION: str(phase)}
        for server_owned in ("resourceVersion", "uid", "creationTimestamp"):
            meta.pop(server_owned, None)
        return obj

    def _start(self, hook: Hook, phase: HookPhase, wave: int) -> _Started:
        now = self.clock()
        failed = _Started(hook, hook.key.name, "", now)
        if hook.denied:
            failed.result = HookResult(hook.key, phase, HookOutcome.FAILED, hook.denied, 0.0, wave)
            return failed
        try:
            earlier = self._ours(hook)
            mine = [
                o
                for o in earlier
                if (o["metadata"].get("labels") or {}).get(OPERATION_LABEL) == self.operation
                and (o["metadata"].get("annotations") or {}).get(PHASE_ANNOTATION) == str(phase)
            ]
            if mine:  # a resumed operation: this hook was created before the restart
                meta = mine[0]["metadata"]
                log.info("hook resumed", hook=str(hook.key), name=meta["name"], phase=str(phase))
                return _Started(hook, str(meta["name"]), str(meta.get("uid", "")), now)
            if DeletePolicy.BEFORE_HOOK_CREATION in hook.spec.delete_policies:
                for old in earlier:
                    meta = old["metadata"]
                    # a fixed name must be free before the create; generated ones need no wait
                    self._delete(
                        hook, str(meta["name"]), str(meta.get("uid", "")), wait=not hook.generated
                    )
            created = self.kube.create(self._body(hook, phase), namespace=hook.key.namespace)
        except (ApiError, TimeoutError) as exc:
            message = getattr(exc, "message", "") or str(exc)
            failed.result = HookResult(
                hook.key, phase, HookOutcome.FAILED, message[:MESSAGE_LIMIT], 0.0, wave
            )
            return failed
        meta = created.get("metadata") or {}
        log.info("hook created", hook=str(hook.key), name=meta.get("name"), phase=str(phase))
        return _Started(hook, str(meta.get("name", "")), str(meta.get("uid", "")), now)

    def _wait(self, started: Sequence[_Started], phase: HookPhase, wave: int) -> list[HookResult]:
        deadline = self.clock() + self.timeout
        pending = [s for s in started if s.result is None]
        while pending:
            for s in list(pending):
                try:
                    live = self.kube.get(
                        self._api_version(s.hook), s.hook.key.kind, s.name, s.hook.key.namespace
                    )
                except ApiError as exc:
                    outcome, message = HookOutcome.FAILED, exc.message or str(exc)
                    if exc.transient:  # look again, until the deadline
                        outcome = HookOutcome.RUNNING
                else:
                    outcome, message = hook_verdict(live)
                if outcome == HookOutcome.RUNNING and self.clock() < deadline:
                    continue
                if outcome == HookOutcome.RUNNING:
                    outcome = HookOutcome.FAILED
                    message = f"did not finish within {self.timeout:.0f}s: {message}"
                s.result = self._finish(s, phase, wave, outcome, message)
                pending.remove(s)
            if pending:
                self.sleep(self.poll_interval)
        return [s.result for s in started if s.result is not None]

    def _finish(
        self, s: _Started, phase: HookPhase, wave: int, outcome: HookOutcome, message: str
    ) -> HookResult:
        if should_delete(s.hook.spec.delete_policies, outcome):
            try:
                self._delete(s.hook, s.name, s.uid, wait=False)
            except ApiError as exc:
                message = f"{message}; delete failed: {exc.message or exc}"
        key = ResourceKey(s.hook.key.group, s.hook.key.kind, s.hook.key.namespace, s.name)
        return HookResult(
            key, phase, outcome, message[:MESSAGE_LIMIT], round(self.clock() - s.started, 3), wave
        )
