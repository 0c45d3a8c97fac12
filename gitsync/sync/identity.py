"""Whom an Application's reads and writes run as: a ServiceAccount in its own namespace.

Flux's model, made the default: every read, dry run, apply and prune for an Application goes to
the API server with ``Impersonate-User: system:serviceaccount:<app namespace>:<name>``, so what
an Application author can do is exactly what the operator granted that ServiceAccount, enforced
by Kubernetes RBAC - never the controller's own (much broader) rights. The controller's identity
is kept for its own objects: Application status, inventories, Leases, Events.

The one place the controller's identity still *reads* for an app is its watch cache: the compare
takes live objects from memory instead of a GET each (that is what keeps a no-change refresh at
zero requests per object). Handing those objects to an app would let its diff show an object its
ServiceAccount may not read, so before a cached object is used the ServiceAccount is asked -
through impersonation, with a SelfSubjectAccessReview (which needs no extra right) - whether it
may ``get`` that kind in that namespace. One review answers for every object of the kind in the
namespace and is remembered for ``REVIEW_TTL`` seconds, so a refresh costs a few reviews at most
and usually none. When the answer is no, the object is read with an impersonated GET instead:
the API server's own 403 is what the app reports (a review cannot be more precise than that).
A per-object check (``resourceNames`` rules) is left to that GET as well: a review without a name
answers "no" for a ServiceAccount allowed only some names, which sends the read to the GET.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gitsync.application import Application
from gitsync.errors import TerminalError
from gitsync.kube import ApiError, KubeClient

REVIEW_TTL = 60.0
"""Seconds an access review's answer is reused: how long a revoked (or a new) read grant can go
unnoticed by the cached compare; writes always go to the API server as the ServiceAccount."""


class NoServiceAccountError(TerminalError):
    """Impersonation is on, and neither the app nor the controller names a ServiceAccount."""


class Impersonation:
    """Picks the ServiceAccount an app runs as and remembers what those accounts may read."""

    def __init__(
        self,
        default_service_account: str = "",
        *,
        review_ttl: float = REVIEW_TTL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.default_service_account = default_service_account
        self.review_ttl = review_ttl
        self._clock = clock
        self._reviews: dict[tuple[str, str, str, str], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def service_account(self, app: Application) -> str:
        """``spec.serviceAccountName``, else the controller's default; a terminal spec error
        naming the fix when there is neither (nothing of the app may then be read or applied)."""
        name = app.service_account_name or self.default_service_account
        if not name:
            raise NoServiceAccountError(
                f"spec.serviceAccountName: Application {app.qualified_name} names no "
                "ServiceAccount to run as, and the controller has no default: set "
                f"spec.serviceAccountName to a ServiceAccount in namespace {app.namespace} "
                "(bound to the Roles the app needs), or start gitsync serve with "
                "--default-service-account NAME"
            )
        return name

    def client(self, kube: KubeClient, app: Application) -> KubeClient:
        """``kube`` acting as the app's ServiceAccount."""
        return kube.impersonating_service_account(app.namespace, self.service_account(app))

    def may_get(self, kube: KubeClient, group: str, resource: str, namespace: str) -> bool:
        """Whether ``kube``'s (impersonated) user may get ``resource`` in ``namespace``; False
        also when the review itself failed, so that the caller asks the API server directly."""
        key = (kube.impersonated_user, group, resource, namespace)
        now = self._clock()
        with self._lock:
            kept = self._reviews.get(key)
        if kept is not None and now - kept[0] < self.review_ttl:
            return kept[1]
        try:
            allowed = kube.may("get", group, resource, namespace)
        except ApiError:
            return False  # not remembered: the next read asks again
        with self._lock:
            self._reviews[key] = (now, allowed)
        return allowed


__all__ = ["REVIEW_TTL", "Impersonation", "NoServiceAccountError"]
