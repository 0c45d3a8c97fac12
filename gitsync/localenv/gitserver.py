"""A real Git server on loopback for tests and the demo: smart HTTP, SSH and file URLs over the
same bare repos.

Tests of the source adapter must meet the failures users meet - a wrong password, an unknown host
key, a proxy answering with an HTML login page, a server that hangs - so this is a real server and
not a fake (the idea of Flux's ``gittestserver``):

* **Smart HTTP** is ``git http-backend`` run as a CGI program from a stdlib ``ThreadingHTTPServer``
  on 127.0.0.1. One port serves two endpoints over the same repos:

  - ``/anon/<repo>.git`` - anonymous, fetch only (pushes are refused);
  - ``/auth/<repo>.git`` - HTTP basic auth with the username and password the test chose; wrong or
    missing credentials get ``401`` with ``WWW-Authenticate: Basic``. Pushes are allowed here.

  ``server.fault`` switches the HTTP side into a failure mode at runtime (see ``Fault``).
* **SSH** is Debian's ``openssh-server`` (``/usr/sbin/sshd -D -e``) on its own loopback port, with
  a generated ed25519 host key and a generated client key; key authentication only, as the current
  user. ``known_hosts_path`` names a file that trusts exactly this server.
* **file://** URLs point at the bare repos directly.

Every repo has a working clone next to it (``GitRepo``) that tests commit in and push from, so a
test reads like the story it tells: commit, push, let gitsync fetch.

This module drives git and sshd through ``subprocess`` only (no gitpython): the code under test
uses gitpython, and the server must not share its bugs. Nothing here is global except the
``atexit`` registry of started processes; sshd is also started with a parent-death signal, so a
test process that dies hard leaves nothing listening.
"""

from __future__ import annotations

import atexit
import base64
import collections
import contextlib
import hmac
import http.server
import io
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Literal, cast, get_args
from urllib.parse import unquote, urlsplit

from gitsync.localenv.processes import free_port

Fault = Literal["error500", "html200", "hang"]
"""HTTP failure modes: ``error500`` answers every request with 500; ``html200`` answers with an
HTML login page and status 200 (what a captive portal or SSO proxy does); ``hang`` accepts the
request and never answers, until the client gives up or the server stops."""

LOOPBACK: Final = "127.0.0.1"
DEFAULT_BRANCH: Final = "main"
DEFAULT_AUTHOR: Final = "Gitsync Test <gitsync-test@example.invalid>"
GIT_TIMEOUT_SECONDS: Final = 60.0
SSHD_BINARY: Final = "/usr/sbin/sshd"
SSHD_PRIVSEP_DIR: Final = Path("/run/sshd")
SSHD_START_TIMEOUT_SECONDS: Final = 15.0
CGI_TIMEOUT_SECONDS: Final = 120.0
HTTP_REALM: Final = "gitsync-test"

_REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_HTML_LOGIN_PAGE: Final = b"""<!DOCTYPE html>
<html><head><title>Sign in</title></head>
<body><h1>Sign in to continue</h1>
<form method="post" action="/login"><input name="user"><input name="password" type="password">
<button>Sign in</button></form></body></html>
"""


class GitServerError(RuntimeError):
    """The test server could not do what the test asked (a setup problem, not a product bug)."""


# --- process registry -------------------------------------------------------------------------
# The one piece of module state: processes this module started and has not stopped yet, so that
# an interpreter exit (a crashed test run, a forgotten fixture) still stops them.

_started_processes: dict[int, subprocess.Popen[bytes]] = {}
_started_lock = threading.Lock()


def _register_process(process: subprocess.Popen[bytes]) -> None:
    with _started_lock:
        _started_processes[process.pid] = process


def _stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop a process we started (and its process group, which it leads), by its id."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        # sshd forks a child per connection; they share the group the listener leads.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    finally:
        with _started_lock:
            _started_processes.pop(process.pid, None)


@atexit.register
def _stop_all_started_processes() -> None:
    with _started_lock:
        processes = list(_started_processes.values())
    for process in processes:
        with contextlib.suppress(Exception):
            _stop_process(process, timeout=2.0)


# --- small building blocks --------------------------------------------------------------------


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """True once something accepts on ``port``; False if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return True
        time.sleep(0.05)
    return False


def generate_ssh_key(path: Path, comment: str = "gitsync-test") -> str:
    """Generate an unencrypted ed25519 key pair at ``path`` / ``path.pub``; return the public line.

    Public so tests can make a second, unrelated key (e.g. a known_hosts entry for the wrong key).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def _split_author(author: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*(.*?)\s*<([^<>]*)>\s*", author)
    if not match:
        raise ValueError(f"author must look like 'Name <email>', got {author!r}")
    return match.group(1), match.group(2)


# --- repos ------------------------------------------------------------------------------------


class GitRepo:
    """A bare repo served by a ``GitServer`` plus a working clone to commit in and push from."""

    def __init__(self, server: GitServer, name: str) -> None:
        self.server = server
        self.name = name
        self.bare_path = server.repos_dir / f"{name}.git"
        self.work_path = server.work_dir / name

    def __repr__(self) -> str:
        return f"GitRepo({self.name!r}, bare={str(self.bare_path)!r})"

    # URLs of the same bare repo, one per transport.
    def http_url(self, auth: bool = False) -> str:
        return self.server.http_url(self.name, auth=auth)

    def ssh_url(self) -> str:
        return self.server.ssh_url(self.name)

    def file_url(self) -> str:
        return self.server.file_url(self.name)

    def git(self, *args: str, author: str = DEFAULT_AUTHOR) -> str:
        """Run git in the working clone; return stdout (stripped)."""
        return self.server.run_git(*args, cwd=self.work_path, author=author)

    def commit(
        self,
        files: Mapping[str, str | bytes | None] | None = None,
        message: str = "update",
        *,
        author: str = DEFAULT_AUTHOR,
    ) -> str:
        """Write ``files`` (``None`` deletes; nested paths create directories), commit everything
        pending in the working clone (including ``symlink()`` calls) and return the new sha.

        An empty change still makes a commit, so a test can always produce a new revision.
        """
        for relative, content in (files or {}).items():
            target = self._work_file(relative)
            if content is None:
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.is_dir():
                    shutil.rmtree(target)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "--no-verify", "-m", message, author=author)
        return self.head()

    def symlink(self, path: str, target: str) -> None:
        """Create (or replace) a symlink at ``path`` pointing to ``target`` (kept verbatim, so it
        may be relative, absolute, or escape the repo). It goes into the next ``commit()``."""
        link = self._work_file(path)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        link.symlink_to(target)

    def tag(self, name: str, sha: str | None = None, *, message: str | None = None) -> None:
        """Tag ``sha`` (default HEAD); an annotated tag when ``message`` is given."""
        args = ["tag"]
        if message is not None:
            args += ["-a", "-m", message]
        args += ["--", name, sha or "HEAD"]
        self.git(*args)

    def branch(self, name: str, start: str | None = None) -> None:
        """Create branch ``name`` at ``start`` (default HEAD) and switch the working clone to it."""
        self.git("switch", "--quiet", "-c", name, *([start] if start else []))

    def checkout(self, ref: str) -> None:
        """Switch the working clone to an existing branch (or detach at a tag or sha)."""
        self.git("checkout", "--quiet", ref)

    def push(self, *, force: bool = False) -> None:
        """Push every branch and tag of the working clone to the bare repo."""
        plus = "+" if force else ""
        self.git(
            "push",
            "--quiet",
            "origin",
            f"{plus}refs/heads/*:refs/heads/*",
            f"{plus}refs/tags/*:refs/tags/*",
        )

    def head(self) -> str:
        """The sha of HEAD in the working clone."""
        return self.git("rev-parse", "HEAD")

    def _work_file(self, relative: str) -> Path:
        if not relative or relative.startswith("/") or ".." in Path(relative).parts:
            raise ValueError(f"path must be relative and stay inside the repo: {relative!r}")
        if Path(relative).parts[0] == ".git":
            raise ValueError(f"refusing to write into .git: {relative!r}")
        return self.work_path / relative


# --- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HTTPRequestRecord:
    """One request the HTTP side answered, for tests that assert on what the client sent."""

    method: str
    path: str
    user: str | None
    status: int


class _GitHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    git_server: GitServer


class _GitHTTPHandler(http.server.BaseHTTPRequestHandler):
    """Maps ``/anon/...`` and ``/auth/...`` onto ``git http-backend``, or plays a fault."""

    server: _GitHTTPServer
    protocol_version = "HTTP/1.1"  # so Expect: 100-continue is honoured for large pushes
    timeout = 60  # socket timeout for reading a request
    server_version = "gitsync-test-git"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the request log is kept as data on the server instead."""

    def _record(self, status: int, user: str | None) -> None:
        self.server.git_server.request_log.append(
            HTTPRequestRecord(self.command, self.path, user, status)
        )

    def _handle(self) -> None:
        self.close_connection = True
        git_server = self.server.git_server
        fault = git_server.fault
        if fault == "hang":
            self._record(0, None)
            self._hang(git_server.stopping)
            return
        if fault == "error500":
            self._send_simple(500, "Internal Server Error", b"internal server error\n", None)
            return
        if fault == "html200":
            self._send_simple(200, "OK", _HTML_LOGIN_PAGE, None, content_type="text/html")
            return

        url = urlsplit(self.path)
        endpoint, _, rest = url.path.lstrip("/").partition("/")
        path_info = "/" + unquote(rest)
        if endpoint not in ("anon", "auth") or ".." in path_info.split("/"):
            self._send_simple(404, "Not Found", b"not found\n", None)
            return
        user: str | None = None
        if endpoint == "auth":
            user = self._authenticated_user(git_server)
            if user is None:
                self._record(401, None)
                body = b"authentication required\n"
                self.send_response(401, "Unauthorized")
                self.send_header("WWW-Authenticate", f'Basic realm="{HTTP_REALM}"')
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                return
        self._run_http_backend(git_server, path_info, url.query, user, push=endpoint == "auth")

    def _authenticated_user(self, git_server: GitServer) -> str | None:
        header = self.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        username, _, password = decoded.partition(":")
        ok_user = hmac.compare_digest(username.encode(), git_server.username.encode())
        ok_password = hmac.compare_digest(password.encode(), git_server.password.encode())
        return username if ok_user and ok_password else None

    def _send_simple(
        self,
        status: int,
        reason: str,
        body: bytes,
        user: str | None,
        content_type: str = "text/plain",
    ) -> None:
        self._record(status, user)
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _hang(self, stopping: threading.Event) -> None:
        """Never answer; return when the client goes away or the server stops."""
        sock = self.connection
        while not stopping.is_set():
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                try:
                    if not sock.recv(65536):
                        return  # client closed the connection
                except OSError:
                    return

    def _run_http_backend(
        self, git_server: GitServer, path_info: str, query: str, user: str | None, *, push: bool
    ) -> None:
        env = git_server.git_environment()
        env.update(
            GIT_PROJECT_ROOT=str(git_server.repos_dir),
            GIT_HTTP_EXPORT_ALL="1",
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL="HTTP/1.1",
            REQUEST_METHOD=self.command,
            PATH_INFO=path_info,
            QUERY_STRING=query,
            REMOTE_ADDR=self.client_address[0],
            # http-backend reads config from the environment too: pushes only where authenticated.
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.receivepack",
            GIT_CONFIG_VALUE_0="true" if push else "false",
        )
        if user is not None:
            env["REMOTE_USER"] = user
        for header, variable in (
            ("Content-Type", "CONTENT_TYPE"),
            ("Content-Length", "CONTENT_LENGTH"),
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),  # http-backend gunzips by itself
            ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
        ):
            value = self.headers.get(header)
            if value is not None:
                env[variable] = value

        process = subprocess.Popen(
            ["git", "http-backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        watchdog = threading.Timer(CGI_TIMEOUT_SECONDS, process.kill)
        watchdog.daemon = True
        watchdog.start()
        stderr_chunks: list[bytes] = []
        feeder = threading.Thread(target=self._feed_request_body, args=(process,), daemon=True)
        drainer = threading.Thread(
            target=lambda: stderr_chunks.append(process.stderr.read() if process.stderr else b""),
            daemon=True,
        )
        feeder.start()
        drainer.start()
        status = 502
        try:
            stdout = cast(io.BufferedReader, process.stdout)
            status, reason, headers = self._read_cgi_headers(stdout)
            self._record(status, user)
            self.send_response(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            while chunk := stdout.read1(65536):
                self.wfile.write(chunk)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; nothing to answer
        finally:
            watchdog.cancel()
            if process.poll() is None:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            feeder.join(timeout=5)
            drainer.join(timeout=5)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
            if status >= 500 and stderr_chunks:
                git_server.backend_errors.append(stderr_chunks[0].decode(errors="replace"))

    def _feed_request_body(self, process: subprocess.Popen[bytes]) -> None:
        """Stream the request body (Content-Length or chunked) into the CGI's stdin."""
        stdin = process.stdin
        assert stdin is not None
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                while True:
                    size_line = self.rfile.readline(65537)
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    stdin.write(self.rfile.read(size))
                    self.rfile.readline(3)  # the CRLF after each chunk
            else:
                remaining = int(self.headers.get("Content-Length") or 0)
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 65536))
                    if not chunk:
                        break
                    stdin.write(chunk)
                    remaining -= len(chunk)
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
            pass  # the backend exited early or the client went away; the response says why
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    @staticmethod
    def _read_cgi_headers(stdout: IO[bytes]) -> tuple[int, str, list[tuple[str, str]]]:
        """Parse the CGI header block: ``Status:`` becomes the status line, the rest pass on."""
        status, reason = 200, "OK"
        headers: list[tuple[str, str]] = []
        while True:
            line: bytes = stdout.readline(65536)
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                break  # end of headers (or of output: an empty response is a 200 with no body)
            name, _, value = text.partition(":")
            value = value.strip()
            if name.lower() == "status":
                code, _, reason_text = value.partition(" ")
                status, reason = int(code), reason_text or reason
            else:
                headers.append((name, value))
        return status, reason, headers


# --- the server -------------------------------------------------------------------------------


class GitServer:
    """Serves bare repos over smart HTTP (anonymous and basic-auth), SSH and file URLs.

    ``start()`` creates the root directory, keys and listeners; ``stop()`` stops the listeners but
    keeps repos and ports, so ``start()`` again brings the same URLs back (for "server went away"
    tests); ``close()`` (and leaving the ``with`` block) stops and deletes everything.
    """

    def __init__(
        self,
        *,
        username: str = "gitsync",
        password: str | None = None,
        ssh: bool = True,
    ) -> None:
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.ssh_enabled = ssh
        self.ssh_user = pwd.getpwuid(os.getuid()).pw_name
        self.request_log: collections.deque[HTTPRequestRecord] = collections.deque(maxlen=2000)
        self.backend_errors: collections.deque[str] = collections.deque(maxlen=100)
        self.stopping = threading.Event()
        self._fault: Fault | None = None
        self._root: Path | None = None
        self._http_port: int | None = None
        self._ssh_port: int | None = None
        self._http: _GitHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._sshd: subprocess.Popen[bytes] | None = None
        self._repos: dict[str, GitRepo] = {}

    # lifecycle

    def __enter__(self) -> GitServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start (or restart, on the same ports) the HTTP and SSH listeners."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="gitsync-gitserver-"))
            for directory in (self.repos_dir, self.work_dir, self.home_dir, self._ssh_dir):
                directory.mkdir(parents=True, exist_ok=True)
        self.stopping.clear()
        try:
            if self._http is None:
                self._start_http()
            if self.ssh_enabled and self._sshd is None:
                self._start_sshd()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop listening (HTTP and SSH); repos, keys and ports are kept for ``start()``."""
        self.stopping.set()  # releases "hang" handlers
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()  # joins handler threads
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(timeout=10)
            self._http_thread = None
        if self._sshd is not None:
            _stop_process(self._sshd)
            self._sshd = None

    def close(self) -> None:
        """Stop and delete the root directory."""
        self.stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    @property
    def running(self) -> bool:
        return self._http is not None

    # fault injection

    @property
    def fault(self) -> Fault | None:
        return self._fault

    @fault.setter
    def fault(self, value: Fault | None) -> None:
        if value is not None and value not in get_args(Fault):
            raise ValueError(f"unknown fault {value!r}; expected one of {get_args(Fault)}")
        self._fault = value

    # layout

    @property
    def root(self) -> Path:
        if self._root is None:
            raise GitServerError("the server has not been started")
        return self._root

    @property
    def repos_dir(self) -> Path:
        return self.root / "repos"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def home_dir(self) -> Path:
        """HOME for every git the server runs, so the user's own config never leaks in."""
        return self.root / "home"

    @property
    def _ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def ssh_private_key_path(self) -> Path:
        """The client private key the server accepts (OpenSSH format, unencrypted)."""
        return self._ssh_dir / "client_ed25519"

    @property
    def ssh_host_key_path(self) -> Path:
        return self._ssh_dir / "ssh_host_ed25519_key"

    @property
    def known_hosts_path(self) -> Path:
        """A known_hosts file with exactly one line: ``[127.0.0.1]:PORT <host key>``."""
        return self._ssh_dir / "known_hosts"

    @property
    def http_port(self) -> int:
        if self._http_port is None:
            raise GitServerError("the HTTP side has not been started")
        return self._http_port

    @property
    def ssh_port(self) -> int:
        if self._ssh_port is None:
            raise GitServerError("the SSH side has not been started")
        return self._ssh_port

    # URLs

    def http_url(self, repo: str, *, auth: bool = False) -> str:
        endpoint = "auth" if auth else "anon"
        return f"http://{LOOPBACK}:{self.http_port}/{endpoint}/{repo}.git"

    def ssh_url(self, repo: str) -> str:
        return f"ssh://{self.ssh_user}@{LOOPBACK}:{self.ssh_port}{self.repos_dir / repo}.git"

    def file_url(self, repo: str) -> str:
        return (self.repos_dir / f"{repo}.git").as_uri()

    # repos

    def create_repo(
        self,
        name: str,
        files: Mapping[str, str | bytes | None] | None = None,
        from_dir: Path | None = None,
        *,
        message: str = "initial commit",
    ) -> GitRepo:
        """Create a bare repo (default branch ``main``) and its working clone.

        With ``from_dir`` (copied, symlinks kept) and/or ``files``, makes one first commit and
        pushes it; with neither, the repo stays empty.
        """
        if not _REPO_NAME.fullmatch(name) or name in self._repos:
            raise ValueError(f"invalid or duplicate repo name {name!r}")
        repo = GitRepo(self, name)
        repo.bare_path.parent.mkdir(parents=True, exist_ok=True)
        self.run_git(
            "init", "--quiet", "--bare", f"--initial-branch={DEFAULT_BRANCH}", str(repo.bare_path)
        )
        repo.work_path.mkdir(parents=True)
        repo.git("init", "--quiet", f"--initial-branch={DEFAULT_BRANCH}")
        repo.git("remote", "add", "origin", str(repo.bare_path))
        self._repos[name] = repo
        if from_dir is not None:
            shutil.copytree(
                from_dir,
                repo.work_path,
                symlinks=True,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns(".git"),
            )
        if from_dir is not None or files:
            repo.commit(files, message)
            repo.push()
        return repo

    def repo(self, name: str) -> GitRepo:
        return self._repos[name]

    def git_environment(self) -> dict[str, str]:
        """Environment for git run by the server: isolated from the user's and system config."""
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.home_dir),
            "XDG_CONFIG_HOME": str(self.home_dir / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }

    def run_git(
        self,
        *args: str,
        cwd: Path | None = None,
        author: str = DEFAULT_AUTHOR,
        timeout: float = GIT_TIMEOUT_SECONDS,
    ) -> str:
        """Run the git CLI with a fixed author/committer; raise ``GitServerError`` on failure."""
        name, email = _split_author(author)
        env = self.git_environment()
        env.update(
            GIT_AUTHOR_NAME=name,
            GIT_AUTHOR_EMAIL=email,
            GIT_COMMITTER_NAME=name,
            GIT_COMMITTER_EMAIL=email,
        )
        result = subprocess.run(
            ["git", *args],
            cwd=cwd or self.root,
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise GitServerError(
                f"git {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()}"
            )
        return result.stdout.decode().strip()

    # listeners

    def _start_http(self) -> None:
        try:
            http_server = _GitHTTPServer((LOOPBACK, self._http_port or 0), _GitHTTPHandler)
        except OSError as exc:
            raise GitServerError(f"cannot listen on {LOOPBACK}:{self._http_port}: {exc}") from exc
        http_server.git_server = self
        self._http_port = int(http_server.server_address[1])
        self._http = http_server
        self._http_thread = threading.Thread(
            target=http_server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"gitserver-http-{self._http_port}",
            daemon=True,
        )
        self._http_thread.start()

    def _start_sshd(self) -> None:
        if not Path(SSHD_BINARY).exists():
            raise GitServerError(
                f"{SSHD_BINARY} not found; install it with: apt-get install -y openssh-server"
            )
        if not self.ssh_host_key_path.exists():
            generate_ssh_key(self.ssh_host_key_path, "gitsync-test-host")
            public = generate_ssh_key(self.ssh_private_key_path, "gitsync-test-client")
            (self._ssh_dir / "authorized_keys").write_text(public + "\n")
        if self._ssh_port is None:
            self._ssh_port = free_port()
        host_key = self.ssh_host_key_path.with_name(self.ssh_host_key_path.name + ".pub")
        key_type, key_data = host_key.read_text().split()[:2]
        self.known_hosts_path.write_text(f"[{LOOPBACK}]:{self._ssh_port} {key_type} {key_data}\n")
        config = self._ssh_dir / "sshd_config"
        config.write_text(self._sshd_config())
        with contextlib.suppress(PermissionError):
            SSHD_PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)

        log_path = self._ssh_dir / "sshd.log"
        command = [SSHD_BINARY, "-D", "-e", "-f", str(config)]
        setpriv = shutil.which("setpriv")
        if setpriv:
            # If this Python dies without running atexit, the kernel stops sshd for us.
            command = [setpriv, "--pdeathsig", "SIGTERM", "--", *command]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own group, so stop() reaches per-connection children
            )
        _register_process(process)
        self._sshd = process
        if not _wait_for_port(self._ssh_port, process, SSHD_START_TIMEOUT_SECONDS):
            _stop_process(process)
            self._sshd = None
            raise GitServerError(
                f"sshd did not start on {LOOPBACK}:{self._ssh_port}: "
                + log_path.read_text(errors="replace")[-2000:]
            )

    def _sshd_config(self) -> str:
        ssh_dir = self._ssh_dir
        return "\n".join(
            [
                f"ListenAddress {LOOPBACK}:{self._ssh_port}",
                f"HostKey {self.ssh_host_key_path}",
                f"PidFile {ssh_dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {ssh_dir / 'authorized_keys'}",
                f"AllowUsers {self.ssh_user}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "UseDNS no",
                "PermitUserRC no",
                "PermitTTY no",
                "X11Forwarding no",
                "AllowTcpForwarding no",
                "AllowAgentForwarding no",
                "PrintMotd no",
                "PrintLastLog no",
                "AcceptEnv GIT_PROTOCOL",
                "LoginGraceTime 30",
                "LogLevel VERBOSE",
                "",
            ]
        )
