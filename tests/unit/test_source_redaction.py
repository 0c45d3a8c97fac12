"""Secrets stay out of URLs shown to people, out of reprs and out of messages; bad input is refused
before git runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitsync.errors import TerminalError
from gitsync.source import (
    GitCredentials,
    GitInvalidRevisionError,
    GitInvalidURLError,
    clone,
    ls_remote,
    redact,
    redact_url,
)

KEY = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBq6e1PS3cretKeyMaterialThatMustNeverBeShownAnywhere00000000
-----END OPENSSH PRIVATE KEY-----
"""


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@example.com/x.git", "https://***@example.com/x.git"),
        ("https://user:p%40ss@example.com:8443/x", "https://***@example.com:8443/x"),
        ("https://user:p@ss@example.com/x", "https://***@example.com/x"),
        ("http://:token@example.com/x", "http://***@example.com/x"),
        ("ssh://git:pw@example.com/x", "ssh://git:***@example.com/x"),
        # issue 13 finding 7: a token as the user name (GitHub's documented form)
        ("https://ghp_16C7e42F292c6912E7710c8@github.com/o/r", "https://***@github.com/o/r"),
        ("https://user@example.com/x.git", "https://***@example.com/x.git"),
        ("HTTPS://a@b@example.com/x", "HTTPS://***@example.com/x"),
        ("ftp://tok@example.com/x", "ftp://***@example.com/x"),
        ("ssh://git@example.com/x", "ssh://git@example.com/x"),
        ("https://example.com/x?to=a@b", "https://example.com/x?to=a@b"),
        ("https://example.com:443/x.git", "https://example.com:443/x.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("file:///srv/git/x.git", "file:///srv/git/x.git"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_covers_urls_inside_messages_and_literal_secrets() -> None:
    message = "fatal: unable to access 'https://bob:hunter2@h/x.git/': token hunter2 rejected"

    assert redact(message, ["hunter2"]) == (
        "fatal: unable to access 'https://***@h/x.git/': token *** rejected"
    )


def test_credentials_repr_shows_no_secret() -> None:
    credentials = GitCredentials(
        username="bob",
        password="hunter2-very-secret",
        ssh_private_key=KEY,
        known_hosts="github.com ssh-ed25519 AAAAC3Nza\n# comment\n",
    )

    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert "hunter2-very-secret" not in text
        assert "MustNeverBeShown" not in text
        assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" not in text
        assert "username='bob'" in text
        assert "password=<set>" in text
        assert "known_hosts=<1 entries>" in text


def test_credentials_list_their_secrets_for_redaction() -> None:
    secrets = GitCredentials(password="pw-1234", ssh_private_key=KEY).secrets()

    assert "pw-1234" in secrets
    assert any("MustNeverBeShown" in line for line in secrets)
    assert not any(line.startswith("-----") for line in secrets)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("-oProxyCommand=sh", "must not start with '-'"),
        ("--upload-pack=sh", "must not start with '-'"),
        ("ext::sh -c id", "whitespace"),
        ("ext::sh", "unsupported"),
        ("fd::17", "unsupported"),
        ("ftp://example.com/x.git", "unsupported URL scheme 'ftp'"),
        ("git://example.com/x.git", "unsupported URL scheme 'git'"),
        ("/srv/git/x.git", "unsupported repository URL"),
        ("ssh://-oProxyCommand=sh/x.git", "invalid host"),
        ("ssh://-oProxyCommand=sh@example.com/x.git", "invalid user"),
        ("https://example.com/x\n.git", "whitespace or control characters"),
        ("file://otherhost/srv/x.git", "file:///absolute/path"),
    ],
)
def test_unsupported_or_dangerous_urls_are_refused_before_git_runs(
    url: str, problem: str, tmp_path: Path
) -> None:
    with pytest.raises(GitInvalidURLError, match=problem) as caught:
        ls_remote(url)
    assert isinstance(caught.value, TerminalError)
    with pytest.raises(GitInvalidURLError):
        clone(url, tmp_path / "checkout")
    assert not (tmp_path / "checkout").exists()


def test_refused_url_message_does_not_show_its_password() -> None:
    with pytest.raises(GitInvalidURLError) as caught:
        ls_remote("ftp://bob:hunter2@example.com/x.git")
    assert "hunter2" not in str(caught.value)
    assert "ftp://***@example.com" in str(caught.value)


@pytest.mark.parametrize(
    "revision",
    ["", "-b", "--upload-pack=sh", "main:refs/heads/evil", "a..b", "HEAD@{1}", "v1^{}", "x y"],
)
def test_invalid_revisions_are_refused_before_git_runs(revision: str, tmp_path: Path) -> None:
    with pytest.raises(GitInvalidRevisionError) as caught:
        clone("https://example.com/x.git", tmp_path / "checkout", revision=revision)
    assert isinstance(caught.value, TerminalError)
    assert not (tmp_path / "checkout").exists()
