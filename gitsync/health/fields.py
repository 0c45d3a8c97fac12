"""Typed reads from a live object, failing in one well-known way on odd input.

Live objects are plain dicts decoded from JSON, so any field can hold anything. Health checks read
fields only through these functions: a missing field yields the Kubernetes default, a field of the
wrong type raises ``MalformedObject``, which ``assess`` turns into an Unknown health with the
message. That keeps every check free of ``isinstance`` noise and means odd input can never escape
as a ``TypeError`` or ``KeyError`` from deep inside a check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class MalformedObject(ValueError):
    """A field has a value of the wrong type; the message names the field and the value."""


def _describe(path: tuple[str, ...]) -> str:
    return ".".join(path) if path else "the object"


def _walk(obj: Mapping[str, Any], path: tuple[str, ...]) -> object:
    """The value at ``path``, or None when any step is missing or null."""
    value: object = obj
    for depth, key in enumerate(path):
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise MalformedObject(f"{_describe(path[:depth])} is not an object: {value!r:.80}")
        value = value.get(key)
    return value


def as_mapping(value: object) -> Mapping[str, Any] | None:
    """``value`` if it is a JSON object, else None (for checks at the entry point)."""
    return value if isinstance(value, Mapping) else None


def mapping(obj: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    """The object at ``path``; an absent or null field reads as an empty object."""
    value = _walk(obj, path)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedObject(f"{_describe(path)} is not an object: {value!r:.80}")
    return value


def optional_integer(obj: Mapping[str, Any], *path: str) -> int | None:
    """The integer at ``path``, or None when absent (``True`` is not an integer here)."""
    value = _walk(obj, path)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedObject(f"{_describe(path)} is not an integer: {value!r:.80}")
    return value


def integer(obj: Mapping[str, Any], *path: str, default: int = 0) -> int:
    """The integer at ``path``, or ``default`` when absent."""
    value = optional_integer(obj, *path)
    return default if value is None else value


def string(obj: Mapping[str, Any], *path: str, default: str = "") -> str:
    """The string at ``path``, or ``default`` when absent."""
    value = _walk(obj, path)
    if value is None:
        return default
    if not isinstance(value, str):
        raise MalformedObject(f"{_describe(path)} is not a string: {value!r:.80}")
    return value


def boolean(obj: Mapping[str, Any], *path: str, default: bool = False) -> bool:
    """The boolean at ``path``, or ``default`` when absent."""
    value = _walk(obj, path)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MalformedObject(f"{_describe(path)} is not a boolean: {value!r:.80}")
    return value


def objects(obj: Mapping[str, Any], *path: str) -> list[Mapping[str, Any]]:
    """The list of objects at ``path`` (e.g. conditions); absent reads as an empty list."""
    value = _walk(obj, path)
    if value is None:
        return []
    return object_list(value, _describe(path))


def object_list(value: object, what: str) -> list[Mapping[str, Any]]:
    """``value`` checked to be a list of JSON objects; ``what`` names it in the error."""
    if not isinstance(value, list):
        raise MalformedObject(f"{what} is not a list: {value!r:.80}")
    items: list[Mapping[str, Any]] = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise MalformedObject(f"{what}[{index}] is not an object: {item!r:.80}")
        items.append(item)
    return items


def lenient_integer(obj: Mapping[str, Any], *path: str) -> int | None:
    """The integer at ``path``, read the way a custom resource may write it, or None.

    For fields of kinds gitsync does not know, where tolerance beats strictness: a decimal string
    counts as its number (Argo Rollouts writes ``observedGeneration: "3"``) and anything else - a
    hash, a boolean, an object - as absent, instead of making the whole object Unknown.
    """
    try:
        value = _walk(obj, path)
    except MalformedObject:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        # 19 digits hold any int64; longer strings are junk (and int() of a huge one is slow).
        if text.isascii() and text.isdigit() and len(text) <= 19:
            return int(text)
    return None


def generation_lag(obj: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(generation, observedGeneration)`` when the controller has not yet seen the latest spec.

    Every workload controller writes ``status.observedGeneration`` after acting on a spec; until it
    catches up with ``metadata.generation`` the rest of the status describes an older spec.
    """
    generation = integer(obj, "metadata", "generation")
    observed = integer(obj, "status", "observedGeneration")
    return (generation, observed) if generation > observed else None


@dataclass(frozen=True, slots=True)
class ReplicaCounts:
    """What a Deployment-like controller reports about its pods, next to what the spec asks."""

    desired: int
    replicas: int
    updated: int
    available: int


def replica_counts(obj: Mapping[str, Any]) -> ReplicaCounts:
    """``spec.replicas`` (1 when unset, the API default) and the status counts of pods in total,
    on the current template and available - shared by Deployments and Argo Rollouts."""
    return ReplicaCounts(
        desired=integer(obj, "spec", "replicas", default=1),
        replicas=integer(obj, "status", "replicas"),
        updated=integer(obj, "status", "updatedReplicas"),
        available=integer(obj, "status", "availableReplicas"),
    )
