"""The list's filters and counters and the history diff against a real ``gitsync serve`` on the
test control plane, with real pushes to the loopback Git server (issue 20: list page, history).

``web`` deploys two commits that change a ConfigMap and a Secret; the diff between its two
history entries shows the ConfigMap's change and the Secret's change masked, and its timeline
carries author, duration and result. ``broken`` runs a Deployment that never becomes Ready, so it
ends Degraded; the API's filters and counters and ``gitsync app list``'s flags select by health,
label, repository and namespace.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.integration.test_app_cli_it import deployment_repo
from tests.support.apps import app_status, application, github_webhook, synced_at
from tests.support.cli import run_gitsync
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

VIEWER = "viewer-" + secrets.token_hex(12)
ADMIN = "admin-" + secrets.token_hex(12)  # the diff of an app with Secrets needs diff-secrets
PASSWORD_1 = "first-" + secrets.token_hex(8)
PASSWORD_2 = "second-" + secrets.token_hex(8)


def secret_files(value: str, password: str) -> dict[str, str]:
    return {
        "app/cm.yaml": yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "config"},
                "data": {"value": value},
            }
        ),
        "app/secret.yaml": yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "db"},
                "data": {"password": base64.b64encode(password.encode()).decode()},
            }
        ),
    }


def secret_repo(git_server: GitServer) -> GitRepo:
    return git_server.create_repo(
        f"hist-{secrets.token_hex(3)}", files=secret_files("v1", PASSWORD_1)
    )


def never_ready_repo(git_server: GitServer, name: str) -> GitRepo:
    """A Deployment whose pod the simulator runs but never marks Ready: Degraded after 10 s."""
    repo: GitRepo = deployment_repo(git_server, name, "never-ready", deadline=10)
    return repo


def labelled(app: dict[str, Any], **labels: str) -> dict[str, Any]:
    app["metadata"]["labels"] = labels
    return app


def api(ctl: Any, path: str, token: str = VIEWER) -> tuple[int, Any]:
    request = urllib.request.Request(
        ctl.url + "/api/v1" + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def health_of(kube: KubeClient, namespace: str, name: str) -> str:
    return str((app_status(kube, namespace, name).get("health") or {}).get("status"))


def test_history_diff_between_two_deploys_and_the_list_filters(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    repo = secret_repo(git_server)
    broken = never_ready_repo(git_server, "broken")
    kube.create(labelled(application("web", namespace, repo.file_url()), tier="front"))
    kube.create(labelled(application("broken", namespace, broken.file_url()), tier="back"))
    (tmp_path / "viewer-tokens").write_text(VIEWER + "\n")
    (tmp_path / "admin-tokens").write_text(ADMIN + "\n")
    ctl = serve(
        f"--read-only-token-file={tmp_path / 'viewer-tokens'}",
        f"--api-token-file={tmp_path / 'admin-tokens'}",
    )
    first = repo.head()
    assert wait_for(lambda: synced_at(kube, namespace, "web", first), timeout=120)

    second = repo.commit(secret_files("v2", PASSWORD_2), "rotate the db password")
    repo.push()
    github_webhook(ctl.url, repo.file_url(), "refs/heads/main", second)
    assert wait_for(lambda: synced_at(kube, namespace, "web", second), timeout=120)

    # the timeline: revision, author, when, duration, result
    status, doc = api(ctl, f"/applications/{namespace}/web")
    assert status == 200
    newest, oldest = doc["history"][:2]
    assert (newest["revision"], oldest["revision"]) == (second, first)
    for entry in (newest, oldest):
        assert entry["result"] == "Succeeded" and entry["author"]
        assert entry["deployStartedAt"] and isinstance(entry["durationSeconds"], int)
        assert entry["resultMessage"].startswith("succeeded")

    # the diff between the two deploys: the ConfigMap's change, the Secret's masked
    path = f"/applications/{namespace}/web/history/diff?from={oldest['id']}&to={newest['id']}"
    assert api(ctl, path)[0] == 403  # a viewer may not diff an app that manages Secrets
    status, diff = api(ctl, path, token=ADMIN)
    assert status == 200, diff
    changes = {r["kind"]: r for r in diff["resources"]}
    assert set(changes) == {"ConfigMap", "Secret"}, diff
    assert "-  value: v1\n" in changes["ConfigMap"]["diff"]
    assert "+  value: v2\n" in changes["ConfigMap"]["diff"]
    assert changes["Secret"]["change"] == "Changed"
    assert "/data/password" in changes["Secret"]["changedPaths"]
    body = json.dumps(diff)
    for password in (PASSWORD_1, PASSWORD_2):
        assert password not in body and base64.b64encode(password.encode()).decode() not in body
    assert (diff["from"]["revision"], diff["to"]["revision"]) == (first, second)

    status, error = api(ctl, path.replace(f"to={newest['id']}", "to=99"), token=ADMIN)
    assert status == 404 and "no history entry #99" in error["error"]

    history = run_gitsync(
        "app",
        "history",
        f"{namespace}/web",
        env={"GITSYNC_SERVER": ctl.url, "GITSYNC_TOKEN": VIEWER},
        timeout=120,
    )
    assert history.code == 0, history
    header, row = history.stdout.splitlines()[:2]
    assert header.split()[:5] == ["ID", "REVISION", "AUTHOR", "DEPLOYED", "AT"]
    assert "DURATION" in header and row.split()[1] == second[:7] and "Succeeded" in row

    # the list's filters and counters
    assert wait_for(lambda: health_of(kube, namespace, "broken") == "Degraded", timeout=120)
    status, listed = api(ctl, f"/applications?namespace={namespace}&health=degraded")
    assert status == 200
    assert [i["name"] for i in listed["items"]] == ["broken"]
    assert listed["counts"]["health"] == {"Degraded": 1, "Healthy": 1}
    status, listed = api(ctl, f"/applications?project={namespace}&label=tier%3Dfront")
    assert [i["name"] for i in listed["items"]] == ["web"]
    status, listed = api(
        ctl, f"/applications?namespace={namespace}&repo={quote(broken.file_url())}"
    )
    assert [i["name"] for i in listed["items"]] == ["broken"]
    status, error = api(ctl, "/applications?tier=front")
    assert status == 400 and error["error"] == "unknown query parameters: tier"

    cli = run_gitsync(
        "app",
        "list",
        "-n",
        namespace,
        "--health",
        "Degraded",
        "-l",
        "tier",
        "-o",
        "json",
        env={"GITSYNC_SERVER": ctl.url, "GITSYNC_TOKEN": VIEWER},
        timeout=120,
    )
    assert cli.code == 0, cli
    assert [i["name"] for i in json.loads(cli.stdout)["items"]] == ["broken"]
