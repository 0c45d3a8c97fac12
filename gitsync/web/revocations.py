"""The session revocation list shared by every ``gitsync serve`` replica, kept in a ConfigMap.

A session cookie stays valid wherever the session key is known (``gitsync.web.sessions``), so a
logout on one replica must reach the others. The list lives in the ConfigMap
``gitsync-session-revocations`` in the controller namespace:

* ``data.sessions`` - JSON ``{"<sha256 of the session id, 32 hex>": <unix time it would expire>}``,
  written by logout;
* ``data.subjects`` - JSON ``{"<subject>": <unix time>}``: every session of that user (the OIDC
  ``sub``; ``admin``/``viewer`` for password logins) that began at or before that time is ended.
  An operator writes it to end all of someone's sessions, e.g.
  ``kubectl -n gitsync patch configmap gitsync-session-revocations --type merge
  -p '{"data":{"subjects":"{\\"alice\\": 1796601600}"}}'``.

Why it is shaped this way:

* A write is read-modify-write with the ``resourceVersion`` read (a PUT that fails with 409 when
  another replica wrote in between, then retried), so two logouts at once both land.
* Every replica reads the ConfigMap every ``refresh`` seconds on a daemon thread and merges it
  into its local list, so a revocation ends the session on every replica within ``refresh``
  seconds - on the replica that revoked it, at once. A read that fails keeps the entries known.
* Bounded: entries leave when their session would have expired anyway, at most
  ``MAX_REVOKED``, and a ConfigMap whose data is over ``MAX_CONFIGMAP_BYTES`` is not read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from gitsync.kube.client import ApiError, KubeClient
from gitsync.web.sessions import LocalRevocations, Session

log = structlog.get_logger(__name__)

CONFIGMAP_NAME = "gitsync-session-revocations"
MAX_CONFIGMAP_BYTES = 900 * 1024  # a ConfigMap holds at most 1 MiB
WRITE_ATTEMPTS = 5
REQUEST_TIMEOUT = 10.0


class ConfigMapRevocations(LocalRevocations):
    """``LocalRevocations`` mirrored to and from the ConfigMap (see the module docstring)."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        *,
        refresh: float = 5.0,
        max_age: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(clock, max_age=max_age)
        self.kube = kube
        self.namespace = namespace
        self.refresh = refresh
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.read()
        self._thread = threading.Thread(
            target=self._loop, name="gitsync-session-revocations", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh):
            self.read()

    def read(self) -> None:
        """Merge the ConfigMap's entries into this replica's list (kept as they are on error)."""
        try:
            obj = self.kube.get("v1", "ConfigMap", CONFIGMAP_NAME, self.namespace)
        except ApiError as exc:
            log.warning("cannot read the session revocation list", error=str(exc))
            return
        if obj is not None:
            sessions, subjects = _entries(obj)
            self.merge(sessions, subjects)

    def revoke(self, session: Session, expires_at: float) -> None:
        super().revoke(session, expires_at)  # this replica refuses it at once
        for _ in range(WRITE_ATTEMPTS):
            try:
                if self._write_once():
                    return
            except ApiError as exc:
                log.error("cannot write the session revocation list", error=str(exc))
                return
        log.error("the session revocation list kept changing; the revocation is local only")

    def _write_once(self) -> bool:
        """One read-modify-write; False when another replica wrote first (409)."""
        obj = self.kube.get("v1", "ConfigMap", CONFIGMAP_NAME, self.namespace)
        if obj is not None:
            self.merge(*_entries(obj))
        sessions, subjects = self.snapshot()
        data = {
            "sessions": json.dumps(sessions, sort_keys=True),
            "subjects": json.dumps(subjects, sort_keys=True),
        }
        try:
            if obj is None:
                self.kube.create(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": CONFIGMAP_NAME, "namespace": self.namespace},
                        "data": data,
                    },
                    namespace=self.namespace,
                )
            else:
                obj["data"] = data
                self.kube.replace(obj, field_manager="gitsync-sessions")
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True


def _entries(obj: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    data = obj.get("data") or {}
    if sum(len(str(v)) for v in data.values()) > MAX_CONFIGMAP_BYTES:
        log.error("the session revocation list is too large to read", name=CONFIGMAP_NAME)
        return {}, {}
    return _numbers(data.get("sessions")), _numbers(data.get("subjects"))


def _numbers(text: Any) -> dict[str, float]:
    """A JSON object of names to times; anything else in it is skipped."""
    try:
        parsed = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        log.warning("a session revocation list entry is not JSON; skipped")
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in parsed.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
