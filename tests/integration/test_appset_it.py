"""ApplicationSets end to end: a real ``gitsync serve``, the real control plane (and a second one
as a remote cluster) and a real Git server over HTTP on loopback.

Issue 18's acceptance items 1 (git directories: add, remove per policy, unreachable repository),
2 (a matrix of two registered clusters x two services) and 5 (10,000-fold output and a recursive
include are errors on their set, with the serve process's memory measured, while another set in
the same process keeps working).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.localenv.controlplane import ControlPlane
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import github_webhook
from tests.support.audit import AuditLog
from tests.support.cluster import TestCluster
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CONTROLLER_NAMESPACE = "gitsync"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def configmap(name: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}
    )


def application_set(
    name: str, namespace: str, generators: list[Any], template: dict[str, Any], **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.APPLICATION_SET,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"goTemplate": True, "generators": generators, "template": template, **spec},
    }


def app_template(
    namespace: str, repo_url: str, app_name: str, path: str, **destination: str
) -> dict[str, Any]:
    return {
        "metadata": {"name": app_name},
        "spec": {
            "source": {"repoURL": repo_url, "targetRevision": "main", "path": path},
            "destination": {"namespace": namespace, **destination},
            "syncPolicy": {"automated": {"prune": True}},
        },
    }


def applications(kube: KubeClient, namespace: str) -> dict[str, dict[str, Any]]:
    items = kube.list(kinds.API_VERSION, kinds.APPLICATION, namespace)["items"]
    return {a["metadata"]["name"]: a for a in items if not a["metadata"].get("deletionTimestamp")}


def set_status(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(kinds.API_VERSION, kinds.APPLICATION_SET, name, namespace) or {}
    return obj.get("status") or {}


def condition(kube: KubeClient, namespace: str, name: str, kind: str) -> dict[str, Any]:
    return next(
        (c for c in set_status(kube, namespace, name).get("conditions") or [] if c["type"] == kind),
        {},
    )


def names_become(kube: KubeClient, namespace: str, expected: set[str], timeout: float = 60) -> None:
    wait_for(
        lambda: set(applications(kube, namespace)) == expected,
        timeout=timeout,
        what=f"applications {sorted(expected)}",
    )


def test_git_directories_follow_the_repository_per_policy_and_an_unreachable_one_deletes_nothing(
    serve: Any, kube: KubeClient, namespace: str, audit: AuditLog
) -> None:
    with GitServer(ssh=False) as server:
        repo = server.create_repo(
            "mono", files={f"services/{s}/cm.yaml": configmap(s) for s in ("api", "web", "worker")}
        )
        url = repo.http_url()
        serve()
        kube.create(
            application_set(
                "services",
                namespace,
                [
                    {
                        "git": {
                            "repoURL": url,
                            "revision": "main",
                            "directories": [{"path": "services/*"}],
                            "requeueAfterSeconds": 1,
                        }
                    }
                ],
                app_template(namespace, url, "{{ .path.basename }}", "{{ .path.path }}"),
                syncPolicy={"applicationsSync": "sync"},
            )
        )
        names_become(kube, namespace, {"api", "web", "worker"})
        uid = kube.get(kinds.API_VERSION, kinds.APPLICATION_SET, "services", namespace)["metadata"][
            "uid"
        ]
        api = applications(kube, namespace)["api"]
        assert api["metadata"]["labels"]["gitsync.dev/application-set"] == "services"
        assert api["metadata"]["ownerReferences"][0]["uid"] == uid
        assert api["spec"]["source"]["path"] == "services/api"
        assert "gitsync.dev/resources-finalizer" in api["metadata"]["finalizers"]
        wait_for(lambda: kube.get("v1", "ConfigMap", "web", namespace), what="web's ConfigMap")
        # generations that change nothing write no Application (an unchanged apply is skipped)
        since = audit.mark()
        time.sleep(4)  # about four generations at requeueAfterSeconds: 1
        rewrites = [
            e
            for e in audit.writes(since)
            if e.resource == "applications" and not e.subresource and e.namespace == namespace
        ]
        assert rewrites == []

        repo.commit({"services/batch/cm.yaml": configmap("batch")})
        repo.push()
        names_become(kube, namespace, {"api", "batch", "web", "worker"})

        # policy sync: a removed directory deletes its app (and, through the resources
        # finalizer, what the app deployed)
        repo.commit({"services/web": None})
        repo.push()
        names_become(kube, namespace, {"api", "batch", "worker"})
        wait_for(
            lambda: kube.get("v1", "ConfigMap", "web", namespace) is None,
            timeout=60,
            what="web's ConfigMap deleted with its app",
        )

        # create-update: a removed directory keeps its app, and the status says why
        kube.patch(
            kinds.API_VERSION,
            kinds.APPLICATION_SET,
            "services",
            {"spec": {"syncPolicy": {"applicationsSync": "create-update"}}},
            namespace=namespace,
        )
        repo.commit({"services/worker": None})
        repo.push()

        def worker_held() -> str:
            for r in set_status(kube, namespace, "services").get("resources") or []:
                if r["name"] == "worker" and "does not delete" in r.get("message", ""):
                    return str(r["message"])
            return ""

        wait_for(worker_held, timeout=30, what="worker held by create-update")
        assert set(applications(kube, namespace)) == {"api", "batch", "worker"}

        # unreachable: an error on the set, and nothing is deleted (back to policy sync, so
        # only the failed generator can be what keeps the apps)
        kube.patch(
            kinds.API_VERSION,
            kinds.APPLICATION_SET,
            "services",
            {"spec": {"syncPolicy": {"applicationsSync": "sync"}}},
            namespace=namespace,
        )
        names_become(kube, namespace, {"api", "batch"})
        server.stop()
        wait_for(
            lambda: condition(kube, namespace, "services", "ErrorOccurred").get("status") == "True",
            timeout=60,
            what="ErrorOccurred",
        )
        message = condition(kube, namespace, "services", "ErrorOccurred")["message"]
        assert "nothing was created, updated or deleted" in message
        time.sleep(5)  # several more requeues (1 s, backing off) against the dead server
        assert set(applications(kube, namespace)) == {"api", "batch"}
        assert condition(kube, namespace, "services", "ParametersGenerated")["status"] == "False"
        # the failed passes keep the parameters the apps were last rendered from
        recorded = {
            r["name"]: r.get("parameters") or {}
            for r in set_status(kube, namespace, "services")["resources"]
        }
        assert {n: (p["path.basename"], p["path.path"]) for n, p in recorded.items()} == {
            "api": ("api", "services/api"),
            "batch": ("batch", "services/batch"),
        }


# -- a matrix of two registered clusters x two services ----------------------------------------


def test_a_matrix_of_two_clusters_and_two_services_makes_four_apps_on_the_right_clusters(
    serve: Any,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    cluster: TestCluster,
    remote: ControlPlane,
    register: Any,
) -> None:
    remote_kube = remote.client()
    remote_kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    fleet = {"fleet": namespace}  # only this test's two clusters match
    # what `kubectl apply` leaves on a Secret: the whole Secret, kubeconfig included
    for name, kubeconfig in (
        ("local", cluster.kubeconfig_path.read_text()),
        ("remote", remote.kubeconfig_path.read_text()),
    ):
        register(
            name,
            kubeconfig,
            labels=fleet,
            annotations={LAST_APPLIED: kubeconfig, "owner": f"team-{name}"},
        )
    repo = git_server.create_repo(
        f"appset-{secrets.token_hex(3)}",
        files={f"{s}/cm.yaml": configmap(s) for s in ("api", "web")},
    )
    serve()
    template = app_template(
        namespace,
        repo.file_url(),
        "{{ .service }}-{{ .name }}",
        "{{ .service }}",
        name="{{ .name }}",
    )
    template["metadata"]["annotations"] = {
        "server": "{{ .server }}",
        "owner": "{{ .metadata.annotations.owner }}",
        "leak": "{{ index .metadata.annotations " + f'"{LAST_APPLIED}"' + " }}",
    }
    kube.create(
        application_set(
            "fleet",
            namespace,
            [
                {
                    "matrix": {
                        "generators": [
                            {"clusters": {"selector": {"matchLabels": fleet}}},
                            {"list": {"elements": [{"service": "api"}, {"service": "web"}]}},
                        ]
                    }
                }
            ],
            template,
        )
    )
    names_become(kube, namespace, {"api-local", "api-remote", "web-local", "web-remote"})
    apps = applications(kube, namespace)
    assert {n: a["spec"]["destination"]["name"] for n, a in apps.items()} == {
        "api-local": "local",
        "api-remote": "remote",
        "web-local": "local",
        "web-remote": "remote",
    }
    remote_server = yaml.safe_load(remote.kubeconfig_path.read_text())["clusters"][0]["cluster"][
        "server"
    ]
    assert apps["api-remote"]["metadata"]["annotations"]["server"] == remote_server
    assert apps["api-remote"]["metadata"]["annotations"]["owner"] == "team-remote"
    # the kubeconfig copy kubectl apply leaves on a Secret is never a parameter
    assert apps["api-remote"]["metadata"]["annotations"]["leak"] == "<no value>"
    for service in ("api", "web"):  # each app deployed to its own cluster
        wait_for(
            lambda s=service: remote_kube.get("v1", "ConfigMap", s, namespace),
            timeout=60,
            what=f"{service} on remote",
        )
        wait_for(
            lambda s=service: kube.get("v1", "ConfigMap", s, namespace),
            timeout=60,
            what=f"{service} on local",
        )
    assert condition(kube, namespace, "fleet", "ResourcesUpToDate")["status"] == "True"


# -- hostile sets next to a healthy one --------------------------------------------------------


def rss_kib(proc: ServeProcess) -> int:
    assert proc.proc is not None and proc.proc.popen is not None
    for line in Path(f"/proc/{proc.proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_ten_thousand_fold_output_and_recursive_includes_fail_their_set_only(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    repo = git_server.create_repo(
        f"appset-{secrets.token_hex(3)}", files={"app/cm.yaml": configmap("good")}
    )
    proc = serve()
    url = repo.file_url()

    def template(name: str, **annotations: str) -> dict[str, Any]:
        t = app_template(namespace, url, name, "app")
        t["metadata"]["annotations"] = annotations
        return t

    kube.create(
        application_set(
            "good", namespace, [{"list": {"elements": [{"n": "one"}]}}], template("good-{{ .n }}")
        )
    )
    names_become(kube, namespace, {"good-one"})
    before = rss_kib(proc)

    hundred = [{"a": str(i)} for i in range(100)]
    kube.create(
        application_set(
            "matrix-bomb",
            namespace,
            [
                {
                    "matrix": {
                        "generators": [
                            {"list": {"elements": hundred}},
                            {"list": {"elements": [{"b": str(i)} for i in range(100)]}},
                        ]
                    }
                }
            ],
            template("bomb-{{ .a }}-{{ .b }}"),
        )
    )
    kube.create(
        application_set(
            "string-bomb",
            namespace,
            [{"list": {"elements": [{"big": "x" * 6000}]}}],
            template("blowup", blob="{{ .big }}" * 10_000),
        )
    )
    kube.create(
        application_set(
            "include",
            namespace,
            [{"list": {"elements": [{"again": "{{ .again }}{{ .again }}"}]}}],
            template('{{ include "self" . }}'),
        )
    )
    expected = {
        "matrix-bomb": "100 x 100) yields 10000 parameter sets; the limit is 5000",
        "string-bomb": "the rendered string exceeds 65536 bytes",
        "include": "function 'include' is not supported",
    }
    for name, text in expected.items():
        wait_for(
            lambda n=name, t=text: (
                t in condition(kube, namespace, n, "ErrorOccurred").get("message", "")
            ),
            timeout=60,
            what=f"{name}: {text}",
        )
    # the healthy set keeps working in the same process: a new element makes a new app
    kube.patch(
        kinds.API_VERSION,
        kinds.APPLICATION_SET,
        "good",
        {"spec": {"generators": [{"list": {"elements": [{"n": "one"}, {"n": "two"}]}}]}},
        namespace=namespace,
    )
    names_become(kube, namespace, {"good-one", "good-two"})
    after = rss_kib(proc)
    print(
        f"\nserve RSS: {before} KiB before the hostile sets, {after} KiB after "
        f"({after - before:+d} KiB)"
    )
    assert after - before < 100 * 1024
    assert proc.proc is not None and proc.proc.running()


def test_a_set_cannot_generate_applications_in_another_namespace(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, controller_namespace: str
) -> None:
    """The tenant rule: a template naming another namespace (here the controller's) is an error
    on the set, and nothing of that generation is created - not even the app in its own."""
    repo = git_server.create_repo(
        f"appset-{secrets.token_hex(3)}", files={"app/cm.yaml": configmap("x")}
    )
    serve()
    template = app_template(namespace, repo.file_url(), "{{ .n }}", "app")
    template["metadata"]["namespace"] = "{{ .ns }}"
    elements = [{"n": "mine", "ns": namespace}, {"n": "hijack", "ns": controller_namespace}]
    kube.create(application_set("escape", namespace, [{"list": {"elements": elements}}], template))
    wait_for(
        lambda: (
            "would go to namespace 'gitsync'"
            in condition(kube, namespace, "escape", "ErrorOccurred").get("message", "")
        ),
        timeout=60,
        what="the namespace error",
    )
    assert kube.get(kinds.API_VERSION, kinds.APPLICATION, "hijack", controller_namespace) is None
    assert applications(kube, namespace) == {}


def test_a_push_regenerates_the_set_and_deleting_the_set_deletes_its_applications(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer
) -> None:
    """No interval to wait for (requeueAfterSeconds: 3600): the push webhook for the repository
    a git generator reads starts a generation. The owner references hand the Applications to
    the API server's garbage collector when the set goes."""
    repo = git_server.create_repo(
        f"appset-{secrets.token_hex(3)}", files={"apps/one/cm.yaml": configmap("one")}
    )
    url = repo.file_url()
    proc = serve()
    generator = {
        "git": {
            "repoURL": url,
            "revision": "main",
            "directories": [{"path": "apps/*"}],
            "requeueAfterSeconds": 3600,
        }
    }
    template = app_template(namespace, url, "{{ .path.basename }}", "{{ .path.path }}")
    kube.create(
        application_set(
            "pushed",
            namespace,
            [generator],
            template,
            syncPolicy={"preserveResourcesOnDeletion": True},
        )
    )
    names_become(kube, namespace, {"one"})
    assert not applications(kube, namespace)["one"]["metadata"].get("finalizers")
    sha = repo.commit({"apps/two/cm.yaml": configmap("two")})
    repo.push()
    assert github_webhook(proc.url, url, "refs/heads/main", sha) == 202
    names_become(kube, namespace, {"one", "two"}, timeout=30)

    kube.delete(kinds.API_VERSION, kinds.APPLICATION_SET, "pushed", namespace)
    names_become(kube, namespace, set(), timeout=60)
