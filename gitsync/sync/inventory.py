"""The app's inventory: every object it applied, stored in the cluster so it survives restarts.

Prune is "inventory minus rendered", never "everything with our label", so an object is only ever
deleted if this app recorded applying it (and its tracking annotation agrees, see ``tracking``).
The inventory lives in a ConfigMap next to the Application (``gitsync-inventory-<app>`` in the
Application's namespace) as sorted text lines ``apiVersion|kind|namespace|name`` - readable with
kubectl, diffable, and written only when it changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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


class Inventory:
    """Load and store one app's inventory."""

    def __init__(self, kube: KubeClient, app_namespace: str, app_name: str):
        self.kube = kube
        self.namespace = app_namespace
        self.name = configmap_name(app_name)
        self.app = f"{app_namespace}/{app_name}"

    def load(self) -> dict[ResourceKey, InventoryEntry]:
        cm = self.kube.get("v1", "ConfigMap", self.name, self.namespace)
        if cm is None:
            return {}
        text = (cm.get("data") or {}).get("entries", "")
        entries = [InventoryEntry.parse(line) for line in text.splitlines() if line.strip()]
        return {e.key: e for e in entries}

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
        self.kube.apply(
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
