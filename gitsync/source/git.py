"""The Git adapter: list a remote's refs, fetch and check out a revision, safely, on gitpython.

This is the only module in gitsync that imports gitpython (``git``); everything else gets SHAs,
paths and the errors defined here (``gitsync.source.cache`` drives git through the ``GitSession``,
``list_refs`` and ``fetch`` defined here, so the rules below hold for its mirrors too). It is
shaped by what goes wrong in a controller that fetches other people's repositories with other
people's secrets:

* **Secrets never reach argv, URLs on disk or messages.** HTTPS passwords are handed over by a
  ``GIT_ASKPASS`` script that reads them from environment variables of that one git process; SSH
  keys, known_hosts and a CA bundle go to 0600 files in a private 0700 directory that is removed
  afterwards. Userinfo embedded in an http(s) URL is lifted out of it the same way, a user name
  alone included (GitHub documents ``https://<token>@github.com/...``). Every message and chained
  cause is passed through ``redact``, which shows an http(s) URL's userinfo as ``***@``.
* **Nothing of the host's Git or SSH setup leaks in.** ``HOME`` is the private directory,
  ``GIT_CONFIG_NOSYSTEM`` is set, ssh runs with ``-F /dev/null``; credential helpers, the user's
  ``~/.ssh`` and ``/etc/ssh/ssh_known_hosts`` are not consulted. Host keys are checked strictly
  unless the credentials explicitly say otherwise.
* **Input is not trusted.** URLs and revisions that start with ``-`` (option injection) and URL
  schemes other than https, http, ssh, scp-like ``user@host:path`` and file are refused before git
  runs; ``GIT_ALLOW_PROTOCOL`` repeats the allow-list for anything git itself may follow.
* **Local repositories are the operator's to allow.** ``file://`` URLs read any repository on the
  controller's host, so a ``GitSession`` refuses them (and ``GIT_ALLOW_PROTOCOL`` leaves ``file``
  out) unless it is created with ``allow_local=True`` (``--allow-local-repos``).
* **Every operation has a deadline, and a silent server is given up on early.** git runs in its
  own process group, killed as a whole when the deadline passes, so a hung server cannot wedge a
  reconcile worker. Separately, a server that accepts the connection and then says nothing is
  dropped after ``connect_timeout`` (default 10 s): curl's low-speed limit (1 byte/s over that
  time) for HTTP, ``ConnectTimeout`` (which also bounds the banner exchange) and server-alive
  probes for SSH. A real Git server is never silent that long: upload-pack sends keep-alives
  while it builds a pack.
* **Output is bounded.** stdout and stderr are read incrementally; a child that writes more than
  ``max_output_bytes`` (stderr: ``MAX_STDERR_BYTES``) is killed with its process group and the
  operation fails with ``GitOutputTooLargeError`` naming the limit, so a two-million-ref
  advertisement costs at most the limit in memory, not the whole listing.
* **Children see only what they need and die with the controller.** A git child's environment
  is ``PATH``, the proxy and CA variables named in ``INHERITED_VARIABLES`` and the session's own
  variables - never the controller's (webhook secrets, default credentials, ``KUBECONFIG``).
  Every live session is registered: ``end_all_sessions`` (run at interpreter exit and by
  ``serve`` when it is stopped) kills their process groups and removes their directories, so an
  SSH key file does not outlive a SIGTERM.
* **Failures are classified** from git's stderr into errors named by what the loop does next:
  terminal (``GitAuthError``, ``GitHostKeyError``, ``GitNotFoundError``, invalid input,
  ``GitRepositoryTooLargeError``) or transient (``GitUnreachableError``, ``GitTimeoutError``,
  ``GitStorageError`` for a full or read-only local disk, and ``GitCommandFailedError`` for what
  is not recognised).

Each operation runs in a ``GitSession`` (private directory + environment + deadline). The names
without a leading underscore that ``gitsync.source`` does not re-export (``GitSession``,
``parse_remote``, ``list_refs``, ``fetch``, ...) are for the rest of this package only.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import selectors
import shlex
import shutil
import signal
import string
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final
from urllib.parse import unquote, urlsplit

import git

from gitsync.errors import GitsyncError, TerminalError, TransientError

DEFAULT_TIMEOUT_SECONDS: Final = 60.0
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_MAX_OUTPUT_BYTES: Final = 32 << 20  # a 2 M-ref advertisement is about 110 MiB
MAX_STDERR_BYTES: Final = 1 << 20
# What a git child may inherit from the controller: how to reach the network and whom to trust.
INHERITED_VARIABLES: Final = (
    "PATH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
)
ALLOWED_SCHEMES: Final = frozenset({"https", "http", "ssh", "file"})
DEFAULT_HTTP_USERNAME: Final = "git"  # when only a token is given; most forges ignore the name
REDACTED: Final = "***"
_MIN_REDACTED_LENGTH: Final = 8  # shorter literals are not redacted inside free text

_ASKPASS_USERNAME_ENV: Final = "GITSYNC_GIT_USERNAME"
_ASKPASS_PASSWORD_ENV: Final = "GITSYNC_GIT_PASSWORD"  # noqa: S105 - a variable name, not a value
_ASKPASS_SCRIPT: Final = f"""#!/bin/sh
# git asks "Username for '...': " or "Password for '...': "; answer from this process's env only.
case "$1" in
  Username*) printf '%s\\n' "${_ASKPASS_USERNAME_ENV}" ;;
  *) printf '%s\\n' "${_ASKPASS_PASSWORD_ENV}" ;;
esac
"""

# Config that must win over anything a repository or the environment might carry.
_GIT_CONFIG_OVERRIDES: Final = (
    "credential.helper=",
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "submodule.recurse=false",
    "advice.detachedHead=false",
    "protocol.version=2",
)

_SCP_LIKE_URL = re.compile(
    r"(?P<user>[A-Za-z0-9._~+][A-Za-z0-9._~+-]*)@"
    r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):(?P<path>[^\s]+)"
)
# A URL's scheme (RFC 3986: a letter, then letters, digits, "+", "-", "."), found by a scan back
# from "://" (``_url_scheme_start``) rather than by a regex: searched for in free text, a pattern
# that starts with the scheme retries at every letter of a long word, which is quadratic.
_SCHEME_FIRST_CHARACTERS: Final = frozenset(string.ascii_letters)
_SCHEME_CHARACTERS: Final = frozenset(string.ascii_letters + string.digits + "+-.")
# The userinfo after "://", matched only where a "://" is (so once per URL, in linear time).
# Greedy up to the last "@" before the path, so an unescaped "@" in a password is covered too.
_URL_USERINFO = re.compile(r"(?P<user>[^/\s:?#]*)(?P<password>:[^/\s?#]*)?@")
# Schemes whose user name is part of the address (``ssh://git@host/x``), not a secret.
_ADDRESS_USER_SCHEMES: Final = frozenset({"ssh", "git+ssh", "ssh+git"})
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")
_INVALID_REVISION_CHARACTERS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_HEX = re.compile(r"[0-9a-fA-F]{7,64}")


# --- credentials and redaction ----------------------------------------------------------------


@dataclass(frozen=True)
class GitCredentials:
    """How to authenticate to a remote. HTTP(S) uses ``username``/``password`` (a token goes in
    ``password``); SSH uses ``ssh_private_key`` (unencrypted OpenSSH or PEM text) checked against
    ``known_hosts`` (known_hosts file text) unless ``insecure_ignore_host_key``. ``ca_data``
    (PEM certificates) is the CA bundle https servers are verified against instead of the
    system's."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssh_private_key: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    insecure_ignore_host_key: bool = False
    ca_data: str | None = None

    def __repr__(self) -> str:
        # Only whether secrets are set, never their values.
        return (
            f"GitCredentials(username={self.username!r}, "
            f"password={'<set>' if self.password else None}, "
            f"ssh_private_key={'<set>' if self.ssh_private_key else None}, "
            f"known_hosts={_count_known_hosts(self.known_hosts)}, "
            f"insecure_ignore_host_key={self.insecure_ignore_host_key}, "
            f"ca_data={'<set>' if self.ca_data else None})"
        )

    __str__ = __repr__

    def secrets(self) -> list[str]:
        """Values that must never appear in a message: the password, and the key line by line
        (its ``-----BEGIN/END`` armour lines are not secret and are left alone)."""
        values = [self.password] if self.password else []
        if self.ssh_private_key:
            lines = [line.strip() for line in self.ssh_private_key.splitlines()]
            values += [
                line
                for line in lines
                if len(line) >= _MIN_REDACTED_LENGTH and not line.startswith("-----")
            ]
        return values


def _count_known_hosts(text: str | None) -> str | None:
    if text is None:
        return None
    entries = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return f"<{len(entries)} entries>"


def redact_url(url: str) -> str:
    """``url`` (or every URL in a text) fit to show: for http(s) and other schemes the whole
    userinfo goes, since a token is often the user name (``https://ghp_x@h/r`` and
    ``https://u:pw@h/r`` both show as ``https://***@h/r``); for ssh the user name is part of the
    address and stays, a password goes (``ssh://git:***@h/r``). scp-like ``git@host:path`` has no
    password and is left as it is.

    Linear in the length of the text, whatever it holds (status messages quote tenants' text):
    each "://" is found once, its scheme is scanned back to and its userinfo matched from it, and
    none of these scans reaches past a neighbouring "://"."""
    shown: list[str] = []
    copied = 0  # url[:copied] is in ``shown``
    separator = url.find("://")
    while separator != -1:
        scheme_start = _url_scheme_start(url, separator)
        userinfo = None if scheme_start is None else _URL_USERINFO.match(url, separator + 3)
        if scheme_start is not None and userinfo is not None:
            scheme = url[scheme_start:separator]
            shown += [url[copied:scheme_start], _redacted_userinfo(scheme, userinfo)]
            copied = userinfo.end()
        separator = url.find("://", separator + 3)  # a userinfo holds no "/", so no "://"
    shown.append(url[copied:])
    return "".join(shown)


def _url_scheme_start(text: str, separator: int) -> int | None:
    """Where the scheme ending at ``text[separator]`` (a "://") starts: the run of scheme
    characters before it, from its first letter; None when the run has no letter. (The run
    never reaches into an earlier match: that ends with "@", not a scheme character.)"""
    start = separator
    while start > 0 and text[start - 1] in _SCHEME_CHARACTERS:
        start -= 1
    while start < separator and text[start] not in _SCHEME_FIRST_CHARACTERS:
        start += 1
    return start if start < separator else None


def _redacted_userinfo(scheme: str, userinfo: re.Match[str]) -> str:
    if scheme.lower() in _ADDRESS_USER_SCHEMES:
        password = f":{REDACTED}" if userinfo["password"] is not None else ""
        return f"{scheme}://{userinfo['user']}{password}@"
    return f"{scheme}://{REDACTED}@"


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with passwords in URLs and every literal ``secrets`` value replaced by ``***``."""
    text = redact_url(text)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


# --- errors -----------------------------------------------------------------------------------


class GitSourceError(GitsyncError):
    """Base of the Git adapter's errors; ``url`` is already redacted."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class GitInvalidURLError(GitSourceError, TerminalError):
    """The URL is not one gitsync will hand to git (scheme, option injection, characters)."""


class GitInvalidRevisionError(GitSourceError, TerminalError):
    """The revision is not a branch, tag, ref or SHA gitsync will hand to git."""


class GitAuthError(GitSourceError, TerminalError):
    """The server refused the credentials (or none were given and it wants some)."""


class GitHostKeyError(GitSourceError, TerminalError):
    """The SSH server's host key is not in known_hosts, or does not match it."""


class GitNotFoundError(GitSourceError, TerminalError):
    """The repository or the revision does not exist."""


class GitUnreachableError(GitSourceError, TransientError):
    """No usable answer: connection refused, DNS, 5xx, or something that is not a Git server."""


class GitTimeoutError(GitSourceError, TransientError):
    """The operation did not finish before its deadline and was killed."""


class GitCommandFailedError(GitSourceError, TransientError):
    """git failed in a way not recognised above; retried with backoff."""


class GitStorageError(GitSourceError, TransientError):
    """The local disk refused: no space left, quota, read-only file system, permissions."""


class GitRepositoryTooLargeError(GitSourceError, TerminalError):
    """A checkout would exceed the configured size or file-count bound."""


class GitOutputTooLargeError(GitSourceError, TerminalError):
    """A git child wrote more than the output limit (a huge ref advertisement, say)."""


class GitLocalRepositoryError(GitInvalidURLError):
    """A ``file://`` repository while the operator has not allowed local repositories."""


# --- remotes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """A validated remote: the URL git gets (no http(s) userinfo in it) and what messages may
    show. Over http(s) ``username`` may be a token, so neither it nor the password is in the
    repr."""

    url: str
    display: str
    host: str
    transport: str  # "http", "ssh" or "file"
    username: str | None = field(repr=False)
    password: str | None = field(default=None, repr=False)


@functools.lru_cache(maxsize=4096)  # a pure function every refresh of every app calls twice
def parse_remote(url: str) -> Remote:
    if not isinstance(url, str) or not url:
        raise GitInvalidURLError("the repository URL is empty")
    display = redact_url(url)
    if url.startswith("-"):
        raise GitInvalidURLError(
            f"invalid repository URL {display!r}: must not start with '-'", url=display
        )
    if _UNSAFE_CHARACTERS.search(url):
        raise GitInvalidURLError(
            f"invalid repository URL {display!r}: contains whitespace or control characters",
            url=display,
        )
    if "://" not in url:
        scp = _SCP_LIKE_URL.fullmatch(url)
        if scp is None:
            raise GitInvalidURLError(
                f"unsupported repository URL {display!r}: use https://, http://, ssh://, "
                "user@host:path or file://",
                url=display,
            )
        return Remote(url, display, scp["host"], "ssh", scp["user"])

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise GitInvalidURLError(
            f"unsupported URL scheme {parts.scheme!r} in {display!r}: "
            "use https, http, ssh, scp-like user@host:path or file",
            url=display,
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise GitInvalidURLError(
                f"invalid file URL {display!r}: expected file:///absolute/path", url=display
            )
        return Remote(url, display, "localhost", "file", None)

    try:
        hostname, port = parts.hostname, parts.port
    except ValueError as exc:
        raise GitInvalidURLError(
            f"invalid repository URL {display!r}: {exc}", url=display
        ) from None
    if not hostname or hostname.startswith("-"):
        raise GitInvalidURLError(f"invalid host in repository URL {display!r}", url=display)
    if parts.username is not None and parts.username.startswith("-"):
        raise GitInvalidURLError(
            f"invalid user in repository URL {display!r}: must not start with '-'", url=display
        )
    host = f"{hostname}:{port}" if port else hostname
    transport = "ssh" if scheme == "ssh" else "http"
    if "@" not in parts.netloc:
        return Remote(url, display, host, transport, None)
    # Lift the userinfo out of the URL: git would put it in argv and .git/config. Over http(s)
    # all of it goes (a token is often the user name); ssh keeps the user, part of the address.
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user_part, has_password, password_part = userinfo.partition(":")
    username = unquote(user_part) if user_part else None
    password = unquote(password_part) if has_password else None
    kept = f"{user_part}@" if transport == "ssh" and user_part else ""
    stripped = parts._replace(netloc=f"{kept}{hostport}").geturl()
    return Remote(stripped, display, host, transport, username, password)


def _url_user_secret(remote: Remote) -> list[str]:
    """An http(s) URL's user name, as a value to redact when it looks like a token (long enough
    that replacing it cannot garble a message: ``git`` or ``bob`` are left alone)."""
    user = remote.username
    if remote.transport == "http" and user and len(user) >= _MIN_REDACTED_LENGTH:
        return [user]
    return []


def check_revision(revision: str) -> str:
    shown = revision[:100]
    if not revision:
        raise GitInvalidRevisionError("the revision is empty")
    if revision.startswith("-"):
        raise GitInvalidRevisionError(f"invalid revision {shown!r}: must not start with '-'")
    if (
        _INVALID_REVISION_CHARACTERS.search(revision)
        or ".." in revision
        or "@{" in revision
        or revision.endswith(("/", ".", ".lock"))
    ):
        raise GitInvalidRevisionError(
            f"invalid revision {shown!r}: expected a branch, tag, ref name or commit SHA"
        )
    return revision


def check_local_allowed(remote: Remote, allow_local: bool) -> None:
    """``GitLocalRepositoryError`` for a ``file://`` remote unless local repositories are allowed:
    one would read any repository on the controller's host."""
    if remote.transport == "file" and not allow_local:
        raise GitLocalRepositoryError(
            f"local repository {remote.display!r} refused: file:// repositories are not "
            "allowed (the operator may allow them with --allow-local-repos)",
            url=remote.display,
        )


# --- running git ------------------------------------------------------------------------------


class GitSession:
    """One operation's private directory, environment and deadline.

    The directory (mode 0700) holds HOME, the askpass script and the SSH key and known_hosts
    files; it is removed when the session ends, whatever happened - and by
    ``end_all_sessions`` when the process is stopped while the session is still open.
    """

    def __init__(
        self,
        remote: Remote,
        credentials: GitCredentials | None,
        timeout: float,
        *,
        allow_local: bool = False,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        check_local_allowed(remote, allow_local)
        self.remote = remote
        self.credentials = credentials or GitCredentials()
        self.timeout = timeout
        self.allow_local = allow_local
        self.connect_timeout = max(1.0, min(connect_timeout, timeout))
        self.max_output_bytes = max_output_bytes
        self.deadline = time.monotonic() + timeout
        self.secrets = [
            *self.credentials.secrets(),
            *([remote.password] if remote.password else []),
            *_url_user_secret(remote),
        ]
        self.directory: Path | None = None
        self.env: dict[str, str] = {}
        self._children: set[subprocess.Popen[bytes]] = set()

    def __enter__(self) -> GitSession:
        with _LIVE_LOCK:
            if _CLOSED.is_set():
                raise GitCommandFailedError(
                    f"git for {self.remote.display} not started: gitsync is stopping",
                    url=self.remote.display,
                )
            self.directory = Path(tempfile.mkdtemp(prefix="gitsync-git-"))
            _LIVE_SESSIONS.add(self)
        try:
            self.env = self._environment(self.directory)
        except BaseException:
            self._end()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end()

    def _end(self) -> None:
        """Kill what is still running and remove the directory (idempotent, any thread)."""
        with _LIVE_LOCK:
            children = list(self._children)
            self._children.clear()
            directory, self.directory = self.directory, None
        for proc in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        with _LIVE_LOCK:
            _LIVE_SESSIONS.discard(self)

    def _environment(self, directory: Path) -> dict[str, str]:
        home = directory / "home"
        home.mkdir(mode=0o700)
        askpass = directory / "askpass.sh"
        _write_private(askpass, _ASKPASS_SCRIPT, mode=0o700)
        credentials = self.credentials
        password = credentials.password or self.remote.password or ""
        username = credentials.username or self.remote.username or ""
        if password and not username:
            username = DEFAULT_HTTP_USERNAME
        env = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_PARAMETERS": "",
            "GIT_CONFIG_COUNT": "0",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": str(askpass),
            "SSH_ASKPASS": str(askpass),
            "SSH_AUTH_SOCK": "",
            "GIT_ALLOW_PROTOCOL": "http:https:ssh:file" if self.allow_local else "http:https:ssh",
            # curl has no overall timeout and no first-byte timeout: give up on a connection
            # that moves nothing for connect_timeout (the deadline bounds the whole transfer).
            "GIT_HTTP_LOW_SPEED_LIMIT": "1",
            "GIT_HTTP_LOW_SPEED_TIME": str(max(1, int(self.connect_timeout))),
            _ASKPASS_USERNAME_ENV: username,
            _ASKPASS_PASSWORD_ENV: password,
            "GIT_SSH_COMMAND": self._ssh_command(directory),
            "GIT_SSH_VARIANT": "ssh",
            "LC_ALL": "C",
            "LANGUAGE": "C",
            **self._tls_environment(directory),
        }
        return env

    def _tls_environment(self, directory: Path) -> dict[str, str]:
        """The credentials' CA bundle as a 0600 file in the private directory, for curl."""
        if not self.credentials.ca_data:
            return {}
        bundle = directory / "ca.pem"
        _write_private(bundle, self.credentials.ca_data.strip() + "\n", mode=0o600)
        return {"GIT_SSL_CAINFO": str(bundle)}

    def _ssh_command(self, directory: Path) -> str:
        credentials = self.credentials
        identity = ["-o", "PubkeyAuthentication=no"]
        if credentials.ssh_private_key:
            key = directory / "identity"
            # ssh rejects a key file without its final newline; CRLF comes from pasted secrets.
            text = credentials.ssh_private_key.replace("\r\n", "\n").strip() + "\n"
            _write_private(key, text, mode=0o600)
            identity = ["-i", str(key)]
        options = [
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            # Also bounds the banner exchange: a server that accepts and never answers.
            f"ConnectTimeout={max(1, int(self.connect_timeout))}",
            f"ServerAliveInterval={max(1, int(self.connect_timeout) // 2)}",
            "ServerAliveCountMax=2",
            "UpdateHostKeys=no",
            f"GlobalKnownHostsFile={os.devnull}",
        ]
        if credentials.insecure_ignore_host_key:
            options += ["StrictHostKeyChecking=no", f"UserKnownHostsFile={os.devnull}"]
        else:
            known_hosts = directory / "known_hosts"
            _write_private(known_hosts, (credentials.known_hosts or "").strip() + "\n", mode=0o600)
            options += ["StrictHostKeyChecking=yes", f"UserKnownHostsFile={known_hosts}"]
        return shlex.join(
            ["ssh", "-F", os.devnull, *identity, *[part for o in options for part in ("-o", o)]]
        )

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(
        self,
        args: list[str],
        *,
        cwd: Path,
        operation: str,
        revision: str | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Run ``git <overrides> <args>`` before the deadline; return stdout or raise classified.

        ``env`` adds variables (``GIT_INDEX_FILE``) to the session's environment for this run.
        """
        command = ["git"]
        for override in _GIT_CONFIG_OVERRIDES:
            command += ["-c", override]
        command += args
        shown = [redact(part, self.secrets) for part in command]
        remaining = self.remaining()
        if remaining <= 0:
            raise self._timeout_error(operation)
        inherited = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
        inherited.setdefault("PATH", os.defpath)
        with _LIVE_LOCK:
            if self.directory is None:  # ended (by end_all_sessions) before this run
                raise GitCommandFailedError(f"git {operation} could not be started: stopping")
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env={**inherited, **self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a process group we can kill as a whole
            )
            self._children.add(proc)
        try:
            stdout, stderr, overflow = _read_bounded(
                proc, self.deadline, self.max_output_bytes, MAX_STDERR_BYTES
            )
        finally:
            _kill_group(proc)  # helpers (ssh, remote-http) that outlived git, or all at a limit
            with _LIVE_LOCK:
                self._children.discard(proc)
        if overflow == "timeout":
            timed_out = subprocess.TimeoutExpired(shown, self.timeout)
            raise self._timeout_error(operation) from timed_out
        if overflow:
            limit = self.max_output_bytes if overflow == "stdout" else MAX_STDERR_BYTES
            raise GitOutputTooLargeError(
                f"git {operation} of {self.remote.display} was stopped: it wrote more than the "
                f"limit of {limit} bytes to {overflow} (--git-max-output-bytes)",
                url=self.remote.display,
            )
        out = stdout.decode(errors="replace")
        if proc.returncode == 0:
            return out
        err = redact(stderr.decode(errors="replace"), self.secrets)
        cause = git.GitCommandError(shown, proc.returncode, err)
        raise _classify(err, self.remote, operation, revision) from cause

    def _timeout_error(self, operation: str) -> GitTimeoutError:
        return GitTimeoutError(
            f"git {operation} of {self.remote.display} timed out after {self.timeout:g}s",
            url=self.remote.display,
        )


def _write_private(path: Path, text: str, *, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _read_bounded(
    proc: subprocess.Popen[bytes], deadline: float, max_stdout: int, max_stderr: int
) -> tuple[bytes, bytes, str]:
    """Both pipes of ``proc`` until it closes them, read as they come: (stdout, stderr, why it
    was cut short: ``""``, ``"timeout"``, ``"stdout"`` or ``"stderr"``). Memory never exceeds
    the limits by more than one read."""
    assert proc.stdout is not None and proc.stderr is not None
    buffers = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    limits = {
        proc.stdout.fileno(): (max_stdout, "stdout"),
        proc.stderr.fileno(): (max_stderr, "stderr"),
    }
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"", b"", "timeout"
            for key, _ in selector.select(timeout=remaining):
                fd = int(key.fd)
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    selector.unregister(fd)
                    continue
                buffers[fd] += chunk
                limit, name = limits[fd]
                if len(buffers[fd]) > limit:
                    return b"", b"", name
    remaining = deadline - time.monotonic()
    try:
        proc.wait(timeout=max(remaining, 0.001))
    except subprocess.TimeoutExpired:
        return b"", b"", "timeout"
    return bytes(buffers[proc.stdout.fileno()]), bytes(buffers[proc.stderr.fileno()]), ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


# Open sessions, so that stopping the process can end them (see end_all_sessions).
_LIVE_LOCK: Final = threading.Lock()
_LIVE_SESSIONS: Final[set[GitSession]] = set()
_CLOSED: Final = threading.Event()


def end_all_sessions() -> int:
    """Kill every live git child's process group and remove every open session's directory
    (SSH keys included), and refuse new sessions from then on; return how many were ended.
    For shutdown only: ``serve`` calls it when it is stopped, and it runs at interpreter exit
    (worker threads may still be alive then, hence the refusal)."""
    with _LIVE_LOCK:
        _CLOSED.set()
        sessions = list(_LIVE_SESSIONS)
    for session in sessions:
        session._end()
    return len(sessions)


atexit.register(end_all_sessions)


# --- classification ---------------------------------------------------------------------------

_HOST_KEY_CHANGED = re.compile(
    r"remote host identification has changed|host key for .* has changed", re.I
)
_HOST_KEY_UNKNOWN = re.compile(r"host key verification failed|no \S+ host key is known for", re.I)
_NOT_A_GIT_SERVER = re.compile(
    r"not valid: is this a git repository|invalid server response|"
    r"protocol error: bad|bad line length|unexpected (content-type|response)|"
    r"does not appear to be a smart git server|expected flush after ref listing",
    re.I,
)
_AUTH = re.compile(
    r"authentication failed|could not read (username|password)|permission denied \(|"
    r"permission denied, please try again|returned error: 40[13]\b|"
    r"invalid username or password|load key .*: (invalid format|incorrect passphrase)|"
    r"error in libcrypto",
    re.I,
)
_REVISION_NOT_FOUND = re.compile(
    r"couldn't find remote ref|not our ref|unadvertised object|remote ref .* not found", re.I
)
_REPO_NOT_FOUND = re.compile(
    r"repository '.*' not found|does not appear to be a git repository|returned error: 404\b|"
    r"repository not found|no such repository",
    re.I,
)
# Our own disk, not the server's: lines from the remote side ("remote: ...") are not looked at,
# and ssh's "Permission denied (publickey)" / "..., please try again" are authentication.
_STORAGE = re.compile(
    r"(?P<reason>no space left on device|disk quota exceeded|read-only file system|"
    r"insufficient permission|permission denied(?! \(|, please))",
    re.I,
)
_SERVER_ERROR = re.compile(r"returned error: (5\d\d)\b", re.I)
_UNREACHABLE = re.compile(
    r"could not resolve host|name or service not known|temporary failure in name resolution|"
    r"connection refused|couldn't connect to server|failed to connect|connection timed out|"
    r"operation timed out|no route to host|network is unreachable|connection reset|"
    r"connection closed by|early eof|remote end hung up|ssl|server certificate",
    re.I,
)


def _classify(
    stderr: str, remote: Remote, operation: str, revision: str | None = None
) -> GitSourceError:
    """Turn git's (already redacted) stderr into the error the reconcile loop acts on."""
    url = remote.display
    if _HOST_KEY_CHANGED.search(stderr):
        return GitHostKeyError(
            f"host key verification failed for {remote.host}: "
            "the server's key does not match the one in known_hosts",
            url=url,
        )
    if _HOST_KEY_UNKNOWN.search(stderr):
        return GitHostKeyError(
            f"host key verification failed for {remote.host}: "
            "the server's key is not in known_hosts",
            url=url,
        )
    if _NOT_A_GIT_SERVER.search(stderr):
        return GitUnreachableError(f"{url} did not answer like a Git server", url=url)
    if storage := storage_problem(stderr):
        return GitStorageError(f"{storage} while {_doing(operation)} {url}", url=url)
    if _AUTH.search(stderr):
        return GitAuthError(f"authentication failed for {url}", url=url)
    if _REVISION_NOT_FOUND.search(stderr):
        shown = f"revision {revision[:100]!r}" if revision else "revision"
        return GitNotFoundError(f"{shown} not found in {url}", url=url)
    if _REPO_NOT_FOUND.search(stderr):
        return GitNotFoundError(f"repository {url} not found", url=url)
    if server_error := _SERVER_ERROR.search(stderr):
        return GitUnreachableError(
            f"{url} did not answer like a Git server (HTTP {server_error.group(1)})", url=url
        )
    if re.search(r"operation too slow", stderr, re.I):  # curl's low-speed limit
        return GitTimeoutError(
            f"git {operation} of {url} timed out: the server sent nothing within the connect "
            "timeout (--git-connect-timeout)",
            url=url,
        )
    if _UNREACHABLE.search(stderr):
        return GitUnreachableError(
            f"{url} is unreachable: {_reason(stderr, _UNREACHABLE)}", url=url
        )
    return GitCommandFailedError(f"git {operation} of {url} failed: {_reason(stderr)}", url=url)


def storage_problem(stderr: str) -> str | None:
    """What the local disk said (``no space left on device``), if git's stderr shows it refused."""
    for line in stderr.splitlines():
        if re.match(r"\s*(remote:|fatal: remote error|error: remote)", line, re.I):
            continue
        if match := _STORAGE.search(line):
            return match["reason"].lower()
    return None


_DOING: Final = {
    "fetch": "fetching",
    "checkout": "checking out",
    "clone": "cloning",
    "init": "setting up the mirror of",
    "ls-remote": "listing the refs of",
}


def _doing(operation: str) -> str:
    return _DOING.get(operation, f"running git {operation} for")


def _reason(stderr: str, pattern: re.Pattern[str] | None = None) -> str:
    """The line of stderr that says what happened, without git's prefixes and the URL again."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    matching = [line for line in lines if pattern is None or pattern.search(line)]
    line = (matching or lines or ["no error output"])[-1]
    line = re.sub(r"^(fatal|error|ssh|remote): ", "", line)
    line = re.sub(r"^unable to access '[^']*': ", "", line)
    return line[:300]


# --- operations -------------------------------------------------------------------------------
# The shared steps (list refs, fetch, resolve a commit) take a ``GitSession``, so ls_remote, clone
# and the mirrors of ``gitsync.source.cache`` authenticate, time out and fail the same way.


@dataclass(frozen=True)
class RemoteRefs:
    """What ``ls-remote --symref`` advertised: ref name -> SHA (with peeled ``^{}`` entries of
    annotated tags) and symbolic refs, e.g. ``{"HEAD": "refs/heads/main"}``."""

    refs: dict[str, str]
    symrefs: dict[str, str]


def list_refs(session: GitSession) -> RemoteRefs:
    """One ``ls-remote`` round trip to the session's remote."""
    assert session.directory is not None
    out = session.run(
        ["ls-remote", "--symref", "--", session.remote.url],
        cwd=session.directory,
        operation="ls-remote",
    )
    refs: dict[str, str] = {}
    symrefs: dict[str, str] = {}
    for line in out.splitlines():
        value, _, name = line.partition("\t")
        value, name = value.strip(), name.strip()
        if not value or not name:
            continue
        if value.startswith("ref: "):
            symrefs[name] = value.removeprefix("ref: ").strip()
        else:
            refs[name] = value
    return RemoteRefs(refs, symrefs)


def fetch(
    session: GitSession,
    repo: Path,
    refspecs: list[str],
    *,
    source: str | None = None,
    depth: int | None = None,
    unshallow: bool = False,
    revision: str | None = None,
) -> None:
    """Fetch ``refspecs`` from ``source`` (default: the session's remote URL) into the repository
    whose git directory is ``repo``; no tags beyond the refspecs, no submodules, no auto gc.

    The received pack is always kept as a pack (``fetch.unpackLimit=1``): git writes it to a
    temporary file and renames it when complete, so a fetch that dies of a full disk leaves
    nothing behind. Small fetches are otherwise unpacked into loose objects one by one - commit
    first - and a full disk then left a commit whose files were missing: the commit looked
    fetched, so no later fetch repaired it and every checkout failed after space returned."""
    args = [f"--git-dir={repo}", "-c", "fetch.unpackLimit=1", "-c", "transfer.unpackLimit=1"]
    args += ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules"]
    args += ["--no-auto-gc"]
    if depth is not None:
        args += ["--depth", str(depth)]
    if unshallow:
        args.append("--unshallow")
    args += ["--", source or session.remote.url, *refspecs]
    session.run(args, cwd=repo, operation="fetch", revision=revision)


def resolve_commit(session: GitSession, repo: Path, rev: str, target: str) -> str:
    """The commit ``rev`` names in the local repository ``repo`` (its git directory), or
    ``GitNotFoundError`` naming ``target``."""
    try:
        out = session.run(
            [
                f"--git-dir={repo}",
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                f"{rev}^{{commit}}",
            ],
            cwd=repo,
            operation="rev-parse",
        )
    except GitCommandFailedError as exc:  # rev-parse --verify --quiet: "no such commit"
        raise GitNotFoundError(
            f"revision {target[:100]!r} not found in {session.remote.display}",
            url=session.remote.display,
        ) from exc
    return out.strip()


def ls_remote(
    url: str,
    credentials: GitCredentials | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    *,
    allow_local: bool = False,
) -> dict[str, str]:
    """The remote's refs, name -> SHA, as the server advertises them.

    Includes ``HEAD`` and, for annotated tags, the peeled ``refs/tags/<name>^{}`` entry (the
    commit the tag points to) next to the tag object's own SHA.
    """
    remote = parse_remote(url)
    with GitSession(remote, credentials, timeout, allow_local=allow_local) as session:
        return list_refs(session).refs


def clone(
    url: str,
    dest: Path,
    credentials: GitCredentials | None = None,
    *,
    revision: str | None = None,
    depth: int | None = 1,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    allow_local: bool = False,
) -> str:
    """Check out ``revision`` of ``url`` into ``dest`` (new or empty) and return the commit SHA.

    ``revision`` is a branch, tag, full ref (``refs/...``) or commit SHA, resolved the way
    ``git fetch`` resolves it on the remote (so a tag wins over a branch of the same name); by
    default the remote's HEAD. ``depth=None`` fetches full history. The checkout is a detached
    HEAD. ``timeout`` bounds the whole operation. On failure ``dest`` is left as it was found.
    """
    remote = parse_remote(url)
    target = check_revision(revision) if revision is not None else "HEAD"
    check_local_allowed(remote, allow_local)
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be a positive number or None, got {depth}")
    dest = Path(dest).absolute()
    existed = dest.exists()
    if existed and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"clone destination {dest} exists and is not an empty directory")

    try:
        with GitSession(remote, credentials, timeout, allow_local=allow_local) as session:
            assert session.directory is not None
            session.run(
                ["init", "--quiet", "--", str(dest)], cwd=session.directory, operation="init"
            )
            session.run(["remote", "add", "--", "origin", remote.url], cwd=dest, operation="init")
            sha = _fetch_revision(session, dest, target, depth)
            session.run(["checkout", "--quiet", "--detach", sha], cwd=dest, operation="checkout")
        with git.Repo(dest) as repo:
            head: str = repo.head.commit.hexsha
        return head
    except BaseException:
        if existed:
            for child in dest.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        else:
            shutil.rmtree(dest, ignore_errors=True)
        raise


def _fetch_revision(session: GitSession, dest: Path, target: str, depth: int | None) -> str:
    """Fetch ``target`` into FETCH_HEAD and return the commit it names."""
    git_dir = dest / ".git"
    try:
        fetch(session, git_dir, [target], source="origin", depth=depth, revision=target)
        return resolve_commit(session, git_dir, "FETCH_HEAD", target)
    except GitNotFoundError:
        # An abbreviated SHA (or a full one a server will not serve by id) is not something the
        # remote can resolve; fetch everything and look for it locally.
        if not _HEX.fullmatch(target):
            raise
    fetch(
        session,
        git_dir,
        ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
        source="origin",
    )
    return resolve_commit(session, git_dir, target, target)
