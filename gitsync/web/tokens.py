"""Scoped, expiring API tokens, kept as digests in one Kubernetes Secret.

``gitsync token create --name ci-a --project team-a --role operator --expires 24h`` (or
``POST /api/v1/tokens``, global admins only) mints ``gst_<random>``, shows it once, and stores
only its SHA-256 with the scope (role, project globs) and the expiry in the Secret
``gitsync-api-tokens`` of the controller's namespace, one data key per token name. A token is
256 random bits, so a plain digest is enough (no salt or slow hash: nothing to guess).

Every replica reads the Secret at most every ``refresh`` seconds (and at once after its own
writes), so a revocation or an expiry ends the token everywhere within that time; expiry is
checked on every request with the wall clock. When the Secret cannot be read the last copy read
is kept; before the first successful read no scoped token is accepted (fail closed). Writes
carry the Secret's ``resourceVersion``, so two admins revoking at once never lose a change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from gitsync.controller.interface import KubeAccess
from gitsync.errors import GitsyncError, TerminalError
from gitsync.web.rbac import Grant, PolicyError, Role, check_project_glob, parse_role

log = structlog.get_logger(__name__)

SECRET_NAME = "gitsync-api-tokens"  # noqa: S105 - the Secret's name
TOKEN_PREFIX = "gst_"  # noqa: S105 - the prefix every scoped token starts with
TOKEN_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_TOKENS = 500
MAX_PROJECTS = 20
MAX_LIFETIME_SECONDS = 366 * 24 * 3600
MAX_ENTRY_BYTES = 4096


class TokenError(TerminalError):
    """A token request refused; ``status`` is the HTTP status, the message is safe to show."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class SecretAccess(KubeAccess, Protocol):
    """The part of ``gitsync.kube.KubeClient`` the store uses: the rollout panel's get and
    patch, and create (the Secret's first token)."""

    def create(
        self, obj: dict[str, Any], *, namespace: str = "", subresource_of: str = ""
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ApiToken:
    name: str
    role: Role
    projects: tuple[str, ...]
    expires_at: float  # seconds since the epoch
    created_at: float
    created_by: str
    digest: str = field(repr=False)

    @property
    def grant(self) -> Grant:
        return Grant(self.role, self.projects)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def document(self, now: float) -> dict[str, Any]:
        """What ``token list`` shows: never the digest."""
        return {
            "name": self.name,
            "role": str(self.role),
            "projects": list(self.projects),
            "expiresAt": _rfc3339(self.expires_at),
            "createdAt": _rfc3339(self.created_at),
            "createdBy": self.created_by,
            "expired": self.expired(now),
        }

    def entry(self) -> str:
        return json.dumps(
            {
                "sha256": self.digest,
                "role": str(self.role),
                "projects": list(self.projects),
                "expiresAt": self.expires_at,
                "createdAt": self.created_at,
                "createdBy": self.created_by,
            },
            sort_keys=True,
        )


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_lifetime(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d``, ``1d12h`` -> seconds; ``ValueError`` otherwise."""
    parts = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or parts is None:
        raise ValueError(f"not a duration: {text[:40]!r} (e.g. 30m, 24h, 7d)")
    days, hours, minutes, seconds = (int(p or 0) for p in parts.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_entry(name: str, encoded: str) -> ApiToken:
    """One data entry of the Secret; ``ValueError`` when it is not one gitsync wrote."""
    raw = base64.b64decode(encoded, validate=True)
    if len(raw) > MAX_ENTRY_BYTES:
        raise ValueError("entry too large")
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("entry is not an object")
    sha = doc.get("sha256")
    projects = doc.get("projects")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError("sha256 missing")
    if not isinstance(projects, list) or not projects:
        raise ValueError("projects missing")
    return ApiToken(
        name=name,
        role=parse_role(str(doc.get("role"))),
        projects=tuple(check_project_glob(str(p)) for p in projects),
        expires_at=float(doc["expiresAt"]),
        created_at=float(doc.get("createdAt", 0)),
        created_by=str(doc.get("createdBy", ""))[:256],
        digest=sha,
    )


def check_request(name: str, role: str, projects: list[str], lifetime: float) -> None:
    """Validate a create request; ``TokenError`` (400) naming the field."""
    if not TOKEN_NAME.match(name):
        raise TokenError(400, f"name: {name!r} must be a DNS label (a-z, 0-9, -; at most 63)")
    try:
        parse_role(role, "role")
        if not projects or len(projects) > MAX_PROJECTS:
            raise PolicyError(f"project: give 1 to {MAX_PROJECTS} project globs")
        for glob in projects:
            check_project_glob(glob, "project")
    except PolicyError as exc:
        raise TokenError(400, str(exc)) from None
    if not 0 < lifetime <= MAX_LIFETIME_SECONDS:
        raise TokenError(400, "expires: must be more than 0 and at most 366 days (e.g. 24h)")


class TokenStore:
    """The tokens of one Secret (see the module docstring)."""

    def __init__(
        self,
        kube: SecretAccess,
        namespace: str,
        *,
        secret_name: str = SECRET_NAME,
        refresh: float = 5.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.kube = kube
        self.namespace = namespace
        self.secret_name = secret_name
        self.refresh = refresh
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._tokens: tuple[ApiToken, ...] = ()

    # -- reading -----------------------------------------------------------------------------

    def _secret(self) -> dict[str, Any] | None:
        return self.kube.get("v1", "Secret", self.secret_name, self.namespace)

    def tokens(self) -> tuple[ApiToken, ...]:
        with self._lock:
            if self.monotonic() - self._read_at < self.refresh:
                return self._tokens
            try:
                secret = self._secret()
            except GitsyncError as exc:
                log.warning("API tokens not re-read; keeping the last copy", error=str(exc)[:300])
                return self._tokens
            self._tokens = self._parse(secret)
            self._read_at = self.monotonic()
            return self._tokens

    def _parse(self, secret: dict[str, Any] | None) -> tuple[ApiToken, ...]:
        data = (secret or {}).get("data") or {}
        found = []
        for name, encoded in sorted(data.items())[:MAX_TOKENS]:
            try:
                found.append(parse_entry(str(name), str(encoded)))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("API token entry ignored", token=str(name)[:63], error=str(exc)[:200])
        return tuple(found)

    def check(self, token: str) -> ApiToken | None:
        """The unexpired token ``token`` is, or None. Compares with every stored digest."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        candidate = digest(token).encode()
        match: ApiToken | None = None
        for stored in self.tokens():
            if hmac.compare_digest(candidate, stored.digest.encode()):
                match = stored
        if match is None or match.expired(self.clock()):
            return None
        return match

    # -- writing -----------------------------------------------------------------------------

    def create(
        self, name: str, role: str, projects: list[str], lifetime: float, *, created_by: str
    ) -> tuple[ApiToken, str]:
        """A new token: the record and the token itself (shown once, never stored)."""
        check_request(name, role, projects, lifetime)
        secret_value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        token = ApiToken(
            name=name,
            role=Role(role),
            projects=tuple(projects),
            expires_at=now + lifetime,
            created_at=now,
            created_by=created_by[:256],
            digest=digest(secret_value),
        )
        encoded = base64.b64encode(token.entry().encode()).decode()

        def change(data: dict[str, Any]) -> dict[str, Any]:
            if name in data:
                raise TokenError(409, f"a token named {name!r} exists; revoke it first")
            if len(data) >= MAX_TOKENS:
                raise TokenError(409, f"at most {MAX_TOKENS} tokens; revoke some first")
            return {name: encoded}

        self._write(change)
        return token, secret_value

    def revoke(self, name: str) -> None:
        def change(data: dict[str, Any]) -> dict[str, Any]:
            if name not in data:
                raise TokenError(404, f"no token named {name!r}")
            return {name: None}

        self._write(change)

    def _write(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        from gitsync.kube import ApiError

        for _ in range(5):
            secret = self._secret()
            try:
                if secret is None:
                    data = {k: v for k, v in change({}).items() if v is not None}
                    self.kube.create(
                        {
                            "apiVersion": "v1",
                            "kind": "Secret",
                            "metadata": {
                                "name": self.secret_name,
                                "namespace": self.namespace,
                                "labels": {"app.kubernetes.io/managed-by": "gitsync"},
                            },
                            "type": "Opaque",
                            "data": data,
                        },
                        namespace=self.namespace,
                    )
                else:
                    patch = {
                        "metadata": {"resourceVersion": secret["metadata"]["resourceVersion"]},
                        "data": change(dict(secret.get("data") or {})),
                    }
                    self.kube.patch(
                        "v1", "Secret", self.secret_name, patch, namespace=self.namespace
                    )
            except ApiError as exc:
                if exc.status == 409:  # someone else wrote first: read again and redo
                    continue
                raise
            with self._lock:
                self._read_at = float("-inf")  # this replica sees its own write at once
            return
        raise TokenError(409, "the token Secret kept changing; try again")
