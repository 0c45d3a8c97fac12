"""The source cache against the real test Git server: what the controller relies on when it asks
"what is at this revision now?" many times a minute - the right commit, cheap when nothing
changed, new files when something was pushed, immutable trees, safe under concurrency, and
credentials that go nowhere."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from gitsync.errors import TerminalError, TransientError
from gitsync.localenv.gitserver import GitRepo, GitServer
from gitsync.source import (
    Checkout,
    GitAuthError,
    GitCredentials,
    GitInvalidRevisionError,
    GitNotFoundError,
    GitRepositoryTooLargeError,
    GitStorageError,
    SourceCache,
    normalize_url,
)

pytestmark = pytest.mark.integration

AUTHOR = "Ada Lovelace <ada@example.invalid>"
WRONG_PASSWORD = "wrong-password-5e1d"


@dataclass(frozen=True)
class History:
    """A repo with branches, lightweight and annotated tags and semver tags."""

    repo: GitRepo
    first: str  # tagged 1.2.0 (lightweight) and v1.2.0-light
    release: str  # tagged v1.9.0 (annotated), on main
    head: str  # main; tagged 2.0.0 and v1.10.0-rc1
    feature: str  # branch "feature"
    annotated_tag_object: str


@pytest.fixture(scope="module")
def history(git_server: GitServer) -> History:
    repo = git_server.create_repo("source-cache-history", {"config.yaml": "replicas: 1\n"})
    first = repo.head()
    repo.tag("1.2.0")
    repo.tag("v1.2.0-light")
    release = repo.commit(
        {"config.yaml": "replicas: 2\n"},
        "Release 1.9\n\nWith a body line.",
        author=AUTHOR,
    )
    repo.tag("v1.9.0", message="release 1.9.0")
    head = repo.commit({"config.yaml": "replicas: 3\n"}, "after the release")
    repo.tag("2.0.0")
    repo.tag("v1.10.0-rc1")
    repo.tag("not-a-version")
    repo.branch("feature")
    feature = repo.commit({"config.yaml": "replicas: 4\n"}, "feature work")
    repo.checkout("main")
    repo.push()
    return History(repo, first, release, head, feature, repo.git("rev-parse", "refs/tags/v1.9.0"))


@pytest.fixture
def cache(tmp_path: Path) -> SourceCache:
    return SourceCache(tmp_path / "cache", timeout=30)


@pytest.fixture(scope="module")
def http_credentials(git_server: GitServer) -> GitCredentials:
    return GitCredentials(username=git_server.username, password=git_server.password)


@pytest.fixture(scope="module")
def ssh_credentials(git_server: GitServer) -> GitCredentials:
    return GitCredentials(
        ssh_private_key=git_server.ssh_private_key_path.read_text(),
        known_hosts=git_server.known_hosts_path.read_text(),
    )


def counts(cache: SourceCache, url: str) -> tuple[int, int]:
    """(ls-remote, fetch) requests made so far for ``url``."""
    key = normalize_url(url)
    return cache.requests[(key, "ls-remote")], cache.requests[(key, "fetch")]


def tree(path: Path) -> dict[str, str]:
    """Relative path -> file content, or ``-> target`` for a symlink."""
    result: dict[str, str] = {}
    for entry in sorted(path.rglob("*")):
        relative = str(entry.relative_to(path))
        if entry.is_symlink():
            result[relative] = f"-> {os.readlink(entry)}"
        elif entry.is_file():
            result[relative] = entry.read_text()
    return result


def all_bytes_under(root: Path) -> Iterator[tuple[Path, bytes]]:
    for entry in root.rglob("*"):
        if entry.is_file() and not entry.is_symlink():
            yield entry, entry.read_bytes()


# --- resolving ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        ("main", "head"),
        ("refs/heads/main", "head"),
        ("feature", "feature"),
        ("HEAD", "head"),
        ("1.2.0", "first"),
        ("v1.9.0", "release"),  # annotated: the commit, not the tag object
        ("refs/tags/v1.9.0", "release"),
        (">=1.2.0 <2.0.0", "release"),  # 1.9.0; not 2.0.0, not the pre-release v1.10.0-rc1
        ("^1.2.0", "release"),
        ("~1.2", "first"),
        (">=1.10.0-rc0 <2.0.0", "head"),  # a range that names a pre-release may pick one
        ("1.x", "release"),
    ],
)
def test_resolve_names_the_commit_with_one_ls_remote(
    cache: SourceCache, history: History, revision: str, expected: str
) -> None:
    url = history.repo.http_url()

    assert cache.resolve(url, revision) == getattr(history, expected)
    assert counts(cache, url) == (1, 0)


def test_resolve_peels_annotated_tags(cache: SourceCache, history: History) -> None:
    sha = cache.resolve(history.repo.http_url(), "v1.9.0")

    assert sha == history.release
    assert sha != history.annotated_tag_object


def test_a_full_sha_resolves_without_touching_the_network(
    cache: SourceCache, history: History
) -> None:
    # Not even a server: the answer must come without any request.
    unreachable = "http://127.0.0.1:9/nothing-listens-here.git"

    assert cache.resolve(unreachable, history.release.upper()) == history.release
    assert cache.resolve(history.repo.http_url(), history.first) == history.first
    assert sum(cache.requests.values()) == 0


def test_a_short_sha_is_expanded_in_the_mirror(cache: SourceCache, history: History) -> None:
    url = history.repo.http_url()

    assert cache.resolve(url, history.first[:10]) == history.first
    assert counts(cache, url) == (0, 1)  # fetched everything once, locally expanded
    assert cache.resolve(url, history.feature[:8]) == history.feature
    assert counts(cache, url) == (0, 1)  # already known: no more requests


@pytest.mark.parametrize(
    ("revision", "named"),
    [
        ("no-such-branch", "'no-such-branch'"),
        ("refs/heads/gone", "'refs/heads/gone'"),
        (">=3.0.0", "'>=3.0.0'"),
        ("deadbeef00", "'deadbeef00'"),
    ],
)
def test_unknown_revisions_are_terminal_and_named(
    cache: SourceCache, history: History, revision: str, named: str
) -> None:
    with pytest.raises(GitNotFoundError) as caught:
        cache.resolve(history.repo.http_url(), revision)

    assert isinstance(caught.value, TerminalError)
    assert named in str(caught.value)


@pytest.mark.parametrize("revision", ["", "-delete", "main..feature", ">=1.0.0 <<2"])
def test_invalid_revisions_are_refused_before_git_runs(
    cache: SourceCache, history: History, revision: str
) -> None:
    with pytest.raises(GitInvalidRevisionError):
        cache.checkout(history.repo.http_url(), revision)
    assert sum(cache.requests.values()) == 0


# --- checking out -------------------------------------------------------------------------------


def test_checkout_carries_the_commit_details(cache: SourceCache, history: History) -> None:
    checkout = cache.checkout(history.repo.http_url(), "v1.9.0")

    revision = checkout.revision
    assert revision.sha == history.release
    assert revision.ref == "refs/tags/v1.9.0"
    assert revision.message == "Release 1.9\n\nWith a body line."
    assert revision.author == AUTHOR
    expected_date = history.repo.git("log", "-1", "--format=%aI", history.release)
    assert datetime.fromisoformat(revision.date) == datetime.fromisoformat(expected_date)
    assert (checkout.path / "config.yaml").read_text() == "replicas: 2\n"


@pytest.mark.parametrize(
    ("revision", "ref"),
    [
        ("HEAD", "refs/heads/main"),
        ("feature", "refs/heads/feature"),
        (">=1.0.0 <1.5", "refs/tags/1.2.0"),
    ],
)
def test_checkout_reports_the_ref_it_went_through(
    cache: SourceCache, history: History, revision: str, ref: str
) -> None:
    checkout = cache.checkout(history.repo.http_url(), revision)

    assert checkout.revision.ref == ref


def test_checkout_of_a_pinned_sha_fetches_only_that_commit(
    cache: SourceCache, history: History
) -> None:
    url = history.repo.http_url()

    checkout = cache.checkout(url, history.first)

    assert checkout.revision.sha == history.first
    assert checkout.revision.ref == ""
    assert (checkout.path / "config.yaml").read_text() == "replicas: 1\n"
    assert counts(cache, url) == (0, 1)
    shallow = (cache.mirror_path(url) / "shallow").read_text().split()
    assert shallow == [history.first]  # depth 1: no history behind it was transferred


def test_an_unchanged_repo_costs_one_ls_remote(cache: SourceCache, history: History) -> None:
    url = history.repo.http_url()
    first = cache.checkout(url, "main")
    assert counts(cache, url) == (1, 1)

    second = cache.checkout(url, "main")

    assert second == first
    assert counts(cache, url) == (2, 1)  # exactly one more ls-remote, no fetch


def test_a_restarted_cache_reuses_mirror_and_checkouts(tmp_path: Path, history: History) -> None:
    url = history.repo.http_url()
    before = SourceCache(tmp_path / "cache").checkout(url, "main")

    restarted = SourceCache(tmp_path / "cache")
    after = restarted.checkout(url, "main")

    assert after == before
    assert counts(restarted, url) == (1, 0)


def test_a_new_commit_gets_a_new_checkout_and_the_old_one_stays(
    cache: SourceCache, git_server: GitServer
) -> None:
    repo = git_server.create_repo("source-cache-moving", {"app.yaml": "version: 1\n"})
    url = repo.http_url()
    old = cache.checkout(url, "main")
    old_files = tree(old.path)

    new_sha = repo.commit({"app.yaml": "version: 2\n", "added.yaml": "new: true\n"}, "v2")
    repo.push()
    new = cache.checkout(url, "main")

    assert new.revision.sha == new_sha != old.revision.sha
    assert new.path != old.path
    assert tree(new.path) == {"added.yaml": "new: true\n", "app.yaml": "version: 2\n"}
    assert tree(old.path) == old_files == {"app.yaml": "version: 1\n"}
    assert counts(cache, url) == (2, 2)


def test_checkouts_are_read_only_and_have_no_git_dir(
    cache: SourceCache, git_server: GitServer
) -> None:
    repo = git_server.create_repo(
        "source-cache-readonly", {"app.yaml": "a: 1\n", "nested/deep/x.yaml": "x: 1\n"}
    )
    path = cache.checkout(repo.http_url(), "main").path

    assert not (path / ".git").exists()
    assert not any(part == ".git" for entry in path.rglob("*") for part in entry.parts)
    for entry in [path, *path.rglob("*")]:
        mode = entry.lstat().st_mode
        if not stat.S_ISLNK(mode):
            assert mode & 0o222 == 0, f"{entry} is writable: {stat.filemode(mode)}"
    # Mode bits bind everyone without CAP_DAC_OVERRIDE; root (these tests) bypasses them, so the
    # write is tried by a process that runs without that capability.
    probe = (
        "import sys\n"
        "for target in sys.argv[1:]:\n"
        "    try:\n"
        "        open(target, 'a').close()\n"
        "    except PermissionError:\n"
        "        continue\n"
        "    sys.exit(f'{target} was writable')\n"
    )
    command = [sys.executable, "-c", probe, str(path / "app.yaml"), str(path / "nested/new")]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv is needed to drop CAP_DAC_OVERRIDE as root")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--", *command]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_symlinks_stay_symlinks(cache: SourceCache, git_server: GitServer) -> None:
    repo = git_server.create_repo("source-cache-symlinks", {"base/app.yaml": "a: 1\n"})
    repo.symlink("link.yaml", "base/app.yaml")
    repo.symlink("escape.yaml", "../../../etc/passwd")
    repo.symlink("dirlink", "base")
    repo.commit(message="links")
    repo.push()

    path = cache.checkout(repo.http_url(), "main").path

    assert (path / "link.yaml").is_symlink()
    assert os.readlink(path / "link.yaml") == "base/app.yaml"
    assert os.readlink(path / "escape.yaml") == "../../../etc/passwd"  # verbatim: not resolved
    assert os.readlink(path / "dirlink") == "base"
    assert (path / "link.yaml").read_text() == "a: 1\n"


# --- concurrency --------------------------------------------------------------------------------


def test_concurrent_checkouts_of_one_repo_share_one_fetch(
    cache: SourceCache, git_server: GitServer
) -> None:
    repo = git_server.create_repo(
        "source-cache-concurrent", {f"m/{n}.yaml": f"n: {n}\n" for n in range(20)}
    )
    url = repo.http_url()
    start = threading.Barrier(8)

    def checkout(_: int) -> Checkout:
        start.wait()
        return cache.checkout(url, "main")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(checkout, range(8)))

    assert {result.path for result in results} == {results[0].path}
    assert {result.revision for result in results} == {results[0].revision}
    assert len(tree(results[0].path)) == 20
    assert counts(cache, url) == (8, 1)
    assert [p.name for p in cache.checkouts_dir.iterdir()] == [results[0].revision.sha]


def test_different_repos_do_not_wait_for_each_other(
    cache: SourceCache, git_server: GitServer
) -> None:
    a = git_server.create_repo("source-cache-parallel-a", {"a.yaml": "a: 1\n"})
    b = git_server.create_repo("source-cache-parallel-b", {"b.yaml": "b: 1\n"})
    lock_a = cache.repository_lock(a.http_url())
    assert lock_a is not cache.repository_lock(b.http_url())
    assert lock_a is cache.repository_lock(a.http_url().removesuffix(".git"))

    with ThreadPoolExecutor(max_workers=2) as pool:
        with lock_a:  # as if a long fetch of repo a were running
            pending_a = pool.submit(cache.checkout, a.http_url(), "main")
            done_b = pool.submit(cache.checkout, b.http_url(), "main").result(timeout=30)
            time.sleep(0.3)
            assert not pending_a.done()  # same repo: waits for the lock
        done_a = pending_a.result(timeout=30)

    assert tree(done_a.path) == {"a.yaml": "a: 1\n"}
    assert tree(done_b.path) == {"b.yaml": "b: 1\n"}


# --- authentication and secrets -----------------------------------------------------------------


def test_http_with_credentials(
    cache: SourceCache, history: History, http_credentials: GitCredentials, git_server: GitServer
) -> None:
    url = history.repo.http_url(auth=True)

    checkout = cache.checkout(url, "feature", http_credentials)

    assert checkout.revision.sha == history.feature
    assert cache.resolve(url, "v1.9.0", http_credentials) == history.release
    assert git_server.password not in repr(dict(cache.requests))
    for path, content in all_bytes_under(cache.root):
        assert git_server.password.encode() not in content, path


def test_a_password_in_the_url_is_used_but_never_kept(
    cache: SourceCache, history: History, git_server: GitServer
) -> None:
    plain = history.repo.http_url(auth=True)
    url = plain.replace("://", f"://{git_server.username}:{git_server.password}@")
    seen: list[tuple[str, str, float]] = []
    cache.on_request = lambda *call: seen.append(call)

    checkout = cache.checkout(url, "main")

    assert checkout.revision.sha == history.head
    # The password is part of who reads the mirror, wherever it was written.
    same = GitCredentials(username=git_server.username, password=git_server.password)
    assert cache.mirror_path(url) == cache.mirror_path(plain, same)
    assert cache.mirror_path(url) != cache.mirror_path(plain)
    assert [(u, kind) for u, kind, _ in seen] == [
        (normalize_url(plain), "ls-remote"),
        (normalize_url(plain), "fetch"),
    ]
    assert all(seconds >= 0 for _, _, seconds in seen)
    assert git_server.password not in repr(dict(cache.requests))
    for path, content in all_bytes_under(cache.root):
        assert git_server.password.encode() not in content, path


def test_ssh_with_a_key(
    cache: SourceCache, history: History, ssh_credentials: GitCredentials
) -> None:
    url = history.repo.ssh_url()

    checkout = cache.checkout(url, ">=1.2.0 <2.0.0", ssh_credentials)

    assert checkout.revision.sha == history.release
    assert (checkout.path / "config.yaml").read_text() == "replicas: 2\n"
    key_line = ssh_credentials.secrets()[0].encode()
    for path, content in all_bytes_under(cache.root):
        assert key_line not in content, path


def test_a_wrong_password_is_an_auth_error_without_the_password(
    cache: SourceCache, history: History, git_server: GitServer
) -> None:
    wrong = GitCredentials(username=git_server.username, password=WRONG_PASSWORD)
    url = history.repo.http_url(auth=True)

    for call in (cache.resolve, cache.checkout):
        with pytest.raises(GitAuthError) as caught:
            call(url, "main", wrong)
        error: BaseException | None = caught.value
        while error is not None:  # the message and every chained cause
            assert WRONG_PASSWORD not in str(error)
            error = error.__cause__ or error.__context__
    assert not any(cache.checkouts_dir.iterdir())


# --- bounds and storage -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "what"),
    [({"max_checkout_files": 3}, "files"), ({"max_checkout_bytes": 1000}, "bytes")],
)
def test_a_too_large_repo_is_terminal_and_leaves_nothing(
    tmp_path: Path, git_server: GitServer, limits: dict[str, int], what: str
) -> None:
    name = f"source-cache-large-{what}"
    repo = git_server.create_repo(name, {f"f{n}.txt": "x" * 400 for n in range(5)})
    cache = SourceCache(tmp_path / "cache", **limits)

    with pytest.raises(GitRepositoryTooLargeError) as caught:
        cache.checkout(repo.http_url(), "main")

    assert isinstance(caught.value, TerminalError)
    assert "too large" in str(caught.value)
    assert list(cache.checkouts_dir.iterdir()) == []


def test_only_the_least_recently_used_checkouts_are_evicted(
    tmp_path: Path, git_server: GitServer
) -> None:
    repo = git_server.create_repo("source-cache-evict", {"n.yaml": "n: 0\n"})
    shas = [repo.head()] + [repo.commit({"n.yaml": f"n: {n}\n"}, f"n{n}") for n in (1, 2, 3)]
    repo.push()
    url = repo.http_url()
    grace = SourceCache(tmp_path / "grace", max_checkouts=2)
    strict = SourceCache(tmp_path / "strict", max_checkouts=2, eviction_grace=0)

    for cache in (grace, strict):
        for sha in shas[:3]:
            cache.checkout(url, sha)
        cache.checkout(url, shas[0])  # used again: now the most recent
        cache.checkout(url, shas[3])

    # Recently returned checkouts may still be read: kept, the bound is soft.
    assert sorted(p.name for p in grace.checkouts_dir.iterdir()) == sorted(shas)
    assert sorted(p.name for p in strict.checkouts_dir.iterdir()) == sorted([shas[0], shas[3]])
    assert (strict.checkouts_dir / shas[0] / "n.yaml").read_text() == "n: 0\n"


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_is_a_storage_error_leaves_no_checkout_and_recovers(
    tmp_path: Path, git_server: GitServer
) -> None:
    # Random bytes do not compress: the fetch itself runs out of space. Repeated text compresses
    # to a few KiB, so the fetch fits and the checkout (3 MiB on a 1 MiB disk) does not.
    random = git_server.create_repo("source-cache-full-fetch", {"big.bin": os.urandom(3 << 20)})
    text = git_server.create_repo("source-cache-full-extract", {"big.txt": "gitsync\n" * (3 << 17)})
    password_url = text.http_url(auth=True).replace(
        "://", f"://{git_server.username}:{git_server.password}@"
    )

    with tmpfs(tmp_path / "small", "1m") as root:
        cache = SourceCache(root)
        with pytest.raises(GitStorageError) as fetching:
            cache.checkout(random.http_url(), "main")
        with pytest.raises(GitStorageError) as extracting:
            cache.checkout(password_url, "main")
        leftovers = sorted(p.name for p in cache.checkouts_dir.iterdir())
        leftovers += [str(p) for p in root.rglob("*") if p.name.startswith((".tmp-", "tmp_"))]
        free = shutil.disk_usage(root).free

        # Space comes back: the same cache fetches and checks out both, nobody clears anything.
        subprocess.run(["mount", "-o", "remount,size=32m", str(root)], check=True)
        recovered = [
            cache.checkout(random.http_url(), "main"),
            cache.checkout(password_url, "main"),
        ]
        recovered_sizes = [
            (c.path / "big.bin").stat().st_size if i == 0 else (c.path / "big.txt").stat().st_size
            for i, c in enumerate(recovered)
        ]

    assert isinstance(fetching.value, TransientError)
    assert str(fetching.value) == f"no space left on device while fetching {random.http_url()}"
    assert str(extracting.value).startswith("no space left on device while checking out ")
    assert git_server.password not in str(extracting.value)
    assert leftovers == []
    assert free > 900 * 1024  # what the failed fetch and checkout wrote is gone
    assert recovered_sizes == [3 << 20, len("gitsync\n") * (3 << 17)]


def test_a_read_only_disk_is_a_storage_error(tmp_path: Path, git_server: GitServer) -> None:
    repo = git_server.create_repo("source-cache-read-only-disk", {"a.yaml": "a: 1\n"})
    with tmpfs(tmp_path / "disk", "4m") as root:
        cache = SourceCache(root)
        cache.checkout(repo.http_url(), "main")
        repo.commit({"a.yaml": "a: 2\n"})
        repo.push()
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)

        with pytest.raises(GitStorageError) as caught:
            cache.checkout(repo.http_url(), "main")

    assert "read-only file system while fetching" in str(caught.value)
