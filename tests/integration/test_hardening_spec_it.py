"""Hardening (issue 8, item 18): absurd spec values stall their own Application, nobody else's.

``interval: "-1s"``, ``"99999999999h"`` and retry limits in the billions must not reach the
scheduler (a negative or astronomically long timer, an overflow) nor stop the worker that reads
them. The controller's own validation is what stands in the way: in file mode
(``gitsync serve --config apps.yaml``) nothing else checks the spec, and through the CRD the
schema's duration pattern lets ``"99999999999h"`` through to the controller. Each bad Application
is Stalled with ``InvalidSpec`` naming the field, while a good one in the same process keeps
following Git (a new commit is deployed by its 2 s poll).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import ApiError, KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import (
    WEBHOOK_SECRET,
    app_status,
    application,
    configmap_repo,
    configmap_value,
    push_value,
)
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

HUGE = "99999999999h"
RETRY = {"limit": 10**9}

# name -> (spec fields merged over application(), the field the error must name)
ABSURD: dict[str, tuple[dict[str, Any], str]] = {
    "negative-interval": ({"interval": "-1s"}, "spec.interval"),
    "huge-interval": ({"interval": HUGE}, "spec.interval"),
    "huge-retry-limit": (
        {"syncPolicy": {"automated": {}, "retry": RETRY}},
        "spec.syncPolicy.retry.limit",
    ),
    "huge-backoff": (
        {"syncPolicy": {"automated": {}, "retry": {"backoff": {"maxDuration": HUGE}}}},
        "spec.syncPolicy.retry.backoff.maxDuration",
    ),
    "huge-backoff-factor": (
        {"syncPolicy": {"automated": {}, "retry": {"backoff": {"factor": 1e300}}}},
        "spec.syncPolicy.retry.backoff.factor",
    ),
}


def stalled_on(status: dict[str, Any], field: str) -> dict[str, Any] | None:
    """The Stalled condition, if it says InvalidSpec about ``field``."""
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "Stalled"
            and cond.get("status") == "True"
            and cond.get("reason") == "InvalidSpec"
            and str(cond.get("message", "")).startswith(field + ":")
        ):
            return dict(cond)
    return None


def file_status(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    cm = kube.get("v1", "ConfigMap", f"gitsync-status-{name}", namespace) or {}
    return dict(json.loads((cm.get("data") or {}).get("status") or "{}"))


@pytest.fixture
def serve_file(cluster: TestCluster, tmp_path: Path) -> Iterator[Any]:
    """``gitsync serve --config FILE`` (no CRD, as file mode is used)."""
    started: list[ServeProcess] = []

    def start(config: Path) -> ServeProcess:
        proc = ServeProcess(
            cluster.kubeconfig_path,
            tmp_path,
            ["--config", str(config)],
            {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET},
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def test_file_mode_stalls_each_absurd_application_and_keeps_reconciling_the_others(
    serve_file: Any, kube: KubeClient, namespace: str, git_server: GitServer, tmp_path: Path
) -> None:
    repo = configmap_repo(git_server)
    url = repo.file_url()
    docs = [application(name, namespace, url, **spec) for name, (spec, _) in ABSURD.items()]
    docs.insert(len(docs) // 2, application("web", namespace, url, interval="2s"))
    config = tmp_path / "apps.yaml"
    config.write_text(yaml.safe_dump_all(docs))
    serve_file(config)

    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=60, what="first sync")
    for name, (_, field) in ABSURD.items():
        wait_for(
            lambda name=name, field=field: stalled_on(file_status(kube, namespace, name), field),
            timeout=60,
            what=f"{name} Stalled with InvalidSpec on {field}",
        )
    # The good Application keeps following Git, by its own poll.
    push_value(repo, "v2")
    wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=60, what="v2 deployed")
    assert file_status(kube, namespace, "web")["sync"]["status"] == "Synced"
    for name in ABSURD:
        assert "history" not in file_status(kube, namespace, name), name


def test_through_the_crd_the_api_refuses_some_and_the_controller_stalls_the_rest(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_repo(git_server)
    url = repo.file_url()
    serve()
    kube.create(application("web", namespace, url, interval="2s"))
    reached: dict[str, str] = {}
    for name, (spec, field) in ABSURD.items():
        try:
            kube.create(application(name, namespace, url, **spec))
        except ApiError as exc:  # the schema's pattern or bounds
            assert exc.status == 422, exc
            continue
        reached[name] = field
    # The CRD's duration pattern cannot bound the value: these reach the controller.
    assert {"huge-interval", "huge-backoff"} <= set(reached), reached

    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=60, what="first sync")
    for name, field in reached.items():
        wait_for(
            lambda name=name, field=field: stalled_on(app_status(kube, namespace, name), field),
            timeout=60,
            what=f"{name} Stalled with InvalidSpec on {field}",
        )
    push_value(repo, "v2")
    wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=60, what="v2 deployed")
    for name in reached:
        assert not app_status(kube, namespace, name).get("history"), name
