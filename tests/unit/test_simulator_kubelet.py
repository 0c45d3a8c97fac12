"""What the pod simulator tells about a misbehaving pod, as a kubelet would: the Ready
condition's reason and the Events (shapes checked here; the browser test shows them on the page)."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.localenv.simulator import (
    EVENT_SECONDS,
    PROBE_FAILED,
    Simulator,
    kubelet_events,
    readiness_conditions,
)

NOW = "2026-12-07T06:30:00Z"


def pod(*containers: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-7d9c-abcde", "namespace": "shop", "uid": "u-1"},
        "spec": {
            "nodeName": "sim-node-1",
            "containers": [{"name": c, "image": f"{c}:1"} for c in containers],
        },
    }


def test_a_running_pod_that_is_not_ready_names_its_unready_containers() -> None:
    conditions = readiness_conditions(["main", "proxy"], False, "Running", NOW)
    assert [c["type"] for c in conditions] == ["ContainersReady", "Ready"]
    for c in conditions:
        assert c["status"] == "False"
        assert c["reason"] == "ContainersNotReady"
        assert c["message"] == "containers with unready status: [main proxy]"


def test_a_ready_pod_has_no_reason_and_a_finished_one_is_completed() -> None:
    ready = readiness_conditions(["main"], True, "Running", NOW)
    # None, not absent: the status is a strategic merge patch, where None removes the
    # ContainersNotReady a ready-after pod had while it waited
    assert [(c["status"], c["reason"], c["message"]) for c in ready] == [("True", None, None)] * 2
    done = readiness_conditions(["main"], False, "Succeeded", NOW)
    assert [(c["status"], c["reason"]) for c in done] == [("False", "PodCompleted")] * 2
    assert done[0]["message"] is None  # None: the strategic merge patch removes an earlier one


def test_a_never_ready_pod_gets_one_unhealthy_warning_per_container_from_the_kubelet() -> None:
    events = kubelet_events(pod("main", "proxy"), "never-ready", 1, NOW, NOW)
    assert [(e["type"], e["reason"], e["message"]) for e in events] == [
        ("Warning", "Unhealthy", PROBE_FAILED)
    ] * 2
    assert PROBE_FAILED.startswith("Readiness probe failed: ")
    first = events[0]
    assert first["apiVersion"] == "v1" and first["kind"] == "Event"
    assert first["metadata"] == {"name": "web-7d9c-abcde.main.unhealthy", "namespace": "shop"}
    assert first["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "shop",
        "name": "web-7d9c-abcde",
        "uid": "u-1",
        "fieldPath": "spec.containers{main}",
    }
    assert first["source"] == {"component": "kubelet", "host": "sim-node-1"}
    assert (first["count"], first["firstTimestamp"], first["lastTimestamp"]) == (1, NOW, NOW)


def test_a_repeat_keeps_the_name_and_first_time_and_counts() -> None:
    later = "2026-12-07T06:30:10Z"
    once = kubelet_events(pod("main"), "never-ready", 1, NOW, NOW)[0]
    again = kubelet_events(pod("main"), "never-ready", 2, NOW, later)[0]
    assert again["metadata"] == once["metadata"]
    assert (again["count"], again["firstTimestamp"], again["lastTimestamp"]) == (2, NOW, later)


def test_crashloop_and_image_pull_get_the_kubelets_back_off_events() -> None:
    crash = kubelet_events(pod("main"), "crashloop", 1, NOW, NOW)
    assert [(e["type"], e["reason"], e["message"]) for e in crash] == [
        (
            "Warning",
            "BackOff",
            "Back-off restarting failed container main in pod web-7d9c-abcde_shop(u-1)",
        )
    ]
    pull = kubelet_events(pod("main"), "image-pull", 1, NOW, NOW)
    assert [(e["type"], e["reason"], e["message"]) for e in pull] == [
        ("Warning", "Failed", "Error: ImagePullBackOff"),
        ("Normal", "BackOff", 'Back-off pulling image "main:1"'),
    ]
    assert len({e["metadata"]["name"] for e in pull}) == 2


@pytest.mark.parametrize("behavior", ["ready", "fail", "anything-else"])
def test_other_behaviors_record_no_events(behavior: str) -> None:
    assert kubelet_events(pod("main"), behavior, 1, NOW, NOW) == []


class RecordingClient:
    """Only what ``Simulator._record_events`` calls: the writes it makes, in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, Any]] = []

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("create", obj["metadata"]["name"], obj["count"]))
        return obj

    def patch(self, api_version: str, kind: str, name: str, patch: Any, **_: Any) -> Any:
        self.writes.append(("patch", name, patch["count"]))
        return patch


def test_the_events_are_repeated_at_most_once_per_interval_per_pod() -> None:
    clock = [1000.0]
    client = RecordingClient()
    sim = Simulator(client, nodes=1, clock=lambda: clock[0])  # type: ignore[arg-type]
    stuck = pod("main")
    sim._record_events(stuck, "never-ready")
    for _ in range(50):  # a burst of watch events about the pod: no more writes
        clock[0] += EVENT_SECONDS / 100
        sim._record_events(stuck, "never-ready")
    assert client.writes == [("create", "web-7d9c-abcde.main.unhealthy", 1)]
    clock[0] += EVENT_SECONDS
    sim._record_events(stuck, "never-ready")
    sim._record_events(stuck, "never-ready")
    assert client.writes[1:] == [("patch", "web-7d9c-abcde.main.unhealthy", 2)]
    # each recording set one timer to come back to the pod when the next one is due
    assert len(sim._timers) == 2
