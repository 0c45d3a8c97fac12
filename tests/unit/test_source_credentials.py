"""Issue 13, findings 1 and 7, the pure parts: which credential entry a repository URL gets,
when credentials may go over plain http, and that a token in a URL's user name is lifted out
of what git sees and shows."""

from __future__ import annotations

import os
import re
import stat

import pytest

from gitsync.errors import TerminalError
from gitsync.source import GitCredentials, normalize_url
from gitsync.source.credentials import (
    CredentialsError,
    credentials_for,
    no_password_over_http,
    parse_entry,
    prefix_matches,
    select,
)
from gitsync.source.git import GitSession, parse_remote

TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"


@pytest.mark.parametrize(
    ("prefix", "url", "matches"),
    [
        ("https://git.example.com/org", "https://git.example.com/org/repo.git", True),
        ("https://git.example.com/org", "https://git.example.com/org", True),
        ("https://git.example.com/org/", "https://GIT.example.com:443/org/repo/", True),
        ("https://git.example.com/org", "https://tok@git.example.com/org/repo", True),
        ("https://git.example.com", "https://git.example.com/any/repo", True),
        # a path-segment boundary, not a string prefix
        ("https://git.example.com/org", "https://git.example.com/organization/repo", False),
        ("https://git.example.com/org", "https://git.example.com/org-evil/repo", False),
        # scheme, host and port exactly
        ("https://git.example.com/org", "http://git.example.com/org/repo", False),
        ("https://git.example.com/org", "https://git.example.com.evil.net/org/repo", False),
        ("https://git.example.com", "https://git.example.com:8443/org/repo", False),
        ("https://git.example.com", "https://evil.net/git.example.com/org", False),
        # git resolves dot segments: /org/../other is another repository
        ("https://git.example.com/org", "https://git.example.com/org/../other/repo", False),
        ("https://git.example.com/org", "https://git.example.com/org/%2e%2e/other/repo", False),
        # ssh: the user is part of the address
        ("git@git.example.com:org", "ssh://git@git.example.com/org/repo.git", True),
        ("ssh://git@git.example.com/org", "git@git.example.com:org/repo.git", True),
        ("ssh://git@git.example.com/org", "evil@git.example.com:org/repo.git", False),
        ("https://git.example.com", "not a url", False),
    ],
)
def test_prefix_matching(prefix: str, url: str, matches: bool) -> None:
    assert prefix_matches(parse_entry("e", {"url": prefix}).url or "", url) is matches


def test_the_longest_matching_prefix_wins_and_no_match_gets_nothing() -> None:
    host = parse_entry("host", {"url": "https://git.example.com", "token": "host-token-123"})
    org = parse_entry("org", {"url": "https://git.example.com/org", "token": "org-token-123"})
    team = parse_entry("team", {"url": "https://git.example.com/org/team", "token": "team-12345"})
    entries = [host, team, org]

    assert select(entries, "https://git.example.com/org/team/app.git") is team
    assert select(entries, "https://git.example.com/org/other.git") is org
    assert select(entries, "https://git.example.com/elsewhere.git") is host
    assert select(entries, "https://tenant.example.net/org/team/app.git") is None
    assert select(entries, "http://git.example.com/org/team/app.git") is None


def test_a_password_never_goes_over_plain_http_unless_the_entry_says_so() -> None:
    plain = parse_entry("Secret gitsync/plain", {"url": "http://git.internal/org", "token": TOKEN})
    url = "http://git.internal/org/repo.git"

    with pytest.raises(CredentialsError, match='insecureAllowHttp: "true"') as caught:
        credentials_for(plain, url)
    assert isinstance(caught.value, TerminalError)
    assert TOKEN not in str(caught.value)

    allowed = parse_entry(
        "Secret gitsync/plain",
        {"url": "http://git.internal/org", "token": TOKEN, "insecureAllowHttp": "true"},
    )
    assert credentials_for(allowed, url).password == TOKEN
    # an ssh key alone is not sent over http at all, so there is nothing to refuse
    key_only = parse_entry("k", {"url": "http://git.internal/org", "sshPrivateKey": "KEY"})
    assert credentials_for(key_only, url).ssh_private_key == "KEY"


def test_an_entry_refuses_a_url_outside_its_prefix() -> None:
    own = parse_entry(
        "Secret team-a/git", {"url": "https://git.example.com/team-a", "token": TOKEN}
    )

    with pytest.raises(CredentialsError, match=re.escape("not for https://tenant.example.net/x")):
        credentials_for(own, "https://tenant.example.net/x")


def test_the_one_shot_cli_check_refuses_a_password_over_http_unless_asked() -> None:
    creds = GitCredentials(username="me", password=TOKEN)
    with pytest.raises(CredentialsError, match="--git-insecure-allow-http"):
        no_password_over_http(creds, "http://h/x", allowed=False, hint="--git-insecure-allow-http")
    no_password_over_http(creds, "http://h/x", allowed=True, hint="")
    no_password_over_http(creds, "https://h/x", allowed=False, hint="")
    no_password_over_http(None, "http://h/x", allowed=False, hint="")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"token": "t"}, "'url' key"),
        ({"url": "ftp://h/x", "token": "t"}, "unsupported URL scheme"),
        ({"url": "file:///srv/git", "token": "t"}, "must be an https://, http:// or ssh URL"),
        ({"url": f"https://{TOKEN}@h/org", "token": "t"}, "must not carry credentials"),
        ({"url": "https://u:pw@h/org"}, "must not carry credentials"),
        ({"url": "https://h/org/../x"}, "plain prefix"),
        ({"url": "https://h/org?x=1"}, "plain prefix"),
        ({"url": "https://h/org", "password": "p", "token": "t"}, "not both"),
        ({"url": "https://h/org", "insecureAllowHttp": "yes"}, "insecureAllowHttp"),
        ({"url": "https://h/org", "insecure": "true"}, "unknown key"),
    ],
)
def test_malformed_entries_are_refused_naming_the_key(data: dict[str, str], problem: str) -> None:
    with pytest.raises(CredentialsError, match=problem) as caught:
        parse_entry("Secret gitsync/bad", data)
    assert TOKEN not in str(caught.value) and "pw@" not in str(caught.value)


def test_token_as_user_name_is_lifted_out_of_the_url_git_sees() -> None:
    """Finding 7: ``https://<token>@host/...`` - git gets the URL without it (argv,
    .git/config), the token goes through askpass, and the display form hides it."""
    remote = parse_remote(f"https://{TOKEN}@github.com/org/repo.git")

    assert remote.url == "https://github.com/org/repo.git"
    assert remote.display == "https://***@github.com/org/repo.git"
    assert remote.username == TOKEN and remote.password is None
    assert TOKEN not in repr(remote)
    with GitSession(remote, None, 10) as session:
        assert session.env["GITSYNC_GIT_USERNAME"] == TOKEN
        assert TOKEN in session.secrets  # redacted from anything git prints
    with_password = parse_remote(f"https://me:{TOKEN}@github.com/org/repo.git")
    assert with_password.url == "https://github.com/org/repo.git"
    assert (with_password.username, with_password.password) == ("me", TOKEN)
    ssh = parse_remote("ssh://git@github.com/org/repo.git")
    assert ssh.url == "ssh://git@github.com/org/repo.git" and ssh.username == "git"
    with GitSession(parse_remote("https://git@h/x"), None, 10) as session:
        assert "git" not in session.secrets  # a short user name is not a token
    # webhooks still find the app: its identity carries no userinfo
    assert (
        normalize_url(f"https://{TOKEN}@github.com/org/repo.git") == "https://github.com/org/repo"
    )


def test_ca_data_is_handed_to_git_as_a_private_file() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    remote = parse_remote("https://git.example.com/org/repo.git")
    with GitSession(remote, GitCredentials(ca_data=pem), 10) as session:
        bundle = session.env["GIT_SSL_CAINFO"]
        assert session.directory is not None and bundle.startswith(str(session.directory))
        assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o600
        with open(bundle) as handle:
            assert handle.read() == pem + "\n"
    assert not os.path.exists(bundle)
    with GitSession(remote, None, 10) as session:
        assert "GIT_SSL_CAINFO" not in session.env
