"""Normalization: turning a desired or live object into the form that is compared.

Both sides of a diff pass through the same rules so that only differences the user cares about
remain: fields the API server or other controllers maintain as bookkeeping (``status``, resource
versions, managed fields, revision annotations, gitsync's own tracking labels) are dropped; Secret
``stringData`` is folded into ``data`` and ``data`` values are re-encoded canonically, so equal
bytes compare equal whichever way they were written; then the user's ``IgnoreRule``s remove what
they asked to ignore. Equal numbers (``1`` and ``1.0``) are not rewritten here - the comparison
treats them as equal - so normalizing stays cheap.

Normalization is copy-on-write: the result is a new top-level dict and only the maps that change
(``metadata``, Secret ``data``, the paths an ignore rule touches) are copied; every other sub-tree
is shared with the input. Treat both input and output as read-only. The input is never mutated.

``metadata.ownerReferences`` is not handled here because the rule needs both sides (drop the live
owner references only when desired declares none); ``diff_resource`` applies it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, cast

from gitsync.diff.ignore import IgnoreRule
from gitsync.diff.managed_fields import owned_field_trees, without_owned
from gitsync.diff.pointer import without
from gitsync.model import ResourceKey

GITSYNC_BOOKKEEPING_KEYS: frozenset[str] = frozenset({"gitsync.dev/owner", "gitsync.dev/tracking"})
"""Labels/annotations the sync layer writes on every object it applies. Other ``gitsync.dev/``
keys (e.g. per-resource sync options a user writes in Git) are compared like any other key."""

IGNORED_ANNOTATIONS: frozenset[str] = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "deprecated.daemonset.template.generation",
        *GITSYNC_BOOKKEEPING_KEYS,
    }
)
"""Top-level annotations never compared: written by kubectl, controllers or gitsync itself."""

IGNORED_LABELS: frozenset[str] = frozenset(GITSYNC_BOOKKEEPING_KEYS)
"""Top-level labels never compared."""

SERVER_METADATA_FIELDS: tuple[str, ...] = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
"""``metadata`` fields the API server maintains."""

STATUS_IS_DATA_KINDS: frozenset[tuple[str, str]] = frozenset()
"""(group, kind) pairs whose ``status`` is user data and is compared; none so far."""


def key_of(obj: dict[str, Any]) -> ResourceKey:
    """``ResourceKey.of`` that tolerates a malformed ``metadata`` (treated as absent)."""
    meta = obj.get("metadata")
    if meta is None or isinstance(meta, dict):
        return ResourceKey.of(obj)
    return ResourceKey.of({k: v for k, v in obj.items() if k != "metadata"})


def normalize(
    obj: dict[str, Any] | None,
    *,
    ignore: Sequence[IgnoreRule] = (),
    managed_fields: Any = None,
) -> dict[str, Any] | None:
    """``obj`` in comparable form (see the module docstring); None stays None.

    ``managed_fields`` is the ``metadata.managedFields`` list that ``managers`` rules read; it
    defaults to ``obj``'s own. ``diff_resource`` passes the live object's for both sides. Raises
    ``ObjectTooComplex`` only if a ``managers`` rule meets a pathologically deep field tree.
    """
    if obj is None:
        return None
    key = key_of(obj)
    if managed_fields is None:
        meta = obj.get("metadata")
        managed_fields = meta.get("managedFields") if isinstance(meta, dict) else None
    rules = [rule for rule in ignore if rule.matches(key)]
    return normalize_matched(obj, key, rules, managed_fields)


def normalize_matched(
    obj: dict[str, Any], key: ResourceKey, rules: Sequence[IgnoreRule], managed_fields: Any
) -> dict[str, Any]:
    """``normalize`` for a caller that already selected the rules matching ``key``."""
    out = dict(obj)
    if (key.group, key.kind) not in STATUS_IS_DATA_KINDS:
        out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = _normalize_metadata(meta)
    if key.kind == "Secret" and key.group == "":
        _fold_secret_data(out)
    result: Any = out
    for rule in rules:
        for tokens in rule.pointer_tokens:
            result = without(result, tokens)
    managers = {manager for rule in rules for manager in rule.managers}
    for fields in owned_field_trees(managed_fields, managers):
        result = without_owned(result, fields)
    return cast(dict[str, Any], result)


def _normalize_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in meta.items() if k not in SERVER_METADATA_FIELDS}
    for field_name, ignored in (("annotations", IGNORED_ANNOTATIONS), ("labels", IGNORED_LABELS)):
        values = out.get(field_name, _ABSENT)
        if values is _ABSENT:
            continue
        if values is None:
            del out[field_name]
        elif isinstance(values, dict):
            if not values.keys().isdisjoint(ignored):
                values = {k: v for k, v in values.items() if k not in ignored}
                out[field_name] = values
            if not values:
                del out[field_name]
    return out


_ABSENT = object()


def _fold_secret_data(secret: dict[str, Any]) -> None:
    """Fold ``stringData`` into ``data`` (stringData wins, as on the API server) and re-encode
    ``data`` values canonically. Mutates ``secret``, which is the caller's private shallow copy."""
    data = secret.get("data")
    string_data = secret.get("stringData")
    if isinstance(string_data, dict) and (data is None or isinstance(data, dict)):
        merged = dict(data or {})
        for k, v in string_data.items():
            text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
            merged[k] = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")
        secret["data"] = merged
        del secret["stringData"]
        data = merged
    if not isinstance(data, dict):
        return
    canonical = data
    for k, v in data.items():
        if not isinstance(v, str):
            continue
        decoded = decode_base64(v)
        if decoded is None:
            continue
        encoded = base64.b64encode(decoded).decode("ascii")
        if encoded != v:
            if canonical is data:
                canonical = dict(data)
            canonical[k] = encoded
    if canonical is not data:
        secret["data"] = canonical


def decode_base64(value: str) -> bytes | None:
    """Decode a Secret ``data`` value as the API server does (whitespace is ignored); None if it
    is not valid base64."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
