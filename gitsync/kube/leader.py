"""Leader election on a ``coordination.k8s.io/v1`` Lease, so only one controller replica writes.

Several gitsync replicas may run for availability, but only one may sync: two writers would fight
over the same objects. This follows client-go's ``leaderelection`` package: a candidate takes the
Lease when nobody holds it, when the holder released it, when it holds it itself (a restart with
the same identity), or when the holder has not renewed for ``leaseDurationSeconds``. The leader
renews every ``retry_period`` and steps down when it could not renew for ``renew_deadline``.

Why two electors cannot both believe they lead (beyond the clock-skew margin):

* Every write is optimistic: a PUT carrying the resourceVersion this elector last read (or a POST
  that fails if the Lease exists). Of two candidates racing for the same version, one gets 409.
* Expiry is never judged from the timestamps in the Lease - other machines' wall clocks. Like
  client-go, an observer notes on ITS OWN monotonic clock (``CLOCK_BOOTTIME``, which keeps counting
  through a suspend) when it first saw the current version of the record, and counts the lease
  expired only ``leaseDurationSeconds`` after that. Any write - a renewal included - resets it.
* The leader's term is measured from the moment it SENT its last successful write: ``is_leader``
  is ``started + renew_deadline > now``, computed on every read, so it turns false on time even if
  the loop thread is stuck in a slow request.

The argument. Say challenger C takes over with a PUT carrying resourceVersion v. The PUT succeeds,
so v was still the latest version when it landed: every write by the old leader L that succeeded
landed no later than v did. Let L's last successful write start at s (L stops leading at
s + renew_deadline) and land at w <= landing(v). C first saw v at o >= landing(v) >= w >= s, and
took over only once its own clock showed o + D (D = the leaseDurationSeconds L wrote, its own
lease_duration rounded up). Because ``renew_deadline < lease_duration`` (checked in ``__init__``),
s + renew_deadline < o + D: L's term ended before C's began. The gap D - renew_deadline (5 s
with the defaults) is the budget for the two clocks ticking at slightly different rates and for
L's work noticing that ``is_leader`` turned false; wall-clock skew plays no part. Releasing on
``stop()`` keeps the order: L first stops leading (and ``on_stopped_leading`` returns), then
writes an empty holder, which a successor may take at once.

What the argument assumes: identities are unique per process (two electors with the same identity
both consider the Lease theirs - use the pod name plus a random suffix, as client-go recommends),
and nobody but an elector writes the Lease (a person blanking ``holderIdentity`` by hand lets a
candidate in at once, while the old leader's term still runs).

The callbacks run on the elector's thread and must return quickly (start or signal your worker;
do not run it there), or renewals are delayed. After losing the lease the elector becomes a
candidate again, so ``on_started_leading`` may be called again later; the calls alternate.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from gitsync.kube.client import ApiError, KubeClient

log = structlog.get_logger(__name__)

LEASE_API_VERSION = "coordination.k8s.io/v1"

_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def _now() -> float:
    """A monotonic clock that keeps counting while the machine is suspended (Linux)."""
    if _BOOTTIME is not None:
        return time.clock_gettime(_BOOTTIME)
    return time.monotonic()


def _micro_time() -> str:
    """``metav1.MicroTime`` as JSON: RFC 3339 with microseconds, UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Competes for one Lease; ``is_leader`` says whether this process may act as the leader."""

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError(
                "need 0 < retry_period < renew_deadline < lease_duration, got "
                f"{retry_period} / {renew_deadline} / {lease_duration}"
            )
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        # A request that outlives this cannot hold up stepping down for long.
        self._request_timeout = max(0.5, min(retry_period * 2, renew_deadline / 2))
        self._lock = threading.Lock()
        self._leading = False
        self._valid_until = 0.0  # on _now(): the end of the term won by the last write
        self._lease: dict[str, Any] | None = None  # the object as this elector last wrote it
        self._observed_rv: str | None = None
        self._observed_at = 0.0
        self._observed_holder = ""
        self._stop = threading.Event()
        self._release_on_stop = True
        self._partitioned = threading.Event()
        self._thread: threading.Thread | None = None
        self.log = log.bind(lease=f"{namespace}/{name}", identity=identity)

    # -- public surface -----------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while this elector holds the Lease with a term not yet run out."""
        with self._lock:
            return self._leading and _now() < self._valid_until

    @property
    def observed_holder(self) -> str:
        """The holder identity in the Lease as last read or written ("" when free)."""
        with self._lock:
            return self._observed_holder

    def start(self) -> None:
        """Run the election in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("elector already started")
        self._thread = threading.Thread(
            target=self.run, name=f"gitsync-leader {self.namespace}/{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, *, release: bool = True, timeout: float = 5.0) -> None:
        """Stop competing. While leading: step down, then (``release``) free the Lease at once.

        ``release=False`` leaves the Lease to expire, as a crashed process would.
        """
        self._release_on_stop = release
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self) -> None:
        """The election loop; returns after ``stop()``."""
        try:
            while not self._stop.is_set():
                began = _now()
                won = self._try_acquire_or_renew(began)
                if won:
                    self._won(began)
                self._check_term()
                self._stop.wait(self._next_wait())
        finally:
            was_leading = self._step_down()
            if was_leading and self._release_on_stop:
                self._release()

    # -- one round ----------------------------------------------------------------------------

    def _path(self) -> str:
        return self.client.path(LEASE_API_VERSION, "Lease", self.namespace, self.name)

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = _micro_time()
        previous = previous or {}
        ours = previous.get("holderIdentity") == self.identity
        transitions = int(previous.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.lease_duration),
            "acquireTime": previous.get("acquireTime") if ours else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours or not previous else transitions + 1,
        }

    def _try_acquire_or_renew(self, began: float) -> bool:
        """One attempt: True when this elector holds the Lease by a write started at ``began``."""
        if self._partitioned.is_set():
            return False  # test hook: the API server is unreachable
        with self._lock:
            known = self._lease if self._leading else None
        try:
            if known is None:
                known = self._read()
                if known is None:
                    return self._create()
            spec = known.get("spec") or {}
            holder = str(spec.get("holderIdentity") or "")
            if holder and holder != self.identity:
                duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
                with self._lock:
                    if _now() < self._observed_at + duration:
                        return False  # held by another and not expired by our own clock
            body = dict(known)
            body["spec"] = self._spec(spec)
            written = self.client.request(
                "PUT", self._path(), body=body, timeout=self._request_timeout
            )
        except ApiError as exc:
            with self._lock:
                self._lease = None  # read afresh next round
            if exc.status != 409:
                self.log.warning("lease request failed", error=str(exc))
            return False
        self._observe(written, ours=True)
        return True

    def _read(self) -> dict[str, Any] | None:
        try:
            lease = self.client.request("GET", self._path(), timeout=self._request_timeout)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        self._observe(lease, ours=False)
        return lease

    def _create(self) -> bool:
        body = {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(None),
        }
        try:
            created = self.client.request(
                "POST",
                self.client.path(LEASE_API_VERSION, "Lease", self.namespace),
                body=body,
                timeout=self._request_timeout,
            )
        except ApiError as exc:
            if exc.status != 409:  # 409: another candidate created it first
                self.log.warning("lease create failed", error=str(exc))
            return False
        self._observe(created, ours=True)
        return True

    def _observe(self, lease: dict[str, Any], *, ours: bool) -> None:
        """Note a version of the record; the expiry clock restarts whenever the version changes."""
        rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
        with self._lock:
            if rv != self._observed_rv:
                self._observed_rv = rv
                self._observed_at = _now()
            self._observed_holder = holder
            if ours:
                self._lease = lease

    def _won(self, began: float) -> None:
        with self._lock:
            self._valid_until = began + self.renew_deadline
            newly = not self._leading and _now() < self._valid_until
            if newly:
                self._leading = True
        if newly:
            self.log.info("started leading")
            self._call(self._on_started, "on_started_leading")

    def _check_term(self) -> None:
        """Step down once the term ran out without a successful renewal."""
        with self._lock:
            expired = self._leading and _now() >= self._valid_until
        if expired:
            self.log.warning("could not renew the lease in time; stepping down")
            self._step_down()

    def _step_down(self) -> bool:
        with self._lock:
            was = self._leading
            self._leading = False
            self._valid_until = 0.0
        if was:
            self.log.info("stopped leading")
            self._call(self._on_stopped, "on_stopped_leading")
        return was

    def _next_wait(self) -> float:
        with self._lock:
            if self._leading:
                # Renew every retry_period, and wake up exactly when the term runs out.
                return max(0.0, min(self.retry_period, self._valid_until - _now()))
        return self.retry_period * random.uniform(1.0, 1.2)  # noqa: S311 - jitter, not secrets

    def _release(self) -> None:
        """Hand the Lease over at once: empty holder, one-second duration (as client-go does)."""
        with self._lock:
            lease = self._lease
            self._lease = None
        if lease is None or self._partitioned.is_set():
            return
        spec = dict(lease.get("spec") or {})
        now = _micro_time()
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=now, acquireTime=now)
        try:
            self.client.request(
                "PUT", self._path(), body={**lease, "spec": spec}, timeout=self._request_timeout
            )
        except ApiError as exc:  # the lease then simply expires
            self.log.warning("lease release failed", error=str(exc))
            return
        self.log.info("released the lease")

    def _call(self, callback: Callable[[], None] | None, what: str) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            self.log.exception("leader election callback failed", callback=what)

    # -- test hooks ---------------------------------------------------------------------------

    def _partition(self, cut: bool = True) -> None:
        """Test hook: make every Lease request fail, as if the API server were unreachable."""
        if cut:
            self._partitioned.set()
        else:
            self._partitioned.clear()
