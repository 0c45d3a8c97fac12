"""PreDelete and PostDelete hooks when an Application is deleted with the resources finalizer,
with `gitsync serve` on the real control plane and a real Git server: a Helm chart's
pre-install and post-install hooks run on sync, its pre-delete and test hooks do not; deleting
the app runs the pre-delete Job to completion before any of its objects is deleted, then deletes
them, then runs the PostDelete Job once they are gone, then releases the app; a controller
killed while a PreDelete Job runs finds that Job after its restart instead of creating it again.
The order is read from the API server's audit log and the Jobs' own conditions, not from the
controller's word."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import application, synced_at
from tests.support.audit import AuditLog
from tests.support.manifests import web_deployment
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("sim")]

CHART_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  annotations:
    {annotation}: {hook}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        sim.gitsync.dev/ready-after: "{runs_for}"
    spec:
      restartPolicy: Never
      containers:
        - name: run
          image: busybox:1.36
"""

HOOKS = [  # name, annotation, value, seconds the Job's pod runs
    ("migrate", "helm.sh/hook", "pre-install,pre-upgrade", 0),
    ("smoke", "helm.sh/hook", "post-install,post-upgrade", 0),
    ("cleanup", "helm.sh/hook", "pre-delete", 4),
    ("check", "helm.sh/hook", "test", 0),
    ("farewell", "argocd.argoproj.io/hook", "PostDelete", 0),
]


def job_names(kube: KubeClient, namespace: str) -> set[str]:
    return {j["metadata"]["name"] for j in kube.list("batch/v1", "Job", namespace)["items"]}


def complete_at(job: dict[str, Any]) -> datetime:
    [cond] = [c for c in job["status"]["conditions"] if c["type"] == "Complete"]
    assert cond["status"] == "True"
    return datetime.fromisoformat(cond["lastTransitionTime"].replace("Z", "+00:00"))


def test_deleting_a_helm_app_runs_pre_delete_before_and_post_delete_after_its_objects_go(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, audit: AuditLog
) -> None:
    templates = {
        f"chart/templates/{name}.yaml": CHART_JOB.format(
            name=name, annotation=annotation, hook=hook, runs_for=runs_for
        )
        for name, annotation, hook, runs_for in HOOKS
    }
    repo = git_server.create_repo(
        f"delhooks-{secrets.token_hex(3)}",
        files={
            "chart/Chart.yaml": "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
            "chart/templates/web.yaml": yaml.safe_dump(web_deployment("nginx:1.25", 1)),
            **templates,
        },
    )
    app = application(
        "web",
        namespace,
        repo.file_url(),
        source={"repoURL": repo.file_url(), "targetRevision": "main", "path": "chart"},
    )
    app["metadata"]["finalizers"] = ["gitsync.dev/resources-finalizer"]
    serve()
    kube.create(app)
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=90, what="synced")
    assert job_names(kube, namespace) == {"migrate", "smoke"}  # install hooks only
    assert kube.get("apps/v1", "Deployment", "web", namespace) is not None

    mark = audit.mark()
    kube.delete(kinds.API_VERSION, "Application", "web", namespace)
    deployment_going: list[datetime] = []

    def deployment_deleted() -> bool:
        live = kube.get("apps/v1", "Deployment", "web", namespace)
        if not deployment_going and (live is None or live["metadata"].get("deletionTimestamp")):
            deployment_going.append(datetime.now(UTC))
        return live is None

    wait_for(deployment_deleted, timeout=90, what="the Deployment deleted")
    wait_for(
        lambda: kube.get(kinds.API_VERSION, "Application", "web", namespace) is None,
        timeout=90,
        what="the Application released",
    )

    live = {j["metadata"]["name"]: j for j in kube.list("batch/v1", "Job", namespace)["items"]}
    assert "check" not in live  # a Helm test hook is never applied
    cleanup = live["cleanup"]
    # the pre-delete Job had finished (its pod ran 4 s) before the Deployment was deleted
    assert complete_at(cleanup) <= deployment_going[0].replace(microsecond=0)
    assert complete_at(live["farewell"])  # the PostDelete Job ran to completion

    writes = [e for e in audit.writes(mark) if e.namespace == namespace]
    creates = [
        (i, e.name) for i, e in enumerate(writes) if e.resource == "jobs" and e.verb == "create"
    ]
    assert [name for _, name in creates] == ["cleanup", "farewell"], creates
    web = [i for i, e in enumerate(writes) if e.resource == "deployments" and e.name == "web"]
    first_delete = next(
        i for i, e in enumerate(writes) if e.resource == "deployments" and e.verb == "delete"
    )
    assert creates[0][0] < first_delete  # PreDelete before any object is deleted
    assert creates[1][0] > max(web)  # PostDelete after the Deployment's last write (gone)


def test_kill_9_during_pre_delete_resumes_without_creating_the_hook_twice(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, audit: AuditLog
) -> None:
    """The deletion's step and id are persisted before its PreDelete Job is created; a
    controller killed while that Job runs finds it after the restart (same deletion, same
    operation label), waits for it, and only then deletes the app's objects."""
    pre_delete = yaml.safe_load(
        CHART_JOB.format(
            name="drain", annotation="argocd.argoproj.io/hook", hook="PreDelete", runs_for=12
        )
    )
    repo = git_server.create_repo(
        f"delhooks-{secrets.token_hex(3)}",
        files={"app/all.yaml": yaml.safe_dump_all([pre_delete, web_deployment("nginx:1.25", 1)])},
    )
    app = application("web", namespace, repo.file_url())
    app["metadata"]["finalizers"] = ["gitsync.dev/resources-finalizer"]
    ctl = serve()
    kube.create(app)
    wait_for(lambda: synced_at(kube, namespace, "web", repo.head()), timeout=90, what="synced")
    assert "drain" not in job_names(kube, namespace)  # a PreDelete hook never runs on sync

    mark = audit.mark()
    kube.delete(kinds.API_VERSION, "Application", "web", namespace)
    first = wait_for(
        lambda: kube.get("batch/v1", "Job", "drain", namespace),
        timeout=60,
        what="the PreDelete Job created",
    )
    ctl.kill()
    assert kube.get("apps/v1", "Deployment", "web", namespace) is not None

    serve()
    wait_for(
        lambda: kube.get(kinds.API_VERSION, "Application", "web", namespace) is None,
        timeout=120,
        what="the Application released",
    )
    assert kube.get("apps/v1", "Deployment", "web", namespace) is None
    drain = kube.get("batch/v1", "Job", "drain", namespace)
    assert drain is not None and drain["metadata"]["uid"] == first["metadata"]["uid"]
    writes = [e for e in audit.writes(mark) if e.namespace == namespace]
    job_creates = [e for e in writes if e.resource == "jobs" and e.verb == "create"]
    assert len(job_creates) == 1, job_creates  # not created twice
    deletes = [
        i for i, e in enumerate(writes) if e.resource == "deployments" and e.verb == "delete"
    ]
    assert deletes and deletes[0] > writes.index(job_creates[0])
    complete_at(drain)  # it ran to completion (raises otherwise)
