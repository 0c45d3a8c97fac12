"""The operator's declared health checks in a running controller: a file, and labelled ConfigMaps.

``gitsync serve --health-checks FILE`` is read once at start; an invalid file stops the start
with an error naming the file, entry and field (a typo should not quietly change health).
ConfigMaps in the controller's namespace labelled ``gitsync.dev/health-checks: "true"`` (each data
key a YAML list, as in the file) are watched (a watch cache of ConfigMaps in that namespace, of
the local cluster only): every change event for one of them - created, edited, relabelled,
deleted - rebuilds the set from the ConfigMaps as last seen and installs it
(``gitsync.health.custom.install``) at once, then re-queues every Application so its health is
assessed with the new checks without waiting for its interval.

A ConfigMap is edited live, so there an invalid entry must not take the other checks down: it is
left out, the others stand, and the problem (ConfigMap, key, entry, field) is logged and
recorded as a Warning Event ``InvalidHealthCheck`` on that ConfigMap (``kubectl describe
configmap`` shows it). Precedence: the file's entries, then the ConfigMaps by name and their keys
in order; a second check for the same kind is a problem of the same sort.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import structlog

from gitsync.health.custom import (
    MAX_TEXT_BYTES,
    CelHealthCheck,
    CustomChecks,
    HealthCheckError,
    install,
    load_strict,
    load_text,
)
from gitsync.kube import ApiError, KubeClient
from gitsync.kube.cache import WatchCache
from gitsync.model import ResourceKey

log = structlog.get_logger(__name__)

HEALTH_CHECKS_LABEL: Final = "gitsync.dev/health-checks"
EVENT_REASON: Final = "InvalidHealthCheck"

RecordEvent = Callable[[dict[str, Any], str, str, bool], None]


def load_file(path: Path) -> list[CelHealthCheck]:
    """``--health-checks FILE``: every entry valid, or ``HealthCheckError`` naming the problem."""
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise HealthCheckError(f"{path}: larger than {MAX_TEXT_BYTES} bytes")
        text = path.read_bytes()
    except OSError as exc:
        raise HealthCheckError(f"--health-checks {path}: {exc.strerror or exc}") from None
    return load_strict(text, str(path))


def labelled(obj: dict[str, Any] | None) -> bool:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return isinstance(labels, dict) and labels.get(HEALTH_CHECKS_LABEL) == "true"


def checks_of_config_map(obj: dict[str, Any]) -> tuple[list[CelHealthCheck], list[str]]:
    """The checks of one ConfigMap (each data key a YAML list, keys in order) and its problems."""
    meta = obj.get("metadata") or {}
    name = f"ConfigMap {meta.get('namespace', '')}/{meta.get('name', '')}"
    data = obj.get("data") or {}
    checks: list[CelHealthCheck] = []
    problems: list[str] = []
    if not isinstance(data, dict):
        return [], [f"{name}: data is not a mapping"]
    for key in sorted(data):
        found, wrong = load_text(str(data[key]), f"{name} key {key}")
        checks += found
        problems += wrong
    return checks, problems


class DeclaredHealthChecks:
    """Keeps the installed checks equal to the file's plus the labelled ConfigMaps'."""

    def __init__(
        self,
        namespace: str,
        *,
        file: Path | None,
        record_event: RecordEvent,
        requeue_all: Callable[[], None],
    ) -> None:
        self.namespace = namespace
        self.file_checks = load_file(file) if file is not None else []
        self.record_event = record_event
        self.requeue_all = requeue_all
        self._lock = threading.Lock()
        self._config_maps: dict[str, dict[str, Any]] = {}
        self._cache: WatchCache | None = None
        self.current: CustomChecks = install(self.file_checks)

    def start(self, kube: KubeClient, *, timeout: float = 30.0) -> None:
        """Watch the namespace's ConfigMaps and install what the labelled ones declare. When
        they cannot be listed (RBAC), say so and go on with the file's checks."""
        self._cache = WatchCache(kube, on_event=self._on_event)
        try:
            self._cache.ensure("v1", "ConfigMap", self.namespace, timeout=timeout)
        except (ApiError, TimeoutError) as exc:
            log.warning(
                "health-check ConfigMaps cannot be watched; only --health-checks applies",
                namespace=self.namespace,
                error=str(exc)[:200],
            )
            return
        selector = {HEALTH_CHECKS_LABEL: "true"}
        for obj in self._cache.list("v1", "ConfigMap", self.namespace, selector):
            self.on_config_map("ADDED", obj)

    def stop(self) -> None:
        if self._cache is not None:
            self._cache.stop()

    def _on_event(self, event_type: str, key: ResourceKey, obj: dict[str, Any] | None) -> None:
        if key.kind == "ConfigMap" and not key.group:
            self.on_config_map(event_type, obj, name=key.name)

    def on_config_map(self, event_type: str, obj: dict[str, Any] | None, *, name: str = "") -> None:
        """A change of a ConfigMap in the controller's namespace (any: a label may be removed)."""
        name = name or str(((obj or {}).get("metadata") or {}).get("name", ""))
        if not name:
            return
        with self._lock:
            was = name in self._config_maps
            if event_type == "DELETED" or obj is None or not labelled(obj):
                if not was:
                    return
                del self._config_maps[name]
            else:
                self._config_maps[name] = obj
            self._reload(changed=name)
        self.requeue_all()

    def _reload(self, changed: str) -> None:
        checks = list(self.file_checks)
        for name in sorted(self._config_maps):
            obj = self._config_maps[name]
            found, problems = checks_of_config_map(obj)
            checks += found
            if name == changed:
                self._report(obj, problems)
        self.current = install(checks)
        changed_obj = self._config_maps.get(changed)
        prefix = f"ConfigMap {self.namespace}/{changed} "
        duplicates = [p for p in self.current.problems if p.startswith(prefix)]
        if changed_obj is not None and duplicates:
            self._report(changed_obj, duplicates)
        log.info(
            "health checks installed",
            declared=len(self.current.user),
            config_maps=sorted(self._config_maps),
        )

    def _report(self, obj: dict[str, Any], problems: list[str]) -> None:
        for problem in problems:
            log.warning("health check left out", problem=problem)
            self.record_event(obj, EVENT_REASON, problem, True)
