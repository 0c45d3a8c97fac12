"""Secret masks are per app (found in the issue 20 review): a tenant must not confirm a guess of
another tenant's Secret value by comparing masks, through a real ``gitsync serve`` on the test
control plane and real pushes to the loopback Git server.

The victim's app ``payroll`` deploys Secret ``db`` and rotates its password once, so its history
diff shows the masks of the old (real) and new values. The hostile tenant's app ``probe``, in its
own namespace, renders a Secret under the victim's namespace and name: first a wrong guess, then
the right one. The destination policy refuses to sync it (nothing is read or written in the
victim's namespace), but the history diff compares the tenant's two renders, and so shows the mask
of each guess. Were masks keyed by the resource alone, the right guess would mask exactly like the
victim's real value, visible to anyone who may read both apps.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.integration.test_app_cli_it import ADMIN, api_get
from tests.support.apps import app_status, application, github_webhook, synced_at
from tests.support.cluster import temporary_namespace
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

REAL = "real-" + secrets.token_hex(8)
ROTATED = "rotated-" + secrets.token_hex(8)
WRONG_GUESS = "guess-" + secrets.token_hex(8)
MASK = re.compile(r"^([-+]) +password: (\+{8} \(hmac-sha256:[0-9a-f]{8}\))$", re.MULTILINE)


def secret_files(password: str, namespace: str) -> dict[str, str]:
    """Secret ``db`` in ``namespace``, named in the manifest (as charts and kustomize do) - the
    history diff masks the render as written, so both renders must name the same namespace."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": namespace},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}}
    return {"app/secret.yaml": yaml.safe_dump(secret), "app/cm.yaml": yaml.safe_dump(config)}


def push(ctl: Any, repo: GitRepo, files: dict[str, str], message: str) -> str:
    sha = repo.commit(files, message)
    repo.push()
    github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha)
    return sha


def api(ctl: Any, path: str) -> Any:
    """Read as an admin: diffs of apps that manage Secrets need ``diff-secrets`` (not the
    viewer's), here on both apps - as a platform team holds it, or a policy granting it widely."""
    return api_get(ctl, path, token=ADMIN)


def history_masks(ctl: Any, namespace: str, name: str) -> dict[str, str]:
    """The masks of ``db``'s password on each side (``-`` older, ``+`` newer) of the app's
    history diff between its two newest entries."""
    newest, older = api(ctl, f"/applications/{namespace}/{name}")["history"][:2]
    diff = api(
        ctl,
        f"/applications/{namespace}/{name}/history/diff?from={older['id']}&to={newest['id']}",
    )
    (secret,) = [r for r in diff["resources"] if r["kind"] == "Secret" and r["name"] == "db"]
    return dict(MASK.findall(secret["diff"]))


def history_has(kube: KubeClient, namespace: str, name: str, sha: str) -> bool:
    history = app_status(kube, namespace, name).get("history") or []
    return any(entry.get("revision") == sha for entry in history)


def test_a_tenant_cannot_confirm_a_guess_of_another_apps_secret_by_its_mask(
    serve: Any, git_server: GitServer, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    victim = namespace
    with temporary_namespace(kube, "mask-tenant") as tenant:
        payroll = git_server.create_repo(
            f"payroll-{secrets.token_hex(3)}", files=secret_files(REAL, victim)
        )
        probe = git_server.create_repo(
            f"probe-{secrets.token_hex(3)}", files=secret_files(WRONG_GUESS, namespace=victim)
        )
        kube.create(application("payroll", victim, payroll.file_url()))
        kube.create(application("probe", tenant, probe.file_url()))
        (tmp_path / "admin-tokens").write_text(ADMIN + "\n")
        ctl = serve(f"--api-token-file={tmp_path / 'admin-tokens'}")

        assert wait_for(lambda: synced_at(kube, victim, "payroll", payroll.head()), timeout=120)
        rotated = push(ctl, payroll, secret_files(ROTATED, victim), "rotate the db password")
        assert wait_for(lambda: synced_at(kube, victim, "payroll", rotated), timeout=120)

        first_guess = probe.head()
        assert wait_for(lambda: history_has(kube, tenant, "probe", first_guess), timeout=120)
        right_guess = push(ctl, probe, secret_files(REAL, namespace=victim), "guess again")
        assert wait_for(lambda: history_has(kube, tenant, "probe", right_guess), timeout=120)

        # the tenant's Secret is refused, never read live: its live diff shows no mask at all
        live = api(ctl, f"/applications/{tenant}/probe/diff")
        (shown,) = [r for r in live["resources"] if r["kind"] == "Secret"]
        assert shown["namespace"] == victim and shown["status"] == "Unknown", shown
        assert "denied by destination policy" in shown["error"], shown
        assert not shown["diff"] and "hmac-sha256" not in json.dumps(live), live

        victims = history_masks(ctl, victim, "payroll")
        tenants = history_masks(ctl, tenant, "probe")
        assert set(victims) == set(tenants) == {"-", "+"}, (victims, tenants)
        # within one app masks still tell whether a value changed, and are stable
        assert victims["-"] != victims["+"] and tenants["-"] != tenants["+"]
        assert history_masks(ctl, victim, "payroll") == victims
        # the right guess (the tenant's "+") does not mask like the real value (the victim's "-")
        assert tenants["+"] != victims["-"], "a mask confirmed the tenant's guess"
        assert not set(tenants.values()) & set(victims.values())
        body = json.dumps([victims, tenants])
        for value in (REAL, ROTATED, WRONG_GUESS):
            assert value not in body and base64.b64encode(value.encode()).decode() not in body
