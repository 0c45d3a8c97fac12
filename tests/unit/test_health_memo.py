"""``HealthMemo``: an object's health is reused only while its UID, resourceVersion and the
declared checks stay the same."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.engine.healthmemo import HealthMemo
from gitsync.health.custom import install, load_strict
from gitsync.model import HealthStatus


def _deployment(version: str, *, ready: int, uid: str = "u-1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "uid": uid,
            "resourceVersion": version,
            "generation": 1,
        },
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def test_same_version_is_answered_from_memory_and_a_new_version_is_assessed() -> None:
    memo = HealthMemo()
    assert memo.assess(_deployment("5", ready=1)).status == HealthStatus.HEALTHY
    assert memo.assess(_deployment("5", ready=1)).status == HealthStatus.HEALTHY
    assert (memo.hits, memo.misses) == (1, 1)
    # a new resourceVersion is a new object: never the old answer
    assert memo.assess(_deployment("6", ready=0)).status == HealthStatus.PROGRESSING
    # another object with the same resourceVersion is not confused with the first
    assert memo.assess(_deployment("5", ready=0, uid="u-2")).status == HealthStatus.PROGRESSING
    assert memo.misses == 3


def test_objects_without_uid_or_version_are_assessed_every_time() -> None:
    memo = HealthMemo()
    obj = _deployment("", ready=1)
    memo.assess(obj)
    memo.assess(obj)
    assert memo.assess(None).status == HealthStatus.MISSING
    assert (memo.hits, len(memo)) == (0, 0)


def test_new_declared_checks_are_not_answered_from_the_old_ones() -> None:
    memo = HealthMemo()
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "uid": "u-9", "resourceVersion": "3"},
    }
    assert memo.assess(widget).status == HealthStatus.HEALTHY  # the generic rule
    install(load_strict("- {apiVersion: example.com/v1, kind: Widget, current: 'false'}", "f"))
    try:
        assert memo.assess(widget).status == HealthStatus.PROGRESSING
    finally:
        install([])
    assert memo.assess(widget).status == HealthStatus.HEALTHY


def test_the_memo_is_bounded() -> None:
    memo = HealthMemo(max_entries=3)
    for version in range(10):
        memo.assess(_deployment(str(version), ready=1))
    assert len(memo) == 3
    with pytest.raises(ValueError):
        HealthMemo(max_entries=0)
