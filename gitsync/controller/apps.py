"""Where Applications come from and where their status goes.

``CrdApplications``: the ``applications.gitsync.dev`` custom resources, read from a watch cache
(no GET per reconcile), status written to the status subresource, Kubernetes Events recorded on
the Application. ``FileApplications`` (``gitsync serve --config apps.yaml``): for clusters where
CRDs cannot be installed - Applications come from a file and status is kept in a ConfigMap
``gitsync-status-<name>`` in the Application's namespace. Both write status only when asked, and
the controller asks only when something changed.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog

from gitsync.controller.status import now_rfc3339
from gitsync.kinds import API_VERSION
from gitsync.kinds import APPLICATION as KIND
from gitsync.kube import ApiError, KubeClient
from gitsync.kube.cache import WatchCache
from gitsync.model import AppKey, ResourceKey
from gitsync.render import RenderLimits, load_yaml_documents

log = structlog.get_logger(__name__)


class ApplicationStore(Protocol):
    def app_keys(self) -> list[AppKey]: ...
    def get(self, key: AppKey) -> dict[str, Any] | None: ...
    def write_status(
        self, key: AppKey, status: dict[str, Any], previous: dict[str, Any]
    ) -> None: ...
    def patch_annotations(self, key: AppKey, annotations: dict[str, str | None]) -> None: ...
    def remove_finalizer(self, key: AppKey, finalizer: str) -> None: ...
    def record_event(
        self, key: AppKey, reason: str, message: str, *, warning: bool = False
    ) -> None: ...


def status_patch(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) turning ``old`` into ``new``: removed keys become null at
    every depth (a merge patch would otherwise keep a nested key that disappeared, such as a
    stale ``health.message``); lists are replaced whole."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            patch[key] = status_patch(value, before)
        else:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


class EventRecorder:
    """Records core/v1 Events about an object; failures are ignored (events are best effort)."""

    def __init__(self, kube: KubeClient, component: str = "gitsync"):
        self.kube = kube
        self.component = component

    def record(self, involved: dict[str, Any], reason: str, message: str, warning: bool) -> None:
        meta = involved.get("metadata", {})
        now = now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name', 'x')[:200]}.{secrets.token_hex(8)}",
                "namespace": meta.get("namespace") or "default",
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        with contextlib.suppress(ApiError):
            self.kube.create(event)


class CrdApplications:
    """Applications as custom resources, in all namespaces or a given list."""

    def __init__(
        self,
        kube: KubeClient,
        cache: WatchCache,
        namespaces: list[str] | None = None,
    ):
        self.kube = kube
        self.cache = cache
        self.namespaces = namespaces
        self.events = EventRecorder(kube)

    def start(self) -> None:
        if self.namespaces:
            self.cache.ensure_namespaces(API_VERSION, KIND, self.namespaces)
        else:
            self.cache.ensure(API_VERSION, KIND)

    def app_keys(self) -> list[AppKey]:
        if self.namespaces:
            objs = [o for ns in self.namespaces for o in self.cache.list(API_VERSION, KIND, ns)]
        else:
            objs = self.cache.list(API_VERSION, KIND)
        return sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs)

    def get(self, key: AppKey) -> dict[str, Any] | None:
        return self.cache.get(API_VERSION, KIND, key[1], key[0])

    def write_status(self, key: AppKey, status: dict[str, Any], previous: dict[str, Any]) -> None:
        try:
            self.kube.patch(
                API_VERSION,
                KIND,
                key[1],
                {"status": status_patch(status, previous)},
                namespace=key[0],
                subresource="status",
                field_manager="gitsync",
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            # Deleted while it was being reconciled (its namespace too, often): there is no
            # status left to write, and the watch's delete event drops the app. Not a crash.
            log.info("application gone before its status was written", app=f"{key[0]}/{key[1]}")

    def patch_annotations(self, key: AppKey, annotations: dict[str, str | None]) -> None:
        self.kube.patch(
            API_VERSION, KIND, key[1], {"metadata": {"annotations": annotations}}, namespace=key[0]
        )

    def remove_finalizer(self, key: AppKey, finalizer: str) -> None:
        """Take ``finalizer`` off the Application (the API server then removes it, if no other
        finalizer holds it). Read from the API server, not the cache, and written with its
        resourceVersion, so a finalizer another controller added meanwhile is not dropped
        (a conflict is a 409, retried by the next pass)."""
        live = self.kube.get(API_VERSION, KIND, key[1], key[0])
        if live is None:
            return
        meta = live.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if finalizer not in finalizers:
            return
        finalizers.remove(finalizer)
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        try:
            self.kube.patch(API_VERSION, KIND, key[1], patch, namespace=key[0])
        except ApiError as exc:
            if exc.status != 404:
                raise

    def record_event(
        self, key: AppKey, reason: str, message: str, *, warning: bool = False
    ) -> None:
        obj = self.get(key)
        if obj is not None:
            self.events.record(obj, reason, message, warning)


def file_applications(
    docs: list[Any],
) -> tuple[dict[AppKey, dict[str, Any]], list[str]]:
    """The Applications of a ``--config`` file by key, and why any document was left out.

    A document that cannot name an Application (not a mapping, no string name) or repeats one
    is left out with a reason; every other Application still runs. Spec errors are not judged
    here: the reconciler stalls that Application alone with ``InvalidSpec``.
    """
    apps: dict[AppKey, dict[str, Any]] = {}
    problems: list[str] = []
    for index, doc in enumerate(docs, start=1):
        where = f"document {index}"
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if not isinstance(meta, dict):
            problems.append(f"{where}: not an Application with metadata")
            continue
        name, namespace = meta.get("name"), meta.setdefault("namespace", "gitsync")
        if not isinstance(name, str) or not name or not isinstance(namespace, str) or not namespace:
            problems.append(f"{where}: metadata.name and metadata.namespace must be strings")
            continue
        if (namespace, name) in apps:
            problems.append(f"{where}: {namespace}/{name} is declared twice; the first one is kept")
            continue
        # the API server's to set: a file's would not change with the status kept in the
        # ConfigMap, and the UI caches list rows by exactly these two
        meta.pop("uid", None)
        meta.pop("resourceVersion", None)
        apps[(namespace, name)] = doc
    return apps, problems


class FileApplications:
    """Applications declared in a YAML file; status in one ConfigMap per Application."""

    def __init__(self, kube: KubeClient, path: Path):
        self.kube = kube
        self.path = path
        self.events = EventRecorder(kube)
        self._lock = threading.Lock()
        self._apps: dict[AppKey, dict[str, Any]] = {}
        self._annotations: dict[AppKey, dict[str, str]] = {}

    def start(self) -> None:
        docs = load_yaml_documents(
            self.path.read_bytes(), source=str(self.path), limits=RenderLimits(max_bytes=8 << 20)
        )
        apps, problems = file_applications(docs)
        for problem in problems:
            log.error("application file entry ignored", file=str(self.path), reason=problem)
        with self._lock:
            self._apps = apps

    def _status_name(self, key: AppKey) -> str:
        return f"gitsync-status-{key[1]}"[:253]

    def app_keys(self) -> list[AppKey]:
        with self._lock:
            return sorted(self._apps)

    def get(self, key: AppKey) -> dict[str, Any] | None:
        with self._lock:
            doc = self._apps.get(key)
            extra = dict(self._annotations.get(key, {}))
        if doc is None:
            return None
        cm = self.kube.get("v1", "ConfigMap", self._status_name(key), key[0])
        status = json.loads((cm or {}).get("data", {}).get("status", "{}"))
        meta = dict(doc.get("metadata", {}))
        meta["annotations"] = {**(meta.get("annotations") or {}), **extra}
        meta.setdefault("generation", 1)
        return {**doc, "metadata": meta, "status": status}

    def write_status(self, key: AppKey, status: dict[str, Any], previous: dict[str, Any]) -> None:
        self.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self._status_name(key),
                    "namespace": key[0],
                    "labels": {"app.kubernetes.io/managed-by": "gitsync"},
                    "annotations": {"gitsync.dev/application": f"{key[0]}/{key[1]}"},
                },
                "data": {"status": json.dumps(status, sort_keys=True)},
            },
            field_manager="gitsync",
        )

    def patch_annotations(self, key: AppKey, annotations: dict[str, str | None]) -> None:
        with self._lock:
            current = self._annotations.setdefault(key, {})
            for k, v in annotations.items():
                if v is None:
                    current.pop(k, None)
                else:
                    current[k] = v

    def remove_finalizer(self, key: AppKey, finalizer: str) -> None:
        """Applications from a file are never deleted through the API server: nothing holds
        them, so there is nothing to release."""

    def record_event(
        self, key: AppKey, reason: str, message: str, *, warning: bool = False
    ) -> None:
        cm = self.kube.get("v1", "ConfigMap", self._status_name(key), key[0])
        if cm is not None:
            self.events.record(
                {"apiVersion": "v1", "kind": "ConfigMap", **cm}, reason, message, warning
            )


def app_of_tracked(obj: dict[str, Any] | None) -> AppKey | None:
    """The Application that owns a live object, from its tracking annotation."""
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    tracking = annotations.get("gitsync.dev/tracking")
    if not isinstance(tracking, str) or ":" not in tracking:
        return None
    app = tracking.split(":", 1)[0]
    namespace, _, name = app.partition("/")
    return (namespace, name) if namespace and name else None


EventCallback = Callable[[str, ResourceKey, dict[str, Any] | None], None]
