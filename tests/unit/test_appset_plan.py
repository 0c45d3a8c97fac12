"""What a generation does to existing Applications: policies, ownership, the empty-generation
guard, and "no write when nothing changed" - decisions as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.appset.plan import HASH_ANNOTATION, differs, plan, with_hash
from gitsync.appset.spec import ApplicationsSync
from gitsync.appset.status import Resource, Stage, set_status

UID = "set-uid"


def desired(name: str, path: str = "apps") -> dict[str, Any]:
    return with_hash(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": name,
                "namespace": "team-a",
                "labels": {"gitsync.dev/application-set": "fleet"},
                "annotations": {},
                "finalizers": [],
                "ownerReferences": [{"uid": UID, "controller": True}],
            },
            "spec": {"source": {"repoURL": "https://g/r.git", "path": path}},
        }
    )


def live(doc: dict[str, Any], *, owner: str = UID, **meta: Any) -> dict[str, Any]:
    """``doc`` as the API server returns it (its own fields added)."""
    return {
        **doc,
        "metadata": {
            **doc["metadata"],
            "uid": f"app-{doc['metadata']['name']}",
            "resourceVersion": "7",
            "ownerReferences": [{"uid": owner, "controller": True}],
            **meta,
        },
        "status": {"sync": {"status": "Synced"}},
    }


ALL = list(ApplicationsSync)


@pytest.mark.parametrize("policy", ALL)
def test_missing_applications_are_created_under_every_policy(policy: ApplicationsSync) -> None:
    result = plan({"a": desired("a")}, {}, owner_uid=UID, policy=policy, allow_empty=False)
    assert result.create == ["a"]


@pytest.mark.parametrize("policy", ALL)
def test_nothing_changed_means_no_write(policy: ApplicationsSync) -> None:
    result = plan(
        {"a": desired("a")},
        {"a": live(desired("a"))},
        owner_uid=UID,
        policy=policy,
        allow_empty=False,
    )
    assert result.writes == 0
    assert result.unchanged == ["a"]


@pytest.mark.parametrize(
    ("policy", "updated"),
    [
        (ApplicationsSync.SYNC, True),
        (ApplicationsSync.CREATE_UPDATE, True),
        (ApplicationsSync.CREATE_DELETE, False),
        (ApplicationsSync.CREATE_ONLY, False),
    ],
)
def test_a_changed_template_updates_only_where_the_policy_allows(
    policy: ApplicationsSync, updated: bool
) -> None:
    result = plan(
        {"a": desired("a", path="new")},
        {"a": live(desired("a"))},
        owner_uid=UID,
        policy=policy,
        allow_empty=False,
    )
    assert result.update == (["a"] if updated else [])
    assert ("a" in result.held) is not updated


@pytest.mark.parametrize(
    ("policy", "deleted"),
    [
        (ApplicationsSync.SYNC, True),
        (ApplicationsSync.CREATE_DELETE, True),
        (ApplicationsSync.CREATE_UPDATE, False),
        (ApplicationsSync.CREATE_ONLY, False),
    ],
)
def test_an_application_no_longer_generated_is_deleted_only_where_the_policy_allows(
    policy: ApplicationsSync, deleted: bool
) -> None:
    result = plan(
        {"a": desired("a")},
        {"a": live(desired("a")), "b": live(desired("b"))},
        owner_uid=UID,
        policy=policy,
        allow_empty=False,
    )
    assert result.delete == (["b"] if deleted else [])
    assert ("b" in result.held) is not deleted


def test_an_empty_generation_deletes_nothing_without_the_annotation() -> None:
    existing = {"a": live(desired("a")), "b": live(desired("b"))}
    held = plan({}, existing, owner_uid=UID, policy=ApplicationsSync.SYNC, allow_empty=False)
    assert held.delete == []
    assert "allow-empty-generation" in held.held["a"]
    confirmed = plan({}, existing, owner_uid=UID, policy=ApplicationsSync.SYNC, allow_empty=True)
    assert confirmed.delete == ["a", "b"]


def test_an_application_the_set_does_not_own_is_never_touched() -> None:
    """Same name, another owner (or a copied label without the owner reference)."""
    foreign = live(desired("a", path="theirs"), owner="other-uid")
    result = plan(
        {"a": desired("a")},
        {"a": foreign},
        owner_uid=UID,
        policy=ApplicationsSync.SYNC,
        allow_empty=False,
    )
    assert result.writes == 0
    assert "not owned by this ApplicationSet" in result.conflicts["a"]
    labelled_only = live(desired("x"), owner="other-uid")
    stale = plan(
        {}, {"x": labelled_only}, owner_uid=UID, policy=ApplicationsSync.SYNC, allow_empty=True
    )
    assert stale.delete == []


def test_an_application_being_deleted_is_left_to_finish() -> None:
    going = live(desired("a"), deletionTimestamp="2026-12-07T00:00:00Z")
    result = plan({}, {"a": going}, owner_uid=UID, policy=ApplicationsSync.SYNC, allow_empty=True)
    assert result.delete == []


def test_a_removed_label_is_a_difference_through_the_hash() -> None:
    before = desired("a")
    after = with_hash(
        {**before, "metadata": {**before["metadata"], "labels": {}, "annotations": {}}}
    )
    assert (
        before["metadata"]["annotations"][HASH_ANNOTATION]
        != after["metadata"]["annotations"][HASH_ANNOTATION]
    )
    assert differs(after, live(before))
    assert not differs(before, live(before))


def test_someone_editing_a_generated_spec_is_a_difference() -> None:
    edited = live(desired("a"))
    edited["spec"] = {"source": {"repoURL": "https://evil.example.com/r.git"}}
    assert differs(desired("a"), edited)


def test_status_keeps_transition_times_so_an_unchanged_pass_writes_nothing() -> None:
    resources = [Resource("a", "team-a", "Synced", "Healthy")]
    first = set_status(
        stage=Stage.DONE,
        error="",
        resources=resources,
        previous={},
        now="t1",
        observed_generation=1,
        application_count=1,
    )
    second = set_status(
        stage=Stage.DONE,
        error="",
        resources=resources,
        previous=first,
        now="t2",
        observed_generation=1,
        application_count=1,
    )
    assert first == second
    failed = set_status(
        stage=Stage.PARAMETERS,
        error="git: unreachable",
        resources=resources,
        previous=first,
        now="t3",
        observed_generation=1,
        application_count=1,
    )
    error = next(c for c in failed["conditions"] if c["type"] == "ErrorOccurred")
    assert error["status"] == "True"
    assert error["lastTransitionTime"] == "t3"
    assert "nothing was created, updated or deleted" in error["message"]
    generated = next(c for c in failed["conditions"] if c["type"] == "ParametersGenerated")
    assert generated["status"] == "False"
