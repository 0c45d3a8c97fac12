"""Errors named by what the reconcile loop does next.

Library errors are wrapped at the adapter boundary into one of three kinds, so callers decide by
type rather than by parsing messages (the shape Flux's source-controller uses):

* ``TerminalError``  - the input is wrong (bad spec, bad credentials); retrying will not help until
  the input changes.
* ``WaitingError``   - a dependency is not ready yet; retry after a delay.
* ``TransientError`` - something flaky (network, 5xx, 429); retry with backoff.

Messages must never carry secrets: adapters redact before they raise.
"""

from __future__ import annotations


class GitsyncError(Exception):
    """Base of every error gitsync raises on purpose."""


class TerminalError(GitsyncError):
    """Retrying will not help until the input changes."""


class WaitingError(GitsyncError):
    """A dependency is not ready; retry after a delay."""


class TransientError(GitsyncError):
    """A flaky failure; retry with backoff."""
