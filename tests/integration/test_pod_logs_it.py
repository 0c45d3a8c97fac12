"""Pod logs through a real ``gitsync serve`` (issue 20: logs, bounded and role-gated).

The Pods are the real Deployment and ReplicaSet controllers' on the test control plane; their
logs come through the real kube-apiserver's ``pods/log``, which proxies to the simulated kubelets
(``gitsync.localenv.kubelet``) - what the containers wrote is set by the pod templates'
annotations. The controller runs as a process; the API is read over HTTP and the CLI runs as a
process with the token in ``$GITSYNC_TOKEN``, as a person or a CI job would.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.localenv.kubelet import GENERATED_LINE_BYTES
from tests.support.apps import application, synced_at
from tests.support.cli import CliRun, run_gitsync
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ADMIN = "admin-" + secrets.token_hex(12)
VIEWER = "viewer-" + secrets.token_hex(12)
MiB = 1024 * 1024


def deployment(
    name: str, annotations: dict[str, str], containers: tuple[str, ...] = ("main",)
) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": c, "image": "busybox:1.36"} for c in containers]},
            },
        },
    }


def start(serve: Any, tmp_path: Path, *extra: str) -> Any:
    (tmp_path / "admin-tokens").write_text(ADMIN + "\n")
    (tmp_path / "viewer-tokens").write_text(VIEWER + "\n")
    return serve(
        f"--api-token-file={tmp_path / 'admin-tokens'}",
        f"--read-only-token-file={tmp_path / 'viewer-tokens'}",
        *extra,
    )


def get(ctl: Any, path: str, token: str = ADMIN, timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(
        ctl.url + "/api/v1" + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def error(answer: tuple[int, bytes]) -> tuple[int, str]:
    """The status and the API's error message (or, for a log answered after all, its start)."""
    status, body = answer
    try:
        return status, str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return status, body[:200].decode("utf-8", "replace")


def app_cli(ctl: Any, *args: str, token: str = ADMIN) -> CliRun:
    run = run_gitsync(
        "app", *args, env={"GITSYNC_SERVER": ctl.url, "GITSYNC_TOKEN": token}, timeout=120
    )
    assert ADMIN not in run.output and VIEWER not in run.output, run
    return run


def pods_of(ctl: Any, app: str, count: int) -> dict[str, dict[str, Any]]:
    """The app's Pods by owner name, once there are ``count`` of them with their containers'
    statuses reported."""

    def ready() -> dict[str, dict[str, Any]] | None:
        status, body = get(ctl, f"/applications/{app}/pods")
        assert status == 200, body
        items = json.loads(body)["items"]
        reported = [p for p in items if p["phase"]]
        return {p["owner"]["name"]: p for p in reported} if len(reported) == count else None

    return wait_for(ready, timeout=90, what=f"{count} Pods of {app}")


def test_an_apps_pod_logs_through_the_api_and_the_cli_and_nothing_else(
    serve: Any,
    git_server: GitServer,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
    sim: None,
) -> None:
    files = {
        "app/web.yaml": yaml.safe_dump(
            deployment(
                "web",
                {"sim.gitsync.dev/log-lines": "\n".join(f"web line {i}" for i in range(1, 21))},
            )
        ),
        "app/stuck.yaml": yaml.safe_dump(
            deployment(
                "stuck",
                {
                    "sim.gitsync.dev/behavior": "never-ready",
                    "sim.gitsync.dev/log-lines": "waiting for the database at db:5432",
                },
                containers=("main", "sidecar"),
            )
        ),
        "app/crash.yaml": yaml.safe_dump(
            deployment(
                "crash",
                {
                    "sim.gitsync.dev/behavior": "crashloop",
                    "sim.gitsync.dev/previous-log-lines": "panic: config key missing",
                },
            )
        ),
    }
    repo = git_server.create_repo(f"logs-{secrets.token_hex(3)}", files=files)
    kube.create(application("shop", namespace, repo.file_url()))
    # A Pod in the same namespace that the app does not manage (another tenant's, say), and a
    # Secret: neither may be read through the app.
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bystander", "namespace": namespace,
                         "annotations": {"sim.gitsync.dev/log-lines": "bystander secret"}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
        }
    )  # fmt: skip
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": namespace},
            "stringData": {"password": "hunter2"},
        }
    )
    ctl = start(serve, tmp_path, "--logs-max-seconds=3", "--logs-max-streams=1")
    assert wait_for(lambda: synced_at(kube, namespace, "shop", repo.head()), timeout=120)
    app = f"{namespace}/shop"
    pods = pods_of(ctl, app, 3)
    web, stuck, crash = pods["web"]["name"], pods["stuck"]["name"], pods["crash"]["name"]
    assert [c["name"] for c in pods["stuck"]["containers"]] == ["main", "sidecar"]
    assert pods["crash"]["containers"][0]["restartCount"] > 0

    # the API: the log, its tail, a never-ready Pod's container, a restarted container's previous
    status, body = get(ctl, f"/applications/{app}/logs?pod={web}")
    assert status == 200, body
    assert body.decode().splitlines() == [f"web line {i}" for i in range(1, 21)]
    assert (
        get(ctl, f"/applications/{app}/logs?pod={web}&tailLines=2")[1]
        == b"web line 19\nweb line 20\n"
    )
    status, body = get(ctl, f"/applications/{app}/logs?pod={stuck}&container=main")
    assert (status, body) == (200, b"waiting for the database at db:5432\n")
    status, message = error(get(ctl, f"/applications/{app}/logs?pod={stuck}"))
    assert status == 400 and "container name must be specified" in message, message
    status, body = get(ctl, f"/applications/{app}/logs?pod={crash}&previous=true")
    assert (status, body) == (200, b"panic: config key missing\n")
    status, message = error(get(ctl, f"/applications/{app}/logs?pod={web}&previous=true"))
    assert status == 400 and "previous terminated container" in message, message
    status, message = error(get(ctl, f"/applications/{app}/logs?pod={web}&tailLines=0"))
    assert status == 400 and message.startswith("tailLines:"), message
    status, message = error(get(ctl, f"/applications/{app}/logs?pod={web}&kind=Secret"))
    assert status == 400 and message.startswith("kind: unknown parameter"), message

    # nothing but the app's Pods: an unmanaged Pod, a Secret's name, another namespace, a Pod
    # that does not exist - all the same 404, which tells none of them apart
    for pod, where in (("bystander", ""), ("db", ""), (web, "&namespace=default"), ("nope", "")):
        status, message = error(get(ctl, f"/applications/{app}/logs?pod={pod}{where}"))
        assert (status, message) == (404, f"no Pod {pod} in Application {app}"), (pod, message)
    assert "bystander" not in json.dumps(json.loads(get(ctl, f"/applications/{app}/pods")[1]))

    # a viewer may read the app but not its logs (--logs-role admin by default)
    assert get(ctl, f"/applications/{app}", token=VIEWER)[0] == 200
    for path in (f"/applications/{app}/logs?pod={web}", f"/applications/{app}/pods"):
        status, message = error(get(ctl, path, token=VIEWER))
        assert status == 403 and message.startswith("forbidden: logs is not allowed"), message

    # a follow stream ends at --logs-max-seconds, saying so; a second stream meanwhile is 429
    answers: list[tuple[int, bytes]] = []
    began = time.monotonic()
    follow = threading.Thread(
        target=lambda: answers.append(
            get(ctl, f"/applications/{app}/logs?pod={web}&tailLines=1&follow=true")
        )
    )
    follow.start()
    time.sleep(1.0)
    status, message = error(get(ctl, f"/applications/{app}/logs?pod={web}"))
    assert status == 429 and "--logs-max-streams" in message, message
    follow.join(30)
    took = time.monotonic() - began
    assert answers and answers[0][0] == 200
    text = answers[0][1].decode()
    assert text.startswith("web line 20\ntick 1\n"), text
    assert text.endswith("[gitsync: stream ended after 3 s (--logs-max-seconds)]\n"), text
    assert 3.0 <= took < 8.0, took
    assert wait_for(lambda: get(ctl, f"/applications/{app}/logs?pod={web}")[0] == 200, timeout=10)

    # the CLI: a Deployment's Pods, a container, the previous container, the tail
    run = app_cli(ctl, "logs", app, "--kind", "Deployment", "--name", "web", "--tail", "3")
    assert run.code == 0, run
    assert run.stdout.splitlines() == ["web line 18", "web line 19", "web line 20"]
    run = app_cli(ctl, "logs", app, "--name", "stuck", "-c", "main")
    assert (run.code, run.stdout) == (0, "waiting for the database at db:5432\n"), run
    run = app_cli(ctl, "logs", app, "--kind", "Deployment", "--name", "crash", "--previous")
    assert (run.code, run.stdout) == (0, "panic: config key missing\n"), run
    run = app_cli(ctl, "logs", app, "--kind", "Pod", "--name", "bystander")
    assert run.code == 2 and "no Pod of" in run.stderr, run
    run = app_cli(ctl, "logs", app, "--name", "web", token=VIEWER)
    assert run.code == 2 and "403" in run.stderr, run
    run = app_cli(ctl, "logs", app, "--name", "web", "-f")
    assert run.code == 0, run
    assert run.stdout.startswith("web line 1\n") and "tick 2\n" in run.stdout, run
    assert "--logs-max-seconds" in run.stdout, run


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# Bound on the controller's RSS growth while 64 MiB of log pass through it: the stream moves in
# 64 KiB chunks, and waitress keeps at most 1 MiB of a response in memory (more spills to a
# temporary file). Measured: +14.9 MiB at a 16 MiB cap and +17.3 MiB at 64 MiB - a fixed cost of
# the first big stream (TLS and socket buffers, the worker thread's malloc arena), not a share of
# the log. Holding the answer (or the 100 MB log) adds 64 MiB or more (measured +192.6 MiB).
RSS_GROWTH_BOUND = 24 * MiB


def test_a_pod_writing_100_mb_is_cut_at_the_cap_and_streams_in_bounded_memory(
    serve: Any,
    git_server: GitServer,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
    sim: None,
) -> None:
    files = {
        "app/big.yaml": yaml.safe_dump(
            deployment("big", {"sim.gitsync.dev/log-bytes": str(100 * MiB)})
        )
    }
    repo = git_server.create_repo(f"biglog-{secrets.token_hex(3)}", files=files)
    kube.create(application("big", namespace, repo.file_url()))
    cap = 64 * MiB
    ctl = start(serve, tmp_path, f"--logs-max-bytes={cap}", "--logs-role=viewer")
    assert wait_for(lambda: synced_at(kube, namespace, "big", repo.head()), timeout=120)
    app = f"{namespace}/big"
    pod = pods_of(ctl, app, 1)["big"]["name"]
    assert ctl.proc is not None and ctl.proc.popen is not None
    pid = ctl.proc.popen.pid
    get(ctl, f"/applications/{app}/logs?pod={pod}&tailLines=1", token=VIEWER)  # warm up
    before = _rss_bytes(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _rss_bytes(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        request = urllib.request.Request(
            ctl.url + f"/api/v1/applications/{app}/logs?pod={pod}&tailLines=100000",
            headers={"Authorization": f"Bearer {VIEWER}"},
        )
        received, last = 0, b""
        with urllib.request.urlopen(request, timeout=120) as resp:
            while chunk := resp.read1(1 << 20):
                received += len(chunk)
                last = (last + chunk)[-200:]
                time.sleep(0.002)  # a reader a little slower than the server
    finally:
        done.set()
        sampler.join()
    marker = f"\n[gitsync: log cut at {cap} bytes (--logs-max-bytes)]\n".encode()
    assert received == cap + len(marker)
    assert last.endswith(marker)
    # the tail of 100,000 lines is ~97.7 MiB: the cap, not the tail, ended it
    assert cap < 100_000 * GENERATED_LINE_BYTES
    growth = peak[0] - before
    print(f"serve RSS before {before / MiB:.1f} MiB, peak {peak[0] / MiB:.1f} MiB")
    assert growth < RSS_GROWTH_BOUND, growth
