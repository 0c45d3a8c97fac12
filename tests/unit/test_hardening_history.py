"""History under retries (hardening case 20): a failed attempt that is retried for the same
revision is replaced by the retry, so an API server that fails for a while cannot push the
revisions one could roll back to out of the bounded history."""

from __future__ import annotations

from gitsync.application_status import HistoryEntry
from gitsync.controller import status as st


def test_retries_of_a_failed_revision_keep_one_entry() -> None:
    history = st.append_history((), HistoryEntry(operation="a", revision="r1", result="Succeeded"))
    for op in ("b", "c", "d"):
        history = st.append_history(
            history, HistoryEntry(operation=op, revision="r2", result="Failed")
        )
    history = st.append_history(
        history, HistoryEntry(operation="e", revision="r2", result="Succeeded")
    )
    assert [(h.id, h.revision, h.result) for h in history] == [
        (1, "r1", "Succeeded"),
        (2, "r2", "Succeeded"),
    ]
    assert history[-1].operation == "e"


def test_a_new_revision_or_a_repeat_of_a_success_still_adds_an_entry() -> None:
    history = st.append_history((), HistoryEntry(operation="a", revision="r1", result="Failed"))
    history = st.append_history(
        history, HistoryEntry(operation="b", revision="r2", result="Failed")
    )
    history = st.append_history(
        history, HistoryEntry(operation="c", revision="r2", result="Succeeded")
    )
    history = st.append_history(
        history, HistoryEntry(operation="d", revision="r2", result="Succeeded")
    )
    assert [h.operation for h in history] == ["a", "c", "d"]
    assert [h.id for h in history] == [1, 2, 3]
