"""Push webhooks against a real ``gitsync serve``: what a forge (or an attacker) can make it do.

The observable side effect of a webhook is Git traffic: a refresh costs an ``ls-remote`` and, for
a new commit, a ``fetch``. ``gitsync_git_request_total{repo,request_type}`` on ``/metrics``
counts both per repository, so "nothing happened" is asserted as "the counters did not move" -
with the Application's interval at 3m, nothing else asks Git during a test. Each test also shows
the positive case on the same process, so a controller that ignored every webhook would fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from gitsync.source import normalize_url
from tests.support.apps import (
    WEBHOOK_SECRET,
    app_status,
    application,
    configmap_value,
    github_webhook,
    push_value,
)
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


QUIET_SECONDS = 3.0  # how long "nothing happens" is watched for


# -- helpers -------------------------------------------------------------------------------------


def configmap_only_repo(git_server: GitServer) -> GitRepo:
    """A repo with just the ConfigMap: healthy at once, so no rollout keeps reconciles going."""
    return git_server.create_repo(
        f"hook-{secrets.token_hex(3)}",
        files={
            "app/cm.yaml": yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "config"},
                    "data": {"value": "v1"},
                }
            )
        },
    )


def git_requests(ctl: ServeProcess, repo: GitRepo, request_type: str) -> float:
    """``gitsync_git_request_total`` for one repository and request type."""
    return ctl.metric(
        "gitsync_git_request_total",
        repo=normalize_url(repo.file_url()),
        request_type=request_type,
    )


def webhooks(ctl: ServeProcess, provider: str, result: str) -> float:
    return ctl.metric("gitsync_webhook_requests_total", provider=provider, result=result)


def post(
    ctl: ServeProcess, body: bytes | Iterator[bytes], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """POST /api/webhook; the status and the JSON answer (``{}`` when there is none). An
    iterator is sent chunked, without a Content-Length.

    http.client rather than urllib so a server that answers 413 before reading the whole body
    still has its answer read instead of surfacing as a broken pipe.
    """
    conn = http.client.HTTPConnection("127.0.0.1", ctl.port, timeout=30)
    try:
        # Refused mid-body: the answer was sent before the server stopped reading.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request(
                "POST",
                "/api/webhook",
                body=body,
                headers=headers,
                encode_chunked=not isinstance(body, bytes),
            )
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {}
    return resp.status, answer if isinstance(answer, dict) else {}


def signed(body: bytes, header: str, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {header: "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def github_headers(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": "push",
        "Content-Type": "application/json",
        **signed(body, "X-Hub-Signature-256", secret),
    }


def bitbucket_server_headers(body: bytes) -> dict[str, str]:
    return {
        "X-Event-Key": "repo:refs_changed",
        "Content-Type": "application/json",
        **signed(body, "X-Hub-Signature"),
    }


def github_body(repo_url: str, ref: str, after: str) -> bytes:
    return json.dumps(
        {"ref": ref, "after": after, "repository": {"clone_url": repo_url, "html_url": repo_url}}
    ).encode()


def synced_app(
    serve: Any, kube: KubeClient, namespace: str, repo: GitRepo
) -> tuple[ServeProcess, str]:
    """A running controller and one Application (interval 3m) synced to the repo's HEAD, with
    its Git traffic settled; returns the controller and the app name."""
    ctl = serve()
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(
        lambda: (
            (s := app_status(kube, namespace, "web")).get("sync", {}).get("status") == "Synced"
            and s.get("health", {}).get("status") == "Healthy"
            and s["sync"].get("revision") == repo.head()
        ),
        timeout=60,
        what="app Synced and Healthy at HEAD",
    )
    assert configmap_value(kube, namespace) == "v1"
    settle(ctl, repo)
    return ctl, "web"


def settle(ctl: ServeProcess, repo: GitRepo, quiet: float = 1.5, timeout: float = 20) -> None:
    """Wait until the controller has not asked Git about ``repo`` for ``quiet`` seconds (the
    first sync's follow-up reconciles - live changes, status updates - are over)."""
    deadline = time.monotonic() + timeout
    last = (git_requests(ctl, repo, "ls-remote"), git_requests(ctl, repo, "fetch"))
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = (git_requests(ctl, repo, "ls-remote"), git_requests(ctl, repo, "fetch"))
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            return
    raise AssertionError(f"Git traffic for {repo.name} never settled: {last}")


def healthz(ctl: ServeProcess) -> int:
    with urllib.request.urlopen(ctl.url + "/healthz", timeout=5) as resp:
        return int(resp.status)


# -- tests -----------------------------------------------------------------------------------


def test_bad_signature_is_401_and_asks_git_nothing(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_only_repo(git_server)
    ctl, name = synced_app(serve, kube, namespace, repo)
    history = app_status(kube, namespace, name)["history"]
    sha = push_value(repo, "v2")  # a real change is waiting: a refresh would deploy it
    before = (git_requests(ctl, repo, "ls-remote"), git_requests(ctl, repo, "fetch"))

    body = github_body(repo.file_url(), "refs/heads/main", sha)
    wrong_secret = github_headers(body, secret="not-" + WEBHOOK_SECRET)
    unsigned = {k: v for k, v in github_headers(body).items() if k != "X-Hub-Signature-256"}
    tampered = github_headers(body)
    unauthorized = webhooks(ctl, "github", "unauthorized")
    for headers, payload in (
        (wrong_secret, body),
        (unsigned, body),
        (tampered, body.replace(b"refs/heads/main", b"refs/heads/evil")),
    ):
        status, answer = post(ctl, payload, headers)
        assert (status, answer) == (401, {"error": "bad signature"})

    time.sleep(QUIET_SECONDS)
    after = (git_requests(ctl, repo, "ls-remote"), git_requests(ctl, repo, "fetch"))
    assert after == before, "a webhook with a bad signature made the controller ask Git"
    assert webhooks(ctl, "github", "unauthorized") == unauthorized + 3
    assert configmap_value(kube, namespace) == "v1"
    assert app_status(kube, namespace, name)["history"] == history

    # The same delivery, correctly signed, deploys the change.
    assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
    wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=15, what="v2 live")


def test_oversized_and_malformed_deliveries_are_refused_and_the_process_keeps_serving(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_only_repo(git_server)
    ctl, _ = synced_app(serve, kube, namespace, repo)
    url = repo.file_url()
    before = git_requests(ctl, repo, "ls-remote")

    # 2 MiB, correctly signed: over the 1 MiB limit whatever the signature says.
    filler = "x" * (2 * 1024 * 1024)
    big = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": repo.head(),
            "repository": {"clone_url": url},
            "padding": filler,
        }
    ).encode()
    assert post(ctl, big, github_headers(big))[0] == 413
    # The same without a Content-Length (chunked): cut off at the limit, not buffered whole.
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    assert post(ctl, chunks, github_headers(big))[0] == 413

    head = repo.head()
    github_cases: dict[str, bytes] = {
        "null repository": json.dumps(
            {"ref": "refs/heads/main", "after": head, "repository": None}
        ).encode(),
        "repository as an empty array": json.dumps(
            {"ref": "refs/heads/main", "after": head, "repository": []}
        ).encode(),
        "ref as a number": json.dumps(
            {"ref": 42, "after": head, "repository": {"clone_url": url}}
        ).encode(),
        "clone_url as an array": json.dumps(
            {"ref": "refs/heads/main", "after": head, "repository": {"clone_url": [url]}}
        ).encode(),
        "after not a commit": json.dumps(
            {"ref": "refs/heads/main", "after": "HEAD~1", "repository": {"clone_url": url}}
        ).encode(),
        "10,000-deep arrays": b"[" * 10_000 + b"]" * 10_000,
        "10,000-deep objects under repository": (
            b'{"repository": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}"
        ),
        "not JSON": b"ref=refs/heads/main&after=" + head.encode(),
        "truncated JSON": b'{"ref": "refs/heads/main", "repository": {"clone_url": "',
        "not UTF-8": b'{"ref": "refs/heads/\xff\xfe"}',
        "empty body": b"",
    }
    server_change = {"refId": "refs/heads/main", "toHash": head, "type": "UPDATE"}
    bitbucket_server_cases: dict[str, bytes] = {
        "links.clone as a string": json.dumps(
            {"repository": {"links": {"clone": url}}, "changes": [server_change]}
        ).encode(),
        "links.clone empty": json.dumps(
            {"repository": {"links": {"clone": []}}, "changes": [server_change]}
        ).encode(),
        "changes empty": json.dumps(
            {"repository": {"links": {"clone": [{"href": url, "name": "http"}]}}, "changes": []}
        ).encode(),
        "changes null": json.dumps(
            {"repository": {"links": {"clone": [{"href": url, "name": "http"}]}}, "changes": None}
        ).encode(),
        "toHash a number": json.dumps(
            {
                "repository": {"links": {"clone": [{"href": url, "name": "http"}]}},
                "changes": [{**server_change, "toHash": 7}],
            }
        ).encode(),
    }
    malformed = {p: webhooks(ctl, p, "malformed") for p in ("github", "bitbucket-server")}
    refused = {}
    for case, body in github_cases.items():
        refused[f"github: {case}"] = post(ctl, body, github_headers(body))
    for case, body in bitbucket_server_cases.items():
        refused[f"bitbucket-server: {case}"] = post(ctl, body, bitbucket_server_headers(body))
    wrong = {case: got for case, got in refused.items() if got[0] != 400 or "error" not in got[1]}
    assert not wrong, f"expected 400 with an error message: {wrong}"
    assert webhooks(ctl, "github", "malformed") == malformed["github"] + len(github_cases)
    assert webhooks(ctl, "bitbucket-server", "malformed") == malformed["bitbucket-server"] + len(
        bitbucket_server_cases
    )

    assert healthz(ctl) == 200
    assert git_requests(ctl, repo, "ls-remote") == before, "a refused delivery asked Git"
    assert ctl.proc is not None and ctl.proc.running()

    # After all that, a good delivery still deploys.
    sha = push_value(repo, "v2")
    assert github_webhook(ctl.url, url, "refs/heads/main", sha) == 202
    wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=15, what="v2 live")


def test_a_burst_of_pushes_is_coalesced_into_a_couple_of_fetches(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_only_repo(git_server)
    # a wide push window: the ten deliveries surely land in one however slowly threads start
    ctl, _ = synced_app(lambda *a: serve(*a, "--push-window=5"), kube, namespace, repo)
    fetches = git_requests(ctl, repo, "fetch")
    ls_remotes = git_requests(ctl, repo, "ls-remote")

    # Ten pushes land, then their ten signed deliveries arrive at once, each naming its own
    # commit - a busy forge's backlog of hooks. One reconcile per delivery would be ten
    # ls-remotes; the work queue merges them into the reconcile already running plus at most one
    # follow-up, and only a reconcile that sees a new commit fetches.
    shas = [push_value(repo, f"burst-{i}") for i in range(10)]
    statuses: list[int] = []
    lock = threading.Lock()

    def deliver(sha: str) -> None:
        status = github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=deliver, args=(sha,)) for sha in shas]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    burst = time.monotonic() - started
    assert statuses == [202] * 10

    wait_for(lambda: configmap_value(kube, namespace) == "burst-9", timeout=15, what="last live")
    settle(ctl, repo)
    fetched = git_requests(ctl, repo, "fetch") - fetches
    listed = git_requests(ctl, repo, "ls-remote") - ls_remotes
    print(f"10 deliveries in {burst:.2f}s: {fetched:g} fetches, {listed:g} ls-remotes")
    assert 1 <= fetched <= 2
    # The first delivery's reconcile, one follow-up for the rest, and one for the live change
    # the sync itself made to the ConfigMap - not ten.
    assert listed <= 4


def test_a_push_to_another_branch_does_not_refresh_an_app_tracking_main(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = configmap_only_repo(git_server)
    ctl, _ = synced_app(serve, kube, namespace, repo)
    repo.branch("feature")
    feature_sha = push_value(repo, "feature-value")
    repo.checkout("main")
    settle(ctl, repo)
    before = git_requests(ctl, repo, "ls-remote")

    body = github_body(repo.file_url(), "refs/heads/feature", feature_sha)
    assert post(ctl, body, github_headers(body)) == (202, {"refreshed": 0})
    time.sleep(QUIET_SECONDS)
    assert git_requests(ctl, repo, "ls-remote") == before, "a push to feature refreshed main"
    assert configmap_value(kube, namespace) == "v1"

    # The same repository's main branch does refresh it.
    main_sha = push_value(repo, "v2")
    body = github_body(repo.file_url(), "refs/heads/main", main_sha)
    assert post(ctl, body, github_headers(body)) == (202, {"refreshed": 1})
    wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=15, what="v2 live")
    assert git_requests(ctl, repo, "ls-remote") > before


def test_an_application_whose_repo_url_cannot_be_parsed_does_not_break_webhooks_for_others(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    # Valid for the spec (an http:// URL) but not for urlsplit: an unclosed IPv6 bracket. Any
    # user who may create an Application can write this; it must cost them their own app only.
    # Created before the controller starts, so it is in the controller's cache from the start.
    kube.create(application("bad-url", namespace, "http://[::1/team/repo.git"))
    try:
        repo = configmap_only_repo(git_server)
        ctl, _ = synced_app(serve, kube, namespace, repo)
        sha = push_value(repo, "v2")
        assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
        wait_for(lambda: configmap_value(kube, namespace) == "v2", timeout=15, what="v2 live")
    finally:
        kube.delete("gitsync.dev/v1alpha1", "Application", "bad-url", namespace)
