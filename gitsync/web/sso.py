"""The routes of single sign-on: ``/login/oidc`` starts it, ``/auth/callback`` finishes it.

``/login/oidc`` makes a fresh ``state``, ``nonce`` and PKCE ``code_verifier``, keeps them in a
short-lived cookie encrypted with the session key (``gitsync_oidc``, path ``/auth/callback``,
ten minutes) and sends the browser to the provider. ``/auth/callback`` accepts the answer only
when its ``state`` equals the one in that cookie and was not used before, exchanges the code
(``gitsync.web.oidc``) and starts a session (``gitsync.web.sessions``) for the identity. Any
refusal answers an error page and sets no session cookie.

Why it is shaped this way:

* The ``state`` cookie is ``SameSite=Lax``, not Strict like the session: the callback is a
  top-level navigation coming from the provider's site, on which Strict cookies are not sent.
  It carries nothing that could act - only what proves that this browser began this login.
* A ``state`` is single-use: the cookie is deleted by the callback, and a digest of each state
  used is remembered for the cookie's lifetime (bounded), so a replayed callback (the same URL
  and cookie again) is refused before the provider is asked. The provider's own one-time codes
  cover a replay against another replica.
* Roles: a member of an ``--oidc-admin-group`` gets a global admin grant (an admin without a
  policy file); everyone else the provider signs in gets no grant of their own - what they may
  see and do comes from the RBAC policy (``--rbac-policy``: ``user:NAME``, ``group:NAME``).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict

import flask
import structlog
from werkzeug.wrappers import Response as WerkzeugResponse

from gitsync.web.auth import Role
from gitsync.web.guard import Guard, login_page, safe_next
from gitsync.web.oidc import Identity, OidcClient, OidcLoginError, OidcUnavailable
from gitsync.web.sessions import Session

log = structlog.get_logger(__name__)

STATE_SECONDS = 600
MAX_USED_STATES = 10_000


class UsedStates:
    """Digests of the ``state`` values already used, each kept ``STATE_SECONDS`` (bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: OrderedDict[str, float] = OrderedDict()

    def first_use(self, state: str) -> bool:
        digest = hashlib.sha256(state.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            while self._used and next(iter(self._used.values())) < now - STATE_SECONDS:
                self._used.popitem(last=False)
            if digest in self._used:
                return False
            self._used[digest] = now
            while len(self._used) > MAX_USED_STATES:
                self._used.popitem(last=False)
            return True


def role_for(identity: Identity, admin_groups: tuple[str, ...]) -> Role | None:
    """The global role an OIDC login grants: admin for a member of an ``--oidc-admin-group``,
    else none (the RBAC policy decides)."""
    return Role.ADMIN if set(identity.groups) & set(admin_groups) else None


def sso_blueprint(guard: Guard, client: OidcClient) -> flask.Blueprint:
    bp = flask.Blueprint("sso", __name__)
    settings = client.settings
    state_cookie = ("__Secure-" if guard.settings.secure_cookie else "") + "gitsync_oidc"
    used = UsedStates()

    def refuse(status: int, message: str) -> flask.Response:
        response = login_page(guard, status, error=message)  # the password form still works
        response.delete_cookie(state_cookie, path="/auth/callback")
        return response

    @bp.app_context_processor
    def sso_context() -> dict[str, object]:
        return {"sso_enabled": True}

    @bp.get("/login/oidc")
    def start() -> WerkzeugResponse:
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters: RFC 7636 allows 43-128
        try:
            target = client.authorization_url(state=state, nonce=nonce, code_verifier=verifier)
        except OidcUnavailable as exc:
            log.warning("identity provider unavailable", error=str(exc))
            return refuse(502, "The identity provider cannot be reached. Try again later.")
        sealed = guard.sessions.seal_value(
            {
                "state": state,
                "nonce": nonce,
                "verifier": verifier,
                "next": safe_next(flask.request.args.get("next")),
            }
        )
        response = flask.redirect(target, 303)
        response.set_cookie(
            state_cookie,
            sealed,
            max_age=STATE_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=guard.settings.secure_cookie,
            path="/auth/callback",
        )
        return response

    @bp.get("/auth/callback")
    def callback() -> WerkzeugResponse:
        args = flask.request.args
        if args.get("error"):
            log.warning("identity provider refused the login", error=args.get("error", "")[:64])
            return refuse(401, "The identity provider refused the login.")
        sealed = flask.request.cookies.get(state_cookie, "")
        started = guard.sessions.open_value(sealed, STATE_SECONDS) if sealed else None
        state = args.get("state", "")
        if started is None:
            return refuse(400, "The login expired or was not started here. Please try again.")
        if not state or not secrets.compare_digest(
            state.encode(), str(started.get("state", "")).encode()
        ):
            log.warning("sso callback with a wrong state", client=guard.client())
            return refuse(400, "The login's state does not match. Please try again.")
        if not used.first_use(state):
            log.warning("sso callback with a used state", client=guard.client())
            return refuse(400, "This login was already used. Please try again.")
        try:
            identity, id_token = client.login(
                code=args.get("code", "")[:2048],
                code_verifier=str(started.get("verifier", "")),
                nonce=str(started.get("nonce", "")),
            )
        except OidcLoginError as exc:
            log.warning("sso login refused", reason=str(exc), client=guard.client())
            return refuse(401, f"Login refused: {exc}.")
        except OidcUnavailable as exc:
            log.warning("identity provider unavailable", error=str(exc))
            return refuse(502, "The identity provider cannot be reached. Try again later.")
        role = role_for(identity, settings.admin_groups)
        response = flask.redirect(safe_next(str(started.get("next", "/"))), 303)
        guard.revoke_current()  # a new session on every login; an old one ends
        guard.start_session(
            response,
            role,
            identity.name,
            subject=identity.subject,
            email=identity.email,
            groups=identity.groups,
            via="oidc",
            id_token=id_token,
        )
        response.delete_cookie(state_cookie, path="/auth/callback")
        log.info(
            "sso login",
            subject=identity.subject,
            role=str(role or "-"),
            groups=len(identity.groups),
        )
        return response

    def after_logout(session: Session) -> str | None:
        if session.via != "oidc":
            return None
        return client.end_session_url(session.id_token)

    guard.after_logout = after_logout
    return bp
