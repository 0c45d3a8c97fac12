"""Hook planning, pure: which manifests are hooks, their phases, waves and delete policies under
both prefixes and Helm's, the generateName rules of the render, and the runner's decisions."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gitsync.model import ResourceKey
from gitsync.render import RenderError
from gitsync.render.hooks import DeletePolicy, HookPhase, HookSpec, HookSpecError, hook_spec
from gitsync.render.manifest import to_manifests
from gitsync.sync.hooks import (
    Hook,
    HookOutcome,
    HookResult,
    hook_id,
    hook_verdict,
    phase_failed,
    plan_hooks,
    should_delete,
    split_hooks,
)

P, D = HookPhase, DeletePolicy


def job(
    annotations: dict[str, str], *, name: str = "migrate", generate: str = ""
) -> dict[str, Any]:
    meta: dict[str, Any] = {"annotations": annotations}
    if generate:
        meta["generateName"] = generate
    else:
        meta["name"] = name
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {}}


@pytest.mark.parametrize(
    ("annotations", "phases", "policies", "wave"),
    [
        ({"argocd.argoproj.io/hook": "PreSync"}, {P.PRE_SYNC}, {D.BEFORE_HOOK_CREATION}, 0),
        ({"gitsync.dev/hook": "PostSync"}, {P.POST_SYNC}, {D.BEFORE_HOOK_CREATION}, 0),
        (
            {"argocd.argoproj.io/hook": "PreSync, SyncFail"},
            {P.PRE_SYNC, P.SYNC_FAIL},
            {D.BEFORE_HOOK_CREATION},
            0,
        ),
        (
            {
                "argocd.argoproj.io/hook": "Sync",
                "argocd.argoproj.io/hook-delete-policy": "HookSucceeded,HookFailed",
                "argocd.argoproj.io/sync-wave": "3",
            },
            {P.SYNC},
            {D.HOOK_SUCCEEDED, D.HOOK_FAILED},
            3,
        ),
        (
            {
                "gitsync.dev/hook": "PostSync",
                "gitsync.dev/hook-delete-policy": "HookSucceeded",
                "gitsync.dev/sync-wave": "-2",
            },
            {P.POST_SYNC},
            {D.HOOK_SUCCEEDED},
            -2,
        ),
        ({"argocd.argoproj.io/hook": "Skip"}, {P.SKIP}, {D.BEFORE_HOOK_CREATION}, 0),
        ({"argocd.argoproj.io/hook": "PostDelete"}, {P.POST_DELETE}, {D.BEFORE_HOOK_CREATION}, 0),
        # Helm, mapped as Argo CD maps it
        (
            {"helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "-5"},
            {P.PRE_SYNC},
            {D.BEFORE_HOOK_CREATION},
            -5,
        ),
        (
            {"helm.sh/hook": "post-install", "helm.sh/hook-delete-policy": "hook-succeeded"},
            {P.POST_SYNC},
            {D.HOOK_SUCCEEDED},
            0,
        ),
        (
            {
                "helm.sh/hook": "post-upgrade",
                "helm.sh/hook-delete-policy": "before-hook-creation,hook-failed",
            },
            {P.POST_SYNC},
            {D.BEFORE_HOOK_CREATION, D.HOOK_FAILED},
            0,
        ),
        ({"helm.sh/hook": "crd-install"}, {P.PRE_SYNC}, {D.BEFORE_HOOK_CREATION}, 0),
        ({"helm.sh/hook": "pre-delete"}, {P.PRE_DELETE}, {D.BEFORE_HOOK_CREATION}, 0),
        ({"helm.sh/hook": "post-delete"}, {P.POST_DELETE}, {D.BEFORE_HOOK_CREATION}, 0),
        ({"helm.sh/hook": "test"}, {P.SKIP}, {D.BEFORE_HOOK_CREATION}, 0),
        ({"helm.sh/hook": "test-success"}, {P.SKIP}, {D.BEFORE_HOOK_CREATION}, 0),
        ({"helm.sh/hook": "pre-rollback,post-rollback"}, {P.SKIP}, {D.BEFORE_HOOK_CREATION}, 0),
        # an explicit Argo CD annotation wins over Helm's (and Helm's weight is then not the wave)
        (
            {
                "helm.sh/hook": "pre-install",
                "helm.sh/hook-weight": "7",
                "argocd.argoproj.io/hook": "PostSync",
            },
            {P.POST_SYNC},
            {D.BEFORE_HOOK_CREATION},
            0,
        ),
    ],
)
def test_declarations(
    annotations: dict[str, str], phases: set[HookPhase], policies: set[DeletePolicy], wave: int
) -> None:
    assert hook_spec(job(annotations)) == HookSpec(frozenset(phases), frozenset(policies), wave)


def test_a_main_resource_is_no_hook() -> None:
    assert hook_spec(job({"gitsync.dev/sync-wave": "2"})) is None
    assert hook_spec({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}) is None


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        (
            {"argocd.argoproj.io/hook": "PreSnyc"},
            "argocd.argoproj.io/hook: unknown value 'PreSnyc'",
        ),
        ({"gitsync.dev/hook": ""}, "gitsync.dev/hook is empty"),
        ({"helm.sh/hook": "pre-frobnicate"}, "helm.sh/hook: unknown value 'pre-frobnicate'"),
        (
            {"gitsync.dev/hook": "PreSync", "gitsync.dev/hook-delete-policy": "hook-succeeded"},
            "gitsync.dev/hook-delete-policy: unknown value 'hook-succeeded'",
        ),
        (
            {"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "heavy"},
            "helm.sh/hook-weight must be an integer",
        ),
    ],
)
def test_unknown_values_are_named(annotations: dict[str, str], named: str) -> None:
    with pytest.raises(HookSpecError, match=named):
        hook_spec(job(annotations))


def docs(*objs: dict[str, Any]) -> list[tuple[int, int, dict[str, Any]]]:
    return [(i, 1, obj) for i, obj in enumerate(objs, 1)]


def test_render_accepts_generate_name_for_a_hook_and_keys_it_by_the_prefix() -> None:
    [m] = to_manifests(
        docs(job({"argocd.argoproj.io/hook": "PostSync"}, generate="smoke-")),
        source="hooks.yaml",
        max_documents=10,
    )
    assert m.key == ResourceKey("batch", "Job", "", "smoke-")


def test_render_refuses_generate_name_on_a_main_resource() -> None:
    with pytest.raises(RenderError, match=r"needs a stable metadata\.name"):
        to_manifests(docs(job({}, generate="smoke-")), source="app.yaml", max_documents=10)


def test_render_refuses_an_unknown_phase_naming_it() -> None:
    with pytest.raises(RenderError, match=r"document 1: .*unknown value 'PreSnyc'"):
        to_manifests(
            docs(job({"gitsync.dev/hook": "PreSnyc"})), source="app.yaml", max_documents=10
        )


def test_an_object_without_name_or_generate_name_is_still_refused() -> None:
    with pytest.raises(RenderError, match=r"has no metadata\.name"):
        to_manifests(
            docs(job({"gitsync.dev/hook": "PreSync"}, name="")), source="a", max_documents=9
        )


FIXTURE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/sync-wave: "1"}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: schema
  annotations: {gitsync.dev/hook: PreSync}
---
apiVersion: batch/v1
kind: Job
metadata:
  generateName: smoke-
  annotations:
    argocd.argoproj.io/hook: PostSync
    argocd.argoproj.io/hook-delete-policy: HookSucceeded
---
apiVersion: batch/v1
kind: Job
metadata:
  name: chart-test
  annotations: {helm.sh/hook: test}
"""


def fixture_hooks() -> tuple[list[str], list[Hook]]:
    manifests = to_manifests(
        docs(*yaml.safe_load_all(FIXTURE)), source="app.yaml", max_documents=10
    )
    main, declared = split_hooks(manifests)
    hooks = [Hook(m.key, m.obj, spec, not m.obj["metadata"].get("name")) for m, spec in declared]
    return [m.key.name for m in main], hooks


def test_split_keeps_hooks_out_of_the_main_resources() -> None:
    main, hooks = fixture_hooks()
    assert main == ["web"]
    assert sorted(h.key.name for h in hooks) == ["chart-test", "migrate", "schema", "smoke-"]


def test_plan_runs_a_phase_wave_by_wave_and_never_a_skipped_hook() -> None:
    _, hooks = fixture_hooks()
    pre = [(wave, [h.key.name for h in members]) for wave, members in plan_hooks(hooks, P.PRE_SYNC)]
    assert pre == [(0, ["schema"]), (1, ["migrate"])]
    post = plan_hooks(hooks, P.POST_SYNC)
    assert [(w, [h.key.name for h in m]) for w, m in post] == [(0, ["smoke-"])]
    assert all(
        h.key.name != "chart-test"
        for p in P
        for _, m in plan_hooks(hooks, p)
        if p != P.SKIP
        for h in m
    )
    assert [h.spec.skipped for h in hooks if h.key.name == "chart-test"] == [True]


def test_hook_ids_differ_by_app_and_by_hook() -> None:
    key = ResourceKey("batch", "Job", "ns", "migrate")
    assert hook_id("ns/a", key) == hook_id("ns/a", key)
    assert hook_id("ns/a", key) != hook_id("ns/b", key)
    assert hook_id("ns/a", key) != hook_id("ns/a", ResourceKey("batch", "Job", "ns", "smoke-"))
    assert len(hook_id("ns/a", key)) <= 63  # a label value


def job_status(condition: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "status": {"conditions": [{"type": condition, "status": "True", "message": condition}]}
        if condition
        else {"active": 1},
    }


@pytest.mark.parametrize(
    ("live", "outcome"),
    [
        (job_status("Complete"), HookOutcome.SUCCEEDED),
        (job_status("Failed"), HookOutcome.FAILED),
        (job_status(""), HookOutcome.RUNNING),
        (None, HookOutcome.FAILED),
        (
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "status": {"phase": "Succeeded"},
            },
            HookOutcome.SUCCEEDED,
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "status": {"phase": "Failed"},
            },
            HookOutcome.FAILED,
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
            HookOutcome.SUCCEEDED,
        ),
    ],
)
def test_hook_verdict(live: dict[str, Any] | None, outcome: HookOutcome) -> None:
    assert hook_verdict(live)[0] == outcome


@pytest.mark.parametrize(
    ("policies", "outcome", "delete"),
    [
        ({D.HOOK_SUCCEEDED}, HookOutcome.SUCCEEDED, True),
        ({D.HOOK_SUCCEEDED}, HookOutcome.FAILED, False),
        ({D.HOOK_FAILED}, HookOutcome.FAILED, True),
        ({D.HOOK_FAILED}, HookOutcome.SUCCEEDED, False),
        ({D.BEFORE_HOOK_CREATION}, HookOutcome.SUCCEEDED, False),  # only at the next creation
        ({D.BEFORE_HOOK_CREATION}, HookOutcome.FAILED, False),
    ],
)
def test_delete_policy(policies: set[DeletePolicy], outcome: HookOutcome, delete: bool) -> None:
    assert should_delete(frozenset(policies), outcome) is delete


def test_a_phase_fails_on_its_first_unfinished_hook() -> None:
    key = ResourceKey("batch", "Job", "ns", "a")
    ok = HookResult(key, P.PRE_SYNC, HookOutcome.SUCCEEDED)
    bad = HookResult(key, P.PRE_SYNC, HookOutcome.FAILED, "Job failed")
    assert phase_failed([ok]) is None
    assert phase_failed([ok, bad]) is bad
