"""Single sign-on with an OpenID Connect provider: the relying party's side of the code flow.

``OidcClient`` talks to the provider; ``gitsync.web.sso`` wires it to ``/login/oidc``,
``/auth/callback`` and logout. The flow is the authorization code flow with PKCE (S256), a
``state`` bound to the browser and a ``nonce`` bound to the ID token.

Why it is shaped this way:

* **The library checks the token.** authlib builds the authorization request (PKCE challenge
  included) and exchanges the code; the ID token is verified the way authlib's own OpenID client
  does it - ``joserfc.jwt.decode`` against the provider's JWKS with the algorithms the provider
  announces (never ``none``, never a shared-secret HMAC), then authlib's ``CodeIDToken`` claims
  checks: ``iss`` equal to ``--oidc-issuer``, ``aud`` holding ``--oidc-client-id``, ``exp``/
  ``iat`` (60 s leeway), ``nonce`` equal to the one sent, ``azp`` and ``at_hash``. Nothing here
  parses a JWT by hand.
* **Keys rotate.** Discovery and the JWKS are cached; a token signed with a ``kid`` the cache
  does not know makes one JWKS refresh, at most one per ``jwks_refresh_seconds`` - so a flood of
  forged tokens with made-up key ids cannot make gitsync hammer the provider.
* **The provider is untrusted input too.** Every request to it has a deadline (``timeout``) and
  a size limit (``max_response_bytes``), enforced while the body is read; the discovery document
  must name the configured issuer. The client secret is sent only to the token endpoint (HTTP
  Basic) and never logged; errors carry the provider's error *code*, not its free text.
* The identity that comes out - subject, name, email, groups (``--oidc-groups-claim``) - is all
  the rest of gitsync sees of the provider.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import structlog
from authlib.integrations.base_client.errors import OAuthError  # type: ignore[import-untyped]
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from gitsync.errors import TerminalError, TransientError

log = structlog.get_logger(__name__)

DEFAULT_SCOPES = ("openid", "profile", "email", "groups")
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY_SECONDS = 60
MAX_GROUPS = 256
MAX_CLAIM_CHARS = 256
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class OidcConfigError(ValueError):
    """An ``--oidc-*`` flag that ``gitsync serve`` refuses to start with."""


class OidcLoginError(TerminalError):
    """The provider's answer or the ID token is refused: this login fails; trying the same
    answer again fails again. The message is safe to show to the user."""


class OidcUnavailable(TransientError):
    """The provider could not be asked (down, too slow, too large an answer): try again later."""


@dataclass(frozen=True)
class OidcSettings:
    """What ``gitsync serve`` was told about the provider (``--oidc-*``, ``--external-url``)."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    post_logout_uri: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    groups_claim: str = "groups"
    admin_groups: tuple[str, ...] = ()
    timeout: float = 10.0
    max_response_bytes: int = 1 << 20
    jwks_refresh_seconds: float = 60.0
    metadata_ttl: float = 3600.0

    @classmethod
    def build(
        cls,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        external_url: str,
        scopes: str = "",
        groups_claim: str = "groups",
        admin_groups: tuple[str, ...] = (),
        **limits: Any,
    ) -> OidcSettings:
        issuer = issuer.rstrip("/")
        parts = urlsplit(issuer)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise OidcConfigError(f"--oidc-issuer {issuer!r}: an https:// URL with a host")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise OidcConfigError(
                "--oidc-issuer: plain http:// is allowed for a loopback address only"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise OidcConfigError("--oidc-issuer: no query, fragment or user info")
        if not client_id.strip():
            raise OidcConfigError("--oidc-client-id is empty")
        if not external_url:
            raise OidcConfigError("--oidc-issuer needs --external-url (the redirect URI's base)")
        scope_list = tuple(scopes.replace(",", " ").split()) if scopes else DEFAULT_SCOPES
        if "openid" not in scope_list:
            raise OidcConfigError("--oidc-scopes must include openid")
        if not groups_claim.strip():
            raise OidcConfigError("--oidc-groups-claim is empty")
        base = external_url.rstrip("/")
        return cls(
            issuer=issuer,
            client_id=client_id.strip(),
            client_secret=client_secret,
            redirect_uri=base + "/auth/callback",
            post_logout_uri=base + "/login",
            scopes=scope_list,
            groups_claim=groups_claim.strip(),
            admin_groups=tuple(admin_groups),
            **limits,
        )

    @property
    def issuer_origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in. ``groups`` come from ``--oidc-groups-claim``."""

    subject: str
    name: str
    email: str
    groups: tuple[str, ...]


class OidcClient:
    """The provider as gitsync uses it; thread-safe (one per ``gitsync serve``)."""

    def __init__(self, settings: OidcSettings, *, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: dict[str, Any] | None = None
        self._jwks_at = float("-inf")
        self.jwks_fetches = 0  # how often the JWKS was fetched (tests, metrics)

    # -- provider documents ------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The discovery document (cached for ``metadata_ttl``)."""
        with self._lock:
            if self._metadata is not None and self.clock() - self._metadata_at < (
                self.settings.metadata_ttl
            ):
                return self._metadata
        url = self.settings.issuer + "/.well-known/openid-configuration"
        document = self._get_json(url)
        if document.get("issuer") != self.settings.issuer:
            raise OidcUnavailable(
                "the provider's discovery document names another issuer than --oidc-issuer"
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(key), str):
                raise OidcUnavailable(f"the provider's discovery document has no {key}")
        with self._lock:
            self._metadata, self._metadata_at = document, self.clock()
        return document

    def key_set(self, *, unknown_kid: bool = False) -> KeySet:
        """The provider's signing keys; ``unknown_kid`` refetches them, at most once per
        ``jwks_refresh_seconds`` (otherwise the cached set is returned)."""
        with self._lock:
            cached = self._jwks
            fresh = self.clock() - self._jwks_at < self.settings.jwks_refresh_seconds
        if cached is None or (unknown_kid and not fresh):
            cached = self._get_json(str(self.metadata()["jwks_uri"]))
            with self._lock:
                self._jwks, self._jwks_at = cached, self.clock()
                self.jwks_fetches += 1
        try:
            return KeySet.import_key_set(cached)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise OidcUnavailable(
                f"the provider's JWKS is not valid: {type(exc).__name__}"
            ) from None

    # -- the code flow -----------------------------------------------------------------------

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        endpoint = str(self.metadata()["authorization_endpoint"])
        with self._oauth() as oauth:
            url, _ = oauth.create_authorization_url(
                endpoint, state=state, code_verifier=code_verifier, nonce=nonce
            )
        return str(url)

    def login(self, *, code: str, code_verifier: str, nonce: str) -> tuple[Identity, str]:
        """Exchange ``code`` (with the PKCE verifier) and verify the ID token: the identity and
        the raw ID token (kept for RP-initiated logout). Raises ``OidcLoginError`` /
        ``OidcUnavailable``."""
        endpoint = str(self.metadata()["token_endpoint"])
        try:
            with self._oauth() as oauth:
                token = oauth.fetch_token(
                    endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except OAuthError as exc:
            raise OidcLoginError(
                f"the identity provider refused the code: {_error_code(exc.error)}"
            ) from None
        except requests.RequestException as exc:
            raise OidcUnavailable(
                f"the identity provider's token endpoint: {_reason(exc)}"
            ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise OidcLoginError("the identity provider sent no ID token")
        claims = self.verify_id_token(id_token, nonce=nonce, access_token=token.get("access_token"))
        return self._identity(claims), id_token

    def verify_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """The ID token's claims once the library has checked its signature and claims."""
        metadata = self.metadata()
        announced = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in announced if a in ASYMMETRIC_ALGORITHMS]
        if not algorithms:
            raise OidcUnavailable("the provider announces no asymmetric ID token algorithm")
        try:
            try:
                decoded = jwt.decode(id_token, self.key_set(), algorithms=algorithms)
            except InvalidKeyIdError:
                decoded = jwt.decode(
                    id_token, self.key_set(unknown_kid=True), algorithms=algorithms
                )
        except InvalidKeyIdError:
            raise OidcLoginError(
                "the ID token is signed with a key the provider does not list"
            ) from None
        except (JoseError, ValueError) as exc:
            raise OidcLoginError(f"the ID token's signature is not valid ({_jose(exc)})") from None
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.settings.client_id}
        if access_token:
            params["access_token"] = access_token
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": self.settings.issuer},
                "aud": {"essential": True, "value": self.settings.client_id},
            },
            params,
        )
        try:
            claims.validate(now=int(time.time()), leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            raise OidcLoginError(f"the ID token was refused ({_jose(exc)})") from None
        return dict(claims)

    def end_session_url(self, id_token: str) -> str | None:
        """Where to send the browser to end the provider's session too (RP-initiated logout),
        or None when the provider has no ``end_session_endpoint``."""
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except OidcUnavailable:
            return None
        if not isinstance(endpoint, str) or not endpoint:
            return None
        query = {
            "client_id": self.settings.client_id,
            "post_logout_redirect_uri": self.settings.post_logout_uri,
        }
        if id_token:
            query["id_token_hint"] = id_token
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)

    # -- plumbing ----------------------------------------------------------------------------

    def _identity(self, claims: dict[str, Any]) -> Identity:
        subject = _text(claims.get("sub"))
        if not subject:
            raise OidcLoginError("the ID token has no subject")
        raw_groups = claims.get(self.settings.groups_claim) or []
        if isinstance(raw_groups, str):
            raw_groups = [raw_groups]
        if not isinstance(raw_groups, list):
            raise OidcLoginError(f"the ID token's {self.settings.groups_claim} claim is not a list")
        groups = tuple(_text(g) for g in raw_groups[:MAX_GROUPS] if isinstance(g, str))
        # an address the provider says it has not verified names nobody (``user:`` bindings)
        email = _text(claims.get("email")) if claims.get("email_verified") is not False else ""
        name = _text(claims.get("preferred_username")) or email or subject
        return Identity(subject=subject, name=name, email=email, groups=groups)

    def _oauth(self) -> Any:
        oauth = OAuth2Session(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method's name
            scope=" ".join(self.settings.scopes),
            redirect_uri=self.settings.redirect_uri,
            code_challenge_method="S256",
            default_timeout=self.settings.timeout,
        )
        oauth.trust_env = False  # no proxy or .netrc credentials from the environment
        oauth.hooks["response"].append(self._bounded_body())
        return oauth

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            with requests.Session() as session:
                session.trust_env = False
                response = session.get(
                    url,
                    timeout=self.settings.timeout,
                    allow_redirects=False,
                    hooks={"response": [self._bounded_body()]},
                    headers={"Accept": "application/json"},
                )
                if response.status_code != 200:
                    raise OidcUnavailable(f"{url} answered HTTP {response.status_code}")
                document = response.json()
        except requests.RequestException as exc:
            raise OidcUnavailable(f"cannot fetch {url}: {_reason(exc)}") from None
        except ValueError:
            raise OidcUnavailable(f"{url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise OidcUnavailable(f"{url} did not answer a JSON object")
        return document

    def _bounded_body(self) -> Callable[..., Any]:
        """A requests response hook that reads the body itself, within the size limit and the
        deadline (requests' own ``timeout`` bounds each read, not the whole body)."""
        limit = self.settings.max_response_bytes
        deadline = time.monotonic() + self.settings.timeout

        def read(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
            body = bytearray()
            # read1: whatever has arrived (up to 64 KiB), so the deadline is checked while a
            # slow provider drips its answer, not only once a large read is filled
            while chunk := response.raw.read1(64 * 1024, decode_content=True):
                body += chunk
                if len(body) > limit:
                    response.close()
                    raise OidcUnavailable(
                        f"the identity provider's answer is larger than {limit} bytes"
                    )
                if time.monotonic() > deadline:
                    response.close()
                    raise OidcUnavailable("the identity provider's answer took too long")
            # requests serves .content/.json() from here once the body was read
            response._content = bytes(body)
            return response

        return read


def _text(value: Any) -> str:
    return value[:MAX_CLAIM_CHARS] if isinstance(value, str) else ""


def _error_code(code: Any) -> str:
    """An OAuth error code (``invalid_grant``); anything that is not one is not echoed."""
    text = str(code or "")
    if text and len(text) <= 64 and all(c.isalnum() or c in "_-." for c in text):
        return text
    return "an error"


def _jose(exc: Exception) -> str:
    """The library's error code, and the claim it names (``invalid_claim: nonce``)."""
    code = _error_code(getattr(exc, "error", "") or type(exc).__name__)
    claim = getattr(exc, "claim", "")
    return f"{code}: {_error_code(claim)}" if claim else code


def _reason(exc: requests.RequestException) -> str:
    return type(exc).__name__
