"""An ApplicationSet whose generators make no Application, end to end: a real ``gitsync serve``,
the real control plane and a real Git server over HTTP on loopback.

"No empty result is a success": a list generator edited down to ``elements: []`` and a git
directories generator whose path matches nothing are an error on the set (``ErrorOccurred``
True, ``ResourcesUpToDate`` False, reason ``EmptyGeneration``, the message naming each
generator), with one Warning Event however many passes see it, shown by the API and
``gitsync appset get`` - and nothing is deleted. Annotated
``gitsync.dev/allow-empty-generation: "true"``, the same sets are fine (and the list set's
Application, no longer generated, is deleted under policy ``sync``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.integration.test_appset_it import (
    app_template,
    application_set,
    applications,
    condition,
    configmap,
    names_become,
)
from tests.integration.test_appset_ui_it import VIEWER, api, appset_cli
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ALLOW_EMPTY = {"metadata": {"annotations": {"gitsync.dev/allow-empty-generation": "true"}}}


def empty_events(kube: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.list("v1", "Event", namespace)["items"]
        if e.get("reason") == "EmptyGeneration"
        and (e.get("involvedObject") or {}).get("name") == name
        and (e.get("involvedObject") or {}).get("kind") == kinds.APPLICATION_SET
    ]


def empty_error(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    error = condition(kube, namespace, name, "ErrorOccurred")
    ok = error.get("status") == "True" and error.get("reason") == "EmptyGeneration"
    return error if ok else None


def allowed(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    up = condition(kube, namespace, name, "ResourcesUpToDate")
    error = condition(kube, namespace, name, "ErrorOccurred")
    fine = up.get("status") == "True" and error.get("status") == "False"
    return up if fine and "allowed by the annotation" in up.get("message", "") else None


def passes(ctl: Any, name: str) -> int:
    """How many passes of the set stopped at an error, from the serve process's log."""
    return sum(
        1
        for line in ctl.log(5000).splitlines()
        if "application set not generated" in line and f"/{name}" in line
    )


def test_an_emptied_list_is_an_error_that_deletes_nothing_until_the_set_allows_it(
    serve: Any, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    with GitServer(ssh=False) as server:
        repo = server.create_repo("svc", files={"services/api/cm.yaml": configmap("cm-api")})
        (tmp_path / "viewer-tokens").write_text(VIEWER + "\n")
        ctl = serve(f"--read-only-token-file={tmp_path / 'viewer-tokens'}")
        kube.create(
            application_set(
                "listed",
                namespace,
                [{"list": {"elements": [{"svc": "api"}]}}],
                app_template(namespace, repo.http_url(), "{{ .svc }}", "services/{{ .svc }}"),
                syncPolicy={"applicationsSync": "sync"},
            )
        )
        names_become(kube, namespace, {"api"})

        kube.patch(
            kinds.API_VERSION,
            kinds.APPLICATION_SET,
            "listed",
            {"spec": {"generators": [{"list": {"elements": []}}]}},
            namespace=namespace,
        )
        error = wait_for(
            lambda: empty_error(kube, namespace, "listed"), timeout=60, what="EmptyGeneration"
        )
        assert "spec.generators[0] (list) gave 0 parameter sets" in error["message"]
        assert "nothing was created, updated or deleted" in error["message"]
        up = condition(kube, namespace, "listed", "ResourcesUpToDate")
        assert (up["status"], up["reason"]) == ("False", "EmptyGeneration")
        assert set(applications(kube, namespace)) == {"api"}  # nothing deleted on the error

        # one Event, however many passes see the same empty generation (backoff 2, 4, 8 s)
        wait_for(lambda: empty_events(kube, namespace, "listed"), timeout=30, what="the Event")
        seen = passes(ctl, "listed")
        wait_for(lambda: passes(ctl, "listed") >= seen + 2, timeout=60, what="two more passes")
        events = empty_events(kube, namespace, "listed")
        assert len(events) == 1 and events[0]["type"] == "Warning", events
        assert events[0].get("count", 1) == 1, events
        assert "spec.generators[0] (list) gave 0 parameter sets" in events[0]["message"]
        assert set(applications(kube, namespace)) == {"api"}

        # visible where a user looks: the API document and gitsync appset get
        doc = api(ctl, f"/applicationsets/{namespace}/listed")
        assert doc["status"] == "Error"
        reasons = {c["type"]: c["reason"] for c in doc["conditions"]}
        assert reasons["ErrorOccurred"] == "EmptyGeneration"
        shown = appset_cli(ctl, "get", f"{namespace}/listed")
        assert shown.code == 0, shown
        assert "EmptyGeneration" in shown.stdout and "gave 0 parameter sets" in shown.stdout

        kube.patch(
            kinds.API_VERSION, kinds.APPLICATION_SET, "listed", ALLOW_EMPTY, namespace=namespace
        )
        up = wait_for(lambda: allowed(kube, namespace, "listed"), timeout=60, what="allowed")
        assert up["message"].startswith("0 applications, allowed by the annotation")
        names_become(kube, namespace, set())  # policy sync: the confirmed empty set deletes
        assert len(empty_events(kube, namespace, "listed")) == 1


def test_a_git_path_matching_nothing_is_an_error_and_fine_once_annotated(
    serve: Any, kube: KubeClient, namespace: str
) -> None:
    with GitServer(ssh=False) as server:
        repo = server.create_repo("mono", files={"services/api/cm.yaml": configmap("cm-api")})
        url = repo.http_url()
        serve()
        generator = {
            "git": {"repoURL": url, "revision": "main", "directories": [{"path": "apps/*"}]}
        }
        kube.create(
            application_set(
                "dirs",
                namespace,
                [generator],
                app_template(namespace, url, "{{ .path.basename }}", "{{ .path.path }}"),
            )
        )
        error = wait_for(
            lambda: empty_error(kube, namespace, "dirs"), timeout=60, what="EmptyGeneration"
        )
        assert (
            "spec.generators[0] (git directories apps/*) gave 0 parameter sets" in error["message"]
        )
        assert url not in error["message"]
        wait_for(lambda: empty_events(kube, namespace, "dirs"), timeout=30, what="the Event")
        assert applications(kube, namespace) == {}

        kube.patch(
            kinds.API_VERSION, kinds.APPLICATION_SET, "dirs", ALLOW_EMPTY, namespace=namespace
        )
        wait_for(lambda: allowed(kube, namespace, "dirs"), timeout=60, what="allowed")
        time.sleep(2)  # a pass or two more: still no error, no app, no second Event
        assert allowed(kube, namespace, "dirs") is not None
        assert applications(kube, namespace) == {}
        assert len(empty_events(kube, namespace, "dirs")) == 1
