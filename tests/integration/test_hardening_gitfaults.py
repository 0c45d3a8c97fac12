"""Hardening case 19: the Git side fails or empties, and the controller deletes nothing.

A Git server that answers 500, an HTML page with status 200, or nothing at all, must not look
like "the repository is now empty" to a controller that prunes: nothing is applied, nothing is
pruned, the Application's Ready condition says what went wrong, and the controller recovers on its
own once the server is healthy. A repository force-pushed to a commit with an empty tree is a real
answer, but a dangerous one: an app whose path vanished with it never prunes (a renamed or
deleted directory is far more often a mistake than a decision), and an app whose path still
exists but now renders nothing prunes only with ``syncPolicy.automated.allowEmpty``.

The engine's CLI path for these is covered in ``test_engine.py``
(``test_fetch_failures_apply_and_prune_nothing``,
``test_render_failure_and_empty_render_prune_nothing``), the source adapter's error
classification in ``test_gitserver.py``. These tests go through ``gitsync serve`` with
``prune: true``, as users run it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import Fault, GitRepo, GitServer
from tests.support.apps import app_status, application
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def faulty_git() -> Iterator[GitServer]:
    """A Git server of this module's own: breaking it must not disturb the shared one."""
    with GitServer() as server:
        yield server


def _configmap(name: str, value: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}
    )


def _repo(server: GitServer, name: str, prefix: str = "app/") -> GitRepo:
    return server.create_repo(
        name,
        {
            f"{prefix}config.yaml": _configmap("config", "v1"),
            f"{prefix}extra.yaml": _configmap("extra", "x"),
        },
    )


def _live(kube: KubeClient, namespace: str) -> dict[str, tuple[str, str]]:
    """name -> (uid, resourceVersion) of the ConfigMaps the app deploys."""
    items = kube.list("v1", "ConfigMap", namespace)["items"]
    return {
        o["metadata"]["name"]: (o["metadata"]["uid"], o["metadata"]["resourceVersion"])
        for o in items
        if o["metadata"]["name"] in ("config", "extra")
    }


def _ready(kube: KubeClient, namespace: str) -> dict[str, Any]:
    conds = app_status(kube, namespace, "web").get("conditions") or []
    return next((c for c in conds if c.get("type") == "Ready"), {})


def _synced(kube: KubeClient, namespace: str, sha: str) -> dict[str, Any] | None:
    status = app_status(kube, namespace, "web")
    sync = status.get("sync") or {}
    ready = _ready(kube, namespace)
    ok = sync.get("status") == "Synced" and sync.get("revision") == sha
    return status if ok and ready.get("status") == "True" else None


EXPLANATIONS: dict[Fault, str] = {
    "error500": "HTTP 500",
    "html200": "did not answer like a Git server",
    "hang": "timed out",
}


@pytest.mark.parametrize("fault", list(EXPLANATIONS))
def test_git_server_fault_applies_and_prunes_nothing_then_recovers(
    fault: Fault, faulty_git: GitServer, serve: Any, kube: KubeClient, namespace: str
) -> None:
    repo = _repo(faulty_git, f"fault-{fault}")
    serve()
    kube.create(application("web", namespace, repo.http_url(), interval="2s"))
    wait_for(lambda: _synced(kube, namespace, repo.head()), timeout=120, what="first sync")
    before = _live(kube, namespace)
    assert set(before) == {"config", "extra"}

    faulty_git.fault = fault
    try:
        # what a successful fetch would do now: change one object and prune the other
        repo.commit({"app/config.yaml": _configmap("config", "v2"), "app/extra.yaml": None}, "v2")
        repo.push()
        ready = wait_for(
            lambda: (r := _ready(kube, namespace)).get("reason") == "FetchFailed" and r,
            timeout=150,  # a hanging server costs one whole git timeout (60 s)
            what=f"Ready=False FetchFailed during {fault}",
        )
        assert ready["status"] == "False"
        assert EXPLANATIONS[fault] in ready["message"], ready
        assert _live(kube, namespace) == before, "an object was written or deleted during the fault"
    finally:
        faulty_git.fault = None

    wait_for(lambda: _synced(kube, namespace, repo.head()), timeout=180, what="recovery")
    assert kube.get("v1", "ConfigMap", "extra", namespace) is None  # Git removed it: pruned now
    config = kube.get("v1", "ConfigMap", "config", namespace) or {}
    assert config.get("data") == {"v": "v2"}


def _force_push_empty_tree(repo: GitRepo) -> str:
    """Replace ``main`` with a parentless commit whose tree is empty."""
    repo.git("checkout", "--quiet", "--orphan", "emptied")
    repo.git("rm", "-r", "--quiet", "--cached", "--ignore-unmatch", ".")
    repo.git("clean", "-fdq")
    sha = repo.commit(message="empty tree")
    repo.git("push", "--quiet", "--force", "origin", "HEAD:refs/heads/main")
    assert repo.git("ls-tree", "HEAD") == ""
    return sha


@pytest.mark.parametrize("allow_empty", [False, True], ids=["allowEmpty-false", "allowEmpty-true"])
def test_force_push_to_empty_tree_with_vanished_path_prunes_nothing(
    allow_empty: bool, faulty_git: GitServer, serve: Any, kube: KubeClient, namespace: str
) -> None:
    repo = _repo(faulty_git, f"vanish-{str(allow_empty).lower()}")
    serve()
    policy = {"automated": {"prune": True, "selfHeal": True, "allowEmpty": allow_empty}}
    kube.create(application("web", namespace, repo.http_url(), interval="2s", syncPolicy=policy))
    wait_for(lambda: _synced(kube, namespace, repo.head()), timeout=120, what="first sync")
    before = _live(kube, namespace)

    sha = _force_push_empty_tree(repo)
    ready = wait_for(
        lambda: (r := _ready(kube, namespace)).get("reason") == "RenderFailed" and r,
        timeout=120,
        what="Ready=False RenderFailed",
    )
    assert "path does not exist" in ready["message"], ready
    status = app_status(kube, namespace, "web")
    assert (status.get("operationState") or {}).get("revision") != sha  # no sync was attempted
    assert _live(kube, namespace) == before


@pytest.mark.parametrize("allow_empty", [False, True], ids=["allowEmpty-false", "allowEmpty-true"])
def test_force_push_to_empty_tree_prunes_only_with_allow_empty(
    allow_empty: bool, faulty_git: GitServer, serve: Any, kube: KubeClient, namespace: str
) -> None:
    repo = _repo(faulty_git, f"empty-{str(allow_empty).lower()}", prefix="")
    serve()
    policy = {"automated": {"prune": True, "selfHeal": True, "allowEmpty": allow_empty}}
    app = application("web", namespace, repo.http_url(), interval="2s", syncPolicy=policy)
    app["spec"]["source"]["path"] = "."  # the repository root: it exists in every commit
    kube.create(app)
    wait_for(lambda: _synced(kube, namespace, repo.head()), timeout=120, what="first sync")
    before = _live(kube, namespace)

    sha = _force_push_empty_tree(repo)
    if allow_empty:
        wait_for(lambda: _synced(kube, namespace, sha), timeout=120, what="empty tree synced")
        assert _live(kube, namespace) == {}
        return
    # an empty render fails at the render stage (issue 17), naming what the path holds instead
    ready = wait_for(
        lambda: (r := _ready(kube, namespace)).get("reason") == "RenderFailed" and r,
        timeout=120,
        what="Ready=False RenderFailed",
    )
    assert "produced no objects" in ready["message"] and "allowEmpty" in ready["message"], ready
    assert "no files in ." in ready["message"], ready
    assert _live(kube, namespace) == before
