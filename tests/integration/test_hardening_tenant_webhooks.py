"""Issue 13, finding 6: webhooks once any secret exists - unsigned providers, replays, floods.

Against a real ``gitsync serve`` on the test control plane and the real Git server. The cost a
delivery imposes is Git traffic (``gitsync_git_request_total`` counts each ``ls-remote`` per
repository) and, through a follower replica, Application writes (the API server's audit log), so
"refused" and "coalesced" are asserted as counters that do not move, or move once per window.
Every test also shows the good delivery still working on the same process.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_controller_webhooks import (
    configmap_only_repo,
    git_requests,
    github_body,
    github_headers,
    post,
    settle,
    synced_app,
    webhooks,
)

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.apps import (
    WEBHOOK_SECRET,
    application,
    configmap_repo,
    configmap_value,
    github_webhook,
    push_value,
)
from tests.support.audit import AuditLog
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

PUSH_WINDOW = 5.0
"""The window these tests give ``serve`` (``--push-window``): wide enough that a flood sent by
one test thread surely lands inside one window on a loaded machine."""
WINDOW_FLAG = f"--push-window={PUSH_WINDOW:g}"

pytestmark = pytest.mark.integration

QUIET_SECONDS = 3.0
FLOOD = 20


def random_sha() -> str:
    return secrets.token_hex(20)


def generic_unsigned(repo: GitRepo, sha: str) -> tuple[bytes, dict[str, str]]:
    body = {"repository": {"url": repo.file_url()}, "ref": "refs/heads/main", "after": sha}
    return json.dumps(body).encode(), {"X-Gitsync-Event": "push"}


def gitlab_unsigned(repo: GitRepo, sha: str) -> tuple[bytes, dict[str, str]]:
    url = repo.file_url()
    body = {
        "ref": "refs/heads/main",
        "after": sha,
        "checkout_sha": sha,
        "project": {"git_http_url": url, "web_url": url},
        "repository": {"git_http_url": url, "homepage": url},
    }
    return json.dumps(body).encode(), {"X-Gitlab-Event": "Push Hook"}


def signed_github(repo: GitRepo, sha: str, delivery: str) -> tuple[bytes, dict[str, str]]:
    body = github_body(repo.file_url(), "refs/heads/main", sha)
    return body, {**github_headers(body), "X-GitHub-Delivery": delivery}


def test_a_secret_for_github_alone_leaves_generic_and_gitlab_closed(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_only_repo(git_server)
    env = {"GITSYNC_WEBHOOK_SECRET": "", "GITSYNC_WEBHOOK_SECRET_GITHUB": WEBHOOK_SECRET}
    ctl, _ = synced_app(lambda *a: serve(*a, WINDOW_FLAG, env=env), kube, namespace, repo)
    sha = push_value(repo, "v2")  # a real change waits: a refresh would deploy it
    listed = git_requests(ctl, repo, "ls-remote")

    answers = set()
    for _ in range(FLOOD):
        for unsigned in (generic_unsigned, gitlab_unsigned):
            body, headers = unsigned(repo, random_sha())
            status, answer = post(ctl, body, headers)
            answers.add((status, answer.get("error")))

    assert answers == {
        (401, "no webhook secret is configured for generic"),
        (401, "no webhook secret is configured for gitlab"),
    }
    time.sleep(QUIET_SECONDS)
    assert git_requests(ctl, repo, "ls-remote") == listed, "an unsigned push made it ask Git"
    assert webhooks(ctl, "generic", "unauthorized") == FLOOD
    assert configmap_value(kube, namespace) == "v1"

    # The provider that has a secret still works.
    assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
    wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=15, what="v2 live")


def test_a_replayed_signed_delivery_is_refused_and_asks_git_nothing(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_only_repo(git_server)
    ctl, _ = synced_app(lambda *a: serve(*a, WINDOW_FLAG), kube, namespace, repo)
    sha = push_value(repo, "v2")
    body, headers = signed_github(repo, sha, "72d3162e-cc78-11e3-81ab-4c9367dc0958")

    assert post(ctl, body, headers)[0] == 202
    wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=15, what="v2 live")
    settle(ctl, repo, quiet=PUSH_WINDOW + 1, timeout=40)
    listed = git_requests(ctl, repo, "ls-remote")

    replays = [post(ctl, body, headers) for _ in range(FLOOD)]
    fresh_id = {**headers, "X-GitHub-Delivery": "another-id"}
    replays.append(post(ctl, body, fresh_id))  # the signature covers the body, not the id

    assert {(status, answer.get("error")) for status, answer in replays} == {
        (409, "delivery already received")
    }
    time.sleep(QUIET_SECONDS)
    assert git_requests(ctl, repo, "ls-remote") == listed, "a replay made it ask Git"
    assert webhooks(ctl, "github", "replayed") == FLOOD + 1

    # A new push, a new delivery: deployed.
    sha = push_value(repo, "v3")
    assert post(ctl, *signed_github(repo, sha, "a-new-delivery"))[0] == 202
    wait_for(lambda: configmap_value(kube, namespace) == "v3", timeout=15, what="v3 live")


def test_a_flood_of_signed_pushes_costs_one_ls_remote_per_window_and_the_last_still_lands(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_only_repo(git_server)
    ctl, _ = synced_app(lambda *a: serve(*a, WINDOW_FLAG), kube, namespace, repo)
    listed = git_requests(ctl, repo, "ls-remote")

    # 20 distinct, correctly signed deliveries (none a replay) within one window.
    started = time.monotonic()
    for n in range(FLOOD):
        body, headers = signed_github(repo, random_sha(), f"flood-{n}")
        assert post(ctl, body, headers)[0] == 202
        time.sleep(0.1)
    assert time.monotonic() - started < PUSH_WINDOW
    settle(ctl, repo, quiet=PUSH_WINDOW + 1, timeout=40)
    flood_listings = git_requests(ctl, repo, "ls-remote") - listed
    print(f"{FLOOD} deliveries: {flood_listings:g} ls-remotes")
    assert 1 <= flood_listings <= 2  # one now, one at the end of the window

    # A real push right after a burst is still seen (at the end of its window at the latest).
    body, headers = signed_github(repo, random_sha(), "burst-again")
    assert post(ctl, body, headers)[0] == 202
    sha = push_value(repo, "v2")
    assert post(ctl, *signed_github(repo, sha, "the-real-one"))[0] == 202
    wait_for(
        lambda: configmap_value(kube, namespace) == "v2",
        timeout=PUSH_WINDOW + 15,
        what="v2 live",
    )


@pytest.fixture
def replicas(cluster: TestCluster, tmp_path: Path, crd: None) -> Any:
    started: list[ServeProcess] = []

    def start(*extra: str) -> ServeProcess:
        workdir = tmp_path / f"replica-{len(started)}"
        workdir.mkdir()
        env = {"GITSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET}
        proc = ServeProcess(cluster.kubeconfig_path, workdir, [WINDOW_FLAG, *extra], env)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def test_a_flood_through_a_follower_writes_the_application_once_per_window(
    replicas: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    audit: AuditLog,
    controller_namespace: str,
) -> None:
    repo = configmap_repo(git_server)
    procs = {i: replicas("--leader-elect", f"--identity={i}", "--lease-duration=6") for i in "ab"}

    def holder() -> str:
        lease = kube.get(
            "coordination.k8s.io/v1", "Lease", "gitsync-controller", controller_namespace
        )
        return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")

    leader = wait_for(holder, timeout=20, what="a Lease holder")
    follower = procs[next(i for i in procs if i != leader)]
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=30, what="first sync")
    since = audit.mark()

    def deliver_flood(tag: str) -> None:
        for n in range(FLOOD):
            body, headers = signed_github(repo, random_sha(), f"{tag}-{n}")
            assert post(follower, body, headers)[0] == 202
            time.sleep(0.05)

    threads = [threading.Thread(target=deliver_flood, args=(t,)) for t in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    time.sleep(PUSH_WINDOW + 2)
    handed_over = [e for e in audit.writes(since) if e.refresh_request and e.namespace == namespace]
    print(f"{2 * FLOOD} deliveries to the follower: {len(handed_over)} hand-over writes")
    assert 1 <= len(handed_over) <= 2, handed_over

    # The hand-over still works: a real push through the follower is deployed by the leader.
    sha = push_value(repo, "v2")
    assert github_webhook(follower.url, repo.file_url(), "refs/heads/main", sha) == 202
    wait_for(
        lambda: configmap_value(kube, namespace) == "v2",
        timeout=PUSH_WINDOW + 20,
        what="v2 live",
    )
