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
4. **Role** - ``api_action`` / ``form_action`` refuse a principal that may act nowhere (403);
   then ``allow(action)`` asks the one ``Authorizer`` (``gitsync.web.rbac``) about the route's
   project. A refusal is the same 403 whether the Application exists or not (the decision reads
   only the namespace in the URL), and every action, allowed or not, leaves an audit line
   (``event=audit``) and a Kubernetes Event on the Application.

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

from gitsync.web.audit import EventBudget
from gitsync.web.auth import (
    ANONYMOUS,
    NOBODY,
    Authenticator,
    AuthSettings,
    LoginLimiter,
    Method,
    Principal,
    Role,
    Via,
    client_address,
    global_grant,
)
from gitsync.web.rbac import Action, Authorizer
from gitsync.web.sessions import Revocations, Session, SessionCookies
from gitsync.web.tokens import TokenStore

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


RecordEvent = Callable[[tuple[str, str], str, str, bool], None]
_GLOBAL_ACTIONS = (Action.ADMIN,)
ActionOf = Action | Callable[[dict[str, Any]], Action | None]


class Guard:
    """Authentication state for one app: sessions, the login limiter and the checks; and the
    authorizer every route asks (``allow``)."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] | None = None,
        authorizer: Authorizer | None = None,
        tokens: TokenStore | None = None,
        record_event: RecordEvent | None = None,
        revocations: Revocations | None = None,
    ):
        self.settings = settings
        self.authenticator = Authenticator(settings)
        self.authorizer = authorizer or Authorizer()
        self.tokens = tokens
        self.record_event = record_event
        self.event_budget = EventBudget(clock=clock) if clock else EventBudget()
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
            found = None
            if scheme.lower() == "bearer" and token.strip():
                found = self._bearer(token.strip())
            if found is None:
                wait = self.limiter.acquire(self.client())
                if wait > 0:
                    flask.abort(
                        json_error(429, "too many failed attempts", **{"Retry-After": _secs(wait)})
                    )
                flask.abort(json_error(401, "invalid token", **CHALLENGE))
            return found
        session, renew = self.sessions.decode(flask.request.cookies.get(self.session_cookie))
        if session is not None:
            flask.g.gitsync_session_renew = renew
            flask.g.gitsync_session_flashes = list(session.flashes)
            oidc = session.via == "oidc"
            return Principal(
                session.name,
                Via.SESSION,
                Method.OIDC if oidc else Method.PASSWORD,
                global_grant(session.role),
                session.groups,
                session,
                user=(session.email or session.subject) if oidc else "",
            )
        return ANONYMOUS if self.settings.anonymous_read else NOBODY

    def _bearer(self, token: str) -> Principal | None:
        """A static token (a global role) or a scoped API token that has not expired."""
        role = self.authenticator.check_bearer(token)
        if role is not None:
            name = "api-token" if role == Role.ADMIN else "read-only-token"
            return Principal(name, Via.BEARER, Method.STATIC_TOKEN, global_grant(role))
        scoped = self.tokens.check(token) if self.tokens is not None else None
        if scoped is None:
            return None
        return Principal(
            f"token:{scoped.name}", Via.BEARER, Method.API_TOKEN, (scoped.grant,), token=scoped.name
        )

    # -- authorization -----------------------------------------------------------------------

    def allows(self, action: Action, target: str | tuple[str, str] | None) -> bool:
        return self.authorizer.allows(self.principal(), action, target)

    def visible(self, objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The objects (Applications, ApplicationSets) whose project the principal may read."""
        principal = self.principal()
        return [o for o in objs if self.authorizer.allows(principal, Action.GET, _namespace_of(o))]

    def allow(self, action: ActionOf) -> Callable[[F], F]:
        """The authorization of a route with ``namespace`` (and ``name``) in its path: refused
        with the same 403 whether the Application exists or not; actions other than ``get``
        are audited. ``action`` may be a function of the route's arguments (None: an unknown
        action, which the view answers)."""

        def decorate(view: F) -> F:
            @wraps(view)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                wanted = action(kwargs) if callable(action) else action
                if wanted is None:
                    return view(*args, **kwargs)
                namespace = str(kwargs.get("namespace", ""))
                key = (namespace, str(kwargs.get("name", "")))
                if not self.allows(wanted, namespace):
                    if wanted != Action.GET:
                        self.audit(wanted, key, "denied", 403)
                    return self.forbidden(wanted, namespace)
                result = view(*args, **kwargs)
                if wanted != Action.GET:
                    status = flask.make_response(result).status_code
                    self.audit(wanted, key, "requested" if status < 400 else "failed", status)
                return result

            wrapped.gitsync_action = action  # type: ignore[attr-defined]
            return cast(F, wrapped)

        return decorate

    def allow_global(self, action: Action) -> Callable[[F], F]:
        """The authorization of a route about no Application (token management): ``action``
        must be granted globally; refusals of writes are audited like ``allow``'s."""

        def decorate(view: F) -> F:
            @wraps(view)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                if not self.allows(action, None):
                    if flask.request.method != "GET":
                        self.audit_global(action, flask.request.path, "denied", 403)
                    return json_error(403, f"forbidden: {action} needs a role granted globally")
                return view(*args, **kwargs)

            wrapped.gitsync_action = action  # type: ignore[attr-defined]
            return cast(F, wrapped)

        return decorate

    def _refuse_acting(self, view: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        """Audit the coarse refusal of ``api_action`` / ``form_action`` (a principal that may
        act nowhere) like ``allow``'s own, when the route names its action and Application."""
        action = getattr(view, "gitsync_action", None)
        wanted = action(kwargs) if callable(action) else action
        if isinstance(wanted, Action) and "namespace" in kwargs:
            key = (str(kwargs["namespace"]), str(kwargs.get("name", "")))
            self.audit(wanted, key, "denied", 403)
        elif isinstance(wanted, Action):
            self.audit_global(wanted, flask.request.path, "denied", 403)

    def forbidden(self, action: Action, namespace: str) -> flask.Response:
        """The one refusal: it names only what the request itself named."""
        message = f"forbidden: {action} is not allowed in project {namespace!r}"
        if flask.request.path.startswith("/api/"):
            return json_error(403, message)
        return _text(403, message)

    def audit_global(self, action: Action, what: str, result: str, status: int) -> None:
        """An audit line for an action on no Application (token management)."""
        self._audit_line(action, what, result, status)

    def _audit_line(
        self, action: Action, target: str, result: str, status: int, **extra: object
    ) -> None:
        principal = self.principal()
        log.info(
            "audit",
            who=principal.name,
            method=str(principal.method),
            action=str(action),
            **{("app" if action not in _GLOBAL_ACTIONS else "target"): target[:300]},
            result=result,
            status=status,
            client=self.client(),
            path=flask.request.path[:300],
            **extra,
        )

    def audit(self, action: Action, key: tuple[str, str], result: str, status: int) -> None:
        """One ``event=audit`` log line, and an Event on the Application when it exists and the
        ``EventBudget`` allows one (``gitsync.web.audit``)."""
        principal = self.principal()
        client = self.client()
        reason = {"denied": "ActionDenied", "requested": "ActionRequested"}.get(
            result, "ActionFailed"
        )
        record = self.record_event is not None and self.event_budget.allow(
            (key, reason, principal.name, str(action))
        )
        self._audit_line(action, f"{key[0]}/{key[1]}", result, status, eventRecorded=record)
        if not record or self.record_event is None:
            return
        message = f"{action} by {principal.name} ({principal.method}) from {client}: {status}"
        try:
            self.record_event(key, reason, message[:1000], result != "requested")
        except Exception as exc:  # an audit Event that cannot be written must not fail the call
            log.warning("audit event not recorded", app=f"{key[0]}/{key[1]}", error=str(exc)[:300])

    # -- decorators --------------------------------------------------------------------------

    def page(self, view: F) -> F:
        """A page that needs read access: anyone else is sent to the login page."""

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if self.principal().via == Via.NONE:
                return flask.redirect(
                    flask.url_for("auth.login", next=flask.request.full_path.rstrip("?")), 303
                )
            return view(*args, **kwargs)

        return cast(F, wrapped)

    def api_read(self, view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if self.principal().via == Via.NONE:
                return _unauthorized()
            return view(*args, **kwargs)

        return cast(F, wrapped)

    def api_action(self, view: F) -> F:
        """A JSON API action: authenticated, ``application/json``, CSRF when by session, admin."""

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = self.principal()
            if not principal.authenticated:
                return _unauthorized()
            if flask.request.mimetype not in JSON_TYPES:
                return json_error(415, "send the request body as application/json")
            if principal.via == Via.SESSION:
                refused = self._csrf_refusal(principal, flask.request.headers.get(CSRF_HEADER))
                if refused:
                    return json_error(403, refused)
            if not self.authorizer.may_act_somewhere(principal):
                self._refuse_acting(view, kwargs)
                return json_error(403, "this account may read but not act")
            return view(*args, **kwargs)

        return cast(F, wrapped)

    def form_action(self, view: F) -> F:
        """A form post from our own pages: a session, a form encoding, its CSRF field, admin."""

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = self.principal()
            if not principal.authenticated:
                return flask.redirect(flask.url_for("auth.login"), 303)
            if principal.via != Via.SESSION:
                return _text(403, "forms need a browser session; use the JSON API with a token")
            if flask.request.mimetype not in FORM_TYPES:
                return _text(415, "unsupported form encoding")
            if (flask.request.content_length or 0) > MAX_FORM_BYTES:
                return _text(413, "form too large")
            refused = self._csrf_refusal(principal, flask.request.form.get(CSRF_FIELD))
            if refused:
                return _text(403, refused)
            if not self.authorizer.may_act_somewhere(principal):
                self._refuse_acting(view, kwargs)
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
        self, response: WerkzeugResponse, role: Role | None, name: str, **identity: Any
    ) -> Session:
        """A new session (a new id on every login: no fixation); ``identity`` is what
        ``SessionCookies.create`` takes besides the role and name (subject, groups, ...)."""
        session = self.sessions.create(role, name, **identity)
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


def _namespace_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("namespace", "")) if isinstance(meta, dict) else ""


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
