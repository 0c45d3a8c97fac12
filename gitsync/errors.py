"""Errors named by what the reconcile loop does next.

Library errors are wrapped at the adapter boundary into one of three kinds, so callers decide by
type rather than by parsing messages or status codes (the shape Flux's source-controller uses):

* ``TerminalError``  - the input is wrong (bad spec, bad credentials, a missing permission);
  retrying will not help until the input changes. The loop *stalls* and says what to fix.
* ``WaitingError``   - a dependency is not ready yet, or the server asked us to stay away; the
  loop *waits* ``retry_after`` seconds.
* ``TransientError`` - something flaky (network, 5xx, a lost write race); the loop *retries with
  backoff*.

``next_step`` is the one place that turns an exception into that decision; an exception that is
none of the three is a bug and is left to crash the pass (the worker logs it and retries later).

Messages must never carry secrets: adapters redact before they raise.
"""

from __future__ import annotations

import enum


class GitsyncError(Exception):
    """Base of every error gitsync raises on purpose."""

    retry_after: float | None = None
    """Seconds whoever failed asked us to stay away (a ``Retry-After``), when it said."""


class TerminalError(GitsyncError):
    """Retrying will not help until the input changes."""


class WaitingError(GitsyncError):
    """A dependency is not ready, or the server asked for a pause; retry after ``retry_after``
    seconds (None: the loop's own delay)."""


class TransientError(GitsyncError):
    """A flaky failure; retry with backoff."""


class NextStep(enum.StrEnum):
    """What the reconcile loop does after a failed pass."""

    STALL = "stall"  # stop until the input changes; the message names the fix
    WAIT = "wait"  # come back after the delay the error carries
    BACKOFF = "backoff"  # come back after an exponentially growing delay


def next_step(exc: BaseException) -> NextStep | None:
    """The loop's decision for ``exc``; None for an exception gitsync did not classify (a bug).

    Waiting is checked before transient so a class may be both (a 429 is flaky *and* carries
    the server's delay)."""
    if isinstance(exc, WaitingError):
        return NextStep.WAIT
    if isinstance(exc, TransientError):
        return NextStep.BACKOFF
    if isinstance(exc, TerminalError):
        return NextStep.STALL
    return None
