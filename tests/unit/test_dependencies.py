"""``spec.dependsOn``: parsing, when a dependency counts as Ready, cycles, and which apps a change
queues (gitsync.controller.dependencies, pure). The reconciler's use of it is in
``test_reconcile_decisions.py``; the wiring on a real control plane in
``tests/integration/test_depends_on_it.py``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitsync.application import SpecError, parse_application
from gitsync.application_status import (
    ApplicationStatus,
    Condition,
    HealthSummary,
    OperationState,
    SyncSummary,
)
from gitsync.controller.dependencies import (
    NOT_READY,
    DependentsIndex,
    describe_cycle,
    find_cycle,
    readiness,
    source_key,
    waits,
)

SHA1, SHA2 = "1" * 40, "2" * 40
REPO = "https://git.example.com/shop.git"


def app_doc(
    name: str,
    namespace: str = "team-a",
    depends_on: list[dict[str, str]] | None = None,
    *,
    repo: str = REPO,
    ready: str = "Synced",
    revision: str = SHA1,
    generation: int = 1,
) -> dict[str, Any]:
    """An Application as the store holds it; ``ready`` is its Ready condition's reason
    (``Synced``: True) and ``revision`` the one it is Synced at."""
    status = ApplicationStatus(
        observed_generation=generation,
        conditions=(Condition("Ready", "True" if ready == "Synced" else "False", ready),),
        sync=SyncSummary("Synced" if ready == "Synced" else "OutOfSync", revision),
        health=HealthSummary("Healthy" if ready == "Synced" else "Progressing"),
    )
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace, "generation": generation},
        "spec": {
            "source": {"repoURL": repo, "targetRevision": "main", "path": name},
            "destination": {"namespace": namespace},
            **({"dependsOn": depends_on} if depends_on is not None else {}),
        },
        "status": status.to_dict(),
    }


def lookup_of(*docs: dict[str, Any]) -> Any:
    apps = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs}
    return apps.get


# -- the spec ----------------------------------------------------------------------------------


def test_depends_on_defaults_to_the_apps_own_namespace() -> None:
    app = parse_application(
        app_doc("api", depends_on=[{"name": "db"}, {"name": "x", "namespace": "p"}])
    )
    assert [str(r) for r in app.depends_on] == ["team-a/db", "p/x"]


@pytest.mark.parametrize(
    ("depends_on", "field", "problem"),
    [
        ([{"name": "api"}], "spec.dependsOn[0]", "cycle: team-a/api -> team-a/api"),
        ([{"name": "api", "namespace": "team-a"}], "spec.dependsOn[0]", "depends on itself"),
        ([{"name": "db"}, {"name": "db", "namespace": "team-a"}], "spec.dependsOn[1]", "twice"),
        ([{"namespace": "team-a"}], "spec.dependsOn[0].name", "is required"),
        ([{"name": "db", "kind": "Kustomization"}], "spec.dependsOn[0].kind", "unknown field"),
        ([{"name": f"d{i}"} for i in range(33)], "spec.dependsOn", "at most 32"),
        ({"name": "db"}, "spec.dependsOn", "a list"),
    ],
    ids=["self", "self-explicit-namespace", "duplicate", "no-name", "unknown", "too-many", "map"],
)
def test_bad_depends_on_is_a_spec_error_naming_the_field(
    depends_on: Any, field: str, problem: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_application(app_doc("api", depends_on=depends_on))
    assert info.value.field == field
    assert problem in info.value.problem


# -- readiness ---------------------------------------------------------------------------------


def _with(doc: dict[str, Any], **status: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    current = ApplicationStatus.from_dict(out["status"])
    for name, value in status.items():
        setattr(current, name, value)
    out["status"] = current.to_dict()
    return out


READY_DB = app_doc("db")
DELETING = copy.deepcopy(READY_DB)
DELETING["metadata"]["deletionTimestamp"] = "2026-12-07T02:00:00Z"
SPEC_CHANGED = copy.deepcopy(READY_DB)
SPEC_CHANGED["metadata"]["generation"] = 2


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (READY_DB, ""),
        (None, "not found"),
        (DELETING, "being deleted"),
        (SPEC_CHANGED, "its current spec is not reconciled yet"),
        (
            _with(READY_DB, operation_state=OperationState(phase="Running", revision=SHA2)),
            "syncing revision 222222222222",
        ),
        (_with(READY_DB, conditions=None), "not reconciled yet"),
        (app_doc("db", ready="Progressing"), "Progressing"),
        (app_doc("db", ready="Degraded"), "Degraded"),
        (app_doc("db", ready="DependencyNotReady"), "DependencyNotReady"),
    ],
    ids=[
        "ready",
        "missing",
        "deleting",
        "spec-changed",
        "mid-sync",
        "never-reconciled",
        "progressing",
        "degraded",
        "itself-waiting",
    ],
)
def test_a_dependency_is_ready_only_synced_and_healthy_at_its_current_spec(
    obj: dict[str, Any] | None, reason: str
) -> None:
    assert readiness(obj) == reason


def test_a_dependency_on_the_same_source_must_be_synced_at_the_commit_about_to_deploy() -> None:
    """A push that changes db and api: api has resolved the new commit, db still shows Ready at
    the one before - api waits. A dependency on another repository is not compared so."""
    follows = (source_key(READY_DB["spec"]), SHA2)
    assert readiness(READY_DB, follows) == "Ready at 111111111111, not yet at 222222222222"
    assert readiness(app_doc("db", revision=SHA2), follows) == ""
    other_repo = app_doc("db", repo="https://git.example.com/db.git")
    assert readiness(other_repo, follows) == ""
    # the same repository spelled differently (credentials, .git, case of the host) is the same
    same = app_doc("db", repo="https://user:pw@GIT.example.com/shop")
    assert readiness(same, follows) != ""


def test_waits_name_each_dependency_not_ready_and_why() -> None:
    api = parse_application(app_doc("api", depends_on=[{"name": "db"}, {"name": "cache"}]))
    lookup = lookup_of(app_doc("db", ready="Progressing", revision=SHA2))
    assert [(w.name, w.reason) for w in waits(api, lookup, SHA2)] == [
        ("db", "Progressing"),
        ("cache", "not found"),
    ]
    lookup = lookup_of(app_doc("db", revision=SHA2), app_doc("cache", revision=SHA2))
    assert waits(api, lookup, SHA2) == ()


def test_a_dependency_in_another_namespace_is_read_for_readiness_only() -> None:
    """Another team's app: whether it is Ready, not why, and not whether it exists."""
    api = parse_application(
        app_doc(
            "api",
            depends_on=[
                {"name": "db", "namespace": "team-b"},
                {"name": "gone", "namespace": "team-b"},
            ],
        )
    )
    degraded = app_doc("db", "team-b", ready="Degraded")
    assert [w.reason for w in waits(api, lookup_of(degraded), SHA1)] == [NOT_READY, NOT_READY]
    assert waits(api, lookup_of(app_doc("db", "team-b"), app_doc("gone", "team-b")), SHA1) == ()


# -- cycles ------------------------------------------------------------------------------------


def graph(edges: dict[str, list[str]]) -> Any:
    return lookup_of(
        *(app_doc(a, depends_on=[{"name": b} for b in deps]) for a, deps in edges.items())
    )


def key(name: str) -> tuple[str, str]:
    return ("team-a", name)


@pytest.mark.parametrize(
    ("edges", "start", "cycle"),
    [
        ({"a": ["b"], "b": ["a"]}, "a", ["a", "b", "a"]),
        ({"a": ["b"], "b": ["a"]}, "b", ["b", "a", "b"]),
        ({"a": ["b", "x"], "b": ["c"], "c": ["a"], "x": []}, "a", ["a", "b", "c", "a"]),
        ({"a": ["b"], "b": ["c", "a"], "c": ["a"]}, "a", ["a", "b", "a"]),  # the shortest
        ({"z": ["a"], "a": ["b"], "b": ["a"]}, "z", None),  # z waits on a cycle, is not on it
        ({"a": ["b"], "b": ["c"], "c": ["b"]}, "a", None),  # a cycle elsewhere: the walk ends
        ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, "a", None),  # a diamond
        ({"a": ["missing"]}, "a", None),
    ],
    ids=["two", "two-from-b", "three", "shortest", "behind", "elsewhere", "diamond", "missing"],
)
def test_find_cycle_returns_the_shortest_chain_back_to_the_app(
    edges: dict[str, list[str]], start: str, cycle: list[str] | None
) -> None:
    found = find_cycle(key(start), graph(edges))
    assert (None if found is None else [name for _, name in found]) == cycle


def test_a_self_dependency_the_parser_did_not_see_is_a_cycle_too() -> None:
    """Written with the app's namespace spelled out, in a stored object never parsed."""
    lookup = lookup_of(app_doc("a", depends_on=[{"name": "a", "namespace": "team-a"}]))
    assert find_cycle(key("a"), lookup) == (key("a"), key("a"))


def test_the_cycle_search_is_bounded() -> None:
    """A chain of 50,000 apps: the walk stops after ``limit`` of them, reading each once."""
    reads: list[tuple[str, str]] = []

    def lookup(k: tuple[str, str]) -> dict[str, Any]:
        reads.append(k)
        n = int(k[1][1:])
        return app_doc(k[1], depends_on=[{"name": f"a{n + 1}"}] if n < 50_000 else [])

    assert find_cycle(key("a0"), lookup, limit=1000) is None
    assert len(reads) <= 1001 and len(set(reads)) == len(reads)


def test_a_cycle_names_only_the_apps_the_viewer_may_know() -> None:
    api = parse_application(app_doc("api", depends_on=[{"name": "db", "namespace": "team-b"}]))
    cycle = (key("api"), ("team-b", "db"), ("team-c", "secret-app"), key("api"))
    assert describe_cycle(cycle, api) == "team-a/api -> team-b/db -> team-c/... -> team-a/api"


# -- the index of dependents -------------------------------------------------------------------


def test_a_change_of_what_dependents_read_queues_exactly_them() -> None:
    index = DependentsIndex()
    assert index.observe(key("api"), app_doc("api", depends_on=[{"name": "db"}])) == set()
    assert index.observe(key("web"), app_doc("web", depends_on=[{"name": "db"}])) == set()
    assert index.observe(key("db"), app_doc("db", ready="Progressing")) == {key("api"), key("web")}
    assert index.observe(key("db"), app_doc("db", ready="Progressing")) == set()  # no news
    assert index.observe(key("db"), app_doc("db")) == {key("api"), key("web")}  # Ready now
    assert index.observe(key("db"), app_doc("db", revision=SHA2)) == {key("api"), key("web")}
    index.observe(key("web"), app_doc("web"))  # web no longer depends on db
    assert index.observe(key("db"), app_doc("db", generation=2)) == {key("api")}  # a spec edit
    assert index.observe(key("db"), None) == {key("api")}  # deleted
    assert index.observe(key("api"), None) == set()
    assert index.observe(key("db"), app_doc("db")) == set()  # nobody depends on it any more
