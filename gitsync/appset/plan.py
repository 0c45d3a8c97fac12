"""What a generation does to the Applications that exist: the decisions, as pure functions.

The rules (issue 18), each a branch here and a test in ``tests/unit/test_appset_plan.py``:

* a generated Application that does not exist is created (every policy);
* one that exists, is the set's own and differs is updated - unless the policy is
  ``create-only`` or ``create-delete``;
* an Application of the set that is no longer generated is deleted - only under
  ``create-delete`` and ``sync``, and never when the generation came back empty while the set
  still owns Applications, unless the set carries ``gitsync.dev/allow-empty-generation: "true"``
  (a repository emptied by mistake or a selector that stopped matching must not delete a fleet);
* an Application of the same name that the set does not own (its ``ownerReferences`` carry
  another UID, or none) is a conflict: left alone and reported, never adopted or overwritten.

A generation that made no Application at all is judged first (``empty_generation``): an
error on the set, unless the annotation allows it - so the empty-generation branch of ``plan``
is a second line, reached only with the annotation.

A failed generation never reaches this module: the caller stops at the error, so nothing is
deleted because a generator "looked empty". "Owned" is decided by the owner reference's UID, not
the label: a label anybody can write must not make an Application deletable by a set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gitsync.appset.generate import Generation
from gitsync.appset.spec import ALLOW_EMPTY_ANNOTATION, ApplicationsSync

HASH_ANNOTATION: Final = "gitsync.dev/application-set-hash"
"""A digest of what the set last wrote to an Application: a template change that only removes a
label or an annotation is still a difference."""


def with_hash(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``HASH_ANNOTATION`` set to the digest of the rest of it."""
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]
    meta = doc["metadata"]
    return {
        **doc,
        "metadata": {**meta, "annotations": {**meta["annotations"], HASH_ANNOTATION: digest}},
    }


def owned(live: Mapping[str, Any], owner_uid: str) -> bool:
    """Whether ``live`` is controlled by the set with ``owner_uid``."""
    refs = (live.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, Mapping) and r.get("uid") == owner_uid for r in refs)


def differs(desired: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Whether applying ``desired`` would change ``live``: its spec, or what the set wrote last
    (the hash annotation covers labels, annotations, finalizers and the owner reference)."""
    want = (desired.get("metadata") or {}).get("annotations") or {}
    have = (live.get("metadata") or {}).get("annotations") or {}
    return want.get(HASH_ANNOTATION) != have.get(HASH_ANNOTATION) or desired.get(
        "spec"
    ) != live.get("spec")


@dataclass
class Plan:
    """What to do, by Application name."""

    create: list[str] = field(default_factory=list)
    update: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # name -> why it is left as it is
    conflicts: dict[str, str] = field(default_factory=dict)  # name -> why it is not ours

    @property
    def writes(self) -> int:
        return len(self.create) + len(self.update) + len(self.delete)


def _decide(
    result: Plan,
    name: str,
    want: Mapping[str, Any],
    current: Mapping[str, Any] | None,
    *,
    owner_uid: str,
    policy: ApplicationsSync,
) -> None:
    """One generated Application: create, update, keep, or leave alone (and why)."""
    if current is None:
        result.create.append(name)
    elif not owned(current, owner_uid):
        result.conflicts[name] = (
            f"application {name!r} exists and is not owned by this ApplicationSet; it is left alone"
        )
    elif (current.get("metadata") or {}).get("deletionTimestamp"):
        result.held[name] = "being deleted; created again once it is gone"
    elif not differs(want, current):
        result.unchanged.append(name)
    elif policy.updates:
        result.update.append(name)
    else:
        result.held[name] = f"differs from the template; policy {policy.value} does not update"


def plan(
    desired: Mapping[str, Mapping[str, Any]],
    live: Mapping[str, Mapping[str, Any]],
    *,
    owner_uid: str,
    policy: ApplicationsSync,
    allow_empty: bool,
) -> Plan:
    """The decisions for one generation. ``live``: the namespace's Applications that carry the
    set's label or have a generated name."""
    result = Plan()
    for name in sorted(desired):
        _decide(result, name, desired[name], live.get(name), owner_uid=owner_uid, policy=policy)
    stale = sorted(n for n, obj in live.items() if n not in desired and owned(obj, owner_uid))
    stale = [n for n in stale if not (live[n].get("metadata") or {}).get("deletionTimestamp")]
    if not stale:
        return result
    if not policy.deletes:
        for name in stale:
            result.held[name] = f"no longer generated; policy {policy.value} does not delete"
    elif not desired and not allow_empty:
        for name in stale:
            result.held[name] = (
                "no longer generated, but the generation is empty: nothing is deleted unless the "
                'set has the annotation gitsync.dev/allow-empty-generation: "true"'
            )
    else:
        result.delete.extend(stale)
    return result


@dataclass(frozen=True)
class EmptyGeneration:
    """A generation that made no Application: ``allowed`` by the set's annotation, or an error
    on the set. ``message`` names every generator and how many parameter sets it gave."""

    message: str
    allowed: bool


def empty_generation(generated: Generation, *, allow_empty: bool) -> EmptyGeneration | None:
    """``None`` when the generation made Applications; else what the set's status says of it.
    No empty result is a success by default: a repository emptied by mistake or a list edited
    down to nothing looks the same as "no apps wanted" - only the annotation says the latter."""
    if generated.applications:
        return None
    gave = "; ".join(str(y) for y in generated.yields) or "no generators ran"
    if allow_empty:
        return EmptyGeneration(
            f'0 applications, allowed by the annotation {ALLOW_EMPTY_ANNOTATION}: "true" ({gave})',
            allowed=True,
        )
    return EmptyGeneration(
        f"the generators yield no applications: {gave}; if no application is intended, "
        f'annotate the set {ALLOW_EMPTY_ANNOTATION}: "true"',
        allowed=False,
    )
