"""Hardening (issue 8, item 6): a "billion laughs" file in Git, through the whole controller.

The unit tests show the YAML loader refuses the alias bomb. The risk this test covers is that
some other stage sees the document first or again - the diff, the status writer, the UI - and
expands it there: PyYAML shares aliased nodes, so a bomb that got past the loader costs nothing
until something walks it (json.dumps, diff, hashing) and then costs gigabytes. So the repository
is pushed to the real Git server, a real ``gitsync serve`` reconciles it against the real API
server, and the test follows the error to every place a user would look: the Application's
status conditions, the JSON API, the diff endpoint and the HTML page. Nothing from the repository
is applied (a failed render applies and prunes nothing), and the controller stays responsive with
a peak resident size far below what the expansion would need.
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

BOMB = Path(__file__).parents[1] / "fixtures" / "render" / "plain" / "alias-bomb" / "bomb.yaml"
# Far below the ~10 GB a walked expansion of 9**9 strings needs; far above a serve process.
PEAK_RSS_BOUND = 1024 * 1024 * 1024


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def bomb_message(kube: KubeClient, namespace: str, name: str) -> str | None:
    for condition in app_status(kube, namespace, name).get("conditions") or []:
        message = str(condition.get("message", ""))
        if "app/bomb.yaml" in message:
            return message
    return None


@pytest.mark.timeout(300)
def test_billion_laughs_is_refused_through_render_diff_status_and_ui(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}}
    repo = git_server.create_repo(
        f"laughs-{secrets.token_hex(3)}",
        files={"app/config.yaml": yaml.safe_dump(config), "app/bomb.yaml": BOMB.read_text()},
    )
    ctl = serve("--anonymous-read")
    kube.create(application("laughs", namespace, repo.file_url()))

    # status: the condition names the file, the line and the limit
    message = wait_for(
        lambda: bomb_message(kube, namespace, "laughs"),
        timeout=120,
        what="a status condition naming app/bomb.yaml",
    )
    assert "YAML aliases expand to more than 100000 nodes" in message
    assert len(message) < 4000

    # render failed, so nothing of the repository was applied
    assert kube.get("v1", "ConfigMap", "config", namespace) is None

    # the JSON API carries the same error
    status, body = get(f"{ctl.url}/api/v1/applications/{namespace}/laughs")
    assert status == 200, body
    assert "YAML aliases expand to more than 100000 nodes" in body
    assert "lol" not in body  # nothing of the document itself

    # the diff endpoint renders again and fails the same way, quickly and without expanding
    status, body = get(f"{ctl.url}/api/v1/applications/{namespace}/laughs/diff")
    assert status == 502, body
    assert "app/bomb.yaml" in body and "alias" in body
    assert len(body) < 8000

    # the HTML page shows it
    status, page = get(f"{ctl.url}/apps/{namespace}/laughs")
    assert status == 200
    assert "app/bomb.yaml" in page
    assert "YAML aliases expand to more than 100000 nodes" in page

    # and the controller is alive and never came near the expansion's size
    assert get(f"{ctl.url}/healthz")[0] == 200
    assert ctl.proc is not None
    assert peak_rss(ctl.proc.pid) < PEAK_RSS_BOUND
