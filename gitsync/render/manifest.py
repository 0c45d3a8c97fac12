"""``RenderedManifest`` and the check that turns parsed documents into manifests.

Every source type (plain files, kustomize output, Helm output) ends in the same function, so the
rules are stated once: ``kind: List`` (and any ``*List`` kind carrying ``items``) is flattened the
way kubectl does, and every object must be a mapping with ``apiVersion``, ``kind`` and
``metadata.name`` - otherwise a ``RenderError`` names the file, the document number and the line,
because an object without an identity cannot be diffed, applied or pruned. The one exception is a
hook (``gitsync.render.hooks``): it is created anew on each sync, so ``metadata.generateName`` is
enough; its key then carries the generateName prefix as its name. A hook annotation with an
unknown phase or policy is a ``RenderError`` too.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
from dataclasses import dataclass
from typing import Any

from gitsync.model import ResourceKey
from gitsync.render.errors import LimitExceededError, RenderError
from gitsync.render.hooks import HookSpecError, generate_name, hook_spec

HOOK_ANNOTATION = "helm.sh/hook"

# what YAML (and JSON) loading produces besides dicts and lists, and needs no copy
_IMMUTABLE = (str, int, float, bool, type(None), bytes, datetime.date, datetime.datetime)


def copy_object(value: Any) -> Any:
    """A copy of a parsed object: dicts and lists copied at every depth, immutable leaves shared.

    Several times cheaper than ``copy.deepcopy`` (no memo, no dispatch), which matters because
    every compare copies every rendered object; anything unusual (a set from ``!!set``) still
    goes through ``deepcopy``."""
    if isinstance(value, dict):
        return {k: copy_object(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_object(v) for v in value]
    if isinstance(value, _IMMUTABLE):
        return value
    return copy.deepcopy(value)


@dataclass(frozen=True)
class RenderedManifest:
    """One desired object. ``source`` is the repo-relative file, ``helm:<template path>`` or
    ``kustomize``; ``hook`` is the Helm hook annotation value (``"test"``, ``"pre-install"``)."""

    key: ResourceKey
    obj: dict[str, Any]
    source: str
    hook: str | None = None


def _missing_identity(obj: dict[str, Any]) -> str | None:
    if not isinstance(obj.get("apiVersion"), str) or not obj.get("apiVersion"):
        return "apiVersion"
    if not isinstance(obj.get("kind"), str) or not obj.get("kind"):
        return "kind"
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return "metadata"
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return "metadata.name"
    return None


def _is_list(obj: dict[str, Any]) -> bool:
    kind = obj.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list)


def to_manifests(
    documents: list[tuple[int, int, dict[str, Any]]],
    *,
    source: str,
    max_documents: int,
    already: int = 0,
) -> list[RenderedManifest]:
    """Validate ``(document_index, line, mapping)`` triples and flatten Lists.

    ``already`` is how many manifests the render has produced so far, for the document limit.
    """
    out: list[RenderedManifest] = []
    for index, line, doc in documents:
        if _is_list(doc):
            items: list[tuple[str, Any]] = [
                (f"document {index} item {i}", item) for i, item in enumerate(doc["items"], 1)
            ]
        else:
            items = [(f"document {index}", doc)]
        for where, obj in items:
            if not isinstance(obj, dict):
                raise RenderError(f"{where} is not a mapping", source=source, line=line)
            missing = _missing_identity(obj)
            try:
                hook_declared = hook_spec(obj) is not None
            except HookSpecError as exc:
                raise RenderError(f"{where}: {exc}", source=source, line=line) from None
            generated = generate_name(obj) if missing == "metadata.name" else ""
            if generated and not hook_declared:
                raise RenderError(
                    f"{where} has metadata.generateName but is not a hook: a main resource needs "
                    "a stable metadata.name to be compared, tracked and pruned (generateName is "
                    "for hooks, which are created anew on each sync)",
                    source=source,
                    line=line,
                )
            if missing is not None and not generated:
                raise RenderError(
                    f"{where} has no {missing} (every object needs apiVersion, kind and "
                    "metadata.name)",
                    source=source,
                    line=line,
                )
            if already + len(out) >= max_documents:
                raise LimitExceededError(
                    f"more than {max_documents} objects", source=source, line=line
                )
            annotations = obj["metadata"].get("annotations")
            hook = annotations.get(HOOK_ANNOTATION) if isinstance(annotations, dict) else None
            key = ResourceKey.of(obj)
            if generated:
                key = dataclasses.replace(key, name=generated)
            out.append(
                RenderedManifest(
                    key=key,
                    obj=obj,
                    source=source,
                    hook=str(hook) if hook is not None else None,
                )
            )
    return out
