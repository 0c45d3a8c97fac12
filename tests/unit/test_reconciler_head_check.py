"""Which reconciles may share a recent ``ls-remote`` of their repository: only those no news from
Git started. A push webhook, a manual refresh or a spec change must see the remote as it is now,
or a push announced a second ago could be missed until the next interval - so a push may share
only a listing that started after its webhook arrived (``since_push`` seconds ago), which saw it."""

from __future__ import annotations

import pytest

from gitsync.controller.reconciler import HEAD_MAX_AGE, head_max_age


@pytest.mark.parametrize(
    "reasons",
    [{"interval"}, {"live-change"}, {"startup"}, {"requeue"}, {"interval", "live-change"}],
)
def test_timer_and_cluster_triggers_may_share_a_recent_listing(reasons: set[str]) -> None:
    assert head_max_age(reasons) == HEAD_MAX_AGE > 0


@pytest.mark.parametrize(
    "reasons",
    [
        {"push:github"},
        {"interval", "push:gitlab"},  # merged in the queue: the push wins
        {"manual"},
        {"application-changed"},
        {"live-change", "application-changed"},
        {"retry-after-crash"},
        set(),
    ],
)
def test_news_from_git_lists_for_itself(reasons: set[str]) -> None:
    assert head_max_age(reasons) == 0.0


@pytest.mark.parametrize(
    ("reasons", "since_push", "expected"),
    [
        ({"push:github"}, 0.7, 0.7),  # a listing started after the webhook arrived saw the push
        ({"push:github"}, 30.0, 30.0),  # however long the queue took
        ({"push:github", "interval"}, 0.7, 0.7),  # the stricter of the two
        ({"push:github", "interval"}, 30.0, HEAD_MAX_AGE),
        ({"push:github", "manual"}, 0.7, 0.0),  # a manual refresh still lists for itself
        ({"push:github"}, -1.0, 0.0),
    ],
)
def test_a_push_may_share_a_listing_started_after_it_arrived(
    reasons: set[str], since_push: float, expected: float
) -> None:
    assert head_max_age(reasons, since_push) == expected
