"""Live updates by server push against a real ``gitsync serve`` (issue 20).

The controller runs as a process against the test control plane and follows a repository on the
test Git server; stream clients (``tests.support.sse``) connect the way a browser's EventSource
does, with a bearer token. A push reaches every open stream from the one watch the controller
already has; a client that stops reading neither blocks the others nor makes the server queue
its updates; streams beyond ``--ui-max-streams`` are refused 503 while normal requests still
have their threads.
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.apps import application, configmap_repo, github_webhook, push_value, synced_at
from tests.support.sse import EventStreams, Stream
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

VIEWER = "viewer-" + secrets.token_hex(12)


def start(serve: Any, tmp_path: Path, *extra: str) -> Any:
    (tmp_path / "viewer-tokens").write_text(VIEWER + "\n")
    return serve(f"--read-only-token-file={tmp_path / 'viewer-tokens'}", *extra)


def synced_web(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> tuple[Any, GitRepo]:
    """``gitsync serve`` with Application ``web`` synced to its repository's head."""
    repo = configmap_repo(git_server)
    kube.create(application("web", namespace, repo.file_url()))
    ctl = start(serve, tmp_path)
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=120)
    return ctl, repo


def api_status(ctl: Any, path: str, timeout: float = 10) -> int:
    request = urllib.request.Request(ctl.url + path, headers={"Authorization": f"Bearer {VIEWER}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def revisions(stream: Stream, namespace: str, name: str) -> list[str]:
    return [
        e.data["revision"]["sha"]
        for e in stream.events
        if e.name == "app" and (e.data["namespace"], e.data["name"]) == (namespace, name)
    ]


def test_two_streams_see_a_pushed_commit_from_the_one_watch(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    ctl, repo = synced_web(serve, git_server, kube, namespace, tmp_path)
    with EventStreams(ctl.url, VIEWER) as streams:
        lists = [streams.open("/api/v1/stream") for _ in range(2)]
        page = streams.open(f"/api/v1/applications/{namespace}/web/stream")
        # the page's stream starts with the app's document as it is now
        assert streams.wait(lambda: bool(revisions(page, namespace, "web")), 30), page
        assert revisions(page, namespace, "web")[0] == repo.head()
        assert all(s.status == 200 for s in lists)

        sha = push_value(repo, "v2")
        assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
        for stream in (*lists, page):
            assert streams.wait(lambda s=stream: sha in revisions(s, namespace, "web"), 120), (
                stream.events,
                ctl.log(40),
            )
        assert synced_at(kube, namespace, "web", sha)
    assert ctl.metric("gitsync_ui_stream_application_events_total") > 0


def test_a_client_that_stops_reading_neither_blocks_others_nor_queues_updates(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    ctl, _ = synced_web(serve, git_server, kube, namespace, tmp_path)
    path = f"/api/v1/applications/{namespace}/web/stream"
    with EventStreams(ctl.url, VIEWER) as streams:
        stuck = streams.open(path, read=False, receive_buffer=4096)
        reader = streams.open(path)
        assert streams.wait(lambda: bool(reader.events), 30)
        wait_for(lambda: ctl.metric("gitsync_ui_streams") == 2, timeout=30)
        # status writes of ~75 KB each (150 resources with long messages), 8 MB in all: far
        # more than the stuck client's socket buffers and the server's 1 MiB write buffer
        # hold, so its updates must coalesce instead of piling up
        resources = [
            {
                "group": "",
                "kind": "ConfigMap",
                "namespace": namespace,
                "name": f"config-{i}",
                "status": "Synced",
                "health": {"status": "Healthy", "message": "lorem ipsum " * 30},
            }
            for i in range(150)
        ]
        for i in range(110):
            kube.patch(
                "gitsync.dev/v1alpha1",
                "Application",
                "web",
                {
                    "status": {
                        "health": {"status": "Healthy", "message": f"{i:04d} update"},
                        "resources": resources,
                    }
                },
                namespace=namespace,
                subresource="status",
            )
        assert streams.wait(
            lambda: any(e.data["health"]["message"].startswith("0109") for e in reader.events),
            60,
        ), ctl.log(40)
        # the stuck stream holds its latest update, not a backlog
        assert ctl.metric("gitsync_ui_stream_pending_updates") <= 2
        assert ctl.metric("gitsync_ui_stream_coalesced_total") > 0
        assert stuck.status == 0  # never read: we never even saw its header
        # a normal request is still answered at once
        assert api_status(ctl, f"/api/v1/applications/{namespace}/web") == 200


def test_streams_beyond_the_cap_are_refused_and_requests_keep_their_threads(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    repo = configmap_repo(git_server)
    kube.create(application("web", namespace, repo.file_url()))
    # more streams than waitress's 8 request threads: they must not take those threads
    ctl = start(serve, tmp_path, "--ui-max-streams=12")
    with EventStreams(ctl.url, VIEWER) as streams:
        opened = [streams.open("/api/v1/stream") for _ in range(12)]
        assert streams.wait(lambda: all(s.status == 200 for s in opened), 30), [
            s.status for s in opened
        ]
        wait_for(lambda: ctl.metric("gitsync_ui_streams") == 12, timeout=30)
        refused = streams.open("/api/v1/stream")
        assert streams.wait(lambda: refused.ended, 30)
        assert refused.status == 503
        for _ in range(10):  # more requests than request threads, one after another
            assert api_status(ctl, "/api/v1/applications") == 200
            assert api_status(ctl, "/healthz") == 200
