"""Argo CD's example apps, written in Argo CD's format, deploy through gitsync exactly as Argo CD
would deploy them (issue 17).

``tests/fixtures/argocd-examples/`` holds a repository shaped like Argo CD's public
argocd-example-apps (``repo/``: plain YAML, Kustomize, a Helm chart with a vendored dependency,
sync waves, PreSync/PostSync hooks, Jsonnet with top-level arguments and external variables, and
an app of apps), one ``argoproj.io/v1alpha1`` Application per example (``applications/``) and,
per example, the objects Argo CD leaves in the destination namespace (``expected/``: kind, name,
key labels, images, replicas, ports, sync waves, hooks), derived from Argo CD's documented
behaviour. Each example runs two ways - ``gitsync import argocd`` then ``gitsync sync -f`` of the
result, and ``gitsync sync -f`` of the Argo CD Application itself - on the real control plane
from the real Git server, each in a namespace of its own; the objects gitsync tracks must be
exactly the expected set, and ``gitsync diff -f`` must then find nothing.

Differences accepted on purpose (README, "Coming from Argo CD"): gitsync marks what it owns with
its ``gitsync.dev/tracking`` annotation instead of Argo CD's ``app.kubernetes.io/instance`` label
(Argo CD 2.x) or ``argocd.argoproj.io/tracking-id`` annotation (3.x), so neither Argo marking is
added here (a chart may set the instance label itself, to the same value); hooks carry gitsync's
hook labels; an app of apps creates gitsync Applications in the parent's namespace where Argo CD
creates its own in ``argocd``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync import kinds
from gitsync.kube import ApiError, KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from gitsync.sync.hooks import HOOK_ID_LABEL
from gitsync.sync.tracking import ARGO_INSTANCE_LABEL, ARGO_TRACKING_ANNOTATION, tracked_by
from tests.support.apps import app_status, application
from tests.support.audit import AuditEvent
from tests.support.cli import CliRun, run_gitsync
from tests.support.cluster import TestCluster, temporary_namespace
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = Path(__file__).parents[1] / "fixtures" / "argocd-examples"
EXAMPLES = [
    "guestbook",
    "kustomize-guestbook",
    "helm-guestbook",
    "sync-waves",
    "pre-post-sync",
    "jsonnet-guestbook",
    "apps",
]
LISTED_KINDS = [
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "Job"),
    (kinds.API_VERSION, kinds.APPLICATION),
]
"""Every kind an example deploys; what gitsync tracks among them must be the expected set."""
STEP_OF_PHASE = {"PreSync": -1_000_000, "PostSync": 1_000_000}
"""Where a hook phase runs relative to the waves of the main objects (a Sync hook: its wave)."""


@dataclass(frozen=True)
class Expected:
    """``expected/<example>.yaml``: the objects, the hooks that run and the child apps."""

    objects: list[dict[str, Any]]
    hooks: list[dict[str, Any]]
    children: list[str]

    @classmethod
    def of(cls, example: str) -> Expected:
        doc = yaml.safe_load((FIXTURES / "expected" / f"{example}.yaml").read_text())
        return cls(doc["objects"], doc.get("hooks") or [], doc.get("children") or [])


@dataclass
class Workspace:
    """One example in one namespace: the CLI pointed at the test cluster and a cache of its own."""

    namespace: str
    kubeconfig: Path
    workdir: Path

    def cli(self, *args: str) -> CliRun:
        return run_gitsync(
            *args, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.workdir / "cache")
        )


@pytest.fixture(scope="module")
def examples_repo(git_server: GitServer) -> GitRepo:
    """The example repository, pushed once for every case of this module."""
    return git_server.create_repo(
        f"argocd-example-apps-{secrets.token_hex(3)}", from_dir=FIXTURES / "repo"
    )


def argo_application(example: str, namespace: str, repo_url: str, dest: Path) -> Path:
    """``applications/<example>.yaml`` pointed at the test repository and ``namespace``: the
    Application lives in the namespace it deploys to (gitsync's built-in policy gives an app's
    project, its namespace, only that namespace), and an app of apps passes both on to its
    children through Argo CD's helm parameters."""
    doc = yaml.safe_load((FIXTURES / "applications" / f"{example}.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"]["destination"]["namespace"] = namespace
    source = doc["spec"]["source"]
    source["repoURL"] = repo_url
    overrides = {"spec.source.repoURL": repo_url, "spec.destination.namespace": namespace}
    for parameter in (source.get("helm") or {}).get("parameters") or []:
        parameter["value"] = overrides.get(parameter["name"], parameter["value"])
    dest.write_text(yaml.safe_dump(doc))
    return dest


def imported(work: Workspace, argo_file: Path) -> Path:
    """``gitsync import argocd`` of ``argo_file``: the gitsync Application it writes."""
    out = work.workdir / f"gitsync-{argo_file.stem}.yaml"
    run = run_gitsync("import", "argocd", str(argo_file), "--output", str(out))
    assert run.code == 0, run
    return out


def tracked_objects(kube: KubeClient, namespace: str, app: str) -> dict[tuple[str, str], Any]:
    """(kind, name) -> the live object, for every object the app's tracking annotation claims
    (not counting the ReplicaSets of a Deployment: its controller copies the annotation)."""
    return {
        (kind, obj["metadata"]["name"]): {**obj, "apiVersion": api_version}
        for api_version, kind in LISTED_KINDS
        for obj in kube.list(api_version, kind, namespace)["items"]
        if tracked_by(obj) == f"{namespace}/{app}" and not obj["metadata"].get("ownerReferences")
    }


def images(obj: dict[str, Any]) -> list[str]:
    return [c["image"] for c in obj["spec"]["template"]["spec"]["containers"]]


def assert_object(live: dict[str, Any], want: dict[str, Any]) -> None:
    """The live object has what ``want`` says, and no Argo CD tracking gitsync would have added."""
    meta = live["metadata"]
    what = f"{want['kind']}/{want['name']}"
    assert live["apiVersion"] == want["apiVersion"], what
    labels = meta.get("labels") or {}
    assert labels.items() >= (want.get("labels") or {}).items(), (what, labels)
    if ARGO_INSTANCE_LABEL not in (want.get("labels") or {}):
        assert ARGO_INSTANCE_LABEL not in labels, (what, labels)
    assert ARGO_TRACKING_ANNOTATION not in (meta.get("annotations") or {}), what
    if "replicas" in want:
        assert live["spec"]["replicas"] == want["replicas"], what
    if "images" in want:
        assert images(live) == want["images"], what
    if "ports" in want:
        assert [p["port"] for p in live["spec"]["ports"]] == want["ports"], what
    if "path" in want:
        assert live["spec"]["source"]["path"] == want["path"], what


def assert_deployed(kube: KubeClient, namespace: str, app: str, expected: Expected) -> None:
    live = tracked_objects(kube, namespace, app)
    assert sorted(live) == sorted((o["kind"], o["name"]) for o in expected.objects)
    for want in expected.objects:
        assert_object(live[(want["kind"], want["name"])], want)


def hook_rows(stdout: str) -> list[list[str]]:
    """``gitsync sync``'s hook table, in the order the hooks ran: [phase, kind, namespace,
    name, result] per hook."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("HOOK ")), None)
    if start is None:
        return []
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith("phase:"):
            break
        rows.append(line.split()[:5])
    return rows


def named(hook: dict[str, Any], name: str) -> bool:
    """Whether ``name`` is the hook's: its name, or one the server made from its generateName."""
    return name == hook["name"] if "name" in hook else name.startswith(hook["generateName"])


def assert_hooks(kube: KubeClient, namespace: str, sync: CliRun, expected: Expected) -> None:
    """Every expected hook ran once and succeeded, in phase order; only those kept are left."""
    rows = hook_rows(sync.stdout)
    assert len(rows) == len(expected.hooks), sync
    for want, (phase, kind, _, name, result) in zip(expected.hooks, rows, strict=True):
        assert (phase, kind, result) == (want["phase"], want["kind"], "Succeeded"), sync
        assert named(want, name), (want, name)
    live = [
        job["metadata"]["name"]
        for job in kube.list("batch/v1", "Job", namespace)["items"]
        if HOOK_ID_LABEL in (job["metadata"].get("labels") or {})
    ]
    kept = [h for h in expected.hooks if h["kept"]]
    assert len(live) == len(kept), live
    assert all(any(named(h, name) for name in live) for h in kept), live


def step(entry: dict[str, Any]) -> int:
    return STEP_OF_PHASE.get(entry.get("phase", ""), int(entry.get("wave", 0)))


def assert_wave_order(writes: list[AuditEvent], namespace: str, expected: Expected) -> None:
    """In the API server's audit log, each wave's objects were first written after every object
    of the waves before it, a PreSync hook before them all and a PostSync hook after them all
    (hooks are created with generateName, so they are told apart by their order)."""
    mine = [w for w in writes if w.namespace == namespace and w.user_agent == "gitsync"]
    first: dict[tuple[str, str], int] = {}
    for i, w in enumerate(mine):
        first.setdefault((w.resource, w.name), i)
    resource = {"ConfigMap": "configmaps", "ReplicaSet": "replicasets", "Service": "services"}
    resource["Deployment"] = "deployments"
    at = [(step(o), first[(resource[o["kind"]], o["name"])]) for o in expected.objects]
    job_creates = [i for i, w in enumerate(mine) if w.resource == "jobs" and w.verb == "create"]
    hooks = sorted(expected.hooks, key=step)
    assert len(job_creates) == len(hooks), mine
    at += [(step(h), i) for h, i in zip(hooks, job_creates, strict=True)]
    for earlier_step, earlier in at:
        for later_step, later in at:
            if earlier_step < later_step:
                assert earlier < later, (at, mine)


def children_synced(kube: KubeClient, namespace: str, children: list[str]) -> bool:
    for child in children:
        status = app_status(kube, namespace, child)
        if (status.get("sync") or {}).get("status") != "Synced":
            return False
        if (status.get("health") or {}).get("status") != "Healthy":
            return False
    return True


def release_children(kube: KubeClient, namespace: str, children: list[str]) -> None:
    """Drop the children's resources finalizers, so the namespace can go without a controller."""
    for child in children:
        try:
            kube.patch(
                kinds.API_VERSION,
                kinds.APPLICATION,
                child,
                {"metadata": {"finalizers": None}},
                namespace=namespace,
            )
        except ApiError as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def workspace(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Workspace]:
    yield Workspace(namespace, cluster.kubeconfig_path, tmp_path)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("route", ["import", "direct"])
@pytest.mark.parametrize("example", EXAMPLES)
def test_argo_example_deploys_argo_cds_objects_then_shows_no_diff(
    example: str,
    route: str,
    workspace: Workspace,
    examples_repo: GitRepo,
    kube: KubeClient,
    cluster: TestCluster,
    crd: None,
    serve: Any,
) -> None:
    namespace = workspace.namespace
    expected = Expected.of(example)
    argo_file = argo_application(
        example, namespace, examples_repo.http_url(), workspace.workdir / f"{example}.yaml"
    )
    app_file = imported(workspace, argo_file) if route == "import" else argo_file
    audit = cluster.audit
    mark = audit.mark() if audit else 0

    try:
        synced = workspace.cli("sync", "-f", str(app_file))
        assert synced.code == 0 and "phase: Succeeded" in synced.stdout, synced
        assert_deployed(kube, namespace, example, expected)
        assert_hooks(kube, namespace, synced, expected)
        if audit and any("wave" in o for o in expected.objects):
            assert_wave_order(audit.writes(mark), namespace, expected)
        if expected.children:
            serve()
            wait_for(
                lambda: children_synced(kube, namespace, expected.children),
                timeout=240,
                what="every child app Synced and Healthy",
            )
            for child in expected.children:
                assert_deployed(kube, namespace, child, Expected.of(child))
        diff = workspace.cli("diff", "-f", str(app_file))
        assert diff.code == 0, diff
    finally:
        release_children(kube, namespace, expected.children)


# -- an Argo CD app of apps in a shared cluster ---------------------------------------------------
#
# A tenant's repository may render Argo CD Applications. Translated, each is a tenant object like
# a gitsync child: one naming a privileged project's namespace is refused by the destination
# policy, and one in Argo CD's namespace lands in the parent's own namespace - not in ``argocd``,
# not in the parent's self-chosen destination - and runs with that namespace's rights only.

RBAC = "rbac.authorization.k8s.io/v1"


def argo_child(name: str, namespace: str, destination: str, repo_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": destination},
            "syncPolicy": {"automated": {"prune": True}},
        },
    }


def ready_message(kube: KubeClient, namespace: str, name: str, reason: str) -> str:
    """The app's Ready condition message once its reason is ``reason``."""

    def probe() -> str | None:
        conditions = app_status(kube, namespace, name).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), {})
        return str(ready["message"]) if ready.get("reason") == reason else None

    return wait_for(probe, timeout=90, what=f"{namespace}/{name} Ready reason {reason}")


@pytest.mark.timeout(300)
def test_a_tenants_argo_children_get_only_the_tenants_project(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    tmp_path: Path,
    crd: None,
) -> None:
    tenant = namespace
    role = f"argo-child-escalated-{secrets.token_hex(3)}"
    payload = git_server.create_repo(
        f"argo-payload-{secrets.token_hex(3)}",
        files={
            "app/role.yaml": yaml.safe_dump(
                {
                    "apiVersion": RBAC,
                    "kind": "ClusterRole",
                    "metadata": {"name": role},
                    "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
                }
            )
        },
    )
    with temporary_namespace(kube, "platform") as platform:
        children = {
            "app/escalate.yaml": argo_child("escalate", platform, platform, payload.http_url()),
            "app/mine.yaml": argo_child("mine", "argocd", tenant, payload.http_url()),
        }
        parent_repo = git_server.create_repo(
            f"argo-parent-{secrets.token_hex(3)}",
            files={path: yaml.safe_dump(doc) for path, doc in children.items()},
        )
        policy = tmp_path / "policy.yaml"
        wide = {"namespaces": ["*"], "clusterResources": [{"group": "*", "kind": "*"}]}
        policy.write_text(yaml.safe_dump({"projects": {platform: wide}}))
        serve(f"--policy={policy}")
        try:
            # the parent points its destination at the platform's namespace too: neither that
            # nor a child's metadata.namespace may lend a child the platform's rights
            kube.create(
                application(
                    "parent", tenant, parent_repo.http_url(), destination={"namespace": platform}
                )
            )
            message = ready_message(kube, tenant, "parent", "SyncFailed")
            assert "Application/escalate: denied by destination policy" in message, message
            assert kube.get(kinds.API_VERSION, kinds.APPLICATION, "escalate", platform) is None
            # the child in Argo CD's namespace became the tenant's, and runs with its rights
            mine = ready_message(kube, tenant, "mine", "SyncFailed")
            assert f"ClusterRole/{role}: denied by destination policy" in mine, mine
            assert kube.get(RBAC, "ClusterRole", role) is None
        finally:
            with contextlib.suppress(ApiError):
                kube.delete(RBAC, "ClusterRole", role)
