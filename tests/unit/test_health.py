"""Table tests for gitsync.health, driven by the YAML fixtures in tests/fixtures/health.

Each fixture is a live object and the health a user should see for it (see the README there).
Around the table: the fixture set itself is checked (non-empty, well-formed, every registered kind
covered), aggregation is checked for worst-of ordering, and random input is fed to ``assess`` to
show that odd objects come back as a ``Health`` rather than an exception.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsync import kinds
from gitsync.health import CHECKS, Health, aggregate, assess
from gitsync.health.fields import lenient_integer
from gitsync.model import HealthStatus, ResourceKey

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "health"
FIXTURES = sorted(FIXTURE_DIR.glob("*.yaml"))
MIN_FIXTURES = 200

FLUX_SOURCE_VERSIONS = {"source.toolkit.fluxcd.io/v1", "source.toolkit.fluxcd.io/v1beta2"}
# Every apiVersion a checked kind is, or was, served under: the fixtures must cover each one, so
# a rule that only works for one of them shows. The Flux kinds have no check of their own (the
# generic kstatus rules judge them) but are listed because users rely on their health.
SERVED_API_VERSIONS: dict[tuple[str, str], set[str]] = {
    ("apps", "Deployment"): {"apps/v1", "apps/v1beta1", "apps/v1beta2"},
    ("extensions", "Deployment"): {"extensions/v1beta1"},
    ("apps", "StatefulSet"): {"apps/v1", "apps/v1beta1", "apps/v1beta2"},
    ("apps", "DaemonSet"): {"apps/v1", "apps/v1beta2"},
    ("extensions", "DaemonSet"): {"extensions/v1beta1"},
    ("apps", "ReplicaSet"): {"apps/v1", "apps/v1beta2"},
    ("extensions", "ReplicaSet"): {"extensions/v1beta1"},
    ("", "Pod"): {"v1"},
    ("", "Service"): {"v1"},
    ("", "PersistentVolumeClaim"): {"v1"},
    ("networking.k8s.io", "Ingress"): {"networking.k8s.io/v1", "networking.k8s.io/v1beta1"},
    ("extensions", "Ingress"): {"extensions/v1beta1"},
    ("batch", "Job"): {"batch/v1"},
    ("batch", "CronJob"): {"batch/v1", "batch/v1beta1"},
    ("autoscaling", "HorizontalPodAutoscaler"): {
        "autoscaling/v1", "autoscaling/v2", "autoscaling/v2beta1", "autoscaling/v2beta2",
    },
    ("apiregistration.k8s.io", "APIService"): {
        "apiregistration.k8s.io/v1", "apiregistration.k8s.io/v1beta1",
    },
    ("apiextensions.k8s.io", "CustomResourceDefinition"): {
        "apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1beta1",
    },
    (kinds.GROUP, kinds.APPLICATION): {kinds.API_VERSION},
    (kinds.GROUP, kinds.ROLLOUT): {kinds.API_VERSION},
    ("argoproj.io", "Application"): {"argoproj.io/v1alpha1"},
    ("argoproj.io", "Rollout"): {"argoproj.io/v1alpha1"},
    ("argoproj.io", "Workflow"): {"argoproj.io/v1alpha1"},
    ("kustomize.toolkit.fluxcd.io", "Kustomization"): {
        "kustomize.toolkit.fluxcd.io/v1", "kustomize.toolkit.fluxcd.io/v1beta2",
    },
    ("helm.toolkit.fluxcd.io", "HelmRelease"): {
        "helm.toolkit.fluxcd.io/v2", "helm.toolkit.fluxcd.io/v2beta2",
        "helm.toolkit.fluxcd.io/v2beta1",
    },
    ("source.toolkit.fluxcd.io", "GitRepository"): FLUX_SOURCE_VERSIONS,
    ("source.toolkit.fluxcd.io", "HelmRepository"): FLUX_SOURCE_VERSIONS,
    ("source.toolkit.fluxcd.io", "HelmChart"): FLUX_SOURCE_VERSIONS,
    ("source.toolkit.fluxcd.io", "OCIRepository"): FLUX_SOURCE_VERSIONS,
    ("source.toolkit.fluxcd.io", "Bucket"): FLUX_SOURCE_VERSIONS,
}  # fmt: skip
LEGACY_GROUPS = {"extensions"}


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


@functools.cache
def fixture_objects() -> list[tuple[dict[str, Any], HealthStatus]]:
    """The existing objects among the fixtures, with their expected status (read once)."""
    found = []
    for path in FIXTURES:
        obj, status, _ = load_fixture(path)
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            found.append((obj, status))
    return found


def test_every_check_declares_the_api_versions_it_serves() -> None:
    undeclared = set(CHECKS) - set(SERVED_API_VERSIONS)
    assert not undeclared, f"add these checks to SERVED_API_VERSIONS: {sorted(undeclared)}"


@pytest.mark.parametrize(
    ("group", "kind"), sorted(SERVED_API_VERSIONS), ids=lambda value: str(value) or "core"
)
def test_fixtures_cover_every_served_api_version_healthy_and_not(group: str, kind: str) -> None:
    seen: dict[str, set[HealthStatus]] = {}
    for obj, status in fixture_objects():
        if obj.get("kind") == kind and ResourceKey.of(obj).group == group:
            seen.setdefault(obj.get("apiVersion", ""), set()).add(status)
    missing = SERVED_API_VERSIONS[(group, kind)] - set(seen)
    assert not missing, f"{group}/{kind}: no fixture for {sorted(missing)}"
    if group not in LEGACY_GROUPS:
        statuses = set().union(*seen.values())
        assert HealthStatus.HEALTHY in statuses, f"{group}/{kind}: no Healthy fixture"
        assert statuses - {HealthStatus.HEALTHY}, f"{group}/{kind}: only Healthy fixtures"


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_fixture(path: Path) -> None:
    obj, status, fragment = load_fixture(path)
    health = assess(obj)
    assert health.status is status, f"{path.name}: {health}"
    assert fragment in health.message, f"{path.name}: {health.message!r} lacks {fragment!r}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        ("3", 3),
        (" 12 ", 12),
        ("9" * 19, int("9" * 19)),
        ("9" * 20, None),  # longer than any int64: junk, and int() of a huge string is slow
        ("7d9f5c6b8", None),  # Argo Rollouts before v0.10 wrote a pod-template hash
        ("-1", None),
        ("\u0663", None),  # a digit, but not an ASCII one
        (True, None),
        (3.0, None),
        ({"value": 3}, None),
        (None, None),
    ],
)
def test_lenient_integer_reads_numbers_and_ignores_junk(
    value: object, expected: int | None
) -> None:
    assert (
        lenient_integer({"status": {"observedGeneration": value}}, "status", "observedGeneration")
        == expected
    )
    assert lenient_integer({"status": "not an object"}, "status", "observedGeneration") is None


def test_pending_deletion_names_at_most_five_finalizers_and_skips_junk() -> None:
    finalizers: list[object] = [f"example.com/f{n}" for n in range(7)] + [3, ""]
    health = assess(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "deletionTimestamp": "2024-05-01T10:00:00Z",
                "finalizers": finalizers,
            },
        }
    )
    assert health == Health(
        HealthStatus.PROGRESSING,
        "Pending deletion; blocked by finalizers: example.com/f0, example.com/f1, example.com/f2, "
        "example.com/f3, example.com/f4 and 2 more",
    )


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
    "finalizers", "lastState", "terminated", "exitCode", "service", "pauseConditions",
    "currentPodHash", "stableRS", "canary", "blueGreen", "activeSelector", "workloadRef",
    "workloadObservedGeneration", "rollout.argoproj.io/workload-generation", "strategy",
]  # fmt: skip
WORDS = [
    "True", "False", "Unknown", "Ready", "Available", "Progressing", "Complete", "Failed",
    "ReplicaFailure", "AbleToScale", "ScalingActive", "ScalingDisabled", "Running", "Pending",
    "Succeeded", "Bound", "Lost", "LoadBalancer", "OnDelete", "RollingUpdate", "CrashLoopBackOff",
    "ProgressDeadlineExceeded", "Healthy", "Paused", "Degraded", "2024-05-01T10:00:00Z", "[]",
    "Stalled", "Reconciling", "Suspended", "OOMKilled", "FailedGetScale", "InvalidSpec", "3",
    "Never", "OnFailure", "Always", "Local", "ScalingLimited", "RolloutAborted",
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
    [(group, kind) for group, kind in CHECKS]
    + [
        ("example.com", "Widget"),
        ("", "ConfigMap"),
        ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ]
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
