"""Which reconciles may share a recent ``ls-remote`` of their repository: only those no news from
Git started. A push webhook, a manual refresh or a spec change must see the remote as it is now,
or a push announced a second ago could be missed until the next interval."""

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
