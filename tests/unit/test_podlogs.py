"""The pure parts of Pod logs (issue 20): who may read them, the query's bounds, which Pods
belong to an Application, where a stream is cut - and the simulated kubelet's answers.

``AppPods`` reads through an in-memory ``PodReader`` (gitsync's own interface over the
Kubernetes adapter); the wiring to the real API server is ``tests/integration/test_pod_logs_it``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gitsync.appcli import matching_pods
from gitsync.localenv.kubelet import (
    GENERATED_LINE_BYTES,
    LogRequestError,
    _limited,
    container_log,
    generated_line,
)
from gitsync.web.auth import ANONYMOUS, NOBODY, Method, Principal, Role, Via, global_grant
from gitsync.web.podlogs import AppPods, LogLimits, LogQuery, LogsRole, cut_stream, may_read_logs
from gitsync.web.rbac import Authorizer, Grant

ADMIN = Principal("api-token", Via.BEARER, Method.STATIC_TOKEN, global_grant(Role.ADMIN))
VIEWER = Principal("read-only-token", Via.BEARER, Method.STATIC_TOKEN, global_grant(Role.VIEWER))
TEAM_A_ADMIN = Principal("alice", Via.SESSION, Method.OIDC, (Grant(Role.ADMIN, ("team-a",)),))


@pytest.mark.parametrize(
    ("allowed", "principal", "may"),
    [
        (LogsRole.ADMIN, ADMIN, True),
        (LogsRole.ADMIN, VIEWER, False),
        (LogsRole.VIEWER, ADMIN, True),
        (LogsRole.VIEWER, VIEWER, True),
        (LogsRole.VIEWER, ANONYMOUS, False),
        (LogsRole.ADMIN, ANONYMOUS, False),
        (LogsRole.NONE, ADMIN, False),
        (LogsRole.NONE, VIEWER, False),
        (LogsRole.VIEWER, NOBODY, False),
    ],
)
def test_who_may_read_logs(allowed: LogsRole, principal: Principal, may: bool) -> None:
    authorizer = Authorizer()
    assert may_read_logs(principal, allowed, lambda a: authorizer.allows(principal, a, "x")) is may


def test_logs_are_a_per_project_decision() -> None:
    """An admin of team-a reads team-a's logs, not team-b's (issue 21's roles per project)."""
    authorizer = Authorizer()

    def may(namespace: str) -> bool:
        return may_read_logs(
            TEAM_A_ADMIN,
            LogsRole.ADMIN,
            lambda action: authorizer.allows(TEAM_A_ADMIN, action, namespace),
        )

    assert may("team-a") and not may("team-b")


LIMITS = LogLimits(max_bytes=4096, max_seconds=5)


def test_a_query_gets_the_default_tail_and_always_the_byte_limit() -> None:
    query = LogQuery.parse({"pod": "web-1"}, LIMITS)
    assert query.kube_query(LIMITS) == {"tailLines": "1000", "limitBytes": "4096"}
    query = LogQuery.parse(
        {"pod": "web-1", "container": "app", "previous": "true", "follow": "1",
         "tailLines": "5", "sinceSeconds": "60", "namespace": "team-a"},
        LIMITS,
    )  # fmt: skip
    assert query.namespace == "team-a"
    assert query.kube_query(LIMITS) == {
        "tailLines": "5",
        "limitBytes": "4096",
        "container": "app",
        "previous": "true",
        "follow": "true",
        "sinceSeconds": "60",
    }


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({}, "pod: required"),
        ({"pod": "../secrets/x"}, "pod: not a Kubernetes name"),
        ({"pod": "a", "container": "a b"}, "container: not a Kubernetes name"),
        ({"pod": "a", "tailLines": "0"}, "tailLines:"),
        ({"pod": "a", "tailLines": "100001"}, "tailLines:"),
        ({"pod": "a", "tailLines": "-5"}, "tailLines:"),
        ({"pod": "a", "sinceSeconds": "x"}, "sinceSeconds:"),
        ({"pod": "a", "follow": "maybe"}, "follow:"),
        ({"pod": "a", "kind": "Secret"}, "kind: unknown parameter"),
        ({"pod": "a", "limitBytes": "999999999"}, "limitBytes: unknown parameter"),
    ],
)
def test_bad_queries_are_refused_naming_the_parameter(args: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match="^" + named.replace("(", r"\(")):
        LogQuery.parse(args, LIMITS)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_bytes": 10},
        {"max_seconds": 0},
        {"max_seconds": 100_000},
        {"max_streams": 0},
    ],
)
def test_limits_out_of_range_are_refused_naming_the_flag(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"^--logs-max-"):
        LogLimits(**bad)


def test_a_stream_is_cut_at_the_byte_limit_and_says_so() -> None:
    chunks = iter([b"a" * 3000, b"b" * 3000, b"c" * 3000])
    out = list(cut_stream(chunks, LIMITS, threading.Event()))
    assert b"".join(out[:-1]) == b"a" * 3000 + b"b" * 1096
    assert out[-1] == b"\n[gitsync: log cut at 4096 bytes (--logs-max-bytes)]\n"
    assert next(chunks) == b"c" * 3000  # never read past the limit


def test_a_stream_under_the_limit_passes_whole_and_a_timed_out_one_says_so() -> None:
    assert list(cut_stream(iter([b"x\n"]), LIMITS, threading.Event())) == [b"x\n"]
    timed_out = threading.Event()
    timed_out.set()
    out = list(cut_stream(iter([b"x\n"]), LIMITS, timed_out))
    assert out == [b"x\n", b"\n[gitsync: stream ended after 5 s (--logs-max-seconds)]\n"]


# -- which Pods belong to an Application ---------------------------------------------------------


def _obj(api_version: str, kind: str, name: str, owner: dict[str, Any] | None = None) -> Any:
    meta: dict[str, Any] = {"name": name, "namespace": "team-a", "uid": f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["name"],
             "uid": owner.get("uid", f"uid-{owner['name']}"), "controller": True}
        ]  # fmt: skip
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


class Cluster:
    """Objects in memory behind the ``PodReader`` interface; counts the reads."""

    def __init__(self, *objs: Any):
        self.objs = {
            (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs
        }
        self.reads: list[tuple[str, str, str]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> Any:
        self.reads.append((kind, namespace, name))
        return self.objs.get((kind, namespace, name))

    def list(self, api_version: str, kind: str, namespace: str = "", *, limit: Any = None) -> Any:
        return {"items": [o for k, o in self.objs.items() if k[0] == kind and k[1] == namespace]}

    def open_pod_log(
        self, namespace: str, pod: str, query: dict[str, str], *, timeout: float = 60.0
    ) -> tuple[Iterator[bytes], Callable[[], None]]:
        raise AssertionError("not read here")


def app(*managed: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "apps", "name": "shop"},
        "spec": {"destination": {"namespace": "team-a"}},
        "status": {
            "resources": [
                {"group": g, "kind": k, "namespace": "team-a", "name": n} for g, k, n in managed
            ]
        },
    }


DEPLOY = _obj("apps/v1", "Deployment", "web")
RS = _obj(
    "apps/v1",
    "ReplicaSet",
    "web-5d9",
    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
)
POD = _obj(
    "v1", "Pod", "web-5d9-x", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9"}
)
STRAY = _obj("v1", "Pod", "stray")
IMPOSTOR = _obj("v1", "Pod", "impostor", {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "web-5d9", "uid": "not-the-rs"})  # fmt: skip
FAKE_CHILD = _obj("v1", "Pod", "fake-child", {"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "web", "uid": "made-up"})  # fmt: skip
JOB_POD = _obj(
    "v1", "Pod", "migrate-x", {"apiVersion": "batch/v1", "kind": "Job", "name": "migrate"}
)
JOB = _obj("batch/v1", "Job", "migrate")
SECRET = _obj("v1", "Secret", "db")


def test_a_deployments_pods_belong_to_the_app_through_their_replicaset() -> None:
    cluster = Cluster(DEPLOY, RS, POD, STRAY, IMPOSTOR, FAKE_CHILD, JOB, JOB_POD, SECRET)
    pods = AppPods(app(("apps", "Deployment", "web"), ("batch", "Job", "migrate")), cluster)
    assert pods.pod("team-a", "web-5d9-x") == POD
    assert pods.pod("team-a", "migrate-x") == JOB_POD
    assert pods.pod("team-a", "stray") is None
    assert pods.pod("team-a", "impostor") is None  # names the ReplicaSet, but not its uid
    assert pods.pod("team-a", "fake-child") is None  # names the Deployment itself, not its uid
    assert pods.pod("team-a", "db") is None  # a Secret is never a Pod
    listed = [(p["metadata"]["name"], owner) for p, owner in pods.pods()]
    assert listed == [("migrate-x", ("Job", "migrate")), ("web-5d9-x", ("Deployment", "web"))]


def test_a_managed_pod_belongs_and_another_namespace_is_never_read() -> None:
    cluster = Cluster(STRAY)
    pods = AppPods(app(("", "Pod", "stray")), cluster)
    assert pods.pod("team-a", "stray") == STRAY
    cluster.reads.clear()
    assert pods.pod("kube-system", "stray") is None
    assert cluster.reads == []


def test_the_owner_walk_is_bounded() -> None:
    chain = [_obj("v1", "Pod", "p0", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r1"})]
    for i in range(1, 10):
        chain.append(
            _obj("apps/v1", "ReplicaSet", f"r{i}",
                 {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"r{i + 1}"})
        )  # fmt: skip
    cluster = Cluster(*chain)
    pods = AppPods(app(("apps", "ReplicaSet", "r9")), cluster)
    assert pods.pod("team-a", "p0") is None
    assert len(cluster.reads) <= 6


# -- the simulated kubelet ------------------------------------------------------------------------


def _pod(annotations: dict[str, str], restarts: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "n", "annotations": annotations,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"startTime": "2026-01-01T00:00:00Z",
                   "containerStatuses": [{"name": "c", "restartCount": restarts}]},
    }  # fmt: skip


def _log(pod: dict[str, Any], **query: str) -> bytes:
    batches = container_log(pod, "c", {k: [v] for k, v in query.items()}, threading.Event())
    return b"".join(_limited(batches, int(query["limitBytes"]) if "limitBytes" in query else None))


def test_the_kubelet_serves_the_annotated_lines_their_tail_and_the_previous_container() -> None:
    pod = _pod({"sim.gitsync.dev/log-lines": "a\nb\nc"})
    assert _log(pod) == b"a\nb\nc\n"
    assert _log(pod, tailLines="2") == b"b\nc\n"
    assert _log(pod, limitBytes="3") == b"a\nb"
    assert _log(pod, timestamps="true").startswith(b"2026-01-01T00:00:00.000000000Z a\n")
    assert _log(pod, sinceSeconds="10") == b""  # written at the start, long ago
    with pytest.raises(LogRequestError, match="previous terminated container"):
        _log(pod, previous="true")
    crashed = _pod({"sim.gitsync.dev/previous-log-lines": "panic"}, restarts=3)
    assert _log(crashed, previous="true") == b"panic\n"
    with pytest.raises(LogRequestError, match='container "x" not found'):
        next(container_log(pod, "x", {}, threading.Event()))


def test_the_kubelet_generates_a_large_log_without_holding_it() -> None:
    pod = _pod({"sim.gitsync.dev/log-bytes": str(100 * 1024 * 1024)})
    batches = container_log(pod, "c", {}, threading.Event())
    first = next(batches)
    assert len(first) < 128 * 1024  # batches, not the whole log
    assert first.startswith(generated_line(0))
    assert len(generated_line(7)) == GENERATED_LINE_BYTES
    assert _log(pod, tailLines="2") == generated_line(102398) + generated_line(102399)


# -- which Pods `gitsync app logs` reads ----------------------------------------------------------

PODS = [
    {"name": "web-5d9-a", "owner": {"kind": "Deployment", "name": "web"}},
    {"name": "web-5d9-b", "owner": {"kind": "Deployment", "name": "web"}},
    {"name": "migrate-x", "owner": {"kind": "Job", "name": "migrate"}},
    {"name": "solo", "owner": {"kind": "Pod", "name": "solo"}},
]


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("Deployment", "web", ["web-5d9-a", "web-5d9-b"]),
        ("deployment", "web", ["web-5d9-a", "web-5d9-b"]),
        ("Job", "web", []),
        ("", "migrate", ["migrate-x"]),
        ("", "web-5d9-b", ["web-5d9-b"]),
        ("Pod", "solo", ["solo"]),
        ("Pod", "web-5d9-a", ["web-5d9-a"]),
        ("Job", "", ["migrate-x"]),
        ("", "", ["web-5d9-a", "web-5d9-b", "migrate-x", "solo"]),
    ],
)
def test_app_logs_picks_the_pods_of_the_named_object(
    kind: str, name: str, expected: list[str]
) -> None:
    assert [p["name"] for p in matching_pods(PODS, kind, name)] == expected
