"""The pure rules of the source layer: one identity per repository URL (mirror keys, webhook
matching), which tag a semver range picks, and which advertised ref a revision names."""

from __future__ import annotations

import pytest

from gitsync.source import GitNotFoundError, normalize_url, select_semver_tag
from gitsync.source.cache import _pick
from gitsync.source.git import RemoteRefs
from gitsync.source.revision import is_full_sha, is_short_sha, tag_names

SAME_REPO = [
    "https://host.example/org/repo",
    "https://host.example/org/repo.git",
    "https://host.example/org/repo/",
    "https://host.example/org/repo.git/",
    "https://user:pw@HOST.example/org/repo.git/",
    "https://token@host.example/org/repo",
    "HTTPS://Host.Example:443/org/repo.git",
    "  https://host.example/org/repo.git  ",
]


@pytest.mark.parametrize("url", SAME_REPO)
def test_spellings_of_one_repository_normalize_the_same(url: str) -> None:
    assert normalize_url(url) == "https://host.example/org/repo"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("git@github.com:org/repo.git", "ssh://git@github.com/org/repo"),
        ("git@GitHub.com:org/repo", "ssh://git@github.com/org/repo"),
        ("ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo"),
        ("ssh://git@github.com:22/org/repo.git", "ssh://git@github.com/org/repo"),
        ("ssh://git:secret@github.com/org/repo", "ssh://git@github.com/org/repo"),
        ("ssh://git@host.example:2222/org/repo.git", "ssh://git@host.example:2222/org/repo"),
        ("git@host.example:/srv/git/repo.git", "ssh://git@host.example/srv/git/repo"),
        ("http://host.example:80/org/repo.git", "http://host.example/org/repo"),
        ("http://host.example:8080/org/Repo.git", "http://host.example:8080/org/Repo"),
        ("https://host.example:8443/a/b", "https://host.example:8443/a/b"),
        ("http://[::1]:8080/org/repo.git", "http://[::1]:8080/org/repo"),
        ("file:///srv/git/repo.git", "file:///srv/git/repo"),
        ("file://localhost/srv/git/repo.git/", "file:///srv/git/repo"),
        ("not a url.git", "not a url"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://host.example/org/repo", "http://host.example/org/repo"),  # scheme matters
        ("https://host.example/org/repo", "https://host.example/Org/Repo"),  # path case matters
        ("https://host.example/org/repo", "https://host.example:8443/org/repo"),
        ("ssh://git@host.example/org/repo", "ssh://other@host.example/org/repo"),
    ],
)
def test_different_repositories_stay_different(a: str, b: str) -> None:
    assert normalize_url(a) != normalize_url(b)


def test_normalized_urls_carry_no_credentials() -> None:
    for url in ("https://u:s3cret@h/r.git", "ssh://git:s3cret@h/r", "http://s3cret@h/r"):
        assert "s3cret" not in normalize_url(url)


TAGS = [
    "1.2.0",
    "v1.9.0",
    "2.0.0",
    "v1.10.0-rc1",
    "1.1.0",
    "latest",
    "v1.2",
    "release-1.5.0",
    "v0.9.0",
]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (">=1.2.0 <2.0.0", "v1.9.0"),  # highest; not 2.0.0, not a pre-release
        ("^1.0.0", "v1.9.0"),
        ("~1.2.0", "1.2.0"),
        ("1.x", "v1.9.0"),
        ("*", "2.0.0"),
        (">=1.10.0-rc0 <2.0.0", "v1.10.0-rc1"),  # the range names a 1.10.0 pre-release
        (">=1.10.0-rc0", "2.0.0"),  # a release still beats the pre-release
        ("<1.0.0", "v0.9.0"),
        (">=3.0.0", None),
        ("1.5.x", None),  # "release-1.5.0" and "v1.2" are not versions
    ],
)
def test_select_semver_tag(spec: str, expected: str | None) -> None:
    assert select_semver_tag(TAGS, spec) == expected


def test_equal_versions_pick_one_tag_stably() -> None:
    assert select_semver_tag(["1.2.0", "v1.2.0"], "^1.0.0") == "v1.2.0"
    assert select_semver_tag(["v1.2.0", "1.2.0"], "^1.0.0") == "v1.2.0"
    assert select_semver_tag(["1.2.0+build.2", "1.2.0+build.10"], "^1.0.0") == "1.2.0+build.2"


def test_an_unparsable_range_raises() -> None:
    with pytest.raises(ValueError):
        select_semver_tag(TAGS, ">=1.0.0 <<2")


def test_tag_names_skip_peeled_entries_and_other_refs() -> None:
    refs = ["HEAD", "refs/heads/main", "refs/tags/v1", "refs/tags/v1^{}", "refs/tags/a/b"]
    assert tag_names(refs) == ["v1", "a/b"]


@pytest.mark.parametrize(
    ("revision", "full", "short"),
    [
        ("a" * 40, True, False),
        ("A" * 40, True, False),
        ("b" * 64, True, False),
        ("abc1234", False, True),
        ("abc123", False, False),
        ("a" * 41, False, True),
        ("main", False, False),
        ("g" * 40, False, False),
    ],
)
def test_sha_shapes(revision: str, full: bool, short: bool) -> None:
    assert (is_full_sha(revision), is_short_sha(revision)) == (full, short)


SHA = {
    name: str(n) * 40 for n, name in enumerate(["head", "main", "tag", "commit", "pull", "release"])
}
ADVERTISED = RemoteRefs(
    refs={
        "HEAD": SHA["main"],
        "refs/heads/main": SHA["main"],
        "refs/heads/v2": SHA["head"],
        "refs/tags/v2": SHA["tag"],
        "refs/tags/v2^{}": SHA["commit"],
        "refs/pull/7/head": SHA["pull"],
        "refs/tags/v2.1.0": SHA["release"],
    },
    symrefs={"HEAD": "refs/heads/main"},
)


@pytest.mark.parametrize(
    ("revision", "sha", "ref"),
    [
        ("HEAD", "main", "refs/heads/main"),
        ("main", "main", "refs/heads/main"),
        ("v2", "commit", "refs/tags/v2"),  # a tag wins over a branch of the same name, peeled
        ("refs/heads/v2", "head", "refs/heads/v2"),
        ("heads/v2", "head", "refs/heads/v2"),
        ("pull/7/head", "pull", "refs/pull/7/head"),
        (">=1.0.0", "release", "refs/tags/v2.1.0"),
    ],
)
def test_which_advertised_ref_a_revision_names(revision: str, sha: str, ref: str) -> None:
    target = _pick(ADVERTISED, revision, "https://host.example/org/repo")
    assert (target.sha, target.ref) == (SHA[sha], ref)


def test_head_without_a_symref_is_reported_as_head() -> None:
    refs = RemoteRefs(refs={"HEAD": SHA["main"]}, symrefs={})
    assert _pick(refs, "HEAD", "u").ref == "HEAD"


@pytest.mark.parametrize("revision", ["nope", "refs/heads/nope", ">=9.0.0"])
def test_revisions_that_name_nothing(revision: str) -> None:
    with pytest.raises(GitNotFoundError, match=r"not found|no tag"):
        _pick(ADVERTISED, revision, "https://host.example/org/repo")


def test_an_empty_repository_has_no_head() -> None:
    with pytest.raises(GitNotFoundError, match="empty"):
        _pick(RemoteRefs({}, {}), "HEAD", "u")
