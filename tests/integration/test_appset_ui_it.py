"""The ApplicationSet page, API and ``gitsync appset list|get`` against a real ``gitsync serve``,
the real control plane and a real Git server over HTTP on loopback (issue 18's UI/API/CLI bullet).

A set with a list generator makes two apps; the API list and detail show the set and its apps
with their sync/health and the list elements each was rendered from (its parameters, also
in the set's ``status.resources``), ``appset get -o json`` is the API's document, and the set's
page renders the apps (an HTTP GET, as a browser makes it, with the read-only token).
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.cli import CliRun, run_gitsync
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

VIEWER = "viewer-" + secrets.token_hex(12)


def configmap(name: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}
    )


def fleet(namespace: str, repo_url: str) -> dict[str, Any]:
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.APPLICATION_SET,
        "metadata": {"name": "fleet", "namespace": namespace},
        "spec": {
            "goTemplate": True,
            "generators": [{"list": {"elements": [{"svc": "api"}, {"svc": "web"}]}}],
            "template": {
                "metadata": {"name": "{{ .svc }}"},
                "spec": {
                    "source": {
                        "repoURL": repo_url,
                        "targetRevision": "main",
                        "path": "services/{{ .svc }}",
                    },
                    "destination": {"namespace": namespace},
                    "syncPolicy": {"automated": {"prune": True}},
                },
            },
        },
    }


def get(ctl: Any, path: str) -> tuple[int, str]:
    request = urllib.request.Request(ctl.url + path, headers={"Authorization": f"Bearer {VIEWER}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.status, resp.read().decode()


def api(ctl: Any, path: str) -> Any:
    return json.loads(get(ctl, "/api/v1" + path)[1])


def appset_cli(ctl: Any, *args: str) -> CliRun:
    run = run_gitsync(
        "appset", *args, env={"GITSYNC_SERVER": ctl.url, "GITSYNC_TOKEN": VIEWER}, timeout=120
    )
    assert VIEWER not in run.output, run
    return run


def test_a_list_generated_set_in_the_api_the_cli_and_its_page(
    serve: Any, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    with GitServer(ssh=False) as server:
        repo = server.create_repo(
            f"fleet-{secrets.token_hex(3)}",
            files={f"services/{s}/cm.yaml": configmap(f"cm-{s}") for s in ("api", "web")},
        )
        (tmp_path / "viewer-tokens").write_text(VIEWER + "\n")
        ctl = serve(f"--read-only-token-file={tmp_path / 'viewer-tokens'}")
        kube.create(fleet(namespace, repo.http_url()))

        def settled() -> dict[str, Any] | None:
            try:
                doc = api(ctl, f"/applicationsets/{namespace}/fleet")
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # the controller's watch has not seen the new set yet
                    return None
                raise
            states = {(a["name"], a["exists"], a["sync"], a["health"]) for a in doc["applications"]}
            done = {("api", True, "Synced", "Healthy"), ("web", True, "Synced", "Healthy")}
            return doc if states == done and doc["status"] == "UpToDate" else None

        doc = wait_for(settled, timeout=120, what="the set's apps Synced and Healthy in the API")
        assert [g["summary"] for g in doc["generators"]] == ["2 elements"]
        assert doc["applicationCount"] == 2
        assert doc["template"]["path"] == "services/{{ .svc }}"
        assert {c["type"] for c in doc["conditions"]} >= {"ErrorOccurred", "ResourcesUpToDate"}
        assert all(a["revision"] == repo.head() for a in doc["applications"])
        # the list generator's elements, as the parameters each app was rendered from
        assert {a["name"]: a["parameters"] for a in doc["applications"]} == {
            "api": {"svc": "api"},
            "web": {"svc": "web"},
        }
        live = kube.get(kinds.API_VERSION, kinds.APPLICATION_SET, "fleet", namespace) or {}
        recorded = [r.get("parameters") for r in live["status"]["resources"]]
        assert recorded == [{"svc": "api"}, {"svc": "web"}]

        listing = api(ctl, "/applicationsets")
        mine = [s for s in listing["items"] if s["namespace"] == namespace]
        assert [(s["name"], s["applicationCount"], s["status"]) for s in mine] == [
            ("fleet", 2, "UpToDate")
        ]

        def cli_equals_api() -> Any:
            # the set's status may move between the two reads (an app's status write): the
            # CLI's document equals the API's when both read the same state
            run = appset_cli(ctl, "get", f"{namespace}/fleet", "-o", "json")
            assert run.code == 0, run
            return json.loads(run.stdout) == api(ctl, f"/applicationsets/{namespace}/fleet")

        wait_for(cli_equals_api, timeout=30, what="appset get -o json equal to the API document")

        table = appset_cli(ctl, "list", "-n", namespace)
        assert table.code == 0, table
        header, row = table.stdout.splitlines()
        assert header.split()[:4] == ["NAMESPACE", "NAME", "APPS", "STATUS"]
        assert row.split()[:4] == [namespace, "fleet", "2", "UpToDate"]
        shown = appset_cli(ctl, "get", f"{namespace}/fleet")
        assert shown.code == 0 and "Synced" in shown.stdout and "Policy:" in shown.stdout, shown
        assert "api: svc=api" in shown.stdout.splitlines(), shown
        assert "web: svc=web" in shown.stdout.splitlines(), shown
        missing = appset_cli(ctl, "get", f"{namespace}/nope")
        assert missing.code == 2
        assert f"/api/v1/applicationsets/{namespace}/nope: 404" in missing.stderr

        status, html = get(ctl, f"/appsets/{namespace}/fleet")
        assert status == 200
        for name in ("api", "web"):
            assert f'href="/apps/{namespace}/{name}"' in html
        assert "2 elements" in html and "Synced" in html and "Healthy" in html
        assert "<code>svc=api</code>" in html and "<code>svc=web</code>" in html
        status, index = get(ctl, "/appsets")
        assert status == 200 and f'href="/appsets/{namespace}/fleet"' in index
