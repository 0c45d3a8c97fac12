"""The canary executor: observes the cluster, runs the decision core, applies what it decided.

One place for the rollout's side effects, all through the Kubernetes adapter and under the
``gitsync-rollout`` field manager: scaling the stable and canary Deployments, creating and
deleting the canary, giving the stable Deployment the new template on promotion, and writing the
Rollout's status (through the status subresource, with the Rollout's ``resourceVersion`` as a
precondition so a status computed from a stale read is never written). The decisions themselves
are ``gitsync.rollout.canary``'s.

Two entry points, both idempotent and safe to call again after a crash at any point:

* ``begin(work, revision=...)`` - a sync rendered a Rollout's target (``takeover.RolloutWork``):
  start a rollout of a held template, go on with the one running, or settle when the template was
  applied directly;
* ``tick(namespace, name)`` - move a rollout on: call it on every reconcile of the app and again
  after ``RolloutStepResult.requeue_after`` seconds.

An analysis step's metrics are read here too, through ``providers.MetricProviders``, when the
decision names them (``Decision.measure``): the executor reads them and runs the decision again
with the readings, so the core stays pure and the status records each measurement once.

Blue-green (``gitsync.rollout.bluegreen``) runs through the same two entry points, with the
preview Deployment ``<name>-preview`` where a canary has ``<name>-canary``. Blue-green and a
canary with ``trafficRouting`` also pin Service selectors and drive a router
(``gitsync.rollout.routers``): a pin is a server-side apply of the one selector key under the
``gitsync-rollout`` field manager (the whole selector only where the API server treats it as an
atomic map, which a dry run tells); the nginx canary Ingress is applied and deleted; an HTTPRoute
gets its weights by a merge patch with its ``resourceVersion`` as precondition.

Actions run before the status is written, so the status never claims what was not done; a tick
that fails half-way leaves the old status and the next tick recomputes from what it observes.

``RolloutSyncHook`` is what the sync layer holds: ``plan`` (``takeover.plan_takeover``) before the
compare, ``start`` (``begin`` for each work item) after the apply.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from gitsync.errors import NextStep, TerminalError, WaitingError, next_step
from gitsync.health import assess
from gitsync.kube import ApiError, KubeClient
from gitsync.model import HealthStatus, ResourceKey, ResultCode
from gitsync.rollout import canary as core
from gitsync.rollout.analysis import Reading
from gitsync.rollout.math import HASH_LABEL, ROLE_LABEL
from gitsync.rollout.providers import MetricProviders
from gitsync.rollout.routers import (
    GATEWAY_GROUP,
    HTTPROUTE_VERSIONS,
    INGRESS_API,
    PinSelector,
    RouterError,
    RouterState,
    ServiceState,
    SetRouterWeight,
    canary_ingress,
    canary_ingress_name,
    nginx_weight,
    pinned_service,
    route_weight,
    route_with_weight,
    service_state,
)
from gitsync.rollout.spec import (
    API_VERSION,
    GROUP,
    KIND,
    Rollout,
    RolloutSpec,
    RolloutSpecError,
    canary_name,
    preview_name,
    second_name,
)
from gitsync.rollout.spec import parse_rollout as parse_rollout_doc
from gitsync.rollout.status import (
    CANARY_ROLE,
    OWNER_ANNOTATION,
    PREVIEW_ROLE,
    ROLLOUT_FIELD_MANAGER,
    STABLE_HASH_ANNOTATION,
    Phase,
    RolloutStatus,
)
from gitsync.rollout.strategy import strategy_of
from gitsync.rollout.takeover import (
    RolloutWork,
    TakeoverPlan,
    pinned_objects,
    plan_takeover,
    targeted_deployments,
)
from gitsync.sync import ResourceResult

log = structlog.get_logger(__name__)

DEPLOYMENT_API = "apps/v1"
FAILURE_REQUEUE_SECONDS = 5.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def rbac_denied(what: str, exc: ApiError) -> str:
    """The rollout's failure reason for a 403: the API server's message names the user, the
    verb, the resource and the namespace (never a secret value: it holds no object content)."""
    return f"{what}: RBAC denied the Application's ServiceAccount: {exc.message or exc}"


def _message(exc: Exception) -> str:
    """The server's own words for an API failure, else the error itself."""
    return str(exc.message or exc) if isinstance(exc, ApiError) else str(exc)


@dataclass(frozen=True)
class RolloutStepResult:
    """What one ``begin``/``tick`` did."""

    key: ResourceKey
    status: RolloutStatus
    actions: tuple[core.Action, ...] = ()
    requeue_after: float | None = None
    error: str = ""


class _Conflict(Exception):
    """The Rollout changed between our read and our status write."""


class RolloutConfigError(TerminalError):
    """The Rollout cannot go on as configured (its router or a Service it names is missing or
    unusable): retrying every few seconds will not help, so the rollout stalls with a message
    that names the fix, until the Rollout or the object it names changes (the app's next
    reconcile looks again)."""


class RolloutNotReadyError(WaitingError):
    """An action needs something a later tick or sync will bring (the rendered template, both
    Deployments): try again after ``FAILURE_REQUEUE_SECONDS``."""


@dataclass(frozen=True)
class _ActionFailure:
    """An action of a decision that failed, and what the loop does next: retry after
    ``requeue`` seconds, or (None) wait for a change - the Rollout, the object it names, RBAC."""

    error: str
    denied: bool = False
    """RBAC denied the action: Degraded and marked aborted, retried on request only."""
    requeue: float | None = None

    @classmethod
    def retried(cls, what: str, exc: ApiError | RolloutNotReadyError) -> _ActionFailure:
        """A failure retried after ``FAILURE_REQUEUE_SECONDS`` unless the error stalls."""
        stalls = next_step(exc) == NextStep.STALL
        return cls(f"{what}: {_message(exc)}", requeue=None if stalls else FAILURE_REQUEUE_SECONDS)


def _foreign_second(rollout: Rollout, canary: Mapping[str, Any] | None) -> str:
    """Why the canary (or preview) Deployment's name is taken by one this Rollout does not own
    ("" when it is free or ours): a rollout must never scale or delete someone else's."""
    if canary is None:
        return ""
    owner = ((canary.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION)
    if owner == rollout.name:
        return ""
    return (
        f"Deployment {second_name(rollout.spec)} exists and is not this Rollout's "
        f"{strategy_of(rollout.spec).second} ({OWNER_ANNOTATION}: {owner!r}); rename or delete it"
    )


# -- manifests (pure) --------------------------------------------------------------------------


def canary_deployment(
    desired: Mapping[str, Any],
    *,
    rollout_name: str,
    rollout_uid: str,
    template_hash: str,
    role: str = CANARY_ROLE,
) -> dict[str, Any]:
    """The canary Deployment for the rendered ``desired`` Deployment, at 0 replicas (with
    ``role`` preview: the blue-green preview Deployment, ``<name>-preview``).

    Same spec and template, so its pods carry every label the stable Service selects, plus
    ``rollouts.gitsync.dev/role: canary`` and the template hash, which also joins the selector
    (the canary's ReplicaSets never match stable pods). Owned by the Rollout, so deleting the
    Rollout garbage-collects it; without gitsync's tracking annotation, so no app claims it.
    """
    meta = desired.get("metadata") or {}
    spec = copy.deepcopy(dict(desired.get("spec") or {}))
    spec["replicas"] = 0
    selector = spec.setdefault("selector", {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = template_hash
    template = spec.setdefault("template", {})
    pod_labels = template.setdefault("metadata", {}).setdefault("labels", {})
    pod_labels.update({ROLE_LABEL: role, HASH_LABEL: template_hash})
    labels = dict(meta.get("labels") or {})
    labels.update({ROLE_LABEL: role, HASH_LABEL: template_hash})
    name = str(meta.get("name", ""))
    out_meta: dict[str, Any] = {
        "name": preview_name(name) if role == PREVIEW_ROLE else canary_name(name),
        "namespace": meta.get("namespace", ""),
        "labels": labels,
        "annotations": {OWNER_ANNOTATION: rollout_name},
    }
    if rollout_uid:
        out_meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": rollout_name,
                "uid": rollout_uid,
                "controller": True,
            }
        ]
    return {"apiVersion": DEPLOYMENT_API, "kind": "Deployment", "metadata": out_meta, "spec": spec}


def promoted_template(canary: Mapping[str, Any], *, keep_hash: bool = False) -> dict[str, Any]:
    """The live canary's pod template without the labels only a canary carries (keeping the
    template hash with ``keep_hash``: the stable pods of a Rollout that pins Services carry it)."""
    template = copy.deepcopy(dict((canary.get("spec") or {}).get("template") or {}))
    meta = template.setdefault("metadata", {})
    meta.pop("creationTimestamp", None)
    labels = meta.get("labels")
    if isinstance(labels, dict):
        labels.pop(ROLE_LABEL, None)
        if not keep_hash:
            labels.pop(HASH_LABEL, None)
    return template


def selector_string(selector: Mapping[str, Any]) -> str:
    """A label selector (``matchLabels`` and ``matchExpressions``) in query-string syntax."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, operator = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(expr.get("values") or [])
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _replicas(obj: Mapping[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def workload_states(
    stable: Mapping[str, Any] | None,
    canary: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
) -> tuple[core.WorkloadState | None, core.WorkloadState | None]:
    """Summaries of the live Deployments; ``pods`` are those the stable selector matches."""
    canary_hash = ""
    if canary is not None:
        template_meta = ((canary.get("spec") or {}).get("template") or {}).get("metadata") or {}
        canary_hash = str((template_meta.get("labels") or {}).get(HASH_LABEL, ""))
    stable_annotations = ((stable or {}).get("metadata") or {}).get("annotations") or {}
    stable_hash = str(stable_annotations.get(STABLE_HASH_ANNOTATION, ""))
    counts = {"stable": [0, 0, 0], "canary": [0, 0, 0]}  # pods, ready, ready with the hash label
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        labels = meta.get("labels") or {}
        if labels.get(ROLE_LABEL) in (CANARY_ROLE, PREVIEW_ROLE):
            if not canary_hash or labels.get(HASH_LABEL) != canary_hash:
                continue  # an earlier canary's pod on its way out
            side = counts["canary"]
        else:
            side = counts["stable"]
        side[0] += 1
        side[1] += _ready(pod)
        want = canary_hash if side is counts["canary"] else stable_hash
        side[2] += bool(want) and _ready(pod) and labels.get(HASH_LABEL) == want
    stable_state = canary_state = None
    if stable is not None:
        health = assess(stable)
        annotations = (stable.get("metadata") or {}).get("annotations") or {}
        stable_state = core.WorkloadState(
            replicas=_replicas(stable),
            pods=counts["stable"][0],
            ready=counts["stable"][1],
            template_hash=str(annotations.get(STABLE_HASH_ANNOTATION, "")),
            rolled_out=health.status == HealthStatus.HEALTHY,
            health_message=health.message,
            labeled_ready=counts["stable"][2],
        )
    if canary is not None:
        canary_state = core.WorkloadState(
            replicas=_replicas(canary),
            pods=counts["canary"][0],
            ready=counts["canary"][1],
            template_hash=canary_hash,
            labeled_ready=counts["canary"][2],
        )
    return stable_state, canary_state


# -- the executor ------------------------------------------------------------------------------


Decide = Callable[[Rollout, RolloutStatus, core.Observation], core.Decision]


def _pinned_services(spec: RolloutSpec) -> dict[str, str]:
    """The Services a rollout of ``spec`` pins, by role (``Observation.services``)."""
    return strategy_of(spec).pinned_services(spec)


def _pins(spec: RolloutSpec) -> bool:
    return bool(_pinned_services(spec))


class RolloutExecutor:
    """Runs canary rollouts against one cluster. Call it from one thread per Rollout at a time
    (the controller's per-app work queue guarantees that).

    Whom it acts as: ``begin`` and ``tick`` take the client acting for the Application (its
    ServiceAccount under impersonation, ``Syncer.client_for``), and every read and write of a
    tenant object - the Rollout's spec, the stable and canary Deployments, Pods, Services,
    Endpoints, Ingresses, HTTPRoutes - goes through it, so a Rollout from a tenant's repository
    can make the controller do nothing its ServiceAccount could not do itself (a Rollout or
    workload in another namespace, a kind it may not write). A 403 is not retried on a timer:
    the rollout turns Degraded with the API server's denial as its message (and the sync result
    of ``begin`` is SyncFailed with it).

    Only the Rollout's ``status`` is written with the executor's own (the controller's) client:
    it is the controller's bookkeeping (step, pause deadline, handled requests), which a tenant
    should not need ``rollouts/status`` rights to have written, nor be able to forge. It is
    written only for a Rollout the acting ServiceAccount may ``patch`` (a SelfSubjectAccessReview
    as it), so a tenant cannot have the controller write the status of another team's Rollout
    either. Discovery (which HTTPRoute version is served) is read as the controller, like all
    discovery (``KubeClient.impersonating``)."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        clock: Callable[[], datetime] = _utc_now,
        field_manager: str = ROLLOUT_FIELD_MANAGER,
        providers: MetricProviders | None = None,
    ):
        self.kube = kube
        self.clock = clock
        self.field_manager = field_manager
        self._selector_atomic: bool | None = None
        """Whether the API server applies ``Service.spec.selector`` as one atomic map (found
        out by a dry run the first time it matters)."""
        self._route_api_version = ""
        self.providers = providers or MetricProviders()

    def begin(
        self, work: RolloutWork, *, revision: str, kube: KubeClient | None = None
    ) -> RolloutStepResult:
        """A sync rendered ``work.target`` (see ``canary.start``). ``kube``: the client acting
        for the app (its ServiceAccount, ``Syncer.client_for``); the executor's own without."""
        tenant = kube or self.kube
        if work.error:
            return self._report_error(tenant, work.rollout, work.error)

        def decide(rollout: Rollout, status: RolloutStatus, obs: core.Observation) -> core.Decision:
            return strategy_of(rollout.spec).start(
                rollout.spec,
                status,
                obs,
                desired_hash=work.desired_hash,
                held=work.held,
                replicas=work.replicas,
                revision=revision,
            )

        return self._run(tenant, work.rollout, decide, work)

    def tick(
        self, namespace: str, name: str, *, kube: KubeClient | None = None
    ) -> RolloutStepResult:
        """Move the rollout of Rollout ``namespace/name`` on by what its status and the cluster
        allow (see ``canary.step``); ``kube`` as for ``begin``."""
        key = ResourceKey(GROUP, KIND, namespace, name)
        return self._run(
            kube or self.kube, key, lambda r, s, o: strategy_of(r.spec).step(r.spec, s, o), None
        )

    # -- internals -----------------------------------------------------------------------------

    def _run(
        self, tenant: KubeClient, key: ResourceKey, decide: Decide, work: RolloutWork | None
    ) -> RolloutStepResult:
        for _ in range(3):
            try:
                return self._once(tenant, key, decide, work)
            except _Conflict:
                continue
            except ApiError as exc:
                if exc.status == 403:  # retrying cannot help: RBAC must change first
                    denied = rbac_denied("rollout stopped", exc)
                    return self._report_error(tenant, key, denied, abort=True)
                log.warning("rollout failed", rollout=str(key), error=str(exc))
                return RolloutStepResult(
                    key, RolloutStatus(), (), FAILURE_REQUEUE_SECONDS, str(exc)
                )
        return RolloutStepResult(
            key, RolloutStatus(), (), 1.0, "the Rollout kept changing; try again"
        )

    def _report_error(
        self, tenant: KubeClient, key: ResourceKey, error: str, *, abort: bool = False
    ) -> RolloutStepResult:
        """Degraded with ``error`` (when the Rollout exists, may be read by ``tenant`` and may
        carry it - see ``_write_status``). ``abort``: the rollout in progress counts as aborted,
        so a retry request (``rollouts.gitsync.dev/retry``) starts it again once fixed."""
        try:
            live = tenant.get(API_VERSION, KIND, key.name, key.namespace)
            if live is None:
                return RolloutStepResult(key, RolloutStatus(), (), None, error)
            old = RolloutStatus.from_dict(live.get("status"))
            generation = int((live.get("metadata") or {}).get("generation") or 0)
            new = replace(old, phase=Phase.DEGRADED, message=error, observed_generation=generation)
            if abort:
                new = replace(new, aborted_hash=old.canary_hash)
            self._write_status(tenant, live, old, new)
        except _Conflict as exc:
            return RolloutStepResult(
                key, RolloutStatus(), (), FAILURE_REQUEUE_SECONDS, f"{error}; {exc}"
            )
        except ApiError as exc:
            # a denial (not the app's Rollout to read or to carry status) waits for RBAC
            requeue = None if exc.status == 403 else FAILURE_REQUEUE_SECONDS
            why = f"{error}; status not written: {exc.message or exc}"
            return RolloutStepResult(key, RolloutStatus(), (), requeue, why)
        return RolloutStepResult(key, new, (), None, error)

    def _once(
        self, kube: KubeClient, key: ResourceKey, decide: Decide, work: RolloutWork | None
    ) -> RolloutStepResult:
        live = kube.get(API_VERSION, KIND, key.name, key.namespace)
        if live is None:
            return RolloutStepResult(
                key, RolloutStatus(), (), None, f"Rollout {key} does not exist"
            )
        old = RolloutStatus.from_dict(live.get("status"))
        try:
            rollout = parse_rollout_doc(live)
        except RolloutSpecError as exc:
            return self._report_error(kube, key, f"invalid Rollout spec: {exc}")
        stable = kube.get(DEPLOYMENT_API, "Deployment", rollout.spec.target_ref.name, key.namespace)
        canary = kube.get(DEPLOYMENT_API, "Deployment", second_name(rollout.spec), key.namespace)
        foreign = _foreign_second(rollout, canary)
        if foreign:
            return self._report_error(kube, key, foreign)
        obs = self._observe(kube, rollout, key.namespace, stable=stable, canary=canary)
        decision = decide(rollout, old, obs)
        if decision.measure:
            obs = replace(obs, readings=self._read_metrics(key, rollout, decision.measure))
            decision = decide(rollout, old, obs)
        failure = self._execute_all(
            kube, decision, rollout, stable=stable, canary=canary, work=work
        )
        if failure is not None:
            return self._record_failure(
                kube,
                key,
                live,
                old,
                failure=failure,
                generation=rollout.generation,
                actions=decision.actions,
            )
        self._write_status(kube, live, old, decision.status)
        if decision.actions or decision.status.phase != old.phase:
            log.info(
                "rollout",
                rollout=str(key),
                phase=decision.status.phase,
                step=decision.status.current_step_index,
                weight=decision.status.current_weight,
                actions=[repr(a) for a in decision.actions],
            )
        return RolloutStepResult(key, decision.status, decision.actions, decision.requeue_after)

    def _observe(
        self,
        kube: KubeClient,
        rollout: Rollout,
        namespace: str,
        *,
        stable: Mapping[str, Any] | None,
        canary: Mapping[str, Any] | None,
    ) -> core.Observation:
        """What the decision core sees: both Deployments with the pods the stable one selects,
        the request annotations, the pinned Services and the router, at ``self.clock()``."""
        pods: list[dict[str, Any]] = []
        if stable is not None:
            selector = selector_string((stable.get("spec") or {}).get("selector") or {})
            if selector:
                pods = kube.list("v1", "Pod", namespace, label_selector=selector)["items"]
        stable_state, canary_state = workload_states(stable, canary, pods)
        return core.Observation(
            now=self.clock(),
            stable=stable_state,
            canary=canary_state,
            requests=core.Requests.from_annotations(rollout.annotations),
            generation=rollout.generation,
            services=self._services(kube, rollout),
            router=self._router(kube, rollout),
        )

    def _execute_all(
        self,
        kube: KubeClient,
        decision: core.Decision,
        rollout: Rollout,
        *,
        stable: Mapping[str, Any] | None,
        canary: Mapping[str, Any] | None,
        work: RolloutWork | None,
    ) -> _ActionFailure | None:
        """Carry out the decision's actions in order; the first that fails stops the rest and
        says what the loop does next (None: all done)."""
        for action in decision.actions:
            what = type(action).__name__
            try:
                self._execute(kube, action, rollout, stable=stable, canary=canary, work=work)
            except RolloutConfigError as exc:  # stalled: no retry until something changes
                return _ActionFailure(f"{what} stalled: {exc}")
            except ApiError as exc:
                if exc.status == 403:
                    return _ActionFailure(rbac_denied(f"{what} failed", exc), denied=True)
                return _ActionFailure.retried(f"{what} failed", exc)
            except RolloutNotReadyError as exc:
                return _ActionFailure.retried(f"{what} failed", exc)
        return None

    def _record_failure(
        self,
        kube: KubeClient,
        key: ResourceKey,
        live: Mapping[str, Any],
        old: RolloutStatus,
        *,
        failure: _ActionFailure,
        generation: int,
        actions: tuple[core.Action, ...],
    ) -> RolloutStepResult:
        """The old status with the failure's message (Degraded and marked aborted when RBAC
        denied the action), written where the tenant may carry it."""
        error = failure.error
        failed = replace(old, message=error, observed_generation=generation)
        if failure.denied:
            # Not retried on a timer: RBAC must change first. Degraded, and marked aborted
            # so that a retry request (rollouts.gitsync.dev/retry) starts it again then.
            failed = replace(failed, phase=Phase.DEGRADED, aborted_hash=old.canary_hash)
        try:
            self._write_status(kube, live, old, failed)
        except ApiError as exc:
            if exc.status != 403:
                raise
            # the action's denial is the reason; the status is not the app's to carry
            error = f"{error}; status not written: {exc.message or exc}"
        log.warning("rollout action failed", rollout=str(key), error=error)
        return RolloutStepResult(key, failed, actions, failure.requeue, error)

    def _read_metrics(
        self, key: ResourceKey, rollout: Rollout, names: Sequence[str]
    ) -> dict[str, Reading]:
        """A reading of each metric in ``names`` (never raises: errors are readings)."""
        metrics = {m.name: m for m in rollout.spec.metrics}
        readings = {name: self.providers.read(metrics[name]) for name in names if name in metrics}
        for name, reading in readings.items():
            log.info(
                "metric read",
                rollout=str(key),
                metric=name,
                value=reading.value,
                error=reading.error or None,
            )
        return readings

    def _scale(self, kube: KubeClient, name: str, namespace: str, replicas: int) -> None:
        kube.patch(
            DEPLOYMENT_API,
            "Deployment",
            name,
            {"spec": {"replicas": replicas}},
            namespace=namespace,
            field_manager=self.field_manager,
        )

    def _execute(
        self,
        kube: KubeClient,
        action: core.Action,
        rollout: Rollout,
        *,
        stable: Mapping[str, Any] | None,
        canary: Mapping[str, Any] | None,
        work: RolloutWork | None,
    ) -> None:
        namespace = rollout.namespace
        target = rollout.spec.target_ref.name
        if isinstance(action, core.Scale):
            name = target if action.role == core.Role.STABLE else second_name(rollout.spec)
            self._scale(kube, name, namespace, action.replicas)
        elif isinstance(action, core.CreateCanary):
            if work is None or work.desired_hash != action.template_hash:
                raise RolloutNotReadyError(
                    "the rendered template is not at hand; the next sync brings it"
                )
            manifest = canary_deployment(
                work.desired,
                rollout_name=rollout.name,
                rollout_uid=rollout.uid,
                template_hash=action.template_hash,
                role=strategy_of(rollout.spec).role,
            )
            kube.apply(manifest, field_manager=self.field_manager, force=True)
        elif isinstance(action, core.DeleteCanary):
            if canary is not None:
                uid = (canary.get("metadata") or {}).get("uid")
                kube.delete(
                    DEPLOYMENT_API,
                    "Deployment",
                    second_name(rollout.spec),
                    namespace,
                    precondition_uid=uid,
                )
        elif isinstance(action, core.PromoteStable):
            if canary is None or stable is None:
                raise RolloutNotReadyError("promotion needs both the stable and the canary")
            annotations = (stable.get("metadata") or {}).get("annotations")
            ops: list[dict[str, Any]] = [
                {
                    "op": "add",
                    "path": "/spec/template",
                    "value": promoted_template(canary, keep_hash=_pins(rollout.spec)),
                },
                {"op": "add", "path": "/spec/replicas", "value": action.replicas},
            ]
            if isinstance(annotations, dict):
                path = "/metadata/annotations/" + STABLE_HASH_ANNOTATION.replace("/", "~1")
                ops.append({"op": "add", "path": path, "value": action.template_hash})
            else:
                ops.append(
                    {
                        "op": "add",
                        "path": "/metadata/annotations",
                        "value": {STABLE_HASH_ANNOTATION: action.template_hash},
                    }
                )
            kube.patch(
                DEPLOYMENT_API,
                "Deployment",
                target,
                ops,
                namespace=namespace,
                patch_type="json",
                field_manager=self.field_manager,
            )
        elif isinstance(action, PinSelector):
            self._pin(kube, namespace, action)
        elif isinstance(action, SetRouterWeight):
            self._set_weight(kube, rollout, action.weight)

    # -- Services and routers ------------------------------------------------------------------

    def _services(self, kube: KubeClient, rollout: Rollout) -> dict[str, ServiceState]:
        """The Services the rollout pins, by role, with their Endpoints (``Observation``)."""
        names = _pinned_services(rollout.spec)
        out = {}
        for role, name in names.items():
            live = kube.get("v1", "Service", name, rollout.namespace)
            endpoints = None
            if live is not None:
                endpoints = kube.get("v1", "Endpoints", name, rollout.namespace)
            out[role] = service_state(name, live, endpoints)
        return out

    def _pin(self, kube: KubeClient, namespace: str, action: PinSelector) -> None:
        """Server-side apply of the selector key (see the module docstring)."""
        live = kube.get("v1", "Service", action.service, namespace)
        if live is None:
            raise RolloutConfigError(
                f"Service {action.service} does not exist: create it, or name an existing "
                "Service in the Rollout's spec.strategy"
            )
        selector = (live.get("spec") or {}).get("selector") or {}
        body = pinned_service(action.service, namespace, action.template_hash)
        if self._selector_atomic is None and any(k != HASH_LABEL for k in selector):
            dry = kube.apply(body, field_manager=self.field_manager, force=True, dry_run=True)
            kept = (dry.get("spec") or {}).get("selector") or {}
            self._selector_atomic = any(k not in kept for k in selector if k != HASH_LABEL)
        if self._selector_atomic:
            body = pinned_service(
                action.service, namespace, action.template_hash, live_selector=selector
            )
        kube.apply(body, field_manager=self.field_manager, force=True)

    def _route_api(self) -> str:
        """The served HTTPRoute version (``HTTPROUTE_VERSIONS``, preferred first); remembered
        once found, looked up again after the API server stops serving it."""
        if self._route_api_version:
            try:
                self.kube.resource(self._route_api_version, "HTTPRoute")
                return self._route_api_version
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self._route_api_version = ""
        for version in HTTPROUTE_VERSIONS:
            api = f"{GATEWAY_GROUP}/{version}"
            try:
                self.kube.resource(api, "HTTPRoute")
            except ApiError as exc:
                if exc.status == 404:
                    continue
                raise
            self._route_api_version = api
            return api
        raise RolloutConfigError(
            "the API server serves no Gateway API HTTPRoute: install the Gateway API CRDs, or "
            "use spec.strategy.canary.trafficRouting.nginx"
        )

    def _router(self, kube: KubeClient, rollout: Rollout) -> RouterState | None:
        """The router's weight as observed (None for a Rollout without ``trafficRouting``)."""
        canary = rollout.spec.canary
        routing = canary.traffic_routing if canary is not None else None
        if canary is None or routing is None:
            return None
        namespace = rollout.namespace
        if routing.nginx is not None:
            stable_name = routing.nginx.stable_ingress
            stable = kube.get(INGRESS_API, "Ingress", stable_name, namespace)
            live = kube.get(INGRESS_API, "Ingress", canary_ingress_name(stable_name), namespace)
            live_meta = (live or {}).get("metadata") or {}
            owner = (live_meta.get("annotations") or {}).get(OWNER_ANNOTATION)
            if live is not None and owner != rollout.name:
                return RouterState(
                    0,
                    f"Ingress {canary_ingress_name(stable_name)} exists and is not this "
                    f"Rollout's ({OWNER_ANNOTATION}: {owner!r}); rename or delete it",
                )
            problem = ""
            if stable is None:
                problem = f"the stable Ingress {stable_name} does not exist"
            else:
                try:
                    canary_ingress(
                        stable,
                        stable_service=canary.stable_service,
                        canary_service=canary.canary_service,
                        weight=0,
                        rollout_name=rollout.name,
                    )
                except RouterError as exc:
                    problem = str(exc)
            return RouterState(nginx_weight(live), problem)
        assert routing.gateway_api is not None
        name = routing.gateway_api.http_route
        try:
            route = kube.get(self._route_api(), "HTTPRoute", name, namespace)
        except ApiError as exc:
            return RouterState(0, str(exc.message or exc))
        except RolloutConfigError as exc:
            return RouterState(0, str(exc))
        if route is None:
            return RouterState(0, f"HTTPRoute {name} does not exist")
        weight = route_weight(route, canary.stable_service, canary.canary_service)
        if weight is None:
            return RouterState(
                0,
                f"no rule of HTTPRoute {name} has a backendRef to Service {canary.stable_service}",
            )
        return RouterState(weight)

    def _set_weight(self, kube: KubeClient, rollout: Rollout, weight: int) -> None:
        canary = rollout.spec.canary
        routing = canary.traffic_routing if canary is not None else None
        if canary is None or routing is None:
            raise RolloutConfigError(
                "the Rollout has no trafficRouting: add spec.strategy.canary.trafficRouting, "
                "or remove its setWeight steps"
            )
        namespace = rollout.namespace
        if routing.nginx is not None:
            stable_name = routing.nginx.stable_ingress
            name = canary_ingress_name(stable_name)
            if weight == 0:
                kube.delete(INGRESS_API, "Ingress", name, namespace)
                return
            stable = kube.get(INGRESS_API, "Ingress", stable_name, namespace)
            if stable is None:
                raise RolloutConfigError(
                    f"the stable Ingress {stable_name} does not exist: create it, or correct "
                    "spec.strategy.canary.trafficRouting.nginx.stableIngress"
                )
            try:
                manifest = canary_ingress(
                    stable,
                    stable_service=canary.stable_service,
                    canary_service=canary.canary_service,
                    weight=weight,
                    rollout_name=rollout.name,
                    rollout_uid=rollout.uid,
                )
            except RouterError as exc:
                raise RolloutConfigError(
                    f"{exc}: correct the stable Ingress {stable_name} or the Rollout's "
                    "stableService/canaryService"
                ) from exc
            kube.apply(manifest, field_manager=self.field_manager, force=True)
            return
        assert routing.gateway_api is not None
        api, name = self._route_api(), routing.gateway_api.http_route
        route = kube.get(api, "HTTPRoute", name, namespace)
        if route is None:
            raise RolloutConfigError(
                f"HTTPRoute {name} does not exist: create it, or correct "
                "spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute"
            )
        try:
            weighted = route_with_weight(
                route, canary.stable_service, canary.canary_service, weight
            )
        except RouterError as exc:
            raise RolloutConfigError(
                f"{exc}: correct HTTPRoute {name} or the Rollout's stableService/canaryService"
            ) from exc
        meta = route.get("metadata") or {}
        kube.patch(
            api,
            "HTTPRoute",
            name,
            {
                "metadata": {"resourceVersion": meta.get("resourceVersion")},
                "spec": {"rules": (weighted.get("spec") or {}).get("rules") or []},
            },
            namespace=namespace,
            field_manager=self.field_manager,
        )

    def _write_status(
        self,
        tenant: KubeClient,
        live: Mapping[str, Any],
        old: RolloutStatus,
        new: RolloutStatus,
    ) -> None:
        """Merge-patch the status subresource when it changed; ``_Conflict`` on a lost race.

        The write itself is the controller's (see the class docstring), and only for a Rollout
        ``tenant`` may patch: an ApiError 403 naming the denial otherwise."""
        before, after = old.to_dict(), new.to_dict()
        raw = live.get("status")
        stored: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        if after == before and all(stored.get(k) == v for k, v in after.items()):
            return
        patch: dict[str, Any] = dict(after)
        for key in before:
            if key not in after:
                patch[key] = None
        meta = live.get("metadata") or {}
        namespace = str(meta.get("namespace", ""))
        if tenant.impersonated_user and not tenant.may("patch", GROUP, "rollouts", namespace):
            raise ApiError(
                403,
                "Forbidden",
                f'User "{tenant.impersonated_user}" cannot patch resource "rollouts" in API '
                f'group "{GROUP}" in the namespace "{namespace}": its status is left alone',
            )
        try:
            self.kube.patch(
                API_VERSION,
                KIND,
                str(meta.get("name", "")),
                {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": patch},
                namespace=namespace,
                subresource="status",
                field_manager=self.field_manager,
            )
        except ApiError as exc:
            if exc.status == 409:
                raise _Conflict(str(exc)) from exc
            raise


# -- the sync layer's hook ---------------------------------------------------------------------


class RolloutSyncHook:
    """What the Syncer holds to hand pod-template changes over to rollouts.

    ``plan`` before the compare (the replacements are what gets compared and applied), ``start``
    after the apply of a real (not dry-run) sync.
    """

    def __init__(self, kube: KubeClient, *, executor: RolloutExecutor | None = None):
        self.kube = kube
        self.executor = executor or RolloutExecutor(kube)

    def plan(
        self,
        desired: Mapping[ResourceKey, Mapping[str, Any]],
        live: Mapping[ResourceKey, Mapping[str, Any] | None],
        *,
        kube: KubeClient | None = None,
    ) -> TakeoverPlan:
        """``takeover.plan_takeover``, with every targeted Deployment read fresh from the API
        server: ``live`` may come from a watch cache, and a cached copy from before a promotion
        would hold - and so re-apply - the old template. ``kube``: the client acting for the
        app (see ``RolloutExecutor``); these reads are the app's like the compare's."""
        tenant = kube or self.kube
        fresh = dict(live)
        for key in targeted_deployments(desired):
            fresh[key] = tenant.get(DEPLOYMENT_API, "Deployment", key.name, key.namespace)
        for key in pinned_objects(desired):  # a cached copy could undo a selector switch
            api_version = str(desired[key].get("apiVersion", ""))
            fresh[key] = tenant.get(api_version, key.kind, key.name, key.namespace)
        plan = plan_takeover(desired, fresh)
        work = tuple(self._mark_running(tenant, w) for w in plan.work)
        return dataclasses.replace(plan, work=work)

    def _mark_running(self, tenant: KubeClient, work: RolloutWork) -> RolloutWork:
        """Whether the Rollout already runs (or has aborted) this template, so a sync has
        nothing to start and the app is not out of sync because of it."""
        if not work.held:
            return work
        live = tenant.get(API_VERSION, KIND, work.rollout.name, work.rollout.namespace) or {}
        status = live.get("status") or {}
        running = work.desired_hash in (status.get("canaryHash"), status.get("abortedHash"))
        return dataclasses.replace(work, running=running)

    def start(
        self,
        work: Sequence[RolloutWork],
        *,
        revision: str,
        dry_run: bool = False,
        kube: KubeClient | None = None,
    ) -> list[ResourceResult]:
        """``begin`` each work item as ``kube`` (see ``RolloutExecutor``); one result per Rollout
        (SyncFailed when it could not)."""
        results = []
        for item in work:
            if dry_run:
                what = f"would roll out template {item.desired_hash}" if item.held else "unchanged"
                results.append(ResourceResult(item.rollout, ResultCode.SYNCED, f"{what} (dry run)"))
                continue
            outcome = self.executor.begin(item, revision=revision, kube=kube)
            if outcome.error:
                code, message = ResultCode.SYNC_FAILED, outcome.error
            else:
                code, message = ResultCode.SYNCED, outcome.status.message or outcome.status.phase
            results.append(ResourceResult(item.rollout, code, f"rollout: {message}"))
        return results
