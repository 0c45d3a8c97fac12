"""Health checks declared as data: CEL expressions per API group and kind. Pure.

The shape is Flux's ``healthCheckExprs``, so entries written for Flux work unchanged::

    - apiVersion: example.com/v1       # the group is what matches; the version is not compared
      kind: Widget                     # or "*": every kind of that group (not the core group)
      inProgress: "status.phase == 'Provisioning'"                        # optional
      failed: "status.conditions.exists(c, c.type == 'Ready' && c.status == 'False')"  # optional
      current: "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')"  # required

Evaluated as Flux's kustomize-controller does (RFC 0009): a ``status.observedGeneration`` that
differs from ``metadata.generation`` is Progressing before any expression runs; then
``inProgress`` (-> Progressing), ``failed`` (-> Degraded) and ``current`` (-> Healthy), in that
order, the first true one decides; none true is Progressing. An expression that cannot give a
boolean (a missing field, a type mismatch) or runs out of its budget (``gitsync.health.cel``) is
Unknown with the error - where Flux fails the health check with that error. The object's
top-level fields are the variables (``metadata``, ``spec``, ``status``, ``data``...), as in Flux;
unlike Flux an absent ``metadata``, ``spec`` or ``status`` is bound as an empty map, so a check
can say ``has(status.conditions)`` of an object its controller has not touched yet instead of
erroring on it.

Where checks come from, and which wins: the operator's (``--health-checks FILE``, labelled
ConfigMaps) override everything for their kinds, gitsync's own per-kind code checks included -
the operator declared them on purpose, as Argo CD's ``resource.customizations.health`` may. The
bundled checks (``bundled_checks.yaml``, for popular CRDs) apply to kinds gitsync has no code
check for. An exact kind wins over ``kind: "*"`` of its group.

The operator's checks are installed process-wide (``install``), like Argo CD's settings: health is
assessed in many places (compare, sync waves, hooks, rollouts) from one live object, and the
checks are configuration of the process, not of a call. ``assess(obj, checks=...)`` takes an
explicit set for tests and tools.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml

from gitsync.errors import TerminalError
from gitsync.health.assessment import Health
from gitsync.health.cel import CelError, Expression, compile_expression
from gitsync.health.conditions import Condition, find, parse_conditions
from gitsync.model import HealthStatus

MAX_TEXT_BYTES = 256 * 1024
MAX_ENTRIES = 500
MAX_YAML_DEPTH = 16
MAX_REMEMBERED_VERDICTS = 4096  # per check; forgotten all at once when full
ANY_KIND = "*"
FIELDS = ("apiVersion", "kind", "current", "inProgress", "failed")
# (field, the health it gives when true), in Flux's order
_VERDICTS = (
    ("inProgress", HealthStatus.PROGRESSING),
    ("failed", HealthStatus.DEGRADED),
    ("current", HealthStatus.HEALTHY),
)
_DEFAULT_VARIABLES = ("metadata", "spec", "status")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECIMAL = re.compile(r"[0-9]{1,18}")
_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue", "else"})
BUNDLED_SOURCE = "bundled_checks.yaml"


class HealthCheckError(TerminalError):
    """A health-check file or entry that cannot be used; the message names where and which field."""


@dataclass(frozen=True)
class CelHealthCheck:
    """The expressions for one group/kind, and where they were declared (for messages)."""

    group: str
    kind: str
    source: str
    expressions: tuple[tuple[str, Expression], ...]  # (field, expression) in evaluation order
    # Verdicts by (uid, resourceVersion): cel-python takes milliseconds per check, and every
    # reconcile assesses every object again although most have not changed since.
    _verdicts: dict[tuple[str, str], Health] = field(
        default_factory=dict, repr=False, compare=False
    )

    def assess(self, obj: Mapping[str, Any]) -> Health:
        metadata = obj.get("metadata")
        version = _version_of(metadata) if isinstance(metadata, Mapping) else None
        if version is not None and (known := self._verdicts.get(version)) is not None:
            return known
        health = self._assess(obj)
        if version is not None:
            if len(self._verdicts) >= MAX_REMEMBERED_VERDICTS:
                self._verdicts.clear()
            self._verdicts[version] = health
        return health

    def _assess(self, obj: Mapping[str, Any]) -> Health:
        stale = _generation_lag(obj)
        if stale is not None:
            return Health(
                HealthStatus.PROGRESSING,
                f"Waiting for the controller to observe generation {stale[0]} "
                f"(observed {stale[1]})",
            )
        variables = _variables(obj)
        for name, expression in self.expressions:
            try:
                verdict = expression.evaluate(variables)
            except CelError as exc:
                return Health(
                    HealthStatus.UNKNOWN,
                    f"{name} of {self.source} could not be evaluated: {exc}",
                )
            if verdict:
                status = dict(_VERDICTS)[name]
                return Health(status, _message(f"{name} is true ({self.source})", obj))
        return Health(
            HealthStatus.PROGRESSING, _message(f"no expression is true ({self.source})", obj)
        )


def _version_of(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(uid, resourceVersion)``: what the API server changes whenever the object changes."""
    uid, version = metadata.get("uid"), metadata.get("resourceVersion")
    if isinstance(uid, str) and uid and isinstance(version, str) and version:
        return uid, version
    return None


def _generation_lag(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """Flux's rule: an ``observedGeneration`` present and different from ``generation``. Either may
    be a number or a numeric string (some CRDs write strings); anything else is not compared."""
    status = obj.get("status")
    metadata = obj.get("metadata")
    if not isinstance(status, Mapping) or not isinstance(metadata, Mapping):
        return None
    observed, generation = status.get("observedGeneration"), metadata.get("generation")
    if _as_int(observed) is None or _as_int(generation) is None:
        return None
    return None if _as_int(observed) == _as_int(generation) else (str(generation), str(observed))


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _variables(obj: Mapping[str, Any]) -> dict[str, object]:
    variables: dict[str, object] = {name: {} for name in _DEFAULT_VARIABLES}
    for key, value in obj.items():
        if isinstance(key, str) and _IDENTIFIER.fullmatch(key) and key not in _RESERVED:
            variables[key] = {} if value is None and key in _DEFAULT_VARIABLES else value
    return variables


def _message(verdict: str, obj: Mapping[str, Any]) -> str:
    """The verdict, after what the object's conditions say: a Ready (else any) condition that is
    not True and says why in words, or else what Ready says."""
    status = obj.get("status")
    entries = status.get("conditions") if isinstance(status, Mapping) else None
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        return verdict
    try:
        conditions = parse_conditions(entries)
    except ValueError:
        return verdict
    ready = find(conditions, "Ready")
    worded = [c for c in conditions if not c.is_true and c.message]
    if ready is not None and ready in worded:
        chosen: Condition | None = ready
    elif worded:
        chosen = worded[0]
    else:
        chosen = ready if ready is not None and (ready.reason or ready.message) else None
    return f"{chosen.explanation()} - {verdict}" if chosen is not None else verdict


# -- loading -------------------------------------------------------------------------------------


def parse_checks(data: object, source: str) -> tuple[list[CelHealthCheck], list[str]]:
    """The valid entries of a list (YAML already parsed), and a problem per invalid one.

    A problem names ``source``, the entry (1-based, with its kind when it has one) and the
    field. Invalid entries are left out; the others stand.
    """
    if data is None:
        return [], []
    if not isinstance(data, list):
        return [], [f"{source}: expected a list of health checks, got {_yaml_type(data)}"]
    if len(data) > MAX_ENTRIES:
        return [], [f"{source}: more than {MAX_ENTRIES} health checks"]
    checks: list[CelHealthCheck] = []
    problems: list[str] = []
    for index, entry in enumerate(data, start=1):
        try:
            checks.append(_parse_entry(entry, f"{source} entry {index}"))
        except HealthCheckError as exc:
            problems.append(str(exc))
    return checks, problems


def _parse_entry(entry: object, where: str) -> CelHealthCheck:
    if not isinstance(entry, Mapping):
        raise HealthCheckError(f"{where}: expected a mapping, got {_yaml_type(entry)}")
    source = where
    kind = entry.get("kind")
    if isinstance(kind, str) and kind:
        where = f"{where} ({kind})"
    unknown = sorted(str(k) for k in entry if k not in FIELDS)
    if unknown:
        raise HealthCheckError(
            f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}"
        )
    api_version = entry.get("apiVersion")
    if not isinstance(api_version, str) or not api_version.strip() or api_version.count("/") > 1:
        raise HealthCheckError(f"{where}: apiVersion must be 'group/version' or 'version'")
    group = api_version.rpartition("/")[0]
    if not isinstance(kind, str) or not kind:
        raise HealthCheckError(f"{where}: kind must be a non-empty string")
    if kind == ANY_KIND and not group:
        raise HealthCheckError(
            f"{where}: kind '*' needs an API group (it would cover every core kind)"
        )
    if not group and kind == "Secret":
        raise HealthCheckError(
            f"{where}: checks for Secrets are refused (an evaluation error could quote a value "
            "into the health message)"
        )
    if entry.get("current") is None:
        raise HealthCheckError(f"{where}: current is required")
    expressions: list[tuple[str, Expression]] = []
    for name, _ in _VERDICTS:
        text = entry.get(name)
        if text is None:
            continue
        if not isinstance(text, str):
            raise HealthCheckError(f"{where}: {name} must be a string (a CEL expression)")
        try:
            expressions.append((name, compile_expression(text)))
        except CelError as exc:
            raise HealthCheckError(f"{where}: {name}: {exc}") from None
    return CelHealthCheck(group, kind, source, tuple(expressions))


def load_text(text: str | bytes, source: str) -> tuple[list[CelHealthCheck], list[str]]:
    """``parse_checks`` of a YAML document, read with limits: ``MAX_TEXT_BYTES``, no aliases
    (so no alias bombs), nesting at most ``MAX_YAML_DEPTH``."""
    if len(text) > MAX_TEXT_BYTES:
        return [], [f"{source}: larger than {MAX_TEXT_BYTES} bytes"]
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                return [], [f"{source}: YAML aliases (*name) are not supported here"]
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    return [], [f"{source}: nested deeper than {MAX_YAML_DEPTH} levels"]
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [], [f"{source}: not valid YAML: {first[:200]}"]
    return parse_checks(data, source)


def load_strict(text: str | bytes, source: str) -> list[CelHealthCheck]:
    """``load_text`` for a file the operator names: any problem is an error."""
    checks, problems = load_text(text, source)
    if problems:
        raise HealthCheckError("; ".join(problems[:5]))
    return checks


def _yaml_type(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


# -- the set in force ----------------------------------------------------------------------------

Key = tuple[str, str]


@dataclass(frozen=True)
class CustomChecks:
    """The operator's checks over the bundled ones; ``problems`` are the entries left out.

    ``bundled`` None means the shipped ones, compiled on first use (a CLI that only meets
    Deployments never starts the CEL parser).
    """

    user: Mapping[Key, CelHealthCheck] = field(default_factory=lambda: MappingProxyType({}))
    bundled: Mapping[Key, CelHealthCheck] | None = None
    problems: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, user: Iterable[CelHealthCheck], bundled: Iterable[CelHealthCheck] | None = None
    ) -> CustomChecks:
        """The set from checks in priority order: of two for one group/kind, the first stands
        and the second is a problem naming both."""
        chosen: dict[Key, CelHealthCheck] = {}
        problems: list[str] = []
        for check in user:
            key = (check.group, check.kind)
            if key in chosen:
                problems.append(
                    f"{check.source}: ignored, {key[1]} is already checked by {chosen[key].source}"
                )
                continue
            chosen[key] = check
        return cls(
            MappingProxyType(chosen),
            None if bundled is None else MappingProxyType({(c.group, c.kind): c for c in bundled}),
            tuple(problems),
        )

    def user_check(self, group: str, kind: str) -> CelHealthCheck | None:
        return self.user.get((group, kind)) or self.user.get((group, ANY_KIND))

    def bundled_check(self, group: str, kind: str) -> CelHealthCheck | None:
        if self.bundled is not None:
            index = self.bundled
        elif group in _bundled_groups():
            index = _bundled_index()
        else:
            return None
        return index.get((group, kind)) or index.get((group, ANY_KIND))


def _bundled_text() -> str:
    return importlib.resources.files("gitsync.health").joinpath(BUNDLED_SOURCE).read_text()


@functools.cache
def _bundled_groups() -> frozenset[str]:
    """The API groups the bundled checks cover, from the YAML alone (nothing compiled)."""
    entries = yaml.safe_load(_bundled_text())
    return frozenset(str(e["apiVersion"]).rpartition("/")[0] for e in entries)


@functools.cache
def bundled_checks() -> tuple[CelHealthCheck, ...]:
    """The checks shipped with gitsync (``bundled_checks.yaml``); a problem there is a bug."""
    return tuple(load_strict(_bundled_text(), BUNDLED_SOURCE))


@functools.cache
def _bundled_index() -> Mapping[Key, CelHealthCheck]:
    return MappingProxyType({(c.group, c.kind): c for c in bundled_checks()})


_installed: CustomChecks | None = None


def install(checks: Sequence[CelHealthCheck]) -> CustomChecks:
    """Make ``checks`` (the operator's, in priority order) the ones ``assess`` uses from now
    on, over the bundled ones. One reference swap: a concurrent ``assess`` sees the old set or
    the new, never a mixture."""
    global _installed  # noqa: PLW0603 - process-wide configuration, see the module doc
    _installed = CustomChecks.of(checks)
    return _installed


_BUNDLED_ONLY = CustomChecks()


def installed() -> CustomChecks:
    """The set in force: the last ``install``, or the bundled checks alone."""
    current = _installed
    return current if current is not None else _BUNDLED_ONLY
