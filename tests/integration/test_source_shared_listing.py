"""``SourceCache.resolve(max_age=...)`` against the real test Git server: many apps following one
repository share a recent ``ls-remote`` - but never across credentials, never a failed one, and
never when the caller asks for the default strict answer (a webhook saying "I just pushed")."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gitsync.localenv.gitserver import GitServer
from gitsync.source import GitAuthError, GitCredentials, SourceCache, normalize_url
from gitsync.source.git import GitSourceError

pytestmark = pytest.mark.integration


def listings(cache: SourceCache, url: str) -> int:
    return cache.requests[(normalize_url(url), "ls-remote")]


def test_a_recent_listing_is_shared_by_concurrent_and_later_callers(
    git_server: GitServer, tmp_path: Path
) -> None:
    repo = git_server.create_repo("shared-listing-many", {"a.yaml": "a: 1\n"})
    url = repo.http_url()
    cache = SourceCache(tmp_path)
    shas: list[str] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        shas.append(cache.resolve(url, "main", max_age=60))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert shas == [repo.head()] * 8
    assert cache.resolve(url, "main", max_age=60) == repo.head()
    assert listings(cache, url) == 1


def test_the_default_lists_again_and_sees_a_push(git_server: GitServer, tmp_path: Path) -> None:
    repo = git_server.create_repo("shared-listing-push", {"a.yaml": "a: 1\n"})
    url = repo.http_url()
    cache = SourceCache(tmp_path)
    before = cache.resolve(url, "main", max_age=60)
    pushed = repo.commit({"a.yaml": "a: 2\n"})
    repo.push()
    assert pushed != before
    assert cache.resolve(url, "main") == pushed  # strict: a listing of its own
    assert listings(cache, url) == 2
    # and the strict listing is now the one later lenient callers share
    assert cache.resolve(url, "main", max_age=60) == pushed
    assert listings(cache, url) == 2


def test_a_listing_is_never_shared_with_other_credentials(
    git_server: GitServer, tmp_path: Path
) -> None:
    repo = git_server.create_repo("shared-listing-auth", {"a.yaml": "a: 1\n"})
    url = repo.http_url(auth=True)
    right = GitCredentials(username=git_server.username, password=git_server.password)
    wrong = GitCredentials(username=git_server.username, password="wrong-password-9c2e")
    cache = SourceCache(tmp_path)
    assert cache.resolve(url, "main", right, max_age=60) == repo.head()
    with pytest.raises(GitAuthError):
        cache.resolve(url, "main", wrong, max_age=60)
    with pytest.raises(GitAuthError):
        cache.resolve(url, "main", None, max_age=60)


def test_a_failed_listing_is_not_shared(tmp_path: Path) -> None:
    with GitServer(ssh=False) as server:  # one of its own: this test stops it
        repo = server.create_repo("shared-listing-down", {"a.yaml": "a: 1\n"})
        url = repo.http_url()
        cache = SourceCache(tmp_path, timeout=10)
        server.stop()
        with pytest.raises(GitSourceError):
            cache.resolve(url, "main", max_age=60)
        server.start()
        assert cache.resolve(url, "main", max_age=60) == repo.head()
        assert listings(cache, url) == 2
