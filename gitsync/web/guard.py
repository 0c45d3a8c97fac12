"""The HTTP side of authentication: who a request comes from, what it may do, and the login page.

Checks, in the order a state-changing request meets them:

1. **Who** - ``Authorization: Bearer`` (the header wins when present; a wrong token is a 401 and
   counts against the login rate limit), else the session cookie, else anonymous when
   ``--anonymous-read`` is on. Nobody: 401 (API) or a redirect to ``/login`` (pages).
2. **Media type** - the JSON API takes ``application/json`` only and forms take form encodings
   only (415): a cross-site ``<form enctype="text/plain">`` or ``fetch`` without a preflight can
   never reach an action.
3. **CSRF** - a session-authenticated request carries the session's token, in ``X-CSRF-Token``
   (JavaScript) or the ``csrf_token`` field (forms); a browser's ``Sec-Fetch-Site`` other than
   ``same-origin`` is refused too (403). Bearer requests carry no ambient credentials and are
   exempt.
4. **Role** - actions need the admin role (403 for a viewer).

The login form has its own CSRF token (a double-submit cookie scoped to ``/login``), so another
site cannot log a browser in to an account of its choosing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import flask
import structlog
from werkzeug.wrappers import Response as WerkzeugResponse

from gitsync.web.auth import (
    ANONYMOUS,
    NOBODY,
    Authenticator,
    AuthSettings,
    LoginLimiter,
    Principal,
    Role,
    client_address,
)
from gitsync.web.sessions import Revocations, Session, SessionCookies

log = structlog.get_logger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FORM_BYTES = 16 * 1024
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gitsync"'}


def json_error(status: int, message: str, **headers: str) -> flask.Response:
    response = flask.jsonify({"error": message})
    response.status_code = status
    response.headers.update(headers)
    return response


def safe_next(target: str | None) -> str:
    """A local path to return to after login; anything else (other hosts, schemes, ``//x``,
    backslashes) becomes ``/``."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if any(c in target for c in "\\\r\n\t") or len(target) > 2048:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


class Guard:
    """Authentication state for one app: sessions, the login limiter and the checks."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] | None = None,
        revocations: Revocations | None = None,
    ):
        self.settings = settings
        self.authenticator = Authenticator(settings)
        extra: dict[str, Any] = {"clock": clock} if clock else {}
        lifetimes: dict[str, Any] = {
            "idle": settings.session_idle_seconds,
            "max_age": settings.session_max_seconds,
            "revocations": revocations,
            **extra,
        }
        self.sessions = (
            SessionCookies(settings.session_keys, **lifetimes)
            if settings.session_keys
            else SessionCookies.with_random_key(**lifetimes)
        )
        self.limiter = LoginLimiter(settings.login_limits, **extra)
        prefix = "__Host-" if settings.secure_cookie else ""
        self.session_cookie = prefix + "gitsync_session"
        self.login_cookie = ("__Secure-" if settings.secure_cookie else "") + "gitsync_login"
        self.after_logout: Callable[[Session], str | None] | None = None  # set by gitsync.web.sso

    # -- who ---------------------------------------------------------------------------------

    def client(self) -> str:
        """The address the login limiter counts this request against (``client_address``)."""
        request = flask.request
        return client_address(
            request.remote_addr,
            request.headers.getlist("X-Forwarded-For"),
            self.settings.trusted_proxies,
        )

    def principal(self) -> Principal:
        """The request's principal (memoised on ``flask.g``); aborts 401/429 on a bad token."""
        cached = flask.g.get("gitsync_principal")
        if isinstance(cached, Principal):
            return cached
        principal = self._resolve()
        flask.g.gitsync_principal = principal
        return principal

    def _resolve(self) -> Principal:
        header = flask.request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            role = None
            if scheme.lower() == "bearer" and token.strip():
                role = self.authenticator.check_bearer(token.strip())
            if role is None:
                wait = self.limiter.acquire(self.client())
                if wait > 0:
                    flask.abort(
                        json_error(429, "too many failed attempts", **{"Retry-After": _secs(wait)})
                    )
                flask.abort(json_error(401, "invalid token", **CHALLENGE))
            name = "api-token" if role == Role.ADMIN else "read-only-token"
            return Principal(role, name, "bearer")
        session, renew = self.sessions.decode(flask.request.cookies.get(self.session_cookie))
        if session is not None:
            flask.g.gitsync_session_renew = renew
            flask.g.gitsync_session_flashes = list(session.flashes)
            return Principal(Role(session.role), session.name, "session", session)
        return ANONYMOUS if self.settings.anonymous_read else NOBODY

    # -- decorators --------------------------------------------------------------------------

    def page(self, view: F) -> F:
        """A page that needs read access: anyone else is sent to the login page."""

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not self.principal().can_read:
                return flask.redirect(
                    flask.url_for("auth.login", next=flask.request.full_path.rstrip("?")), 303
                )
            return view(*args, **kwargs)

        return cast(F, wrapped)

    def api_read(self, view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not self.principal().can_read:
                return _unauthorized()
            return view(*args, **kwargs)

        return cast(F, wrapped)

    def api_action(self, view: F) -> F:
        """A JSON API action: authenticated, ``application/json``, CSRF when by session, admin."""

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = self.principal()
            if principal.via in ("none", "anonymous"):
                return _unauthorized()
            if flask.request.mimetype not in JSON_TYPES:
                return json_error(415, "send the request body as application/json")
            if principal.via == "session":
                refused = self._csrf_refusal(principal, flask.request.headers.get(CSRF_HEADER))
                if refused:
                    return json_error(403, refused)
            if not principal.can_act:
                return json_error(403, "this account may read but not act")
            return view(*args, **kwargs)

        return cast(F, wrapped)

    def form_action(self, view: F) -> F:
        """A form post from our own pages: a session, a form encoding, its CSRF field, admin."""

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = self.principal()
            if principal.via in ("none", "anonymous"):
                return flask.redirect(flask.url_for("auth.login"), 303)
            if principal.via != "session":
                return _text(403, "forms need a browser session; use the JSON API with a token")
            if flask.request.mimetype not in FORM_TYPES:
                return _text(415, "unsupported form encoding")
            if (flask.request.content_length or 0) > MAX_FORM_BYTES:
                return _text(413, "form too large")
            refused = self._csrf_refusal(principal, flask.request.form.get(CSRF_FIELD))
            if refused:
                return _text(403, refused)
            if not principal.can_act:
                return _text(403, "this account may read but not act")
            return view(*args, **kwargs)

        return cast(F, wrapped)

    @staticmethod
    def _csrf_refusal(principal: Principal, token: str | None) -> str:
        if not _same_origin():
            return "cross-site request refused"
        session = principal.session
        if session is None or not session.check_csrf(token):
            return "missing or wrong CSRF token"
        return ""

    # -- cookies -----------------------------------------------------------------------------

    def start_session(
        self, response: WerkzeugResponse, role: Role, name: str, **identity: Any
    ) -> Session:
        """A new session (a new id on every login: no fixation); ``identity`` is what
        ``SessionCookies.create`` takes besides the role and name (subject, groups, ...)."""
        session = self.sessions.create(str(role), name, **identity)
        self.write_session(response, session)
        return session

    def write_session(self, response: WerkzeugResponse, session: Session) -> None:
        response.set_cookie(
            self.session_cookie,
            self.sessions.encode(session),
            httponly=True,
            samesite="Strict",
            secure=self.settings.secure_cookie,
            path="/",
        )

    def renew_session(self, response: WerkzeugResponse) -> None:
        """Re-issue the request's session cookie when its flash messages changed or its "last
        seen" stamp is old (``SessionCookies.decode``), unless the response set it already."""
        principal = flask.g.get("gitsync_principal")
        if not isinstance(principal, Principal) or principal.session is None:
            return
        if any(
            c.startswith(self.session_cookie + "=") for c in response.headers.getlist("Set-Cookie")
        ):
            return
        session = principal.session
        if flask.g.get("gitsync_session_renew") or session.flashes != flask.g.get(
            "gitsync_session_flashes", session.flashes
        ):
            self.write_session(response, session)

    def revoke_current(self) -> Session | None:
        """Put the request's session, if it has a valid one, on the revocation list."""
        session, _ = self.sessions.decode(flask.request.cookies.get(self.session_cookie))
        if session is not None:
            self.sessions.revoke(session)
        return session

    def end_session(self, response: WerkzeugResponse) -> Session | None:
        """Revoke the request's session (every replica refuses its cookie from now on) and
        delete the cookie; the session that ended, if any."""
        session = self.revoke_current()
        response.delete_cookie(
            self.session_cookie,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.settings.secure_cookie,
        )
        return session


def _same_origin() -> bool:
    """False when the browser says the request comes from another site or origin (Fetch
    Metadata); requests from clients that do not send the header are judged by the other checks."""
    site = flask.request.headers.get("Sec-Fetch-Site")
    return site is None or site in ("same-origin", "none")


def _secs(wait: float) -> str:
    return str(max(1, int(wait + 0.999)))


def _unauthorized() -> flask.Response:
    return json_error(401, "authentication required", **CHALLENGE)


def _text(status: int, message: str) -> flask.Response:
    return flask.Response(message + "\n", status=status, mimetype="text/plain")


def login_page(guard: Guard, status: int, *, error: str = "", retry: float = 0.0) -> flask.Response:
    """The login page (with a fresh login-form CSRF cookie), showing ``error`` if any."""
    token = secrets.token_urlsafe(32)
    body = flask.render_template(
        "login.html",
        login_csrf=token,
        error=error,
        next=safe_next(flask.request.values.get("next")),
        login_enabled=guard.settings.login_enabled,
    )
    response = flask.make_response(body, status)
    response.set_cookie(
        guard.login_cookie,
        token,
        httponly=True,
        samesite="Strict",
        secure=guard.settings.secure_cookie,
        path="/login",
    )
    if retry:
        response.headers["Retry-After"] = _secs(retry)
    return response


def auth_blueprint(guard: Guard) -> flask.Blueprint:
    """``/login`` (GET form, POST password) and ``/logout`` (POST)."""
    bp = flask.Blueprint("auth", __name__)

    @bp.get("/login")
    def login() -> flask.Response:
        return login_page(guard, 200)

    @bp.post("/login")
    def login_post() -> WerkzeugResponse:
        request = flask.request
        if request.mimetype not in FORM_TYPES:
            return _text(415, "unsupported form encoding")
        if (request.content_length or 0) > MAX_FORM_BYTES:
            return _text(413, "form too large")
        cookie = request.cookies.get(guard.login_cookie, "")
        field = request.form.get(CSRF_FIELD, "")
        if (
            not cookie
            or not secrets.compare_digest(cookie.encode(), field.encode())
            or not _same_origin()
        ):
            return login_page(guard, 403, error="The login form expired. Please try again.")
        wait = guard.limiter.acquire(guard.client())
        if wait > 0:
            log.warning("login rate limited", client=guard.client())
            return login_page(
                guard, 429, error="Too many login attempts. Try again later.", retry=wait
            )
        if not guard.limiter.check_slot():
            return login_page(
                guard, 429, error="Too many login attempts. Try again later.", retry=1
            )
        try:
            role = guard.authenticator.check_login(request.form.get("password", "")[:1024])
        finally:
            guard.limiter.release_slot()
        if role is None:
            log.warning("login failed", client=guard.client())
            return login_page(guard, 401, error="Wrong password or token.")
        response = flask.redirect(safe_next(request.form.get("next")), 303)
        # a new session id on every login (no fixation); the old session, if any, ends
        guard.revoke_current()
        guard.start_session(response, role, "admin" if role == Role.ADMIN else "viewer")
        response.delete_cookie(guard.login_cookie, path="/login")
        log.info("login", role=str(role), client=guard.client())
        return response

    @bp.post("/logout")
    def logout() -> WerkzeugResponse:
        principal = guard.principal()
        if principal.session is not None:
            if flask.request.mimetype not in FORM_TYPES:
                return _text(415, "unsupported form encoding")
            if not principal.session.check_csrf(flask.request.form.get(CSRF_FIELD)):
                return _text(403, "missing or wrong CSRF token")
        response = flask.redirect(flask.url_for("auth.login"), 303)
        ended = guard.end_session(response)
        if ended is not None and guard.after_logout is not None:
            target = guard.after_logout(ended)  # the provider's end-session page, for SSO
            if target:
                response.headers["Location"] = target
        return response

    return bp
