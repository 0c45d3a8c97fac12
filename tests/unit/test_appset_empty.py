"""An ApplicationSet whose generators make no Application: an error on the set (reason
``EmptyGeneration``, naming each generator and what it gave) unless the set is annotated
``gitsync.dev/allow-empty-generation: "true"``, and its Event only when the error is news -
decisions as pure functions; tests/integration/test_appset_empty_it.py proves the wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitsync.appset.plan import empty_generation
from gitsync.appset.status import Reason, Resource, Stage, reports_anew, set_status
from tests.unit.test_appset_generate import Inputs, appset, git_dirs, run_generation, tree

SECRET_URL = "https://deploy:hunter2-token@git.example.com/mono.git"
ANNOTATION = 'gitsync.dev/allow-empty-generation: "true"'


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def status_of(stage: Stage, error: str = "", allowed_empty: str = "") -> dict[str, Any]:
    return set_status(
        stage=stage,
        error=error,
        resources=[],
        previous={},
        now="t1",
        observed_generation=1,
        application_count=0,
        allowed_empty=allowed_empty,
    )


def test_an_empty_list_and_a_git_path_matching_nothing_are_an_error_naming_each(
    tmp_path: Path,
) -> None:
    root = tree(tmp_path, {"services/api/cm.yaml": "x: 1\n"})
    generated = run_generation(
        appset(
            [
                {"list": {"elements": []}},
                git_dirs(
                    SECRET_URL, {"path": "nothing/*"}, {"path": "nothing/old", "exclude": True}
                ),
            ]
        ),
        Inputs({SECRET_URL: root}),
    )
    assert generated.applications == {}
    empty = empty_generation(generated, allow_empty=False)
    assert empty is not None and not empty.allowed
    assert "spec.generators[0] (list) gave 0 parameter sets" in empty.message
    assert (
        "spec.generators[1] (git directories nothing/*, !nothing/old) gave 0 parameter sets"
        in empty.message
    )
    assert ANNOTATION in empty.message
    assert "hunter2" not in empty.message and "git.example.com" not in empty.message


def test_the_annotation_makes_an_empty_generation_fine_and_says_so() -> None:
    generated = run_generation(appset([{"list": {"elements": []}}]))
    empty = empty_generation(generated, allow_empty=True)
    assert empty is not None and empty.allowed
    assert empty.message.startswith("0 applications, allowed by the annotation " + ANNOTATION)
    assert "spec.generators[0] (list) gave 0 parameter sets" in empty.message


def test_a_generation_that_made_applications_is_not_empty() -> None:
    generated = run_generation(
        appset([{"list": {"elements": [{"name": "a"}]}}, {"list": {"elements": []}}])
    )
    assert set(generated.applications) == {"a"}
    assert [str(y) for y in generated.yields] == [
        "spec.generators[0] (list) gave 1 parameter set",
        "spec.generators[1] (list) gave 0 parameter sets",
    ]
    assert empty_generation(generated, allow_empty=False) is None


def test_a_matrix_that_multiplies_to_nothing_is_named_with_its_parts() -> None:
    matrix = {
        "matrix": {
            "generators": [{"list": {"elements": [{"name": "a"}]}}, {"clusters": {"selector": {}}}]
        }
    }
    empty = empty_generation(run_generation(appset([matrix])), allow_empty=False)
    assert empty is not None
    assert "spec.generators[0] (matrix of list x clusters) gave 0 parameter sets" in empty.message


def test_the_empty_error_in_the_status_uses_argo_s_condition_types() -> None:
    error = "the generators yield no applications: spec.generators[0] (list) gave 0"
    by_type = conditions(status_of(Stage.EMPTY, error))
    assert by_type["ErrorOccurred"]["status"] == "True"
    assert by_type["ResourcesUpToDate"]["status"] == "False"
    for kind in ("ErrorOccurred", "ResourcesUpToDate", "ParametersGenerated"):
        assert by_type[kind]["reason"] == "EmptyGeneration"
        assert by_type[kind]["message"].startswith(error)
        assert "nothing was created, updated or deleted" in by_type[kind]["message"]


def test_an_allowed_empty_generation_is_up_to_date_with_its_reason_shown() -> None:
    allowed = f"0 applications, allowed by the annotation {ANNOTATION} (...)"
    by_type = conditions(status_of(Stage.DONE, allowed_empty=allowed))
    assert by_type["ErrorOccurred"]["status"] == "False"
    assert by_type["ResourcesUpToDate"]["status"] == "True"
    assert by_type["ResourcesUpToDate"]["message"] == allowed
    plain = conditions(status_of(Stage.DONE))["ResourcesUpToDate"]["message"]
    assert plain == "All applications have been generated successfully"


def test_the_empty_generation_event_is_sent_once_per_change_not_once_per_pass() -> None:
    error = "the generators yield no applications: spec.generators[0] (list) gave 0"
    shown = set_status(
        stage=Stage.EMPTY,
        error=error,
        resources=[Resource("a", "team-a")],
        previous={},
        now="t1",
        observed_generation=1,
        application_count=1,
    )
    assert reports_anew(Stage.EMPTY, error, last=None, previous={})  # the first time
    # the next pass of this process, with the status write not yet in the watch cache
    assert not reports_anew(Stage.EMPTY, error, last=(Stage.EMPTY, error), previous={})
    # a restarted process: nothing remembered, the status says it already
    assert not reports_anew(Stage.EMPTY, error, last=None, previous=shown)
    # a change: another message, or empty again after a pass that was not
    assert reports_anew(Stage.EMPTY, error + "; 1", last=(Stage.EMPTY, error), previous=shown)
    assert reports_anew(Stage.EMPTY, error, last=(Stage.DONE, ""), previous={})
    other = {"conditions": [{**conditions(shown)["ErrorOccurred"], "reason": Reason.ERROR.value}]}
    assert reports_anew(Stage.EMPTY, error, last=(Stage.PARAMETERS, error), previous=other)
