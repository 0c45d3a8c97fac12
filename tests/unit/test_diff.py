"""Behaviour of the diff core beyond the fixture table: API, masking, inventory and bounds."""

from __future__ import annotations

import copy
import hashlib
import re
import subprocess
import sys
from typing import Any

import jsonpatch
import pytest
import yaml

from gitsync.application import parse_ignore_differences
from gitsync.diff import (
    IGNORED_ANNOTATIONS,
    IGNORED_LABELS,
    MAX_DEPTH,
    MAX_NODES,
    IgnoreRule,
    ResourceDiff,
    diff_resource,
    mask_secret,
    normalize,
)
from gitsync.diff.masking import mask_value
from gitsync.model import ResourceKey, SyncStatus

MASK = re.compile(r"^\+{8} \(hmac-sha256:[0-9a-f]{8}\)$")


def deployment(name: str = "web", image: str = "nginx:1.27", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [{"name": "web", "image": image}]}},
            **spec,
        },
    }


def secret() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}}


def secret_with(
    data: dict[str, str] | None = None, string_data: dict[str, str] | None = None
) -> dict[str, Any]:
    obj = secret()
    if data is not None:
        obj["data"] = data
    if string_data is not None:
        obj["stringData"] = string_data
    return obj


def nested(depth: int, leaf: Any = "x", key: str = "a") -> dict[str, Any]:
    node: dict[str, Any] = {key: leaf}
    for _ in range(depth - 1):
        node = {key: node}
    return node


KEY = ResourceKey("apps", "Deployment", "shop", "web")


# --- normalize -----------------------------------------------------------------------------------


def test_normalize_never_mutates_its_input() -> None:
    live = deployment()
    live["metadata"].update(
        resourceVersion="3",
        labels={"gitsync.dev/owner": "shop"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        managedFields=[
            {"manager": "hpa", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        ],
    )
    live["status"] = {"replicas": 2}
    before = copy.deepcopy(live)
    rules = [
        IgnoreRule(json_pointers=("/spec/template/spec/containers/0/image",), managers=("hpa",))
    ]

    out = normalize(live, ignore=rules)

    assert live == before
    assert out is not live
    assert out == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "web"}]}}},
    }


def test_normalize_secret_folds_string_data_without_mutating() -> None:
    obj = secret_with(data={"a": "eA==", "b": "eQ=="}, string_data={"b": "z"})
    before = copy.deepcopy(obj)
    assert normalize(obj) == {**secret(), "data": {"a": "eA==", "b": "eg=="}}
    assert obj == before


def test_normalize_none_is_none() -> None:
    assert normalize(None) is None


def test_bookkeeping_sets_cover_gitsync_and_kubectl_keys() -> None:
    assert {"gitsync.dev/owner", "gitsync.dev/tracking"} <= IGNORED_LABELS
    assert {
        "gitsync.dev/owner",
        "gitsync.dev/tracking",
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "deprecated.daemonset.template.generation",
    } <= IGNORED_ANNOTATIONS


# --- diff_resource -------------------------------------------------------------------------------


def test_synced_result_is_empty_and_skips_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dump(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("a Synced diff must not dump YAML")

    monkeypatch.setattr(yaml, "dump", no_dump)
    diff = diff_resource(KEY, deployment(), deployment(), mask_scope="t/app")
    assert diff == ResourceDiff(KEY, SyncStatus.SYNCED)


def test_out_of_sync_patch_applies_and_unified_shows_both_sides() -> None:
    live = deployment(image="nginx:1.25")
    desired = deployment(image="nginx:1.27")
    diff = diff_resource(KEY, desired, live, mask_scope="t/app")
    assert diff.status is SyncStatus.OUT_OF_SYNC
    assert diff.patch == [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.27"}
    ]
    assert jsonpatch.apply_patch(live, diff.patch) == desired
    lines = diff.unified.splitlines()
    assert lines[:2] == [f"--- live/{KEY}", f"+++ desired/{KEY}"]
    assert "-      - image: nginx:1.25" in lines
    assert "+      - image: nginx:1.27" in lines


def test_patch_values_do_not_alias_the_callers_objects() -> None:
    desired = deployment(extra={"nested": {"k": "v"}})
    diff = diff_resource(KEY, desired, deployment(), mask_scope="t/app")
    diff.patch[0]["value"]["nested"]["k"] = "changed"
    assert desired["spec"]["extra"]["nested"]["k"] == "v"


def test_list_length_changes_remove_from_the_end_so_the_patch_applies() -> None:
    live = deployment(args=["a", "b", "c", "d"])
    desired = deployment(args=["a", "x"])
    diff = diff_resource(KEY, desired, live, mask_scope="t/app")
    assert diff.changed_paths == ("/spec/args/1", "/spec/args/3", "/spec/args/2")
    assert jsonpatch.apply_patch(live, diff.patch) == desired
    grown = diff_resource(KEY, live, desired, mask_scope="t/app")
    assert jsonpatch.apply_patch(desired, grown.patch) == live


def test_multiline_strings_diff_line_by_line() -> None:
    key = ResourceKey("", "ConfigMap", "shop", "scripts")
    base = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "scripts"}}
    live = {**base, "data": {"run.sh": "#!/bin/sh\nset -e\necho old\nexit 0\n"}}
    desired = {**base, "data": {"run.sh": "#!/bin/sh\nset -e\necho new\nexit 0\n"}}
    diff = diff_resource(key, desired, live, mask_scope="t/app")
    assert "-    echo old\n" in diff.unified
    assert "+    echo new\n" in diff.unified
    assert "     set -e\n" in diff.unified


def test_missing_and_extraneous_are_whole_object_changes() -> None:
    missing = diff_resource(KEY, deployment(), None, mask_scope="t/app")
    assert missing.status is SyncStatus.MISSING
    assert missing.changed_paths == ("",)
    assert missing.patch[0]["op"] == "add"
    assert all(line.startswith(("+", "@@")) for line in missing.unified.splitlines()[2:])

    extraneous = diff_resource(KEY, None, deployment(), mask_scope="t/app")
    assert extraneous.status is SyncStatus.EXTRANEOUS
    assert extraneous.patch == [{"op": "remove", "path": ""}]
    assert all(line.startswith(("-", "@@")) for line in extraneous.unified.splitlines()[2:])

    assert diff_resource(KEY, None, None, mask_scope="t/app").status is SyncStatus.SYNCED


def test_subset_mode_reports_what_full_mode_would_and_hides_live_only_fields() -> None:
    desired = deployment()
    live = deployment(paused=True)
    assert diff_resource(KEY, desired, live, mask_scope="t/app").changed_paths == ("/spec/paused",)
    subset = diff_resource(KEY, desired, live, desired_is_dry_run=False, mask_scope="t/app")
    assert subset.status is SyncStatus.SYNCED

    changed = diff_resource(
        KEY, deployment(image="b"), live, desired_is_dry_run=False, mask_scope="t/app"
    )
    assert changed.changed_paths == ("/spec/template/spec/containers/0/image",)
    assert "paused" not in changed.unified


def test_managers_rule_uses_live_managed_fields_for_both_sides() -> None:
    live = deployment()
    live["spec"]["replicas"] = 7
    live["metadata"]["managedFields"] = [
        {"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    ]
    desired = deployment()  # its own managedFields (none) must not matter
    rule = IgnoreRule(kind="Deployment", managers=("kube-controller-manager",))
    assert diff_resource(KEY, desired, live, mask_scope="t/app").status is SyncStatus.OUT_OF_SYNC
    assert (
        diff_resource(KEY, desired, live, ignore=[rule], mask_scope="t/app").status
        is SyncStatus.SYNCED
    )


def test_managers_rule_for_another_manager_changes_nothing() -> None:
    live = deployment()
    live["spec"]["replicas"] = 7
    live["metadata"]["managedFields"] = [
        {"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    ]
    rule = IgnoreRule(managers=("someone-else",))
    assert diff_resource(
        KEY, deployment(), live, ignore=[rule], mask_scope="t/app"
    ).changed_paths == ("/spec/replicas",)


# --- secrets -------------------------------------------------------------------------------------


def test_mask_is_keyed_stable_and_only_tells_whether_a_value_changed() -> None:
    a = mask_secret(secret_with(data={"pw": "aHVudGVyMg=="}), scope="t/app")  # hunter2
    b = mask_secret(secret_with(string_data={"pw": "hunter2"}), scope="t/app")
    c = mask_secret(secret_with(data={"pw": "aHVudGVyMw=="}), scope="t/app")  # hunter3
    d = mask_secret(secret_with(data={"other": "aHVudGVyMg=="}), scope="t/app")
    assert MASK.match(a["data"]["pw"])
    assert a["data"]["pw"] == b["stringData"]["pw"]
    assert a["data"]["pw"] != c["data"]["pw"]
    # Same value under another key does not mask the same: equal passwords are not revealed.
    assert a["data"]["pw"] != d["data"]["other"]
    # Not an unkeyed hash of the value.
    assert hashlib.sha256(b"hunter2").hexdigest()[:8] not in a["data"]["pw"]


def test_masks_of_one_value_differ_between_apps_and_agree_within_one() -> None:
    """A tenant's Git can render a Secret under another tenant's namespace and name (refused at
    sync, still diffed): its app's mask of a guessed value must never equal the mask the victim's
    app shows of the real value, while one app's masks stay stable (desired against live, one
    refresh and the next)."""
    obj = secret_with(data={"pw": "aHVudGVyMg=="})
    victim = mask_secret(obj, scope="payroll/api")["data"]["pw"]
    assert mask_secret(obj, scope="payroll/api")["data"]["pw"] == victim
    for other in ("tenant/probe", "payroll/api2", "payroll/ap", "payroll-api/x", ""):
        assert mask_secret(obj, scope=other)["data"]["pw"] != victim, other
    shop = ResourceKey("", "Secret", "shop", "db")
    desired, live = secret_with(data={"pw": "aHVudGVyMg=="}), secret_with(data={"pw": "eA=="})

    def shown(scope: str) -> str:
        return diff_resource(shop, desired, live, mask_scope=scope).unified

    assert shown("payroll/api") == shown("payroll/api")
    assert f"+  pw: {victim}" in shown("payroll/api")
    assert victim not in shown("tenant/probe")


def test_mask_context_is_framed_so_no_names_collide() -> None:
    """Joined with a separator, ("a", "b\x00c") and ("a\x00b", "c") would hash alike; a
    rendered object's names are not validated yet when it is diffed."""
    masks = {
        mask_value("v", context=context, encoded=False)
        for context in (("a", "b\x00c", "k"), ("a\x00b", "c", "k"), ("a", "b", "c\x00k"))
    }
    assert len(masks) == 3


def test_mask_key_is_random_per_process() -> None:
    """A constant key would make masks precomputable, i.e. brute-forceable offline."""
    script = (
        "from gitsync.diff import mask_secret;"
        "secret = {'kind': 'Secret', 'data': {'pw': 'aHVudGVyMg=='}};"
        "print(mask_secret(secret, scope='t/app')['data']['pw'])"
    )
    masks = {
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(masks) == 2
    assert all(MASK.match(mask) for mask in masks)


def test_mask_secret_hides_last_applied_and_does_not_mutate() -> None:
    obj = secret_with(data={"pw": "aHVudGVyMg=="})
    obj["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"stringData":{"pw":"hunter2"}}',
        "team": "payments",
    }
    before = copy.deepcopy(obj)
    masked = mask_secret(obj, scope="t/app")
    assert obj == before
    assert "hunter2" not in repr(masked)
    assert "aHVudGVyMg" not in repr(masked)
    assert masked["metadata"]["annotations"]["team"] == "payments"


def test_mask_secret_leaves_other_kinds_alone() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}
    assert mask_secret(cm, scope="t/app") == cm


def test_secret_missing_does_not_reveal_values() -> None:
    diff = diff_resource(
        ResourceKey("", "Secret", "shop", "db"),
        secret_with(string_data={"pw": "hunter2"}),
        None,
        mask_scope="t/app",
    )
    assert diff.status is SyncStatus.MISSING
    for text in (diff.unified, repr(diff.patch), repr(diff)):
        assert "hunter2" not in text
        assert "aHVudGVyMg" not in text


def test_secret_data_invalid_base64_still_compares_and_masks() -> None:
    key = ResourceKey("", "Secret", "shop", "db")
    diff = diff_resource(
        key,
        secret_with(data={"pw": "not base64!"}),
        secret_with(data={"pw": "x"}),
        mask_scope="t/app",
    )
    assert diff.status is SyncStatus.OUT_OF_SYNC
    assert "not base64!" not in diff.unified


# --- IgnoreRule ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pointer", ["spec/replicas", ""])
def test_ignore_rule_rejects_bad_pointers(pointer: str) -> None:
    with pytest.raises(ValueError):
        IgnoreRule(json_pointers=(pointer,))


def test_ignore_rule_matching_and_spec() -> None:
    (entry,) = parse_ignore_differences(
        [
            {
                "group": "apps",
                "kind": "Deployment",
                "name": "web-*",
                "jsonPointers": ["/spec/replicas"],
            }
        ]
    )
    rule = IgnoreRule.from_difference(entry)
    assert rule.json_pointers == ("/spec/replicas",)
    assert rule.matches(ResourceKey("apps", "Deployment", "shop", "web-eu"))
    assert not rule.matches(ResourceKey("apps", "Deployment", "shop", "api"))
    assert not rule.matches(ResourceKey("", "Deployment", "shop", "web-eu"))
    assert IgnoreRule().matches(ResourceKey("", "ConfigMap", "", "x"))
    same = IgnoreRule(
        group="apps", kind="Deployment", name="web-*", json_pointers=("/spec/replicas",)
    )
    assert rule == same and hash(rule) == hash(same)


def test_ignore_rule_from_difference_keeps_every_field() -> None:
    (entry,) = parse_ignore_differences(
        [
            {
                "group": "",
                "kind": "ConfigMap",
                "name": "settings",
                "namespace": "shop",
                "jsonPointers": ["/data/a", "/data/b"],
                "managedFieldsManagers": ["kube-controller-manager"],
            }
        ]
    )
    assert IgnoreRule.from_difference(entry) == IgnoreRule(
        "", "ConfigMap", "settings", "shop", ("/data/a", "/data/b"), ("kube-controller-manager",)
    )


# --- bounds --------------------------------------------------------------------------------------


def test_deep_nesting_is_an_unknown_status_not_a_crash() -> None:
    for depth in (MAX_DEPTH + 1, 5_000):
        diff = diff_resource(
            KEY,
            {**deployment(), "spec": nested(depth)},
            {**deployment(), "spec": nested(depth)},
            mask_scope="t/app",
        )
        assert diff.status is SyncStatus.UNKNOWN
        assert diff.error is not None and f"deeper than {MAX_DEPTH}" in diff.error


def test_nesting_within_the_limit_is_fine() -> None:
    obj = {"kind": "X", "spec": nested(MAX_DEPTH - 2)}
    assert (
        diff_resource(KEY, obj, copy.deepcopy(obj), mask_scope="t/app").status is SyncStatus.SYNCED
    )


def test_deep_object_on_one_side_only() -> None:
    deep = {**deployment(), "extra": nested(5_000)}
    assert diff_resource(KEY, deep, deployment(), mask_scope="t/app").status is SyncStatus.UNKNOWN
    assert diff_resource(KEY, deployment(), deep, mask_scope="t/app").status is SyncStatus.UNKNOWN
    assert diff_resource(KEY, deep, None, mask_scope="t/app").status is SyncStatus.UNKNOWN
    assert diff_resource(KEY, None, deep, mask_scope="t/app").status is SyncStatus.UNKNOWN


def test_deep_managed_fields_with_a_managers_rule() -> None:
    # The field tree walks the object as deep as both go: it must stop at the limit.
    live = {**deployment(), "a": nested(5_000)}
    live["metadata"]["managedFields"] = [{"manager": "m", "fieldsV1": nested(5_001, {}, "f:a")}]
    diff = diff_resource(
        KEY, deployment(), live, ignore=[IgnoreRule(managers=("m",))], mask_scope="t/app"
    )
    assert diff.status is SyncStatus.UNKNOWN
    assert diff.error is not None and "managedFields" in diff.error


def test_too_many_values_is_an_unknown_status() -> None:
    huge = {**deployment(), "spec": {"items": [0] * (MAX_NODES // 2 + 1)}}
    diff = diff_resource(KEY, huge, copy.deepcopy(huge), mask_scope="t/app")
    assert diff.status is SyncStatus.UNKNOWN
    assert diff.error is not None and str(MAX_NODES) in diff.error
