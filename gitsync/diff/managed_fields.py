"""Removing the fields that given field managers own, read from ``metadata.managedFields``.

This backs the ``managers`` ignore rule (Argo CD's ``managedFieldsManagers``): when another
controller legitimately owns a field - an HPA's ``spec.replicas`` written by
``kube-controller-manager``, a sidecar injected by a webhook - the user says "trust that manager"
and the fields it owns are removed from both desired and live before comparing. The ownership is
taken from the LIVE object's ``managedFields``, because only the live object records who wrote what.

``fieldsV1`` is a tree whose keys are ``f:<field>`` (a map field), ``k:<json>`` (a list item whose
key fields equal the JSON object, e.g. a container by name), ``v:<json>`` (a set item by value),
``i:<n>`` (a list item by position) and ``.`` (the node itself). As in structured-merge-diff's
``Set.Leaves()``, only leaves are removed: a node whose sub-tree lists children loses those
children, not its other contents, because other managers may own the rest. One addition: a node
the manager created (marked ``.``) that is left empty is removed too, so an injected list item
does not linger as ``{}``.

Limits, because there is no OpenAPI schema here: ``k:`` items are matched by plain equality of the
listed key fields (defaults the server would apply to key fields are not filled in; live and
dry-run objects already carry them); ``i:`` is positional, so it only lines up when both lists
have the same order; a field co-owned by a listed manager and by gitsync is removed too.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from gitsync.diff.limits import MAX_DEPTH, ObjectTooComplex

_SELF = "."


def owned_field_trees(managed_fields: Any, managers: Collection[str]) -> list[Mapping[str, Any]]:
    """The ``fieldsV1`` trees of the ``managedFields`` entries written by one of ``managers``."""
    if not isinstance(managed_fields, list) or not managers:
        return []
    trees: list[Mapping[str, Any]] = []
    for entry in managed_fields:
        if not isinstance(entry, dict) or entry.get("manager") not in managers:
            continue
        if entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        fields = entry.get("fieldsV1")
        if isinstance(fields, dict):
            trees.append(fields)
    return trees


def without_owned(node: Any, fields: Mapping[str, Any]) -> Any:
    """``node`` without the leaves of ``fields``; ``node`` itself when nothing matched.

    Copy-on-write: only containers that lose something are copied. Raises ``ObjectTooComplex``
    if the field tree is nested deeper than ``MAX_DEPTH``.
    """
    return _without_owned(node, fields, 1)


def _is_leaf(sub: Any) -> bool:
    return not isinstance(sub, dict) or all(key == _SELF for key in sub)


def _without_owned(node: Any, fields: Mapping[str, Any], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ObjectTooComplex(f"managedFields nest deeper than {MAX_DEPTH} levels")
    if isinstance(node, dict):
        return _from_map(node, fields, depth)
    if isinstance(node, list):
        return _from_list(node, fields, depth)
    return node


def _pruned_child(child: Any, sub: Any, depth: int) -> Any:
    """The child after removing ``sub``'s leaves; ``_GONE`` when the child goes entirely."""
    if _is_leaf(sub):
        return _GONE
    new_child = _without_owned(child, sub, depth + 1)
    if new_child is not child and _SELF in sub and isinstance(new_child, dict | list):
        return new_child or _GONE
    return new_child


_GONE = object()


def _from_map(node: dict[str, Any], fields: Mapping[str, Any], depth: int) -> dict[str, Any]:
    result = node
    for path_key, sub in fields.items():
        if not isinstance(path_key, str) or not path_key.startswith("f:"):
            continue
        name = path_key[2:]
        if name not in result:
            continue
        child = result[name]
        new_child = _pruned_child(child, sub, depth)
        if new_child is child:
            continue
        if result is node:
            result = dict(node)
        if new_child is _GONE:
            del result[name]
        else:
            result[name] = new_child
    return result


def _from_list(node: list[Any], fields: Mapping[str, Any], depth: int) -> list[Any]:
    gone: set[int] = set()
    replaced: dict[int, Any] = {}
    for path_key, sub in fields.items():
        for index in _matching_indices(node, path_key):
            if index in gone:
                continue
            child = replaced.get(index, node[index])
            new_child = _pruned_child(child, sub, depth)
            if new_child is _GONE:
                gone.add(index)
                replaced.pop(index, None)
            elif new_child is not child:
                replaced[index] = new_child
    if not gone and not replaced:
        return node
    return [replaced.get(i, item) for i, item in enumerate(node) if i not in gone]


def _matching_indices(node: list[Any], path_key: Any) -> list[int]:
    if not isinstance(path_key, str):
        return []
    prefix, _, raw = path_key.partition(":")
    if prefix == "i":
        if raw.isascii() and raw.isdigit() and int(raw) < len(node):
            return [int(raw)]
        return []
    if prefix not in ("k", "v"):
        return []
    try:
        wanted = json.loads(raw)
    except ValueError:
        return []
    if prefix == "v":
        return [i for i, item in enumerate(node) if _json_equal(item, wanted)]
    if not isinstance(wanted, dict) or not wanted:
        return []
    return [
        i
        for i, item in enumerate(node)
        if isinstance(item, dict)
        and all(k in item and _json_equal(item[k], v) for k, v in wanted.items())
    ]


def _json_equal(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1 (Python's == says it is).
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)
