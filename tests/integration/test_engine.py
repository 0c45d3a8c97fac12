"""The engine end to end, through the CLI: example apps from a real Git server onto the real
control plane; exact diffs, prune, zero writes when nothing changed, failure safety, secrets."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.cli import CliRun, run_gitsync
from tests.support.cluster import TestCluster
from tests.support.manifests import two_wave_manifests
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "example-repo"
GUESTBOOK_SECRET = "not-a-real-password"


@dataclass
class AppUnderTest:
    """An example Application pointed at the test Git server and a fresh namespace."""

    repo: GitRepo
    manifest: Path
    namespace: str
    kubeconfig: Path
    cache_dir: Path
    env: dict[str, str]

    def cli(self, command: str, *extra: str) -> CliRun:
        return run_gitsync(
            command,
            "-f",
            str(self.manifest),
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            *extra,
            env=self.env,
        )


def write_app(
    source: Path, dest: Path, *, repo_url: str, namespace: str, name: str, **spec_changes: Any
) -> Path:
    doc = yaml.safe_load(source.read_text())
    doc["metadata"]["name"] = name
    # the app lives in the namespace it deploys into: the built-in destination policy gives a
    # project (an Application's namespace) only its own namespace
    doc["metadata"]["namespace"] = namespace
    doc["spec"]["source"]["repoURL"] = repo_url
    doc["spec"]["destination"]["namespace"] = namespace
    doc["spec"].update(spec_changes)
    dest.write_text(yaml.safe_dump(doc))
    return dest


@pytest.fixture
def make_app(
    git_server: GitServer, cluster: TestCluster, kube: KubeClient, tmp_path: Path
) -> Iterator[Any]:
    created: list[str] = []

    def make(app_file: str, **spec_changes: Any) -> AppUnderTest:
        suffix = secrets.token_hex(3)
        repo = git_server.create_repo(f"example-{suffix}", from_dir=EXAMPLE_REPO)
        namespace = f"{Path(app_file).stem[:20]}-{suffix}"
        created.append(namespace)
        manifest = write_app(
            EXAMPLE_REPO / "applications" / app_file,
            tmp_path / f"{suffix}.yaml",
            repo_url=repo.http_url(auth=True),
            namespace=namespace,
            name=f"{Path(app_file).stem}-{suffix}",
            **spec_changes,
        )
        env = {
            "GITSYNC_GIT_USERNAME": git_server.username,
            "GITSYNC_GIT_PASSWORD": git_server.password,
            # the test Git server is plain http on loopback; a password goes there only if asked
            "GITSYNC_GIT_INSECURE_ALLOW_HTTP": "true",
        }
        return AppUnderTest(
            repo, manifest, namespace, cluster.kubeconfig_path, tmp_path / "cache", env
        )

    yield make
    for ns in created:
        kube.delete("v1", "Namespace", ns)


def deployments_ready(kube: KubeClient, namespace: str) -> bool:
    deps = kube.list("apps/v1", "Deployment", namespace)["items"]
    return bool(deps) and all(
        d.get("status", {}).get("readyReplicas") == d["spec"]["replicas"]
        and d["status"].get("observedGeneration") == d["metadata"]["generation"]
        for d in deps
    )


@pytest.mark.parametrize("app_file", ["guestbook.yaml", "podinfo-staging.yaml", "helm-chart.yaml"])
def test_example_app_syncs_and_then_shows_no_diff(
    make_app: Any, kube: KubeClient, app_file: str
) -> None:
    app = make_app(app_file)
    first = app.cli("diff")
    assert first.code == 1, first  # everything Missing before the first sync
    synced = app.cli("sync")
    assert synced.code == 0, synced
    assert "phase: Succeeded" in synced.stdout
    after = app.cli("diff")
    assert after.code == 0, after  # right after the sync: no noise from server defaults
    wait_for(lambda: deployments_ready(kube, app.namespace), timeout=90, what="deployments ready")
    settled = app.cli("diff")
    assert settled.code == 0, (
        settled
    )  # statuses, pod readiness, controller annotations: still no noise
    health = app.cli("health")
    assert health.code == 0 and "health: Healthy" in health.stdout, health


def test_image_change_and_deletion_diff_exactly_and_prune(
    make_app: Any, kube: KubeClient, cluster: TestCluster
) -> None:
    app = make_app("guestbook.yaml")
    assert app.cli("sync").code == 0
    before = {
        (kind, o["metadata"]["name"]): o["metadata"]["resourceVersion"]
        for kind, api in [
            ("Deployment", "apps/v1"),
            ("Service", "v1"),
            ("ConfigMap", "v1"),
            ("Secret", "v1"),
        ]
        for o in kube.list(api, kind, app.namespace)["items"]
        if "gitsync.dev/tracking" in (o["metadata"].get("annotations") or {})
    }
    assert len(before) == 4, before

    deployment = app.repo.work_path / "apps/guestbook/deployment.yaml"
    config = app.repo.work_path / "apps/guestbook/config.yaml"
    docs = list(yaml.safe_load_all(config.read_text()))
    app.repo.commit(
        {
            "apps/guestbook/deployment.yaml": deployment.read_text().replace(
                "nginx:1.25", "nginx:1.26"
            ),
            "apps/guestbook/config.yaml": yaml.safe_dump(docs[0]),  # the ConfigMap document is gone
        },
        "bump nginx, drop the html ConfigMap",
    )
    app.repo.push()

    diff = app.cli("diff")
    assert diff.code == 1, diff
    assert "2 of 4 objects differ" in diff.stdout, diff  # 3 rendered + 1 extraneous
    changed = [line for line in diff.stdout.splitlines() if line.startswith("=====")]
    assert len(changed) == 2, changed
    assert any("Deployment.apps" in c and "(OutOfSync)" in c for c in changed), changed
    assert any(
        "ConfigMap" in c and "guestbook-html" in c and "(Extraneous)" in c for c in changed
    ), changed
    deployment_section = diff.stdout.split("(OutOfSync)", 1)[1].split("=====", 1)[0]
    edits = [
        " ".join(line.split())
        for line in deployment_section.splitlines()
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert edits == ["- image: nginx:1.25", "+ image: nginx:1.26"], edits

    synced = app.cli("sync", "--prune")
    assert synced.code == 0, synced
    live = kube.get("apps/v1", "Deployment", "guestbook-ui", app.namespace)
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert kube.get("v1", "ConfigMap", "guestbook-html", app.namespace) is None
    for (kind, name), rv in before.items():
        if (kind, name) in {("Deployment", "guestbook-ui"), ("ConfigMap", "guestbook-html")}:
            continue
        api = "apps/v1" if kind == "Deployment" else "v1"
        obj = kube.get(api, kind, name, app.namespace)
        assert obj is not None and obj["metadata"]["resourceVersion"] == rv, (kind, name)
    assert app.cli("diff").code == 0


def test_second_sync_of_unchanged_commit_writes_nothing(
    make_app: Any, cluster: TestCluster
) -> None:
    if cluster.audit is None:
        pytest.skip("needs the API server's audit log (test control plane)")
    app = make_app("guestbook.yaml")
    assert app.cli("sync").code == 0
    mark = cluster.audit.mark()
    second = app.cli("sync")
    assert second.code == 0, second
    writes = cluster.audit.writes(mark, user_agent="gitsync")
    assert writes == [], [(w.verb, w.resource, w.name, w.uri) for w in writes]
    dry_runs = cluster.audit.writes(mark, user_agent="gitsync", include_dry_run=True)
    assert dry_runs, "the comparison should have used server-side dry runs"
    print(f"second sync: {len(writes)} writes, {len(dry_runs)} dry-run requests")


def test_secret_values_never_printed(make_app: Any) -> None:
    app = make_app("guestbook.yaml")
    assert app.cli("sync").code == 0
    secret_file = app.repo.work_path / "apps/guestbook/secret.yaml"
    new_value = "rotated-" + secrets.token_hex(4)
    app.repo.commit(
        {"apps/guestbook/secret.yaml": secret_file.read_text().replace(GUESTBOOK_SECRET, new_value)}
    )
    app.repo.push()
    runs = [
        app.cli("diff"),
        app.cli("sync", "--dry-run"),
        app.cli("sync"),
        app.cli("diff"),
        app.cli("health"),
    ]
    assert runs[0].code == 1 and "Secret" in runs[0].stdout
    forbidden = [GUESTBOOK_SECRET, new_value]
    forbidden += [base64.b64encode(v.encode()).decode() for v in forbidden]
    forbidden.append(app.env["GITSYNC_GIT_PASSWORD"])
    for run in runs:
        for value in forbidden:
            assert value not in run.output, f"{value!r} leaked by gitsync {' '.join(run.args)}"


def test_fetch_failures_apply_and_prune_nothing(
    make_app: Any, kube: KubeClient, git_server: GitServer, tmp_path: Path
) -> None:
    app = make_app("guestbook.yaml")
    assert app.cli("sync").code == 0
    live_before = kube.list("v1", "ConfigMap", app.namespace)["items"]

    wrong = dict(app.env, GITSYNC_GIT_PASSWORD="wrong-" + secrets.token_hex(4))
    bad_auth = AppUnderTest(**{**app.__dict__, "env": wrong})
    run = bad_auth.cli("sync", "--prune")
    assert run.code == 2, run
    assert "fetch failed" in run.stderr and "authentication" in run.stderr.lower(), run
    assert wrong["GITSYNC_GIT_PASSWORD"] not in run.output

    # issue 13 finding 1: without the opt-in the password is not sent over plain http at all
    unasked = {k: v for k, v in app.env.items() if k != "GITSYNC_GIT_INSECURE_ALLOW_HTTP"}
    run = AppUnderTest(**{**app.__dict__, "env": unasked}).cli("sync", "--prune")
    assert run.code == 2 and "--git-insecure-allow-http" in run.stderr, run
    assert app.env["GITSYNC_GIT_PASSWORD"] not in run.output

    git_server.fault = "html200"
    try:
        run = app.cli("sync", "--prune")
        assert run.code == 2 and "fetch failed" in run.stderr, run
    finally:
        git_server.fault = None

    closed = tmp_path / "closed.yaml"
    doc = yaml.safe_load(app.manifest.read_text())
    doc["spec"]["source"]["repoURL"] = (
        f"http://user:S3CRET-{secrets.token_hex(2)}@127.0.0.1:9/x.git"
    )
    closed.write_text(yaml.safe_dump(doc))
    run = AppUnderTest(**{**app.__dict__, "manifest": closed}).cli("sync", "--prune")
    assert run.code == 2 and "fetch failed" in run.stderr, run
    assert "S3CRET" not in run.output

    assert kube.list("v1", "ConfigMap", app.namespace)["items"] == live_before


def test_render_failure_and_empty_render_prune_nothing(make_app: Any, kube: KubeClient) -> None:
    app = make_app(
        "guestbook.yaml",
        syncPolicy={"automated": {"prune": True}, "syncOptions": ["CreateNamespace=true"]},
    )
    assert app.cli("sync").code == 0
    names_before = sorted(
        o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", app.namespace)["items"]
    )

    app.repo.commit({"apps/guestbook/broken.yaml": "kind: [unclosed\n"}, "broken yaml")
    app.repo.push()
    run = app.cli("sync", "--prune")
    assert run.code == 2 and "render failed" in run.stderr and "broken.yaml" in run.stderr, run

    app.repo.commit(
        {
            **{
                f"apps/guestbook/{f}": None
                for f in ("broken.yaml", "config.yaml", "deployment.yaml", "secret.yaml")
            },
            # git keeps no empty directories: leave a non-manifest file so the path still exists
            "apps/guestbook/README.md": "nothing to deploy here any more\n",
        },
        "empty the app",
    )
    app.repo.push()
    run = app.cli("sync", "--prune")
    assert run.code == 2 and "no objects" in run.stderr and "allowEmpty" in run.stderr, run
    names_after = sorted(
        o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", app.namespace)["items"]
    )
    assert names_after == names_before
    assert kube.get("apps/v1", "Deployment", "guestbook-ui", app.namespace) is not None


def test_sync_waves_wait_for_health(
    make_app: Any, kube: KubeClient, cluster: TestCluster, git_server: GitServer
) -> None:
    app = make_app("guestbook.yaml")
    app.repo.commit({"apps/guestbook/waves.yaml": two_wave_manifests(ready_after=4)}, "waves")
    app.repo.push()
    assert app.cli("sync").code == 0
    db = kube.get("apps/v1", "Deployment", "db", app.namespace)
    cm = kube.get("v1", "ConfigMap", "after-db", app.namespace)
    assert db is not None and cm is not None
    ready_pods = kube.list("v1", "Pod", app.namespace, label_selector="app=db")["items"]
    ready_at = min(
        c["lastTransitionTime"]
        for p in ready_pods
        for c in p["status"]["conditions"]
        if c["type"] == "Ready" and c["status"] == "True"
    )
    # wave 1 was created only after wave 0's pod turned Ready (RFC 3339 strings sort by time)
    assert cm["metadata"]["creationTimestamp"] >= ready_at, (
        cm["metadata"]["creationTimestamp"],
        ready_at,
    )
    assert cm["metadata"]["creationTimestamp"] > db["metadata"]["creationTimestamp"]
