"""Kubernetes Events per app (issue 20) against a real ``gitsync serve`` on the test control plane.

Acceptance: an app with 10,000 Events shows the newest N, in order, and the controller's memory
grows by much less than keeping them would cost; another namespace's Events never show through
a tenant's app; ``gitsync app events`` prints them. Events are created through the API the way a
kubelet or controller records them (``v1 Event`` with an ``involvedObject``).
"""

from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import application, configmap_repo, synced_at
from tests.support.cli import run_gitsync
from tests.support.cluster import temporary_namespace
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

VIEWER = "viewer-" + secrets.token_hex(12)
MIB = 1024 * 1024
PER_APP = 100
APP_EVENTS = 10_000
OTHER_EVENTS = 1_000  # the same namespace, about an object no app manages: dropped on arrival
MESSAGE_BYTES = 1_100  # over the 1,024-character cut, so every kept message is cut
# Keeping the 11,000 Events as a WatchCache does (the API server's objects: ~3 KB of JSON each,
# several times that as Python dicts) would cost well over 50 MiB; the bounded index keeps 100
# records of ~1.5 KB. What remains is the allocator's high-water mark of decoding list pages of
# 500 Events and the watch stream, which Python does not hand back to the OS.
RSS_GROWTH_BOUND = 30 * MIB


def start(serve: Any, tmp_path: Path, *extra: str) -> Any:
    (tmp_path / "viewer-tokens").write_text(VIEWER + "\n")
    return serve(f"--read-only-token-file={tmp_path / 'viewer-tokens'}", *extra)


def api_answer(ctl: Any, namespace: str, name: str, **query: str) -> Any:
    import urllib.parse
    import urllib.request

    url = f"{ctl.url}/api/v1/applications/{namespace}/{name}/events"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {VIEWER}"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def api_events(ctl: Any, namespace: str, name: str, **query: str) -> Any:
    """The items once every namespace of the app is listed (a 200 says ``loading`` until then)."""

    def listed() -> Any:
        doc = api_answer(ctl, namespace, name, **query)
        return None if doc["loading"] else doc

    return wait_for(listed, timeout=60, interval=0.5, what="the first list of Events")["items"]


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


def core_event(
    namespace: str,
    name: str,
    about: tuple[str, str, str, str],
    at: datetime,
    *,
    message: str = "",
    warning: bool = False,
    reason: str = "Test",
) -> dict[str, Any]:
    """A ``v1 Event`` as a kubelet records it; ``about`` is (apiVersion, kind, namespace, name)."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "apiVersion": about[0],
            "kind": about[1],
            "namespace": about[2],
            "name": about[3],
        },
        "reason": reason,
        "message": message or f"event {name}",
        "type": "Warning" if warning else "Normal",
        "source": {"component": "kubelet"},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def create_all(kube: KubeClient, events: list[dict[str, Any]]) -> None:
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(kube.create, events))


def test_ten_thousand_events_show_the_newest_n_with_bounded_memory(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    repo = configmap_repo(git_server)
    kube.create(application("web", namespace, repo.file_url()))
    ctl = start(serve, tmp_path, f"--events-per-app={PER_APP}")
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=120, what="Synced")
    api_events(ctl, namespace, "web")  # the namespace's stream is started and listed
    assert ctl.proc is not None and ctl.proc.popen is not None
    pid = ctl.proc.popen.pid
    before = rss(pid)

    base = datetime.now(UTC) - timedelta(hours=3)
    config = ("v1", "ConfigMap", namespace, "config")
    stranger = ("v1", "ConfigMap", namespace, "not-managed")
    filler = "x" * MESSAGE_BYTES
    events = [
        core_event(
            namespace, f"config.{i:05d}", config, base + timedelta(seconds=i), message=filler
        )
        for i in range(APP_EVENTS)
    ]
    # interleaved, and newer than all of the app's: they must not push the app's Events out
    events[::10] = [
        core_event(namespace, f"stranger.{i:05d}", stranger, base + timedelta(hours=2, seconds=i))
        for i in range(len(events[::10]))
    ]
    events += [
        core_event(
            namespace, f"config.{i:05d}", config, base + timedelta(seconds=i), message=filler
        )
        for i in range(0, APP_EVENTS, 10)
    ]
    began = time.monotonic()
    create_all(kube, events)
    created_in = time.monotonic() - began

    # The app's newest N include the few Events of its Deployment, ReplicaSet, Pod and of the
    # Application itself (real, recorded just now); the rest are the newest of the 10,000.
    newest = [f"config.{i:05d}" for i in range(APP_EVENTS - 1, APP_EVENTS - 1 - PER_APP, -1)]

    def shows_newest() -> list[dict[str, Any]] | None:
        items = api_events(ctl, namespace, "web")
        names = [e["name"] for e in items if e["involvedObject"]["name"] == "config"]
        ok = len(items) == PER_APP and len(names) >= PER_APP - 20
        return items if ok and names == newest[: len(names)] else None

    items = wait_for(shows_newest, timeout=120, interval=1.0, what="the newest 100 Events")
    stamps = [e["lastTimestamp"] for e in items]
    assert stamps == sorted(stamps, reverse=True)
    config = [e for e in items if e["involvedObject"]["name"] == "config"]
    assert len({e["lastTimestamp"] for e in config}) == len(config)
    assert all(len(e["message"]) == 1024 and e["message"].endswith("…") for e in config)
    assert not [e for e in items if e["involvedObject"]["name"] == "not-managed"]
    only_config = api_events(ctl, namespace, "web", kind="ConfigMap", limit="7")
    assert [e["name"] for e in only_config] == newest[:7]

    after = rss(pid)
    growth = after - before
    print(
        f"\n10,000 app Events + 1,000 others created in {created_in:.1f}s; "
        f"controller RSS {before / MIB:.1f} -> {after / MIB:.1f} MiB (+{growth / MIB:.1f} MiB)"
    )
    assert growth < RSS_GROWTH_BOUND, f"RSS grew {growth / MIB:.1f} MiB"


def test_a_tenant_app_never_shows_another_namespaces_events(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    """Two tenants deploy the same objects (ConfigMap ``config``, Deployment ``web``) into their
    own namespaces, and both namespaces are streamed. Neither app shows an Event of the other
    namespace, though it is about an object of the same kind and name. (An Event written in one
    namespace naming another's object is refused by the API server for core/v1 - ``does not
    match event.namespace`` - so that case is a unit test of ``apps_of``.)"""
    with temporary_namespace(kube, "events-other") as other:
        mine, theirs = configmap_repo(git_server), configmap_repo(git_server)
        kube.create(application("web", namespace, mine.file_url()))
        kube.create(application("web", other, theirs.file_url()))
        ctl = start(serve, tmp_path)
        for ns, repo in ((namespace, mine), (other, theirs)):
            sha = repo.head()
            wait_for(lambda ns=ns, sha=sha: synced_at(kube, ns, "web", sha), timeout=120)
        now = datetime.now(UTC)
        create_all(
            kube,
            [
                core_event(
                    other, "theirs", ("v1", "ConfigMap", other, "config"), now, message="B: theirs"
                ),
                core_event(
                    namespace, "mine", ("v1", "ConfigMap", namespace, "config"), now, message="A"
                ),
            ],
        )
        for ns, expected in ((namespace, "mine"), (other, "theirs")):
            wait_for(
                lambda ns=ns, expected=expected: any(
                    e["name"] == expected for e in api_events(ctl, ns, "web")
                ),
                timeout=30,
                what=f"the Event {expected} in {ns}",
            )
        time.sleep(2)  # created together: the others had every chance to arrive too
        for ns in (namespace, other):
            shown = api_events(ctl, ns, "web")
            assert not [e for e in shown if e["involvedObject"]["namespace"] != ns], shown
            assert [e["name"] for e in shown if e["name"] in ("mine", "theirs")] == [
                "mine" if ns == namespace else "theirs"
            ], shown


def test_app_events_cli_prints_warnings_newest_first(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    repo = configmap_repo(git_server)
    kube.create(application("web", namespace, repo.file_url()))
    ctl = start(serve, tmp_path)
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=120, what="Synced")
    now = datetime.now(UTC)
    deploy = ("apps/v1", "Deployment", namespace, "web")
    create_all(
        kube,
        [
            core_event(namespace, "older", deploy, now - timedelta(seconds=30), reason="Scaled"),
            core_event(namespace, "newer", deploy, now, warning=True, reason="FailedCreate"),
        ],
    )
    env = {"GITSYNC_SERVER": ctl.url, "GITSYNC_TOKEN": VIEWER}

    def listed() -> Any:
        run = run_gitsync(
            "app", "events", f"{namespace}/web", "--kind", "Deployment", "-o", "json", env=env
        )
        assert run.code == 0, run
        items = json.loads(run.stdout)
        ours = [e["name"] for e in items if e["name"] in ("newer", "older")]
        return items if ours == ["newer", "older"] else None

    wait_for(listed, timeout=30, what="both Events")
    table = run_gitsync("app", "events", f"{namespace}/web", "--type", "Warning", env=env)
    assert table.code == 0, table
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    assert len(rows) == 1 and "FailedCreate" in rows[0] and "Deployment/web" in rows[0]
    assert VIEWER not in table.output
    bad = run_gitsync("app", "events", f"{namespace}/web", "--type", "Error", env=env)
    assert bad.code == 2 and "--type" in bad.output
