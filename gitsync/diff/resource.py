"""Diffing one resource: desired (normally the server-side-apply dry-run result) against live.

The sync layer asks the API server what the object would look like after applying (a dry run),
so server defaults and fields other controllers own (a Service's ``clusterIP``, a
``kubectl rollout restart`` annotation on a pod template) are already in desired; comparing the
FULL normalized objects then reports exactly what applying would change. When a dry run is
impossible (its namespace does not exist yet, say) the rendered manifest is all we have; then
``desired_is_dry_run=False`` selects a subset comparison: only fields present in desired count,
a field only live has is not a difference.

The outcome is data (``ResourceDiff``), never an exception: an object too deep or too large to
walk gets status ``Unknown`` and an ``error`` message. Secret values are masked in everything the
result carries (patch, unified diff, repr), in the context of the Application whose diff it is
(``mask_scope``: masks never compare across apps, see ``masking``); the status itself is computed
from the real values.
Work is proportional to need: equal objects cost one walk, and only objects that differ are
copied, masked and dumped to YAML.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from gitsync.diff.compare import changes_between, check_bounds, render
from gitsync.diff.ignore import IgnoreRule
from gitsync.diff.limits import ObjectTooComplex
from gitsync.diff.masking import is_secret, mask_secret
from gitsync.diff.normalize import normalize_matched
from gitsync.diff.pointer import format_pointer, value_at
from gitsync.model import ResourceKey, SyncStatus

try:
    from yaml import CSafeDumper as _BaseDumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]

WHOLE_OBJECT = ""
"""The JSON pointer to the whole object: the changed path of a Missing or Extraneous resource."""


@dataclass(frozen=True)
class ResourceDiff:
    """How one resource differs between desired and live.

    ``patch`` is an RFC 6902 JSON patch turning normalized live into normalized desired (for
    Missing a single ``add`` of the whole object at ``""``, for Extraneous a single ``remove``);
    ``unified`` is a unified diff of the normalized objects as YAML; ``changed_paths`` are the
    JSON pointers the patch touches. All three are empty when Synced, and Secret values in them
    are masked. ``error`` explains an ``Unknown`` status.
    """

    key: ResourceKey
    status: SyncStatus
    patch: list[dict[str, Any]] = field(default_factory=list)
    unified: str = ""
    changed_paths: tuple[str, ...] = ()
    error: str | None = None


def diff_resource(
    key: ResourceKey,
    desired: dict[str, Any] | None,
    live: dict[str, Any] | None,
    *,
    mask_scope: str,
    ignore: Sequence[IgnoreRule] = (),
    desired_is_dry_run: bool = True,
    sides: tuple[str, str] = ("live", "desired"),
) -> ResourceDiff:
    """Compare ``desired`` with ``live`` after normalizing both.

    ``desired`` None means the resource is no longer wanted (Extraneous if live exists);
    ``live`` None means it does not exist (Missing). Both None is trivially Synced.
    ``managers`` ignore rules read ownership from the live object's ``managedFields`` and apply
    it to both sides. ``sides`` names the two in the unified diff's file headers (the history
    diff compares two revisions' renders: ``from`` as live, ``to`` as desired). ``mask_scope``
    is the Application's ``namespace/name``, the context of its Secret masks.
    """
    rules = [rule for rule in ignore if rule.matches(key)]
    managed_fields = _managed_fields(live)
    try:
        desired_n = (
            None if desired is None else normalize_matched(desired, key, rules, managed_fields)
        )
        live_n = None if live is None else normalize_matched(live, key, rules, managed_fields)
        if desired_n is None:
            if live_n is None:
                return ResourceDiff(key, SyncStatus.SYNCED)
            check_bounds(live_n)
            return extraneous(key, _shown(render(live_n), mask_scope), sides)
        if live_n is None:
            check_bounds(desired_n)
            return _missing(key, _shown(render(desired_n), mask_scope), sides)
        live_n = _without_undeclared_owners(desired_n, live_n)
        changes = changes_between(desired_n, live_n, subset=not desired_is_dry_run)
    except ObjectTooComplex as exc:
        return ResourceDiff(key, SyncStatus.UNKNOWN, error=str(exc))
    if not changes:
        return ResourceDiff(key, SyncStatus.SYNCED)

    subset = not desired_is_dry_run
    desired_shown = _shown(render(desired_n), mask_scope)
    live_shown = _shown(render(live_n, desired_n, subset=subset), mask_scope)
    patch: list[dict[str, Any]] = []
    for op, tokens in changes:
        operation: dict[str, Any] = {"op": op, "path": format_pointer(tokens)}
        if op != "remove":
            operation["value"] = value_at(desired_shown, tokens)
        patch.append(operation)
    return ResourceDiff(
        key,
        SyncStatus.OUT_OF_SYNC,
        patch=patch,
        unified=_unified(key, live_shown, desired_shown, sides),
        changed_paths=tuple(operation["path"] for operation in patch),
    )


def _missing(key: ResourceKey, shown: Any, sides: tuple[str, str]) -> ResourceDiff:
    """The diff of a resource not live; ``shown`` is desired, rendered and masked."""
    return ResourceDiff(
        key,
        SyncStatus.MISSING,
        patch=[{"op": "add", "path": WHOLE_OBJECT, "value": shown}],
        unified=_unified(key, None, shown, sides),
        changed_paths=(WHOLE_OBJECT,),
    )


def extraneous(
    key: ResourceKey, shown: Any | None, sides: tuple[str, str] = ("live", "desired")
) -> ResourceDiff:
    """The diff of a resource no longer desired; ``shown`` is live, rendered and masked (None
    when it was not looked up)."""
    return ResourceDiff(
        key,
        SyncStatus.EXTRANEOUS,
        patch=[{"op": "remove", "path": WHOLE_OBJECT}],
        unified=_unified(key, shown, None, sides),
        changed_paths=(WHOLE_OBJECT,),
    )


def _managed_fields(live: dict[str, Any] | None) -> Any:
    meta = None if live is None else live.get("metadata")
    return meta.get("managedFields") if isinstance(meta, dict) else None


def _without_undeclared_owners(desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """Drop live ``ownerReferences`` when desired declares none: they were set by whoever adopted
    the object (a controller, a garbage-collection policy), not by Git."""
    d_meta = desired.get("metadata")
    l_meta = live.get("metadata")
    if not isinstance(l_meta, dict) or "ownerReferences" not in l_meta:
        return live
    if isinstance(d_meta, dict) and "ownerReferences" in d_meta:
        return live
    return {**live, "metadata": {k: v for k, v in l_meta.items() if k != "ownerReferences"}}


def _shown(obj: Any, mask_scope: str) -> Any:
    """Mask a rendered object if it is a Secret, for the diffs of the app ``mask_scope``."""
    if isinstance(obj, dict) and is_secret(obj):
        return mask_secret(obj, scope=mask_scope)
    return obj


class _DiffDumper(_BaseDumper):
    """YAML for diffs: multi-line strings as literal blocks, so a changed line shows as one."""


def _represent_str(dumper: _DiffDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_DiffDumper.add_representer(str, _represent_str)


def _dump(obj: Any) -> list[str]:
    if obj is None:
        return []
    text = yaml.dump(
        obj,
        Dumper=_DiffDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )
    return text.splitlines(keepends=True)


def _unified(
    key: ResourceKey, live: Any, desired: Any, sides: tuple[str, str] = ("live", "desired")
) -> str:
    return "".join(
        difflib.unified_diff(
            _dump(live), _dump(desired), fromfile=f"{sides[0]}/{key}", tofile=f"{sides[1]}/{key}"
        )
    )
