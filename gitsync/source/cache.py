"""The source cache: from (repository URL, target revision) to an immutable directory of files.

One ``SourceCache`` per process serves every Application. It is shaped by what a controller does
all day - ask "did anything change?" for many repos every few minutes - and by what must never
happen while doing it:

* **Cheap when nothing changed.** ``resolve`` is one ``ls-remote`` round trip (none at all for a
  full SHA). ``checkout`` resolves first and skips the fetch when the commit is already in the
  local mirror, and skips extraction when that commit's checkout already exists: an unchanged
  repo costs one ``ls-remote``.
* **One bare mirror per repository and credential identity**, at
  ``root/mirrors/<sha256(normalize_url(url) + identity)[:16]>.git``, so spellings of the same URL
  share it, but two apps that reach it with different credentials (or none) do not. Fetches ask
  for as little as possible: the one ref, ``--depth 1``; then the commit by SHA; only then
  every branch and tag (the fallback for a ref that moved between ``ls-remote`` and fetch, a SHA
  the server will not serve by id, and short SHAs, which only a local object database can
  expand). The mirror stores no remote URL and no
  credentials; git gets the URL on the command line with any password lifted out (see ``git``).
* **Only an app that proved it can read a commit gets its files** (issue 13, finding 2: SHAs are
  visible to read-only users, so a SHA is no secret). The ``identity`` of credentials is an
  HMAC-SHA256 of their fields (and of a password embedded in the URL) under a random key kept in
  ``root/identity.key`` (mode 0600): directory names reveal nothing about a credential, not even
  a weak password to a dictionary. A mirror is written only by fetches from its own URL with its
  own credentials, so a commit *in that mirror* is proof that those credentials could read it.
  Checkouts stay shared on disk by SHA (a commit's files are the same whoever asks), but one is
  handed out only for a (mirror, SHA) pair in the proof set, which is filled only after the
  commit was found in, or fetched into, that app's own mirror. A full SHA therefore costs a fetch
  from the app's own URL with its own credentials the first time; after that the remembered
  proof keeps an unchanged repo at one ``ls-remote`` (none for a full SHA). Another tenant's
  SHA, asked for through a bogus URL, no credentials or other credentials, finds an empty mirror
  and a server that refuses the fetch.
* **Local repositories are refused** (``file://``) unless the cache is created with
  ``allow_local_repos`` (``--allow-local-repos``).
* **One read-only tree per commit**, at ``root/checkouts/<sha>``: extracted with ``read-tree`` +
  ``checkout-index`` into a temporary directory next to it (a private index file, the mirror as
  ``--git-dir``), made read-only, then renamed into place - atomic, so a checkout directory is
  either complete or absent, and a failure removes the temporary one. Unlike ``git archive`` this
  ignores ``export-ignore``/``export-subst``, so the files are exactly the commit's. There is no
  ``.git`` in it, symlinks stay symlinks (confinement is the renderer's check), and the size is
  bounded before anything is written (``git ls-tree -r -l``).
* **Read-only means mode bits**: files lose every ``w`` bit, directories become ``0555``. A
  process with ``CAP_DAC_OVERRIDE`` (root, as in the test containers) bypasses mode bits; the
  controller's own code never writes into a checkout, and a non-root deployment makes the bits
  binding. Attributes like ``chattr +i`` would stop root too, but need ``CAP_LINUX_IMMUTABLE``
  and file-system support a controller cannot count on.
* **Eviction is LRU with a grace period.** Beyond ``max_checkouts`` the least recently returned
  checkouts are removed (renamed aside first, so a half-deleted tree is never visible), except
  those returned in the last ``eviction_grace`` seconds: a caller may still be reading them.
  ``max_checkouts`` is therefore a soft bound. The grace period stands in for a refcount, which
  would need every caller to release what it got.
* **Concurrency**: operations on one mirror (fetch, extraction) are serialized by a lock per
  mirror (``repository_lock``); different repositories proceed in parallel. ``ls-remote``
  runs outside the lock. The cache's own bookkeeping is under one short-held lock.
* **Failures keep their class** from ``gitsync.source.git``; a full, read-only or unwritable disk
  under ``root`` is ``GitStorageError`` (transient), a tree over the bounds is
  ``GitRepositoryTooLargeError`` (terminal).
* **One listing serves many apps**: a thousand Applications following one repository would
  otherwise cost a thousand ``ls-remote`` round trips per refresh. ``resolve(..., max_age=s)``
  may take the refs from a listing of the same repository with the same credentials that
  *started* at most ``s`` seconds before the call (waiting for it if it is still running);
  with the default ``max_age=0`` every call lists for itself, so a caller that must see a push
  it was just told about (a webhook, a manual refresh) never gets an older answer. A failed
  listing is never shared: each waiter then lists for itself and gets its own error.
* **Observable without secrets**: ``requests`` counts ``(normalized url, "ls-remote" | "fetch")``
  and ``on_request(url, kind, seconds)`` is called after each, for metrics.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import hashlib
import hmac
import json
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar

import semantic_version
import structlog

from gitsync.application import is_semver_range
from gitsync.source.git import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_TIMEOUT_SECONDS,
    GitCommandFailedError,
    GitCredentials,
    GitInvalidRevisionError,
    GitNotFoundError,
    GitRepositoryTooLargeError,
    GitSession,
    GitStorageError,
    Remote,
    RemoteRefs,
    check_local_allowed,
    check_revision,
    fetch,
    list_refs,
    parse_remote,
    resolve_commit,
)
from gitsync.source.revision import (
    PEELED_SUFFIX,
    TAG_PREFIX,
    Revision,
    is_full_sha,
    is_short_sha,
    normalize_url,
    select_semver_tag,
    tag_names,
)

RequestKind = Literal["ls-remote", "fetch"]
RequestHook = Callable[[str, str, float], None]

DEFAULT_MAX_CHECKOUTS: Final = 256
DEFAULT_MAX_CHECKOUT_BYTES: Final = 1 << 30
DEFAULT_MAX_CHECKOUT_FILES: Final = 100_000
DEFAULT_EVICTION_GRACE_SECONDS: Final = 300.0
MAX_REVISION_LENGTH: Final = 255

_ALL_BRANCHES_AND_TAGS: Final = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_MIRROR_CONFIG: Final = """[gc]
\tauto = 0
[core]
\tlogAllRefUpdates = false
\tsymlinks = true
\tautocrlf = false
"""
# Extraction runs with these too, whatever a mirror's config says.
_CHECKOUT_CONFIG: Final = ("-c", "core.symlinks=true", "-c", "core.autocrlf=false")
_STORAGE_REASONS: Final = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_IDENTITY_KEY_FILE: Final = "identity.key"
_TMP_PREFIX: Final = ".tmp-"
_TRASH_PREFIX: Final = ".trash-"

_T = TypeVar("_T")
_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Checkout:
    """A commit's files at ``path`` (read-only, shared, owned by the cache) and what it is."""

    path: Path
    revision: Revision


@dataclass(frozen=True)
class _Target:
    """A target revision resolved: the commit, the ref for ``Revision.ref`` and what to fetch
    by name (``""``: fetch by SHA)."""

    sha: str
    ref: str
    fetch_ref: str


@dataclass
class _Listing:
    """One ``ls-remote`` of a repository: when it started, and its refs once done."""

    started: float
    done: threading.Event
    refs: RemoteRefs | None = None  # None when it failed (or is still running)


@dataclass(frozen=True)
class _CommitInfo:
    message: str
    author: str
    date: str


class SourceCache:
    """Local mirrors and per-commit checkouts under ``root``; thread-safe, one per process."""

    def __init__(
        self,
        root: Path,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_checkouts: int = DEFAULT_MAX_CHECKOUTS,
        max_checkout_bytes: int = DEFAULT_MAX_CHECKOUT_BYTES,
        max_checkout_files: int = DEFAULT_MAX_CHECKOUT_FILES,
        eviction_grace: float = DEFAULT_EVICTION_GRACE_SECONDS,
        on_request: RequestHook | None = None,
        allow_local_repos: bool = False,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        if max_checkouts < 1:
            raise ValueError(f"max_checkouts must be at least 1, got {max_checkouts}")
        self.root = Path(root).absolute()
        self.timeout = timeout
        self.max_checkouts = max_checkouts
        self.max_checkout_bytes = max_checkout_bytes
        self.max_checkout_files = max_checkout_files
        self.eviction_grace = eviction_grace
        self.on_request = on_request
        self.allow_local_repos = allow_local_repos
        self.connect_timeout = connect_timeout
        self.max_output_bytes = max_output_bytes
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()  # the bookkeeping below; never held while git runs
        self._repository_locks: dict[str, threading.Lock] = {}
        self._checkouts: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._commits: dict[str, _CommitInfo] = {}  # for commits with a checkout
        # (mirror key, sha): the mirror's credentials proved they can read the commit
        self._proofs: set[tuple[str, str]] = set()
        # the latest listing per (normalized url, credentials), for resolve(max_age=...)
        self._listings: dict[tuple[str, GitCredentials | None], _Listing] = {}
        self.mirrors_dir.mkdir(parents=True, exist_ok=True)
        self.checkouts_dir.mkdir(parents=True, exist_ok=True)
        self._identity_key = _identity_key(self.root / _IDENTITY_KEY_FILE)
        self._recover()

    # layout

    @property
    def mirrors_dir(self) -> Path:
        return self.root / "mirrors"

    @property
    def checkouts_dir(self) -> Path:
        return self.root / "checkouts"

    def mirror_path(self, url: str, credentials: GitCredentials | None = None) -> Path:
        """Where the bare mirror of ``url`` read with ``credentials`` lives (whether or not it
        exists yet)."""
        return self._mirror_path(self._mirror_key(parse_remote(url), credentials))

    def repository_lock(
        self, url: str, credentials: GitCredentials | None = None
    ) -> threading.Lock:
        """The lock that serializes work on the mirror of ``url`` read with ``credentials``."""
        return self._mirror_lock(self._mirror_key(parse_remote(url), credentials))

    def _mirror_lock(self, store: str) -> threading.Lock:
        with self._lock:
            return self._repository_locks.setdefault(store, threading.Lock())

    def _mirror_key(self, remote: Remote, credentials: GitCredentials | None) -> str:
        """The repository and who reads it: the normalized URL and the credentials' identity."""
        return f"{normalize_url(remote.url)}\n{self._identity(remote, credentials)}"

    def _identity(self, remote: Remote, credentials: GitCredentials | None) -> str:
        """A digest of every credential field (and of a password lifted out of the URL); equal
        for equal credentials, never reversible, and keyed so a weak password cannot be guessed
        from it."""
        fields = dataclasses.asdict(credentials or GitCredentials())
        # What the session will send: the credentials' user and password, else the URL's.
        fields["username"] = fields["username"] or remote.username
        fields["password"] = fields["password"] or remote.password
        material = json.dumps(sorted(fields.items()), default=str).encode()
        return hmac.new(self._identity_key, material, hashlib.sha256).hexdigest()[:32]

    def _session(self, remote: Remote, credentials: GitCredentials | None) -> GitSession:
        return GitSession(
            remote,
            credentials,
            self.timeout,
            allow_local=self.allow_local_repos,
            connect_timeout=self.connect_timeout,
            max_output_bytes=self.max_output_bytes,
        )

    # operations

    def resolve(
        self,
        url: str,
        target_revision: str,
        credentials: GitCredentials | None = None,
        *,
        max_age: float = 0.0,
    ) -> str:
        """The full commit SHA ``target_revision`` names in ``url`` right now.

        A branch, tag (annotated tags are peeled), full ref, ``HEAD`` or semver range costs one
        ``ls-remote`` - or none, when a listing of the same repository with the same credentials
        started at most ``max_age`` seconds ago (see the module docstring); a full SHA costs
        nothing (it is not checked against the remote); a short SHA is expanded in the local
        mirror, fetching every branch and tag if it is not there.
        """
        remote = parse_remote(url)
        check_local_allowed(remote, self.allow_local_repos)
        target = _check_target(target_revision)
        key = normalize_url(url)
        if is_short_sha(target):
            store = self._mirror_key(remote, credentials)
            try:
                with self._mirror_lock(store), self._session(remote, credentials) as s:
                    return self._expand_short_sha(s, key, self._ensure_mirror(s, store), target)
            except OSError as exc:
                raise _storage_error(exc, "resolving a revision of", remote.display) from exc
        return self._resolve(remote, key, target, credentials, max_age).sha

    def checkout(
        self, url: str, target_revision: str, credentials: GitCredentials | None = None
    ) -> Checkout:
        """Resolve ``target_revision``, make sure the commit is in the mirror (fetching only
        what is missing) and return its read-only checkout."""
        remote = parse_remote(url)
        check_local_allowed(remote, self.allow_local_repos)
        target = _check_target(target_revision)
        key = normalize_url(url)
        store = self._mirror_key(remote, credentials)
        resolved = None if is_short_sha(target) else self._resolve(remote, key, target, credentials)
        with self._mirror_lock(store):
            if resolved is not None and (reused := self._reuse(store, resolved)) is not None:
                return reused
            try:
                with self._session(remote, credentials) as session:
                    mirror = self._ensure_mirror(session, store)
                    if resolved is None:
                        sha = self._expand_short_sha(session, key, mirror, target)
                        resolved = _Target(sha, "", "")
                    # The commit is now in this app's own mirror: its credentials read it.
                    self._ensure_commit(session, key, mirror, resolved)
                    with self._lock:
                        self._proofs.add((store, resolved.sha))
                    info = self._commit_info(session, mirror, resolved.sha)
                    path = self._materialize(session, mirror, resolved.sha, info)
            except OSError as exc:
                raise _storage_error(exc, "checking out", remote.display) from exc
        self._evict(keep=resolved.sha)
        return Checkout(path, Revision(resolved.sha, resolved.ref, *_fields(info)))

    # resolving

    def _resolve(
        self,
        remote: Remote,
        key: str,
        target: str,
        credentials: GitCredentials | None,
        max_age: float = 0.0,
    ) -> _Target:
        if is_full_sha(target):
            return _Target(target.lower(), "", "")
        return _pick(self._list_refs(remote, key, credentials, max_age), target, remote.display)

    def _list_refs(
        self, remote: Remote, key: str, credentials: GitCredentials | None, max_age: float
    ) -> RemoteRefs:
        """The remote's refs from a listing started at most ``max_age`` seconds ago: a running
        or finished one of another caller, else a new one of our own."""
        ident = (key, credentials)
        with self._lock:
            asked = time.monotonic()
            shared = self._listings.get(ident)
            if shared is not None and max_age > 0 and shared.started >= asked - max_age:
                pass  # recent enough: wait for it below (a failed one is not used)
            else:
                shared = None
                own = _Listing(asked, threading.Event())
                self._listings[ident] = own
        if shared is not None:
            shared.done.wait()
            if shared.refs is not None:
                return shared.refs
            with self._lock:
                own = _Listing(time.monotonic(), threading.Event())
                if self._listings.get(ident) is shared:
                    self._listings[ident] = own
        try:
            with self._session(remote, credentials) as session:
                own.refs = self._request(key, "ls-remote", lambda: list_refs(session))
            return own.refs
        finally:
            own.done.set()

    def _expand_short_sha(self, session: GitSession, key: str, mirror: Path, target: str) -> str:
        try:
            return resolve_commit(session, mirror, target, target)
        except GitNotFoundError:
            pass
        self._fetch(session, key, mirror, list(_ALL_BRANCHES_AND_TAGS), everything=True)
        return resolve_commit(session, mirror, target, target)

    # the mirror

    def _mirror_path(self, store: str) -> Path:
        digest = hashlib.sha256(store.encode()).hexdigest()[:16]
        return self.mirrors_dir / f"{digest}.git"

    def _ensure_mirror(self, session: GitSession, store: str) -> Path:
        mirror = self._mirror_path(store)
        if (mirror / "HEAD").is_file():
            return mirror
        tmp = self.mirrors_dir / f"{_TMP_PREFIX}{mirror.stem}-{secrets.token_hex(4)}.git"
        try:
            assert session.directory is not None
            try:
                session.run(
                    ["init", "--quiet", "--bare", "--template=", "--", str(tmp)],
                    cwd=session.directory,
                    operation="init",
                )
            except GitCommandFailedError as exc:  # init only writes to our own disk
                reason = str(exc).rpartition(" failed: ")[2]
                raise GitStorageError(
                    f"cannot create the mirror of {session.remote.display} under "
                    f"{self.mirrors_dir}: {reason}",
                    url=session.remote.display,
                ) from exc
            with (tmp / "config").open("a") as config:
                config.write(_MIRROR_CONFIG)
            tmp.rename(mirror)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return mirror

    def _ensure_commit(self, session: GitSession, key: str, mirror: Path, target: _Target) -> None:
        """Fetch as little as will bring ``target.sha`` into the mirror; nothing if it is there."""
        if _has_commit(session, mirror, target.sha):
            return
        if target.fetch_ref:
            ref = target.fetch_ref
            refspec = f"+{ref}:{ref}" if ref.startswith("refs/") else ref
            self._fetch(session, key, mirror, [refspec], depth=1, revision=ref)
            if _has_commit(session, mirror, target.sha):
                return
        try:  # the ref moved since ls-remote, or a SHA was asked for: ask for the commit itself
            self._fetch(session, key, mirror, [target.sha], depth=1, revision=target.sha)
            if _has_commit(session, mirror, target.sha):
                return
        except GitNotFoundError:
            pass  # servers that serve advertised refs only ("not our ref")
        self._fetch(session, key, mirror, list(_ALL_BRANCHES_AND_TAGS), everything=True)
        resolve_commit(session, mirror, target.sha, target.ref or target.sha)

    def _fetch(
        self,
        session: GitSession,
        key: str,
        mirror: Path,
        refspecs: list[str],
        *,
        depth: int | None = None,
        everything: bool = False,
        revision: str | None = None,
    ) -> None:
        unshallow = everything and (mirror / "shallow").exists()
        try:
            self._request(
                key,
                "fetch",
                lambda: fetch(
                    session, mirror, refspecs, depth=depth, unshallow=unshallow, revision=revision
                ),
            )
        except BaseException:
            _clean_mirror(mirror)
            raise
        _log.debug("source fetched", url=key, refspecs=refspecs, depth=depth)

    def _commit_info(self, session: GitSession, mirror: Path, sha: str) -> _CommitInfo:
        with self._lock:
            cached = self._commits.get(sha)
        if cached is not None:
            return cached
        out = session.run(
            [f"--git-dir={mirror}", "log", "-1", "--format=%an <%ae>%x00%aI%x00%B", sha, "--"],
            cwd=mirror,
            operation="log",
        )
        author, _, rest = out.partition("\x00")
        date, _, message = rest.partition("\x00")
        return _CommitInfo(message.strip("\n"), author, date)

    # checkouts

    def _checkout_path(self, sha: str) -> Path:
        return self.checkouts_dir / sha

    def _reuse(self, store: str, target: _Target) -> Checkout | None:
        """The existing checkout of ``target`` if the mirror ``store`` proved it can read the
        commit and the checkout and its commit details are at hand."""
        path = self._checkout_path(target.sha)
        with self._lock:
            info = self._commits.get(target.sha)
            if (store, target.sha) not in self._proofs:
                return None
            if info is None or target.sha not in self._checkouts or not path.is_dir():
                return None
            self._touch(target.sha)
        return Checkout(path, Revision(target.sha, target.ref, *_fields(info)))

    def _touch(self, sha: str) -> None:
        """Mark ``sha``'s checkout as just returned (caller holds ``self._lock``)."""
        self._checkouts[sha] = time.monotonic()
        self._checkouts.move_to_end(sha)

    def _materialize(self, session: GitSession, mirror: Path, sha: str, info: _CommitInfo) -> Path:
        final = self._checkout_path(sha)
        with self._lock:
            if final.is_dir():
                self._touch(sha)
                self._commits[sha] = info
                return final
        files, size = self._measure(session, mirror, sha)
        display = session.remote.display
        if _short_of_space(self.checkouts_dir, size, files):
            raise GitStorageError(
                f"no space left on device while checking out {display} "
                f"({files} files, {size} bytes do not fit in {self.checkouts_dir})",
                url=display,
            )
        name = f"{_TMP_PREFIX}{sha}-{secrets.token_hex(4)}"
        tmp = self.checkouts_dir / name
        index = self.checkouts_dir / f"{name}.index"
        try:
            tmp.mkdir(mode=0o700)
            env = {"GIT_INDEX_FILE": str(index)}
            where = [f"--git-dir={mirror}", f"--work-tree={tmp}", *_CHECKOUT_CONFIG]
            try:
                session.run([*where, "read-tree", sha], cwd=tmp, operation="checkout", env=env)
                session.run(
                    [*where, "checkout-index", "--all", "--force"],
                    cwd=tmp,
                    operation="checkout",
                    env=env,
                )
            except GitCommandFailedError as exc:
                # checkout-index says "unable to write file x" without the reason; the disk does.
                if _short_of_space(self.checkouts_dir, min(size, 1 << 20), 1):
                    raise GitStorageError(
                        f"no space left on device while checking out {display}", url=display
                    ) from exc
                raise
            _make_read_only(tmp)
            with self._lock:
                if not final.is_dir():  # another repo with the same commit may have won
                    tmp.rename(final)
                self._touch(sha)
                self._commits[sha] = info
        finally:
            index.unlink(missing_ok=True)
            if tmp.exists():
                _remove_tree(tmp)
        return final

    def _measure(self, session: GitSession, mirror: Path, sha: str) -> tuple[int, int]:
        """(files, bytes) of the commit's tree; ``GitRepositoryTooLargeError`` over the bounds."""
        out = session.run(
            [f"--git-dir={mirror}", "ls-tree", "-r", "-l", "-z", "--full-tree", sha],
            cwd=mirror,
            operation="ls-tree",
        )
        files = total = 0
        for entry in out.split("\x00"):
            if not entry:
                continue
            files += 1
            fields = entry.partition("\t")[0].split()
            if len(fields) == 4 and fields[3].isdigit():
                total += int(fields[3])
            if files > self.max_checkout_files or total > self.max_checkout_bytes:
                url = session.remote.display
                raise GitRepositoryTooLargeError(
                    f"{url} at {sha[:12]} is too large to check out: more than "
                    f"{self.max_checkout_files} files or {self.max_checkout_bytes} bytes",
                    url=url,
                )
        return files, total

    def _evict(self, *, keep: str) -> None:
        victims: list[Path] = []
        with self._lock:
            excess = len(self._checkouts) - self.max_checkouts
            now = time.monotonic()
            for sha, used in list(self._checkouts.items()):  # least recently returned first
                if excess <= 0 or now - used < self.eviction_grace:
                    break  # the rest were returned more recently still
                if sha == keep:
                    continue
                trash = self.checkouts_dir / f"{_TRASH_PREFIX}{sha}-{secrets.token_hex(4)}"
                try:
                    self._checkout_path(sha).rename(trash)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    _log.warning("checkout eviction failed", sha=sha, error=str(exc))
                    continue
                else:
                    victims.append(trash)
                del self._checkouts[sha]
                self._commits.pop(sha, None)
                self._proofs = {proof for proof in self._proofs if proof[1] != sha}
                excess -= 1
        for trash in victims:
            _remove_tree(trash)

    def _recover(self) -> None:
        """Forget what a previous process left half done; adopt its finished checkouts."""
        for directory in (self.mirrors_dir, self.checkouts_dir):
            for leftover in directory.iterdir():
                if leftover.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
                    if leftover.is_dir() and not leftover.is_symlink():
                        _remove_tree(leftover)
                    else:
                        leftover.unlink(missing_ok=True)
        found = [
            (entry.stat().st_mtime, entry.name)
            for entry in self.checkouts_dir.iterdir()
            if is_full_sha(entry.name) and entry.is_dir()
        ]
        for _, sha in sorted(found):
            self._checkouts[sha] = float("-inf")  # evictable: nobody here has it

    # accounting

    def _request(self, key: str, kind: RequestKind, call: Callable[[], _T]) -> _T:
        with self._lock:
            self.requests[(key, kind)] += 1
        start = time.monotonic()
        try:
            return call()
        finally:
            if self.on_request is not None:
                try:
                    self.on_request(key, kind, time.monotonic() - start)
                except Exception as exc:  # a metrics hook must not fail a fetch
                    _log.warning("on_request hook failed", error=repr(exc))


# --- helpers ----------------------------------------------------------------------------------


def _check_target(target: str) -> str:
    """Validate a target revision before anything runs: a semver range must parse, anything
    else must be a ref name or SHA git will take."""
    if not isinstance(target, str) or not target:
        raise GitInvalidRevisionError("the revision is empty")
    if len(target) > MAX_REVISION_LENGTH:
        raise GitInvalidRevisionError(f"revision {target[:100]!r}... is too long")
    if is_semver_range(target):
        try:
            semantic_version.NpmSpec(target)
        except ValueError as exc:
            raise GitInvalidRevisionError(f"invalid semver range {target!r}: {exc}") from None
        return target
    return check_revision(target)


def _pick(advertised: RemoteRefs, target: str, display: str) -> _Target:
    """The advertised commit ``target`` names: a semver range's highest matching tag, ``HEAD``
    (reported as the branch it points to), a full ref, else ``refs/<x>``, a tag, a branch - the
    order ``git fetch`` uses, so a tag wins over a branch of the same name."""
    refs = advertised.refs
    if is_semver_range(target):
        tag = select_semver_tag(tag_names(refs), target)
        if tag is None:
            raise GitNotFoundError(
                f"no tag in {display} matches the semver range {target!r}", url=display
            )
        ref = fetch_ref = TAG_PREFIX + tag
    elif target == "HEAD":
        if "HEAD" not in refs:
            raise GitNotFoundError(
                f"revision 'HEAD' not found in {display} (is the repository empty?)", url=display
            )
        branch = advertised.symrefs.get("HEAD", "")
        if branch in refs and refs[branch] == refs["HEAD"]:
            ref = fetch_ref = branch
        else:
            ref = fetch_ref = "HEAD"
    else:
        candidates = (
            [target]
            if target.startswith("refs/")
            else [f"refs/{target}", f"refs/tags/{target}", f"refs/heads/{target}"]
        )
        found = next((name for name in candidates if name in refs), None)
        if found is None:
            raise GitNotFoundError(f"revision {target!r} not found in {display}", url=display)
        ref = fetch_ref = found
    sha = refs.get(ref + PEELED_SUFFIX, refs[ref])
    return _Target(sha.lower(), ref, fetch_ref)


def _identity_key(path: Path) -> bytes:
    """The cache's random identity key, created (mode 0600) on first use and kept with the
    mirrors it names, so a restarted controller finds its mirrors again."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
        path.unlink()  # torn by a crash while it was first written: start over
        return _identity_key(path)
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _has_commit(session: GitSession, mirror: Path, sha: str) -> bool:
    try:
        resolve_commit(session, mirror, sha, sha)
    except GitNotFoundError:
        return False
    return True


def _clean_mirror(mirror: Path) -> None:
    """Remove what a git that died in ``mirror`` left: temporary objects and packs (git does not
    remove them when it dies of a full disk) and lock files (left by the SIGKILL of a timeout),
    which would fill the disk or fail every later fetch. Only with the mirror's lock held: no
    other git is running in it."""
    objects = mirror / "objects"
    leftovers = [
        *objects.glob("??/tmp_obj_*"),
        *objects.glob("pack/tmp_*"),
        *objects.glob("incoming-*"),
        *mirror.glob("*.lock"),
        *(mirror / "refs").rglob("*.lock"),
    ]
    for leftover in leftovers:
        try:
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        except OSError as exc:
            _log.warning("mirror cleanup failed", path=str(leftover), error=str(exc))


def _short_of_space(directory: Path, size: int, files: int) -> bool:
    """Whether ``files`` files of ``size`` bytes in all clearly do not fit under ``directory``
    (each file takes at least a block; inodes only where the file system counts them)."""
    try:
        disk = os.statvfs(directory)
    except OSError:
        return False
    block = disk.f_frsize or disk.f_bsize or 4096
    needed = size + files * block
    inodes_short = disk.f_files > 0 and disk.f_favail < files
    return disk.f_bavail * block < needed or inodes_short


def _fields(info: _CommitInfo) -> tuple[str, str, str]:
    return info.message, info.author, info.date


def _make_read_only(top: Path) -> None:
    """Drop every ``w`` bit (files keep ``x``); directories become 0555. Symlinks are left
    alone: their own mode means nothing on Linux, and chmod would follow them."""
    for dirpath, _dirnames, filenames in os.walk(top, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, stat.S_IMODE(mode) & ~0o222)
        os.chmod(dirpath, 0o555)  # noqa: S103 - read and traverse only: that is the point


def _remove_tree(path: Path) -> None:
    """Delete a checkout made read-only (directories need ``w`` again first, unless root)."""
    for dirpath, _dirnames, _filenames in os.walk(path):
        try:
            os.chmod(dirpath, 0o700)
        except OSError:
            break
    shutil.rmtree(path, ignore_errors=True)


def _storage_error(exc: OSError, doing: str, display: str) -> GitStorageError:
    reason = _STORAGE_REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    return GitStorageError(f"{reason} while {doing} {display}", url=display)
