"""Pod logs through the API: ``/api/v1/applications/<ns>/<name>/pods`` and ``.../logs``.

Container logs are the one thing the UI reads that a tenant's process wrote freely: they may hold
credentials, they can be gigabytes, and a follow stream never ends by itself. So:

* **Who** - reading logs is a role decision apart from reading status (``may_read_logs``, the one
  gate, so per-project roles can replace it): ``--logs-role admin`` (the default) lets the admin
  role read them, ``viewer`` read-only tokens and viewer sessions too, ``none`` nobody. Anonymous
  readers (``--anonymous-read``) never get logs.
* **Which Pods** - only a Pod that belongs to the Application (``AppPods``): one it manages, or
  one owned - through ReplicaSets, Jobs, StatefulSets... at most ``MAX_OWNER_DEPTH`` levels of
  controller ``ownerReferences`` - by an object it manages. Nothing else is ever read through
  this path, not a Secret nor another app's Pod: any other name is the same 404 as a Pod that
  does not exist, so the answer does not tell one from the other.
* **How much** - the request is bounded in bytes (``--logs-max-bytes``, sent to the API server
  as ``limitBytes`` and counted here again), in time (``--logs-max-seconds``: a timer closes the
  stream; every stream, follow or not), in lines (``tailLines`` has a default and a maximum) and
  in number (``--logs-max-streams`` at once per server; each holds one of waitress's worker
  threads, so the limit keeps the UI answering). The log passes through in chunks of
  ``CHUNK_BYTES``; it is never read whole into memory. A cut stream ends with a line saying so.

The Pods are read from the destination cluster with the controller's own client (the same that
applies them), each request anew: a Pod's log is only asked for by a person.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import flask
import structlog
from werkzeug.exceptions import HTTPException

from gitsync.application_status import ApplicationStatus
from gitsync.controller.interface import ControllerView
from gitsync.errors import GitsyncError
from gitsync.web.auth import Principal
from gitsync.web.guard import Guard, json_error
from gitsync.web.rbac import Action
from gitsync.web.view import Snapshot, find

log = structlog.get_logger(__name__)

MiB = 1024 * 1024
CHUNK_BYTES = 64 * 1024
MAX_OWNER_DEPTH = 4
MAX_PODS_PER_NAMESPACE = 500
MAX_SINCE_SECONDS = 30 * 24 * 3600
# workload kinds whose Pods (or ReplicaSets / Jobs) name them as controller: core or apps/batch
_OWNER_API_VERSIONS = {
    "ReplicaSet": "apps/v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1beta1",
    "ReplicationController": "v1",
}


class LogsRole(enum.StrEnum):
    """Who may read container logs (``--logs-role``)."""

    ADMIN = "admin"
    VIEWER = "viewer"
    NONE = "none"


def may_read_logs(
    principal: Principal, allowed: LogsRole, allows: Callable[[Action], bool]
) -> bool:
    """The one decision whether ``principal`` may read the Pod logs of an app: ``--logs-role``
    names the least role (``admin``: the ``logs`` action, which only admins of the app's project
    have; ``viewer``: whoever may read the app; ``none``: nobody), and ``allows`` asks the RBAC
    authorizer for the app's project. Anonymous readers never read logs."""
    if not principal.authenticated or allowed is LogsRole.NONE:
        return False
    return allows(Action.LOGS if allowed is LogsRole.ADMIN else Action.GET)


@dataclass(frozen=True)
class LogLimits:
    """The bounds of ``gitsync serve``'s log streams (``--logs-*``)."""

    role: LogsRole = LogsRole.ADMIN
    max_bytes: int = 10 * MiB
    max_seconds: float = 300.0
    max_streams: int = 4
    default_tail_lines: int = 1000
    max_tail_lines: int = 100_000

    def __post_init__(self) -> None:
        if self.max_bytes < 1024:
            raise ValueError("--logs-max-bytes: at least 1024")
        if not 1 <= self.max_seconds <= 24 * 3600:
            raise ValueError("--logs-max-seconds: between 1 and 86400")
        if not 1 <= self.max_streams <= 64:
            raise ValueError("--logs-max-streams: between 1 and 64")


_PARAMETERS = ("pod", "namespace", "container", "previous", "tailLines", "follow", "sinceSeconds")


def _bool(args: Mapping[str, str], name: str) -> bool:
    value = args.get(name, "false").lower()
    if value not in ("true", "false", "1", "0", ""):
        raise ValueError(f"{name}: true or false, not {value[:20]!r}")
    return value in ("true", "1")


def _int(args: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    text = args.get(name, "")
    if not text:
        return None
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name}: a whole number from {low} to {high}")
    return int(text)


def _name(args: Mapping[str, str], name: str, *, required: bool = False) -> str:
    value = args.get(name, "")
    if required and not value:
        raise ValueError(f"{name}: required")
    if len(value) > 253 or any(not (c.isalnum() or c in "-.") for c in value):
        raise ValueError(f"{name}: not a Kubernetes name")
    return value


@dataclass(frozen=True)
class LogQuery:
    """One request for a container's log, checked against the server's limits."""

    pod: str
    namespace: str
    container: str
    previous: bool
    tail_lines: int
    follow: bool
    since_seconds: int | None

    @classmethod
    def parse(cls, args: Mapping[str, str], limits: LogLimits) -> LogQuery:
        """From the request's query string; ``ValueError`` naming the parameter otherwise."""
        for key in args:
            if key not in _PARAMETERS:
                raise ValueError(f"{key[:40]}: unknown parameter (known: {', '.join(_PARAMETERS)})")
        tail = _int(args, "tailLines", 1, limits.max_tail_lines)
        return cls(
            pod=_name(args, "pod", required=True),
            namespace=_name(args, "namespace"),
            container=_name(args, "container"),
            previous=_bool(args, "previous"),
            tail_lines=tail or limits.default_tail_lines,
            follow=_bool(args, "follow"),
            since_seconds=_int(args, "sinceSeconds", 1, MAX_SINCE_SECONDS),
        )

    def kube_query(self, limits: LogLimits) -> dict[str, str]:
        """The ``pods/log`` query: the API server (and the kubelet) stop at ``limitBytes`` too."""
        query = {"tailLines": str(self.tail_lines), "limitBytes": str(limits.max_bytes)}
        if self.container:
            query["container"] = self.container
        if self.previous:
            query["previous"] = "true"
        if self.follow:
            query["follow"] = "true"
        if self.since_seconds is not None:
            query["sinceSeconds"] = str(self.since_seconds)
        return query


class PodReader(Protocol):
    """What ``AppPods`` and the log stream need of ``gitsync.kube.KubeClient``."""

    def get(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str = "", *, limit: int | None = None
    ) -> dict[str, Any]: ...

    def open_pod_log(
        self, namespace: str, pod: str, query: dict[str, str], *, timeout: float = 60.0
    ) -> tuple[Iterator[bytes], Callable[[], None]]: ...


ManagedKey = tuple[str, str, str, str]  # group, kind, namespace, name


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


class AppPods:
    """The Pods of one Application: managed by it, or owned (transitively) by what it manages.

    Written against ``status.resources`` and live ``ownerReferences`` so it stands alone; the
    resource tree's cache can replace it behind the same two methods."""

    def __init__(self, app: Mapping[str, Any], client: PodReader):
        status = ApplicationStatus.from_dict(app.get("status"))
        self.managed: dict[ManagedKey, tuple[str, str]] = {
            (r.group, r.kind, r.namespace, r.name): (r.kind, r.name) for r in status.resources or ()
        }
        destination = app.get("spec", {}).get("destination") or {}
        self.default_namespace = str(
            destination.get("namespace") or app.get("metadata", {}).get("namespace") or ""
        )
        self._client = client
        self._owners: dict[ManagedKey, tuple[str, str] | None] = {}

    def owner(self, pod: Mapping[str, Any]) -> tuple[str, str] | None:
        """The managed object (kind, name) ``pod`` belongs to, or None."""
        current: Mapping[str, Any] = pod
        namespace = str(pod.get("metadata", {}).get("namespace") or "")
        seen: list[ManagedKey] = []
        for _ in range(MAX_OWNER_DEPTH + 1):
            meta = current.get("metadata") or {}
            key = (_group(str(current.get("apiVersion") or "v1")), str(current.get("kind") or ""),
                   namespace, str(meta.get("name") or ""))  # fmt: skip
            if key in self.managed:
                return self._remember(seen, self.managed[key])
            if key in self._owners:
                return self._remember(seen, self._owners[key])
            seen.append(key)
            ref = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
            if ref is None or ref.get("kind") not in _OWNER_API_VERSIONS:
                break
            api_version = str(ref.get("apiVersion") or _OWNER_API_VERSIONS[ref["kind"]])
            # read even when it names a managed object: only the uid shows it is that object
            found = self._client.get(api_version, str(ref["kind"]), str(ref["name"]), namespace)
            if found is None or (found.get("metadata") or {}).get("uid") != ref.get("uid"):
                break
            current = found
        return self._remember(seen, None)

    def _remember(
        self, keys: list[ManagedKey], owner: tuple[str, str] | None
    ) -> tuple[str, str] | None:
        for key in keys:
            self._owners[key] = owner
        return owner

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Pod ``namespace/name`` if it belongs to the Application, else None (also when it does
        not exist: the caller answers both alike)."""
        if not any(key[2] == namespace for key in self.managed):
            return None  # never a request into a namespace the app has nothing in
        pod = self._client.get("v1", "Pod", name, namespace)
        if pod is None or self.owner(pod) is None:
            return None
        return pod

    def pods(self) -> list[tuple[dict[str, Any], tuple[str, str]]]:
        """Every Pod of the Application with the managed object it belongs to, by namespace and
        name (at most ``MAX_PODS_PER_NAMESPACE`` looked at per namespace)."""
        found = []
        for namespace in sorted({key[2] for key in self.managed if key[2]}):
            listing = self._client.list("v1", "Pod", namespace, limit=MAX_PODS_PER_NAMESPACE)
            for pod in listing.get("items") or []:
                pod.setdefault("apiVersion", "v1")
                pod.setdefault("kind", "Pod")
                owner = self.owner(pod)
                if owner is not None:
                    found.append((pod, owner))
        return sorted(
            found, key=lambda p: (p[0]["metadata"]["namespace"], p[0]["metadata"]["name"])
        )


def pod_document(pod: Mapping[str, Any], owner: tuple[str, str]) -> dict[str, Any]:
    """What the logs panel and ``gitsync app logs`` need of a Pod: where it is, its containers."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    containers = []
    for container in spec.get("containers") or []:
        state = statuses.get(container.get("name")) or {}
        containers.append(
            {
                "name": str(container.get("name") or ""),
                "ready": bool(state.get("ready")),
                "restartCount": int(state.get("restartCount") or 0),
            }
        )
    return {
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "phase": str(status.get("phase") or ""),
        "owner": {"kind": owner[0], "name": owner[1]},
        "containers": containers,
    }


def cut_stream(
    chunks: Iterator[bytes], limits: LogLimits, timed_out: threading.Event
) -> Iterator[bytes]:
    """``chunks`` passed on until ``limits.max_bytes``; a last line says why it was cut (the
    byte limit, or the time limit when ``timed_out`` was set by the timer that closed it)."""
    sent = 0
    try:
        for chunk in chunks:
            passed = chunk[: limits.max_bytes - sent]
            sent += len(passed)
            yield passed
            if sent >= limits.max_bytes:
                break
    except GitsyncError as exc:  # the API server's stream broke off
        yield f"\n[gitsync: the log stream broke off: {str(exc)[:200]}]\n".encode()
        return
    if sent >= limits.max_bytes:
        yield f"\n[gitsync: log cut at {limits.max_bytes} bytes (--logs-max-bytes)]\n".encode()
    elif timed_out.is_set():
        ended = f"stream ended after {limits.max_seconds:g} s (--logs-max-seconds)"
        yield f"\n[gitsync: {ended}]\n".encode()


def _app_client(controller: ControllerView, app: Mapping[str, Any]) -> PodReader:
    destination = app.get("spec", {}).get("destination") or {}
    # a KubeClient: KubeAccess plus what PodReader adds (KubeAccess stays the rollouts' view)
    return cast(PodReader, controller.cluster_client(str(destination.get("name") or "")))


class LogStreams:
    """Opens log streams for one server, at most ``limits.max_streams`` at once."""

    def __init__(self, controller: ControllerView, limits: LogLimits):
        self.controller = controller
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_streams)

    def open(self, app: Mapping[str, Any], query: LogQuery) -> flask.Response:
        """The streamed answer, or the error to send; the slot is held until it is closed."""
        if not self._slots.acquire(blocking=False):
            return json_error(
                429,
                f"{self.limits.max_streams} log streams are open (--logs-max-streams); try again",
                **{"Retry-After": "5"},
            )
        try:
            opened = self._open(app, query)
        except BaseException:
            self._slots.release()
            raise
        if isinstance(opened, flask.Response):
            self._slots.release()
            return opened
        return self._response(*opened)

    def _open(
        self, app: Mapping[str, Any], query: LogQuery
    ) -> tuple[Iterator[bytes], Callable[[], None]] | flask.Response:
        namespace, name = app["metadata"]["namespace"], app["metadata"]["name"]
        missing = f"no Pod {query.pod} in Application {namespace}/{name}"
        try:
            client = _app_client(self.controller, app)
            pods = AppPods(app, client)
            pod_namespace = query.namespace or pods.default_namespace
            if pods.pod(pod_namespace, query.pod) is None:
                return json_error(404, missing)
            return client.open_pod_log(
                pod_namespace,
                query.pod,
                query.kube_query(self.limits),
                timeout=self.limits.max_seconds,
            )
        except GitsyncError as exc:
            status = getattr(exc, "status", 0)
            if status == 400:  # the API server's word on the container, previous, tail...
                return json_error(400, str(getattr(exc, "message", "")) or str(exc)[:300])
            if status == 404:
                return json_error(404, missing)
            log.warning("log not readable", pod=f"{query.namespace}/{query.pod}", error=str(exc))
            return json_error(502, f"cannot read the log: {str(exc)[:300]}")

    def _response(self, chunks: Iterator[bytes], close: Callable[[], None]) -> flask.Response:
        timed_out = threading.Event()

        def time_up() -> None:
            timed_out.set()
            close()  # ends a read blocked in ``chunks`` at once

        timer = threading.Timer(self.limits.max_seconds, time_up)
        timer.daemon = True
        timer.start()

        finished = threading.Lock()

        def finish() -> None:
            # once, at the first of: the stream's end (before the client sees it, so the slot
            # is free for its next request) or the server closing the answer (the client left)
            if not finished.acquire(blocking=False):
                return
            timer.cancel()
            close()
            self._slots.release()

        def body() -> Iterator[bytes]:
            try:
                yield from cut_stream(chunks, self.limits, timed_out)
            finally:
                finish()

        response = flask.Response(body(), mimetype="text/plain", direct_passthrough=True)
        response.call_on_close(finish)
        return response


def logs_blueprint(
    controller: ControllerView, guard: Guard, snapshot: Snapshot, limits: LogLimits
) -> flask.Blueprint:
    bp = flask.Blueprint("logs", __name__, url_prefix="/api/v1")
    streams = LogStreams(controller, limits)

    @bp.app_context_processor
    def logs_context() -> dict[str, Any]:
        """Whether the app page shows the logs panel: only to whom the API would answer."""
        args = flask.request.view_args or {}
        namespace = str(args.get("namespace", ""))
        try:
            allowed = bool(namespace) and may_read_logs(
                guard.principal(), limits.role, lambda action: guard.allows(action, namespace)
            )
        except HTTPException:  # a bad token, while an error page is rendered
            allowed = False
        return {"can_read_logs": allowed, "logs_role": str(limits.role)}

    def readable_app(namespace: str, name: str) -> Mapping[str, Any] | flask.Response:
        """The Application whose Pods the principal may read the logs of, or the refusal."""
        if limits.role is LogsRole.NONE:
            return json_error(403, "reading Pod logs is turned off (--logs-role none)")
        if not may_read_logs(
            guard.principal(), limits.role, lambda action: guard.allows(action, namespace)
        ):
            # the one refusal, the same whether the app exists or not (another project's app
            # is not revealed); --logs-role admin asks for the ``logs`` action, viewer ``get``
            wanted = Action.LOGS if limits.role is LogsRole.ADMIN else Action.GET
            return guard.forbidden(wanted, namespace)
        app = find(snapshot.get(), (namespace, name))
        if app is None:
            return json_error(404, f"no Application {namespace}/{name}")
        return app

    @bp.get("/applications/<namespace>/<name>/pods")
    @guard.api_read
    def pods(namespace: str, name: str) -> Any:
        app = readable_app(namespace, name)
        if isinstance(app, flask.Response):
            return app
        try:
            found = AppPods(app, _app_client(controller, app)).pods()
        except GitsyncError as exc:
            log.warning("pods not readable", app=f"{namespace}/{name}", error=str(exc)[:300])
            return json_error(502, f"cannot read the Application's Pods: {str(exc)[:300]}")
        return flask.jsonify({"items": [pod_document(pod, owner) for pod, owner in found]})

    @bp.get("/applications/<namespace>/<name>/logs")
    @guard.api_read
    def logs(namespace: str, name: str) -> Any:
        app = readable_app(namespace, name)
        if isinstance(app, flask.Response):
            return app
        try:
            query = LogQuery.parse(flask.request.args, limits)
        except ValueError as exc:
            return json_error(400, str(exc))
        return streams.open(app, query)

    return bp
