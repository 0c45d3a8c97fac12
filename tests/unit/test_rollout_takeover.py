"""Takeover planning: which Deployments a rollout holds, and what the sync applies instead.

Also the pure manifest helpers the executor uses (the canary Deployment, the promoted template,
the pod selector, the workload summaries).
"""

from __future__ import annotations

import copy
from typing import Any

from gitsync.model import ResourceKey
from gitsync.rollout.executor import (
    canary_deployment,
    promoted_template,
    selector_string,
    workload_states,
)
from gitsync.rollout.math import HASH_LABEL, ROLE_LABEL, template_hash
from gitsync.rollout.status import OWNER_ANNOTATION, STABLE_HASH_ANNOTATION
from gitsync.rollout.takeover import plan_takeover

NS = "shop"
DEPLOYMENT_KEY = ResourceKey("apps", "Deployment", NS, "web")
ROLLOUT_KEY = ResourceKey("gitsync.dev", "Rollout", NS, "web")


def deployment(image: str = "web:2", replicas: int | None = 10) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": NS,
            "labels": {"team": "blue"},
            "annotations": {"gitsync.dev/tracking": "gitsync/app:apps/Deployment:shop/web"},
        },
        "spec": spec,
    }


def rollout(target: str = "web", name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": target},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
            **spec,
        },
    }


def live_of(obj: dict[str, Any], *, recorded: str | None, replicas: int = 8) -> dict[str, Any]:
    """``obj`` as the API server returns it: defaults added, the stable hash recorded."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid="u1", resourceVersion="7", generation=3)
    if recorded is not None:
        live["metadata"]["annotations"][STABLE_HASH_ANNOTATION] = recorded
    live["spec"]["replicas"] = replicas
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    template = live["spec"]["template"]
    template["metadata"]["creationTimestamp"] = None
    container = template["spec"]["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    template["spec"].update(dnsPolicy="ClusterFirst", restartPolicy="Always")
    live["status"] = {"replicas": replicas}
    return live


def desired_set(*objs: dict[str, Any]) -> dict[ResourceKey, dict[str, Any]]:
    return {ResourceKey.of(o): o for o in objs}


def hash_of(obj: dict[str, Any]) -> str:
    return template_hash(obj["spec"]["template"])


def test_deployments_without_a_rollout_are_not_touched() -> None:
    plan = plan_takeover(desired_set(deployment()), {DEPLOYMENT_KEY: None})
    assert plan.replacements == {} and plan.work == ()


def test_a_new_deployment_is_applied_as_rendered_with_its_hash() -> None:
    desired = deployment()
    plan = plan_takeover(desired_set(desired, rollout()), {})
    applied = plan.replacements[DEPLOYMENT_KEY]
    assert applied["spec"] == desired["spec"]
    assert applied["metadata"]["annotations"][STABLE_HASH_ANNOTATION] == hash_of(desired)
    [work] = plan.work
    assert (work.rollout, work.target, work.held, work.replicas) == (
        ROLLOUT_KEY,
        DEPLOYMENT_KEY,
        False,
        10,
    )
    assert work.desired_hash == hash_of(desired) and not work.error


def test_server_defaults_never_start_a_rollout() -> None:
    desired = deployment()
    live = live_of(desired, recorded=hash_of(desired))
    plan = plan_takeover(desired_set(desired, rollout()), {DEPLOYMENT_KEY: live})
    assert not plan.work[0].held
    assert plan.replacements[DEPLOYMENT_KEY]["spec"] == desired["spec"]


def test_a_template_change_is_held_and_everything_else_applies() -> None:
    old, new = deployment("web:1"), deployment("web:2")
    new["metadata"]["labels"]["team"] = "green"  # a non-template change
    new["spec"]["minReadySeconds"] = 5
    live = live_of(old, recorded=hash_of(old), replicas=8)
    plan = plan_takeover(desired_set(new, rollout()), {DEPLOYMENT_KEY: live})
    applied = plan.replacements[DEPLOYMENT_KEY]
    assert applied["metadata"]["labels"] == {"team": "green"}
    assert applied["spec"]["minReadySeconds"] == 5
    assert applied["spec"]["replicas"] == 8  # the rollout's share, not Git's 10
    template = applied["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "web:1"
    assert "creationTimestamp" not in template["metadata"]
    assert applied["metadata"]["annotations"][STABLE_HASH_ANNOTATION] == hash_of(old)
    assert applied["metadata"]["annotations"]["gitsync.dev/tracking"]
    [work] = plan.work
    assert work.held and work.desired_hash == hash_of(new) and work.replicas == 10
    assert work.desired["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"


def test_a_rollout_added_beside_an_existing_deployment_adopts_it() -> None:
    desired = deployment("web:2")
    live = live_of(deployment("web:1"), recorded=None)
    plan = plan_takeover(desired_set(desired, rollout()), {DEPLOYMENT_KEY: live})
    assert not plan.work[0].held
    assert plan.replacements[DEPLOYMENT_KEY]["spec"]["template"] == desired["spec"]["template"]


def test_replicas_not_in_git_stay_out_of_the_applied_object() -> None:
    old, new = deployment("web:1", replicas=None), deployment("web:2", replicas=None)
    live = live_of(old, recorded=hash_of(old), replicas=4)
    plan = plan_takeover(desired_set(new, rollout()), {DEPLOYMENT_KEY: live})
    assert "replicas" not in plan.replacements[DEPLOYMENT_KEY]["spec"]
    assert plan.work[0].replicas == 4


def test_a_bad_rollout_spec_still_holds_the_template_and_reports() -> None:
    old, new = deployment("web:1"), deployment("web:2")
    bad = rollout(progressDeadlineSeconds="soon")
    live = live_of(old, recorded=hash_of(old))
    plan = plan_takeover(desired_set(new, bad), {DEPLOYMENT_KEY: live})
    [work] = plan.work
    assert work.held and "spec.progressDeadlineSeconds" in work.error
    image = plan.replacements[DEPLOYMENT_KEY]["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "web:1"


def test_targets_outside_the_app_and_double_claims_are_errors() -> None:
    plan = plan_takeover(desired_set(rollout(target="api")), {})
    assert "not rendered next to the Rollout" in plan.work[0].error
    assert plan.replacements == {}
    two = plan_takeover(desired_set(deployment(), rollout(), rollout(name="web-2")), {})
    errors = {w.rollout.name: w.error for w in two.work}
    assert errors["web"] == "" and "already rolled out by Rollout web" in errors["web-2"]


def test_inputs_are_not_modified() -> None:
    desired = desired_set(deployment("web:2"), rollout())
    live = {DEPLOYMENT_KEY: live_of(deployment("web:1"), recorded="x")}
    before = copy.deepcopy((desired, live))
    plan = plan_takeover(desired, live)
    assert (desired, live) == before
    plan.replacements[DEPLOYMENT_KEY]["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    assert live == before[1]


# -- executor helpers -------------------------------------------------------------------------


def test_canary_deployment_selects_only_its_own_pods() -> None:
    desired = deployment("web:2")
    canary = canary_deployment(desired, rollout_name="web", rollout_uid="r-1", template_hash="h2")
    meta, spec = canary["metadata"], canary["spec"]
    assert meta["name"] == "web-canary" and meta["namespace"] == NS
    assert meta["annotations"] == {OWNER_ANNOTATION: "web"}  # no gitsync tracking annotation
    assert meta["ownerReferences"][0]["uid"] == "r-1"
    assert spec["replicas"] == 0
    assert spec["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: "h2"}
    assert spec["template"]["metadata"]["labels"] == {
        "app": "web",
        ROLE_LABEL: "canary",
        HASH_LABEL: "h2",
    }
    assert desired["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    # the canary's template, without its own labels, is the rendered one again
    assert template_hash(promoted_template(canary)) == hash_of(desired)
    assert promoted_template(canary)["metadata"]["labels"] == {"app": "web"}


def test_selector_string() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(selector) == "a=1,b=2,tier in (web,api),env notin (dev),team,!legacy"


def pod(role: str | None, ready: bool, *, hash_: str = "h2", deleting: bool = False) -> Any:
    labels = {"app": "web"}
    if role:
        labels.update({ROLE_LABEL: role, HASH_LABEL: hash_})
    meta: dict[str, Any] = {"labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_workload_states_count_ready_pods_per_side() -> None:
    stable = live_of(deployment("web:1"), recorded="h1", replicas=8)
    stable["metadata"]["generation"] = 1
    stable["status"] = {
        "observedGeneration": 1,
        "replicas": 8,
        "updatedReplicas": 8,
        "availableReplicas": 8,
    }
    canary = canary_deployment(deployment(), rollout_name="web", rollout_uid="", template_hash="h2")
    canary["spec"]["replicas"] = 2
    pods = [
        *[pod(None, True) for _ in range(7)],
        pod(None, False),
        pod(None, True, deleting=True),
        pod("canary", True),
        pod("canary", False),
        pod("canary", True, hash_="h-old"),  # an earlier canary's pod
    ]
    stable_state, canary_state = workload_states(stable, canary, pods)
    assert stable_state is not None and canary_state is not None
    assert (stable_state.replicas, stable_state.pods, stable_state.ready) == (8, 8, 7)
    assert stable_state.template_hash == "h1" and stable_state.rolled_out
    assert (canary_state.replicas, canary_state.pods, canary_state.ready) == (2, 2, 1)
    assert canary_state.template_hash == "h2"
    assert workload_states(None, None, pods) == (None, None)
