"""Issue 13, finding 4: a Rollout's analysis URL, chosen by whoever can push to the repository,
pointed at a metadata-style endpoint that answers with a credential.

Against a real ``gitsync serve`` on the test control plane, with a real Git server and a real
loopback HTTP listener standing in for the metadata endpoint: the URLs the operator did not allow
are never requested, a wildcard entry does not reach loopback, and where the operator did allow the
listener (an entry naming 127.0.0.1), its answer comes back only as a fixed reason. The credential
appears nowhere: not in the Rollout's status, not in Events, not in the read-only API, not in the
controller's log.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.controller.controller import ensure_crd
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import application, github_webhook, rollout_status
from tests.support.manifests import canary_rollout, web_deployment, web_service
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLLOUT_CRD = Path(__file__).resolve().parents[2] / "charts/gitsync/crds/rollouts.gitsync.dev.yaml"
SECRET = f"ASIA{secrets.token_hex(8).upper()}-metadata-credential"
JSON_PATH = "/latest/meta-data/iam/security-credentials/node"
TEXT_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"


class MetadataStandIn:
    """A loopback listener answering like a cloud metadata service: a credential, as JSON on
    one path and as plain text on another. It records the Host and path of every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests.append((self.headers.get("Host", ""), self.path))
                if self.path == JSON_PATH:
                    body, kind = json.dumps({"Token": SECRET}).encode(), "application/json"
                else:
                    body, kind = SECRET.encode(), "text/plain"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def metadata() -> Iterator[MetadataStandIn]:
    stand_in = MetadataStandIn()
    yield stand_in
    stand_in.close()


def web_metric(name: str, url: str, json_path: str = "$.Token") -> dict[str, Any]:
    return {
        "name": name,
        "interval": "1s",
        "count": 1,
        "successCondition": "result > 0",
        "provider": {"web": {"url": url, "jsonPath": json_path, "timeout": "2s"}},
    }


def hostile_rollout(port: int) -> dict[str, Any]:
    """What a tenant pushes: four analysis URLs aimed at the metadata stand-in."""
    metrics = [
        web_metric("json-token", f"http://127.0.0.1:{port}{JSON_PATH}"),
        web_metric("text-token", f"http://127.0.0.1:{port}{TEXT_PATH}"),
        # matched only by the operator's wildcard entry: a wildcard never reaches loopback
        web_metric("by-name", f"http://localhost:{port}{JSON_PATH}"),
        # matched by no entry at all
        web_metric("link-local", "http://169.254.169.254/latest/meta-data/iam/"),
    ]
    rollout = canary_rollout([{"analysis": {"metrics": [m["name"] for m in metrics]}}])
    rollout["spec"]["metrics"] = metrics
    return rollout


EXPECTED = {
    "json-token": "$.Token is a string that is not a number",
    "text-token": "response is not JSON",
    "by-name": "localhost resolves to a loopback address",
    "link-local": "URL not allowed by --analysis-allow",
}


def error_messages(kube: KubeClient, namespace: str) -> dict[str, str] | None:
    """Each metric's first Error measurement message, once every metric has one."""
    found: dict[str, str] = {}
    for run in rollout_status(kube, namespace).get("analysisRuns") or []:
        for m in run.get("measurements") or []:
            if m.get("phase") == "Error":
                found.setdefault(run["metric"], m.get("message", ""))
    return found if set(found) == set(EXPECTED) else None


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


@pytest.mark.timeout(300)
def test_an_analysis_url_aimed_at_a_metadata_endpoint_leaks_nothing(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, metadata: MetadataStandIn
) -> None:
    ensure_crd(kube, yaml.safe_load(ROLLOUT_CRD.read_text()))
    repo = git_server.create_repo(
        f"analysis-{secrets.token_hex(3)}",
        files={
            "app/deployment.yaml": yaml.safe_dump(web_deployment("nginx:1.25", 2)),
            "app/service.yaml": yaml.safe_dump(web_service()),
            "app/rollout.yaml": yaml.safe_dump(hostile_rollout(metadata.port)),
        },
    )
    ctl = serve(
        "--anonymous-read",
        # the operator named the stand-in's address, and also wrote a careless wildcard
        f"--analysis-allow=http://127.0.0.1:{metadata.port}/*",
        f"--analysis-allow=http://*:{metadata.port}/*",
    )
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(
        lambda: rollout_status(kube, namespace).get("stableHash"),
        timeout=120,
        what="the first sync's template as the Rollout's stable",
    )
    sha = repo.commit({"app/deployment.yaml": yaml.safe_dump(web_deployment("nginx:1.26", 2))})
    repo.push()
    assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202

    messages = wait_for(
        lambda: error_messages(kube, namespace),
        timeout=120,
        what="an Error measurement for each of the four metrics",
    )
    for metric, expected in EXPECTED.items():
        assert expected in messages[metric], (metric, messages[metric])

    # only the two URLs an entry names were requested, at the checked address
    hosts = {host for host, _ in metadata.requests}
    assert hosts == {f"127.0.0.1:{metadata.port}"}, metadata.requests
    assert {path for _, path in metadata.requests} == {JSON_PATH, TEXT_PATH}

    # the credential is nowhere a reader of the Application, or of the logs, could see it
    rollout = kube.get("gitsync.dev/v1alpha1", "Rollout", "web", namespace)
    events = kube.list("v1", "Event", namespace)["items"]
    api = f"{ctl.url}/api/v1/applications/{namespace}/web"
    places = {
        "Rollout": json.dumps(rollout),
        "Events": json.dumps(events),
        "API application": get(api),
        "API rollouts": get(f"{api}/rollouts"),
        "serve's log": ctl.log(lines=100_000),
    }
    assert any("not a number" in text for text in places.values())
    for place, text in places.items():
        assert SECRET not in text, f"the metadata credential is in the {place}"
        assert SECRET[:12] not in text, f"the start of the metadata credential is in the {place}"
