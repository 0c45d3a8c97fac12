"""Sync options (``gitsync.sync_options``) and the sync decisions they drive, without a cluster:
parsing at both levels, refusals that name the option, precedence, Prune/Delete predicates,
shared resources, Replace/Force, Validate and RespectIgnoreDifferences."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.application import SpecError, parse_application
from gitsync.controller.status import SHARED_RESOURCE_WARNING, shared_resource_condition
from gitsync.diff import IgnoreRule, ResourceDiff
from gitsync.kube import ApiError
from gitsync.model import ResourceKey, ResultCode, SyncStatus
from gitsync.policy import Policy
from gitsync.sync.syncer import (
    Comparison,
    Item,
    SyncResult,
    WriteMode,
    apply_verdict,
    field_validation,
    honours_field_validation,
    immutable,
    prune_verdict,
    refuse_shared,
    respect_ignored,
    write_mode,
)
from gitsync.sync.tracking import TRACKING_ANNOTATION, tracked_by, tracking_id
from gitsync.sync_options import (
    OPTIONS,
    SyncOptionError,
    SyncOptions,
    deletion_allowed,
    effective,
    parse_app_options,
    parse_resource_options,
    prune_allowed,
    prune_last,
)

NS = "shop"
KEY = ResourceKey("", "ConfigMap", NS, "a")


def annotated(**annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "a",
            "namespace": NS,
            "uid": "u-1",
            "annotations": {TRACKING_ANNOTATION: tracking_id(f"{NS}/web", KEY), **annotations},
        },
    }


def application(options: list[str]) -> Any:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "source": {"repoURL": "https://git.example.com/shop.git", "path": "app"},
                "destination": {"namespace": NS},
                "syncPolicy": {"automated": {"prune": True}, "syncOptions": options},
            },
        }
    )


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "annotation", ["gitsync.dev/sync-options", "argocd.argoproj.io/sync-options"]
)
def test_a_resource_s_options_under_either_prefix(annotation: str) -> None:
    options = parse_resource_options(annotated(**{annotation: " Prune=false , Replace=true,"}))
    assert options.values == {"Prune": "false", "Replace": "true"}


def test_flux_force_and_the_old_prune_annotation_are_read() -> None:
    obj = annotated(
        **{"kustomize.toolkit.fluxcd.io/force": "enabled", "gitsync.dev/prune": "False"}
    )
    assert parse_resource_options(obj).values == {"Force": "true", "Prune": "false"}
    assert (
        parse_resource_options(
            annotated(**{"kustomize.toolkit.fluxcd.io/force": "disabled"})
        ).values
        == {}
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Frobnicate=true", "unknown sync option 'Frobnicate'"),
        ("CreateNamespace=true", "'CreateNamespace' is only valid on an Application"),
        ("FailOnSharedResource=true", "'FailOnSharedResource' is only valid on an Application"),
        ("Prune=confirm", "Prune=confirm is not supported"),
        ("Delete=confirm", "Delete=confirm is not supported"),
        ("ServerSideApply=false", "ServerSideApply=false is not supported"),
        ("Replace=yes", "sync option Replace: expected one of true, false"),
        ("Replace", "expected 'Name=value'"),
        ("Prune=false,Prune=true", "set to two different values"),
    ],
)
def test_a_resource_option_gitsync_cannot_honour_is_an_error_naming_it(
    text: str, named: str
) -> None:
    with pytest.raises(SyncOptionError) as caught:
        parse_resource_options(annotated(**{"argocd.argoproj.io/sync-options": text}))
    assert named in str(caught.value)
    assert "argocd.argoproj.io/sync-options" in str(caught.value)


def test_an_overlong_annotation_is_refused_before_it_is_split() -> None:
    with pytest.raises(SyncOptionError, match="at most"):
        parse_resource_options(annotated(**{"gitsync.dev/sync-options": "Prune=false," * 200}))


def test_flux_force_takes_enabled_or_disabled() -> None:
    with pytest.raises(SyncOptionError, match=r"kustomize\.toolkit\.fluxcd\.io/force"):
        parse_resource_options(annotated(**{"kustomize.toolkit.fluxcd.io/force": "yes"}))


@pytest.mark.parametrize(
    ("option", "field_named", "problem"),
    [
        ("Force=true", "syncOptions[0]", "only valid on a resource's annotation"),
        ("ClientSideApplyMigration=true", "syncOptions[0]", "never applied client-side"),
        ("PrunePropagationPolicy=later", "syncOptions[0]", "foreground, background, orphan"),
        ("Bogus=true", "syncOptions[0]", "unknown sync option 'Bogus'"),
    ],
)
def test_an_app_option_gitsync_cannot_honour_is_a_spec_error(
    option: str, field_named: str, problem: str
) -> None:
    with pytest.raises(SpecError) as caught:
        application([option])
    assert caught.value.field.endswith(field_named) and problem in caught.value.problem


def test_every_documented_app_option_parses_or_is_refused_by_name() -> None:
    """Nothing accepted and ignored: each value either reaches the spec or is a SpecError."""
    for name, spec in OPTIONS.items():
        for value in spec.values:
            text = f"{name}={value}"
            try:
                app = application([text])
            except SpecError as exc:
                assert name in str(exc), text
                continue
            assert app.sync_policy.sync_options.get(name) == value, text


def test_app_options_keep_their_values() -> None:
    policy = application(
        ["PrunePropagationPolicy=orphan", "Prune=false", "Validate=true"]
    ).sync_policy
    assert policy.sync_options.get("PrunePropagationPolicy") == "orphan"
    assert policy.option("Validate") and not policy.option("Prune")


# -- precedence and the predicates the prune and the app deletion ask ------------------------


def test_a_resource_option_overrides_the_app_s() -> None:
    app = parse_app_options(["Prune=false"], "spec.syncPolicy.syncOptions")
    assert effective(SyncOptions({"Prune": "true"}), app, "Prune") == "true"
    assert effective(SyncOptions(), app, "Prune") == "false"
    assert effective(SyncOptions(), SyncOptions(), "Prune") is None


@pytest.mark.parametrize(
    ("annotation", "app_options", "allowed"),
    [
        ("", [], True),
        ("Delete=false", [], False),
        ("", ["Delete=false"], False),
        ("Delete=true", ["Delete=false"], True),
        ("Delete=maybe", [], False),  # unreadable: when in doubt, never delete
    ],
)
def test_delete_false_keeps_an_object_when_the_app_is_deleted(
    annotation: str, app_options: list[str], allowed: bool
) -> None:
    live = annotated(**({"argocd.argoproj.io/sync-options": annotation} if annotation else {}))
    app = parse_app_options(app_options, "spec.syncPolicy.syncOptions")
    assert deletion_allowed(live, app) is allowed


@pytest.mark.parametrize(
    ("annotations", "app_options", "expected"),
    [
        ({"argocd.argoproj.io/sync-options": "Prune=false"}, [], "Prune=false"),
        ({"gitsync.dev/sync-options": "Prune=false"}, [], "Prune=false"),
        ({"gitsync.dev/prune": "false"}, [], "Prune=false"),
        ({}, ["Prune=false"], "Prune=false"),
        ({"gitsync.dev/sync-options": "Prune=true"}, ["Prune=false"], None),
    ],
    ids=["argocd", "gitsync", "old-annotation", "app-level", "resource-overrides-app"],
)
def test_prune_false_skips_the_prune(
    annotations: dict[str, str], app_options: list[str], expected: str | None
) -> None:
    verdict = prune_verdict(
        application(app_options),
        KEY,
        annotated(**annotations),
        policy=Policy(),
        namespaced=True,
        dry_run=False,
    )
    if expected is None:
        assert verdict is None
    else:
        assert verdict == (ResultCode.PRUNE_SKIPPED, f"sync option {expected}")


def test_prune_last_on_the_live_object() -> None:
    live = annotated(**{"argocd.argoproj.io/sync-options": "PruneLast=true"})
    assert prune_last(live, SyncOptions()) and not prune_last(annotated(), SyncOptions())
    assert prune_allowed(annotated(), SyncOptions())


# -- shared resources ------------------------------------------------------------------------


def item(shared_with: str = "", status: SyncStatus = SyncStatus.OUT_OF_SYNC) -> Item:
    return Item(
        KEY,
        annotated(),
        0,
        live=annotated(),
        diff=ResourceDiff(KEY, status),
        shared_with=shared_with,
    )


def test_the_tracking_annotation_names_the_app() -> None:
    assert tracked_by(annotated()) == f"{NS}/web"
    assert tracked_by({"metadata": {}}) == ""


def test_a_shared_object_is_not_taken_over_unless_the_operator_allows_it() -> None:
    refused = apply_verdict(item("other/app"))
    assert refused is not None and refused.code == ResultCode.SYNC_FAILED
    assert "Application other/app tracks it" in refused.message
    assert "--allow-shared-resource-takeover" in refused.message
    assert apply_verdict(item("other/app"), allow_takeover=True) is None
    synced = item("other/app", SyncStatus.SYNCED)
    assert apply_verdict(synced, allow_takeover=True) is None  # the annotation changes hands
    assert apply_verdict(item()) is None


def test_fail_on_shared_resource_stops_the_sync_before_it_starts() -> None:
    comparison = Comparison([item("other/app"), item()], {}, {})
    result = SyncResult("r1")
    assert refuse_shared(application(["FailOnSharedResource=true"]), comparison, result)
    assert result.aborted and "nothing was written" in result.message
    assert [(r.key, r.code) for r in result.results] == [(KEY, ResultCode.SYNC_FAILED)]
    assert not refuse_shared(application([]), comparison, SyncResult("r1"))
    assert not refuse_shared(
        application(["FailOnSharedResource=true"]), Comparison([item()], {}, {}), SyncResult("r1")
    )


def test_the_shared_resource_warning_condition_comes_and_goes() -> None:
    conds = shared_resource_condition((), {KEY: "other/app"}, 1, "2026-01-01T00:00:00Z")
    assert [(c.type, c.status) for c in conds] == [(SHARED_RESOURCE_WARNING, "True")]
    assert "other/app" in conds[0].message
    assert shared_resource_condition(conds, {}, 1, "2026-01-01T00:00:00Z") == ()


# -- how a changed object is written ---------------------------------------------------------


@pytest.mark.parametrize(
    ("own", "app", "mode"),
    [
        ({}, {}, WriteMode.APPLY),
        ({"Replace": "true"}, {}, WriteMode.REPLACE),
        ({}, {"Replace": "true"}, WriteMode.REPLACE),
        ({"Replace": "false"}, {"Replace": "true"}, WriteMode.APPLY),
        ({"Force": "true"}, {}, WriteMode.FORCE),
        ({"Force": "true", "Replace": "true"}, {}, WriteMode.REPLACE),
    ],
)
def test_write_mode(own: dict[str, str], app: dict[str, str], mode: WriteMode) -> None:
    assert write_mode(SyncOptions(own), SyncOptions(app)) == mode


def test_validate_false_is_the_server_s_field_validation_ignore() -> None:
    assert field_validation(SyncOptions({"Validate": "false"}), SyncOptions()) == "Ignore"
    assert field_validation(SyncOptions(), SyncOptions({"Validate": "false"})) == "Ignore"
    assert (
        field_validation(SyncOptions({"Validate": "true"}), SyncOptions({"Validate": "false"}))
        is None
    )
    assert field_validation(SyncOptions(), SyncOptions()) is None


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (
            422,
            'Job.batch "m" is invalid: spec.template: Invalid value: ...: field is immutable',
            True,
        ),
        (422, "spec.clusterIPs[0]: Invalid value: ...: may not change once set", True),
        (422, "spec.replicas: Invalid value: -1: must be greater than or equal to 0", False),
        (409, "field is immutable", False),
    ],
)
def test_immutable_is_the_api_server_s_refusal(status: int, message: str, expected: bool) -> None:
    assert immutable(ApiError(status, "Invalid", message)) is expected


def test_respect_ignore_differences_carries_the_live_value() -> None:
    desired = {"kind": "Deployment", "spec": {"replicas": 1, "template": {}}}
    live = {"kind": "Deployment", "spec": {"replicas": 5}, "metadata": {}}
    rules = [IgnoreRule(kind="Deployment", json_pointers=("/spec/replicas", "/spec/paused"))]
    key = ResourceKey("apps", "Deployment", NS, "web")
    assert respect_ignored(desired, live, rules, key)["spec"] == {"replicas": 5, "template": {}}
    assert respect_ignored(desired, None, rules, key) is desired  # not created yet: as is
    other = ResourceKey("", "ConfigMap", NS, "web")
    assert respect_ignored(desired, live, rules, other)["spec"]["replicas"] == 1
    with pytest.raises(ValueError, match="managedFieldsManagers"):
        respect_ignored(desired, live, [IgnoreRule(managers=("hpa",))], key)


@pytest.mark.parametrize(
    ("version", "honoured"),
    [
        ("v1.20.2", False),
        ("v1.24.9", False),
        ("v1.25.0", True),
        ("v1.30.1+k3s1", True),
        ("", False),
    ],
)
def test_validate_false_needs_a_server_that_honours_field_validation(
    version: str, honoured: bool
) -> None:
    assert honours_field_validation(version) is honoured
