"""The result of a health check, and how many results fold into one.

``Health`` is a plain value (status + human message) so that health can be computed by pure
functions, compared in tests and stored in status without translation. Aggregation is worst-of,
using the order ``HealthStatus`` defines in ``gitsync.model``; the message of the aggregate is the
message of the (first) worst member, because that is the one a user needs to read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gitsync.model import HealthStatus


@dataclass(frozen=True, slots=True)
class Health:
    """Health of one object (or of a group of objects): a status and a human message."""

    status: HealthStatus
    message: str


def aggregate(healths: Iterable[Health]) -> Health:
    """Worst-of; the message comes from the first member with the worst status.

    An empty group is Healthy: nothing in it is unhealthy, like ``HealthStatus.worst_of([])``.
    """
    worst: Health | None = None
    for health in healths:
        if worst is None or health.status.severity > worst.status.severity:
            worst = health
    return worst if worst is not None else Health(HealthStatus.HEALTHY, "")
