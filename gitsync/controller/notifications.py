"""Notifications, wired into the controller: rules and providers from the watch cache, the plan
recorded in the Application's status, delivery on the notifier's own threads.

The reconciler calls ``plan`` with the status it is about to write and ``enqueue`` once that
write succeeded (``gitsync.controller.reconciler.Notifier``); both only read memory and take a
lock, so no provider, Secret read or DNS lookup ever runs on a reconcile worker. Rules and
providers are watched in the namespaces the controller watches; until those watches have loaded
(or when the CRDs are not installed) ``plan`` finds no rules and records nothing, so the events
are still due and go out on a later status write.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from gitsync import kinds
from gitsync.application_status import ApplicationStatus
from gitsync.controller.apps import ApplicationStore, EventRecorder
from gitsync.controller.metrics import Metrics
from gitsync.kube import ApiError, KubeClient
from gitsync.kube.cache import NotWatchedError, WatchCache
from gitsync.model import AppKey
from gitsync.notify.delivery import ALLOW_FLAG, DEFAULT_ALLOW, SCHEMES, Deliverer
from gitsync.notify.events import AppFacts, events_of
from gitsync.notify.plan import Delivery, due, record
from gitsync.notify.spec import (
    NotificationSpecError,
    ProviderSpec,
    RuleSpec,
    parse_provider,
    parse_rule,
)
from gitsync.rollout.endpoints import AnalysisAllowList

log = structlog.get_logger(__name__)

WATCHED = (kinds.NOTIFICATION_RULE, kinds.NOTIFICATION_PROVIDER)
WATCH_RETRY = 60.0


def app_facts(obj: Mapping[str, Any], external_url: str) -> AppFacts:
    """What an event needs from the Application object (read tolerantly: the spec was parsed
    already, or the app is Stalled and its events say so)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    source = spec.get("source") or {}
    sources = spec.get("sources") or []
    repo_url = source.get("repoURL") if isinstance(source, Mapping) else None
    if not repo_url and isinstance(sources, list) and sources and isinstance(sources[0], Mapping):
        repo_url = sources[0].get("repoURL")
    policy = spec.get("syncPolicy") or {}
    automated = isinstance(policy, Mapping) and policy.get("automated") is not None
    labels = meta.get("labels") or {}
    return AppFacts(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
        repo_url=str(repo_url or ""),
        automated=automated,
        external_url=external_url,
    )


class Notifications:
    def __init__(
        self,
        kube: KubeClient,
        cache: WatchCache,
        store: ApplicationStore,
        metrics: Metrics,
        *,
        allow: tuple[str, ...] = (),
        external_url: str = "",
        namespaces: list[str] | None = None,
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.store = store
        self.external_url = external_url
        self.namespaces = namespaces
        self._invalid: dict[tuple[str, str, str], str] = {}  # logged once per object and error
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._events = EventRecorder(kube)
        self.deliverer = Deliverer(
            provider_of=self.provider,
            secret_of=self._secret,
            allow=AnalysisAllowList.parse(allow or DEFAULT_ALLOW, flag=ALLOW_FLAG, schemes=SCHEMES),
            on_result=metrics.notification,
            on_failure=lambda key, reason, message: store.record_event(
                key, reason, message, warning=True
            ),
        )

    def start(self) -> None:
        self.deliverer.start()
        threading.Thread(target=self._watch, name="notify-watch", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self.deliverer.stop()

    def _watch(self) -> None:
        """Start the watches; a kind the server does not serve yet (CRDs installed later) is
        tried again every ``WATCH_RETRY`` seconds."""
        pending = list(WATCHED)
        while pending and not self._stopped.is_set():
            for kind in list(pending):
                try:
                    if self.namespaces:
                        self.cache.ensure_namespaces(kinds.API_VERSION, kind, self.namespaces)
                    else:
                        self.cache.ensure(kinds.API_VERSION, kind)
                    pending.remove(kind)
                except (ApiError, TimeoutError) as exc:
                    log.warning("notifications: cannot watch yet", kind=kind, error=str(exc))
                except RuntimeError:  # the cache was stopped
                    return
            self._stopped.wait(WATCH_RETRY)

    def _objects(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        try:
            return self.cache.list(kinds.API_VERSION, kind, namespace)
        except NotWatchedError:
            return []

    def _parsed(self, obj: Mapping[str, Any], parse: Any) -> Any:
        try:
            return parse(obj)
        except NotificationSpecError as exc:
            meta = obj.get("metadata") or {}
            ident = (str(obj.get("kind")), str(meta.get("namespace")), str(meta.get("name")))
            with self._lock:
                seen = self._invalid.get(ident) == str(exc)
                self._invalid[ident] = str(exc)
            if not seen:  # once per object and error: a Warning Event on the object says why
                log.warning(
                    "notifications: invalid object ignored", object="/".join(ident), error=str(exc)
                )
                self._events.record(dict(obj), "InvalidSpec", f"ignored: {exc}", True)
            return None

    def rules(self, namespace: str) -> list[RuleSpec]:
        objs = self._objects(kinds.NOTIFICATION_RULE, namespace)
        return [r for r in (self._parsed(o, parse_rule) for o in objs) if r is not None]

    def providers(self, namespace: str) -> dict[str, ProviderSpec]:
        objs = self._objects(kinds.NOTIFICATION_PROVIDER, namespace)
        parsed = (self._parsed(o, parse_provider) for o in objs)
        return {p.name: p for p in parsed if p is not None}

    def provider(self, namespace: str, name: str) -> ProviderSpec | None:
        return self.providers(namespace).get(name)

    def _secret(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The provider's Secret, always from the provider's own namespace."""
        return self.kube.get("v1", "Secret", name, namespace)

    # -- the reconciler's side (gitsync.controller.reconciler.Notifier) ------------------------

    def plan(self, key: AppKey, status: ApplicationStatus) -> list[Delivery]:
        """The deliveries ``status`` calls for; their keys are added to
        ``status.sent_notifications`` (written with it, before anything is sent)."""
        rules = self.rules(key[0])
        if not rules:
            return []
        obj = self.store.get(key)
        if obj is None:
            return []
        app = app_facts(obj, self.external_url)
        if (app.namespace, app.name) != key:
            return []
        deliveries = due(
            app,
            events_of(app, status),
            rules,
            self.providers(key[0]),
            status.sent_notifications or (),
        )
        if deliveries:
            status.sent_notifications = record(
                status.sent_notifications, (d.key for d in deliveries)
            )
        return deliveries

    def enqueue(self, key: AppKey, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self.deliverer.enqueue(key, delivery)
