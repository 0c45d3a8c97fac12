"""Deleting an Application's objects when the Application is deleted with a resources finalizer.

Argo CD's contract, which repositories and operators written for Argo CD rely on: an Application
carrying the resources finalizer is not removed by the API server until the controller has
deleted the objects it manages and taken the finalizer off; without the finalizer, deleting the
Application leaves its objects running. Argo CD's finalizer names are honoured on imported apps:

* ``gitsync.dev/resources-finalizer``, ``resources-finalizer.argocd.argoproj.io`` and its
  ``/foreground`` variant: each object is deleted with foreground propagation (it stays, marked
  deleting, until the garbage collector removed its dependents: a Deployment's ReplicaSets and
  Pods), and the Application is released once every object is gone;
* ``gitsync.dev/resources-finalizer-background``, ``resources-finalizer.argocd.argoproj.io/
  background``: background propagation (the dependents go after the object).

What is deleted is what prune would ever delete, proved the same two ways: the object is in the
app's inventory *and* its tracking annotation names this app and this very object
(``tracking.owned_by``); an object another Application tracks is never touched, nor one the
destination policy keeps out of the app's reach. The deletes run as the app's ServiceAccount.

``delete_verdict`` is the pure decision per object; ``delete_app_objects`` does one round of
deletes and says what is still there, so the reconciler can come back until nothing is.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gitsync import sync_options
from gitsync.application import Application
from gitsync.kube import ApiError, KubeClient
from gitsync.model import ResourceKey, ResultCode
from gitsync.policy import Policy
from gitsync.sync import tracking
from gitsync.sync.inventory import Inventory, InventoryEntry
from gitsync.sync.syncer import ResourceResult, policy_denial, with_retries


class Propagation(enum.StrEnum):
    """Kubernetes' ``propagationPolicy`` for the deletes."""

    FOREGROUND = "Foreground"
    BACKGROUND = "Background"


RESOURCES_FINALIZER = "gitsync.dev/resources-finalizer"
RESOURCES_FINALIZERS = {
    RESOURCES_FINALIZER: Propagation.FOREGROUND,
    "gitsync.dev/resources-finalizer-background": Propagation.BACKGROUND,
    "resources-finalizer.argocd.argoproj.io": Propagation.FOREGROUND,
    "resources-finalizer.argocd.argoproj.io/foreground": Propagation.FOREGROUND,
    "resources-finalizer.argocd.argoproj.io/background": Propagation.BACKGROUND,
}
"""Finalizer -> how its objects are deleted. Foreground first when an app carries several."""


def resources_finalizer(finalizers: Iterable[str]) -> tuple[str, Propagation] | None:
    """The resources finalizer among an Application's finalizers and its propagation; None
    when it has none (its objects stay when it is deleted). Foreground wins over background:
    it is the stricter promise (nothing of the app is left when the app is gone)."""
    ours = sorted(
        (RESOURCES_FINALIZERS[f] != Propagation.FOREGROUND, f)
        for f in finalizers
        if f in RESOURCES_FINALIZERS
    )
    if not ours:
        return None
    name = ours[0][1]
    return name, RESOURCES_FINALIZERS[name]


def delete_verdict(
    app: Application,
    key: ResourceKey,
    live: dict[str, Any],
    *,
    policy: Policy,
    namespaced: bool,
) -> str | None:
    """Why a managed object is left in place when its app is deleted; None: delete it."""
    if not tracking.owned_by(live, app.qualified_name, key):
        return "not deleted: not owned by this app (tracking annotation differs)"
    if not sync_options.deletion_allowed(live, app.sync_policy.sync_options):
        return "not deleted: Delete=false (its sync-options annotation keeps it)"
    denied = policy_denial(policy, app, live, namespaced=namespaced)
    if denied:
        return f"not deleted: {denied}"
    return None


@dataclass
class AppDeletion:
    """One round of deletes: what was decided per object, and what is still there (deleted
    and not gone yet, or failed to delete); the app is released when ``remaining`` is empty."""

    results: list[ResourceResult] = field(default_factory=list)
    remaining: list[ResourceKey] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.remaining


def delete_app_objects(
    kube: KubeClient,
    inventory: Inventory,
    app: Application,
    *,
    policy: Policy,
    propagation: Propagation,
) -> AppDeletion:
    """Delete the app's objects (``kube`` acts as the app); each round asks again, so an
    object still present is reported until the API server has removed it. The inventory
    ConfigMap goes last, when nothing it lists is left to delete."""
    outcome = AppDeletion()
    entries = inventory.load()
    for _, entry in sorted(entries.items()):
        _delete_one(kube, app, entry, policy=policy, propagation=propagation, outcome=outcome)
    if outcome.done and entries:
        # the inventory is the controller's record, not the app's object: its client deletes it
        store = inventory.kube
        with_retries(lambda: store.delete("v1", "ConfigMap", inventory.name, inventory.namespace))
    return outcome


def _delete_one(
    kube: KubeClient,
    app: Application,
    entry: InventoryEntry,
    *,
    policy: Policy,
    propagation: Propagation,
    outcome: AppDeletion,
) -> None:
    key = entry.key
    live = with_retries(
        lambda: kube.get(entry.api_version, entry.kind, entry.name, entry.namespace)
    )
    if live is None:
        return
    why = delete_verdict(app, key, live, policy=policy, namespaced=bool(entry.namespace))
    if why:
        outcome.results.append(ResourceResult(key, ResultCode.PRUNE_SKIPPED, why))
        return
    outcome.remaining.append(key)
    if (live.get("metadata") or {}).get("deletionTimestamp"):
        return  # asked before: waiting for the garbage collector
    uid = live["metadata"].get("uid")
    try:
        with_retries(
            lambda: kube.delete(
                entry.api_version,
                entry.kind,
                entry.name,
                entry.namespace,
                propagation=str(propagation),
                precondition_uid=uid,
            )
        )
    except ApiError as exc:
        if exc.status not in (403, 409):  # 409: replaced since read (another uid): next round
            raise
        message = f"delete refused: {exc.message or exc}"
        outcome.results.append(ResourceResult(key, ResultCode.SYNC_FAILED, message))
        return
    outcome.results.append(ResourceResult(key, ResultCode.PRUNED, f"deleted ({propagation})"))
