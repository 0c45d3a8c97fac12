"""The app's inventory: every object it applied, stored in the cluster so it survives restarts.

Prune is "inventory minus rendered", never "everything with our label", so an object is only ever
deleted if this app recorded applying it (and its tracking annotation agrees, see ``tracking``).
The inventory lives in a ConfigMap next to the Application (``gitsync-inventory-<app>`` in the
Application's namespace) as sorted text lines ``apiVersion|kind|namespace|name`` - readable with
kubectl, diffable, and written only when it changes.

Reading it was the one request a no-change refresh still made per app (half the time of a
1,000-app refresh). The controller's watch cache holds the ConfigMap, but a cache may lag behind
the last write - and an inventory read short of an entry would drop that entry at the next write,
leaving an object no prune ever finds. So the cache is trusted only for the object's
resourceVersion, never for its content: ``InventoryMemo`` keeps what this process last read or
wrote together with the resourceVersion the API server gave it, and ``load`` uses that copy only
while the watch cache shows the very same version. A cache that has not yet seen our write shows
an older version; another writer's change shows a newer one; either way ``load`` GETs.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitsync.kube import ApiError, KubeClient
from gitsync.model import ResourceKey

FIELD_MANAGER = "gitsync"
MAX_NAME = 253


@dataclass(frozen=True, order=True)
class InventoryEntry:
    api_version: str
    kind: str
    namespace: str
    name: str

    @property
    def key(self) -> ResourceKey:
        group = self.api_version.rpartition("/")[0] if "/" in self.api_version else ""
        return ResourceKey(group, self.kind, self.namespace, self.name)

    def line(self) -> str:
        return f"{self.api_version}|{self.kind}|{self.namespace}|{self.name}"

    @classmethod
    def parse(cls, line: str) -> InventoryEntry:
        api_version, kind, namespace, name = line.split("|")
        return cls(api_version, kind, namespace, name)


def configmap_name(app_name: str) -> str:
    name = f"gitsync-inventory-{app_name}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(app_name.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11]}-{digest}"


Entries = dict[ResourceKey, InventoryEntry]
VersionReader = Callable[[str, str], "str | None"]
"""``(namespace, configmap name) -> resourceVersion`` the watch cache holds, or None."""


def _version(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


class InventoryMemo:
    """The inventories this process last read or wrote, each with its resourceVersion."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], tuple[str, Entries]] = {}

    def get(self, namespace: str, name: str, version: str) -> Entries | None:
        """A copy of the entries known at exactly ``version``, else None."""
        with self._lock:
            known = self._known.get((namespace, name))
        if known is None or not version or known[0] != version:
            return None
        return dict(known[1])

    def put(
        self, namespace: str, name: str, version: str, entries: Mapping[ResourceKey, Any]
    ) -> None:
        if not version:
            return
        with self._lock:
            self._known[(namespace, name)] = (version, dict(entries))


class Inventory:
    """Load and store one app's inventory. With ``memo`` and ``cached_version`` (the watch
    cache's view of the ConfigMap), ``load`` skips the GET when nothing changed since this
    process last saw it (see the module docstring)."""

    def __init__(
        self,
        kube: KubeClient,
        app_namespace: str,
        app_name: str,
        *,
        memo: InventoryMemo | None = None,
        cached_version: VersionReader | None = None,
    ):
        self.kube = kube
        self.namespace = app_namespace
        self.name = configmap_name(app_name)
        self.app = f"{app_namespace}/{app_name}"
        self.memo = memo
        self.cached_version = cached_version

    def load(self) -> Entries:
        if self.memo is not None and self.cached_version is not None:
            known = self.memo.get(
                self.namespace, self.name, self.cached_version(self.namespace, self.name) or ""
            )
            if known is not None:
                return known
        cm = self.kube.get("v1", "ConfigMap", self.name, self.namespace)
        if cm is None:
            return {}
        text = (cm.get("data") or {}).get("entries", "")
        entries = [InventoryEntry.parse(line) for line in text.splitlines() if line.strip()]
        loaded = {e.key: e for e in entries}
        if self.memo is not None:
            self.memo.put(self.namespace, self.name, _version(cm), loaded)
        return loaded

    def store(
        self,
        entries: Iterable[InventoryEntry],
        previous: Mapping[ResourceKey, InventoryEntry],
        *,
        revision: str,
    ) -> bool:
        """Write the inventory if it differs from ``previous``; returns whether it wrote."""
        new = sorted(set(entries))
        if {e.key: e for e in new} == dict(previous):
            return False
        self._ensure_namespace()
        written = self.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {"app.kubernetes.io/managed-by": "gitsync"},
                    "annotations": {"gitsync.dev/application": self.app},
                },
                "data": {"entries": "".join(e.line() + "\n" for e in new), "revision": revision},
            },
            field_manager=FIELD_MANAGER,
        )
        if self.memo is not None:
            self.memo.put(self.namespace, self.name, _version(written), {e.key: e for e in new})
        return True

    def _ensure_namespace(self) -> None:
        if self.kube.get("v1", "Namespace", self.namespace) is None:
            try:
                self.kube.create(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
                )
            except ApiError as exc:
                if exc.status != 409:
                    raise
