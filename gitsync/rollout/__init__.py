"""Progressive delivery: a sync step that takes over when a pod template changes.

A Rollout (``gitsync.dev/v1alpha1``, kept in Git next to the Deployment it governs) names a
Deployment and a strategy. When a sync would change that Deployment's pod template, the sync
applies everything else and holds the template (``takeover``); the rollout then runs the new
template as a canary beside the stable Deployment and moves it through the steps (``canary``,
the pure decision core; ``executor``, the one place that writes), until it is promoted into the
stable Deployment or aborted. ``bluegreen`` is the decision core of the blue-green strategy
(a preview Deployment behind its own Service, one switch of the active Service), ``routers`` the
traffic routers (ingress-nginx, Gateway API) and the Service selectors both pin. ``spec`` parses
the Rollout, ``math`` holds the replica arithmetic and the template hash, ``status`` what
survives a restart.

Layering: above ``sync`` (it uses the sync layer's result type and is called by it through a
hook the engine injects), below ``engine``; it writes to the cluster only through ``gitsync.kube``.

Owns: canary and blue-green. May import: sync, diff, health, kube, application, model, kinds,
errors, logs. The decision modules (``math``, ``canary``, ``bluegreen``, ``expressions``, ``spec``,
``status``, ``analysis``, ``routers``, ``takeover``) import no adapter at all; only ``executor``
writes and only ``providers``/``endpoints`` do network I/O (import-linter: ``pure-cores``,
``rollout-layers``).
"""

from gitsync.rollout.canary import Decision, Observation, WorkloadState, start, step
from gitsync.rollout.executor import RolloutExecutor, RolloutStepResult, RolloutSyncHook
from gitsync.rollout.math import actual_weight, canary_replicas, template_hash
from gitsync.rollout.spec import Rollout, RolloutSpec, RolloutSpecError, parse_rollout
from gitsync.rollout.status import Phase, RolloutStatus
from gitsync.rollout.takeover import RolloutWork, TakeoverPlan, plan_takeover

__all__ = [
    "Decision",
    "Observation",
    "Phase",
    "Rollout",
    "RolloutExecutor",
    "RolloutSpec",
    "RolloutSpecError",
    "RolloutStatus",
    "RolloutStepResult",
    "RolloutSyncHook",
    "RolloutWork",
    "TakeoverPlan",
    "WorkloadState",
    "actual_weight",
    "canary_replicas",
    "parse_rollout",
    "plan_takeover",
    "start",
    "step",
    "template_hash",
]
