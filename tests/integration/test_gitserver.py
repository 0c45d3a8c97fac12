"""The Git source adapter against a real Git server on loopback: smart HTTP (anonymous and basic
auth), SSH with a real sshd, and file URLs; plus the failures users meet - wrong password, unknown
host key, a server that is down, errors, answers with an HTML page, or hangs."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitsync.errors import TerminalError, TransientError
from gitsync.localenv.gitserver import GitRepo, GitServer, generate_ssh_key
from gitsync.source import (
    GitAuthError,
    GitCredentials,
    GitHostKeyError,
    GitInvalidRevisionError,
    GitInvalidURLError,
    GitNotFoundError,
    GitSourceError,
    GitTimeoutError,
    GitUnreachableError,
    clone,
    ls_remote,
)

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "not-the-password-91c2"


@dataclass(frozen=True)
class History:
    """The served repo and the commits and tags the tests check out."""

    repo: GitRepo
    first: str  # config.yaml says replicas: 1; tagged v1 (annotated) and v1-light
    second: str  # main: replicas: 2, a nested manifest and a symlink
    feature: str  # branch feature: replicas: 3
    v1_tag_object: str


@pytest.fixture(scope="module")
def history(git_server: GitServer) -> History:
    repo = git_server.create_repo("gitserver-test-app", {"config.yaml": "replicas: 1\n"})
    first = repo.head()
    repo.tag("v1", message="release 1")
    repo.tag("v1-light")
    repo.symlink("link.yaml", "config.yaml")
    second = repo.commit(
        {"config.yaml": "replicas: 2\n", "manifests/app/deploy.yaml": "kind: Deployment\n"},
        "second",
    )
    repo.branch("feature")
    feature = repo.commit({"config.yaml": "replicas: 3\n"}, "feature work")
    repo.checkout("main")
    repo.push()
    tag_object = repo.git("rev-parse", "refs/tags/v1")
    return History(repo, first, second, feature, tag_object)


@pytest.fixture(scope="module")
def http_credentials(git_server: GitServer) -> GitCredentials:
    return GitCredentials(username=git_server.username, password=git_server.password)


@pytest.fixture(scope="module")
def ssh_credentials(git_server: GitServer) -> GitCredentials:
    return GitCredentials(
        ssh_private_key=git_server.ssh_private_key_path.read_text(),
        known_hosts=git_server.known_hosts_path.read_text(),
    )


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    """Neither the error nor anything it chains may carry a secret."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None:
        chain.append(current)
        current = current.__cause__ or current.__context__
    assert len(chain) >= 2, "the cause must be chained"
    for error in chain:
        for secret in secrets:
            assert secret not in str(error)
            assert secret not in repr(error)


def checked_out(dest: Path, name: str = "config.yaml") -> str:
    return (dest / name).read_text()


# --- happy paths, one per transport ------------------------------------------------------------


def test_anonymous_http_clone(history: History, tmp_path: Path) -> None:
    dest = tmp_path / "checkout"

    sha = clone(history.repo.http_url(), dest)

    assert sha == history.second
    assert checked_out(dest) == "replicas: 2\n"
    assert checked_out(dest, "manifests/app/deploy.yaml") == "kind: Deployment\n"
    assert os.readlink(dest / "link.yaml") == "config.yaml"


def test_authenticated_http_clone_keeps_the_password_out_of_the_checkout(
    git_server: GitServer, history: History, http_credentials: GitCredentials, tmp_path: Path
) -> None:
    dest = tmp_path / "checkout"

    sha = clone(history.repo.http_url(auth=True), dest, http_credentials)

    assert sha == history.second
    assert git_server.password not in (dest / ".git" / "config").read_text()
    authenticated = [r for r in git_server.request_log if r.user == git_server.username]
    assert authenticated, "the server saw no authenticated request"


def test_password_in_the_url_is_used_but_not_stored(
    git_server: GitServer, history: History, tmp_path: Path
) -> None:
    url = history.repo.http_url(auth=True).replace(
        "http://", f"http://{git_server.username}:{git_server.password}@"
    )
    dest = tmp_path / "checkout"

    assert clone(url, dest) == history.second
    assert git_server.password not in (dest / ".git" / "config").read_text()


def test_wrong_password_is_a_clear_auth_error_without_secrets(
    git_server: GitServer, history: History, tmp_path: Path
) -> None:
    wrong = GitCredentials(username=git_server.username, password=WRONG_PASSWORD)

    with pytest.raises(GitAuthError) as caught:
        clone(history.repo.http_url(auth=True), tmp_path / "checkout", wrong)

    assert isinstance(caught.value, TerminalError)
    assert str(caught.value) == f"authentication failed for {history.repo.http_url(auth=True)}"
    assert_no_secret(caught.value, WRONG_PASSWORD, git_server.password)
    assert not (tmp_path / "checkout").exists()


def test_wrong_password_in_the_url_is_redacted(
    git_server: GitServer, history: History, tmp_path: Path
) -> None:
    url = history.repo.http_url(auth=True).replace(
        "http://", f"http://{git_server.username}:{WRONG_PASSWORD}@"
    )

    with pytest.raises(GitAuthError) as caught:
        ls_remote(url)

    assert "http://***@127.0.0.1" in str(caught.value)
    assert_no_secret(caught.value, WRONG_PASSWORD)


def test_missing_credentials_is_an_auth_error(history: History) -> None:
    with pytest.raises(GitAuthError):
        ls_remote(history.repo.http_url(auth=True))


def test_ssh_clone_with_key_and_known_hosts(
    history: History,
    ssh_credentials: GitCredentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # where the key file goes

    sha = clone(history.repo.ssh_url(), tmp_path / "checkout", ssh_credentials)

    assert sha == history.second
    assert checked_out(tmp_path / "checkout") == "replicas: 2\n"
    assert list(private_tmp.iterdir()) == [], "the private directory with the key was not removed"


@pytest.mark.parametrize("known_hosts", ["empty", "different key"])
def test_unknown_host_key_is_refused(
    git_server: GitServer,
    history: History,
    ssh_credentials: GitCredentials,
    tmp_path: Path,
    known_hosts: str,
) -> None:
    text = ""
    if known_hosts == "different key":
        other = generate_ssh_key(tmp_path / "other_host_key").split()
        text = f"[127.0.0.1]:{git_server.ssh_port} {other[0]} {other[1]}\n"
    credentials = GitCredentials(ssh_private_key=ssh_credentials.ssh_private_key, known_hosts=text)

    with pytest.raises(GitHostKeyError) as caught:
        clone(history.repo.ssh_url(), tmp_path / "checkout", credentials)

    message = str(caught.value)
    assert message.startswith(f"host key verification failed for 127.0.0.1:{git_server.ssh_port}")
    assert "known_hosts" in message
    assert ssh_credentials.ssh_private_key is not None
    key_body = [
        line for line in ssh_credentials.ssh_private_key.splitlines() if "-----" not in line
    ]
    assert_no_secret(caught.value, *key_body)


def test_insecure_ignore_host_key_skips_the_check(
    history: History, ssh_credentials: GitCredentials
) -> None:
    credentials = GitCredentials(
        ssh_private_key=ssh_credentials.ssh_private_key, insecure_ignore_host_key=True
    )

    assert ls_remote(history.repo.ssh_url(), credentials)["refs/heads/main"] == history.second


def test_ssh_without_a_key_is_an_auth_error(
    history: History, ssh_credentials: GitCredentials
) -> None:
    with pytest.raises(GitAuthError):
        ls_remote(history.repo.ssh_url(), GitCredentials(known_hosts=ssh_credentials.known_hosts))


def test_file_clone(history: History, tmp_path: Path) -> None:
    assert clone(history.repo.file_url(), tmp_path / "checkout", allow_local=True) == history.second
    assert checked_out(tmp_path / "checkout") == "replicas: 2\n"


# --- refs and revisions -------------------------------------------------------------------------


def test_ls_remote_returns_pushed_branches_and_tags_over_every_transport(
    history: History, http_credentials: GitCredentials, ssh_credentials: GitCredentials
) -> None:
    expected = {
        "HEAD": history.second,
        "refs/heads/main": history.second,
        "refs/heads/feature": history.feature,
        "refs/tags/v1": history.v1_tag_object,
        "refs/tags/v1^{}": history.first,
        "refs/tags/v1-light": history.first,
    }

    for refs in (
        ls_remote(history.repo.http_url()),
        ls_remote(history.repo.http_url(auth=True), http_credentials),
        ls_remote(history.repo.ssh_url(), ssh_credentials),
        ls_remote(history.repo.file_url(), allow_local=True),
    ):
        assert refs == expected


@pytest.mark.parametrize(
    ("revision", "commit", "content"),
    [
        ("v1", "first", "replicas: 1\n"),
        ("v1-light", "first", "replicas: 1\n"),
        ("refs/tags/v1", "first", "replicas: 1\n"),
        ("feature", "feature", "replicas: 3\n"),
        ("<sha:first>", "first", "replicas: 1\n"),
        ("<short-sha:first>", "first", "replicas: 1\n"),
    ],
)
def test_checkout_of_a_revision(
    history: History, tmp_path: Path, revision: str, commit: str, content: str
) -> None:
    expected: str = getattr(history, commit)
    if revision == "<sha:first>":
        revision = history.first
    elif revision == "<short-sha:first>":
        revision = history.first[:10]

    sha = clone(history.repo.http_url(), tmp_path / "checkout", revision=revision)

    assert sha == expected
    assert checked_out(tmp_path / "checkout") == content


def test_full_history_clone(history: History, tmp_path: Path) -> None:
    clone(
        history.repo.file_url(),
        tmp_path / "checkout",
        revision="feature",
        depth=None,
        allow_local=True,
    )

    log = subprocess.run(
        ["git", "-C", str(tmp_path / "checkout"), "rev-list", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert log == [history.feature, history.second, history.first]


def test_missing_revision_and_repo_are_not_found(
    git_server: GitServer, history: History, tmp_path: Path
) -> None:
    with pytest.raises(GitNotFoundError, match="revision 'no-such-branch' not found"):
        clone(history.repo.http_url(), tmp_path / "a", revision="no-such-branch")
    with pytest.raises(GitNotFoundError, match="not found"):
        clone(history.repo.http_url(), tmp_path / "b", revision="0123abcd" * 5)
    with pytest.raises(GitNotFoundError, match=r"repository .* not found"):
        ls_remote(git_server.http_url("no-such-repo"))
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    "url",
    [
        "--upload-pack=touch {marker}",
        "-oProxyCommand=touch {marker}",
        "ext::sh -c touch% {marker}",
        "ssh://-oProxyCommand=touch%20{marker}/repo.git",
        "ftp://127.0.0.1/repo.git",
        "/srv/repo.git",
    ],
)
def test_dangerous_or_unsupported_urls_are_rejected(tmp_path: Path, url: str) -> None:
    marker = tmp_path / "pwned"

    with pytest.raises(GitInvalidURLError) as caught:
        clone(url.format(marker=marker), tmp_path / "checkout")

    assert isinstance(caught.value, TerminalError)
    assert not marker.exists()
    assert not (tmp_path / "checkout").exists()


@pytest.mark.parametrize("revision", ["--upload-pack=touch {marker}", "-b", "main:refs/heads/x"])
def test_dangerous_revisions_are_rejected(history: History, tmp_path: Path, revision: str) -> None:
    marker = tmp_path / "pwned"

    with pytest.raises(GitInvalidRevisionError) as caught:
        clone(
            history.repo.http_url(), tmp_path / "checkout", revision=revision.format(marker=marker)
        )

    assert isinstance(caught.value, TerminalError)
    if revision.startswith("-"):
        assert "must not start with '-'" in str(caught.value)
    assert not marker.exists()


# --- pushes -------------------------------------------------------------------------------------


def git_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Pusher",
        "GIT_AUTHOR_EMAIL": "pusher@example.invalid",
        "GIT_COMMITTER_NAME": "Pusher",
        "GIT_COMMITTER_EMAIL": "pusher@example.invalid",
        "LC_ALL": "C",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_push_over_authenticated_http(
    git_server: GitServer, http_credentials: GitCredentials, tmp_path: Path
) -> None:
    repo = git_server.create_repo("gitserver-test-push", {"README": "push me\n"})
    dest = tmp_path / "checkout"
    clone(repo.http_url(auth=True), dest, http_credentials, depth=None)
    (dest / "pushed.txt").write_text("over http\n")
    assert git_cli("add", "pushed.txt", cwd=dest).returncode == 0
    assert git_cli("commit", "-q", "-m", "pushed over http", cwd=dest).returncode == 0
    new_sha = git_cli("rev-parse", "HEAD", cwd=dest).stdout.strip()
    with_password = repo.http_url(auth=True).replace(
        "http://", f"http://{git_server.username}:{git_server.password}@"
    )

    anonymous = git_cli("push", repo.http_url(), "HEAD:refs/heads/pushed", cwd=dest)
    authenticated = git_cli("push", with_password, "HEAD:refs/heads/pushed", cwd=dest)

    assert anonymous.returncode != 0, "the anonymous endpoint must refuse pushes"
    assert authenticated.returncode == 0, authenticated.stderr
    assert ls_remote(repo.http_url())["refs/heads/pushed"] == new_sha
    assert repo.git("--git-dir", str(repo.bare_path), "rev-parse", "refs/heads/pushed") == new_sha


# --- a server that goes away or misbehaves -----------------------------------------------------


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[GitServer]:
    """A server of its own, so breaking it does not disturb the shared one."""
    with GitServer() as server:
        server.create_repo("faulty", {"config.yaml": "replicas: 1\n"})
        yield server


@pytest.fixture
def faulty_repo(faulty_server: GitServer) -> Iterator[GitRepo]:
    yield faulty_server.repo("faulty")
    faulty_server.fault = None
    if not faulty_server.running:
        faulty_server.start()


def test_stopped_server_is_unreachable_then_comes_back(
    faulty_server: GitServer, faulty_repo: GitRepo, tmp_path: Path
) -> None:
    ssh = GitCredentials(
        ssh_private_key=faulty_server.ssh_private_key_path.read_text(),
        known_hosts=faulty_server.known_hosts_path.read_text(),
    )
    faulty_server.stop()

    with pytest.raises(GitUnreachableError) as over_http:
        clone(faulty_repo.http_url(), tmp_path / "a")
    with pytest.raises(GitUnreachableError) as over_ssh:
        ls_remote(faulty_repo.ssh_url(), ssh)

    assert isinstance(over_http.value, TransientError)
    assert "unreachable" in str(over_http.value)
    assert "Connection refused" in str(over_ssh.value)

    faulty_server.start()  # same ports, same URLs
    assert clone(faulty_repo.http_url(), tmp_path / "b") == faulty_repo.head()
    assert ls_remote(faulty_repo.ssh_url(), ssh)["HEAD"] == faulty_repo.head()


def test_error500_is_unreachable(
    faulty_server: GitServer, faulty_repo: GitRepo, tmp_path: Path
) -> None:
    faulty_server.fault = "error500"

    with pytest.raises(GitUnreachableError, match=r"did not answer like a Git server \(HTTP 500\)"):
        clone(faulty_repo.http_url(), tmp_path / "checkout")


@pytest.mark.parametrize("operation", ["clone", "ls-remote"])
def test_html_page_with_status_200_is_not_a_git_server(
    faulty_server: GitServer, faulty_repo: GitRepo, tmp_path: Path, operation: str
) -> None:
    faulty_server.fault = "html200"

    with pytest.raises(GitUnreachableError, match="did not answer like a Git server"):
        if operation == "clone":
            clone(faulty_repo.http_url(), tmp_path / "checkout")
        else:
            ls_remote(faulty_repo.http_url())

    assert not (tmp_path / "checkout").exists()


def test_hanging_server_times_out(
    faulty_server: GitServer, faulty_repo: GitRepo, tmp_path: Path
) -> None:
    faulty_server.fault = "hang"
    started = time.monotonic()

    with pytest.raises(GitTimeoutError, match="timed out after 2s") as caught:
        clone(faulty_repo.http_url(), tmp_path / "checkout", timeout=2)

    assert time.monotonic() - started < 10
    assert isinstance(caught.value, TransientError)
    assert isinstance(caught.value, GitSourceError)
    assert not (tmp_path / "checkout").exists()


def test_closed_server_leaves_nothing_listening() -> None:
    server = GitServer()
    server.start()
    http_port, ssh_port = server.http_port, server.ssh_port
    sshd_pid = int((server.root / "ssh" / "sshd.pid").read_text())
    root = server.root

    server.close()

    for port in (http_port, ssh_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"
    assert not Path(f"/proc/{sshd_pid}").exists()
    assert not root.exists()
