"""Resource hooks on the real control plane: the kube-controller-manager's Job controller runs the
hook Jobs, the pod simulator finishes their pods (``sim.gitsync.dev/ready-after`` keeps one
running for a while, ``sim.gitsync.dev/behavior: fail`` fails it)."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.model import ResourceKey, ResultCode
from gitsync.policy import Policy
from gitsync.render import RenderedManifest
from gitsync.render.hooks import HookPhase
from gitsync.render.manifest import to_manifests
from gitsync.sync import Syncer
from gitsync.sync.hooks import HOOK_ID_LABEL, HookOutcome
from gitsync.sync.inventory import Inventory
from tests.integration.test_sync import app_for
from tests.support.apps import app_status, application
from tests.support.audit import AuditLog
from tests.support.cli import run_gitsync
from tests.support.cluster import TestCluster
from tests.support.manifests import web_deployment
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("sim")]


def hook_job(
    annotations: dict[str, str],
    *,
    name: str = "",
    generate: str = "",
    behavior: str = "ready",
    runs_for: float = 0.0,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"annotations": annotations}
    meta["name" if name else "generateName"] = name or generate
    pod_annotations = {"sim.gitsync.dev/behavior": behavior}
    if runs_for:
        pod_annotations["sim.gitsync.dev/ready-after"] = str(runs_for)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": pod_annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "run", "image": "busybox:1.36"}],
                },
            },
        },
    }


def render(*objs: dict[str, Any]) -> list[RenderedManifest]:
    """Through the render's own check, so generateName is accepted the way a repository's is."""
    return to_manifests(
        [(i, 1, yaml.safe_load(yaml.safe_dump(o))) for i, o in enumerate(objs, 1)],
        source="app.yaml",
        max_documents=50,
    )


def slow_web() -> dict[str, Any]:
    return web_deployment("nginx:1.25", 1, **{"sim.gitsync.dev/ready-after": "2"})


def jobs(kube: KubeClient, namespace: str) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in kube.list("batch/v1", "Job", namespace)["items"]}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def condition_time(obj: dict[str, Any], ctype: str) -> datetime:
    [cond] = [c for c in obj["status"]["conditions"] if c["type"] == ctype]
    assert cond["status"] == "True"
    return ts(cond["lastTransitionTime"])


MIGRATE = {"argocd.argoproj.io/hook": "PreSync"}
SMOKE = {"argocd.argoproj.io/hook": "PostSync"}


def test_presync_completes_before_the_deployment_and_postsync_runs_once_it_is_ready(
    kube: KubeClient, namespace: str, audit: AuditLog
) -> None:
    app = app_for(namespace)
    manifests = render(
        hook_job(MIGRATE, name="migrate", runs_for=2),
        slow_web(),
        hook_job(SMOKE, generate="smoke-"),
    )
    mark = audit.mark()
    result = Syncer(kube, poll_interval=0.2).sync(app, manifests, revision="r1")
    assert result.succeeded, result.message
    assert [(h.phase, h.key.name[:6], h.outcome) for h in result.hooks] == [
        (HookPhase.PRE_SYNC, "migrat", HookOutcome.SUCCEEDED),
        (HookPhase.POST_SYNC, "smoke-", HookOutcome.SUCCEEDED),
    ]
    assert [r.key.name for r in result.results] == ["web"]  # hooks are no managed objects

    live = jobs(kube, namespace)
    migrate = live["migrate"]
    [smoke] = [j for n, j in live.items() if n.startswith("smoke-")]
    web = kube.get("apps/v1", "Deployment", "web", namespace)
    assert web is not None
    # the migration finished before the Deployment existed ...
    assert condition_time(migrate, "Complete") <= ts(web["metadata"]["creationTimestamp"])
    # ... and the smoke test was created only once the Deployment was Ready (2s after)
    assert condition_time(web, "Available") <= ts(smoke["metadata"]["creationTimestamp"])
    # in the API server's own order: the hook Job, then the Deployment, then the smoke Job
    writes = [
        (e.verb, e.resource, e.name)
        for e in audit.writes(mark, user_agent="gitsync-tests")
        if e.namespace == namespace and e.resource in ("jobs", "deployments") and not e.subresource
    ]
    order = [w for w in writes if w[0] in ("create", "patch")]
    assert [(v, r) for v, r, _ in order] == [
        ("create", "jobs"),
        ("patch", "deployments"),
        ("create", "jobs"),
    ], writes

    # hooks are neither in the inventory nor compared
    inventory = Inventory(kube, namespace, app.name).load()
    assert set(inventory) == {ResourceKey("apps", "Deployment", namespace, "web")}
    comparison = Syncer(kube).compare(app, manifests)
    assert [i.key.name for i in comparison.items] == ["web"]
    assert comparison.in_sync


def test_a_second_sync_of_the_same_commit_runs_the_hooks_again_and_cleans_up_per_policy(
    kube: KubeClient, namespace: str
) -> None:
    app = app_for(namespace)
    manifests = render(
        hook_job(MIGRATE, name="migrate"),  # BeforeHookCreation (the default)
        web_deployment("nginx:1.25", 1),
        hook_job(SMOKE, generate="smoke-"),  # BeforeHookCreation: the previous one goes
        hook_job(
            {"gitsync.dev/hook": "PostSync", "gitsync.dev/hook-delete-policy": "HookSucceeded"},
            generate="notify-",
        ),
    )
    syncer = Syncer(kube, poll_interval=0.2)
    first = syncer.sync(app, manifests, revision="r1")
    assert first.succeeded, first.message
    before = jobs(kube, namespace)
    assert not [n for n in before if n.startswith("notify-")]  # HookSucceeded: deleted at once

    second = syncer.sync(app, manifests, revision="r1")
    assert second.succeeded, second.message
    assert len(second.hooks) == 3
    after = jobs(kube, namespace)
    old_smoke = {n for n in before if n.startswith("smoke-")}
    new_smoke = {n for n in after if n.startswith("smoke-")}
    assert len(old_smoke) == len(new_smoke) == 1 and old_smoke != new_smoke
    # the fixed-name hook was deleted and created anew
    assert after["migrate"]["metadata"]["uid"] != before["migrate"]["metadata"]["uid"]
    assert not [n for n in after if n.startswith("notify-")]


def test_a_failing_presync_leaves_the_deployment_untouched_and_runs_syncfail(
    kube: KubeClient, namespace: str
) -> None:
    app = app_for(namespace)
    syncer = Syncer(kube, poll_interval=0.2)
    ok = syncer.sync(app, render(web_deployment("nginx:1.25", 1)), revision="r1")
    assert ok.succeeded, ok.message
    web_before = kube.get("apps/v1", "Deployment", "web", namespace)
    assert web_before is not None

    manifests = render(
        hook_job(MIGRATE, name="migrate", behavior="fail"),
        web_deployment("nginx:1.26", 1),
        hook_job({"argocd.argoproj.io/hook": "SyncFail"}, generate="rollback-"),
        hook_job(SMOKE, generate="smoke-"),
    )
    result = syncer.sync(app, manifests, revision="r2")
    assert not result.succeeded
    assert "PreSync hook" in result.message and "migrate" in result.message
    assert [(h.phase, h.outcome) for h in result.hooks] == [
        (HookPhase.PRE_SYNC, HookOutcome.FAILED),
        (HookPhase.SYNC_FAIL, HookOutcome.SUCCEEDED),
    ]
    assert result.results == []  # no main resource was applied
    web = kube.get("apps/v1", "Deployment", "web", namespace)
    assert web is not None
    # the spec was never written (status keeps moving as the pod turns Ready)
    assert web["metadata"]["generation"] == web_before["metadata"]["generation"]
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    names = set(jobs(kube, namespace))
    assert any(n.startswith("rollback-") for n in names)
    assert not any(n.startswith("smoke-") for n in names)


def test_helm_hooks_run_as_argo_cd_maps_them(kube: KubeClient, namespace: str) -> None:
    """pre-install and post-install run on sync; pre-delete, post-delete and test never do."""
    app = app_for(namespace)
    manifests = render(
        hook_job({"helm.sh/hook": "pre-install,pre-upgrade"}, name="chart-pre"),
        web_deployment("nginx:1.25", 1),
        hook_job({"helm.sh/hook": "post-install,post-upgrade"}, name="chart-post"),
        hook_job({"helm.sh/hook": "pre-delete"}, name="chart-pre-delete"),
        hook_job({"helm.sh/hook": "post-delete"}, name="chart-post-delete"),
        hook_job({"helm.sh/hook": "test"}, name="chart-test"),
        hook_job({"helm.sh/hook": "post-rollback"}, name="chart-rollback"),
    )
    result = Syncer(kube, poll_interval=0.2).sync(app, manifests, revision="r1")
    assert result.succeeded, result.message
    assert [(h.phase, h.key.name) for h in result.hooks] == [
        (HookPhase.PRE_SYNC, "chart-pre"),
        (HookPhase.POST_SYNC, "chart-post"),
    ]
    assert set(jobs(kube, namespace)) == {"chart-pre", "chart-post"}

    # app deletion's entry point runs the deletion hooks
    deleted = Syncer(kube, poll_interval=0.2).run_hooks(
        app, manifests, HookPhase.PRE_DELETE, operation="delete-1"
    )
    assert [(h.key.name, h.outcome) for h in deleted] == [
        ("chart-pre-delete", HookOutcome.SUCCEEDED)
    ]


def test_a_hook_never_deletes_or_takes_over_an_object_it_did_not_create(
    kube: KubeClient, namespace: str
) -> None:
    """BeforeHookCreation deletes only this app's earlier hook objects (by their hook-id label):
    an object of the same name someone else made stays, and the hook fails naming why."""
    theirs = hook_job({}, name="migrate")
    theirs["metadata"]["namespace"] = namespace
    created = kube.create(theirs)
    app = app_for(namespace)
    result = Syncer(kube, poll_interval=0.2).sync(
        app,
        render(hook_job(MIGRATE, name="migrate"), web_deployment("nginx:1.25", 1)),
        revision="r1",
    )
    assert not result.succeeded
    [hook] = result.hooks
    assert hook.outcome == HookOutcome.FAILED and "already exists" in hook.message
    live = kube.get("batch/v1", "Job", "migrate", namespace)
    assert live is not None and live["metadata"]["uid"] == created["metadata"]["uid"]
    assert HOOK_ID_LABEL not in (live["metadata"].get("labels") or {})
    assert kube.get("apps/v1", "Deployment", "web", namespace) is None


def test_the_destination_policy_refuses_a_hook_into_another_namespace(
    kube: KubeClient, namespace: str
) -> None:
    """A hook is created like a main resource: the destination policy (own namespace only by
    default) refuses one aimed elsewhere, and it is never created."""
    elsewhere = f"{namespace}-x"
    escaping = hook_job(MIGRATE, name="escape")
    escaping["metadata"]["namespace"] = elsewhere
    app = app_for(namespace)
    result = Syncer(kube, poll_interval=0.2, policy=Policy()).sync(
        app, render(escaping, web_deployment("nginx:1.25", 1)), revision="r1"
    )
    assert not result.succeeded
    [hook] = result.hooks
    assert hook.outcome == HookOutcome.FAILED and "denied by destination policy" in hook.message
    assert kube.get("batch/v1", "Job", "escape", elsewhere) is None
    assert ResultCode.SYNCED not in {r.code for r in result.results}


def test_kill_9_during_presync_resumes_without_creating_the_hook_twice(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, audit: AuditLog
) -> None:
    """The operation is persisted as Running before its first hook; a controller killed while
    the PreSync Job runs resumes the same operation after its restart, finds that Job by its
    operation label, waits for it, and applies the Deployment once."""
    repo = git_server.create_repo(
        f"hooks-{secrets.token_hex(3)}",
        files={
            "app/all.yaml": yaml.safe_dump_all(
                [
                    hook_job(MIGRATE, name="migrate", runs_for=12),
                    hook_job(MIGRATE, generate="seed-", runs_for=12),
                    web_deployment("nginx:1.25", 1),
                ]
            )
        },
    )
    mark = audit.mark()
    ctl = serve()
    kube.create(application("web", namespace, repo.file_url()))
    first = wait_for(
        lambda: kube.get("batch/v1", "Job", "migrate", namespace),
        timeout=60,
        what="the PreSync Job created",
    )
    operation = app_status(kube, namespace, "web")["operationState"]["id"]
    ctl.kill()
    assert kube.get("apps/v1", "Deployment", "web", namespace) is None

    serve()
    status = wait_for(
        lambda: (
            (s := app_status(kube, namespace, "web")).get("operationState", {}).get("phase")
            in ("Succeeded", "Failed")
            and s
        ),
        timeout=120,
        what="the resumed operation finished",
    )
    op = status["operationState"]
    assert op["phase"] == "Succeeded", op
    assert op["id"] == operation  # the same operation, resumed
    assert sorted((h["phase"], h["name"][:5], h["status"]) for h in op["hooks"]) == [
        ("PreSync", "migra", "Succeeded"),
        ("PreSync", "seed-", "Succeeded"),
    ]
    live = jobs(kube, namespace)
    assert live["migrate"]["metadata"]["uid"] == first["metadata"]["uid"]  # not re-created
    assert len([n for n in live if n.startswith("seed-")]) == 1
    job_creates = [
        e
        for e in audit.writes(mark)
        if e.namespace == namespace and e.resource == "jobs" and e.verb == "create"
    ]
    assert len(job_creates) == 2, job_creates
    web_writes = [
        e
        for e in audit.writes(mark)
        if e.namespace == namespace
        and e.resource == "deployments"
        and e.name == "web"
        and not e.subresource
        and e.user_agent.startswith("gitsync")
    ]
    assert len(web_writes) == 1, web_writes  # the main apply happened once


HOOK_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  annotations:
    "helm.sh/hook": {hook}
    "helm.sh/hook-weight": "{weight}"
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: run
          image: busybox:1.36
"""


def test_a_helm_chart_runs_only_its_install_hooks_on_sync_and_the_cli_lists_them(
    kube: KubeClient, namespace: str, git_server: GitServer, cluster: TestCluster, tmp_path: Path
) -> None:
    """A real chart through ``gitsync sync -f``: pre-install and post-install run, pre-delete
    and test hooks are never applied, and the CLI prints the hooks' table."""
    templates = {
        f"chart/templates/{name}.yaml": HOOK_JOB.format(name=name, hook=hook, weight=weight)
        for name, hook, weight in [
            ("migrate", "pre-install,pre-upgrade", "-1"),
            ("smoke", "post-install,post-upgrade", "0"),
            ("cleanup", "pre-delete", "0"),
            ("check", "test", "0"),
        ]
    }
    repo = git_server.create_repo(
        f"hookchart-{secrets.token_hex(3)}",
        files={
            "chart/Chart.yaml": "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
            "chart/templates/web.yaml": yaml.safe_dump(web_deployment("nginx:1.25", 1)),
            **templates,
        },
    )
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        yaml.safe_dump(
            application(
                "hooked",
                namespace,
                repo.http_url(auth=True),
                source={
                    "repoURL": repo.http_url(auth=True),
                    "targetRevision": "main",
                    "path": "chart",
                },
            )
        )
    )
    run = run_gitsync(
        "sync",
        "-f",
        str(manifest),
        "--kubeconfig",
        str(cluster.kubeconfig_path),
        "--cache-dir",
        str(tmp_path / "cache"),
        env={
            "GITSYNC_GIT_USERNAME": git_server.username,
            "GITSYNC_GIT_PASSWORD": git_server.password,
            "GITSYNC_GIT_INSECURE_ALLOW_HTTP": "true",
        },
    )
    assert run.code == 0, run
    assert set(jobs(kube, namespace)) == {"migrate", "smoke"}
    table = run.stdout[run.stdout.index("HOOK") :].splitlines()
    assert [line.split()[:5] for line in table[1:3]] == [
        ["PreSync", "Job", namespace, "migrate", "Succeeded"],
        ["PostSync", "Job", namespace, "smoke", "Succeeded"],
    ], run.stdout
    assert git_server.password not in run.output


def test_a_sync_hook_runs_in_its_wave_between_the_main_waves(
    kube: KubeClient, namespace: str, audit: AuditLog
) -> None:
    """A ``Sync`` hook in wave 1 runs after wave 0's Deployment is applied and healthy, and
    wave 2 is applied only once the hook has finished."""
    early = web_deployment("nginx:1.25", 1)
    early["metadata"]["annotations"] = {"gitsync.dev/sync-wave": "0"}
    late = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "late", "annotations": {"gitsync.dev/sync-wave": "2"}},
        "data": {"k": "v"},
    }
    hook = hook_job(
        {"argocd.argoproj.io/hook": "Sync", "argocd.argoproj.io/sync-wave": "1"},
        name="between",
        runs_for=1,
    )
    mark = audit.mark()
    result = Syncer(kube, poll_interval=0.2).sync(
        app_for(namespace), render(late, hook, early), revision="r1"
    )
    assert result.succeeded, result.message
    assert [(h.phase, h.key.name, h.outcome) for h in result.hooks] == [
        (HookPhase.SYNC, "between", HookOutcome.SUCCEEDED)
    ]
    order = [
        (e.resource, e.name)
        for e in audit.writes(mark, user_agent="gitsync-tests")
        if e.namespace == namespace
        and not e.subresource
        and e.verb in ("create", "patch")
        and not e.name.startswith("gitsync-inventory")
    ]
    assert order == [("deployments", "web"), ("jobs", "between"), ("configmaps", "late")], order
    between = jobs(kube, namespace)["between"]
    configmap = kube.get("v1", "ConfigMap", "late", namespace)
    assert configmap is not None
    assert condition_time(between, "Complete") <= ts(configmap["metadata"]["creationTimestamp"])
