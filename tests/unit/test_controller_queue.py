"""The coalescing work queue and the pure status helpers."""

from __future__ import annotations

import threading
import time

from gitsync.controller import status as st
from gitsync.controller.queue import WorkQueue


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
    assert conds[0]["lastTransitionTime"] == "T1" and conds[0]["message"] == "still ok"
    conds = st.set_condition(conds, st.READY, False, "OutOfSync", "drift", generation=2, now="T3")
    assert conds[0]["lastTransitionTime"] == "T3"


def test_history_is_keyed_by_operation_and_bounded() -> None:
    history: list[dict[str, object]] = []
    for i in range(15):
        history = st.append_history(history, {"operation": f"op{i}", "revision": f"r{i}"})
    history = st.append_history(history, {"operation": "op14", "revision": "r14"})  # resumed op
    assert len(history) == st.HISTORY_LIMIT
    assert [h["id"] for h in history] == list(range(6, 16))
    assert history[-1]["operation"] == "op14"


def test_without_volatile_ignores_reconciled_at() -> None:
    assert st.without_volatile({"a": 1, "reconciledAt": "x"}) == st.without_volatile(
        {"a": 1, "reconciledAt": "y"}
    )


def test_status_patch_nulls_nested_keys_that_disappeared() -> None:
    from gitsync.controller.apps import status_patch

    old = {"health": {"status": "Progressing", "message": "waiting"}, "gone": 1, "list": [1, 2]}
    new = {"health": {"status": "Healthy"}, "list": [3]}
    patch = status_patch(new, old)
    assert patch == {"health": {"status": "Healthy", "message": None}, "gone": None, "list": [3]}
