"""Declared (CEL) health checks: the bundled ones and an operator's, table-tested from fixtures.

The fixtures are in ``tests/fixtures/health-cel`` (README there): every bundled kind in a Healthy
and a Degraded state at least, and ``user/`` assessed with ``user-checks.yaml`` (a custom kind,
and Crossplane claims and composites through ``kind: "*"``). Around them: Flux's order of the
expressions, precedence (operator > code check > bundled > generic), the loader's errors naming
file, entry and field, and the evaluation budget - an expression that loops or builds without
bound is Unknown with a message, quickly, never a hang.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsync.health import assess
from gitsync.health.cel import MAX_EXPRESSION_CHARS, CelError, compile_expression
from gitsync.health.custom import (
    CustomChecks,
    HealthCheckError,
    bundled_checks,
    install,
    installed,
    load_strict,
    load_text,
)
from gitsync.model import HealthStatus, ResourceKey

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "health-cel"
BUNDLED_FIXTURES = sorted(p for p in FIXTURE_DIR.glob("*/*.yaml") if p.parent.name != "user")
USER_FIXTURES = sorted((FIXTURE_DIR / "user").glob("*.yaml"))
USER_CHECKS = load_strict((FIXTURE_DIR / "user-checks.yaml").read_text(), "user-checks.yaml")
BUNDLED_ONLY = CustomChecks.of(())


@pytest.fixture(autouse=True)
def _restore_installed() -> Iterator[None]:
    """``install`` is process-wide; every test leaves the bundled checks alone in force."""
    yield
    install([])


def load_fixture(path: Path) -> tuple[dict[str, Any], HealthStatus, str]:
    """The object, expected status and message fragment (tests/fixtures/health/README.md)."""
    document = yaml.safe_load(path.read_text())
    assert set(document) == {"object", "expect"}, path.name
    assert set(document["expect"]) == {"status", "message_contains"}, path.name
    expect = document["expect"]
    return document["object"], HealthStatus(expect["status"]), str(expect["message_contains"])


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@pytest.mark.parametrize("path", BUNDLED_FIXTURES, ids=_id)
def test_bundled_check(path: Path) -> None:
    obj, status, fragment = load_fixture(path)
    health = assess(obj, BUNDLED_ONLY)
    assert health.status == status, health.message
    assert fragment in health.message


@pytest.mark.parametrize("path", USER_FIXTURES, ids=_id)
def test_user_check(path: Path) -> None:
    obj, status, fragment = load_fixture(path)
    health = assess(obj, CustomChecks.of(USER_CHECKS))
    assert health.status == status, health.message
    assert fragment in health.message


def test_every_bundled_kind_has_a_healthy_and_a_degraded_fixture_in_its_group_folder() -> None:
    seen: dict[tuple[str, str], set[HealthStatus]] = {}
    for path in BUNDLED_FIXTURES:
        obj, status, _ = load_fixture(path)
        key = ResourceKey.of(obj)
        assert path.parent.name == key.group, f"{path.name} belongs in {key.group}/"
        seen.setdefault((key.group, key.kind), set()).add(status)
    for check in bundled_checks():
        states = seen.get((check.group, check.kind), set())
        assert {HealthStatus.HEALTHY, HealthStatus.DEGRADED} <= states, (
            f"{check.kind}.{check.group}: fixtures for {sorted(states)} only"
        )


BUILT_IN_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "health"
JUDGED_BY_BUILT_IN_RULES = {
    ("argoproj.io", "Rollout"),
    ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
    ("source.toolkit.fluxcd.io", "GitRepository"),
}
"""Kinds of the issue's list that gitsync's own rules judge (``argo_rollout``, kstatus in
``check_generic``): they say Suspended, which the CEL shape cannot, so no bundled entry shadows
them - and one would never be consulted for the Rollout, whose code check comes first."""


def test_the_issue_lists_these_kinds_and_each_is_bundled() -> None:
    bundled = {(c.group, c.kind) for c in bundled_checks()}
    assert {
        ("cert-manager.io", "Certificate"),
        ("cert-manager.io", "Issuer"),
        ("cert-manager.io", "ClusterIssuer"),
        ("external-secrets.io", "ExternalSecret"),
        ("serving.knative.dev", "Service"),
        ("keda.sh", "ScaledObject"),
        ("monitoring.coreos.com", "Prometheus"),
        ("monitoring.coreos.com", "Alertmanager"),
    } <= bundled
    assert not JUDGED_BY_BUILT_IN_RULES & bundled


@pytest.mark.parametrize("kind", sorted(JUDGED_BY_BUILT_IN_RULES), ids="/".join)
def test_the_issues_other_kinds_have_built_in_fixtures_healthy_and_not(
    kind: tuple[str, str],
) -> None:
    states = set()
    for path in BUILT_IN_FIXTURES.glob("*.yaml"):
        document = yaml.safe_load(path.read_text())
        obj = document.get("object") if isinstance(document, dict) else None
        if not isinstance(obj, dict):
            continue  # a table of cases, or an absent object (Missing)
        if (str(obj.get("apiVersion", "")).rpartition("/")[0], obj.get("kind")) == kind:
            obj, status, fragment = load_fixture(path)
            health = assess(obj)  # the bundled checks in force, as the controller runs
            assert health.status == status and fragment in health.message, path.name
            states.add(status)
    assert HealthStatus.HEALTHY in states and len(states) >= 2, states


# -- semantics -----------------------------------------------------------------------------------


def _widget(status: dict[str, Any] | None, generation: Any = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "shop", "generation": generation},
        "spec": {"size": 2},
    }
    if status is not None:
        obj["status"] = status
    return obj


def _checks(**fields: str) -> CustomChecks:
    entry = {"apiVersion": "example.com/v1", "kind": "Widget", **fields}
    return CustomChecks.of(load_strict(yaml.safe_dump([entry]), "checks.yaml"))


def test_the_expressions_run_in_fluxs_order_and_the_first_true_one_decides() -> None:
    everything_true = _checks(inProgress="true", failed="true", current="true")
    assert assess(_widget({}), everything_true).status == HealthStatus.PROGRESSING
    failed_and_current = _checks(inProgress="false", failed="true", current="true")
    health = assess(_widget({}), failed_and_current)
    assert health.status == HealthStatus.DEGRADED
    assert "failed is true (checks.yaml entry 1)" in health.message
    only_current = _checks(failed="false", current="true")
    assert assess(_widget({}), only_current).status == HealthStatus.HEALTHY


def test_no_true_expression_is_progressing() -> None:
    health = assess(_widget({}), _checks(current="false"))
    assert health.status == HealthStatus.PROGRESSING
    assert "no expression is true" in health.message


@pytest.mark.parametrize(
    ("generation", "observed", "status"),
    [
        (2, 1, HealthStatus.PROGRESSING),
        (2, "1", HealthStatus.PROGRESSING),  # a numeric string, as Argo Rollouts writes it
        (2, 2, HealthStatus.HEALTHY),
        (2, "2", HealthStatus.HEALTHY),
        (2, "5f7d", HealthStatus.HEALTHY),  # not a number: not compared
        (2, None, HealthStatus.HEALTHY),  # the controller does not write it
    ],
)
def test_a_stale_observed_generation_is_progressing_before_any_expression(
    generation: int, observed: Any, status: HealthStatus
) -> None:
    state = {} if observed is None else {"observedGeneration": observed}
    assert assess(_widget(state, generation), _checks(current="true")).status == status


def test_the_objects_top_level_fields_are_the_variables() -> None:
    checks = _checks(
        current="kind == 'Widget' && metadata.name == 'w' && spec.size == 2 && apiVersion != ''"
    )
    assert assess(_widget({}), checks).status == HealthStatus.HEALTHY


def test_an_absent_status_is_an_empty_map_so_has_works() -> None:
    checks = _checks(inProgress="!has(status.phase)", current="status.phase == 'Ready'")
    health = assess(_widget(None), checks)
    assert health.status == HealthStatus.PROGRESSING
    assert "inProgress is true" in health.message


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("status.phase == 'Ready'", "no such member"),  # a missing field, unguarded
        ("status.replicas > 'two'", "no matching overload"),  # a type error
        ("status.replicas", "gave int, not a bool"),
        ("1 / 0 == 1", "divide by zero"),
    ],
)
def test_an_evaluation_error_is_unknown_naming_the_expression_and_the_error(
    expression: str, fragment: str
) -> None:
    health = assess(_widget({"replicas": 2}), _checks(current=expression))
    assert health.status == HealthStatus.UNKNOWN
    assert "current of checks.yaml entry 1 could not be evaluated" in health.message
    assert fragment in health.message


def test_the_message_leads_with_the_objects_ready_condition() -> None:
    obj = _widget(
        {"conditions": [{"type": "Ready", "status": "False", "reason": "Broken", "message": "x"}]}
    )
    health = assess(obj, _checks(failed="true", current="false"))
    assert health.message == "Broken: x - failed is true (checks.yaml entry 1)"


def test_a_verdict_is_remembered_until_the_object_changes() -> None:
    checks = _checks(current="status.phase == 'Running'")
    obj = _widget({"phase": "Running"})
    obj["metadata"].update(uid="u-1", resourceVersion="7")
    assert assess(obj, checks).status == HealthStatus.HEALTHY
    same_version = {**obj, "status": {"phase": "Failed"}}  # what a resourceVersion rules out
    assert assess(same_version, checks).status == HealthStatus.HEALTHY  # remembered
    changed = {**same_version, "metadata": {**obj["metadata"], "resourceVersion": "8"}}
    assert assess(changed, checks).status == HealthStatus.PROGRESSING


# -- precedence ----------------------------------------------------------------------------------

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "generation": 1},
    "spec": {"replicas": 1},
    "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1},
}


def test_an_operators_check_overrides_a_code_check() -> None:
    assert assess(DEPLOYMENT, BUNDLED_ONLY).status != HealthStatus.HEALTHY
    entry = [{"apiVersion": "apps/v1", "kind": "Deployment", "current": "true"}]
    checks = CustomChecks.of(load_strict(yaml.safe_dump(entry), "ops.yaml"))
    health = assess(DEPLOYMENT, checks)
    assert health.status == HealthStatus.HEALTHY
    assert "ops.yaml entry 1" in health.message


def test_an_operators_check_overrides_a_bundled_one() -> None:
    certificate = yaml.safe_load(
        (FIXTURE_DIR / "cert-manager.io" / "certificate-degraded.yaml").read_text()
    )["object"]
    entry = [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "current": "true"}]
    checks = CustomChecks.of(load_strict(yaml.safe_dump(entry), "ops.yaml"))
    assert assess(certificate, BUNDLED_ONLY).status == HealthStatus.DEGRADED
    assert assess(certificate, checks).status == HealthStatus.HEALTHY


def test_an_exact_kind_wins_over_the_groups_star() -> None:
    entries = [
        {"apiVersion": "example.com/v1", "kind": "*", "current": "false", "failed": "true"},
        {"apiVersion": "example.com/v1", "kind": "Widget", "current": "true"},
    ]
    checks = CustomChecks.of(load_strict(yaml.safe_dump(entries), "ops.yaml"))
    assert assess(_widget({}), checks).status == HealthStatus.HEALTHY
    gadget = {**_widget({}), "kind": "Gadget"}
    assert assess(gadget, checks).status == HealthStatus.DEGRADED


def test_a_second_check_for_one_kind_is_a_problem_naming_both_and_the_first_stands() -> None:
    first = load_strict("- {apiVersion: example.com/v1, kind: Widget, current: 'true'}", "a.yaml")
    second = load_strict("- {apiVersion: example.com/v2, kind: Widget, current: 'false'}", "b.yaml")
    checks = CustomChecks.of(first + second)
    assert checks.problems == (
        "b.yaml entry 1: ignored, Widget is already checked by a.yaml entry 1",
    )
    assert assess(_widget({}), checks).status == HealthStatus.HEALTHY


def test_install_changes_what_assess_uses_by_default() -> None:
    assert assess(_widget({})).status == HealthStatus.HEALTHY  # the generic rule
    install(load_strict("- {apiVersion: example.com/v1, kind: Widget, current: 'false'}", "f"))
    assert installed().user_check("example.com", "Widget") is not None
    assert assess(_widget({})).status == HealthStatus.PROGRESSING
    install([])
    assert assess(_widget({})).status == HealthStatus.HEALTHY


# -- loading -------------------------------------------------------------------------------------

GOOD = "{apiVersion: example.com/v1, kind: Widget, current: 'true'}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("kind: Widget", "checks.yaml: expected a list of health checks, got a mapping"),
        ("- just a string", "checks.yaml entry 1: expected a mapping, got a string"),
        (
            "- {apiVersion: example.com/v1, kind: Widget, current: 'true', inprogress: 'x'}",
            "checks.yaml entry 1 (Widget): unknown field 'inprogress'",
        ),
        (
            "- {apiVersion: example.com/v1, kind: Widget, failed: 'true'}",
            "checks.yaml entry 1 (Widget): current is required",
        ),
        (
            "- {kind: Widget, current: 'true'}",
            "checks.yaml entry 1 (Widget): apiVersion must be",
        ),
        (
            "- {apiVersion: a/b/c, kind: Widget, current: 'true'}",
            "checks.yaml entry 1 (Widget): apiVersion must be",
        ),
        ("- {apiVersion: example.com/v1, current: 'true'}", "entry 1: kind must be"),
        (
            "- {apiVersion: v1, kind: '*', current: 'true'}",
            "entry 1 (*): kind '*' needs an API group",
        ),
        (
            "- {apiVersion: v1, kind: Secret, current: 'true'}",
            "entry 1 (Secret): checks for Secrets are refused",
        ),
        (
            "- {apiVersion: example.com/v1, kind: Widget, current: 'status.phase =='}",
            "checks.yaml entry 1 (Widget): current: not a CEL expression",
        ),
        (
            "- {apiVersion: example.com/v1, kind: Widget, current: 'true', failed: 3}",
            "checks.yaml entry 1 (Widget): failed must be a string",
        ),
        (
            "- {apiVersion: example.com/v1, kind: Widget, current: ''}",
            "checks.yaml entry 1 (Widget): current: is empty",
        ),
        (
            f"- {{apiVersion: example.com/v1, kind: Widget, current: '{'(' * 60}true{')' * 60}'}}",
            "current: nested deeper than",
        ),
        (
            f"- {{apiVersion: example.com/v1, kind: Widget, current: '{'true && ' * 300}true'}}",
            f"current: is longer than {MAX_EXPRESSION_CHARS} characters",
        ),
        ("- &w " + GOOD + "\n- *w", "checks.yaml: YAML aliases (*name) are not supported"),
        ("[" * 20 + "]" * 20, "checks.yaml: nested deeper than 16 levels"),
        ("- {apiVersion: [", "checks.yaml: not valid YAML"),
        ("- x\n" * 200_000, "checks.yaml: larger than"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_a_bad_entry_is_a_problem_naming_the_source_entry_and_field(
    text: str, problem: str
) -> None:
    checks, problems = load_text(text, "checks.yaml")
    assert checks == []
    assert len(problems) == 1 and problem in problems[0], problems
    with pytest.raises(HealthCheckError, match=r"checks\.yaml"):
        load_strict(text, "checks.yaml")


def test_a_bad_entry_leaves_the_others_standing() -> None:
    text = f"- {GOOD}\n- {{apiVersion: example.com/v1, kind: Gadget, current: '1 +'}}\n"
    checks, problems = load_text(text, "ConfigMap gitsync/checks key a.yaml")
    assert [c.kind for c in checks] == ["Widget"]
    assert len(problems) == 1
    assert problems[0].startswith(
        "ConfigMap gitsync/checks key a.yaml entry 2 (Gadget): current: not a CEL expression"
    )


def test_an_empty_file_declares_nothing() -> None:
    assert load_text("", "f") == ([], [])
    assert load_text("# nothing yet\n", "f") == ([], [])


# -- the budget ----------------------------------------------------------------------------------

BIG_LIST = list(range(2000))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("expression", "items", "fragment"),
    [
        # three nested macros over 2,000 items: 8e9 iterations, days without the bound
        (
            "spec.items.all(a, spec.items.all(b, spec.items.all(c, a + b + c >= 0)))",
            2000,
            "exceeded",
        ),
        ("spec.items.exists(a, spec.items.exists(b, a + b < 0))", 2000, "exceeded"),
        # comparing lists of lists: few nodes, one comparison walks 500 x 500 items; charged for
        # what it is given before it runs, so the cost budget stops it, not the clock after
        ("spec.items.map(a, spec.items) == spec.items.map(b, spec.items)", 500, "budget of"),
        # string doubling in a macro chain: 2^40 characters
        ("['ab']" + ".map(s, s + s)" * 40 + ".size() > 0", 0, "built a string longer than"),
        # list doubling
        ("[spec.items]" + ".map(l, l + l)" * 20 + ".size() > 0", 2000, "built a list or map"),
    ],
    ids=["triple-all", "double-exists", "deep-compare", "string-doubling", "list-doubling"],
)
def test_an_expression_over_its_budget_is_unknown_quickly(
    expression: str, items: int, fragment: str
) -> None:
    obj = {**_widget({}), "spec": {"items": list(range(items))}}
    started = time.monotonic()
    health = assess(obj, _checks(current=expression))
    elapsed = time.monotonic() - started
    assert health.status == HealthStatus.UNKNOWN, health.message
    assert fragment in health.message
    assert "current of checks.yaml entry 1 could not be evaluated" in health.message
    assert elapsed < 10, f"took {elapsed:.1f}s"


def test_the_cost_budget_stops_evaluation_before_the_time_limit() -> None:
    expression = compile_expression("spec.items.all(a, spec.items.all(b, a + b >= 0))")
    variables = {"spec": {"items": BIG_LIST}}
    with pytest.raises(CelError, match="evaluation budget of 1000 units"):
        expression.evaluate(variables, max_cost=1000, max_seconds=60)


def test_the_time_limit_stops_evaluation_within_the_cost_budget() -> None:
    expression = compile_expression("spec.items.all(a, spec.items.all(b, a + b >= 0))")
    started = time.monotonic()
    with pytest.raises(CelError, match="time limit"):
        expression.evaluate({"spec": {"items": BIG_LIST}}, max_cost=10**12, max_seconds=0.2)
    assert time.monotonic() - started < 5


def test_matches_runs_in_linear_time_on_a_pattern_that_backtracks_in_python() -> None:
    text = "a" * 5000 + "!"
    started = time.monotonic()
    health = assess(_widget({"text": text}), _checks(current="status.text.matches('^(a+)+$')"))
    assert health.status == HealthStatus.PROGRESSING  # no match: not current
    assert time.monotonic() - started < 2


def test_a_real_check_over_a_large_status_fits_the_budget() -> None:
    conditions = [{"type": f"T{i}", "status": "True"} for i in range(50)]
    conditions.append({"type": "Ready", "status": "True"})
    obj = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "c", "namespace": "shop"},
        "status": {"conditions": conditions},
    }
    assert assess(obj, BUNDLED_ONLY).status == HealthStatus.HEALTHY


def test_nothing_in_an_evaluation_escapes_as_an_exception() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    health = assess({**_widget({}), "spec": deep}, _checks(current="has(spec.x)"))
    assert health.status in {HealthStatus.UNKNOWN, HealthStatus.HEALTHY}


# -- odd objects ---------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-3, 5) | st.sampled_from(["True", "Ready", "x"])
condition = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["Ready", "Synced", "Reconciling", "Stalled", "Available"])
        | scalars,
        "status": st.sampled_from(["True", "False", "Unknown", "Degraded"]) | scalars,
        "reason": st.sampled_from(["Creating", "Progressing", "Failed"]) | scalars,
        "message": st.text(max_size=5) | scalars,
    },
)
json_values = st.recursive(
    scalars | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["phase", "conditions", "x"]), inner, max_size=3)
    ),
    max_leaves=12,
)
statuses = st.fixed_dictionaries(
    {},
    optional={
        "conditions": st.lists(condition, max_size=4) | json_values,
        "phase": st.sampled_from(["Healthy", "Degraded", "Progressing", "Paused"]) | scalars,
        "observedGeneration": scalars | st.text(max_size=3),
    },
)


@st.composite
def bundled_kind_objects(draw: st.DrawFn) -> dict[str, Any]:
    check = draw(st.sampled_from(bundled_checks()))
    obj: dict[str, Any] = {"apiVersion": f"{check.group}/v1", "kind": check.kind}
    if draw(st.booleans()):
        obj["metadata"] = {"name": "x", "generation": draw(scalars | st.text(max_size=3))}
    if draw(st.booleans()):
        obj["status"] = draw(statuses | json_values)
    if draw(st.booleans()):
        obj["spec"] = draw(json_values)
    return obj


@settings(max_examples=120, deadline=None)
@given(bundled_kind_objects())
def test_assess_never_raises_on_odd_objects_of_bundled_kinds(obj: dict[str, Any]) -> None:
    health = assess(obj, BUNDLED_ONLY)
    assert isinstance(health.status, HealthStatus)
    assert isinstance(health.message, str)
