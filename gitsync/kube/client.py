"""A small dict-in, dict-out client for the Kubernetes API.

Why not the generated ``kubernetes.client`` API classes: gitsync handles arbitrary kinds (CRDs,
anything in Git) as plain dicts, needs server-side apply with a chosen field manager, dry-run, raw
watches and an exact count of the requests it makes (the engine promises zero writes when nothing
changed). The ``kubernetes`` package is still used for what it does well - reading kubeconfig files
and in-cluster config, exec/token refresh - and then requests go through one urllib3 pool.

Errors come back as ``ApiError`` carrying the HTTP status and the API server's Status message, as
the subclass that says what the reconcile loop does next (``api_error_class``): unreachable and
5xx retry with backoff, 409 retries, 429 waits for its ``Retry-After``, any other 4xx stalls.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import Configuration

from gitsync.errors import GitsyncError, TerminalError, TransientError, WaitingError

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ApiError(GitsyncError):
    """An API request failed. ``status`` is the HTTP code (0 when the server was unreachable).

    ``ApiError(status, ...)`` builds the subclass that says what the reconcile loop does next
    (``api_error_class``), so every raise site - the client's own and the adapters' that speak
    its language - is classified without choosing a class, and ``except ApiError`` still
    catches them all. Decide by class (``errors.next_step``), not by ``status``; ``status``
    stays for the few callers that need the exact code (410 on a watch, 404 on a get)."""

    def __new__(cls, status: int, *args: Any, **kwargs: Any) -> ApiError:
        return super().__new__(api_error_class(status) if cls is ApiError else cls)

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ):
        self.status = status
        self.reason = reason
        self.message = message
        self.method = method
        self.path = path
        self.retry_after = retry_after
        """Seconds the server asked us to wait (``Retry-After`` on a 429 or 503), if it said."""
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}{status} {reason}: {message}".strip())

    @property
    def transient(self) -> bool:
        """The server was unreachable or overloaded (not: it refused this request)."""
        return isinstance(self, ApiUnavailableError | ApiThrottledError)


class ApiUnavailableError(ApiError, TransientError):
    """Unreachable (0) or a 5xx: the server is down or failing; retry with backoff."""


class ApiThrottledError(ApiError, WaitingError):
    """429: the server asked us to come back after ``retry_after`` seconds."""


class ApiConflictError(ApiError, TransientError):
    """409: someone wrote the object between our read and our write; read again and retry."""


class ApiRejectedError(ApiError, TerminalError):
    """Any other 4xx (400 bad request, 403 forbidden, 404 not found, 422 invalid): the same
    request will be refused again until the object, the spec or gitsync's permissions change."""

    @property
    def fix(self) -> str:
        """What a person does about it, for a Stalled condition."""
        if self.status == 401:
            return "check the controller's credentials for the cluster"
        if self.status == 403:
            return "grant gitsync's ServiceAccount this verb on this resource (RBAC)"
        if self.status == 404:
            return "create the missing object or kind, or correct its name"
        if self.status in (400, 422):
            return "correct the object the server rejected"
        return "correct the request's input"


def api_error_class(status: int) -> type[ApiError]:
    """The class of an API failure with HTTP ``status``: what the loop does next."""
    if status == 0 or status >= 500:
        return ApiUnavailableError
    if status == 429:
        return ApiThrottledError
    if status == 409:
        return ApiConflictError
    return ApiRejectedError


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the API server sends delta-seconds, never a date)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


@dataclass
class RequestLog:
    """Counts requests by (verb, HTTP status); tests and metrics read it."""

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    listeners: list[Callable[[str, int], None]] = field(default_factory=list)

    def record(self, verb: str, status: int) -> None:
        with self.lock:
            self.counts[(verb, status)] += 1
        for listener in self.listeners:
            listener(verb, status)

    def writes(self) -> int:
        with self.lock:
            return sum(n for (verb, _), n in self.counts.items() if verb in WRITE_VERBS)

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())


@dataclass(frozen=True)
class APIResource:
    """What discovery says about a kind: its plural name and whether it is namespaced."""

    group_version: str
    kind: str
    name: str
    namespaced: bool
    verbs: tuple[str, ...]


AUTH_REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class ServerCapabilities:
    """What a Helm chart sees of a cluster as ``.Capabilities``: the server's ``gitVersion`` and
    every group/version it serves, each also with its kinds (``apps/v1``, ``apps/v1/Deployment``,
    ``v1/ConfigMap``), the form ``helm template --api-versions`` takes."""

    kube_version: str
    api_versions: tuple[str, ...]


def _closer(resp: urllib3.BaseHTTPResponse) -> tuple[threading.Event, Callable[[], None]]:
    """``close()`` for a streamed response - safe from any thread, more than once: shuts the
    socket down so a blocked read ends at once - and the event it sets."""
    closed = threading.Event()

    def close() -> None:
        if closed.is_set():
            return
        closed.set()
        # RuntimeError/ValueError: already released or closed, nothing left to interrupt.
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            resp.shutdown()

    return closed, close


class KubeClient:
    """Talks to one API server. Thread-safe; share one per cluster."""

    def __init__(
        self, configuration: Configuration, *, user_agent: str = "gitsync", pool_size: int = 32
    ):
        self._cfg = configuration
        self.host = configuration.host.rstrip("/")
        self.user_agent = user_agent
        self.requests = RequestLog()
        self._discovery: dict[str, dict[str, APIResource]] = {}
        self._discovery_lock = threading.Lock()
        self._auth_lock = threading.Lock()
        self._auth: tuple[float, dict[str, str]] | None = None  # (when, headers)
        tls: dict[str, Any] = {}
        if self.host.startswith("https"):
            if configuration.verify_ssl:
                tls["cert_reqs"] = "CERT_REQUIRED"
                if configuration.ssl_ca_cert:
                    tls["ca_certs"] = configuration.ssl_ca_cert
            else:
                tls["cert_reqs"] = "CERT_NONE"
            if configuration.cert_file:
                tls["cert_file"] = configuration.cert_file
            if configuration.key_file:
                tls["key_file"] = configuration.key_file
            if configuration.tls_server_name:
                tls["server_hostname"] = configuration.tls_server_name
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=pool_size, block=False, **tls)
        self._impersonation: dict[str, str] = {}
        self._principal: KubeClient | None = None  # the client an impersonating one came from
        self.impersonated_user = ""
        """The user this client acts as (``Impersonate-User``); "" for its own credentials."""

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, *, context: str | None = None, user_agent: str = "gitsync"
    ) -> KubeClient:
        """From a kubeconfig file (``None``: ``$KUBECONFIG`` or ``~/.kube/config``)."""
        cfg = Configuration()
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=cfg
        )
        return cls(cfg, user_agent=user_agent)

    @classmethod
    def from_kubeconfig_dict(
        cls, doc: dict[str, Any], *, context: str | None = None, user_agent: str = "gitsync"
    ) -> KubeClient:
        """From a parsed kubeconfig (e.g. a registered remote cluster's Secret)."""
        cfg = Configuration()
        kube_config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
            doc, context=context, client_configuration=cfg
        )
        return cls(cfg, user_agent=user_agent)

    @classmethod
    def in_cluster(cls, *, user_agent: str = "gitsync") -> KubeClient:
        """From the pod's service-account token and CA."""
        cfg = Configuration()
        kube_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return cls(cfg, user_agent=user_agent)

    @classmethod
    def from_token(
        cls, host: str, token: str, *, ca_cert: str, user_agent: str = "gitsync"
    ) -> KubeClient:
        """From an API server URL, a bearer token and a CA bundle path."""
        cfg = Configuration()
        cfg.host = host
        cfg.api_key = {"authorization": token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        cfg.ssl_ca_cert = ca_cert
        cfg.verify_ssl = True
        return cls(cfg, user_agent=user_agent)

    def impersonating(self, user: str) -> KubeClient:
        """This client acting as ``user`` (Kubernetes impersonation), sharing the connection
        pool, the credentials, the discovery cache and the request log.

        Every request carries ``Impersonate-User``, so the API server authorizes it as that
        user and this client's own identity only needs the ``impersonate`` verb. Discovery is
        still read as this client: which kinds exist is not the impersonated user's to hide.
        """
        if not user:
            raise ValueError("impersonating needs a user name")
        clone = copy.copy(self)
        clone._principal = self._principal or self
        clone._impersonation = {"Impersonate-User": user}
        clone.impersonated_user = user
        return clone

    def impersonating_service_account(self, namespace: str, name: str) -> KubeClient:
        """This client acting as the ServiceAccount ``namespace/name``.

        Only ``Impersonate-User: system:serviceaccount:<ns>:<name>`` is sent: for a
        ServiceAccount user without groups the API server adds exactly the account's groups
        itself (``system:serviceaccounts``, ``system:serviceaccounts:<ns>``,
        ``system:authenticated``). Sending them would also need ``impersonate`` on ``groups``,
        a cluster-wide right the controller then holds for any group (``system:masters``
        included) - so it is not asked for.
        """
        return self.impersonating(f"system:serviceaccount:{namespace}:{name}")

    # -- raw requests -------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        """The credentials' headers, refreshed at most every ``AUTH_REFRESH_SECONDS``.

        ``get_api_key_with_prefix`` runs the kubeconfig loader's token refresh hook, which sets
        half a dozen ``Configuration`` attributes, and every one of those re-reads the proxy
        settings from the environment: 45 µs of CPU under the GIL per request on an idle
        machine here, up to 0.4 ms in a loaded profile, against 0.6 µs for the kept headers. A
        token changes on the scale of minutes (an exec plugin's expiry, a rotated
        service-account token); a 401 drops the kept headers at once.
        """
        now = time.monotonic()
        with self._auth_lock:
            kept = self._auth
        if kept is not None and now - kept[0] < AUTH_REFRESH_SECONDS:
            return kept[1]
        headers: dict[str, str] = {}
        auth = self._cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        if auth:
            headers["Authorization"] = auth
        elif self._cfg.username or self._cfg.password:
            headers.update(
                urllib3.make_headers(basic_auth=f"{self._cfg.username}:{self._cfg.password}")
            )
        with self._auth_lock:
            self._auth = (now, headers)
        return headers

    def _forget_auth(self) -> None:
        with self._auth_lock:
            self._auth = None

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        # the credentials are the principal's: one kept header, one refresh, for every clone
        headers.update((self._principal or self)._auth_headers())
        headers.update(self._impersonation)
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """One request; returns the decoded JSON body or raises ``ApiError``."""
        url = self.host + path + ("?" + urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        if data is not None and content_type is None:
            content_type = "application/json"
        try:
            resp = self._pool.request(
                method,
                url,
                body=data,
                headers=self._headers(content_type),
                timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
                retries=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            self.requests.record(method, 0)
            raise ApiError(0, "Unreachable", type(exc).__name__, method=method, path=path) from exc
        self.requests.record(method, resp.status)
        if resp.status == 401:
            (self._principal or self)._forget_auth()  # the next request asks the credentials afresh
        payload: dict[str, Any]
        try:
            payload = json.loads(resp.data) if resp.data else {}
        except ValueError:
            payload = {"message": resp.data[:200].decode("utf-8", "replace")}
        if resp.status >= 400:
            raise ApiError(
                resp.status,
                str(payload.get("reason") or resp.reason or ""),
                str(payload.get("message") or ""),
                method=method,
                path=path,
                retry_after=_retry_after(resp.headers.get("Retry-After")),
            )
        return payload

    def stream(
        self, path: str, *, query: dict[str, str] | None = None, timeout: float = 330.0
    ) -> Iterator[dict[str, Any]]:
        """A watch: yields decoded watch events until the server closes the stream.
        (``open_watch`` when another thread must be able to interrupt it.)"""
        events, close = self.open_watch(path, query=query, timeout=timeout)
        try:
            yield from events
        finally:
            close()

    def open_watch(
        self, path: str, *, query: dict[str, str] | None = None, timeout: float = 330.0
    ) -> tuple[Iterator[dict[str, Any]], Callable[[], None]]:
        """A watch another thread can interrupt: returns ``(events, close)``.

        The request is sent before this returns, so an HTTP error (410 Gone, 403, ...) raises
        ``ApiError`` here. ``events`` yields decoded watch events until the server ends the stream;
        ``close()`` - safe from any thread, more than once - shuts the socket down, so a read
        blocked in ``events`` ends at once and the iteration stops quietly. ``timeout`` is the read
        timeout: the longest silence tolerated before the stream counts as dead. Iterate what you
        open (after ``close()`` that ends at once), so the connection is released.
        """
        resp = self._open_stream("WATCH", path, query, timeout)
        closed, close = _closer(resp)

        def events() -> Iterator[dict[str, Any]]:
            finished = False
            try:
                buf = b""
                for chunk in resp.stream(65536):
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            yield json.loads(line)
                finished = True
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if closed.is_set():
                    return  # interrupted on purpose by close()
                raise ApiError(
                    0, "StreamClosed", type(exc).__name__, method="WATCH", path=path
                ) from exc
            finally:
                if not finished:
                    resp.close()  # a half-read stream must not go back to the pool
                resp.release_conn()

        return events(), close

    def _open_stream(
        self, verb: str, path: str, query: dict[str, str] | None, timeout: float
    ) -> urllib3.BaseHTTPResponse:
        """A GET whose body is read as it arrives; an HTTP error raises ``ApiError`` (recorded
        under ``verb``) with the server's Status message, the body read and released."""
        url = self.host + path + ("?" + urlencode(query) if query else "")
        try:
            resp = self._pool.request(
                "GET",
                url,
                headers=self._headers(None),
                timeout=urllib3.Timeout(connect=10.0, read=timeout),
                retries=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            self.requests.record(verb, 0)
            raise ApiError(0, "Unreachable", type(exc).__name__, method=verb, path=path) from exc
        self.requests.record(verb, resp.status)
        if resp.status == 401:
            (self._principal or self)._forget_auth()
        if resp.status >= 400:
            try:
                raw = resp.read(64 * 1024)
            finally:
                resp.close()
                resp.release_conn()
            status_doc: dict[str, Any] = {}
            try:
                decoded = json.loads(raw) if raw else {}
                status_doc = decoded if isinstance(decoded, dict) else {}
            except ValueError:
                status_doc = {"message": raw[:300].decode("utf-8", "replace")}
            raise ApiError(
                resp.status,
                str(status_doc.get("reason") or resp.reason or ""),
                str(status_doc.get("message") or ""),
                method=verb,
                path=path,
            )
        return resp

    def open_pod_log(
        self,
        namespace: str,
        pod: str,
        query: dict[str, str],
        *,
        timeout: float = 60.0,
        chunk_bytes: int = 64 * 1024,
    ) -> tuple[Iterator[bytes], Callable[[], None]]:
        """A Pod's log (``pods/log`` with ``query``: container, tailLines, follow, limitBytes
        ...) as it arrives: returns ``(chunks, close)`` like ``open_watch``. ``chunks`` yields at
        most ``chunk_bytes`` at a time, so the caller decides how much it holds; ``close()``,
        from any thread, ends a blocked read at once (a follow stream's time limit)."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log"
        resp = self._open_stream("LOG", path, query, timeout)
        closed, close = _closer(resp)

        def chunks() -> Iterator[bytes]:
            try:
                yield from resp.stream(chunk_bytes)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if closed.is_set():
                    return
                raise ApiError(
                    0, "StreamClosed", type(exc).__name__, method="LOG", path=path
                ) from exc
            finally:
                resp.close()  # never back to the pool: a follow stream may be half read
                resp.release_conn()

        return chunks(), close

    # -- discovery ----------------------------------------------------------------------------

    def _load_group_version(self, group_version: str) -> dict[str, APIResource]:
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        doc = (self._principal or self).request("GET", path)
        kinds: dict[str, APIResource] = {}
        for res in doc.get("resources", []):
            if "/" in res["name"]:
                continue  # subresources such as deployments/status
            kinds[res["kind"]] = APIResource(
                group_version=group_version,
                kind=res["kind"],
                name=res["name"],
                namespaced=bool(res.get("namespaced")),
                verbs=tuple(res.get("verbs", [])),
            )
        return kinds

    def resource(self, api_version: str, kind: str) -> APIResource:
        """Discovery for ``kind`` in ``api_version``; re-reads once on a miss (new CRDs)."""
        with self._discovery_lock:
            cached = self._discovery.get(api_version)
        if cached is None or kind not in cached:
            try:
                fresh = self._load_group_version(api_version)
            except ApiError as exc:
                if exc.status == 404:
                    raise ApiError(
                        404, "NotFound", f"the server does not serve {api_version} (kind {kind})"
                    ) from exc
                raise
            with self._discovery_lock:
                self._discovery[api_version] = fresh
            cached = fresh
        if kind not in cached:
            raise ApiError(404, "NotFound", f"the server has no kind {kind} in {api_version}")
        return cached[kind]

    def server_capabilities(self) -> ServerCapabilities:
        """The version and API versions the server advertises (legacy discovery: ``/version``,
        ``/api``, ``/apis`` and one read per group/version, as the controller's own identity).

        A group/version whose discovery answers 404 or 503 - an aggregated API whose backing
        service is down - is listed without its kinds, as Helm does; any other failure raises,
        so a render never goes on with capabilities that are silently missing a group."""
        principal = self._principal or self
        git_version = str(principal.request("GET", "/version").get("gitVersion") or "")
        group_versions = [str(v) for v in principal.request("GET", "/api").get("versions", [])]
        for group in principal.request("GET", "/apis").get("groups", []):
            group_versions.extend(str(v["groupVersion"]) for v in group.get("versions", []))
        listed: set[str] = set()
        for group_version in group_versions:
            listed.add(group_version)
            try:
                kinds = self._load_group_version(group_version)
            except ApiError as exc:
                if exc.status in (404, 503):
                    continue
                raise
            with self._discovery_lock:
                self._discovery[group_version] = kinds
            listed.update(f"{group_version}/{kind}" for kind in kinds)
        return ServerCapabilities(git_version, tuple(sorted(listed)))

    def forget_discovery(self) -> None:
        with self._discovery_lock:
            self._discovery.clear()

    def path(self, api_version: str, kind: str, namespace: str = "", name: str = "") -> str:
        """The REST path of a collection (no name) or of one object."""
        res = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if res.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{res.name}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base

    def _obj_path(self, obj: dict[str, Any], default_namespace: str = "") -> str:
        meta = obj.get("metadata") or {}
        res = self.resource(obj["apiVersion"], obj["kind"])
        namespace = (meta.get("namespace") or default_namespace) if res.namespaced else ""
        if res.namespaced and not namespace:
            raise ApiError(400, "BadRequest", f"{obj['kind']} {meta.get('name')} needs a namespace")
        return self.path(obj["apiVersion"], obj["kind"], namespace, meta["name"])

    # -- verbs on dicts -----------------------------------------------------------------------

    def get(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> dict[str, Any] | None:
        """The live object, or ``None`` when it does not exist."""
        try:
            return self.request("GET", self.path(api_version, kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str = "",
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        """The list object (``items`` and ``metadata.resourceVersion``; with ``limit``, one page
        of it and ``metadata.continue`` for the next one)."""
        query: dict[str, str] = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        if limit is not None:
            query["limit"] = str(limit)
        if continue_token:
            query["continue"] = continue_token
        return self.request("GET", self.path(api_version, kind, namespace), query=query or None)

    def apply(
        self,
        obj: dict[str, Any],
        *,
        field_manager: str,
        force: bool = True,
        dry_run: bool = False,
        default_namespace: str = "",
        subresource: str = "",
        field_validation: str | None = None,
    ) -> dict[str, Any]:
        """Server-side apply of a whole object. ``field_validation``: the server's
        ``fieldValidation`` (Strict, Warn, Ignore); None: its default."""
        query = {"fieldManager": field_manager}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        if field_validation:
            query["fieldValidation"] = field_validation
        path = self._obj_path(obj, default_namespace) + (f"/{subresource}" if subresource else "")
        return self.request(
            "PATCH", path, query=query, body=obj, content_type="application/apply-patch+yaml"
        )

    def replace(
        self,
        obj: dict[str, Any],
        *,
        field_manager: str,
        dry_run: bool = False,
        field_validation: str | None = None,
    ) -> dict[str, Any]:
        """PUT a whole object (``metadata.resourceVersion`` set: the write is refused if the
        object changed since it was read)."""
        query = {"fieldManager": field_manager}
        if dry_run:
            query["dryRun"] = "All"
        if field_validation:
            query["fieldValidation"] = field_validation
        return self.request("PUT", self._obj_path(obj, ""), query=query, body=obj)

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str = "",
        patch_type: str = "merge",
        subresource: str = "",
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """A merge, strategic-merge or JSON patch (``patch_type`` merge|strategic|json)."""
        content_type = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }[patch_type]
        path = self.path(api_version, kind, namespace, name) + (
            f"/{subresource}" if subresource else ""
        )
        query = {"fieldManager": field_manager} if field_manager else None
        return self.request("PATCH", path, query=query, body=patch, content_type=content_type)

    def create(
        self, obj: dict[str, Any], *, namespace: str = "", subresource_of: str = ""
    ) -> dict[str, Any]:
        """POST an object into its collection (or to a subresource path given explicitly)."""
        meta = obj.get("metadata") or {}
        if subresource_of:
            return self.request("POST", subresource_of, body=obj)
        ns = meta.get("namespace") or namespace
        return self.request("POST", self.path(obj["apiVersion"], obj["kind"], ns), body=obj)

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str = "",
        *,
        propagation: str = "Background",
        precondition_uid: str | None = None,
    ) -> bool:
        """Delete one object; ``False`` when it was already gone."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        if precondition_uid:
            body["preconditions"] = {"uid": precondition_uid}
        try:
            self.request("DELETE", self.path(api_version, kind, namespace, name), body=body)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def may(self, verb: str, group: str, resource: str, namespace: str = "") -> bool:
        """Whether this client's user may ``verb`` the ``resource`` (plural) of API ``group`` in
        ``namespace`` ("" for cluster scope), asked with a SelfSubjectAccessReview - which
        every authenticated user may create, so an impersonating client needs no extra right."""
        review = self.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {
                    "resourceAttributes": {
                        "verb": verb,
                        "group": group,
                        "resource": resource,
                        "namespace": namespace,
                    }
                },
            },
        )
        return bool((review.get("status") or {}).get("allowed"))

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until ``/readyz`` answers ok."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                resp = self._pool.request(
                    "GET",
                    self.host + "/readyz",
                    headers=self._headers(None),
                    timeout=2.0,
                    retries=False,
                )
                if resp.status == 200:
                    return
                last = ApiError(resp.status, "NotReady", resp.data[:200].decode("utf-8", "replace"))
            except urllib3.exceptions.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        raise ApiError(0, "NotReady", f"API server not ready after {timeout:.0f}s: {last}")
