"""The coalescing work queue and the pure status helpers."""

from __future__ import annotations

import threading
import time

from gitsync.application_status import HistoryEntry
from gitsync.controller import status as st
from gitsync.controller.queue import Coalescer, Priority, WorkQueue


def test_adds_for_a_waiting_key_coalesce() -> None:
    q: WorkQueue[str] = WorkQueue()
    for reason in ("push", "push", "interval", "live"):
        q.add("a", reason)
    item = q.get(timeout=1)
    assert item == ("a", {"push", "interval", "live"})
    assert q.get(timeout=0.05) is None


def test_key_added_while_active_runs_once_more_afterwards() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a", "first")
    assert q.get(timeout=1) == ("a", {"first"})
    q.add("a", "during-1")
    q.add("a", "during-2")
    assert q.get(timeout=0.05) is None  # never handed out twice at once
    q.done("a")
    assert q.get(timeout=1) == ("a", {"during-1", "during-2"})


def test_delay_and_earlier_trigger_wins() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a", "later", delay=5)
    q.add("a", "now")
    # handed out within the 1 s timeout although the first add asked for 5 s
    assert q.get(timeout=1) == ("a", {"later", "now"})


def test_delayed_item_waits() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a", "requeue", delay=0.3)
    assert q.get(timeout=0.1) is None
    assert q.get(timeout=1) == ("a", {"requeue"})


def test_workers_never_share_a_key() -> None:
    q: WorkQueue[int] = WorkQueue()
    active: set[int] = set()
    clash = threading.Event()
    lock = threading.Lock()

    def worker() -> None:
        while (item := q.get(timeout=0.3)) is not None:
            key = item[0]
            with lock:
                if key in active:
                    clash.set()
                active.add(key)
            time.sleep(0.002)
            with lock:
                active.discard(key)
            q.done(key)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(400):
        q.add(i % 5, f"r{i}")
    for t in threads:
        t.join()
    assert not clash.is_set()


def drain(q: WorkQueue[str]) -> list[str]:
    """Every due key in the order the queue hands them out (each marked done at once)."""
    order = []
    while (item := q.get(timeout=0.05)) is not None:
        order.append(item[0])
        q.done(item[0])
    return order


def test_urgent_keys_come_out_before_earlier_normal_ones() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "c"):
        q.add(key, "push")
    q.add("x", "push", urgent=True)
    q.add("y", "push", urgent=True)

    assert drain(q) == ["x", "y", "a", "b", "c"]


def test_urgent_add_promotes_a_waiting_key_and_keeps_its_reasons() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a", "push")
    q.add("b", "interval")
    q.add("c", "push")
    q.add("b", "push", urgent=True)  # due later than the waiting entry, but urgent

    assert q.get(timeout=1) == ("b", {"interval", "push"})
    q.done("b")
    assert drain(q) == ["a", "c"]
    assert len(q) == 0


def test_urgent_add_takes_the_earlier_due_time() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("b", "interval", delay=30)
    q.add("b", "push", urgent=True)

    assert q.get(timeout=2) == ("b", {"interval", "push"})


def test_a_later_normal_add_does_not_demote_an_urgent_key() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a", "push")
    q.add("b", "push", urgent=True)
    q.add("b", "live-change")

    assert drain(q) == ["b", "a"]


def test_urgent_key_that_is_not_due_yet_does_not_hold_up_due_ones() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("later", "requeue", delay=0.5, urgent=True)
    q.add("now", "push")

    assert q.get(timeout=0.2) == ("now", {"push"})
    assert q.get(timeout=2) == ("later", {"requeue"})


def test_active_key_keeps_its_urgency_for_the_follow_up_run() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a", "first")
    assert q.get(timeout=1) == ("a", {"first"})
    q.add("b", "push")
    q.add("a", "push", urgent=True)  # while "a" runs: dirty, and urgent
    q.done("a")

    assert q.get(timeout=1) == ("a", {"push"})  # ahead of "b", added before it
    q.done("a")
    assert drain(q) == ["b"]


def test_urgent_adds_still_coalesce() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a", "push", urgent=True)
    q.add("a", "push", urgent=True)
    q.add("a", "interval")

    assert q.get(timeout=1) == ("a", {"push", "interval"})
    assert q.get(timeout=0.05) is None


def test_condition_transition_time_moves_only_on_flip() -> None:
    conds = st.set_condition([], st.READY, True, "Synced", "ok", generation=1, now="T1")
    conds = st.set_condition(conds, st.READY, True, "Synced", "still ok", generation=2, now="T2")
    assert conds[0].last_transition_time == "T1" and conds[0].message == "still ok"
    conds = st.set_condition(conds, st.READY, False, "OutOfSync", "drift", generation=2, now="T3")
    assert conds[0].last_transition_time == "T3"


def test_history_is_keyed_by_operation_and_bounded() -> None:
    history: tuple[HistoryEntry, ...] = ()
    for i in range(15):
        history = st.append_history(history, HistoryEntry(operation=f"op{i}", revision=f"r{i}"))
    resumed = HistoryEntry(operation="op14", revision="r14")
    history = st.append_history(history, resumed)
    assert len(history) == st.HISTORY_LIMIT
    assert [h.id for h in history] == list(range(6, 16))
    assert history[-1].operation == "op14"


def test_status_patch_nulls_nested_keys_that_disappeared() -> None:
    from gitsync.controller.apps import status_patch

    old = {"health": {"status": "Progressing", "message": "waiting"}, "gone": 1, "list": [1, 2]}
    new = {"health": {"status": "Healthy"}, "list": [3]}
    patch = status_patch(new, old)
    assert patch == {"health": {"status": "Healthy", "message": None}, "gone": None, "list": [3]}


# -- per-host limit, priorities, the reserved worker (issue 13, finding 8) ---------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def host_queue(limit: int, clock: FakeClock | None = None) -> WorkQueue[str]:
    """Keys are ``host/app``; the host is the part before the slash."""
    return WorkQueue(
        host_of=lambda key: key.split("/")[0], max_per_host=limit, clock=clock or FakeClock()
    )


def test_at_most_max_per_host_keys_of_one_host_are_out_and_the_rest_wait_in_the_queue() -> None:
    q = host_queue(2)
    for n in range(6):
        q.add(f"hanging/{n}", "interval")
    q.add("victim/app", "interval")

    out = [q.get(timeout=0), q.get(timeout=0), q.get(timeout=0)]

    keys = [item[0] for item in out if item is not None]
    assert sorted(keys) == ["hanging/0", "hanging/1", "victim/app"]
    assert q.get(timeout=0) is None  # the four others of "hanging" are parked, not handed out
    q.done("hanging/0")
    item = q.get(timeout=0)
    assert item is not None and item[0] == "hanging/2"  # a slot came free: the next one goes
    assert q.get(timeout=0) is None


def test_without_a_limit_every_due_key_is_handed_out() -> None:
    q = host_queue(0)
    for n in range(6):
        q.add(f"hanging/{n}", "interval")
    assert all(q.get(timeout=0) is not None for _ in range(6))


def test_a_parked_key_keeps_its_reasons_and_priority() -> None:
    q = host_queue(1)
    q.add("h/a", "interval")
    q.add("h/b", "interval")
    q.add("h/c", "interval")
    assert q.get(timeout=0) == ("h/a", {"interval"})
    assert q.get(timeout=0) is None  # b and c parked
    q.add("h/c", "push:github", pushed=True)  # while parked: promoted, still parked
    assert q.get(timeout=0) is None
    q.done("h/a")
    assert q.get(timeout=0) == ("h/c", {"interval", "push:github"})


def test_the_reserved_worker_takes_only_pushed_keys_highest_first() -> None:
    q: WorkQueue[str] = WorkQueue(clock=FakeClock())
    q.add("interval-app", "interval")
    q.add("pushed-app", "push:github", pushed=True)
    q.add("touched-app", "push:github", urgent=True)

    reserved = [q.get(timeout=0, min_priority=Priority.PUSHED) for _ in range(3)]

    assert [item[0] if item else None for item in reserved] == [
        "touched-app",
        "pushed-app",
        None,
    ]
    assert q.get(timeout=0) == ("interval-app", {"interval"})


def test_a_pushed_key_of_a_full_host_waits_even_for_the_reserved_worker() -> None:
    q = host_queue(1)
    q.add("h/a", "interval")
    assert q.get(timeout=0) is not None
    q.add("h/b", "push:github", pushed=True)
    assert q.get(timeout=0, min_priority=Priority.PUSHED) is None


def test_coalescer_spaces_runs_a_window_apart_and_joins_requests_in_between() -> None:
    clock = FakeClock()
    c: Coalescer[str] = Coalescer(5.0, clock=clock)

    assert c.delay("repo") == 0.0  # the first push runs now
    clock.now += 1
    assert c.delay("repo") == 4.0  # booked for the end of the window
    clock.now += 1
    assert c.delay("repo") == 3.0  # joins the same run
    assert c.delay("other") == 0.0  # per key
    clock.now += 3  # the booked run is now
    assert c.delay("repo") == 5.0  # the next slot is a window after it, never sooner
    clock.now += 20
    assert c.delay("repo") == 0.0


def test_coalescer_forgets_old_keys_when_full() -> None:
    clock = FakeClock()
    c: Coalescer[int] = Coalescer(1.0, max_keys=10, clock=clock)
    for n in range(10):
        c.delay(n)
    clock.now += 2
    for n in range(10, 20):
        assert c.delay(n) == 0.0
    assert len(c._slots) <= 11
