"""Leader election on a real Lease: one leader at a time, fast handover, safe takeover."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from gitsync.kube import KubeClient
from gitsync.kube.leader import LEASE_API_VERSION, LeaderElector
from tests.support.cluster import TestCluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

LEASE = "gitsync-controller"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 3.0, 2.0, 0.5


@dataclass
class Candidate:
    """An elector with its own client, and when its callbacks ran."""

    elector: LeaderElector
    started: list[float] = field(default_factory=list)
    stopped: list[float] = field(default_factory=list)


class Sampler:
    """Looks at every elector each 50 ms; remembers any moment two of them led at once."""

    def __init__(self, candidates: list[Candidate]) -> None:
        self.candidates = candidates
        self.samples = 0
        self.overlaps: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            leading = [c.elector.identity for c in self.candidates if c.elector.is_leader]
            self.samples += 1
            if len(leading) > 1:
                self.overlaps.append(leading)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def candidates(cluster: TestCluster, namespace: str) -> Iterator[list[Candidate]]:
    made: list[Candidate] = []

    def make(identity: str) -> Candidate:
        cand: Candidate
        elector = LeaderElector(
            cluster.client(user_agent=f"gitsync-{identity}"),
            namespace=namespace,
            name=LEASE,
            identity=identity,
            lease_duration=LEASE_DURATION,
            renew_deadline=RENEW_DEADLINE,
            retry_period=RETRY_PERIOD,
            on_started_leading=lambda: cand.started.append(time.monotonic()),
            on_stopped_leading=lambda: cand.stopped.append(time.monotonic()),
        )
        cand = Candidate(elector)
        made.append(cand)
        return cand

    make("replica-a")
    make("replica-b")
    yield made
    for cand in made:
        cand.elector.stop(release=False)


def lease_spec(kube: KubeClient, namespace: str) -> dict[str, object]:
    lease = kube.get(LEASE_API_VERSION, "Lease", LEASE, namespace)
    assert lease is not None
    spec: dict[str, object] = lease["spec"]
    return spec


def the_leader(candidates: list[Candidate]) -> Candidate | None:
    leading = [c for c in candidates if c.elector.is_leader]
    return leading[0] if len(leading) == 1 else None


def test_one_leader_and_release_hands_over_at_once(
    kube: KubeClient, namespace: str, candidates: list[Candidate]
) -> None:
    sampler = Sampler(candidates)
    for cand in candidates:
        cand.elector.start()
    leader = wait_for(lambda: the_leader(candidates), timeout=5, what="one leader")
    follower = next(c for c in candidates if c is not leader)
    time.sleep(2 * RETRY_PERIOD + RENEW_DEADLINE)  # several renewals: no flapping
    assert [c.elector.is_leader for c in (leader, follower)] == [True, False]
    assert (len(leader.started), len(leader.stopped), len(follower.started)) == (1, 0, 0)
    spec = lease_spec(kube, namespace)
    assert spec["holderIdentity"] == leader.elector.identity
    assert spec["leaseTransitions"] == 0
    assert follower.elector.observed_holder == leader.elector.identity

    released = time.monotonic()
    leader.elector.stop()  # release: the successor need not wait for expiry
    assert not leader.elector.is_leader
    assert len(leader.stopped) == 1
    wait_for(lambda: follower.elector.is_leader, timeout=5, what="the follower to take over")
    handover = time.monotonic() - released
    sampler.stop()

    assert handover < LEASE_DURATION - 1.0, f"handover took {handover:.2f}s: release ignored?"
    assert follower.started
    assert follower.started[0] >= leader.stopped[0]
    spec = lease_spec(kube, namespace)
    assert spec["holderIdentity"] == follower.elector.identity
    assert spec["leaseTransitions"] == 1
    assert sampler.samples > 20
    assert sampler.overlaps == []


def test_crashed_leader_is_replaced_only_after_the_lease_expires(
    kube: KubeClient, namespace: str, candidates: list[Candidate]
) -> None:
    first, second = candidates
    sampler = Sampler(candidates)
    first.elector.start()
    wait_for(lambda: first.elector.is_leader, timeout=5, what="the first replica to lead")
    second.elector.start()
    time.sleep(2 * RETRY_PERIOD)
    assert not second.elector.is_leader

    crashed = time.monotonic()
    first.elector.stop(release=False)  # no release: as if the process died
    wait_for(lambda: second.elector.is_leader, timeout=10, interval=0.02, what="a takeover")
    takeover = time.monotonic() - crashed
    sampler.stop()

    # The crashed leader's last renewal was at most one retry period before the crash; the
    # successor counts the lease duration from when it saw that renewal, on its own clock.
    assert takeover >= LEASE_DURATION - RETRY_PERIOD - 0.1, f"took over after {takeover:.2f}s"
    assert takeover <= LEASE_DURATION + 3 * RETRY_PERIOD + 1.0, f"took {takeover:.2f}s"
    spec = lease_spec(kube, namespace)
    assert spec["holderIdentity"] == second.elector.identity
    assert spec["leaseTransitions"] == 1
    assert sampler.overlaps == []


def test_cut_off_leader_steps_down_before_anyone_takes_over(
    kube: KubeClient, namespace: str, candidates: list[Candidate]
) -> None:
    first, second = candidates
    sampler = Sampler(candidates)
    first.elector.start()
    wait_for(lambda: first.elector.is_leader, timeout=5, what="the first replica to lead")
    second.elector.start()
    time.sleep(2 * RETRY_PERIOD)

    cut = time.monotonic()
    first.elector._partition()  # renewals now fail, but the process lives on
    wait_for(lambda: first.stopped, timeout=RENEW_DEADLINE + 2, what="the cut-off leader to quit")
    stepped_down = first.stopped[0] - cut
    wait_for(lambda: second.elector.is_leader, timeout=10, interval=0.02, what="a takeover")
    taken_over = second.started[0] - cut

    assert stepped_down <= RENEW_DEADLINE + 0.5, f"stepped down after {stepped_down:.2f}s"
    assert taken_over - stepped_down >= LEASE_DURATION - RENEW_DEADLINE - 0.5

    first.elector._partition(cut=False)  # back online: it sees the new holder and follows
    time.sleep(2 * RETRY_PERIOD + 0.5)
    sampler.stop()
    assert second.elector.is_leader
    assert not first.elector.is_leader
    assert first.elector.observed_holder == second.elector.identity
    assert len(first.started) == 1
    assert lease_spec(kube, namespace)["holderIdentity"] == second.elector.identity
    assert sampler.overlaps == []


def test_timings_that_cannot_be_safe_are_refused(kube: KubeClient) -> None:
    with pytest.raises(ValueError, match="renew_deadline < lease_duration"):
        LeaderElector(
            kube, namespace="default", name=LEASE, identity="x", lease_duration=5, renew_deadline=5
        )
