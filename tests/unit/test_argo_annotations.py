"""Argo CD's resource annotations on main resources, without a cluster: the sync wave under both
prefixes (gitsync's wins), compare options (``IgnoreExtraneous`` honoured, the rest honoured or
refused by name), and Argo CD's tracking (``tracking-id``, the instance label) deciding whether
an object Argo deployed is adopted or belongs to another app."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.diff import ResourceDiff
from gitsync.model import ResourceKey, SyncStatus
from gitsync.sync import ordering
from gitsync.sync.inventory import InventoryEntry
from gitsync.sync.syncer import Comparison, Item
from gitsync.sync.tracking import argo_claim, argo_tracking_app, other_owner
from gitsync.sync_options import SyncOptionError, ignores_extraneous, parse_compare_options

ARGO_WAVE = "argocd.argoproj.io/sync-wave"
OURS_WAVE = "gitsync.dev/sync-wave"
KEY = ResourceKey("apps", "Deployment", "shop", "web")


def annotated(annotations: dict[str, str] | None = None, *, instance: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "shop"}
    if annotations:
        meta["annotations"] = annotations
    if instance:
        meta["labels"] = {"app.kubernetes.io/instance": instance}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta}


@pytest.mark.parametrize(
    ("annotations", "wave"),
    [
        ({}, 0),
        ({ARGO_WAVE: "-2"}, -2),
        ({OURS_WAVE: "3"}, 3),
        ({ARGO_WAVE: " 5 "}, 5),
        ({ARGO_WAVE: "1", OURS_WAVE: "4"}, 4),  # gitsync's wins
    ],
)
def test_the_wave_of_a_main_resource_reads_both_prefixes(
    annotations: dict[str, str], wave: int
) -> None:
    assert ordering.wave_of(annotated(annotations)) == wave


@pytest.mark.parametrize(
    ("annotations", "named"),
    [({ARGO_WAVE: "first"}, ARGO_WAVE), ({ARGO_WAVE: "9999999"}, ARGO_WAVE)],
)
def test_a_bad_argo_wave_is_an_error_naming_the_annotation(
    annotations: dict[str, str], named: str
) -> None:
    with pytest.raises(ordering.WaveError, match=named):
        ordering.wave_of(annotated(annotations))


def test_argo_waves_order_the_plan() -> None:
    objs = [annotated({ARGO_WAVE: w}) | {"id": w} for w in ("2", "-1", "0")]
    assert [w.number for w in ordering.plan_waves(objs)] == [-1, 0, 2]


# -- compare options -------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["argocd.argoproj.io", "gitsync.dev"])
def test_ignore_extraneous_is_read_under_both_prefixes(prefix: str) -> None:
    live = annotated({f"{prefix}/compare-options": "IgnoreExtraneous"})
    assert ignores_extraneous(live)
    assert parse_compare_options(live) == {"IgnoreExtraneous"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ServerSideDiff=false", "ServerSideDiff=false is not supported"),
        ("IncludeMutationWebhook=false", "IncludeMutationWebhook=false is not supported"),
        ("IgnoreEverything", "unknown compare option 'IgnoreEverything'"),
        ("x" * 2000, "at most 1024 chars"),
    ],
)
def test_a_compare_option_gitsync_cannot_honour_is_refused_by_name(text: str, message: str) -> None:
    obj = annotated({"argocd.argoproj.io/compare-options": text})
    with pytest.raises(SyncOptionError, match=message):
        parse_compare_options(obj)
    assert not ignores_extraneous(obj)  # a live object's unreadable option: not ignored


def test_server_side_diff_true_is_what_gitsync_does() -> None:
    obj = annotated({"argocd.argoproj.io/compare-options": "ServerSideDiff=true"})
    assert parse_compare_options(obj) == {"ServerSideDiff=true"}
    assert not ignores_extraneous(obj)


def comparison(extraneous: list[str], ignored: list[str]) -> Comparison:
    synced = Item(KEY, {}, 0, diff=ResourceDiff(KEY, SyncStatus.SYNCED, changed_paths=()))
    entries = {
        ResourceKey("", "ConfigMap", "shop", n): InventoryEntry("v1", "ConfigMap", "shop", n)
        for n in extraneous
    }
    ignored_keys = frozenset(ResourceKey("", "ConfigMap", "shop", n) for n in ignored)
    return Comparison([synced], entries, entries, ignored_extraneous=ignored_keys)


@pytest.mark.parametrize(
    ("extraneous", "ignored", "in_sync"),
    [
        ([], [], True),
        (["extra"], [], False),
        (["extra"], ["extra"], True),
        (["extra", "other"], ["extra"], False),
    ],
)
def test_only_extraneous_objects_without_ignore_extraneous_make_the_app_out_of_sync(
    extraneous: list[str], ignored: list[str], in_sync: bool
) -> None:
    assert comparison(extraneous, ignored).in_sync is in_sync


# -- Argo CD's tracking ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "app"),
    [
        ("web:apps/Deployment:shop/web", "web"),
        ("argocd_web:apps/Deployment:shop/web", "web"),  # an app outside Argo's namespace
        ("web:apps/Deployment:shop/other", ""),  # copied from another object
        ("web:/ConfigMap:shop/web", ""),  # another kind
        ("web", ""),
        ("", ""),
        (42, ""),
        ("w" * 2000 + ":apps/Deployment:shop/web", ""),
    ],
)
def test_argo_tracking_id_names_the_app_only_for_its_own_object(value: object, app: str) -> None:
    assert argo_tracking_app(value, KEY) == app


def test_a_cluster_scoped_tracking_id_has_an_empty_namespace() -> None:
    key = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "reader")
    assert argo_tracking_app("ops:rbac.authorization.k8s.io/ClusterRole:/reader", key) == "ops"


@pytest.mark.parametrize(
    ("live", "desired", "claim"),
    [
        (annotated({"argocd.argoproj.io/tracking-id": "web:apps/Deployment:shop/web"}), {}, ""),
        (
            annotated({"argocd.argoproj.io/tracking-id": "billing:apps/Deployment:shop/web"}),
            {},
            "billing",
        ),
        (annotated(instance="web"), {}, ""),
        (annotated(instance="billing"), {}, "billing"),
        # a chart that sets the label itself: the render's own value is no claim
        (
            annotated(instance="release"),
            annotated(instance="release"),
            "",
        ),
        (annotated(), {}, ""),
    ],
)
def test_an_object_argo_deployed_for_another_app_is_claimed_by_it(
    live: dict[str, Any], desired: dict[str, Any], claim: str
) -> None:
    assert argo_claim(live, desired, KEY, "web") == claim


@pytest.mark.parametrize(
    ("live", "owner"),
    [
        (annotated({"gitsync.dev/tracking": "shop/web:apps/Deployment:shop/web"}), ""),
        (annotated({"gitsync.dev/tracking": "shop/b:apps/Deployment:shop/web"}), "shop/b"),
        # gitsync's tracking decides once it is there: an adopted object stays adopted
        (
            annotated(
                {
                    "gitsync.dev/tracking": "shop/web:apps/Deployment:shop/web",
                    "argocd.argoproj.io/tracking-id": "billing:apps/Deployment:shop/web",
                }
            ),
            "",
        ),
        (annotated(instance="billing"), "billing (Argo CD)"),
    ],
)
def test_the_other_owner_is_gitsync_s_tracking_first_then_argo_s(
    live: dict[str, Any], owner: str
) -> None:
    assert other_owner(live, {}, KEY, app="shop/web", app_name="web") == owner
