"""Issue 21 (rbac): roles per project and scoped, expiring API tokens on a real ``gitsync serve``
against the real test control plane.

Two projects (namespaces) ``team-a`` and ``team-b``, each with Applications. A global admin
mints tokens with the real CLI (``gitsync token create``); they land as digests in the Secret
``gitsync-api-tokens`` of the controller's namespace. The team-a operator token lists only
team-a's apps (the total too), syncs one, and gets the same 403 for team-b's app as for one that
does not exist; a viewer token cannot act; a revoked token and an expired one are refused; every
action leaves an ``event=audit`` line and an Event on the Application.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import application, configmap_repo
from tests.support.cli import CliRun, run_gitsync
from tests.support.cluster import temporary_namespace
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ADMIN = "admin-" + secrets.token_hex(12)
READ_ONLY = "viewer-" + secrets.token_hex(12)


@pytest.fixture
def projects(kube: KubeClient) -> Iterator[tuple[str, str, str]]:
    """Namespaces team-a, team-b and the controller's own (for the token Secret)."""
    with (
        temporary_namespace(kube, "team-a") as team_a,
        temporary_namespace(kube, "team-b") as team_b,
        temporary_namespace(kube, "rbac-ctl") as controller,
    ):
        yield team_a, team_b, controller


def call(ctl: Any, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        ctl.url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def token_cli(ctl: Any, *args: str, token: str = ADMIN) -> CliRun:
    return run_gitsync(
        "token", *args, env={"GITSYNC_SERVER": ctl.url, "GITSYNC_TOKEN": token}, timeout=120
    )


def mint(ctl: Any, name: str, role: str, project: str, expires: str = "1h") -> str:
    made = token_cli(
        ctl, "create", "--name", name, "--project", project, "--role", role, "--expires", expires
    )
    assert made.code == 0, made
    token = made.stdout.strip()
    assert token.startswith("gst_") and token not in made.stderr
    return token


def listed(ctl: Any, token: str) -> tuple[list[str], int]:
    status, doc = call(ctl, "GET", "/api/v1/applications?per_page=100", token)
    assert status == 200, doc
    return sorted(f"{i['namespace']}/{i['name']}" for i in doc["items"]), doc["total"]


def events(kube: KubeClient, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.list("v1", "Event", namespace)["items"]
        if e.get("reason") == reason and (e.get("involvedObject") or {}).get("name") == name
    ]


def audit_lines(ctl: Any) -> list[dict[str, Any]]:
    found = []
    for line in ctl.log(2000).splitlines():
        if '"event": "audit"' in line:
            found.append(json.loads(line[line.index("{") :]))
    return found


def test_project_tokens_on_a_real_serve(
    serve: Any,
    kube: KubeClient,
    git_server: GitServer,
    projects: tuple[str, str, str],
    tmp_path: Path,
) -> None:
    team_a, team_b, controller_ns = projects
    repo = configmap_repo(git_server)
    for namespace, name in ((team_a, "web"), (team_a, "api"), (team_b, "web")):
        kube.create(application(name, namespace, repo.file_url()))
    (tmp_path / "admin-tokens").write_text(ADMIN + "\n")
    (tmp_path / "ro-tokens").write_text(READ_ONLY + "\n")
    # the policy adds to a token's own scope: reader-b also reads team-b
    policy = tmp_path / "rbac.yaml"
    policy.write_text(
        f"bindings:\n  - subjects: [token:reader-b]\n    role: viewer\n    projects: [{team_b}]\n"
    )
    ctl = serve(
        f"--api-token-file={tmp_path / 'admin-tokens'}",
        f"--read-only-token-file={tmp_path / 'ro-tokens'}",
        f"--controller-namespace={controller_ns}",
        f"--rbac-policy={policy}",
    )
    wait_for(lambda: listed(ctl, ADMIN)[1] >= 3, timeout=60)

    operator = mint(ctl, "ci-a", "operator", team_a)
    viewer = mint(ctl, "view-a", "viewer", team_a)
    reader = mint(ctl, "reader-b", "viewer", team_a)
    short = mint(ctl, "short-a", "operator", team_a, expires="20s")
    minted_at = time.monotonic()

    # stored as digests only, in the controller's namespace
    secret = kube.get("v1", "Secret", "gitsync-api-tokens", controller_ns)
    assert secret is not None
    stored = json.dumps(secret["data"]) + "".join(
        base64.b64decode(v).decode() for v in secret["data"].values()
    )
    assert sorted(secret["data"]) == ["ci-a", "reader-b", "short-a", "view-a"]
    for token in (operator, viewer, reader, short):
        assert token not in stored

    # lists and counts show only the token's project (plus what the policy adds)
    assert listed(ctl, operator) == ([f"{team_a}/api", f"{team_a}/web"], 2)
    assert listed(ctl, reader)[1] == 3
    assert listed(ctl, READ_ONLY)[1] >= 3  # the static token files keep their global roles

    # team-b's app and an app that does not exist: the same answer
    for method, suffix, body in (("GET", "", None), ("POST", "/sync", {}), ("GET", "/diff", None)):
        there = call(ctl, method, f"/api/v1/applications/{team_b}/web{suffix}", operator, body)
        absent = call(ctl, method, f"/api/v1/applications/{team_b}/nope{suffix}", operator, body)
        assert there == absent and there[0] == 403, (suffix, there, absent)

    # the operator syncs its project; the viewer cannot
    assert call(ctl, "POST", f"/api/v1/applications/{team_a}/web/sync", viewer, {})[0] == 403
    status, doc = call(ctl, "POST", f"/api/v1/applications/{team_a}/web/sync", operator, {})
    assert status == 202, doc
    app = kube.get("gitsync.dev/v1alpha1", "Application", "web", team_a)
    assert app is not None and doc["request"] in app["metadata"]["annotations"].get(
        "gitsync.dev/sync-request", ""
    )

    # the CLI with the scoped token: its project only
    env = {"GITSYNC_SERVER": ctl.url, "GITSYNC_TOKEN": operator}
    apps = run_gitsync("app", "list", "-o", "json", env=env, timeout=120)
    assert apps.code == 0, apps
    assert {i["namespace"] for i in json.loads(apps.stdout)["items"]} == {team_a}
    refused = run_gitsync("app", "sync", f"{team_b}/web", env=env, timeout=120)
    assert refused.code != 0 and "403" in refused.output, refused
    assert token_cli(ctl, "list", token=operator).code != 0  # not an admin

    # audit: a log line and an Event on the Application for each action, allowed or not
    lines = audit_lines(ctl)
    assert any(
        a["who"] == "token:ci-a" and a["app"] == f"{team_a}/web" and a["result"] == "requested"
        for a in lines
    ), lines
    assert any(
        a["who"] == "token:view-a" and a["result"] == "denied" and a["status"] == 403 for a in lines
    ), lines
    assert all(a.get("client") == "127.0.0.1" for a in lines)
    assert wait_for(lambda: events(kube, team_a, "web", "ActionRequested"), timeout=30)
    assert wait_for(lambda: events(kube, team_b, "web", "ActionDenied"), timeout=30)

    # revocation: refused at once on this replica
    listing = token_cli(ctl, "list", "-o", "json")
    assert listing.code == 0, listing
    assert {t["name"] for t in json.loads(listing.stdout)["items"]} >= {"ci-a", "short-a"}
    assert token_cli(ctl, "revoke", "ci-a").code == 0
    assert call(ctl, "GET", "/api/v1/applications", operator)[0] == 401

    # expiry: the short token works, then stops at its expiry
    assert call(ctl, "GET", "/api/v1/applications", short)[0] == 200
    time.sleep(max(0.0, 21 - (time.monotonic() - minted_at)))
    assert call(ctl, "GET", "/api/v1/applications", short)[0] == 401

    for token in (ADMIN, operator, viewer, reader, short):
        assert token not in ctl.log(2000)


def test_the_admin_password_can_be_disabled_and_a_bad_policy_stops_serve(
    serve: Any, tmp_path: Path
) -> None:
    password = tmp_path / "admin-password"
    password.write_text("pw-" + secrets.token_hex(8) + "\n")
    ctl = serve(f"--admin-password-file={password}", "--disable-admin-password")
    with urllib.request.urlopen(ctl.url + "/login", timeout=30) as resp:
        page = resp.read().decode()
        cookie = resp.headers["Set-Cookie"].split(";")[0]
    assert 'name="password"' not in page  # no password form is offered
    csrf = cookie.split("=", 1)[1]  # the login form's double-submit token, as a browser sends
    form = f"csrf_token={csrf}&password={password.read_text().strip()}&next=/".encode()
    request = urllib.request.Request(
        ctl.url + "/login",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401

    bad = tmp_path / "bad.yaml"
    bad.write_text("bindings:\n  - subjects: [group:a]\n    role: owner\n    projects: [a]\n")
    run = run_gitsync("serve", "--listen=127.0.0.1:0", f"--rbac-policy={bad}", timeout=60)
    assert run.code != 0
    assert "line 3: bindings[0].role: 'owner' is not a role" in run.stderr
