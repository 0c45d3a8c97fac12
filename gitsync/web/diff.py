"""The diff of one Application, computed on demand: Git at its target revision against the live
cluster, through the controller (the same compare a reconcile runs, no write, no sync).

The controller is asked through its public ``ControllerView.application_diff(key)``
(``gitsync.controller.interface``). Secret values arrive already masked
(``gitsync.diff.masking``: ``ResourceDiff.unified`` never holds a Secret value), and only
``unified``/``changed_paths``/``error`` leave this module - never the desired or live objects
themselves.

A compare costs a fetch, a render and a server-side-apply dry run per object, so at most
``concurrency`` run at once per process - more get ``DiffBusy`` (503) instead of queueing up the
web server's threads - and a compare of the same app is reused for ``reuse`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from gitsync.application import SpecError
from gitsync.application_status import ApplicationStatus
from gitsync.controller.interface import AppDiff, ControllerView
from gitsync.errors import GitsyncError
from gitsync.model import ResourceKey
from gitsync.source import redact_url
from gitsync.web.view import AppKey

MAX_DIFF_CHARS = 256 * 1024


def manages_secrets(obj: Mapping[str, Any]) -> bool:
    """Whether the Application's last known resources include a Secret: its diff then shows
    the shape of Secrets (values stay masked) and needs the ``diff-secrets`` action."""
    status = ApplicationStatus.from_dict(obj.get("status"))
    return any(str(r.kind) == "Secret" and not r.group for r in status.resources or ())


class DiffError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class DiffBusy(DiffError):
    def __init__(self) -> None:
        super().__init__(503, "too many diffs are being computed; retry in a few seconds")


class Differ:
    """Computes diffs, at most ``concurrency`` at once; a compare of the same app finished less
    than ``reuse`` seconds ago is answered again instead of asking Git and the API server anew."""

    def __init__(
        self,
        controller: ControllerView,
        *,
        concurrency: int = 2,
        reuse: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.controller = controller
        self._slots = threading.BoundedSemaphore(concurrency)
        self._reuse = reuse
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: dict[AppKey, tuple[float, AppDiff]] = {}

    def diff(self, key: AppKey, *, include_synced: bool = False) -> dict[str, Any]:
        with self._lock:
            recent = self._recent.get(key)
            now = self._clock()
            self._recent = {k: v for k, v in self._recent.items() if now - v[0] < self._reuse}
        if recent is not None and now - recent[0] < self._reuse:
            return document(key, recent[1], include_synced=include_synced)
        if not self._slots.acquire(blocking=False):
            raise DiffBusy
        try:
            state = self._compare(key)
        finally:
            self._slots.release()
        with self._lock:
            self._recent[key] = (self._clock(), state)
        return document(key, state, include_synced=include_synced)

    def _compare(self, key: AppKey) -> AppDiff:
        try:
            state = self.controller.application_diff(key)
        except SpecError as exc:
            raise DiffError(409, f"the Application's spec is invalid: {exc}") from exc
        except GitsyncError as exc:
            raise DiffError(502, f"compare failed: {redact_url(str(exc))[:2000]}") from exc
        if state is None:
            raise DiffError(404, f"no Application {key[0]}/{key[1]}")
        return state


def _bounded(text: str) -> str:
    if len(text) <= MAX_DIFF_CHARS:
        return text
    return text[:MAX_DIFF_CHARS] + "\n... (diff truncated)\n"


def _key_fields(key: ResourceKey) -> dict[str, str]:
    return {
        "group": str(key.group),
        "kind": str(key.kind),
        "namespace": str(key.namespace),
        "name": str(key.name),
    }


def document(key: AppKey, state: AppDiff, *, include_synced: bool) -> dict[str, Any]:
    """The diff as the API returns it (masked ``unified`` text per resource that differs)."""
    resources = []
    for d in state.comparison.diffs:
        status = str(d.status)
        if status == "Synced" and not include_synced:
            continue
        fields = _key_fields(d.key)
        resources.append(
            {
                **fields,
                "id": "/".join(fields.values()),
                "status": status,
                "diff": _bounded(d.unified or ""),
                "changedPaths": list(d.changed_paths)[:200],
                "error": redact_url(d.error)[:2000] if d.error else None,
            }
        )
    errors = [
        {"resource": str(k), "error": redact_url(str(e))[:2000]} for k, e in state.comparison.errors
    ]
    return {
        "application": f"{key[0]}/{key[1]}",
        "revision": {"sha": state.revision.sha, "ref": state.revision.ref},
        "inSync": bool(state.comparison.in_sync),
        "resources": resources,
        "errors": errors,
    }
