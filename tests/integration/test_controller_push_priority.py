"""A push to a monorepo reconciles the Application whose files changed first, and still refreshes
all the others.

One repository holds ``apps/app-NN/`` for N Applications; ``gitsync serve --workers 1`` runs them,
so reconciles happen strictly one after another and their order is observable. A commit changes
the files of the app that sorts last - without path priority the controller queues a push's apps
in name order, so that app would be reconciled last of all. A GitHub push webhook naming the file
goes in; a watch on the Applications records the order in which their ``status.sync.revision``
reaches the new commit. The changed app must come (almost) first, and every other app must still
reach the new commit (ordering only, never skipping).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application, github_push
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

APPS = 40
API_VERSION = "gitsync.dev/v1alpha1"


def name(i: int) -> str:
    return f"app-{i:02}"


def configmap(i: int, value: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:02}"},
            "data": {"value": value},
        }
    )


def settle(ctl: ServeProcess, quiet: float = 2.0, timeout: float = 180.0) -> None:
    """Wait until no reconcile has finished for ``quiet`` seconds: the follow-ups of the first
    syncs are over and the one worker is idle."""
    deadline = time.monotonic() + timeout
    last, since = ctl.metric("gitsync_reconcile_duration_seconds_count"), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = ctl.metric("gitsync_reconcile_duration_seconds_count")
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise AssertionError(f"reconciles never settled ({last} so far)")


class RevisionOrder:
    """Watches the namespace's Applications and records, in the API server's order, which of
    them reached ``status.sync.revision == sha`` (each once)."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.sha = ""
        self.order: list[str] = []
        self._lock = threading.Lock()
        self._events, self.close = kube.open_watch(
            kube.path(API_VERSION, "Application", namespace), query={"watch": "1"}
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self._events:
            obj = event.get("object") or {}
            revision = ((obj.get("status") or {}).get("sync") or {}).get("revision")
            app = (obj.get("metadata") or {}).get("name")
            with self._lock:
                if self.sha and revision == self.sha and app not in self.order:
                    self.order.append(app)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.order)


def test_push_reconciles_the_changed_app_first_and_still_refreshes_the_rest(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = git_server.create_repo(
        f"monorepo-{secrets.token_hex(3)}",
        files={f"apps/{name(i)}/cm.yaml": configmap(i, "v1") for i in range(APPS)},
    )
    for i in range(APPS):
        kube.create(
            application(
                name(i),
                namespace,
                repo.file_url(),
                source={
                    "repoURL": repo.file_url(),
                    "targetRevision": "main",
                    "path": f"apps/{name(i)}",
                },
            )
        )
    ctl = serve("--workers", "1", "--namespaces", namespace)
    first_sha = repo.head()
    wait_for(
        lambda: all(
            app_status(kube, namespace, name(i)).get("sync", {}).get("revision") == first_sha
            for i in range(APPS)
        ),
        timeout=300,
        interval=1.0,
        what="every app synced at the first commit",
    )
    settle(ctl)

    changed = APPS - 1  # sorts last: the app a name-ordered queue would reach last
    path = f"apps/{name(changed)}/cm.yaml"
    watch = RevisionOrder(kube, namespace)
    try:
        sha = repo.commit({path: configmap(changed, "v2")}, f"{name(changed)}: v2")
        watch.sha = sha
        repo.push()
        status, answer = github_push(ctl.url, repo.file_url(), sha, changed=[path])
        assert (status, answer.get("refreshed")) == (202, APPS)

        order = wait_for(
            lambda: seen if len(seen := watch.snapshot()) == APPS else None,
            timeout=300,
            interval=0.5,
            what="every app at the new commit",
        )
    finally:
        watch.close()

    # Every app followed the push, not just the one whose files changed.
    assert sorted(order) == [name(i) for i in range(APPS)]
    # The changed app went first. One reconcile already under way when the webhook arrived
    # could finish at the new commit before it; without priority it would be last (40th).
    assert order.index(name(changed)) < APPS // 4, order
    cm = kube.get("v1", "ConfigMap", f"cm-{changed:02}", namespace) or {}
    assert cm.get("data", {}).get("value") == "v2"
