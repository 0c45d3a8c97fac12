"""Issue 13, findings 5 (brace patterns) and 12 (kustomize remote bases), through a real
``gitsync serve`` on the test control plane with a real Git server.

* An Application whose ``directory.include`` has 22 ``{a,b}`` groups (4,194,304 alternatives)
  stalls with an error naming the field, and the controller's peak memory hardly moves: the
  alternatives are counted, never expanded (expanded, they took it from 132 MB to 640 MB).
* A kustomization naming ``deploy@example.com:org/repo`` - with a directory of that name in the
  repository, so it also exists locally - stalls with "is a remote reference" before kustomize
  runs, and nothing of it is applied.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RSS_GROWTH_BOUND = 100 * 1024 * 1024


def config_map(name: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def condition_with(kube: KubeClient, namespace: str, name: str, text: str) -> str | None:
    for condition in app_status(kube, namespace, name).get("conditions") or []:
        if text in str(condition.get("message", "")):
            return str(condition["message"])
    return None


@pytest.mark.timeout(300)
def test_brace_bomb_and_remote_base_stall_their_apps_with_the_controller_unharmed(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    braces = git_server.create_repo(
        f"braces-{secrets.token_hex(3)}", files={"app/braces.yaml": config_map("braces")}
    )
    remote = git_server.create_repo(
        f"remote-{secrets.token_hex(3)}",
        files={
            "app/kustomization.yaml": "resources:\n  - cm.yaml\n  - deploy@example.com:org/repo\n",
            "app/cm.yaml": config_map("remote-local"),
            # spelled like the remote, so the entry exists locally too
            "app/deploy@example.com:org/repo/kustomization.yaml": "resources: [cm.yaml]\n",
            "app/deploy@example.com:org/repo/cm.yaml": config_map("remote-spelled"),
        },
    )
    ctl = serve()
    assert ctl.proc is not None
    before = peak_rss(ctl.proc.pid)

    bomb = application("braces", namespace, braces.file_url())
    bomb["spec"]["source"]["directory"] = {"include": "{a,b}" * 22 + "braces.yaml"}
    kube.create(bomb)
    kube.create(application("remote", namespace, remote.file_url()))

    message = wait_for(
        lambda: condition_with(kube, namespace, "braces", "brace alternatives"),
        timeout=120,
        what="a condition naming the brace limit",
    )
    assert "spec.source.directory.include" in message and "more than 256" in message
    message = wait_for(
        lambda: condition_with(kube, namespace, "remote", "is a remote reference"),
        timeout=120,
        what="a condition refusing the remote base",
    )
    assert "deploy@example.com:org/repo" in message
    assert "app/kustomization.yaml" in message

    for name in ("braces", "remote-local", "remote-spelled"):
        assert kube.get("v1", "ConfigMap", name, namespace) is None, f"{name} was applied"
    growth = peak_rss(ctl.proc.pid) - before
    assert growth < RSS_GROWTH_BOUND, f"serve's peak RSS grew by {growth >> 20} MiB"
