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


def drain_one_at_a_time(q: WorkQueue[str], first: str) -> list[str]:
    """Finish ``first`` and each key handed out after it, one slot at a time; the order."""
    order = []
    out = first
    while True:
        q.done(out)
        item = q.get(timeout=0)
        if item is None:
            return order
        out = item[0]
        order.append(out)


def test_parked_keys_go_back_by_priority_then_due_then_the_order_they_were_parked() -> None:
    clock = FakeClock()
    q = host_queue(1, clock)
    q.add("h/busy", "interval")
    assert q.get(timeout=0) == ("h/busy", {"interval"})
    q.add("h/late", "interval", delay=5)
    q.add("h/n1", "interval")
    q.add("h/n2", "interval")
    clock.now += 1
    q.add("h/pushed", "push:github", pushed=True)
    q.add("h/urgent", "push:github", urgent=True)
    q.add("h/gone", "interval")
    q.add("h/n3", "interval")
    assert q.get(timeout=0) is None  # all due ones parked behind h/busy; h/late not due yet
    q.add("h/n2", "push:github", pushed=True)  # promoted while parked, keeping its earlier due
    q.forget("h/gone")
    clock.now += 10
    assert q.get(timeout=0) is None  # h/late is due now, and parked too

    order = drain_one_at_a_time(q, "h/busy")

    # priority first, then the due time; h/n2 took h/pushed's priority with an earlier due
    assert order == ["h/urgent", "h/n2", "h/pushed", "h/n1", "h/n3", "h/late"]


def test_a_key_parked_on_one_host_whose_host_changed_is_checked_again_when_it_comes_out() -> None:
    hosts = {"a": "one", "b": "one", "c": "one"}
    q: WorkQueue[str] = WorkQueue(host_of=hosts.__getitem__, max_per_host=1, clock=FakeClock())
    q.add("a", "interval")
    q.add("b", "interval")
    q.add("c", "interval")
    assert q.get(timeout=0) == ("a", {"interval"})
    assert q.get(timeout=0) is None  # b and c parked on "one"
    hosts["b"] = "two"  # its repository moved to another forge
    q.add("b", "application-changed")
    q.done("a")
    assert q.get(timeout=0) == ("b", {"interval", "application-changed"})
    assert q.get(timeout=0) is None  # c waits for "one", whose slot b did not take
    q.done("b")
    assert q.get(timeout=0) is None  # b's done freed a slot of "two": c still waits for "one"
    assert len(q) == 1


class CountedKey(str):
    """A key that counts how often the queue hashes it: the queue's work, without a clock."""

    hashes = 0

    def __hash__(self) -> int:
        CountedKey.hashes += 1
        return str.__hash__(self)


def test_a_done_costs_no_scan_of_the_parked_keys_of_its_host() -> None:
    """3,000 apps on one forge, all due at once (a no-change refresh of a fleet): each done
    un-parks one key. The old scan hashed every parked key per done - 3,000 x 3,000."""
    n = 3000
    q: WorkQueue[CountedKey] = WorkQueue(
        host_of=lambda key: "github.com", max_per_host=2, clock=FakeClock()
    )
    keys = [CountedKey(f"app-{i:04}") for i in range(n)]
    for key in keys:
        q.add(key, "interval")
    CountedKey.hashes = 0
    handed = []
    while True:
        batch = [q.get(timeout=0) for _ in range(3)]  # one more than the host allows
        out = [item[0] for item in batch if item is not None]
        if not out:
            break
        assert len(out) <= 2
        for key in out:
            handed.append(key)
            q.done(key)

    assert handed == keys  # the order they were due, nothing lost or repeated
    assert CountedKey.hashes < 40 * n, CountedKey.hashes  # 15 per key here; the scan: 27 million


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
