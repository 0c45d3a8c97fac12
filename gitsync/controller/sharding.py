"""Sharding over replicas: each shard of Applications is held through its own Lease.

With ``gitsync serve --shards N`` every Application belongs to one of N shards (a consistent hash
of its UID, :mod:`gitsync.controller.shardmath`), shard ``i`` is held through the Lease
``gitsync-shard-<i>`` in the controller namespace, and a replica reconciles an app only while it
holds the app's shard. Every replica also holds a heartbeat Lease ``gitsync-replica-<identity>``,
so the others know how many replicas are alive and what a fair share is.

Why this is safe - no Application is reconciled by two replicas at once:

* Each shard Lease is run by a :class:`~gitsync.kube.leader.LeaderElector`, whose argument shows
  that two holders' terms never overlap (``renew_deadline < lease_duration``, expiry judged on
  the observer's own monotonic clock). A replica starts a reconcile only while the shard's term
  is running (``ShardSet.reconciling``), and counts it as in flight until it returns.
* Giving a shard up on purpose (rebalancing, shutdown) drains first: the shard stops taking new
  reconciles, the Lease keeps being renewed until the in-flight ones have returned, and only then
  is it released - so the successor cannot start before the last write of the old holder.
* Losing a shard involuntarily (the API server unreachable for ``renew_deadline``) stops new
  reconciles at once; a reconcile already running is not interrupted, so it must end within the
  margin ``lease_duration - renew_deadline`` (a third of the lease duration) - as with
  ``--leader-elect`` today. A replica killed outright makes no more writes at all.

Why it is balanced: one manager thread per replica reads all Leases in the namespace once per
round (one LIST), judges which replicas are alive the way an elector judges expiry (a heartbeat
whose version has not changed for its duration is dead), and computes the same target assignment
every other replica with the same view computes (:func:`~gitsync.controller.shardmath.assign`).
The electors of shards this replica should not hold stay passive: they only note the versions
the manager read, so when a holder dies its shards are taken over as soon as its Lease expires.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Gauge

from gitsync.controller.shardmath import assign, shard_of
from gitsync.kube import ApiError, KubeClient
from gitsync.kube.leader import LEASE_API_VERSION, LeaderElector
from gitsync.model import AppKey

log = structlog.get_logger(__name__)

SHARD_LEASE_PREFIX = "gitsync-shard-"
REPLICA_LEASE_PREFIX = "gitsync-replica-"


def replica_lease_name(identity: str) -> str:
    """A valid Lease name for a replica identity (a DNS subdomain; long ones end in a hash)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", identity.lower()).strip("-.") or "x"
    if len(name) > 200 or name != identity:
        name = f"{name[:200]}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"
    return REPLICA_LEASE_PREFIX + name


class _ShardLease(LeaderElector):
    """An elector that competes only while the manager wants the shard, and otherwise releases
    it (if held) or just notes the Lease versions the manager read for it."""

    def __init__(self, client: KubeClient, *, wanted: Callable[[], bool], **kw: Any) -> None:
        super().__init__(client, **kw)
        self._wanted = wanted

    def _try_acquire_or_renew(self, began: float) -> bool:
        if self._wanted():
            return super()._try_acquire_or_renew(began)
        with self._lock:
            leading = self._leading
        if leading:  # the manager drained it: step down first, then hand the Lease over
            self._step_down()
            self._release()
        return False

    def note(self, lease: dict[str, Any]) -> None:
        """Observe a version the manager listed (only while not leading, so never a stale one
        over our own write)."""
        with self._lock:
            if self._leading:
                return
        self._observe(lease, ours=False)


class ShardSet:
    """The shards this replica holds, and the gate every reconcile passes through."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        shards: int,
        namespace: str,
        identity: str,
        lease_duration: float,
        uid_of: Callable[[AppKey], str | None],
        on_gained: Callable[[int], None],
        registry: CollectorRegistry | None = None,
    ) -> None:
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        self.kube = kube
        self.shards = shards
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.retry_period = max(lease_duration / 7.5, 0.5)
        self._uid_of = uid_of
        self._on_gained = on_gained
        self._lock = threading.Lock()
        self._wanted: set[int] = set()
        self._draining: set[int] = set()
        self._inflight = [0] * shards
        self._replicas: dict[str, tuple[str, float]] = {}  # lease name -> (version, first seen)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        renew_deadline = lease_duration * 2 / 3  # as for --leader-elect
        self.heartbeat = LeaderElector(
            kube,
            namespace=namespace,
            name=replica_lease_name(identity),
            identity=identity,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=self.retry_period,
        )
        self.leases = [
            _ShardLease(
                kube,
                wanted=functools.partial(self._is_wanted, s),
                namespace=namespace,
                name=f"{SHARD_LEASE_PREFIX}{s}",
                identity=identity,
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=self.retry_period,
                on_started_leading=functools.partial(self._gained, s),
                on_stopped_leading=functools.partial(self._lost, s),
            )
            for s in range(shards)
        ]
        self.held_gauge = Gauge(
            "gitsync_shards_held",
            "Shards this replica holds (and so reconciles the Applications of)",
            registry=registry,
        )
        self.shard_gauge = Gauge(
            "gitsync_shard_held",
            "1 while this replica holds the shard's Lease",
            ["shard"],
            registry=registry,
        )
        for s in range(shards):
            self.shard_gauge.labels(shard=str(s)).set(0)

    # -- the gate -------------------------------------------------------------------------------

    def shard_of_key(self, key: AppKey) -> int | None:
        """The app's shard; None when the app is gone (nothing of it is left to write)."""
        uid = self._uid_of(key)
        return None if uid is None else shard_of(uid, self.shards)

    def owns(self, shard: int) -> bool:
        with self._lock:
            return self._owns(shard)

    def _owns(self, shard: int) -> bool:
        return shard not in self._draining and self.leases[shard].is_leader

    @contextlib.contextmanager
    def reconciling(self, key: AppKey) -> Iterator[bool]:
        """Yields whether this replica may reconcile ``key`` now; while the block runs, the
        app's shard is not released on purpose."""
        shard = self.shard_of_key(key)
        with self._lock:
            mine = shard is None or self._owns(shard)
            if mine and shard is not None:
                self._inflight[shard] += 1
        try:
            yield mine
        finally:
            if mine and shard is not None:
                with self._lock:
                    self._inflight[shard] -= 1

    def held(self) -> list[int]:
        with self._lock:
            return [s for s in range(self.shards) if self._owns(s)]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self.heartbeat.start()
        for lease in self.leases:
            lease.start()
        self._thread = threading.Thread(target=self._run, name="gitsync-shards", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Drain and release every shard, then the heartbeat (removed: this replica is gone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._draining.update(range(self.shards))
        self._wait_drained(range(self.shards), timeout)
        for lease in self.leases:
            lease.stop(release=True)
        self.heartbeat.stop(release=True)
        with contextlib.suppress(ApiError):
            self.kube.delete(
                LEASE_API_VERSION, "Lease", self.heartbeat.name, namespace=self.namespace
            )

    def _wait_drained(self, shards: range | list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not any(self._inflight[s] for s in shards):
                    return
            time.sleep(0.05)

    # -- the manager ----------------------------------------------------------------------------

    def _is_wanted(self, shard: int) -> bool:
        with self._lock:
            return shard in self._wanted

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except ApiError as exc:
                log.warning("shard round failed", error=str(exc))
            except Exception:
                log.exception("shard round crashed")
            self._stop.wait(self.retry_period)

    def _round(self) -> None:
        items = self.kube.list(LEASE_API_VERSION, "Lease", self.namespace).get("items") or []
        now = time.monotonic()
        live = {self.identity}
        holders: dict[int, str] = {}
        shard_leases: dict[int, dict[str, Any]] = {}
        seen: set[str] = set()
        for lease in items:
            meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
            name = str(meta.get("name") or "")
            holder = str(spec.get("holderIdentity") or "")
            if name.startswith(REPLICA_LEASE_PREFIX):
                seen.add(name)
                rv = str(meta.get("resourceVersion") or "")
                if self._replicas.get(name, ("", 0.0))[0] != rv:
                    self._replicas[name] = (rv, now)
                duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
                if holder and now < self._replicas[name][1] + duration:
                    live.add(holder)
            elif name.startswith(SHARD_LEASE_PREFIX):
                suffix = name.removeprefix(SHARD_LEASE_PREFIX)
                if suffix.isdigit() and int(suffix) < self.shards:
                    shard_leases[int(suffix)] = lease
                    if holder:
                        holders[int(suffix)] = holder
        for name in set(self._replicas) - seen:
            del self._replicas[name]
        for s, lease in shard_leases.items():
            self.leases[s].note(lease)
        for s in range(self.shards):  # our own view of what we hold beats a listed version
            if self.leases[s].is_leader:
                holders[s] = self.identity
            elif holders.get(s) == self.identity:
                del holders[s]  # ours no more, or a previous life of ours: free to take
        target = assign(self.shards, live, {s: h for s, h in holders.items() if h in live})
        mine = {s for s, r in target.items() if r == self.identity}
        self._apply(mine)

    def _apply(self, mine: set[int]) -> None:
        """Want the target shards; drain the others we hold, releasing those with nothing in
        flight (the rest are released on a later round)."""
        with self._lock:
            self._draining -= mine
            for s in range(self.shards):
                if s in mine:
                    self._wanted.add(s)
                elif s in self._wanted:
                    if self.leases[s].is_leader:
                        self._draining.add(s)
                        if self._inflight[s]:
                            continue  # keep renewing until the running reconciles return
                    self._wanted.discard(s)
        self._publish()

    def _publish(self) -> None:
        held = self.held()
        self.held_gauge.set(len(held))
        for s in range(self.shards):
            self.shard_gauge.labels(shard=str(s)).set(1 if s in held else 0)

    def _gained(self, shard: int) -> None:
        log.info("shard acquired", shard=shard, identity=self.identity)
        self.shard_gauge.labels(shard=str(shard)).set(1)
        self._on_gained(shard)

    def _lost(self, shard: int) -> None:
        with self._lock:
            self._draining.discard(shard)
        log.info("shard released", shard=shard, identity=self.identity)
        self.shard_gauge.labels(shard=str(shard)).set(0)
