"""Property tests for the diff core over random JSON-ish and Kubernetes-ish objects."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsync.diff import MAX_DEPTH, IgnoreRule, diff_resource, normalize
from gitsync.model import ResourceKey, SyncStatus

KEY = ResourceKey("", "Widget", "ns", "w")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
# Keys that exercise pointer escaping ("~", "/"), list-index look-alikes and normalization.
keys = st.sampled_from(
    ["a", "b", "c", "~", "/", "a/b", "~1", "0", "", "data", "metadata", "status", "spec"]
) | st.text(max_size=4)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)
json_objects = st.dictionaries(keys, json_values, max_size=5)

field_keys = st.sampled_from(
    ["f:a", "f:spec", "f:data", "f:metadata", "i:0", "i:x", 'k:{"a":1}', "k:{", "v:1", 'v:"a"', "."]
)
fields_v1: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.just({}), lambda children: st.dictionaries(field_keys, children, max_size=3), max_leaves=10
)
managed_fields = st.lists(
    st.fixed_dictionaries({"manager": st.sampled_from(["m", "other"]), "fieldsV1": fields_v1}),
    max_size=3,
)
annotation_maps = st.dictionaries(
    st.sampled_from(["gitsync.dev/owner", "kubectl.kubernetes.io/last-applied-configuration", "x"]),
    st.text(max_size=5),
    max_size=3,
)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=5),
        "namespace": st.text(max_size=5),
        "labels": annotation_maps | st.none(),
        "annotations": annotation_maps | json_values,
        "managedFields": managed_fields | json_values,
        "ownerReferences": json_values,
        "resourceVersion": st.text(max_size=3),
    },
)
base64ish = st.sampled_from(["", "YQ==", "YWJj", "YW\nJj", "!!", "YQ"]) | st.text(max_size=6)
kube_objects = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["v1", "apps/v1"]) | scalars,
        "kind": st.sampled_from(["Secret", "Deployment", "ConfigMap"]) | scalars,
        "metadata": metadata | json_values,
        "data": st.dictionaries(st.text(max_size=3), base64ish | json_values, max_size=3)
        | json_values,
        "stringData": st.dictionaries(st.text(max_size=3), st.text(max_size=5) | json_values)
        | json_values,
        "status": json_values,
        "spec": json_values,
    },
)
anything = json_objects | kube_objects
rules = [IgnoreRule(managers=("m",))]


@settings(max_examples=300, deadline=None)
@given(anything)
def test_normalize_never_raises_never_mutates_and_is_idempotent(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    once = normalize(obj, ignore=rules)
    assert obj == before
    assert normalize(once, ignore=rules) == once


@settings(max_examples=300, deadline=None)
@given(anything)
def test_an_object_is_in_sync_with_itself(obj: dict[str, Any]) -> None:
    diff = diff_resource(KEY, obj, copy.deepcopy(obj), ignore=rules, mask_scope="t/app")
    assert diff.status is SyncStatus.SYNCED, diff.unified
    assert diff.patch == [] and diff.unified == "" and diff.changed_paths == ()


@settings(max_examples=300, deadline=None)
@given(json_objects, json_objects)
def test_the_patch_turns_live_into_desired(desired: dict[str, Any], live: dict[str, Any]) -> None:
    # Plain structures (no kind/metadata) so normalization only drops "status".
    diff = diff_resource(KEY, desired, live, mask_scope="t/app")
    desired_n, live_n = normalize(desired), normalize(live)
    assert (diff.status is SyncStatus.SYNCED) == (not diff.changed_paths)
    assert jsonpatch.apply_patch(live_n, diff.patch) == desired_n


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=MAX_DEPTH + 1, max_value=3_000), st.booleans())
def test_deep_nesting_gives_an_error_status(depth: int, in_list: bool) -> None:
    def build() -> dict[str, Any]:
        node: Any = "leaf"
        for _ in range(depth):
            node = [node] if in_list else {"k": node}
        return {"kind": "Widget", "spec": node}

    diff = diff_resource(KEY, build(), build(), mask_scope="t/app")
    assert diff.status is SyncStatus.UNKNOWN
    assert diff.error
    assert normalize(build()) is not None
