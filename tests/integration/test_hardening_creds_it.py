"""Hardening (issue 13, findings 1, 7 and 10): Git credentials go only where they are scoped.

A hostile tenant may create Applications in their namespace and runs a web server. Each test
starts a real ``gitsync serve`` on the test control plane, with the real Git server for the
repositories that should work and a real HTTP listener on loopback standing in for the
tenant's server. The listener answers every request ``401`` with ``WWW-Authenticate: Basic``
(the invitation git answers with whatever credentials it holds) and records the
``Authorization`` headers it receives.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitsync.controller.repo_credentials import REPOSITORY_SECRET_TYPE
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.support.apps import app_status, application, configmap_repo, configmap_value
from tests.support.cluster import TestCluster, temporary_namespace
from tests.support.controller import ServeProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

LABEL = "gitsync.dev/secret-type"


class TenantServer:
    """A loopback HTTP server that asks for Basic credentials and writes down what it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                received.append((self.path, self.headers.get("Authorization")))
                if self.path.startswith("/slow/"):
                    time.sleep(2)  # keeps git waiting, so its argv can be read meanwhile
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="tenant"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def asked(self, prefix: str) -> bool:
        return any(path.startswith(f"/{prefix}") for path, _ in self.requests)

    def authorizations(self) -> list[str]:
        """Every Authorization header received, Basic ones decoded (``user:password``)."""
        shown = []
        for _, header in self.requests:
            if header:
                scheme, _, value = header.partition(" ")
                decoded = base64.b64decode(value).decode(errors="replace")
                shown.append(decoded if scheme.lower() == "basic" else header)
        return shown

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tenant() -> Iterator[TenantServer]:
    server = TenantServer()
    yield server
    server.close()


def repository_secret(
    kube: KubeClient, namespace: str, name: str, data: dict[str, str], *, labelled: bool = True
) -> None:
    labels = {LABEL: REPOSITORY_SECRET_TYPE} if labelled else {}
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
    )


def app_with(name: str, namespace: str, repo_url: str, secret_ref: str = "") -> dict[str, Any]:
    app = application(name, namespace, repo_url)
    if secret_ref:
        app["spec"]["source"]["secretRef"] = {"name": secret_ref}
    return app


def stalled_message(kube: KubeClient, namespace: str, name: str, needle: str) -> str:
    def probe() -> str | None:
        conditions = app_status(kube, namespace, name).get("conditions") or []
        messages = [str(c.get("message", "")) for c in conditions if c.get("status") == "True"]
        return next((m for m in messages if needle in m), None)

    return wait_for(probe, timeout=60, what=f"{name}: a condition naming {needle!r}")


def test_1_default_credentials_go_only_to_their_url_prefix(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, tenant: TenantServer
) -> None:
    """Finding 1: the operator's credentials (GITSYNC_GIT_* scoped by GITSYNC_GIT_URL, and an
    entry Secret in the controller namespace) reach the server they are for and no other; an
    entry whose prefix is plain http sends nothing without ``insecureAllowHttp``."""
    repo = configmap_repo(git_server)
    entry_token = "entry-" + secrets.token_hex(12)
    repository_secret(
        kube,
        namespace,
        "scoped-entry",
        {"url": tenant.url("scoped"), "token": entry_token, "namespaces": namespace},
    )
    broken_token = "broken-" + secrets.token_hex(12)
    repository_secret(kube, namespace, "broken-entry", {"token": broken_token})  # no url
    ctl: ServeProcess = serve(
        f"--controller-namespace={namespace}",
        env={
            "GITSYNC_GIT_USERNAME": git_server.username,
            "GITSYNC_GIT_PASSWORD": git_server.password,
            "GITSYNC_GIT_URL": git_server.http_url("", auth=True).removesuffix("/.git"),
            "GITSYNC_GIT_NAMESPACES": namespace,
            "GITSYNC_GIT_INSECURE_ALLOW_HTTP": "true",
        },
    )
    kube.create(app_with("own", namespace, repo.http_url(auth=True)))
    kube.create(app_with("tenant", namespace, tenant.url("tenant/repo.git")))
    kube.create(app_with("plain", namespace, tenant.url("scoped/repo.git")))

    # The tenant's server is asked, and gets no credentials ...
    message = stalled_message(kube, namespace, "tenant", "fetch failed")
    assert tenant.asked("tenant/") and "authentication failed" in message, message
    assert tenant.authorizations() == []
    # ... an entry for a plain-http prefix refuses to send its token there ...
    message = stalled_message(kube, namespace, "plain", "fetch failed")
    assert "insecureAllowHttp" in message and "scoped-entry" in message, message
    assert entry_token not in message
    assert not tenant.asked("scoped/")
    assert tenant.authorizations() == []
    # ... and the operator's repository is fetched with the operator's credentials.
    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=90, what="own synced")
    # An entry without a url is skipped, named in the log without its value.
    log = ctl.log(100_000)
    assert "broken-entry" in log and "'url' key" in log
    for value in (broken_token, entry_token, git_server.password):
        assert value not in log


def test_1_an_entry_scoped_to_one_namespace_is_not_offered_to_another(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, tenant: TenantServer
) -> None:
    """Issue 13: an entry in the controller namespace scoped (``namespaces``) to team A. A
    tenant in namespace B naming a private repository under the entry's prefix - team A's
    repository on the Git server, or a path on the listener - is fetched without the entry:
    the listener records no Authorization, and both apps fail on authentication. Team A's apps
    get the entry (its repository syncs, the listener sees its token). The same holds for
    ``serve``'s own GITSYNC_GIT_* entry, scoped by GITSYNC_GIT_NAMESPACES. An entry without
    ``namespaces`` is offered to no namespace and named in the log with the missing key."""
    team_a = namespace
    repo = configmap_repo(git_server)
    token = "team-a-" + secrets.token_hex(12)
    env_password = "env-" + secrets.token_hex(12)
    with (
        temporary_namespace(kube, "credns-ctl") as controller_ns,
        temporary_namespace(kube, "credns-b") as team_b,
    ):
        repository_secret(
            kube,
            controller_ns,
            "team-a-git",
            {
                "url": git_server.http_url("", auth=True).removesuffix("/.git"),
                "username": git_server.username,
                "password": git_server.password,
                "insecureAllowHttp": "true",
                "namespaces": f"other-team,\n{team_a}",
            },
        )
        repository_secret(
            kube,
            controller_ns,
            "team-a-private",
            {
                "url": tenant.url("private"),
                "token": token,
                "insecureAllowHttp": "true",
                "namespaces": team_a,
            },
        )
        # An entry that does not say which namespaces it serves is offered to none.
        repository_secret(
            kube,
            controller_ns,
            "unscoped",
            {"url": tenant.url("unscoped"), "token": token, "insecureAllowHttp": "true"},
        )
        ctl: ServeProcess = serve(
            f"--controller-namespace={controller_ns}",
            env={
                "GITSYNC_GIT_USERNAME": "env-user",
                "GITSYNC_GIT_PASSWORD": env_password,
                "GITSYNC_GIT_URL": tenant.url("env"),
                "GITSYNC_GIT_NAMESPACES": f"{team_a[:-2]}??",  # a glob matching team A
                "GITSYNC_GIT_INSECURE_ALLOW_HTTP": "true",
            },
        )
        kube.create(app_with("own", team_a, repo.http_url(auth=True)))
        kube.create(app_with("private", team_a, tenant.url("private/a.git")))
        kube.create(app_with("env", team_a, tenant.url("env/a.git")))
        kube.create(app_with("unscoped", team_a, tenant.url("unscoped/a.git")))
        kube.create(app_with("victim", team_b, repo.http_url(auth=True)))
        kube.create(app_with("private", team_b, tenant.url("private/b.git")))
        kube.create(app_with("env", team_b, tenant.url("env/b.git")))

        for name in ("victim", "private", "env"):
            message = stalled_message(kube, team_b, name, "fetch failed")
            assert "authentication failed" in message, message
        message = stalled_message(kube, team_a, "unscoped", "fetch failed")
        assert "authentication failed" in message, message
        assert tenant.asked("private/b.git") and tenant.asked("env/b.git")
        unsent = ("/private/b", "/env/b", "/unscoped/")
        anonymous = [auth for path, auth in tenant.requests if path.startswith(unsent)]
        assert anonymous and all(auth is None for auth in anonymous), anonymous
        assert configmap_value(kube, team_b) is None
        # Team A's apps got the entries: the repository syncs, the listener saw both tokens.
        wait_for(lambda: configmap_value(kube, team_a) == "v1", timeout=90, what="A synced")
        stalled_message(kube, team_a, "private", "fetch failed")
        stalled_message(kube, team_a, "env", "fetch failed")
        assert any(token in auth for auth in tenant.authorizations())
        assert f"env-user:{env_password}" in tenant.authorizations()
        shown = ctl.log(100_000) + "".join(
            json.dumps(app_status(kube, team_b, n)) for n in ("victim", "private", "env")
        )
        for value in (token, env_password, git_server.password):
            assert value not in shown
        log = ctl.log(100_000)
        assert "unscoped" in log and "the namespaces key is required" in log


def test_1_serve_refuses_env_credentials_without_a_url_prefix(
    cluster: TestCluster, tmp_path: Any
) -> None:
    """Finding 1: GITSYNC_GIT_* credentials without a URL prefix are an error, not a default
    for every repository; the message names the fix and not the password."""
    password = "pw-" + secrets.token_hex(8)
    run = subprocess.run(
        [sys.executable, "-m", "gitsync", "serve", f"--kubeconfig={cluster.kubeconfig_path}"],
        env={"PATH": "/usr/bin:/bin", "GITSYNC_GIT_PASSWORD": password, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run
    assert "--git-credentials-url" in run.stderr and "GITSYNC_GIT_URL" in run.stderr
    assert password not in run.stdout + run.stderr


def test_10_secret_ref_must_name_a_labelled_secret_for_that_url(
    serve: Any, kube: KubeClient, namespace: str, git_server: GitServer, tenant: TenantServer
) -> None:
    """Finding 10: ``secretRef`` naming an unlabelled Secret (a database password) is a terminal
    error naming the label and nothing of it is sent; a labelled Secret whose ``url`` is another
    repository is refused too; a labelled one for the app's repository works."""
    repo = configmap_repo(git_server)
    db_password = "db-" + secrets.token_hex(12)
    repository_secret(
        kube, namespace, "database", {"username": "app", "password": db_password}, labelled=False
    )
    team_token = "team-" + secrets.token_hex(12)
    repository_secret(
        kube,
        namespace,
        "team-git",
        {
            "url": git_server.http_url("", auth=True).removesuffix("/.git"),
            "username": git_server.username,
            "password": git_server.password,
            "insecureAllowHttp": "true",
        },
    )
    repository_secret(
        kube,
        namespace,
        "other-repo",
        {"url": "https://git.example.com/team", "token": team_token, "insecureAllowHttp": "true"},
    )
    serve(f"--controller-namespace={namespace}")
    kube.create(app_with("own", namespace, repo.http_url(auth=True), "team-git"))
    kube.create(app_with("db", namespace, tenant.url("db/repo.git"), "database"))
    kube.create(app_with("elsewhere", namespace, tenant.url("x/repo.git"), "other-repo"))

    message = stalled_message(kube, namespace, "db", "fetch failed")
    assert LABEL in message and "database" in message and REPOSITORY_SECRET_TYPE in message
    message = stalled_message(kube, namespace, "elsewhere", "fetch failed")
    assert "refused to send" in message and "git.example.com/team" in message, message
    shown = json.dumps(app_status(kube, namespace, "db")) + json.dumps(
        app_status(kube, namespace, "elsewhere")
    )
    assert db_password not in shown and team_token not in shown
    assert tenant.authorizations() == []
    assert not tenant.asked("db/") and not tenant.asked("x/")
    wait_for(lambda: configmap_value(kube, namespace) == "v1", timeout=90, what="own synced")


def test_7_a_token_as_the_url_user_name_shows_nowhere(
    serve: Any, kube: KubeClient, namespace: str, tenant: TenantServer
) -> None:
    """Finding 7: ``https://<token>@host/...`` (GitHub's documented form): the fetch failure is
    reported in status, and the token is in none of git's argv, serve's log, the Application's
    status, Events, the JSON API or the HTML pages."""
    token = "ghp_" + secrets.token_hex(18)
    ctl: ServeProcess = serve("--anonymous-read", f"--controller-namespace={namespace}")
    url = f"http://{token}@127.0.0.1:{tenant.port}/slow/repo.git"
    kube.create(app_with("leak", namespace, url))

    # While the tenant's server holds the request, git's argv is read: no token in it.
    wait_for(lambda: tenant.asked("slow/"), timeout=60, what="the tenant's server asked")
    argvs = _command_lines(f"127.0.0.1:{tenant.port}/slow")
    assert argvs, "no git process for the tenant's URL was seen"
    assert not [argv for argv in argvs if token in argv], argvs
    message = stalled_message(kube, namespace, "leak", f"127.0.0.1:{tenant.port}")
    assert f"http://***@127.0.0.1:{tenant.port}/slow/repo.git" in message, message
    # git used the token (as the user name, through askpass) on the tenant's own server
    assert any(auth.startswith(token) for auth in tenant.authorizations())
    base = f"/apps/{namespace}/leak"
    api = f"/api/v1/applications/{namespace}/leak"
    pages = ["/", base, base + "/diff", "/api/v1/applications", api, api + "/diff"]
    shown = {path: _read(ctl, path) for path in pages}
    assert f"***@127.0.0.1:{tenant.port}" in shown[api], "the API does not show the URL"
    places = {
        **shown,
        "status": json.dumps(app_status(kube, namespace, "leak")),
        "events": json.dumps(kube.list("v1", "Event", namespace)["items"]),
        "log": ctl.log(100_000),
    }
    leaked = [where for where, text in places.items() if token in text]
    assert not leaked, f"the token shows in: {leaked}"


def _read(ctl: ServeProcess, path: str) -> str:
    try:
        with urllib.request.urlopen(ctl.url + path, timeout=30) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as err:
        return str(err.read().decode())


def _command_lines(needle: str) -> list[str]:
    """The command lines of this machine's processes that mention ``needle``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in argv and "pytest" not in argv:
            found.append(argv)
    return found
