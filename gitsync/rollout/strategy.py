"""The rollout strategy a Rollout runs - canary or blue-green - chosen in one place.

Both strategies share the executor, the status and the second Deployment next to the stable
one; they differ in how they decide (``canary.start``/``step`` vs ``bluegreen.start``/``step``),
in what the second Deployment is called to a person and on its role label (the *canary* vs the
*preview*), and in which Services they pin. ``strategy_of`` picks once from the parsed spec and
the executor asks the ``Strategy`` instead of testing ``spec.blue_green`` at each turn, so a
third strategy is one more instance here. Pure: no I/O, like the decision modules it names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gitsync.rollout import bluegreen
from gitsync.rollout import canary as core
from gitsync.rollout.spec import RolloutSpec
from gitsync.rollout.status import CANARY_ROLE, PREVIEW_ROLE, RolloutStatus


class Start(Protocol):
    """A sync rendered a new pod template: the first decision of a rollout."""

    def __call__(
        self,
        spec: RolloutSpec,
        status: RolloutStatus,
        obs: core.Observation,
        *,
        desired_hash: str,
        held: bool,
        replicas: int,
        revision: str,
    ) -> core.Decision: ...


Step = Callable[[RolloutSpec, RolloutStatus, core.Observation], core.Decision]


@dataclass(frozen=True)
class Strategy:
    """How one kind of rollout decides, and what it calls its parts."""

    name: str  # the field under spec.strategy
    second: str  # what the Deployment beside the stable one is, in messages
    role: str  # that Deployment's role label
    start: Start
    step: Step
    pinned_services: Callable[[RolloutSpec], dict[str, str]]
    """The Services a rollout of the spec pins, by role (``Observation.services``)."""


def _canary_services(spec: RolloutSpec) -> dict[str, str]:
    if spec.canary is not None and spec.canary.traffic_routing is not None:
        return {
            core.STABLE_SERVICE: spec.canary.stable_service,
            core.CANARY_SERVICE: spec.canary.canary_service,
        }
    return {}


def _blue_green_services(spec: RolloutSpec) -> dict[str, str]:
    assert spec.blue_green is not None
    roles = {bluegreen.ACTIVE_SERVICE: spec.blue_green.active_service}
    if spec.blue_green.preview_service:
        roles[bluegreen.PREVIEW_SERVICE] = spec.blue_green.preview_service
    return roles


CANARY = Strategy("canary", "canary", CANARY_ROLE, core.start, core.step, _canary_services)
BLUE_GREEN = Strategy(
    "blueGreen", "preview", PREVIEW_ROLE, bluegreen.start, bluegreen.step, _blue_green_services
)


def strategy_of(spec: RolloutSpec) -> Strategy:
    """The strategy ``spec`` runs (the spec parser guarantees exactly one is set)."""
    return BLUE_GREEN if spec.blue_green is not None else CANARY
