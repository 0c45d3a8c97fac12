"""Issue 13, findings 1 and 7, the pure parts: which credential entry a repository URL of an
Application in a given namespace gets, when credentials may go over plain http, and that a
token in a URL's user name is lifted out of what git sees and shows."""

from __future__ import annotations

import os
import re
import stat

import pytest

from gitsync.application import SpecError
from gitsync.cli import _env_credential_entry, build_parser
from gitsync.errors import TerminalError
from gitsync.source import GitCredentials, normalize_url
from gitsync.source.credentials import (
    CredentialsError,
    RepositoryCredential,
    credentials_for,
    no_password_over_http,
    parse_entry,
    prefix_matches,
    select,
)
from gitsync.source.git import GitSession, parse_remote

TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
EVERYWHERE = {"namespaces": "*"}


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
    assert prefix_matches(parse_entry("e", {"url": prefix, **EVERYWHERE}).url or "", url) is matches


def test_the_longest_matching_prefix_wins_and_no_match_gets_nothing() -> None:
    host = parse_entry(
        "host", {"url": "https://git.example.com", "token": "host-123", **EVERYWHERE}
    )
    org = parse_entry("org", {"url": "https://git.example.com/org", "token": "o-1", **EVERYWHERE})
    team = parse_entry("team", {"url": "https://git.example.com/org/team", **EVERYWHERE})
    entries = [host, team, org]

    assert select(entries, "https://git.example.com/org/team/app.git", "ns") is team
    assert select(entries, "https://git.example.com/org/other.git", "ns") is org
    assert select(entries, "https://git.example.com/elsewhere.git", "ns") is host
    assert select(entries, "https://tenant.example.net/org/team/app.git", "ns") is None
    assert select(entries, "http://git.example.com/org/team/app.git", "ns") is None


def test_a_password_never_goes_over_plain_http_unless_the_entry_says_so() -> None:
    plain = parse_entry(
        "Secret gitsync/plain", {"url": "http://git.internal/org", "token": TOKEN, **EVERYWHERE}
    )
    url = "http://git.internal/org/repo.git"

    with pytest.raises(CredentialsError, match='insecureAllowHttp: "true"') as caught:
        credentials_for(plain, url, "ns")
    assert isinstance(caught.value, TerminalError)
    assert TOKEN not in str(caught.value)

    allowed = parse_entry(
        "Secret gitsync/plain",
        {
            "url": "http://git.internal/org",
            "token": TOKEN,
            "insecureAllowHttp": "true",
            **EVERYWHERE,
        },
    )
    assert credentials_for(allowed, url, "ns").password == TOKEN
    # an ssh key alone is not sent over http at all, so there is nothing to refuse
    key_only = parse_entry(
        "k", {"url": "http://git.internal/org", "sshPrivateKey": "KEY", **EVERYWHERE}
    )
    assert credentials_for(key_only, url, "ns").ssh_private_key == "KEY"


def test_an_entry_refuses_a_url_outside_its_prefix() -> None:
    own = parse_entry(
        "Secret team-a/git",
        {"url": "https://git.example.com/team-a", "token": TOKEN},
        controller_wide=False,
    )

    with pytest.raises(CredentialsError, match=re.escape("not for https://tenant.example.net/x")):
        credentials_for(own, "https://tenant.example.net/x", "team-a")


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
        (
            {"url": "file:///srv/git", "token": "t"},
            "must be an https://, http://, ssh or oci:// URL",
        ),
        ({"url": f"https://{TOKEN}@h/org", "token": "t"}, "must not carry credentials"),
        ({"url": "https://u:pw@h/org"}, "must not carry credentials"),
        ({"url": "https://h/org/../x"}, "plain prefix"),
        ({"url": "https://h/org?x=1"}, "plain prefix"),
        ({"url": "https://h/org", "password": "p", "token": "t", **EVERYWHERE}, "not both"),
        ({"url": "https://h/org", "insecureAllowHttp": "yes", **EVERYWHERE}, "insecureAllowHttp"),
        ({"url": "https://h/org", "insecure": "on", **EVERYWHERE}, 'insecure must be "true"'),
        # the namespaces an entry is offered to are required, and must be namespace globs
        ({"url": "https://h/org", "token": TOKEN}, "the namespaces key is required"),
        ({"url": "https://h/org", "namespaces": " , \n"}, "namespaces: no namespace glob"),
        ({"url": "https://h/org", "namespaces": "team-a,Team-B"}, "namespaces: glob #2 is not"),
        ({"url": "https://h/org", "namespaces": "team-[ab]"}, "namespaces: glob #1 is not"),
        ({"url": "https://h/org", "namespaces": "team a"}, "namespaces: glob #1 is not"),
        ({"url": "https://h/org", "namespaces": "a" * 64}, "namespaces: glob #1 is not"),
        ({"url": "https://h/org", "namespaces": TOKEN}, "namespaces: glob #1 is not"),
        ({"url": "https://h/org", "namespaces": "a," * 257}, "namespaces: more than 256"),
        ({"url": "https://h/org", "project": "team-a"}, "Argo CD's 'project' is 'namespaces'"),
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


TEAM_A_ENTRY = {"url": "https://git.example.com/org", "token": TOKEN, "namespaces": "team-a"}


@pytest.mark.parametrize(
    ("namespaces", "namespace", "offered"),
    [
        ("team-a", "team-a", True),
        ("team-a", "team-b", False),
        ("team-a", "team-ab", False),
        ("team-a, team-b", "team-b", True),
        ("team-a\nteam-b\n", "team-b", True),
        ("team-*", "team-b", True),
        ("team-*", "other-team-b", False),
        ("team-?", "team-b", True),
        ("team-?", "team-bb", False),
        ("*", "anything", True),
    ],
)
def test_an_entry_is_offered_only_to_the_namespaces_it_names(
    namespaces: str, namespace: str, offered: bool
) -> None:
    entry = parse_entry("Secret gitsync/e", {**TEAM_A_ENTRY, "namespaces": namespaces})
    assert entry.offered_to(namespace) is offered
    assert (select([entry], "https://git.example.com/org/repo.git", namespace) is entry) is offered


def test_another_namespace_gets_the_best_entry_offered_to_it_or_none() -> None:
    """Issue 13: a tenant naming a private repository under an entry's prefix does not get the
    entry when it is scoped to other namespaces; a shorter prefix offered to it still serves."""
    team_a = parse_entry("Secret gitsync/team-a", TEAM_A_ENTRY)
    url = "https://git.example.com/org/private.git"

    assert select([team_a], url, "team-a") is team_a
    assert select([team_a], url, "team-b") is None
    host = parse_entry("host", {"url": "https://git.example.com", "token": "h-1", **EVERYWHERE})
    assert select([team_a, host], url, "team-b") is host
    assert select([team_a, host], url, "team-a") is team_a


def test_an_entry_refuses_a_namespace_it_is_not_offered_to() -> None:
    team_a = parse_entry("Secret gitsync/team-a", TEAM_A_ENTRY)
    url = "https://git.example.com/org/private.git"

    with pytest.raises(CredentialsError, match="not offered to namespace team-b") as caught:
        credentials_for(team_a, url, "team-b")
    assert "namespaces" in str(caught.value) and TOKEN not in str(caught.value)
    assert credentials_for(team_a, url, "team-a").password == TOKEN


def test_an_application_s_own_secret_needs_no_namespaces_but_honours_them() -> None:
    """A secretRef Secret is in the Application's namespace, so already that namespace's own;
    a ``namespaces`` key on it is still checked, not ignored."""
    own = parse_entry("Secret team-a/git", {"token": TOKEN}, controller_wide=False)
    assert own.namespaces is None and own.offered_to("team-a")
    scoped = parse_entry("Secret team-a/git", {"namespaces": "team-b"}, controller_wide=False)
    with pytest.raises(CredentialsError, match="not offered to namespace team-a"):
        credentials_for(scoped, "https://git.example.com/x", "team-a")


ENV_URL = "https://git.example.com/org"


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("GITSYNC_GIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GITSYNC_GIT_PASSWORD", TOKEN)
    monkeypatch.setenv("GITSYNC_GIT_URL", ENV_URL)
    return monkeypatch


def _env_entry(*argv: str) -> RepositoryCredential | None:
    return _env_credential_entry(build_parser().parse_args(["serve", *argv]))


def test_the_environment_entry_is_offered_to_the_namespaces_named(
    git_env: pytest.MonkeyPatch,
) -> None:
    """``serve``'s GITSYNC_GIT_* entry is scoped by ``--git-credentials-namespaces`` or
    $GITSYNC_GIT_NAMESPACES (the flag wins), like a Secret entry's ``namespaces``."""
    git_env.setenv("GITSYNC_GIT_NAMESPACES", "team-a,team-b")
    entry = _env_entry()
    assert entry is not None and entry.namespaces == ("team-a", "team-b")
    assert select([entry], ENV_URL + "/repo.git", "team-c") is None
    flagged = _env_entry("--git-credentials-namespaces=*")
    assert flagged is not None and flagged.offered_to("team-c")
    with pytest.raises(CredentialsError, match=re.escape("--git-credentials-namespaces (or $")):
        credentials_for(entry, ENV_URL + "/repo.git", "team-c")


@pytest.mark.parametrize(
    ("namespaces", "problem"),
    [
        (None, "need the Application namespaces they are offered to"),
        ("", "no namespace glob given"),
        ("team-a,Team-B", "glob #2 is not a namespace glob"),
    ],
)
def test_the_environment_entry_without_good_namespaces_is_refused_naming_the_flag(
    git_env: pytest.MonkeyPatch, namespaces: str | None, problem: str
) -> None:
    if namespaces is not None:
        git_env.setenv("GITSYNC_GIT_NAMESPACES", namespaces)
    with pytest.raises(SpecError, match=problem) as caught:
        _env_entry()
    assert caught.value.field == "--git-credentials-namespaces"
    assert "GITSYNC_GIT_NAMESPACES" in str(caught.value) and TOKEN not in str(caught.value)


def test_namespaces_without_credentials_are_refused(git_env: pytest.MonkeyPatch) -> None:
    git_env.delenv("GITSYNC_GIT_PASSWORD")
    git_env.delenv("GITSYNC_GIT_URL")
    assert _env_entry() is None
    with pytest.raises(SpecError, match="no GITSYNC_GIT_USERNAME"):
        _env_entry("--git-credentials-namespaces=team-a")
