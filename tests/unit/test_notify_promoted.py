"""The ``rollout-promoted`` event without a cluster: the Rollout's health says which revision it
promoted, the event is derived from the Application's resource row, and the dedupe record makes
it one event per revision however often the status is written."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gitsync.application_status import (
    ApplicationStatus,
    HealthSummary,
    OperationState,
    ResourceStatus,
    SourceRevision,
    SyncSummary,
)
from gitsync.health.rollout import check_rollout, promoted_revision
from gitsync.notify.events import AppFacts, EventName, events_of
from gitsync.notify.plan import due, record
from gitsync.notify.spec import parse_provider, parse_rule
from gitsync.rollout.canary import Requests
from gitsync.rollout.status import Phase, RolloutStatus
from tests.unit.test_rollout_canary_core import T0, Pods, at_step, run, spec, started

V1 = "1" * 40
V2 = "2" * 40
V3 = "3" * 40
APP = AppFacts("team-a", "shop", external_url="https://gitsync.example.com")

STARTED = RolloutStatus(
    phase=Phase.PROGRESSING,
    current_step_index=0,
    stable_hash="aaaa",
    canary_hash="bbbb",
    git_revision=V2,
    replicas=4,
    observed_generation=1,
)
PAUSED = replace(STARTED, phase=Phase.PAUSED, current_step_index=1, message="paused at step 2")
PROMOTED = replace(
    STARTED,
    phase=Phase.HEALTHY,
    current_step_index=2,
    current_weight=100,
    stable_hash="bbbb",
    canary_hash="",
    message="rollout of template bbbb complete",
)
ABORTED = replace(PAUSED, phase=Phase.DEGRADED, aborted_hash="bbbb", message="aborted canary bbbb")
FIRST = RolloutStatus(
    phase=Phase.HEALTHY,
    stable_hash="aaaa",
    current_weight=100,
    observed_generation=1,
    message="stable at template aaaa; no rollout in progress",
)


def row(rollout: RolloutStatus) -> ResourceStatus:
    """The Application's resource row for Rollout ``web``, as the reconciler builds it from the
    live object's health."""
    obj: dict[str, Any] = {"metadata": {"generation": 1}, "status": rollout.to_dict()}
    health = check_rollout(obj)
    return ResourceStatus(
        "gitsync.dev",
        "Rollout",
        "shop",
        "web",
        "Synced",
        HealthSummary(health.status, health.message),
    )


def app_status(rollout: RolloutStatus, revision: str = V2) -> ApplicationStatus:
    return ApplicationStatus(
        sync=SyncSummary("Synced", revision),
        health=HealthSummary("Healthy"),
        source_revision=SourceRevision(revision, "main", "v2", "Ada <ada@example.com>", "", ""),
        last_applied_revision=revision,
        operation_state=OperationState(id="op", phase="Succeeded", revision=revision),
        resources=(row(rollout),),
    )


def rollout_events(st: ApplicationStatus) -> list[str]:
    return [str(e.name) for e in events_of(APP, st) if str(e.name).startswith("rollout-")]


def test_a_healthy_rollout_names_the_revision_it_promoted_and_no_other_does() -> None:
    assert promoted_revision(row(PROMOTED).health.message) == V2
    assert row(PROMOTED).health.message.endswith("rollout of template bbbb complete")
    # first version, deployed directly: nothing was promoted
    assert promoted_revision(row(FIRST).health.message) == ""
    # a canary left (blue-green scaling the old pods down) is not finished yet
    assert promoted_revision(row(replace(PROMOTED, canary_hash="bbbb")).health.message) == ""
    for waiting in (STARTED, PAUSED, ABORTED):
        assert promoted_revision(row(waiting).health.message) == ""
    assert promoted_revision("promoted revision without a colon") == ""


def test_paused_then_promoted_gives_one_promoted_event_at_the_revision_with_the_ui_link() -> None:
    assert rollout_events(app_status(PAUSED)) == ["rollout-paused"]
    (event,) = [e for e in events_of(APP, app_status(PROMOTED)) if e.name == "rollout-promoted"]
    assert (event.revision, event.namespace, event.app) == (V2, "team-a", "shop")
    assert event.url == "https://gitsync.example.com/applications/team-a/shop"
    assert event.commit_message == "v2" and event.severity == "success"
    assert event.reason == f"Rollout web promoted revision {V2}"


def test_an_aborted_rollout_is_aborted_not_promoted() -> None:
    assert rollout_events(app_status(ABORTED)) == ["rollout-aborted"]


def test_a_first_deploy_or_a_later_commit_that_leaves_the_rollout_alone_promotes_nothing() -> None:
    assert rollout_events(app_status(FIRST, V1)) == []
    # V3 changes a ConfigMap only: the Rollout still names V2, which it promoted earlier
    assert rollout_events(app_status(PROMOTED, V3)) == []
    # Git went back to the stable template while V2's canary ran: V2 was never promoted
    back = replace(PROMOTED, stable_hash="aaaa", message="Git went back to the stable template")
    assert rollout_events(app_status(back, V1)) == []


@pytest.mark.parametrize("writes", [1, 3])
def test_status_writes_without_a_change_send_nothing_more(writes: int) -> None:
    rule = parse_rule(
        {
            "metadata": {"name": "chat", "namespace": "team-a"},
            "spec": {"providerRefs": [{"name": "hook"}], "events": ["rollout-promoted"]},
        }
    )
    assert EventName.ROLLOUT_PROMOTED in rule.events
    providers = {
        "hook": parse_provider(
            {
                "metadata": {"name": "hook", "namespace": "team-a"},
                "spec": {"type": "webhook", "address": "https://hooks.example.com/x"},
            }
        )
    }
    sent: tuple[str, ...] = ()
    delivered = []
    for st in [app_status(PAUSED)] + [app_status(PROMOTED)] * writes:
        deliveries = due(APP, events_of(APP, st), [rule], providers, sent)
        delivered.extend(deliveries)
        sent = record(sent, (d.key for d in deliveries))
    assert [(str(d.event.name), d.event.revision) for d in delivered] == [("rollout-promoted", V2)]


def test_the_canary_core_promoting_at_its_pause_makes_the_row_name_its_revision() -> None:
    """The statuses the real canary decisions write, not hand-made ones: started and paused
    name no promotion, the status after ``promote`` names the revision the canary started at."""
    pods = Pods()
    steps = spec([{"setWeight": 50}, {"pause": {}}])
    status = started(pods, the_spec=steps)
    assert promoted_revision(row(status).health.message) == ""
    status, now = run(pods, status, T0, the_spec=steps, until=at_step(1, Phase.PAUSED))
    assert row(status).health.status == "Suspended"
    pods.requests = Requests(promote="p1")
    status, _ = run(pods, status, now, the_spec=steps, until=lambda s: s.phase == Phase.HEALTHY)
    assert promoted_revision(row(status).health.message) == status.git_revision == "abc123"
