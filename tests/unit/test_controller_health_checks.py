"""How a running controller keeps its declared health checks: the decisions, without a cluster.

``DeclaredHealthChecks`` is fed ConfigMap events as its watch delivers them; the watch itself and
the Event it records are exercised on the real control plane in
``tests/integration/test_health_checks_it.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitsync.cli import build_parser
from gitsync.controller.health_checks import (
    EVENT_REASON,
    HEALTH_CHECKS_LABEL,
    DeclaredHealthChecks,
    load_file,
)
from gitsync.health import assess
from gitsync.health.custom import HealthCheckError, install, installed
from gitsync.model import HealthStatus

WIDGET = {
    "apiVersion": "example.com/v1",
    "kind": "Widget",
    "metadata": {"name": "w", "namespace": "shop"},
    "status": {"phase": "Running"},
}
GOOD = """\
- apiVersion: example.com/v1
  kind: Widget
  current: "status.phase == 'Running'"
"""
BAD = "- {apiVersion: example.com/v1, kind: Gadget, current: 'status.phase =='}\n"


@pytest.fixture(autouse=True)
def _restore_installed() -> Iterator[None]:
    yield
    install([])


def config_map(name: str, data: dict[str, str], labelled: bool = True) -> dict[str, Any]:
    labels = {HEALTH_CHECKS_LABEL: "true"} if labelled else {}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "gitsync", "labels": labels},
        "data": data,
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, bool]] = []
        self.requeues = 0

    def event(self, obj: dict[str, Any], reason: str, message: str, warning: bool) -> None:
        self.events.append((obj["metadata"]["name"], reason, message, warning))

    def requeue(self) -> None:
        self.requeues += 1


def declared(recorder: Recorder, file: Path | None = None) -> DeclaredHealthChecks:
    return DeclaredHealthChecks(
        "gitsync", file=file, record_event=recorder.event, requeue_all=recorder.requeue
    )


def test_a_labelled_config_map_installs_its_checks_and_requeues_every_app() -> None:
    recorder = Recorder()
    checks = declared(recorder)
    assert assess(WIDGET).message == ""  # the generic rule
    checks.on_config_map("ADDED", config_map("widgets", {"widgets.yaml": GOOD}))
    health = assess(WIDGET)
    assert health.status == HealthStatus.HEALTHY
    assert "ConfigMap gitsync/widgets key widgets.yaml entry 1" in health.message
    assert recorder.requeues == 1
    assert recorder.events == []


def test_a_bad_entry_is_an_event_on_its_config_map_and_the_other_checks_stand() -> None:
    recorder = Recorder()
    checks = declared(recorder)
    gizmo = GOOD.replace("Widget", "Gizmo")
    checks.on_config_map("ADDED", config_map("mixed", {"a.yaml": GOOD + BAD, "b.yaml": gizmo}))
    assert installed().user_check("example.com", "Widget") is not None  # beside it in a.yaml
    assert installed().user_check("example.com", "Gizmo") is not None  # in another key
    assert installed().user_check("example.com", "Gadget") is None
    [(name, reason, message, warning)] = recorder.events
    assert (name, reason, warning) == ("mixed", EVENT_REASON, True)
    assert message.startswith("ConfigMap gitsync/mixed key a.yaml entry 2 (Gadget): current:")


def test_removing_the_label_or_deleting_the_config_map_uninstalls_its_checks() -> None:
    recorder = Recorder()
    checks = declared(recorder)
    checks.on_config_map("ADDED", config_map("widgets", {"w.yaml": GOOD}))
    checks.on_config_map("MODIFIED", config_map("widgets", {"w.yaml": GOOD}, labelled=False))
    assert installed().user_check("example.com", "Widget") is None
    checks.on_config_map("MODIFIED", config_map("widgets", {"w.yaml": GOOD}))
    assert installed().user_check("example.com", "Widget") is not None
    checks.on_config_map("DELETED", config_map("widgets", {"w.yaml": GOOD}))
    assert installed().user_check("example.com", "Widget") is None
    assert recorder.requeues == 4


def test_an_unlabelled_config_map_changes_nothing() -> None:
    recorder = Recorder()
    checks = declared(recorder)
    checks.on_config_map("ADDED", config_map("gitsync-inventory-web", {"x": GOOD}, False))
    assert recorder.requeues == 0
    assert installed().user == {}


def test_the_file_comes_first_and_a_config_map_repeating_its_kind_is_told_so(
    tmp_path: Path,
) -> None:
    file = tmp_path / "checks.yaml"
    file.write_text(GOOD)
    recorder = Recorder()
    checks = declared(recorder, file)
    assert installed().user_check("example.com", "Widget") is not None
    checks.on_config_map("ADDED", config_map("again", {"w.yaml": GOOD}))
    widget_check = installed().user_check("example.com", "Widget")
    assert widget_check is not None and widget_check.source == f"{file} entry 1"
    [(name, _, message, _)] = recorder.events
    assert name == "again"
    assert message == (
        f"ConfigMap gitsync/again key w.yaml entry 1: ignored, Widget is already checked by "
        f"{file} entry 1"
    )


def test_an_invalid_file_stops_the_start_naming_file_entry_and_field(tmp_path: Path) -> None:
    file = tmp_path / "checks.yaml"
    file.write_text(GOOD + BAD)
    with pytest.raises(HealthCheckError, match=r"checks.yaml entry 2 \(Gadget\): current:"):
        declared(Recorder(), file)


def test_a_missing_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(HealthCheckError, match=r"--health-checks .*nope\.yaml"):
        load_file(tmp_path / "nope.yaml")


# -- the command line ----------------------------------------------------------------------------


def test_the_cli_refuses_a_bad_checks_file_before_touching_a_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(
        "apiVersion: gitsync.dev/v1alpha1\nkind: Application\n"
        "metadata: {name: web, namespace: web}\n"
        "spec: {source: {repoURL: 'file:///unused'}, destination: {namespace: web}}\n"
    )
    checks = tmp_path / "checks.yaml"
    checks.write_text(GOOD + BAD)
    for command in ("health", "sync"):
        args = build_parser().parse_args(
            [command, "-f", str(app), "--health-checks", str(checks), "--kubeconfig", "/nowhere"]
        )
        assert args.func(args) == 2
        assert f"{checks} entry 2 (Gadget): current: not a CEL" in capsys.readouterr().err


def test_the_flag_is_refused_where_it_would_be_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["sync", "web/app", "--health-checks", "checks.yaml"])
    assert args.func(args) == 2
    assert "--health-checks applies to sync -f FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # diff assesses no health
        build_parser().parse_args(["diff", "-f", "app.yaml", "--health-checks", "checks.yaml"])
