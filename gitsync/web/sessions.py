"""UI sessions every replica can read: signed, encrypted cookies and a shared revocation list.

A session used to be an id into one process's memory, so a second replica did not know it and a
restart ended it. Now the cookie *is* the session: subject, display name, email, groups, role,
session id, CSRF token, when it began and (for flash messages) what to tell the user next,
encrypted and authenticated with Fernet (AES-128-CBC + HMAC-SHA256, ``cryptography``). Any
replica holding the same key (``--session-key-file``, mounted from a Secret) reads it; a client
can neither read nor change it.

Why it is shaped this way:

* **Lifetimes without server state.** Fernet stamps every token with the time it was made, and
  ``decrypt`` refuses tokens older than a ``ttl``: the cookie is re-issued on use (at most once a
  minute), so that stamp is "last seen" and ``ttl`` is the idle timeout. The absolute lifetime
  is the ``created`` time inside the payload.
* **Key rotation.** The key file holds one secret a line: the first encrypts, every line
  decrypts (``MultiFernet``), so a new key is rolled out in front of the old one, and the old
  one removed once the longest session has ended. A line is any secret of 32+ characters; the
  Fernet key is derived from it with HKDF, so ``openssl rand -base64 48`` makes a good one.
* **Revocation.** A cookie cannot be taken back from the browser, so ending a session means
  remembering its id until the session would have expired anyway: logout puts it on the
  ``Revocations`` list, which replicas share through a ConfigMap (``gitsync.web.revocations``).
  The list holds SHA-256 digests of the ids (nothing on it can be replayed) and is bounded: each
  entry goes when its session would have expired, and there are at most ``MAX_REVOKED``.
* Without a key file the key is random per process: sessions then behave as before (one
  replica, a restart logs everyone out), and ``gitsync serve`` says so at start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gitsync.web.rbac import Role

MIN_KEY_LENGTH = 32
MAX_COOKIE_BYTES = 3800  # browsers keep 4096 bytes per cookie, name and attributes included
MAX_FLASHES = 5
MAX_REVOKED = 20_000
RENEW_AFTER_SECONDS = 60  # re-issue a used cookie at most this often (its stamp is "last seen")
_KDF_INFO = b"gitsync session cookie v1"


class SessionKeyError(ValueError):
    """A ``--session-key-file`` that ``gitsync serve`` refuses to start with."""


def read_session_keys(path: str | Path) -> list[bytes]:
    """The secrets in a key file, one a line, newest first; blank and ``#`` lines skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionKeyError(f"--session-key-file: cannot read {path}: {exc}") from None
    lines = [line.strip() for line in text.splitlines()]
    keys = [line.encode() for line in lines if line and not line.startswith("#")]
    if not keys:
        raise SessionKeyError(f"--session-key-file: {path} holds no key")
    for number, key in enumerate(keys, 1):
        if len(key) < MIN_KEY_LENGTH:
            raise SessionKeyError(
                f"--session-key-file: key {number} in {path} is shorter than {MIN_KEY_LENGTH} "
                "characters (make one with: openssl rand -base64 48)"
            )
    return keys


def _fernet(secret: bytes) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(secret)
    return Fernet(base64.urlsafe_b64encode(derived))


def session_digest(session_id: str) -> str:
    """What the revocation list stores for a session id: nothing on the list can be replayed."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


@dataclass
class Session:
    """One signed-in browser. ``via`` is how it signed in: ``password`` or ``oidc``. ``role`` is
    the global role its login granted (the admin password, a read-only token, an OIDC user in an
    ``--oidc-admin-group``); None for a login whose roles come from the RBAC policy alone."""

    id: str = field(repr=False)
    role: Role | None
    name: str
    csrf: str = field(repr=False)
    created: float
    subject: str = ""
    email: str = ""
    groups: tuple[str, ...] = ()
    via: str = "password"
    id_token: str = field(default="", repr=False)  # the provider's, for RP-initiated logout
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def check_csrf(self, token: str | None) -> bool:
        return bool(token) and secrets.compare_digest(
            (token or "").encode("utf-8", "surrogatepass"), self.csrf.encode()
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "sid": self.id,
            "role": self.role,
            "name": self.name,
            "csrf": self.csrf,
            "created": self.created,
            "sub": self.subject,
            "email": self.email,
            "groups": list(self.groups),
            "via": self.via,
            "idt": self.id_token,
            "flashes": [list(f) for f in self.flashes[-MAX_FLASHES:]],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Session:
        return cls(
            id=str(data["sid"]),
            role=Role(data["role"]) if data.get("role") else None,
            name=str(data["name"]),
            csrf=str(data["csrf"]),
            created=float(data["created"]),
            subject=str(data.get("sub", "")),
            email=str(data.get("email", "")),
            groups=tuple(str(g) for g in data.get("groups", ())),
            via=str(data.get("via", "password")),
            id_token=str(data.get("idt", "")),
            flashes=[(str(c), str(m)) for c, m in data.get("flashes", ())],
        )


class Revocations(Protocol):
    """The shared list of ended sessions (``gitsync.web.revocations`` keeps it in a ConfigMap)."""

    def is_revoked(self, session: Session) -> bool: ...

    def revoke(self, session: Session, expires_at: float) -> None: ...


class LocalRevocations:
    """The list in this process only: for one replica, and the base of the shared one.

    Two kinds of entry: a session (its id's digest, until it would have expired) and a subject
    (every session of that user that began before the given time - how an operator ends all of
    someone's sessions)."""

    def __init__(self, clock: Callable[[], float] = time.time, *, max_age: float = 24 * 3600):
        self.clock = clock
        self.max_age = max_age  # the longest a session lives: older subject entries end nothing
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}
        self._subjects: dict[str, float] = {}

    def is_revoked(self, session: Session) -> bool:
        with self._lock:
            if session_digest(session.id) in self._sessions:
                return True
            before = self._subjects.get(session.subject) if session.subject else None
            return before is not None and session.created <= before

    def revoke(self, session: Session, expires_at: float) -> None:
        with self._lock:
            self._sessions[session_digest(session.id)] = expires_at
            self._prune()

    def merge(self, sessions: Mapping[str, float], subjects: Mapping[str, float]) -> None:
        """Take in entries another replica wrote (kept entries are never dropped by a merge)."""
        with self._lock:
            for digest, until in sessions.items():
                self._sessions[digest] = max(until, self._sessions.get(digest, 0.0))
            self._subjects.update(subjects)
            self._prune()

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        with self._lock:
            return dict(self._sessions), dict(self._subjects)

    def _prune(self) -> None:
        now = self.clock()
        for digest in [d for d, until in self._sessions.items() if until < now]:
            del self._sessions[digest]
        for subject in [s for s, before in self._subjects.items() if before + self.max_age < now]:
            del self._subjects[subject]
        if len(self._subjects) > MAX_REVOKED:
            keep_subjects = sorted(self._subjects.items(), key=lambda kv: kv[1])[-MAX_REVOKED:]
            self._subjects = dict(keep_subjects)
        if len(self._sessions) > MAX_REVOKED:  # the newest expiries are kept
            keep = sorted(self._sessions.items(), key=lambda kv: kv[1])[-MAX_REVOKED:]
            self._sessions = dict(keep)


class SessionCookies:
    """Makes and reads session cookies (see the module docstring)."""

    def __init__(
        self,
        keys: Iterable[bytes],
        *,
        idle: float,
        max_age: float,
        revocations: Revocations | None = None,
        clock: Callable[[], float] = time.time,
    ):
        fernets = [_fernet(k) for k in keys]
        if not fernets:
            raise SessionKeyError("no session key")
        self._fernet = MultiFernet(fernets)
        self.idle = idle
        self.max_age = max_age
        self.clock = clock
        self.revocations: Revocations = revocations or LocalRevocations(clock, max_age=max_age)

    @classmethod
    def with_random_key(cls, **kwargs: Any) -> SessionCookies:
        return cls([secrets.token_urlsafe(48).encode()], **kwargs)

    def create(
        self,
        role: Role | None,
        name: str,
        *,
        subject: str = "",
        email: str = "",
        groups: Iterable[str] = (),
        via: str = "password",
        id_token: str = "",
    ) -> Session:
        return Session(
            id=secrets.token_urlsafe(32),
            role=role,
            name=name,
            csrf=secrets.token_urlsafe(32),
            created=self.clock(),
            subject=subject,
            email=email,
            groups=tuple(groups),
            via=via,
            id_token=id_token,
        )

    def encode(self, session: Session) -> str:
        """The cookie value. The provider's ID token is left out when it would not fit (logout
        then ends only gitsync's session, not the provider's)."""
        data = session.to_json()
        value = self._seal(data)
        if len(value) > MAX_COOKIE_BYTES and data["idt"]:
            data["idt"] = ""
            value = self._seal(data)
        if len(value) > MAX_COOKIE_BYTES:
            data["flashes"] = []
            data["groups"] = []
            value = self._seal(data)
        return value

    def decode(self, value: str | None) -> tuple[Session | None, bool]:
        """The session in a cookie (None: none, forged, expired or revoked) and whether the
        cookie should be re-issued (its "last seen" stamp is old)."""
        if not value or len(value) > MAX_COOKIE_BYTES * 2:
            return None, False
        now = self.clock()
        raw = value.encode("ascii", "replace")
        try:
            plain = self._fernet.decrypt_at_time(raw, ttl=int(self.idle), current_time=int(now))
            stamped = self._fernet.extract_timestamp(raw)
            session = Session.from_json(json.loads(plain))
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None, False
        if now - session.created > self.max_age or self.revocations.is_revoked(session):
            return None, False
        return session, now - stamped >= RENEW_AFTER_SECONDS

    def revoke(self, session: Session) -> None:
        self.revocations.revoke(session, session.created + self.max_age)

    def seal_value(self, data: Mapping[str, Any]) -> str:
        """Any small JSON value, encrypted with the session key (the OIDC login's state)."""
        return self._seal(data)

    def open_value(self, value: str, max_age: float) -> dict[str, Any] | None:
        """A value from ``seal_value`` at most ``max_age`` seconds old, or None."""
        try:
            plain = self._fernet.decrypt_at_time(
                value.encode("ascii", "replace"), ttl=int(max_age), current_time=int(self.clock())
            )
            data = json.loads(plain)
        except (InvalidToken, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _seal(self, data: Mapping[str, Any]) -> str:
        plain = json.dumps(data, separators=(",", ":")).encode()
        return self._fernet.encrypt_at_time(plain, int(self.clock())).decode()
