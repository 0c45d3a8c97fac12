"""Who may read and who may act, without Flask: credentials, sessions and the login rate limit.

Principals and roles:

* **admin** - logs in on ``/login`` with the admin password (``--admin-password-file``, or a
  bcrypt hash with ``--admin-password-bcrypt``), or sends ``Authorization: Bearer <token>`` with a
  token from ``--api-token-file``. May read and act (sync, refresh, rollback, pause, resume).
* **viewer** - ``Authorization: Bearer <token>`` with a token from ``--read-only-token-file``, or
  a login with such a token as the password. May read, never act.
* **anonymous** - reads only when ``--anonymous-read`` is given; otherwise nothing.

Why it is shaped this way:

* Secrets are kept only as SHA-256 digests (or the bcrypt hash) and compared with
  ``hmac.compare_digest`` against *every* configured value, so neither the length of a guess nor
  which token it resembled shows in the timing.
* Sessions are encrypted cookies every replica with the same ``--session-key-file`` can read,
  ended by logout through a revocation list the replicas share (``gitsync.web.sessions``).
* Login guesses are rate-limited *before* the password is checked: a token bucket per client
  address and one for the whole process, plus a cap on concurrent checks (bcrypt is slow on
  purpose). A flood of bad logins gets fast 429s, never a password check, and cannot starve the
  rest of the server. The global bucket means a flood can delay a real admin's login by seconds;
  sessions that already exist and bearer tokens are not affected.
* The client a guess is counted against is the TCP peer, unless the peer is a proxy the operator
  listed (``--trusted-proxy CIDR``): then it is the right-most ``X-Forwarded-For`` address that
  is not itself a listed proxy (``client_address``). Anything to the left of that was written by
  the client and could be anything, so it is never used - otherwise one attacker could spread
  guesses over made-up addresses, or lock a victim's address out.
* ``/metrics`` may require a bearer token of its own (``--metrics-token-file``): it names every
  Application and repository, which a tenant of a shared cluster should not list.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitsync.web.rbac import Grant, Role
from gitsync.web.sessions import Session

__all__ = ["Grant", "Method", "Principal", "Role", "Session", "Via"]

MIN_TOKEN_LENGTH = 16
MAX_FORWARDED_HOPS = 32  # X-Forwarded-For entries looked at, from the right
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
BCRYPT_MAX_BYTES = 72  # bcrypt only ever hashes the first 72 bytes
_BCRYPT_HASH = re.compile(r"^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$")


class Via(enum.StrEnum):
    """How a request carried its credential: a session cookie needs CSRF checks, a bearer
    header does not."""

    SESSION = "session"
    BEARER = "bearer"
    ANONYMOUS = "anonymous"
    NONE = "none"


class Method(enum.StrEnum):
    """How the principal proved who it is (shown in audit lines)."""

    PASSWORD = "password"  # noqa: S105 - the admin password, or a read-only token typed on /login
    STATIC_TOKEN = "static-token"  # noqa: S105 - --api-token-file / --read-only-token-file
    API_TOKEN = "api-token"  # noqa: S105 - a scoped, expiring token (gitsync.web.tokens)
    OIDC = "oidc"
    ANONYMOUS = "anonymous"
    NONE = "none"


class AuthConfigError(ValueError):
    """A credential file or value that ``gitsync serve`` refuses to start with."""


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def _any_equal(candidate: bytes, digests: Iterable[bytes]) -> bool:
    """Constant-time membership: compares with every digest, never stops early."""
    found = False
    for ref in digests:
        found |= hmac.compare_digest(candidate, ref)
    return found


@dataclass(frozen=True)
class LoginLimits:
    """Token buckets for login attempts (see the module docstring)."""

    per_client_burst: int = 5
    per_client_refill_seconds: float = 10.0  # one more attempt per client every 10 s
    global_burst: int = 30
    global_per_second: float = 2.0
    concurrent_checks: int = 2
    max_clients: int = 10_000


@dataclass(frozen=True)
class AuthSettings:
    """What ``gitsync serve`` was told about authentication. Secret fields hold digests only and
    never appear in ``repr``."""

    admin_password_sha256: bytes | None = field(default=None, repr=False)
    admin_password_bcrypt: bytes | None = field(default=None, repr=False)
    api_tokens_sha256: tuple[bytes, ...] = field(default=(), repr=False)
    read_only_tokens_sha256: tuple[bytes, ...] = field(default=(), repr=False)
    anonymous_read: bool = False
    secure_cookie: bool = False
    session_idle_seconds: float = 8 * 3600
    session_max_seconds: float = 24 * 3600
    login_limits: LoginLimits = LoginLimits()
    trusted_proxies: tuple[Network, ...] = ()
    metrics_tokens_sha256: tuple[bytes, ...] = field(default=(), repr=False)
    admin_password_disabled: bool = False
    session_keys: tuple[bytes, ...] = field(default=(), repr=False)  # none: random per process

    @classmethod
    def build(
        cls,
        *,
        admin_password: str | None = None,
        admin_password_bcrypt: str | None = None,
        api_tokens: Iterable[str] = (),
        read_only_tokens: Iterable[str] = (),
        anonymous_read: bool = False,
        secure_cookie: bool = False,
        login_limits: LoginLimits | None = None,
        trusted_proxies: Iterable[Network] = (),
        metrics_tokens: Iterable[str] = (),
        admin_password_disabled: bool = False,
        session_keys: Iterable[bytes] = (),
    ) -> AuthSettings:
        if admin_password_disabled:
            # like Argo CD's admin.enabled=false: the password may stay configured (to enable it
            # again later) but is not kept, so no login can match it
            admin_password = admin_password_bcrypt = None
        if admin_password is not None and admin_password_bcrypt is not None:
            raise AuthConfigError("give the admin password as a file or as a bcrypt hash, not both")
        if admin_password is not None and not admin_password:
            raise AuthConfigError("the admin password is empty")
        bcrypt_hash = None
        if admin_password_bcrypt is not None:
            bcrypt_hash = _check_bcrypt_hash(admin_password_bcrypt.strip())
        api = tuple(api_tokens)
        read_only = tuple(read_only_tokens)
        metrics = tuple(metrics_tokens)
        for token in (*api, *read_only, *metrics):
            if len(token) < MIN_TOKEN_LENGTH:
                raise AuthConfigError(
                    f"API tokens must have at least {MIN_TOKEN_LENGTH} characters"
                )
        if set(api) & set(read_only):
            raise AuthConfigError("a token is both an API (admin) token and a read-only token")
        return cls(
            admin_password_sha256=_digest(admin_password) if admin_password else None,
            admin_password_bcrypt=bcrypt_hash,
            api_tokens_sha256=tuple(_digest(t) for t in api),
            read_only_tokens_sha256=tuple(_digest(t) for t in read_only),
            anonymous_read=anonymous_read,
            secure_cookie=secure_cookie,
            login_limits=login_limits or LoginLimits(),
            trusted_proxies=tuple(trusted_proxies),
            metrics_tokens_sha256=tuple(_digest(t) for t in metrics),
            admin_password_disabled=admin_password_disabled,
            session_keys=tuple(session_keys),
        )

    @property
    def login_enabled(self) -> bool:
        return bool(
            self.admin_password_sha256 or self.admin_password_bcrypt or self.read_only_tokens_sha256
        )


def _check_bcrypt_hash(value: str) -> bytes:
    if not _BCRYPT_HASH.match(value):
        raise AuthConfigError(
            "--admin-password-bcrypt must be a bcrypt hash ($2b$12$...) or a file holding one"
        )
    import bcrypt

    try:
        bcrypt.checkpw(b"probe", value.encode())
    except ValueError as exc:
        raise AuthConfigError(f"the bcrypt hash is not valid: {exc}") from None
    return value.encode()


def parse_proxy_network(text: str) -> Network:
    """A ``--trusted-proxy`` value: an address or a CIDR (``10.0.0.0/8``, ``fd00::/8``)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise AuthConfigError(
            f"--trusted-proxy: {text!r} is not an IP address or CIDR (e.g. 10.0.0.0/8)"
        ) from None


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The address a request is counted against (see the module docstring).

    ``peer`` is the TCP peer; ``forwarded_for`` the ``X-Forwarded-For`` header lines in order.
    Only when the peer is inside a ``trusted`` network are the entries read, right to left, each
    a hop that a trusted proxy recorded; the first one that is not itself a trusted proxy is the
    client. An entry that is not an address ends the walk at the last trusted hop; when every
    entry is a trusted proxy, the left-most one is the client.
    """
    client = peer or "unknown"
    if not trusted or not _inside(client, trusted):
        return client
    hops = [h.strip() for line in forwarded_for for h in line.split(",")][-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return client
        client = str(address)
        if not any(address in network for network in trusted):
            return client
    return client


def _inside(address: str, networks: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def read_secret_file(path: str | Path, what: str) -> str:
    """A password from a file: the first line, without its line ending."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"cannot read the {what} file {path}: {exc}") from None
    value = text.splitlines()[0] if text else ""
    if not value:
        raise AuthConfigError(f"the {what} file {path} is empty")
    return value


def read_token_file(path: str | Path, what: str) -> list[str]:
    """Tokens from a file, one per line (several allow rotation); blank and ``#`` lines skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"cannot read the {what} file {path}: {exc}") from None
    tokens = [line.strip() for line in text.splitlines()]
    tokens = [t for t in tokens if t and not t.startswith("#")]
    if not tokens:
        raise AuthConfigError(f"the {what} file {path} holds no token")
    return tokens


def bcrypt_value(value: str) -> str:
    """``--admin-password-bcrypt`` takes the hash itself or a file holding it."""
    if value.startswith("$2"):
        return value
    return read_secret_file(value, "bcrypt hash")


class Authenticator:
    """Checks passwords and bearer tokens against the configured digests."""

    def __init__(self, settings: AuthSettings):
        self.settings = settings

    def check_login(self, password: str) -> Role | None:
        """The role a login with ``password`` gets: the admin password, or a read-only token."""
        digest = _digest(password)
        admin = False
        if self.settings.admin_password_sha256 is not None:
            admin = hmac.compare_digest(digest, self.settings.admin_password_sha256)
        elif self.settings.admin_password_bcrypt is not None:
            admin = _bcrypt_matches(password, self.settings.admin_password_bcrypt)
        viewer = _any_equal(digest, self.settings.read_only_tokens_sha256)
        if admin:
            return Role.ADMIN
        return Role.VIEWER if viewer else None

    def check_metrics_bearer(self, header: str | None) -> bool:
        """Whether ``/metrics`` may be read with this ``Authorization`` header: always when no
        metrics token is configured, else only with ``Bearer <one of them>``."""
        if not self.settings.metrics_tokens_sha256:
            return True
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return _any_equal(_digest(token.strip()), self.settings.metrics_tokens_sha256)

    def check_bearer(self, token: str) -> Role | None:
        digest = _digest(token)
        admin = _any_equal(digest, self.settings.api_tokens_sha256)
        viewer = _any_equal(digest, self.settings.read_only_tokens_sha256)
        if admin:
            return Role.ADMIN
        return Role.VIEWER if viewer else None


def _bcrypt_matches(password: str, hashed: bytes) -> bool:
    import bcrypt

    candidate = password.encode("utf-8", "surrogatepass")[:BCRYPT_MAX_BYTES]
    try:
        return bool(bcrypt.checkpw(candidate, hashed))
    except ValueError:
        return False


# -- login rate limit --------------------------------------------------------------------------


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second. Not thread-safe on its own."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, capacity: float, rate: float, now: float):
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now

    def wait(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


class LoginLimiter:
    """Per-client and global token buckets plus a cap on concurrent password checks."""

    def __init__(self, limits: LoginLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._global = TokenBucket(limits.global_burst, limits.global_per_second, now)
        self._clients: OrderedDict[str, TokenBucket] = OrderedDict()
        self._checks = threading.BoundedSemaphore(limits.concurrent_checks)

    def acquire(self, client: str) -> float:
        """0 when ``client`` may try a password now (one token taken from both buckets);
        otherwise the seconds to wait (nothing taken)."""
        with self._lock:
            now = self.clock()
            bucket = self._clients.get(client)
            if bucket is None:
                bucket = TokenBucket(
                    self.limits.per_client_burst, 1 / self.limits.per_client_refill_seconds, now
                )
                self._clients[client] = bucket
                while len(self._clients) > self.limits.max_clients:
                    self._clients.popitem(last=False)  # the global bucket still holds them back
            else:
                self._clients.move_to_end(client)
            bucket.refill(now)
            self._global.refill(now)
            wait = max(bucket.wait(), self._global.wait())
            if wait > 0:
                return wait
            bucket.tokens -= 1
            self._global.tokens -= 1
            return 0.0

    def check_slot(self) -> bool:
        """Take one of the concurrent password-check slots without waiting."""
        return self._checks.acquire(blocking=False)

    def release_slot(self) -> None:
        self._checks.release()


@dataclass(frozen=True)
class Principal:
    """Who is asking: identity (``name``, ``groups``, how it authenticated) and the grants its
    credential carries. What it may do is decided by ``gitsync.web.rbac.Authorizer`` alone;
    no grants and no policy binding means it may do nothing."""

    name: str
    via: Via
    method: Method
    grants: tuple[Grant, ...] = ()
    groups: tuple[str, ...] = ()
    session: Session | None = None
    token: str = ""  # the scoped API token's name (subject ``token:<name>``)
    # what ``user:`` subjects match when not ``name``: an OIDC login's email (else its ``sub``),
    # never the display name (``preferred_username`` is not unique at most providers)
    user: str = ""

    @property
    def subjects(self) -> tuple[str, ...]:
        """The policy subjects this principal answers to."""
        if self.via in (Via.NONE, Via.ANONYMOUS):
            return ()
        if self.token:  # a token is not a user: ``user:ci-a`` must not grant token ci-a
            return (f"token:{self.token}",)
        return (f"user:{self.user or self.name}", *(f"group:{g}" for g in self.groups))

    @property
    def authenticated(self) -> bool:
        return self.via not in (Via.NONE, Via.ANONYMOUS)

    @property
    def role(self) -> Role | None:
        """The global role the credential carries (the header shows "read-only" without one
        that may act)."""
        roles = [g.role for g in self.grants if g.projects is None]
        return max(roles, key=lambda r: r.rank) if roles else None


def global_grant(role: Role | None) -> tuple[Grant, ...]:
    return (Grant(role),) if role is not None else ()


NOBODY = Principal("", Via.NONE, Method.NONE)
ANONYMOUS = Principal("anonymous", Via.ANONYMOUS, Method.ANONYMOUS, global_grant(Role.VIEWER))
