"""Issue 13's source defences, piece by piece, without a control plane: who may reuse a mirror
(credential identity), ``file://`` refusal, the output limit, the git child's environment,
the connect timeout, and ending every live session at shutdown. The attacks themselves run
against ``gitsync serve`` in ``tests/integration/test_hardening_sources_it.py``."""

from __future__ import annotations

import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

import gitsync.source.git as git_adapter
from gitsync.cli import build_parser
from gitsync.errors import TerminalError
from gitsync.source import (
    GitCommandFailedError,
    GitCredentials,
    GitLocalRepositoryError,
    GitOutputTooLargeError,
    SourceCache,
    clone,
    ls_remote,
)
from gitsync.source.git import GitSession, parse_remote

URL = "https://git.example.com/team/private.git"


@pytest.fixture
def local_repo(tmp_path: Path) -> Path:
    """A repository whose one commit has a 2 MiB message."""
    work = tmp_path / "origin"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "cm.yaml").write_text("a: 1\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    message = work.parent / "message"
    message.write_text("x" * 64 + "\n" + ("y" * 1023 + "\n") * 2048)
    subprocess.run([*git, "commit", "-q", "-F", str(message)], check=True)
    return work


# -- credential identity -----------------------------------------------------------------------


def test_mirrors_are_per_url_and_credential_identity(tmp_path: Path) -> None:
    cache = SourceCache(tmp_path / "cache")
    alice = GitCredentials(username="alice", password="correct horse")
    mallory = GitCredentials(username="alice", password="guess")
    paths = {
        cache.mirror_path(URL),
        cache.mirror_path(URL, alice),
        cache.mirror_path(URL, mallory),
        cache.mirror_path(URL, GitCredentials(ssh_private_key="KEY")),
    }
    assert len(paths) == 4
    # the same credentials, however they are spelled (URL userinfo or fields), share a mirror
    assert cache.mirror_path(URL, alice) == cache.mirror_path(URL.removesuffix(".git"), alice)
    in_url = URL.replace("://", "://alice:correct%20horse@")
    assert cache.mirror_path(in_url) == cache.mirror_path(URL, alice)
    assert cache.repository_lock(URL, alice) is cache.repository_lock(URL, alice)
    assert cache.repository_lock(URL, alice) is not cache.repository_lock(URL)


def test_the_identity_key_is_private_random_and_kept_across_restarts(tmp_path: Path) -> None:
    creds = GitCredentials(username="alice", password="correct horse")
    first = SourceCache(tmp_path / "cache").mirror_path(URL, creds)
    key = tmp_path / "cache" / "identity.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes()) == 32
    assert SourceCache(tmp_path / "cache").mirror_path(URL, creds) == first
    # another cache (another key) names the same credentials differently: nothing to look up
    assert SourceCache(tmp_path / "other").mirror_path(URL, creds).name != first.name


# -- file:// -----------------------------------------------------------------------------------


def test_file_urls_are_refused_by_default_and_name_the_flag(
    local_repo: Path, tmp_path: Path
) -> None:
    url = f"file://{local_repo}"
    calls: list[str] = []
    cache = SourceCache(tmp_path / "cache", on_request=lambda url, kind, s: calls.append(kind))
    refusals = [
        lambda: ls_remote(url),
        lambda: clone(url, tmp_path / "checkout"),
        lambda: cache.resolve(url, "main"),
        lambda: cache.resolve(url, "0123456"),
        lambda: cache.checkout(url, "main"),
        lambda: cache.checkout(url, "a" * 40),
    ]
    for refuse in refusals:
        with pytest.raises(GitLocalRepositoryError, match="--allow-local-repos") as caught:
            refuse()
        assert isinstance(caught.value, TerminalError)
    assert calls == []
    assert not (tmp_path / "checkout").exists()
    allowed = SourceCache(tmp_path / "allowed", allow_local_repos=True)
    assert (allowed.checkout(url, "main").path / "cm.yaml").read_text() == "a: 1\n"
    assert ls_remote(url, allow_local=True)["HEAD"] == allowed.resolve(url, "main")


def test_a_session_without_local_repos_leaves_file_out_of_the_allowed_protocols() -> None:
    remote = parse_remote(URL)
    with GitSession(remote, None, 10) as session:
        assert session.env["GIT_ALLOW_PROTOCOL"] == "http:https:ssh"
    with GitSession(remote, None, 10, allow_local=True) as session:
        assert session.env["GIT_ALLOW_PROTOCOL"] == "http:https:ssh:file"


# -- output limit ------------------------------------------------------------------------------


def test_output_over_the_limit_kills_git_and_names_the_limit(local_repo: Path) -> None:
    remote = parse_remote(f"file://{local_repo}")
    log = ["--git-dir", str(local_repo / ".git"), "log", "-1", "--format=%B"]
    with GitSession(remote, None, 30, allow_local=True, max_output_bytes=1 << 20) as session:
        with pytest.raises(GitOutputTooLargeError, match="limit of 1048576 bytes to stdout") as e:
            session.run(log, cwd=local_repo, operation="log")
        assert isinstance(e.value, TerminalError)
    with GitSession(remote, None, 30, allow_local=True, max_output_bytes=4 << 20) as session:
        assert len(session.run(log, cwd=local_repo, operation="log")) > 2 << 20


# -- environment and timeouts ------------------------------------------------------------------


def test_git_children_see_path_proxies_and_the_session_only(
    local_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSYNC_WEBHOOK_SECRET", "webhook-s3cret")
    monkeypatch.setenv("KUBECONFIG", "/etc/kubeconfig")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    remote = parse_remote(f"file://{local_repo}")
    with GitSession(remote, None, 30, allow_local=True) as session:
        out = session.run(["-c", "alias.showenv=!env", "showenv"], cwd=local_repo, operation="env")
        home = session.env["HOME"]
    names = {line.partition("=")[0] for line in out.splitlines()}
    assert "webhook-s3cret" not in out
    assert "KUBECONFIG" not in names and "GITSYNC_WEBHOOK_SECRET" not in names
    assert "HTTPS_PROXY=http://proxy.internal:3128" in out.splitlines()
    assert f"HOME={home}" in out.splitlines()
    assert "PATH" in names


def test_connect_timeout_is_separate_from_and_bounded_by_the_deadline() -> None:
    remote = parse_remote(URL)
    with GitSession(remote, None, 60, connect_timeout=4) as session:
        assert session.env["GIT_HTTP_LOW_SPEED_TIME"] == "4"
        assert "ConnectTimeout=4" in session.env["GIT_SSH_COMMAND"]
    with GitSession(remote, None, 60) as session:
        assert session.env["GIT_HTTP_LOW_SPEED_TIME"] == "10"
    with GitSession(remote, None, 2, connect_timeout=30) as session:
        assert session.env["GIT_HTTP_LOW_SPEED_TIME"] == "2"


def test_source_flags_are_validated() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "--allow-local-repos", "--git-connect-timeout=2.5"])
    assert args.allow_local_repos and args.git_connect_timeout == 2.5
    assert not parser.parse_args(["serve"]).allow_local_repos
    for bad in ["--git-connect-timeout=0", "--git-max-output-bytes=-1"]:
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", bad])
    assert parser.parse_args(["diff", "-f", "app.yaml", "--allow-local-repos"]).allow_local_repos


# -- shutdown ----------------------------------------------------------------------------------


def test_ending_all_sessions_kills_children_removes_keys_and_refuses_new_ones(
    local_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_adapter, "_CLOSED", threading.Event())  # this test's shutdown only
    remote = parse_remote(f"file://{local_repo}")
    credentials = GitCredentials(ssh_private_key="-----BEGIN KEY-----\nAAAAsecretkey\n-----END")
    session = GitSession(remote, credentials, 60, allow_local=True).__enter__()
    assert session.directory is not None
    key = session.directory / "identity"
    assert key.is_file()
    failures: list[BaseException] = []

    def fetch() -> None:
        try:
            session.run(["-c", "alias.hang=!sleep 50", "hang"], cwd=local_repo, operation="fetch")
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=fetch)
    worker.start()
    while not session._children:
        time.sleep(0.05)
    child = next(iter(session._children))
    started = time.monotonic()

    assert git_adapter.end_all_sessions() >= 1

    worker.join(10)
    assert time.monotonic() - started < 5
    assert not key.exists() and not key.parent.exists()
    assert child.poll() is not None
    assert len(failures) == 1 and isinstance(failures[0], GitCommandFailedError)
    with pytest.raises(GitCommandFailedError, match="stopping"):
        GitSession(remote, None, 10, allow_local=True).__enter__()
