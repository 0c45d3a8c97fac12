"""Driving a Rollout from a test the way the controller does: tick the executor, read the
outcome, and ask for promote/abort/retry through the Rollout's annotations (as kubectl would).

The canary, blue-green, router and analysis suites each drove their rollout with the same loop;
one copy keeps their timing and their failure messages the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.rollout import RolloutExecutor, RolloutStepResult
from gitsync.rollout.endpoints import AnalysisAllowList
from gitsync.rollout.providers import MetricProviders
from tests.support.waiting import wait_for

ROLLOUT_API = kinds.API_VERSION
POLL_SECONDS = 0.3
LOOPBACK_ANALYSIS = "http://127.0.0.1:*/*"
"""The ``--analysis-allow`` entry for the tests' metric servers: they listen on loopback, which
only an entry naming the host reaches."""


def loopback_executor(kube: KubeClient) -> RolloutExecutor:
    """An executor whose analysis may read the tests' loopback metric servers."""
    allow = AnalysisAllowList.parse([LOOPBACK_ANALYSIS])
    return RolloutExecutor(kube, providers=MetricProviders(allow=allow))


def canary_started(kube: KubeClient, namespace: str, image: str) -> dict[str, Any]:
    """Wait (as the controller runs it) for the canary Deployment ``web-canary`` running
    ``image`` and for the Rollout ``web``'s status to record it; returns that status."""
    canary = wait_for(
        lambda: kube.get("apps/v1", "Deployment", "web-canary", namespace),
        timeout=90,
        what=f"the canary Deployment in {namespace}",
    )
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == image

    def recorded() -> dict[str, Any] | None:
        live = kube.get(ROLLOUT_API, "Rollout", "web", namespace) or {}
        status: dict[str, Any] = live.get("status") or {}
        return status if status.get("canaryHash") else None

    return wait_for(recorded, timeout=30, what="the Rollout's status recording the canary")


def request(kube: KubeClient, namespace: str, annotation: str, value: str) -> None:
    """Set a request annotation (promote, abort, retry) on the Rollout ``web``."""
    kube.patch(
        ROLLOUT_API,
        "Rollout",
        "web",
        {"metadata": {"annotations": {annotation: value}}},
        namespace=namespace,
    )


def drive(
    executor: RolloutExecutor,
    namespace: str,
    until: Callable[[RolloutStepResult], bool],
    *,
    timeout: float,
    watch: Callable[[RolloutStepResult], None] = lambda _: None,
    follow_requeue: bool = False,
) -> RolloutStepResult:
    """Tick the Rollout ``web`` until ``until(outcome)``; ``watch`` sees every outcome. Between
    ticks it sleeps 0.3 s, or (``follow_requeue``) what the outcome's ``requeue_after`` asks,
    at most 0.3 s so pods turning ready are seen soon too."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = executor.tick(namespace, "web")
        assert not outcome.error, outcome.error
        watch(outcome)
        if until(outcome):
            return outcome
        assert time.monotonic() < deadline, f"timed out; last status: {outcome.status}"
        wait = outcome.requeue_after if follow_requeue else None
        time.sleep(POLL_SECONDS if wait is None else min(max(wait, 0.0), POLL_SECONDS))
