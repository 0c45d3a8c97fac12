"""The replay window: which deliveries count as seen, for how long, and how many are kept."""

from __future__ import annotations

from gitsync.webhook.providers import MAX_DELIVERY_ID_LENGTH, delivery_id
from gitsync.webhook.replay import DeliveryLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_same_body_or_id_within_the_window_is_a_replay_and_after_it_is_not() -> None:
    clock = Clock()
    log = DeliveryLog(window=600, clock=clock)

    assert not log.is_replay("github", b"body-1", "id-1")
    assert log.is_replay("github", b"body-1", "id-1")  # sent again as it was
    assert log.is_replay("github", b"body-1", "id-2")  # a fresh id on the same signed body
    assert log.is_replay("github", b"body-1", None)  # the id header dropped
    assert log.is_replay("github", b"body-2", "id-1")  # a redelivery, re-serialized
    assert not log.is_replay("gitlab", b"body-1", "id-1")  # another provider's names
    clock.now += 599
    assert log.is_replay("github", b"body-1", None)
    clock.now += 1
    assert not log.is_replay("github", b"body-1", "id-1")


def test_a_replay_does_not_extend_the_window() -> None:
    clock = Clock()
    log = DeliveryLog(window=10, clock=clock)
    assert not log.is_replay("generic", b"b", None)
    clock.now += 9
    assert log.is_replay("generic", b"b", None)
    clock.now += 1
    assert not log.is_replay("generic", b"b", None)


def test_the_log_keeps_at_most_capacity_names_dropping_the_oldest() -> None:
    clock = Clock()
    log = DeliveryLog(window=600, capacity=100, clock=clock)
    for n in range(1000):
        assert not log.is_replay("github", b"%d" % n, f"id-{n}")
    assert len(log) <= 100
    assert log.is_replay("github", b"999", None)
    assert not log.is_replay("github", b"0", None)  # forgotten: the oldest went first


def test_expired_names_are_forgotten() -> None:
    clock = Clock()
    log = DeliveryLog(window=5, clock=clock)
    for n in range(50):
        log.is_replay("github", b"%d" % n, None)
    clock.now += 5
    log.is_replay("github", b"new", None)
    assert len(log) == 1


def test_delivery_ids_are_read_from_each_forges_header_and_bounded() -> None:
    assert delivery_id("github", {"X-GitHub-Delivery": " abc "}) == "abc"
    assert delivery_id("gitlab", {"X-Gitlab-Event-UUID": "u"}) == "u"
    assert delivery_id("gitea", {"X-Gitea-Delivery": "g"}) == "g"
    assert delivery_id("gogs", {"X-Gogs-Delivery": "o"}) == "o"
    assert delivery_id("bitbucket", {"X-Request-UUID": "b"}) == "b"
    assert delivery_id("bitbucket-server", {"X-Request-Id": "s"}) == "s"
    assert delivery_id("generic", {"X-Gitsync-Delivery": "x"}) == "x"
    assert delivery_id("github", {"X-Gitea-Delivery": "g"}) is None
    assert delivery_id("github", {"X-GitHub-Delivery": ""}) is None
    too_long = "a" * (MAX_DELIVERY_ID_LENGTH + 1)
    assert delivery_id("github", {"X-GitHub-Delivery": too_long}) is None
