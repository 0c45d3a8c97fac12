"""Issue 13, isolated sources and bounded Git children, against a real ``gitsync serve``.

Each test plays a hostile tenant (an Application author in one namespace who controls a Git
repository or a server on the network) against the controller as users run it: the test control
plane, the real Git server (``git_server``) and, for "the tenant's server", a real listener on
127.0.0.1 started here - one that accepts TCP and never answers, one that advertises a huge ref
list. Findings covered: 2 (another tenant's private commit by SHA), 5 (ref advertisement read
whole), 8 (a silent server holding a worker for the whole transfer limit), 9 (``file://``) and
11 (git children's environment, SSH key files and children outliving a SIGTERM).
"""

from __future__ import annotations

import http.server
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application, repository_secret
from tests.support.cluster import temporary_namespace
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _configmap(name: str, value: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}
    )


def _ready(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    conds = app_status(kube, namespace, name).get("conditions") or []
    return next((c for c in conds if c.get("type") == "Ready"), {})


def _fetch_failed(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    ready = _ready(kube, namespace, name)
    return ready if ready.get("reason") == "FetchFailed" else None


def _decided(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    """The Ready condition once the app synced or failed to fetch."""
    ready = _ready(kube, namespace, name)
    return ready if ready.get("status") == "True" or ready.get("reason") == "FetchFailed" else None


def _credentials_secret(kube: KubeClient, namespace: str, name: str, **data: str) -> None:
    kube.create(repository_secret(name, namespace, data))


def _app(
    name: str, namespace: str, url: str, revision: str = "main", **spec: Any
) -> dict[str, Any]:
    source = {"repoURL": url, "targetRevision": revision, "path": "app", **spec.pop("source", {})}
    return application(name, namespace, url, source=source, interval="2s", **spec)


# --- the tenant's servers ---------------------------------------------------------------------


class SilentServer:
    """Accepts TCP connections and never sends a byte (nor closes), like a tarpit."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _pkt(text: str) -> bytes:
    data = text.encode()
    return f"{len(data) + 4:04x}".encode() + data


class _ManyRefs(http.server.BaseHTTPRequestHandler):
    """Smart HTTP (protocol v0) answering ``info/refs`` with ``refs`` branches."""

    refs = 0

    def do_GET(self) -> None:
        if "/info/refs" not in self.path:
            self.send_error(404)
            return
        sha = "1" * 40
        body = bytearray(_pkt("# service=git-upload-pack\n") + b"0000")
        body += _pkt(f"{sha} HEAD\0symref=HEAD:refs/heads/main agent=test\n")
        body += _pkt(f"{sha} refs/heads/main\n")
        for i in range(self.refs):
            body += _pkt(f"{sha} refs/heads/tenant-branch-{i:08d}\n")
        body += b"0000"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def many_refs_server() -> Iterator[str]:
    handler = type("ManyRefs", (_ManyRefs,), {"refs": 40_000})  # about 2.4 MB of ls-remote
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tenant.git"
    server.shutdown()
    server.server_close()


# --- finding 2: another tenant's private commit -----------------------------------------------


def test_another_tenants_private_commit_cannot_be_deployed_by_sha(
    git_server: GitServer, serve: Any, kube: KubeClient, namespace: str
) -> None:
    victim_repo = git_server.create_repo(
        f"private-{secrets.token_hex(3)}", {"app/private.yaml": _configmap("private", "payroll")}
    )
    sha = victim_repo.head()
    attacker_repo = git_server.create_repo(
        f"attacker-{secrets.token_hex(3)}", {"app/own.yaml": _configmap("own", "x")}
    )
    serve()
    _credentials_secret(  # the test Git server speaks plain http: the Secret must say so
        kube,
        namespace,
        "repo",
        username=git_server.username,
        password=git_server.password,
        insecureAllowHttp="true",
    )
    kube.create(
        _app(
            "victim",
            namespace,
            victim_repo.http_url(auth=True),
            source={"secretRef": {"name": "repo"}},
        )
    )
    wait_for(
        lambda: (app_status(kube, namespace, "victim").get("sync") or {}).get("revision") == sha,
        timeout=120,
        what="the victim's app synced",
    )
    assert kube.get("v1", "ConfigMap", "private", namespace) is not None

    with temporary_namespace(kube, "attacker") as attacker:
        attempts = {
            # a repository the attacker controls, asked for the victim's commit
            "own-repo-full-sha": (attacker_repo.http_url(), sha),
            # the victim's URL, without credentials (SHAs show in `kubectl get applications -A`)
            "no-creds-full-sha": (victim_repo.http_url(auth=True), sha),
            "no-creds-short-sha": (victim_repo.http_url(auth=True), sha[:10]),
        }
        for name, (url, revision) in attempts.items():
            kube.create(_app(name, attacker, url, revision))
        outcomes = {
            name: wait_for(
                lambda n=name: _decided(kube, attacker, n),  # type: ignore[misc]
                timeout=120,
                what=f"{name} decided",
            ).get("reason")
            for name in attempts
        }
        assert outcomes == dict.fromkeys(attempts, "FetchFailed")
        for name in attempts:
            status = app_status(kube, attacker, name)
            assert (status.get("sync") or {}).get("revision") != sha, (name, status)
        assert kube.get("v1", "ConfigMap", "private", attacker) is None


# --- finding 9: file:// ----------------------------------------------------------------------


def test_file_urls_are_refused_unless_the_operator_allows_them(
    git_server: GitServer, serve: Any, kube: KubeClient, namespace: str
) -> None:
    repo = git_server.create_repo(
        f"local-{secrets.token_hex(3)}", {"app/host.yaml": _configmap("host", "secret")}
    )
    serve(allow_local_repos=False)
    kube.create(_app("local", namespace, repo.file_url()))
    ready = wait_for(lambda: _decided(kube, namespace, "local"), timeout=90, what="a decision")
    assert ready.get("reason") == "FetchFailed", ready
    assert "--allow-local-repos" in ready["message"], ready
    assert kube.get("v1", "ConfigMap", "host", namespace) is None


# --- finding 5: a huge ref advertisement ------------------------------------------------------


def test_a_huge_ref_advertisement_is_stopped_at_the_output_limit(
    many_refs_server: str, serve: Any, kube: KubeClient, namespace: str
) -> None:
    ctl = serve("--git-max-output-bytes=1048576")
    kube.create(_app("refs", namespace, many_refs_server))
    ready = wait_for(lambda: _fetch_failed(kube, namespace, "refs"), timeout=90, what="refusal")
    assert "limit of 1048576 bytes" in ready["message"], ready
    assert "stdout" in ready["message"], ready
    assert ctl.proc is not None and ctl.proc.running()


# --- finding 8: a server that accepts and never answers ---------------------------------------


@pytest.mark.parametrize("transport", ["http", "ssh"])
def test_a_silent_server_is_given_up_on_after_the_connect_timeout(
    transport: str, silent_server: SilentServer, serve: Any, kube: KubeClient, namespace: str
) -> None:
    serve("--git-connect-timeout=3")
    port = silent_server.port
    url = {
        "http": f"http://127.0.0.1:{port}/tenant.git",
        "ssh": f"ssh://git@127.0.0.1:{port}/tenant.git",
    }[transport]
    started = time.monotonic()
    kube.create(_app("silent", namespace, url))
    ready = wait_for(lambda: _fetch_failed(kube, namespace, "silent"), timeout=90, what="failure")
    elapsed = time.monotonic() - started
    assert silent_server.accepted >= 1
    # The transfer limit is 60 s (ssh's old ConnectTimeout 30 s); 3 s plus a reconcile's overhead.
    assert elapsed < 20, (elapsed, ready)
    assert "timed out" in ready["message"], ready


# --- finding 11: what git children see, and what a SIGTERM leaves behind ---------------------


def _children(pid: int) -> dict[int, list[str]]:
    """Every live descendant of ``pid``: pid -> argv."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: dict[int, list[str]] = {}
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        for child in frontier:
            try:
                argv = (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            found[child] = [part.decode(errors="replace") for part in argv if part]
    return found


def _alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_git_children_get_a_minimal_environment_and_die_with_serve_leaving_no_key(
    git_server: GitServer,
    silent_server: SilentServer,
    serve: Any,
    kube: KubeClient,
    namespace: str,
    cluster: Any,
    tmp_path: Path,
) -> None:
    default_password = f"controller-default-{secrets.token_hex(8)}"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    ctl = serve(
        "--git-connect-timeout=50",  # keep ssh waiting for the banner while we look
        env={
            "TMPDIR": str(tmp),
            "GITSYNC_GIT_PASSWORD": default_password,
            # serve refuses GITSYNC_GIT_* credentials without a scope (URL and namespaces)
            "GITSYNC_GIT_URL": "https://git.example.com/org",
            "GITSYNC_GIT_NAMESPACES": "*",
            "KUBECONFIG": str(cluster.kubeconfig_path),
        },
    )
    key = git_server.ssh_private_key_path.read_text()
    _credentials_secret(kube, namespace, "ssh", sshPrivateKey=key)
    url = f"ssh://git@127.0.0.1:{silent_server.port}/tenant.git"
    kube.create(_app("ssh", namespace, url, source={"secretRef": {"name": "ssh"}}))
    assert ctl.proc is not None and ctl.proc.popen is not None
    serve_pid = ctl.proc.popen.pid

    def fetching() -> dict[int, list[str]] | None:
        children = _children(serve_pid)
        has_ssh = any(argv and Path(argv[0]).name == "ssh" for argv in children.values())
        return children if has_ssh and silent_server.accepted else None

    children = wait_for(fetching, timeout=60, what="a git child waiting on the silent server")
    git_pids = [pid for pid, argv in children.items() if argv and Path(argv[0]).name == "git"]
    assert git_pids, children
    for pid in git_pids:
        environ = (Path("/proc") / str(pid) / "environ").read_bytes()
        names = {line.partition(b"=")[0].decode() for line in environ.split(b"\0") if line}
        assert default_password.encode() not in environ, names
        assert "GITSYNC_WEBHOOK_SECRET" not in names, names
        assert "KUBECONFIG" not in names, names
        assert "TMPDIR" not in names, names
        assert "PATH" in names and "HOME" in names, names
    identity = next(
        Path(argv[argv.index("-i") + 1])
        for argv in children.values()
        if argv and Path(argv[0]).name == "ssh" and "-i" in argv
    )
    assert identity.is_file() and identity.is_relative_to(tmp), identity

    ctl.stop()  # SIGTERM, mid-fetch
    assert ctl.proc.popen.poll() is not None, "serve did not stop on SIGTERM"
    assert not identity.exists(), "the SSH key outlived serve"
    assert not any(tmp.glob("gitsync-git-*")), list(tmp.iterdir())
    wait_for(
        lambda: not any(_alive(pid) for pid in children),
        timeout=10,
        what="serve's git and ssh children gone",
    )
