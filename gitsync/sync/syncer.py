"""Compare and sync one app's rendered manifests with the cluster - the only writer in the engine.

Shape (Flux's kustomize-controller stages, Argo CD's per-resource results):

1. **prepare** every manifest (namespace, tracking annotation; ``tracking.prepare``);
2. **compare**: read the live object, and for objects that exist ask the API server for the
   server-side-apply *dry-run* result, then diff that against live - so server defaults never show
   up as differences. Objects whose comparison is Synced are never written. Live objects come
   from the controller's watch cache; without one (the CLI), a kind the app has many of in one
   namespace is read with one paged LIST instead of a GET per object;
3. **apply** what differs, wave by wave (``ordering``), stage by stage, in parallel within a stage;
   CRDs are waited on until Established, and each wave must be healthy before the next starts;
4. **prune** what the inventory holds but Git no longer renders - only objects this app owns,
   never when the render was empty unless ``allowEmpty``, never ones with the sync option
   ``Prune=false`` (``gitsync.sync_options``), after all waves with ``PruneLast``;
5. **record** the new inventory (written only if it changed). Objects the sync is about to
   create are added to it before the first apply, so a crash mid-sync never leaves an object
   that a later prune cannot find.

Sync options (``gitsync.sync_options``; the object's annotation over the app's list) decide how
a changed object is written: server-side apply, or with ``Replace`` a PUT; a change the API
server refuses as immutable is deleted and re-created with ``Replace``/``Force``, else SyncFailed
with the server's message. An object whose tracking annotation names another Application is
*shared*: reported (``Comparison.shared``), applied only when the operator allows takeover, and
with ``FailOnSharedResource`` the sync stops before its first write. So is one Argo CD tracks
for an app of another name (``tracking.argo_claim``); one Argo CD deployed for an app of this
name is adopted in place by the server-side apply (no delete, same UID).

Every prepared object is checked against the destination ``policy`` (``gitsync.policy``; the
built-in default unless the caller gives one) before it is compared: a refused object is
SyncFailed ("denied by destination policy: ..."), and is never read, dry-run applied, applied or
pruned (a live object the policy refuses is PruneSkipped).

With ``impersonation`` (``gitsync.sync.identity``), everything done for the app - reads, dry
runs, applies, prunes, health reads - runs as the app's ServiceAccount; the inventory stays the
controller's. What RBAC refuses (a 403) is the object's SyncFailed, with the API server's message;
a prune it refuses is PruneSkipped and the object stays in the inventory.

One failing object does not stop the others in its wave; each gets a ``ResourceResult``, and the
sync as a whole is Failed. 409 conflicts are retried; 429, 5xx and connection errors are retried
with exponential backoff.

``Syncer.sync`` runs these stages as named steps; what decides between branches is a module
function over the sync's own data (``refuse_empty_render``, ``plan_prune``, ``apply_verdict``,
``prune_verdict``, ``after_wave``, ``inventory_to_keep``, ``judge_wave_health``), and the waits
take an injected clock and sleep, so ``tests/unit/test_sync_decisions.py`` covers them without a
cluster.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson
import structlog

from gitsync import kinds, sync_options
from gitsync.application import Application
from gitsync.diff import IgnoreRule, ResourceDiff, diff_resource
from gitsync.diff.pointer import value_at, with_value, without
from gitsync.errors import NextStep, TerminalError, next_step
from gitsync.health import Health, assess
from gitsync.kube import ApiError, KubeClient
from gitsync.model import HealthStatus, ResourceKey, ResultCode, SyncStatus
from gitsync.policy import Policy
from gitsync.render import RenderedManifest, copy_object
from gitsync.render.hooks import HookPhase, HookSpec
from gitsync.sync import ordering, tracking
from gitsync.sync.hooks import Hook, HookResult, HookRunner, phase_failed, split_hooks
from gitsync.sync.identity import Impersonation
from gitsync.sync.inventory import Inventory, InventoryEntry, InventoryMemo, VersionReader

log = structlog.get_logger(__name__)
T = TypeVar("T")
A = TypeVar("A")

FIELD_MANAGER = "gitsync"
LiveReader = Callable[[str, str, str, str], "dict[str, Any] | None"]
"""``(api_version, kind, name, namespace) -> live object or None``: a GET, or a watch cache."""
LIST_AT_LEAST = 16  # objects of one kind in one namespace: read them with a LIST, not GETs
LIST_OVERHEAD = 4  # ... unless the LIST holds more than this many times the app's own
LIST_PAGE = 500
POLICY_DENIED = "denied by destination policy"
TAKEOVER_FLAG = "--allow-shared-resource-takeover"
IMMUTABLE_HINT = (
    " (an immutable field: the sync option Replace=true or Force=true deletes and re-creates "
    "the object)"
)


class EmptyRenderError(TerminalError):
    """The render produced no objects while the inventory is not empty, and allowEmpty is off."""


@dataclass(frozen=True)
class ResourceResult:
    key: ResourceKey
    code: ResultCode
    message: str = ""
    wave: int = 0


class TakeoverPlanLike(Protocol):
    @property
    def replacements(self) -> dict[ResourceKey, dict[str, Any]]: ...

    @property
    def work(self) -> tuple[Any, ...]: ...


class TemplateTakeover(Protocol):
    """Hands pod-template changes of Rollout-governed Deployments to the rollout layer (which
    sits above sync, so it is injected): ``plan`` says what to compare and apply instead of the
    rendered Deployment, ``start`` begins the rollouts once the wave is applied. Both get the
    app's client (``Syncer.client_for``): what a rollout reads and writes is the app's too."""

    def plan(
        self,
        desired: Mapping[ResourceKey, Mapping[str, Any]],
        live: Mapping[ResourceKey, Mapping[str, Any] | None],
        *,
        kube: KubeClient,
    ) -> TakeoverPlanLike: ...

    def start(
        self, work: Sequence[Any], *, revision: str, dry_run: bool = False, kube: KubeClient
    ) -> list[ResourceResult]: ...


@dataclass(frozen=True)
class _Memo:
    """The last comparison of one object: valid while Git's object and the live
    resourceVersion are both unchanged, which lets a no-change refresh skip the dry run."""

    fingerprint: str
    live_version: str
    diff: ResourceDiff


def _fingerprint(obj: dict[str, Any], ignore: Sequence[IgnoreRule]) -> str:
    # orjson: several times cheaper than json.dumps, and every no-change refresh fingerprints
    # every object; the stdlib covers what orjson refuses (e.g. an int too big for 64 bits)
    value = [obj, [repr(r) for r in ignore]]
    try:
        text = orjson.dumps(
            value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
        )
    except TypeError:  # orjson.JSONEncodeError
        text = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(text).hexdigest()


@dataclass
class Item:
    """One desired object on its way through compare and apply."""

    key: ResourceKey
    obj: dict[str, Any]
    wave: int
    source: str = ""
    live: dict[str, Any] | None = None
    diff: ResourceDiff | None = None
    error: str = ""
    options: sync_options.SyncOptions = field(default_factory=sync_options.SyncOptions)
    """The sync options its annotations declare (the app's hold where it sets none)."""
    shared_with: str = ""
    """Another Application whose tracking annotation the live object carries: shared."""


@dataclass
class Comparison:
    """What the cluster looks like next to what Git says."""

    items: list[Item]
    extraneous: dict[ResourceKey, InventoryEntry]
    inventory: dict[ResourceKey, InventoryEntry]
    rollout_work: tuple[Any, ...] = ()
    """Pod-template changes held for a rollout (``TemplateTakeover``), started after the apply."""
    hooks: tuple[Hook, ...] = ()
    """The render's hooks (``gitsync.sync.hooks``): run by a sync, never compared or pruned."""
    ignored_extraneous: frozenset[ResourceKey] = frozenset()
    """Extraneous objects whose live annotation says ``IgnoreExtraneous``: shown, still pruned
    by a sync that prunes, but they do not make the app OutOfSync (Argo CD's meaning)."""

    @property
    def diffs(self) -> list[ResourceDiff]:
        out = [i.diff for i in self.items if i.diff is not None]
        out += [
            ResourceDiff(key, SyncStatus.EXTRANEOUS, changed_paths=())
            for key in sorted(self.extraneous)
        ]
        return sorted(out, key=lambda d: d.key)

    @property
    def in_sync(self) -> bool:
        return not (self.extraneous.keys() - self.ignored_extraneous) and all(
            i.diff is not None and i.diff.status == SyncStatus.SYNCED and not i.error
            for i in self.items
        )

    @property
    def errors(self) -> list[tuple[ResourceKey, str]]:
        return [(i.key, i.error) for i in self.items if i.error]

    @property
    def shared(self) -> dict[ResourceKey, str]:
        """Rendered objects another Application tracks: key -> that app (``ns/name``)."""
        return {i.key: i.shared_with for i in self.items if i.shared_with}


class SyncOutcome(enum.StrEnum):
    """How a sync ended, as the operation's phase says it (Argo CD's spelling)."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass
class SyncResult:
    revision: str
    results: list[ResourceResult] = field(default_factory=list)
    dry_run: bool = False
    aborted: bool = False
    """The sync stopped before the end (a wave failed or never became healthy, a stage failed):
    ``message`` says why. A per-object failure is a ``SyncFailed`` result instead."""
    message: str = ""
    hooks: list[HookResult] = field(default_factory=list)
    """Each hook run by this operation, in the order they finished."""

    def abort(self, message: str) -> None:
        self.aborted, self.message = True, message

    @property
    def outcome(self) -> SyncOutcome:
        failed = (
            self.aborted
            or any(r.code == ResultCode.SYNC_FAILED for r in self.results)
            or phase_failed(self.hooks) is not None
        )
        return SyncOutcome.FAILED if failed else SyncOutcome.SUCCEEDED

    @property
    def succeeded(self) -> bool:
        return self.outcome == SyncOutcome.SUCCEEDED

    @property
    def phase(self) -> SyncOutcome:
        return self.outcome


def with_retries(
    call: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Retry 409 a few times, and 429/5xx/unreachable with exponential backoff - waiting at
    least as long as a ``Retry-After`` asks (up to ``max_delay``). ``sleep``: ``time.sleep``
    unless a test gives its clock's."""
    sleep = sleep or time.sleep
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ApiError as exc:
            if next_step(exc) not in (NextStep.WAIT, NextStep.BACKOFF) or attempt == attempts:
                raise
            sleep(max(delay, min(exc.retry_after or 0.0, max_delay)))
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")  # pragma: no cover


# -- the sync's decisions, pure: what ``Syncer.sync`` does next, from data -------------------


def refuse_empty_render(app: Application, comparison: Comparison, revision: str) -> None:
    """Raise ``EmptyRenderError`` when the render is empty but the app manages objects: pruning
    everything because Git "looked empty" needs ``allowEmpty``."""
    if comparison.items or not comparison.inventory or app.sync_policy.allow_empty:
        return
    raise EmptyRenderError(
        f"the render of revision {revision[:12]} produced no objects but the app manages "
        f"{len(comparison.inventory)}; refusing to prune everything (set "
        "syncPolicy.automated.allowEmpty to allow it)"
    )


@dataclass(frozen=True)
class PrunePlan:
    """Which inventory entries the sync tries to prune, and when."""

    candidates: dict[ResourceKey, InventoryEntry]
    """The app's objects Git no longer renders; empty when pruning is off."""
    last: tuple[InventoryEntry, ...]
    """``PruneLast`` (the app's, or the live object's own): after every wave has been applied
    (and only if none failed)."""
    by_wave: dict[int, list[InventoryEntry]]
    """The others: in the wave the live object declares, next to that wave's applies."""


def plan_prune(
    extraneous: Mapping[ResourceKey, InventoryEntry],
    *,
    prune: bool,
    last: bool,
    wave_of: Callable[[InventoryEntry], int | None],
) -> PrunePlan:
    """``wave_of`` (a read of the live object: its wave, or None for its own ``PruneLast``) is
    asked only when the app does not prune last."""
    candidates = dict(extraneous) if prune else {}
    by_wave: dict[int, list[InventoryEntry]] = {}
    at_end: list[InventoryEntry] = []
    for entry in candidates.values():
        wave = None if last else wave_of(entry)
        if wave is None:
            at_end.append(entry)
        else:
            by_wave.setdefault(wave, []).append(entry)
    return PrunePlan(candidates, tuple(at_end), by_wave)


class WaveVerdict(enum.StrEnum):
    """What the sync does once a wave's applies and prunes are done."""

    NEXT = "next"  # go on: the last wave, a dry run, or a wave that only pruned
    WAIT_HEALTHY = "wait-healthy"  # the next wave starts once this one is healthy
    ABORT = "abort"  # something failed: later waves are not applied


def after_wave(result: SyncResult, *, applied: bool, is_last: bool, dry_run: bool) -> WaveVerdict:
    """``applied``: the wave had objects to apply (not only prunes)."""
    if is_last:
        return WaveVerdict.NEXT
    if any(r.code == ResultCode.SYNC_FAILED for r in result.results):
        return WaveVerdict.ABORT
    if applied and not dry_run:
        return WaveVerdict.WAIT_HEALTHY
    return WaveVerdict.NEXT


def apply_verdict(item: Item, *, allow_takeover: bool = False) -> ResourceResult | None:
    """The result of an object that is not applied (it could not be compared, another app
    tracks it and takeover is off, or it is already Synced); None: apply it."""
    if item.error and (item.diff is None or item.diff.status == SyncStatus.UNKNOWN):
        return ResourceResult(item.key, ResultCode.SYNC_FAILED, item.error, item.wave)
    if item.shared_with and not allow_takeover:
        return ResourceResult(
            item.key,
            ResultCode.SYNC_FAILED,
            f"shared resource: Application {item.shared_with} tracks it; not taken over "
            f"(the operator allows takeover with gitsync serve {TAKEOVER_FLAG})",
            item.wave,
        )
    if item.shared_with:
        return None  # taken over: written even when equal, so the tracking annotation changes
    if item.diff is not None and item.diff.status == SyncStatus.SYNCED:
        return ResourceResult(item.key, ResultCode.SYNCED, "unchanged", item.wave)
    return None


def show_adoption(item: Item) -> None:
    """A live object nobody's gitsync tracking names (Argo CD or kubectl made it) whose content
    already equals Git's still needs one write: the server-side apply that gives gitsync its
    fields and tracking annotation - without it the object could never be pruned, and an app
    that looked Synced would never be synced to adopt it. So it is OutOfSync on that annotation
    (the diff hides gitsync's bookkeeping otherwise)."""
    diff = item.diff
    if item.live is None or item.error or diff is None or diff.status != SyncStatus.SYNCED:
        return
    if tracking.tracked_by(item.live):
        return
    value = ((item.obj.get("metadata") or {}).get("annotations") or {}).get(
        tracking.TRACKING_ANNOTATION
    )
    path = "/metadata/annotations/" + tracking.TRACKING_ANNOTATION.replace("/", "~1")
    item.diff = ResourceDiff(
        item.key,
        SyncStatus.OUT_OF_SYNC,
        patch=[{"op": "add", "path": path, "value": value}],
        unified=f"+    {tracking.TRACKING_ANNOTATION}: {value}\n",
        changed_paths=(path,),
    )


def refuse_shared(app: Application, comparison: Comparison, result: SyncResult) -> bool:
    """``FailOnSharedResource``: when another app tracks a rendered object, fail the sync
    before any write (each shared object SyncFailed). True: the sync stops here."""
    shared = comparison.shared
    if not shared or not app.sync_policy.option("FailOnSharedResource"):
        return False
    for key, owner in sorted(shared.items()):
        result.results.append(
            ResourceResult(
                key, ResultCode.SYNC_FAILED, f"shared resource: Application {owner} tracks it"
            )
        )
    result.abort(
        f"FailOnSharedResource: {len(shared)} object(s) already tracked by another Application; "
        "nothing was written"
    )
    return True


class WriteMode(enum.StrEnum):
    """How a changed object is written (the sync options ``Replace`` and ``Force``)."""

    APPLY = "apply"  # server-side apply; an immutable field fails the object
    REPLACE = "replace"  # PUT; an immutable field deletes and re-creates it
    FORCE = "force"  # server-side apply; an immutable field deletes and re-creates it


def write_mode(own: sync_options.SyncOptions, app: sync_options.SyncOptions) -> WriteMode:
    if sync_options.enabled(own, app, "Replace"):
        return WriteMode.REPLACE
    if sync_options.enabled(own, app, "Force"):
        return WriteMode.FORCE
    return WriteMode.APPLY


def field_validation(own: sync_options.SyncOptions, app: sync_options.SyncOptions) -> str | None:
    """``Validate=false``: what ``kubectl apply --server-side --validate=false`` sends - the API
    server's ``fieldValidation=Ignore`` (unknown and duplicate fields dropped silently). Else
    None: the server's default."""
    return None if sync_options.enabled(own, app, "Validate", default=True) else "Ignore"


FIELD_VALIDATION_SINCE = (1, 25)
"""The API server honours ``fieldValidation`` on server-side apply from Kubernetes 1.25 (beta,
on by default); an older one ignores the parameter."""


def honours_field_validation(git_version: str) -> bool:
    """Whether a server reporting ``git_version`` (``v1.20.2``, ``v1.27.3+k3s1``) honours
    ``fieldValidation``; an unreadable version counts as no."""
    major, _, rest = git_version.lstrip("v").partition(".")
    minor = "".join(itertools.takewhile(str.isdigit, rest))
    if not (major.isdigit() and minor):
        return False
    return (int(major), int(minor)) >= FIELD_VALIDATION_SINCE


def immutable(exc: ApiError) -> bool:
    """The API server refused a change to a field that cannot change once set."""
    text = (exc.message or str(exc)).lower()
    return exc.status == 422 and ("immutable" in text or "may not change once set" in text)


def respect_ignored(
    obj: dict[str, Any],
    live: Mapping[str, Any] | None,
    rules: Sequence[IgnoreRule],
    key: ResourceKey,
) -> dict[str, Any]:
    """``RespectIgnoreDifferences``: the fields the app's ``ignoreDifferences`` pointers name
    take their live value in what is applied (so the apply does not undo them); a field absent
    live is left out. Only for an object that exists (Argo CD's rule). Raises ``ValueError``
    for a matching ``managedFieldsManagers`` rule, which names no fields to carry over."""
    if live is None:
        return obj
    out: Any = obj
    for rule in rules:
        if not rule.matches(key):
            continue
        if rule.managers:
            raise ValueError(
                "RespectIgnoreDifferences: an ignoreDifferences rule by managedFieldsManagers "
                "cannot be respected (it names no fields); use jsonPointers"
            )
        for tokens in rule.pointer_tokens:
            try:
                out = with_value(out, tokens, value_at(live, tokens))
            except KeyError:
                out = without(out, tokens)
    return dict(out)


def policy_denial(
    policy: Policy, app: Application, obj: dict[str, Any], *, namespaced: bool
) -> str:
    """``"denied by destination policy: <why>"``, or "" when the policy allows ``obj``."""
    why = policy.check(app.namespace, obj, namespaced=namespaced)
    return f"{POLICY_DENIED}: {why}" if why else ""


def prune_verdict(
    app: Application,
    key: ResourceKey,
    live: dict[str, Any] | None,
    *,
    policy: Policy,
    namespaced: bool,
    dry_run: bool,
) -> tuple[ResultCode, str] | None:
    """Why a prune candidate is not deleted (gone already, not this app's, ``Prune=false`` on
    the object or the app, refused by the destination policy, a dry run); None: delete it."""
    if live is None:
        return ResultCode.PRUNED, "already gone"
    if not tracking.owned_by(live, app.qualified_name, key):
        return ResultCode.PRUNE_SKIPPED, "not owned by this app (tracking annotation differs)"
    if not sync_options.prune_allowed(live, app.sync_policy.sync_options):
        return ResultCode.PRUNE_SKIPPED, "sync option Prune=false"
    denied = policy_denial(policy, app, live, namespaced=namespaced)
    if denied:
        return ResultCode.PRUNE_SKIPPED, denied
    if dry_run:
        return ResultCode.PRUNED, "would be pruned (dry run)"
    return None


def rendered_entries(comparison: Comparison) -> list[InventoryEntry]:
    """The inventory entries of the rendered objects (what this sync applies)."""
    return [
        InventoryEntry(item.obj["apiVersion"], item.key.kind, item.key.namespace, item.key.name)
        for item in comparison.items
        if item.key.name
    ]


def inventory_to_keep(
    comparison: Comparison,
    outcomes: Mapping[ResourceKey, ResultCode],
    still_ours: Callable[[InventoryEntry], bool],
) -> list[InventoryEntry]:
    """The inventory after the sync: what is rendered, plus each leftover that was not tried
    (pruning off, an aborted sync) or whose prune was skipped while the object is still the
    app's. Pruned objects and skipped ones another owner took over leave it."""
    keep = rendered_entries(comparison)
    for key, entry in comparison.extraneous.items():
        outcome = outcomes.get(key)
        if outcome is None or (outcome == ResultCode.PRUNE_SKIPPED and still_ours(entry)):
            keep.append(entry)
    return keep


class WaveHealth(enum.StrEnum):
    HEALTHY = "healthy"  # every object Healthy or Suspended (a running Rollout counts)
    DEGRADED = "degraded"  # one is Degraded: stop waiting, the wave failed
    PENDING = "pending"  # not yet: look again


def judge_wave_health(healths: Sequence[tuple[ResourceKey, Health]]) -> tuple[WaveHealth, str]:
    """The wave's verdict and, unless healthy, the first object that holds it back."""
    bad = [
        (k, h)
        for k, h in healths
        if h.status not in (HealthStatus.HEALTHY, HealthStatus.SUSPENDED)
        # a canary can take hours: its wave is done once the rollout is running
        and not (kinds.is_rollout(k.group, k.kind) and h.status == HealthStatus.PROGRESSING)
    ]
    if not bad:
        return WaveHealth.HEALTHY, ""
    degraded = [(k, h) for k, h in bad if h.status == HealthStatus.DEGRADED]
    if degraded:
        k, h = degraded[0]
        return WaveHealth.DEGRADED, f"{k} is Degraded: {h.message}"
    k, h = bad[0]
    return WaveHealth.PENDING, f"{k} is {h.status}: {h.message}"


def wait_until_healthy(
    read: Callable[[], Sequence[tuple[ResourceKey, Health]]],
    *,
    timeout: float,
    poll_interval: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[bool, str]:
    """Poll ``read`` until the wave is healthy (True), Degraded or ``timeout`` s have passed
    (False, and why)."""
    deadline = clock() + timeout
    why = ""
    while clock() < deadline:
        verdict, why = judge_wave_health(read())
        if verdict == WaveHealth.HEALTHY:
            return True, ""
        if verdict == WaveHealth.DEGRADED:
            return False, why
        sleep(poll_interval)
    return False, f"timed out after {timeout:.0f}s; {why}"


@dataclass(frozen=True)
class _Run:
    """What the steps of one ``Syncer.sync`` share."""

    app: Application
    kube: KubeClient
    comparison: Comparison
    result: SyncResult
    revision: str
    dry_run: bool
    bound: Any
    hooks: HookRunner


class Syncer:
    """Compares and syncs apps against one cluster. Thread-safe; share one per cluster."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        workers: int = 8,
        wave_timeout: float = 300.0,
        crd_timeout: float = 60.0,
        poll_interval: float = 0.5,
        live: LiveReader | None = None,
        inventory_version: VersionReader | None = None,
        takeover: TemplateTakeover | None = None,
        policy: Policy | None = None,
        impersonation: Impersonation | None = None,
        allow_shared_takeover: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.kube = kube
        # how the CRD and wave-health waits tell time and pause (a test gives its own)
        self.clock = clock
        self.sleep = sleep
        self.impersonation = impersonation
        """Run each app as its ServiceAccount; None: as the controller (the CLI, opt-out)."""
        self.takeover = takeover
        self.allow_shared_takeover = allow_shared_takeover
        """Apply an object another Application tracks (taking it over); off: its SyncFailed."""
        self.policy = policy if policy is not None else Policy()
        """The destination policy; without one, the built-in default (own namespace only)."""
        # a reader given here is a cache in memory (the controller's watch cache): read serially
        self._cached_live = live
        self._live_is_local = live is not None
        self._memo: dict[str, dict[ResourceKey, _Memo]] = {}
        # the watch cache's resourceVersion of an inventory: lets a refresh skip its GET
        self._inventory_version = inventory_version
        self._inventories = InventoryMemo()
        self._server_version: str | None = None
        self.workers = workers
        self.wave_timeout = wave_timeout
        self.crd_timeout = crd_timeout
        self.poll_interval = poll_interval

    # -- helpers -----------------------------------------------------------------------------

    def client_for(self, app: Application) -> KubeClient:
        """The client the app's reads and writes go through: acting as its ServiceAccount, or
        the controller's own without impersonation. Raises ``NoServiceAccountError``."""
        if self.impersonation is None:
            return self.kube
        return self.impersonation.client(self.kube, app)

    def _parallel(self, fn: Callable[[A], T], items: Sequence[A]) -> list[T]:
        """``fn`` over ``items`` on up to ``workers`` threads, results in order."""
        if len(items) <= 1 or self.workers <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items))

    def _namespaced(self, obj: dict[str, Any]) -> bool | None:
        """Whether the kind is namespaced; None when the server does not know the kind (yet)."""
        try:
            return self.kube.resource(
                str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
            ).namespaced
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _denied(self, app: Application, obj: dict[str, Any], *, namespaced: bool) -> str:
        return policy_denial(self.policy, app, obj, namespaced=namespaced)

    def _prepare(self, app: Application, manifests: Iterable[RenderedManifest]) -> list[Item]:
        items: dict[ResourceKey, Item] = {}
        crd_kinds = {
            (
                m.obj.get("spec", {}).get("group", ""),
                m.obj.get("spec", {}).get("names", {}).get("kind", ""),
            ): m.obj.get("spec", {}).get("scope", "Namespaced")
            for m in manifests
            if m.key.kind == "CustomResourceDefinition" and isinstance(m.obj.get("spec"), dict)
        }
        for m in manifests:
            try:
                options = sync_options.parse_resource_options(m.obj)
                sync_options.parse_compare_options(m.obj)  # refused by name before any write
            except sync_options.SyncOptionError as exc:
                items[m.key] = Item(m.key, m.obj, 0, m.source, error=str(exc))
                continue
            namespaced = self._namespaced(m.obj)
            if namespaced is None:
                scope = crd_kinds.get((m.key.group, m.key.kind))
                if scope is None and sync_options.enabled(
                    options, app.sync_policy.sync_options, "SkipDryRunOnMissingResource"
                ):
                    # a kind something else will serve (its CRD is not in this sync): no dry
                    # run, the apply says whether it exists by then; scope from the manifest
                    named = (m.obj.get("metadata") or {}).get("namespace")
                    scope = "Namespaced" if named or app.destination.namespace else "Cluster"
                if scope is None:
                    key = m.key
                    items[key] = Item(
                        key,
                        m.obj,
                        0,
                        m.source,
                        error=f"the server has no kind {m.obj.get('apiVersion')} {m.key.kind}",
                    )
                    continue
                namespaced = scope == "Namespaced"
            key, obj = tracking.prepare(
                m.obj,
                app=app.qualified_name,
                namespaced=namespaced,
                default_namespace=app.destination.namespace,
            )
            if namespaced and not key.namespace:
                items[key] = Item(
                    key,
                    obj,
                    0,
                    m.source,
                    error="namespaced object without a namespace, and the Application sets "
                    "no destination namespace",
                )
                continue
            denied = self._denied(app, obj, namespaced=namespaced)
            if denied:
                # never read, dry-run applied or applied; in its own wave, like any failure
                try:
                    denied_wave = ordering.wave_of(obj)
                except ordering.WaveError:
                    denied_wave = 0
                items[key] = Item(key, obj, denied_wave, m.source, error=denied)
                continue
            try:
                wave = ordering.wave_of(obj)
            except ordering.WaveError as exc:
                items[key] = Item(key, obj, 0, m.source, error=str(exc))
                continue
            if key in items:
                items[key].error = f"duplicate object {key} (also in {items[key].source})"
                continue
            items[key] = Item(key, obj, wave, m.source, options=options)
        return list(items.values())

    def _list_live(self, kube: KubeClient, items: Sequence[Item]) -> set[ResourceKey]:
        """Read with one LIST per kind and namespace the live objects of the kinds the app has
        many of (``LIST_AT_LEAST``), instead of a GET each; returns the keys it settled.

        Without a watch cache (the CLI) a compare of 1,000 objects was 1,000 GETs - on a cold
        apply, 1,000 404s before the first write. A LIST answers for all of them at once; it
        also returns objects that are not the app's, so it is given up (and those objects are
        read one by one) once the kind in that namespace holds more than
        ``LIST_OVERHEAD`` times the app's own. Any error also means one GET per object.
        """
        groups: dict[tuple[str, str, str], list[Item]] = {}
        for item in items:
            group = (str(item.obj.get("apiVersion", "")), item.key.kind, item.key.namespace)
            groups.setdefault(group, []).append(item)
        big = [
            (group, members) for group, members in groups.items() if len(members) >= LIST_AT_LEAST
        ]
        settled: set[ResourceKey] = set()
        for (api_version, kind, namespace), members in big:
            live = self._list_kind(kube, api_version, kind, namespace, LIST_OVERHEAD * len(members))
            if live is None:
                continue
            for item in members:
                item.live = live.get(str(item.obj.get("metadata", {}).get("name", "")))
                settled.add(item.key)
        return settled

    def _list_kind(
        self, kube: KubeClient, api_version: str, kind: str, namespace: str, most: int
    ) -> dict[str, dict[str, Any]] | None:
        """The objects of ``kind`` in ``namespace`` by name, or None when there are more than
        ``most`` of them or the LIST failed."""
        found: dict[str, dict[str, Any]] = {}
        token: str | None = None
        try:
            while True:
                page = with_retries(
                    functools.partial(
                        kube.list,
                        api_version,
                        kind,
                        namespace,
                        limit=LIST_PAGE,
                        continue_token=token,
                    )
                )
                for obj in page.get("items") or []:
                    obj.setdefault("apiVersion", api_version)  # list items carry neither
                    obj.setdefault("kind", kind)
                    found[str((obj.get("metadata") or {}).get("name", ""))] = obj
                if len(found) > most:
                    return None
                token = (page.get("metadata") or {}).get("continue") or None
                if not token:
                    return found
        except ApiError:  # forbidden to list, kind not served yet (a CRD in this sync)...
            return None

    def _live_reader(self, kube: KubeClient, item: Item) -> LiveReader:
        api_version = str(item.obj["apiVersion"])
        return self._reader_for(kube, api_version, item.key.kind, item.key.namespace)

    def _reader_for(
        self, kube: KubeClient, api_version: str, kind: str, namespace: str
    ) -> LiveReader:
        """Where a live object is read: the watch cache when there is one and the app's user
        may read that kind there (``identity`` explains the review), else a GET as the app's
        user - whose 403 then names what RBAC refused."""
        if self._cached_live is None:
            return kube.get
        if self.impersonation is None or kube is self.kube:
            return self._cached_live
        resource = self.kube.resource(api_version, kind).name
        group = api_version.rpartition("/")[0]
        if self.impersonation.may_get(kube, group, resource, namespace):
            return self._cached_live
        return kube.get

    def _read_live(self, kube: KubeClient, item: Item) -> None:
        meta = item.obj.get("metadata", {})
        try:
            read = self._live_reader(kube, item)
            item.live = with_retries(
                lambda: read(
                    item.obj["apiVersion"], item.key.kind, meta["name"], item.key.namespace
                )
            )
        except ApiError as exc:
            if exc.status == 404:  # kind not served yet (CRD in this same sync)
                item.live = None
            else:
                item.error = str(exc)

    def _compare_local(
        self,
        item: Item,
        ignore: Sequence[IgnoreRule],
        memo: dict[ResourceKey, _Memo],
        mask_scope: str,
    ) -> str | None:
        """Settle ``item.diff`` without a request when possible (an error, an absent object, a
        memo hit) and return None; else the fingerprint the dry run will need."""
        if item.error and item.diff is None:
            item.diff = ResourceDiff(item.key, SyncStatus.UNKNOWN, error=item.error)
            return None
        if item.live is None:
            item.diff = diff_resource(
                item.key, item.obj, None, ignore=ignore, mask_scope=mask_scope
            )
            return None
        fingerprint = _fingerprint(item.obj, ignore)
        live_version = str(item.live.get("metadata", {}).get("resourceVersion", ""))
        known = memo.get(item.key)
        if known and known.fingerprint == fingerprint and known.live_version == live_version:
            item.diff = known.diff
            return None
        return fingerprint

    def _compare_dry_run(
        self,
        kube: KubeClient,
        item: Item,
        ignore: Sequence[IgnoreRule],
        memo: dict[ResourceKey, _Memo],
        fingerprint: str,
        *,
        mask_scope: str,
    ) -> None:
        assert item.live is not None  # _compare_local settled absent objects
        live_version = str(item.live.get("metadata", {}).get("resourceVersion", ""))
        try:
            dry = with_retries(
                lambda: kube.apply(item.obj, field_manager=FIELD_MANAGER, dry_run=True)
            )
            item.diff = diff_resource(
                item.key, dry, item.live, ignore=ignore, mask_scope=mask_scope
            )
            if live_version:
                memo[item.key] = _Memo(fingerprint, live_version, item.diff)
        except ApiError as exc:
            if exc.transient:
                item.error = str(exc)
                item.diff = ResourceDiff(item.key, SyncStatus.UNKNOWN, error=item.error)
            else:
                # The apply itself would fail (e.g. an immutable field); show the difference by
                # comparing only the fields Git declares, and report why.
                item.diff = diff_resource(
                    item.key,
                    item.obj,
                    item.live,
                    ignore=ignore,
                    desired_is_dry_run=False,
                    mask_scope=mask_scope,
                )
                item.error = f"dry-run apply failed: {exc}"

    # -- compare -----------------------------------------------------------------------------

    def compare(self, app: Application, manifests: Sequence[RenderedManifest]) -> Comparison:
        ignore = [IgnoreRule.from_difference(r) for r in app.ignore_differences]
        kube = self.client_for(app)
        manifests, declared_hooks = split_hooks(manifests)
        items = self._prepare(app, manifests)
        ok = [i for i in items if not i.error]
        if self._live_is_local:  # answered from memory: threads would only add their cost
            for item in ok:
                self._read_live(kube, item)
        else:
            listed = self._list_live(kube, ok)
            self._parallel(
                functools.partial(self._read_live, kube), [i for i in ok if i.key not in listed]
            )
        for item in ok:
            if item.live is not None:
                item.shared_with = tracking.other_owner(
                    item.live, item.obj, item.key, app=app.qualified_name, app_name=app.name
                )
        rollout_work: tuple[Any, ...] = ()
        pending: set[ResourceKey] = set()
        rendered: dict[ResourceKey, dict[str, Any]] = {}
        if self.takeover is not None:
            plan = self.takeover.plan(
                {i.key: i.obj for i in ok}, {i.key: i.live for i in ok}, kube=kube
            )
            rendered = {i.key: i.obj for i in ok}
            for item in ok:
                item.obj = plan.replacements.get(item.key, item.obj)
            rollout_work = tuple(plan.work)
            pending = {w.target for w in rollout_work if w.held and not w.running}
        previous = self._memo.get(app.qualified_name, {})
        memo: dict[ResourceKey, _Memo] = {}
        for item in items:
            if item.key in previous:
                memo[item.key] = previous[item.key]
        # only the dry runs go to the worker threads; memo hits (a no-change refresh: all of
        # them) are settled here, without a thread pool per compare
        # Secret masks are in the app's context: never comparable with another app's diff
        scope = app.qualified_name
        remote = [(i, fp) for i in items if (fp := self._compare_local(i, ignore, memo, scope))]
        self._parallel(
            lambda pair: self._compare_dry_run(
                kube, pair[0], ignore, memo, pair[1], mask_scope=scope
            ),
            remote,
        )
        for item in items:
            if self.takeover is not None and item.key in pending:
                # A template change the rollout has not started yet: what Git says differs
                # from what runs, although what the sync will apply (the held object) does not.
                item.diff = diff_resource(
                    item.key,
                    rendered[item.key],
                    item.live,
                    ignore=ignore,
                    desired_is_dry_run=False,
                    mask_scope=scope,
                )
        for item in items:
            show_adoption(item)
        self._memo[app.qualified_name] = memo
        inventory = self._inventory(app).load()
        rendered_keys = {i.key for i in items}
        extraneous = {k: e for k, e in inventory.items() if k not in rendered_keys}
        prepared_hooks = tuple(self._prepare_hook(app, m, spec) for m, spec in declared_hooks)
        ignored = frozenset(k for k, e in extraneous.items() if self._ignores_extraneous(kube, e))
        return Comparison(items, extraneous, inventory, rollout_work, prepared_hooks, ignored)

    def _ignores_extraneous(self, kube: KubeClient, entry: InventoryEntry) -> bool:
        """An extraneous object's own ``IgnoreExtraneous``: read live, from the watch cache
        when there is one (unreadable: counted)."""
        try:
            read = self._reader_for(kube, entry.api_version, entry.kind, entry.namespace)
            live = read(entry.api_version, entry.kind, entry.name, entry.namespace)
        except ApiError:
            return False
        return live is not None and sync_options.ignores_extraneous(live)

    def _prepare_hook(self, app: Application, manifest: RenderedManifest, spec: HookSpec) -> Hook:
        """A hook with its namespace resolved and the destination policy's verdict."""
        obj = copy_object(manifest.obj)
        generated = not obj["metadata"].get("name")
        namespaced = self._namespaced(obj)
        if namespaced is None:
            denied = f"the server has no kind {obj.get('apiVersion')} {manifest.key.kind}"
        else:
            meta = obj["metadata"]
            if namespaced and not meta.get("namespace"):
                meta["namespace"] = app.destination.namespace
            elif not namespaced:
                meta.pop("namespace", None)
            denied = self._denied(app, obj, namespaced=namespaced)
        key = dataclasses.replace(
            manifest.key, namespace=str(obj["metadata"].get("namespace") or "")
        )
        return Hook(key, obj, spec, generated, manifest.source, denied)

    # -- sync --------------------------------------------------------------------------------

    def sync(
        self,
        app: Application,
        manifests: Sequence[RenderedManifest],
        *,
        revision: str,
        dry_run: bool = False,
        prune: bool | None = None,
        comparison: Comparison | None = None,
        operation: str = "",
    ) -> SyncResult:
        """Make the cluster match ``manifests``. ``prune`` defaults to the app's policy.
        ``operation``: the sync operation's id - a resumed operation passes the same one, so its
        hooks are found rather than created again (a fresh id when not given)."""
        prune = app.sync_policy.prune if prune is None else prune
        comparison = comparison or self.compare(app, manifests)
        refuse_empty_render(app, comparison, revision)
        kube = self.client_for(app)
        result = SyncResult(revision=revision, dry_run=dry_run)
        bound = log.bind(app=app.qualified_name, revision=revision[:12], dry_run=dry_run)
        if refuse_shared(app, comparison, result):
            bound.warning("sync refused: shared resources", shared=len(comparison.shared))
            return result
        if app.sync_policy.option("CreateNamespace") and app.destination.namespace:
            self._create_namespace(kube, app, result, dry_run=dry_run)
        recorded = comparison.inventory
        if not dry_run:
            recorded = self._write_ahead(app, comparison, revision, bound)
        plan = plan_prune(
            comparison.extraneous,
            prune=prune,
            last=app.sync_policy.option("PruneLast"),
            wave_of=functools.partial(self._live_wave, kube, app),
        )
        runner = self._hook_runner(kube, app, operation or uuid.uuid4().hex[:12], result)
        run = _Run(app, kube, comparison, result, revision, dry_run, bound, runner)
        outcomes: dict[ResourceKey, ResultCode] = {}
        if self._run_hook_phase(run, HookPhase.PRE_SYNC):
            outcomes = self._run_waves(run, plan)
            if not result.aborted:
                for entry in plan.last:
                    outcomes[entry.key] = self._prune(
                        kube, app, entry, dry_run=dry_run, result=result, wave=0
                    )
            self._post_sync(run)
        if not dry_run and not result.succeeded:
            self._run_hook_phase(run, HookPhase.SYNC_FAIL)
        if not dry_run:
            keep = inventory_to_keep(
                comparison, outcomes, functools.partial(self._still_ours, kube, app)
            )
            # retried like the applies: one throttled write must not leave applied objects
            # out of the inventory (where a later prune would never find them)
            with_retries(lambda: self._inventory(app).store(keep, recorded, revision=revision))
        bound.info("sync finished", phase=result.phase, results=len(result.results))
        return result

    def _hook_runner(
        self, kube: KubeClient, app: Application, operation: str, result: SyncResult
    ) -> HookRunner:
        """The operation's hook runner; its results are the sync result's ``hooks``."""
        return HookRunner(
            kube,
            app.qualified_name,
            operation,
            timeout=self.wave_timeout,
            poll_interval=self.poll_interval,
            clock=self.clock,
            sleep=self.sleep,
            results=result.hooks,
        )

    def _run_hook_phase(self, run: _Run, phase: HookPhase, wave: int | None = None) -> bool:
        """Run ``phase``'s hooks (only ``wave``'s, when given); False when one failed, and the
        sync is then aborted naming it. A dry run creates no hooks."""
        if run.dry_run or not run.comparison.hooks:
            return True
        selected = run.comparison.hooks
        if wave is not None:
            selected = tuple(h for h in selected if h.spec.wave == wave)
        failed = phase_failed(run.hooks.run(selected, phase))
        if failed is None:
            return True
        if not run.result.aborted:
            run.result.abort(f"{phase} hook {failed.key} failed: {failed.message}")
        return False

    def run_hooks(
        self,
        app: Application,
        manifests: Sequence[RenderedManifest],
        phase: HookPhase,
        *,
        operation: str,
    ) -> list[HookResult]:
        """Run the hooks of ``phase`` among ``manifests`` outside a sync - what app deletion
        calls: ``HookPhase.PRE_DELETE`` before the app's objects are deleted,
        ``HookPhase.POST_DELETE`` after. ``operation``: the deletion's id (stable across a
        restart, so a hook is not created twice)."""
        kube = self.client_for(app)
        prepared = [self._prepare_hook(app, m, spec) for m, spec in split_hooks(manifests)[1]]
        return self._hook_runner(kube, app, operation, SyncResult(revision="")).run(prepared, phase)

    def _post_sync(self, run: _Run) -> None:
        """``PostSync`` hooks, once every main resource is applied and healthy."""
        if run.dry_run or run.result.outcome != SyncOutcome.SUCCEEDED:
            return
        if not any(h.spec.runs_in(HookPhase.POST_SYNC) for h in run.comparison.hooks):
            return
        everything = ordering.Wave(0, (tuple(run.comparison.items),))
        healthy, why = self._wait_wave_healthy(run.kube, everything)
        if not healthy:
            run.result.abort(f"PostSync hooks not run: {why}")
            return
        self._run_hook_phase(run, HookPhase.POST_SYNC)

    def _create_namespace(
        self, kube: KubeClient, app: Application, result: SyncResult, *, dry_run: bool
    ) -> None:
        """``CreateNamespace``: the destination namespace, unless the policy or RBAC refuses it
        (then the Namespace's SyncFailed, and the sync goes on)."""
        ns: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": app.destination.namespace},
        }
        refused = self._denied(app, ns, namespaced=False) or self._ensure_namespace(
            kube, app.destination.namespace, dry_run
        )
        if refused:
            result.results.append(
                ResourceResult(ResourceKey.of(ns), ResultCode.SYNC_FAILED, refused)
            )

    def _write_ahead(
        self, app: Application, comparison: Comparison, revision: str, bound: Any
    ) -> dict[ResourceKey, InventoryEntry]:
        """Record every object this sync may create in the inventory before it is created, so
        a crash (kill -9) between an apply and the final inventory write cannot leave an object
        that no later sync - of any revision - knows to prune. One attempt: if it fails, the
        final write (retried) still records them. Returns the inventory now stored."""
        ahead = dict(comparison.inventory)
        for entry in rendered_entries(comparison):
            ahead.setdefault(entry.key, entry)
        if len(ahead) == len(comparison.inventory):
            return comparison.inventory
        try:
            self._inventory(app).store(ahead.values(), comparison.inventory, revision=revision)
        except ApiError as exc:
            bound.warning("inventory write-ahead failed", error=exc.message or str(exc))
            return comparison.inventory
        return ahead

    def _run_waves(self, run: _Run, plan: PrunePlan) -> dict[ResourceKey, ResultCode]:
        """Apply (and prune, unless ``PruneLast``) wave by wave, each wave healthy before the
        next; stop at the first failed or unhealthy wave. The prune outcome of each candidate
        tried."""
        result = run.result
        waves = ordering.plan_waves(
            run.comparison.items, wave=lambda i: i.wave, kind=lambda i: i.key.kind
        )
        sync_hook_waves = {
            h.spec.wave for h in run.comparison.hooks if h.spec.runs_in(HookPhase.SYNC)
        }
        wave_numbers = sorted({w.number for w in waves} | set(plan.by_wave) | sync_hook_waves)
        by_number = {w.number: w for w in waves}
        outcomes: dict[ResourceKey, ResultCode] = {}
        for n, number in enumerate(wave_numbers):
            wave = by_number.get(number)
            if wave is not None:
                self._apply_wave(run, wave)
            if number in sync_hook_waves and not self._run_hook_phase(run, HookPhase.SYNC, number):
                break
            for entry in plan.by_wave.get(number, []):
                outcomes[entry.key] = self._prune(
                    run.kube, run.app, entry, dry_run=run.dry_run, result=result, wave=number
                )
            verdict = after_wave(
                result,
                applied=wave is not None,
                is_last=n == len(wave_numbers) - 1,
                dry_run=run.dry_run,
            )
            if verdict == WaveVerdict.ABORT:
                result.abort(f"wave {number} failed; later waves were not applied")
                break
            if verdict == WaveVerdict.WAIT_HEALTHY:
                assert wave is not None  # after_wave waits only for a wave it applied
                healthy, why = self._wait_wave_healthy(run.kube, wave)
                if not healthy:
                    result.abort(f"wave {number} did not become healthy: {why}")
                    break
        return outcomes

    def _apply_wave(self, run: _Run, wave: ordering.Wave) -> None:
        """Apply one wave stage by stage (CRDs Established before the next stage), then start
        the rollouts of the pod-template changes it holds."""
        kube, result, dry_run = run.kube, run.result, run.dry_run
        run.bound.info("sync wave", wave=wave.number, objects=len(wave.items()))
        for stage in wave.stages:
            result.results.extend(
                self._parallel(lambda i: self._apply(run.app, kube, i, dry_run), stage)
            )
            crds = [i for i in stage if i.key.kind == "CustomResourceDefinition"]
            if crds and not dry_run:
                self._wait_crds(kube, crds, result)
                self.kube.forget_discovery()
        if self.takeover is None or not run.comparison.rollout_work:
            return
        in_wave = {i.key for i in wave.items()}
        work = [w for w in run.comparison.rollout_work if w.rollout in in_wave]
        if work:
            result.results.extend(
                self.takeover.start(work, revision=run.revision, dry_run=dry_run, kube=kube)
            )

    def _inventory(self, app: Application) -> Inventory:
        return Inventory(
            self.kube,
            app.namespace,
            app.name,
            memo=self._inventories,
            cached_version=self._inventory_version,
        )

    def _apply(
        self, app: Application, kube: KubeClient, item: Item, dry_run: bool
    ) -> ResourceResult:
        settled = apply_verdict(item, allow_takeover=self.allow_shared_takeover)
        if settled is not None:
            return settled
        app_options = app.sync_policy.sync_options
        mode = write_mode(item.options, app_options)
        validation = field_validation(item.options, app_options)
        obj = item.obj
        try:
            if sync_options.enabled(item.options, app_options, "RespectIgnoreDifferences"):
                rules = [IgnoreRule.from_difference(r) for r in app.ignore_differences]
                obj = respect_ignored(obj, item.live, rules, item.key)
        except ValueError as exc:
            return ResourceResult(item.key, ResultCode.SYNC_FAILED, str(exc), item.wave)
        if validation and not self._field_validation_ok():
            return ResourceResult(
                item.key,
                ResultCode.SYNC_FAILED,
                f"sync option Validate=false cannot be honoured: this API server "
                f"({self._server_version or 'version unknown'}) ignores fieldValidation "
                f"(Kubernetes {'.'.join(map(str, FIELD_VALIDATION_SINCE))}+) and validates every "
                "server-side apply against the schema",
                item.wave,
            )
        dry = " (dry run)" if dry_run else ""
        verb = "created" if item.live is None else "configured"
        try:
            if mode == WriteMode.REPLACE and item.live is not None:
                with_retries(lambda: self._replace(kube, obj, dry_run, validation))
                verb = "replaced"
            else:
                with_retries(
                    lambda: kube.apply(
                        obj,
                        field_manager=FIELD_MANAGER,
                        dry_run=dry_run,
                        field_validation=validation,
                    )
                )
        except ApiError as exc:
            message = exc.message or str(exc)
            if not immutable(exc):
                return ResourceResult(item.key, ResultCode.SYNC_FAILED, message, item.wave)
            if mode == WriteMode.APPLY:
                return ResourceResult(
                    item.key, ResultCode.SYNC_FAILED, message + IMMUTABLE_HINT, item.wave
                )
            return self._recreate(kube, item, obj, dry_run, validation)
        if item.shared_with:
            verb += f", taken over from Application {item.shared_with}"
        if not dry_run and item.live is not None and tracking.argo_managers(item.live):
            verb += self._release_argo_fields(kube, item)
        return ResourceResult(item.key, ResultCode.SYNCED, f"{verb}{dry}", item.wave)

    @staticmethod
    def _release_argo_fields(kube: KubeClient, item: Item) -> str:
        """Adopting what Argo CD applied: an apply of equal values only *shares* a field with
        Argo's field manager, and a field Git later drops would then stay (Argo still owns
        it). Dropping Argo's managedFields entries leaves gitsync the owner, as a take-over
        must (``kubectl``'s client-side-to-server-side upgrade does the same). Returns what the
        result message adds."""
        meta = item.obj["metadata"]

        def release() -> None:
            live = kube.get(
                str(item.obj["apiVersion"]), item.key.kind, meta["name"], item.key.namespace
            )
            if live is None or not tracking.argo_managers(live):
                return
            kept = [
                m
                for m in live["metadata"].get("managedFields") or []
                if m.get("manager") != tracking.ARGO_FIELD_MANAGER
            ]
            # a merge patch replaces the list whole; the resourceVersion makes a write in
            # between a 409, and with_retries reads again
            patch = {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]}}
            patch["metadata"]["managedFields"] = kept
            kube.patch(
                str(item.obj["apiVersion"]),
                item.key.kind,
                meta["name"],
                patch,
                namespace=item.key.namespace,
            )

        try:
            with_retries(release)
        except ApiError as exc:
            shared = tracking.ARGO_FIELD_MANAGER
            return f", adopted; fields still shared with {shared}: {exc.message or exc}"
        return f", adopted from {tracking.ARGO_FIELD_MANAGER}"

    def _field_validation_ok(self) -> bool:
        """Whether the cluster honours ``fieldValidation`` (its version, read once)."""
        if self._server_version is None:
            try:
                self._server_version = str(self.kube.request("GET", "/version").get("gitVersion"))
            except ApiError:
                return False  # asked again next time
        return honours_field_validation(self._server_version)

    @staticmethod
    def _replace(
        kube: KubeClient, obj: dict[str, Any], dry_run: bool, validation: str | None
    ) -> None:
        """``Replace=true``: a PUT of the whole object at the resourceVersion just read (as
        ``kubectl replace``: a controller writing the status in between is a 409, retried)."""
        meta = obj.get("metadata", {})
        live = kube.get(
            str(obj["apiVersion"]), str(obj["kind"]), meta["name"], meta.get("namespace", "")
        )
        if live is None:  # gone since the compare: create it
            kube.apply(
                obj, field_manager=FIELD_MANAGER, dry_run=dry_run, field_validation=validation
            )
            return
        version = live.get("metadata", {}).get("resourceVersion", "")
        body = {**obj, "metadata": {**meta, "resourceVersion": version}}
        kube.replace(
            body, field_manager=FIELD_MANAGER, dry_run=dry_run, field_validation=validation
        )

    def _recreate(
        self,
        kube: KubeClient,
        item: Item,
        obj: dict[str, Any],
        dry_run: bool,
        validation: str | None,
    ) -> ResourceResult:
        """``Replace``/``Force`` on an immutable change: delete the live object (exactly that
        one: uid precondition), wait until it is gone, create it from Git."""
        if dry_run:
            return ResourceResult(
                item.key, ResultCode.SYNCED, "would be re-created (dry run)", item.wave
            )
        api_version, meta = str(obj["apiVersion"]), obj.get("metadata", {})
        name, namespace = str(meta.get("name", "")), item.key.namespace
        uid = (item.live or {}).get("metadata", {}).get("uid")
        try:
            with_retries(
                lambda: kube.delete(
                    api_version, item.key.kind, name, namespace, precondition_uid=uid
                )
            )
            deadline = self.clock() + self.wave_timeout
            while (live := kube.get(api_version, item.key.kind, name, namespace)) is not None:
                if live.get("metadata", {}).get("uid") != uid:
                    break  # someone already created it again: the apply below configures it
                if self.clock() >= deadline:
                    return ResourceResult(
                        item.key,
                        ResultCode.SYNC_FAILED,
                        f"deleted to re-create, but still there after {self.wave_timeout:.0f}s",
                        item.wave,
                    )
                self.sleep(self.poll_interval)
            with_retries(
                lambda: kube.apply(obj, field_manager=FIELD_MANAGER, field_validation=validation)
            )
        except ApiError as exc:
            return ResourceResult(
                item.key, ResultCode.SYNC_FAILED, f"re-create: {exc.message or exc}", item.wave
            )
        return ResourceResult(item.key, ResultCode.SYNCED, "re-created", item.wave)

    def _live_wave(self, kube: KubeClient, app: Application, entry: InventoryEntry) -> int | None:
        """The wave a prune candidate goes in; None: after the last (its own PruneLast)."""
        try:
            live = kube.get(entry.api_version, entry.kind, entry.name, entry.namespace)
        except ApiError:
            return 0
        if live is not None and sync_options.prune_last(live, app.sync_policy.sync_options):
            return None
        try:
            return ordering.wave_of(live or {})
        except ordering.WaveError:
            return 0

    def _still_ours(self, kube: KubeClient, app: Application, entry: InventoryEntry) -> bool:
        try:
            live = kube.get(entry.api_version, entry.kind, entry.name, entry.namespace)
        except ApiError:
            return True
        return live is not None and tracking.owned_by(live, app.qualified_name, entry.key)

    def _prune(
        self,
        kube: KubeClient,
        app: Application,
        entry: InventoryEntry,
        *,
        dry_run: bool,
        result: SyncResult,
        wave: int,
    ) -> ResultCode:
        key = entry.key
        try:
            live = with_retries(
                lambda: kube.get(entry.api_version, entry.kind, entry.name, entry.namespace)
            )
        except ApiError as exc:
            if exc.status == 403:
                return self._prune_refused(key, exc, result, wave)
            result.results.append(
                ResourceResult(key, ResultCode.SYNC_FAILED, f"prune: {exc}", wave)
            )
            return ResultCode.SYNC_FAILED
        verdict = prune_verdict(
            app, key, live, policy=self.policy, namespaced=bool(entry.namespace), dry_run=dry_run
        )
        if verdict is not None:
            code, message = verdict
            result.results.append(ResourceResult(key, code, message, wave))
            return code
        assert live is not None  # prune_verdict settled an object already gone
        uid = live["metadata"].get("uid")
        policy = app.sync_policy.sync_options.get("PrunePropagationPolicy")
        propagation = sync_options.PropagationPolicy(policy).api_value if policy else "Background"
        try:
            with_retries(
                lambda: kube.delete(
                    entry.api_version,
                    entry.kind,
                    entry.name,
                    entry.namespace,
                    propagation=propagation,
                    precondition_uid=uid,
                )
            )
        except ApiError as exc:
            if exc.status == 403:
                return self._prune_refused(key, exc, result, wave)
            result.results.append(
                ResourceResult(key, ResultCode.SYNC_FAILED, f"prune: {exc.message or exc}", wave)
            )
            return ResultCode.SYNC_FAILED
        result.results.append(ResourceResult(key, ResultCode.PRUNED, "pruned", wave))
        return ResultCode.PRUNED

    @staticmethod
    def _prune_refused(
        key: ResourceKey, exc: ApiError, result: SyncResult, wave: int
    ) -> ResultCode:
        """RBAC refused the app's user a prune: the object stays, and stays in the inventory
        (PruneSkipped keeps it there), so a later grant lets a later sync prune it."""
        log.warning("prune refused", resource=str(key), error=exc.message or str(exc))
        result.results.append(
            ResourceResult(
                key, ResultCode.PRUNE_SKIPPED, f"prune refused: {exc.message or exc}", wave
            )
        )
        return ResultCode.PRUNE_SKIPPED

    def _ensure_namespace(self, kube: KubeClient, namespace: str, dry_run: bool) -> str:
        """Create the destination namespace if it is missing; the API server's message when
        the app's user may not (403), else ""."""
        obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        try:
            if kube.get("v1", "Namespace", namespace) is not None:
                return ""
            with_retries(lambda: kube.apply(obj, field_manager=FIELD_MANAGER, dry_run=dry_run))
        except ApiError as exc:
            if exc.status == 403:
                return exc.message or str(exc)
            if exc.status != 409:
                raise
        return ""

    def _wait_crds(self, kube: KubeClient, crds: Sequence[Item], result: SyncResult) -> None:
        deadline = self.clock() + self.crd_timeout
        pending = {i.key.name for i in crds}
        while pending and self.clock() < deadline:
            for name in list(pending):
                live = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
                conds = ((live or {}).get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                    pending.discard(name)
            if pending:
                self.sleep(self.poll_interval)
        for item in crds:
            if item.key.name in pending:
                result.results.append(
                    ResourceResult(
                        item.key,
                        ResultCode.SYNC_FAILED,
                        f"not Established after {self.crd_timeout:.0f}s",
                        item.wave,
                    )
                )

    def wave_health(
        self, wave: ordering.Wave, kube: KubeClient | None = None
    ) -> list[tuple[ResourceKey, Health]]:
        out = []
        for item in wave.items():
            live = (kube or self.kube).get(
                item.obj["apiVersion"], item.key.kind, item.key.name, item.key.namespace
            )
            out.append((item.key, assess(live)))
        return out

    def _wait_wave_healthy(self, kube: KubeClient, wave: ordering.Wave) -> tuple[bool, str]:
        return wait_until_healthy(
            lambda: self.wave_health(wave, kube),
            timeout=self.wave_timeout,
            poll_interval=self.poll_interval,
            clock=self.clock,
            sleep=self.sleep,
        )
