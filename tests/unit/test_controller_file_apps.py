"""``gitsync serve --config``: one bad document in the Applications file costs only itself."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.controller.apps import file_applications


def app(name: Any, namespace: Any = "gitsync") -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {},
    }


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("just a string", "not an Application with metadata"),
        (["a", "list"], "not an Application with metadata"),
        (None, "not an Application with metadata"),
        ({"metadata": "x"}, "not an Application with metadata"),
        (app(None), "must be strings"),
        (app(""), "must be strings"),
        (app(["x"]), "must be strings"),
        (app("ok-name", {"a": 1}), "must be strings"),
    ],
)
def test_a_document_that_names_no_application_is_left_out_with_a_reason(
    bad: Any, reason: str
) -> None:
    apps, problems = file_applications([app("first"), bad, app("third")])
    assert sorted(apps) == [("gitsync", "first"), ("gitsync", "third")]
    assert len(problems) == 1 and problems[0].startswith("document 2: ") and reason in problems[0]


def test_a_repeated_application_keeps_the_first_and_says_so() -> None:
    first, second = app("web"), app("web")
    first["spec"] = {"first": True}
    apps, problems = file_applications([first, second])
    assert apps == {("gitsync", "web"): first}
    assert problems == ["document 2: gitsync/web is declared twice; the first one is kept"]


def test_the_namespace_defaults_to_gitsync() -> None:
    doc = {"metadata": {"name": "web"}, "spec": {}}
    apps, problems = file_applications([doc])
    assert list(apps) == [("gitsync", "web")] and not problems


def test_uid_and_resource_version_are_never_taken_from_the_file() -> None:
    """The UI caches list rows by uid and resourceVersion; a file's would never change with
    the status the controller keeps in a ConfigMap, so the rows would go stale."""
    doc = app("web")
    doc["metadata"].update(uid="from-the-file", resourceVersion="7", labels={"keep": "me"})
    apps, _ = file_applications([doc])
    assert apps[("gitsync", "web")]["metadata"] == {
        "name": "web",
        "namespace": "gitsync",
        "labels": {"keep": "me"},
    }
