"""Sync options: Argo CD's ``Name=value`` switches, for an Application and for one resource.

Repositories written for Argo CD carry them, so gitsync reads the same names at the same two
levels - ``spec.syncPolicy.syncOptions`` and the annotation ``argocd.argoproj.io/sync-options``
(or ``gitsync.dev/sync-options``), comma-separated - and Flux's
``kustomize.toolkit.fluxcd.io/force: enabled`` as ``Force=true``. A resource's option overrides
the app's (Argo CD's rule).

Every option Argo CD documents is in ``OPTIONS``: implemented, or refused with the reason gitsync
cannot honour it. Nothing is accepted and then ignored - an option that silently did nothing
would let a team believe, say, that a PVC survives the app's deletion when it does not. A
refusal is a ``SyncOptionError`` that names the option (and where it was written); the
Application's parser turns it into a spec error, the syncer into the object's SyncFailed.

Pure: no I/O, so the parsing and the precedence are table-tested
(``tests/unit/test_sync_options.py``). It sits below ``gitsync.application`` in the layers
because both the spec parser and the syncer read it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

RESOURCE_ANNOTATIONS = ("gitsync.dev/sync-options", "argocd.argoproj.io/sync-options")
FLUX_FORCE_ANNOTATION = "kustomize.toolkit.fluxcd.io/force"
PRUNE_ANNOTATION = "gitsync.dev/prune"
"""gitsync's first spelling of ``Prune=false`` (``gitsync.dev/prune: "false"``), still read."""
MAX_ANNOTATION_CHARS = 1024
"""An annotation longer than this is refused before it is split (a Git-controlled input)."""


class Level(enum.StrEnum):
    APP = "app"
    RESOURCE = "resource"


class SyncOptionError(ValueError):
    """An option gitsync does not know, refuses, or whose value is wrong; ``where`` names the
    field or annotation it came from."""

    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


BOOL = ("true", "false")


@dataclass(frozen=True)
class OptionSpec:
    levels: frozenset[Level]
    values: tuple[str, ...] = BOOL
    refused: Mapping[str, str] = field(default_factory=dict)
    """value -> why gitsync refuses it (an option refused whatever its value uses ``"*"``)."""


_BOTH = frozenset({Level.APP, Level.RESOURCE})
_APP = frozenset({Level.APP})
_RESOURCE = frozenset({Level.RESOURCE})
_NO_CONFIRM = (
    "confirmation before a deletion is not implemented (use {name}=false and delete by hand)"
)

OPTIONS: Mapping[str, OptionSpec] = {
    "Prune": OptionSpec(
        _BOTH,
        ("true", "false", "confirm"),
        {"confirm": _NO_CONFIRM.format(name="Prune")},
    ),
    "Delete": OptionSpec(
        _BOTH,
        ("true", "false", "confirm"),
        {"confirm": _NO_CONFIRM.format(name="Delete")},
    ),
    "Validate": OptionSpec(_BOTH),
    "SkipDryRunOnMissingResource": OptionSpec(_BOTH),
    "PruneLast": OptionSpec(_BOTH),
    "Replace": OptionSpec(_BOTH),
    "Force": OptionSpec(_RESOURCE),
    "ServerSideApply": OptionSpec(
        _BOTH,
        refused={
            "false": "gitsync always applies server-side; there is no client-side apply "
            "(and no last-applied annotation) to fall back to"
        },
    ),
    "RespectIgnoreDifferences": OptionSpec(_BOTH),
    "CreateNamespace": OptionSpec(_APP),
    "ApplyOutOfSyncOnly": OptionSpec(_APP),
    "FailOnSharedResource": OptionSpec(_APP),
    "PrunePropagationPolicy": OptionSpec(_APP, ("foreground", "background", "orphan")),
    "ClientSideApplyMigration": OptionSpec(
        _APP,
        refused={
            "true": "gitsync never applied client-side, so it has no client-side field "
            "managers to migrate (ClientSideApplyMigration=false is what it does)"
        },
    ),
}
"""Every sync option Argo CD documents, where it may be written and which values it takes."""


class PropagationPolicy(enum.StrEnum):
    """``PrunePropagationPolicy``: how a prune deletes an object's dependents."""

    FOREGROUND = "foreground"
    BACKGROUND = "background"
    ORPHAN = "orphan"

    @property
    def api_value(self) -> str:
        """The DeleteOptions spelling (``Foreground``)."""
        return self.value.capitalize()


@dataclass(frozen=True)
class SyncOptions:
    """Options as written at one level (name -> value); an absent name is "not set here"."""

    values: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def flag(self, name: str) -> bool | None:
        """True/False when set, None when not."""
        value = self.values.get(name)
        return None if value is None else value == "true"

    def names_true(self) -> frozenset[str]:
        return frozenset(n for n, v in self.values.items() if v == "true")


def parse_option(text: object, where: str, level: Level) -> tuple[str, str]:
    """One ``Name=value``: checked against ``OPTIONS`` for ``level``."""
    if not isinstance(text, str) or "=" not in text:
        raise SyncOptionError(where, f"expected 'Name=value', got {text!r}")
    name, _, value = (part.strip() for part in text.partition("="))
    spec = OPTIONS.get(name)
    if spec is None:
        known = ", ".join(sorted(n for n, s in OPTIONS.items() if level in s.levels))
        raise SyncOptionError(where, f"unknown sync option {name!r} (known: {known})")
    if level not in spec.levels:
        other = "an Application" if level == Level.RESOURCE else "a resource's annotation"
        raise SyncOptionError(where, f"sync option {name!r} is only valid on {other}")
    if value not in spec.values:
        raise SyncOptionError(
            where, f"sync option {name}: expected one of {', '.join(spec.values)}, got {value!r}"
        )
    why = spec.refused.get(value) or spec.refused.get("*")
    if why:
        raise SyncOptionError(where, f"sync option {name}={value} is not supported: {why}")
    return name, value


def parse_app_options(items: Iterable[object], path: str) -> SyncOptions:
    """``spec.syncPolicy.syncOptions``; ``path`` names the list for errors."""
    values: dict[str, str] = {}
    for i, text in enumerate(items):
        name, value = parse_option(text, f"{path}[{i}]", Level.APP)
        values[name] = value
    return SyncOptions(values)


def annotation_parts(
    annotations: Mapping[str, Any], names: tuple[str, ...]
) -> Iterator[tuple[str, str]]:
    """``(where, part)`` for each comma-separated part of the annotations ``names``, each
    annotation refused (naming it) when it is not a string of at most
    ``MAX_ANNOTATION_CHARS``."""
    for annotation in names:
        text = annotations.get(annotation)
        if text is None:
            continue
        where = f"annotation {annotation}"
        if not isinstance(text, str) or len(text) > MAX_ANNOTATION_CHARS:
            raise SyncOptionError(
                where, f"expected a string of at most {MAX_ANNOTATION_CHARS} chars"
            )
        for part in filter(None, (p.strip() for p in text.split(","))):
            yield where, part


def parse_resource_options(obj: Mapping[str, Any]) -> SyncOptions:
    """The options a manifest (or live object) declares in its annotations: both prefixes
    (set twice, they must agree), Flux's force annotation and ``gitsync.dev/prune``."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, Mapping):
        return SyncOptions()
    values: dict[str, str] = {}
    for where, part in annotation_parts(annotations, RESOURCE_ANNOTATIONS):
        name, value = parse_option(part, where, Level.RESOURCE)
        if values.get(name, value) != value:
            raise SyncOptionError(where, f"sync option {name} is set to two different values")
        values[name] = value
    if str(annotations.get(PRUNE_ANNOTATION, "")).lower() == "false":
        values.setdefault("Prune", "false")
    flux = annotations.get(FLUX_FORCE_ANNOTATION)
    if flux is not None:
        if flux not in ("enabled", "disabled"):
            raise SyncOptionError(
                f"annotation {FLUX_FORCE_ANNOTATION}",
                f"expected enabled or disabled, got {str(flux)[:64]!r}",
            )
        if flux == "enabled":
            values.setdefault("Force", "true")
    return SyncOptions(values)


def effective(resource: SyncOptions, app: SyncOptions, name: str) -> str | None:
    """The value that holds for one resource: its own, else the app's, else None."""
    own = resource.get(name)
    return own if own is not None else app.get(name)


def enabled(resource: SyncOptions, app: SyncOptions, name: str, *, default: bool = False) -> bool:
    value = effective(resource, app, name)
    return default if value is None else value == "true"


def _live_flag(live: Mapping[str, Any], app: SyncOptions, name: str, *, default: bool) -> bool:
    """``name`` for a live object (its annotation over the app's option); an annotation that
    does not parse counts as ``False`` - for Prune and Delete: when in doubt, never delete."""
    try:
        own = parse_resource_options(live)
    except SyncOptionError:
        return False
    return enabled(own, app, name, default=default)


def deletion_allowed(live: Mapping[str, Any], app: SyncOptions) -> bool:
    """Whether deleting the Application may delete ``live`` (``Delete=false`` keeps it)."""
    return _live_flag(live, app, "Delete", default=True)


def prune_allowed(live: Mapping[str, Any], app: SyncOptions) -> bool:
    """Whether a sync may prune ``live`` once it left Git (``Prune=false`` keeps it)."""
    return _live_flag(live, app, "Prune", default=True)


def prune_last(live: Mapping[str, Any], app: SyncOptions) -> bool:
    """Whether ``live`` is pruned after every wave (``PruneLast=true``)."""
    return _live_flag(live, app, "PruneLast", default=False)


# -- compare options ---------------------------------------------------------------------------

COMPARE_ANNOTATIONS = ("gitsync.dev/compare-options", "argocd.argoproj.io/compare-options")
IGNORE_EXTRANEOUS = "IgnoreExtraneous"
COMPARE_OPTIONS: Mapping[str, str] = {
    IGNORE_EXTRANEOUS: "",
    # gitsync always compares against the API server's server-side-apply dry run, so this is
    # what it does anyway; the opposite is a client-side diff it does not have.
    "ServerSideDiff=true": "",
    "ServerSideDiff=false": "gitsync has no client-side diff: it always compares against the "
    "API server's server-side-apply dry run",
    # the dry run passes through admission, so mutating webhooks always show in the compare
    "IncludeMutationWebhook=true": "",
    "IncludeMutationWebhook=false": "the server-side-apply dry run gitsync compares against "
    "always includes what mutating webhooks change",
}
"""Argo CD's compare options on a resource: "" means honoured, else why gitsync refuses it."""


def parse_compare_options(obj: Mapping[str, Any]) -> frozenset[str]:
    """The compare options a manifest declares (both prefixes), each checked against
    ``COMPARE_OPTIONS``; raises ``SyncOptionError`` naming the annotation and the option."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, Mapping):
        return frozenset()
    found: set[str] = set()
    for where, part in annotation_parts(annotations, COMPARE_ANNOTATIONS):
        why = COMPARE_OPTIONS.get(part)
        if why is None:
            known = ", ".join(COMPARE_OPTIONS)
            raise SyncOptionError(where, f"unknown compare option {part!r} (known: {known})")
        if why:
            raise SyncOptionError(where, f"compare option {part} is not supported: {why}")
        found.add(part)
    return frozenset(found)


def ignores_extraneous(live: Mapping[str, Any]) -> bool:
    """Whether a live object that Git no longer renders leaves the app Synced
    (``IgnoreExtraneous``, Argo CD's meaning). A live annotation gitsync cannot read counts as
    not set: the object then shows as extraneous, the safe side."""
    try:
        return IGNORE_EXTRANEOUS in parse_compare_options(live)
    except SyncOptionError:
        return False
