"""A real OpenID Connect provider on loopback for the SSO tests, built from authlib's server parts.

authlib's ``AuthorizationServer`` (Flask) with its authorization code grant, the OpenID Connect
``OpenIDCode`` extension (``nonce`` required) and RFC 7636 ``CodeChallenge`` (PKCE required),
plus what a provider serves around them: discovery, a JWKS, a login page with a username and
password form, and an end-session endpoint. Two users: ``alice`` (group ``team-a``) and ``bob``
(group ``team-b``); ``carol`` is in ``gitsync-admins``.

The tests use it the way a browser and gitsync would (HTTP on 127.0.0.1), and it can misbehave
on purpose: ``tamper`` makes the next ID token it issues wrong in one way (``TAMPERINGS``).
``token_requests`` and ``end_session_requests`` record what gitsync sent.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import flask
from authlib.integrations.flask_oauth2 import AuthorizationServer  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import grants  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oidc.core import UserInfo  # type: ignore[import-untyped]
from authlib.oidc.core.grants import OpenIDCode  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

CLIENT_ID = "gitsync"
CLIENT_SECRET = "gitsync-client-secret-for-tests"
KID = "key-1"
TAMPERINGS = ("wrong-signature", "wrong-audience", "expired", "alg-none", "unknown-kid")


@dataclass(frozen=True)
class User:
    username: str
    password: str = field(repr=False)
    email: str
    groups: tuple[str, ...]


USERS = {
    u.username: u
    for u in (
        User("alice", "alice-password", "alice@example.test", ("team-a",)),
        User("bob", "bob-password", "bob@example.test", ("team-b",)),
        User("carol", "carol-password", "carol@example.test", ("gitsync-admins",)),
    )
}


@dataclass
class Client:
    """The one registered client: gitsync, a confidential client (client_secret_basic)."""

    redirect_uris: list[str]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "profile", "email", "groups"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Token:
    access_token: str
    scope: str
    user: User


class OidcProvider:
    """The provider's state and its Flask app (``serve`` runs it on loopback)."""

    def __init__(self, issuer: str, redirect_uris: list[str]):
        self.issuer = issuer
        self.client = Client(redirect_uris)
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig"}, private=True)
        self.codes: dict[str, Code] = {}
        self.tokens: list[Token] = []
        self.tamper: str | None = None
        self.token_requests: list[dict[str, str]] = []
        self.end_session_requests: list[dict[str, str]] = []
        self.app = self._build_app()

    # -- tampered tokens ---------------------------------------------------------------------

    def tampered(self, id_token: str, how: str) -> str:
        """``id_token`` made wrong in one of the ``TAMPERINGS`` ways."""
        claims = jwt.decode(id_token, self.key).claims
        header = {"alg": "RS256", "kid": KID}
        if how == "wrong-signature":
            other = RSAKey.generate_key(2048, private=True)
            return jwt.encode(header, claims, other)
        if how == "wrong-audience":
            return jwt.encode(header, {**claims, "aud": ["someone-else"]}, self.key)
        if how == "expired":
            now = int(time.time())
            return jwt.encode(header, {**claims, "iat": now - 7200, "exp": now - 3600}, self.key)
        if how == "alg-none":
            parts = [_b64({"alg": "none", "kid": KID}), _b64(claims)]
            return ".".join(parts) + "."
        if how == "unknown-kid":
            other = RSAKey.generate_key(2048, parameters={"kid": "unknown-kid"}, private=True)
            return jwt.encode({"alg": "RS256", "kid": "unknown-kid"}, claims, other)
        raise ValueError(f"unknown tampering {how!r}")

    # -- the app -----------------------------------------------------------------------------

    def _build_app(self) -> flask.Flask:
        app = flask.Flask("oidc-provider")
        app.secret_key = secrets.token_bytes(32)
        provider = self

        def query_client(client_id: str) -> Client | None:
            return provider.client if client_id == provider.client.client_id else None

        def save_token(token: dict[str, Any], request: Any) -> None:
            provider.tokens.append(Token(token["access_token"], token["scope"], request.user))

        server = AuthorizationServer(app, query_client=query_client, save_token=save_token)

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]  # noqa: RUF012

            def save_authorization_code(self, code: str, request: Any) -> None:
                payload = request.payload
                provider.codes[code] = Code(
                    code=code,
                    client_id=payload.client_id,
                    redirect_uri=payload.redirect_uri,
                    scope=request.scope,
                    user=request.user,
                    nonce=payload.data.get("nonce"),
                    code_challenge=payload.data.get("code_challenge"),
                    code_challenge_method=payload.data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                item = provider.codes.get(code)
                return item if item and item.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)  # one use only

            def authenticate_user(self, authorization_code: Code) -> User:
                return authorization_code.user

        class OpenIdCode(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, request: Any) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return provider.key

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {"iss": provider.issuer, "aud": [client.client_id]}

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": KID}

            def generate_user_info(self, user: User, scope: str) -> Any:
                info = UserInfo(sub=f"user-{user.username}", preferred_username=user.username)
                info["email"] = user.email
                info["groups"] = list(user.groups)
                return info

        server.register_grant(CodeGrant, [OpenIdCode(require_nonce=True), CodeChallenge(True)])

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return flask.jsonify(
                issuer=provider.issuer,
                authorization_endpoint=provider.issuer + "/authorize",
                token_endpoint=provider.issuer + "/token",
                jwks_uri=provider.issuer + "/jwks",
                end_session_endpoint=provider.issuer + "/logout",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["client_secret_basic"],
                scopes_supported=["openid", "profile", "email", "groups"],
            )

        @app.get("/favicon.ico")
        def favicon() -> Any:
            return flask.Response(status=204)  # a browser asks; a 404 would be a console error

        @app.get("/jwks")
        def jwks() -> Any:
            return flask.jsonify(keys=[provider.key.as_dict(private=False)])

        @app.get("/authorize")
        def authorize_form() -> Any:
            return flask.render_template_string(LOGIN_PAGE, error="")

        @app.post("/authorize")
        def authorize() -> Any:
            form = flask.request.form
            user = USERS.get(form.get("username", ""))
            if user is None or not secrets.compare_digest(
                form.get("password", "").encode(), user.password.encode()
            ):
                return flask.render_template_string(LOGIN_PAGE, error="Wrong username or password")
            return server.create_authorization_response(grant_user=user)

        @app.post("/token")
        def token() -> Any:
            provider.token_requests.append(
                {k: v for k, v in flask.request.form.items() if k != "client_secret"}
            )
            response = server.create_token_response()
            how, provider.tamper = provider.tamper, None
            body = response.get_json(silent=True) or {}
            if how and "id_token" in body:
                body["id_token"] = provider.tampered(body["id_token"], how)
                response.set_data(json.dumps(body))
            return response

        @app.get("/logout")
        def end_session() -> Any:
            provider.end_session_requests.append(dict(flask.request.args))
            target = flask.request.args.get("post_logout_redirect_uri", "")
            if target.startswith(
                tuple(u.rsplit("/auth/", 1)[0] for u in provider.client.redirect_uris)
            ):
                return flask.redirect(target, 303)
            return "signed out\n"

        return app


LOGIN_PAGE = """<!doctype html>
<title>Test provider - sign in</title>
<h1>Sign in to the test provider</h1>
{% if error %}<p id="error">{{ error }}</p>{% endif %}
<form method="post">
  <label>Username <input id="username" name="username" autocomplete="username"></label>
  <label>Password <input id="password" name="password" type="password"></label>
  <button id="sign-in" type="submit">Sign in</button>
</form>
"""


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@contextmanager
def serve_provider(port: int, redirect_uris: list[str]) -> Iterator[OidcProvider]:
    """The provider on ``http://127.0.0.1:<port>`` (werkzeug, threaded) while the block runs."""
    provider = OidcProvider(f"http://127.0.0.1:{port}", redirect_uris)
    server = make_server("127.0.0.1", port, provider.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="oidc-provider", daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(timeout=10)
