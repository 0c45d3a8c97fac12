"""Table tests for gitsync.health, driven by the YAML fixtures in tests/fixtures/health.

Each fixture is a live object and the health a user should see for it (see the README there).
Around the table: the fixture set itself is checked (non-empty, well-formed, every registered kind
covered), aggregation is checked for worst-of ordering, and random input is fed to ``assess`` to
show that odd objects come back as a ``Health`` rather than an exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsync.health import CHECKS, Health, aggregate, assess
from gitsync.model import HealthStatus, ResourceKey

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "health"
FIXTURES = sorted(FIXTURE_DIR.glob("*.yaml"))
MIN_FIXTURES = 60


def load_fixture(path: Path) -> tuple[Any, HealthStatus, str]:
    """The object, expected status and expected message fragment of one fixture file."""
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path.name}: not a YAML mapping"
    assert set(document) == {"object", "expect"}, (
        f"{path.name}: needs exactly the keys 'object' and 'expect', has {sorted(document)}"
    )
    expect = document["expect"]
    assert isinstance(expect, dict), f"{path.name}: expect is not a mapping"
    assert set(expect) == {"status", "message_contains"}, (
        f"{path.name}: expect needs exactly 'status' and 'message_contains', has {sorted(expect)}"
    )
    assert isinstance(expect["message_contains"], str), f"{path.name}: message_contains not a str"
    return document["object"], HealthStatus(expect["status"]), expect["message_contains"]


def test_fixture_directory_is_populated() -> None:
    assert len(FIXTURES) >= MIN_FIXTURES, f"only {len(FIXTURES)} fixtures in {FIXTURE_DIR}"


def test_every_registered_kind_has_fixtures_for_several_states() -> None:
    statuses: dict[tuple[str, str], set[HealthStatus]] = {key: set() for key in CHECKS}
    for path in FIXTURES:
        obj, status, _ = load_fixture(path)
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            key = ResourceKey.of(obj)
            statuses.setdefault((key.group, key.kind), set()).add(status)
    # Legacy groups share their check with the current group; one state is enough for them.
    for (group, kind), seen in statuses.items():
        if (group, kind) in CHECKS:
            minimum = 1 if group == "extensions" else 2
            assert len(seen) >= minimum, f"{group}/{kind} has fixtures for {sorted(seen)} only"


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_fixture(path: Path) -> None:
    obj, status, fragment = load_fixture(path)
    health = assess(obj)
    assert health.status is status, f"{path.name}: {health}"
    assert fragment in health.message, f"{path.name}: {health.message!r} lacks {fragment!r}"


def test_absent_object_is_missing() -> None:
    assert assess(None).status is HealthStatus.MISSING
    assert assess({}).status is HealthStatus.MISSING


def test_non_object_is_unknown() -> None:
    health = assess(cast(Any, ["not", "an", "object"]))
    assert health.status is HealthStatus.UNKNOWN
    assert "Not a Kubernetes object" in health.message


def test_malformed_field_names_the_field() -> None:
    health = assess({"apiVersion": "apps/v1", "kind": "Deployment", "status": {"replicas": True}})
    assert health == Health(
        HealthStatus.UNKNOWN,
        "Cannot assess health of Deployment: status.replicas is not an integer: True",
    )


# --- aggregate --------------------------------------------------------------------------------


def test_aggregate_empty_is_healthy() -> None:
    assert aggregate([]).status is HealthStatus.HEALTHY


def test_aggregate_takes_worst_and_its_message() -> None:
    healths = [
        Health(HealthStatus.HEALTHY, "web ok"),
        Health(HealthStatus.DEGRADED, "db crashing"),
        Health(HealthStatus.PROGRESSING, "cache rolling out"),
    ]
    assert aggregate(iter(healths)) == Health(HealthStatus.DEGRADED, "db crashing")


def test_aggregate_keeps_first_message_among_equally_bad() -> None:
    healths = [
        Health(HealthStatus.PROGRESSING, "first"),
        Health(HealthStatus.PROGRESSING, "second"),
    ]
    assert aggregate(healths).message == "first"


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        (HealthStatus.HEALTHY, HealthStatus.SUSPENDED),
        (HealthStatus.SUSPENDED, HealthStatus.PROGRESSING),
        (HealthStatus.PROGRESSING, HealthStatus.MISSING),
        (HealthStatus.MISSING, HealthStatus.DEGRADED),
        (HealthStatus.DEGRADED, HealthStatus.UNKNOWN),
    ],
)
def test_aggregate_order(better: HealthStatus, worse: HealthStatus) -> None:
    for pair in ([better, worse], [worse, better]):
        result = aggregate(Health(status, status.value) for status in pair)
        assert result == Health(worse, worse.value)


# --- odd input never raises --------------------------------------------------------------------

FIELD_NAMES = [
    "metadata", "spec", "status", "generation", "observedGeneration", "replicas",
    "updatedReplicas", "availableReplicas", "readyReplicas", "paused", "conditions", "type",
    "reason", "message", "phase", "updateStrategy", "rollingUpdate", "partition",
    "currentRevision", "updateRevision", "desiredNumberScheduled", "updatedNumberScheduled",
    "numberAvailable", "containerStatuses", "initContainerStatuses", "state", "waiting", "name",
    "restartPolicy", "deletionTimestamp", "loadBalancer", "ingress", "ip", "hostname", "suspend",
    "active", "lastScheduleTime", "lastSuccessfulTime", "annotations", "health", "volumeName",
    "autoscaling.alpha.kubernetes.io/conditions", "currentReplicas", "desiredReplicas",
]  # fmt: skip
WORDS = [
    "True", "False", "Unknown", "Ready", "Available", "Progressing", "Complete", "Failed",
    "ReplicaFailure", "AbleToScale", "ScalingActive", "ScalingDisabled", "Running", "Pending",
    "Succeeded", "Bound", "Lost", "LoadBalancer", "OnDelete", "RollingUpdate", "CrashLoopBackOff",
    "ProgressDeadlineExceeded", "Healthy", "Paused", "Degraded", "2024-05-01T10:00:00Z", "[]",
    "[{\"type\": \"AbleToScale\", \"status\": \"False\"}]", "{",
]  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=5)
    | st.floats(allow_nan=False)
    | st.sampled_from(WORDS)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=25,
)
known_kinds = st.sampled_from(
    [(group, kind) for group, kind in CHECKS] + [("example.com", "Widget"), ("", "ConfigMap")]
)


@st.composite
def odd_objects(draw: st.DrawFn) -> dict[str, Any]:
    """An object of a known kind whose metadata, spec and status are random JSON."""
    group, kind = draw(known_kinds)
    version = draw(st.sampled_from(["v1", "v2", "v2beta1", "v1alpha1"]))
    obj: dict[str, Any] = {
        "apiVersion": f"{group}/{version}" if group else version,
        "kind": kind,
    }
    for field in ("metadata", "spec", "status"):
        if draw(st.booleans()):
            obj[field] = draw(json_values)
    return obj


@settings(max_examples=400, deadline=None)
@given(odd_objects())
def test_assess_never_raises_on_known_kinds(obj: dict[str, Any]) -> None:
    health = assess(obj)
    assert isinstance(health.status, HealthStatus)
    assert isinstance(health.message, str)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_assess_never_raises_on_random_dicts(obj: dict[str, Any]) -> None:
    health = assess(obj)
    assert isinstance(health.status, HealthStatus)
    assert isinstance(health.message, str)
