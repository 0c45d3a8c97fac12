"""``spec.dependsOn`` on the real control plane, the real Git server and a real ``gitsync serve``:
an app waits while its dependency's Deployment is not ready (the pod simulator's
``ready-after``) and syncs once it is, queued by the dependency's change rather than a poll; a
dependency cycle is an error on each app of it until broken; a dependency in another namespace
is read for its readiness only, and refused under ``--no-cross-namespace-refs``."""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.apps import app_status, application
from tests.support.cluster import temporary_namespace
from tests.support.manifests import slow_database
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

READY_AFTER = 10.0  # seconds the database's pod stays unready


def configmap(name: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}
    )


def app_at(name: str, namespace: str, repo: GitRepo, path: str, **spec: Any) -> dict[str, Any]:
    url = repo.file_url()
    source = {"repoURL": url, "targetRevision": "main", "path": path}
    return application(name, namespace, url, source=source, **spec)


def ready_condition(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    conditions = app_status(kube, namespace, name).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {})


def health(kube: KubeClient, namespace: str, name: str) -> str:
    return str((app_status(kube, namespace, name).get("health") or {}).get("status") or "")


def has_configmap(kube: KubeClient, namespace: str, name: str) -> bool:
    return kube.get("v1", "ConfigMap", name, namespace) is not None


def events(kube: KubeClient, namespace: str, app: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.list("v1", "Event", namespace)["items"]
        if e.get("involvedObject", {}).get("name") == app and e.get("reason") == reason
    ]


@pytest.mark.timeout(240)
def test_an_app_waits_while_its_dependency_is_progressing_then_syncs(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, sim: None
) -> None:
    """Acceptance (issue 18): B waits while A's Deployment is not ready, then syncs."""
    repo = git_server.create_repo(
        f"deps-{secrets.token_hex(3)}",
        files={
            "db/deployment.yaml": yaml.safe_dump(slow_database(READY_AFTER)),
            "api/config.yaml": configmap("api"),
        },
    )
    ctl = serve("--anonymous-read")
    kube.create(app_at("db", namespace, repo, "db"))
    kube.create(app_at("api", namespace, repo, "api", dependsOn=[{"name": "db"}]))

    # while db is not Healthy, api's objects do not exist and api says what it waits for
    seen_waiting: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while health(kube, namespace, "db") != "Healthy":
        assert time.monotonic() < deadline, "db never turned Healthy"
        assert not has_configmap(kube, namespace, "api"), "api synced before db was Healthy"
        waiting = app_status(kube, namespace, "api").get("waitingFor") or []
        if waiting and waiting[0].get("reason") == "Progressing" and not seen_waiting:
            seen_waiting = {"status": waiting, "ready": ready_condition(kube, namespace, "api")}
            url = f"{ctl.url}/api/v1/applications/{namespace}/api"
            with urllib.request.urlopen(url, timeout=10) as response:
                seen_waiting["api"] = json.loads(response.read())
        time.sleep(0.1)
    healthy_at = time.monotonic()
    assert seen_waiting, "api never showed that it waits for db while db was Progressing"
    assert seen_waiting["status"] == [
        {"namespace": namespace, "name": "db", "reason": "Progressing"}
    ]
    assert seen_waiting["ready"]["reason"] == "DependencyNotReady"
    assert seen_waiting["ready"]["message"].endswith(f"waiting for {namespace}/db: Progressing")
    shown = seen_waiting["api"]  # what the UI's list and page show
    assert shown["waitingFor"] == seen_waiting["status"]
    assert f"waiting for {namespace}/db (Progressing)" in shown["automation"]
    assert shown["dependsOn"] == [
        {"namespace": namespace, "name": "db", "waitingFor": "Progressing"}
    ]

    wait_for(lambda: has_configmap(kube, namespace, "api"), timeout=30, interval=0.1, what="api")
    delay = time.monotonic() - healthy_at
    print(f"db Healthy -> api's ConfigMap: {delay:.2f}s (api's interval: 3m)")
    assert delay < 15  # queued by db's change, not by api's 3-minute refresh
    wait_for(lambda: ready_condition(kube, namespace, "api").get("status") == "True", timeout=30)
    assert "waitingFor" not in app_status(kube, namespace, "api")
    assert len(events(kube, namespace, "api", "DependencyNotReady")) == 1
    assert len(events(kube, namespace, "api", "DependenciesReady")) == 1


@pytest.mark.timeout(180)
def test_a_dependency_cycle_is_an_error_on_each_app_of_it_until_broken(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = git_server.create_repo(
        f"cycle-{secrets.token_hex(3)}",
        files={"a/config.yaml": configmap("a"), "b/config.yaml": configmap("b")},
    )
    serve()
    kube.create(app_at("a", namespace, repo, "a", dependsOn=[{"name": "b"}]))
    kube.create(app_at("b", namespace, repo, "b", dependsOn=[{"name": "a"}]))
    for me, other in (("a", "b"), ("b", "a")):
        cond = wait_for(
            lambda me=me: (
                (c := ready_condition(kube, namespace, me)).get("reason") == "DependencyCycle" and c
            ),
            timeout=60,
            what=f"{me} reports the cycle",
        )
        assert cond["message"] == (
            f"spec.dependsOn: a dependency cycle "
            f"{namespace}/{me} -> {namespace}/{other} -> {namespace}/{me}"
        )
        stalled = [
            c for c in app_status(kube, namespace, me)["conditions"] if c["type"] == "Stalled"
        ]
        assert stalled and stalled[0]["status"] == "True"
    assert not has_configmap(kube, namespace, "a") and not has_configmap(kube, namespace, "b")

    # b drops its dependency: b syncs, and a - queued by b's change - syncs once b is Ready
    kube.patch(
        "gitsync.dev/v1alpha1",
        "Application",
        "b",
        {"spec": {"dependsOn": None}},
        namespace=namespace,
    )
    broken = time.monotonic()
    wait_for(lambda: has_configmap(kube, namespace, "b"), timeout=30, what="b synced")
    wait_for(lambda: has_configmap(kube, namespace, "a"), timeout=30, what="a synced after b")
    print(f"cycle broken -> both synced: {time.monotonic() - broken:.2f}s")
    wait_for(lambda: ready_condition(kube, namespace, "a").get("status") == "True", timeout=30)


@pytest.mark.timeout(240)
def test_a_dependency_in_another_namespace_is_read_for_its_readiness_only(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    """Team-a's app depends on an app of another team whose render fails with a message naming
    its path: team-a sees "not Ready", never the other team's reason or message. Under
    ``--no-cross-namespace-refs`` the entry is a spec error naming the field."""
    marker = f"other-team-path-{secrets.token_hex(3)}"
    repo = git_server.create_repo(
        f"xns-{secrets.token_hex(3)}", files={"api/config.yaml": configmap("api")}
    )
    with temporary_namespace(kube, "other") as other:
        ctl = serve()
        kube.create(app_at("db", other, repo, marker))  # no such directory: RenderFailed
        kube.create(
            app_at("api", namespace, repo, "api", dependsOn=[{"name": "db", "namespace": other}])
        )
        wait_for(
            lambda: marker in ready_condition(kube, other, "db").get("message", ""), timeout=60
        )
        cond = wait_for(
            lambda: (
                (c := ready_condition(kube, namespace, "api")).get("reason") == "DependencyNotReady"
                and c
            ),
            timeout=60,
            what="api waits",
        )
        assert cond["message"].endswith(f"waiting for {other}/db: not Ready")
        seen = json.dumps(app_status(kube, namespace, "api")) + json.dumps(
            kube.list("v1", "Event", namespace)["items"]
        )
        assert marker not in seen and "RenderFailed" not in seen
        assert not has_configmap(kube, namespace, "api")
        ctl.stop()

        serve("--no-cross-namespace-refs")
        cond = wait_for(
            lambda: (
                (c := ready_condition(kube, namespace, "api")).get("reason") == "InvalidSpec" and c
            ),
            timeout=60,
            what="api refused",
        )
        assert cond["message"].startswith(
            f"spec.dependsOn[0].namespace: {other}/db is in another namespace"
        )
        assert not has_configmap(kube, namespace, "api")
