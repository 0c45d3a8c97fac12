"""The ApplicationSet spec, parsed into types, with Argo CD's field names.

Only what gitsync implements is accepted: a field Argo CD knows but gitsync does not (the
``scmProvider``, ``pullRequest``, ``plugin`` and ``clusterDecisionResource`` generators, a
generator's ``selector``, ``templatePatch``, ``ignoreApplicationDifferences`` ...) is a
``SpecError`` naming it rather than ignored, so a set imported from Argo CD never silently
generates something else. ``strategy`` takes Argo CD's RollingSync (steps of
``matchExpressions`` with ``maxUpdate``) plus gitsync's ``pause`` (``gitsync.appset.rolling``).
The template itself is kept as data: its strings are rendered per parameter set
(``gitsync.appset.template``) and each result is then checked as an Application
(``gitsync.appset.generate``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gitsync.application import SpecError, validate_repo_path, validate_repo_url, validate_revision

MAX_GENERATOR_DEPTH: Final = 3
"""How deep matrix and merge generators may nest (Argo CD allows two levels)."""
MAX_GENERATORS: Final = 16
MAX_ROLLING_STEPS: Final = 16
DEFAULT_REQUEUE_SECONDS: Final = 180.0
"""How often a set is generated again without a trigger (Argo CD's default: 3 minutes)."""
ALLOW_EMPTY_ANNOTATION: Final = "gitsync.dev/allow-empty-generation"
"""``"true"`` on a set lets a generation that yields nothing delete what an earlier one made."""


class ApplicationsSync(enum.StrEnum):
    """Argo CD's ``syncPolicy.applicationsSync``: what a generation may do to existing apps."""

    CREATE_ONLY = "create-only"
    CREATE_UPDATE = "create-update"
    CREATE_DELETE = "create-delete"
    SYNC = "sync"

    @property
    def updates(self) -> bool:
        return self in (ApplicationsSync.CREATE_UPDATE, ApplicationsSync.SYNC)

    @property
    def deletes(self) -> bool:
        return self in (ApplicationsSync.CREATE_DELETE, ApplicationsSync.SYNC)


@dataclass(frozen=True)
class ListGenerator:
    elements: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class GitDirectory:
    path: str
    exclude: bool = False


@dataclass(frozen=True)
class GitGenerator:
    repo_url: str
    revision: str
    directories: tuple[GitDirectory, ...] = ()
    files: tuple[str, ...] = ()
    requeue_after: float | None = None


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # NotIn: a missing key is not in values


@dataclass(frozen=True)
class ClustersGenerator:
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelRequirement, ...] = ()
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MatrixGenerator:
    generators: tuple[Generator, Generator]


@dataclass(frozen=True)
class MergeGenerator:
    merge_keys: tuple[str, ...]
    generators: tuple[Generator, ...]


Generator = ListGenerator | GitGenerator | ClustersGenerator | MatrixGenerator | MergeGenerator


@dataclass(frozen=True)
class RollingStep:
    """One step of ``strategy.rollingSync.steps``: the apps its ``matchExpressions`` select."""

    match_expressions: tuple[LabelRequirement, ...]
    max_update: int | None = None  # a whole number; None: see max_update_percent
    max_update_percent: int | None = None  # "N%": N; both None: the whole step at once
    pause: bool = False  # gitsync's addition: wait for gitsync appset promote

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.match_expressions)

    def limit(self, size: int) -> int:
        """How many apps of a step of ``size`` may be in flight at once (Argo CD: a
        percentage rounds down, but at least one app moves)."""
        if self.max_update is not None:
            return self.max_update
        if self.max_update_percent is not None:
            return max(1, size * self.max_update_percent // 100)
        return max(size, 1)


@dataclass(frozen=True)
class RollingSync:
    """``spec.strategy`` with ``type: RollingSync``."""

    steps: tuple[RollingStep, ...]


@dataclass(frozen=True)
class ApplicationSetSpec:
    generators: tuple[Generator, ...]
    template: Mapping[str, Any]  # {"metadata": ..., "spec": ...}, strings not yet rendered
    go_template: bool = False
    missing_key_error: bool = False
    applications_sync: ApplicationsSync = ApplicationsSync.SYNC
    preserve_resources_on_deletion: bool = False
    strategy: RollingSync | None = None

    @property
    def requeue_after(self) -> float:
        """Seconds until the set is generated again: the smallest ``requeueAfterSeconds`` of
        its git generators, else ``DEFAULT_REQUEUE_SECONDS``."""
        found = [g.requeue_after for g in _walk(self.generators) if isinstance(g, GitGenerator)]
        given = [s for s in found if s is not None]
        return min(given) if given else DEFAULT_REQUEUE_SECONDS


def _walk(generators: tuple[Generator, ...]) -> list[Generator]:
    out: list[Generator] = []
    for g in generators:
        out.append(g)
        if isinstance(g, MatrixGenerator | MergeGenerator):
            out.extend(_walk(tuple(g.generators)))
    return out


# -- parsing ---------------------------------------------------------------------------------


def _mapping(value: object, where: str, *, required: bool = False) -> Mapping[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(where, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(where, f"expected a list, got {type(value).__name__}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(where, "expected a non-empty string")
    return value


def _only(fields: Mapping[str, Any], known: set[str], where: str, *, what: str) -> None:
    for key in fields:
        if key not in known:
            raise SpecError(f"{where}.{key}", f"is not supported by gitsync's {what}")


_GENERATORS: Final = {"list", "git", "clusters", "matrix", "merge"}
_ARGO_ONLY_GENERATORS: Final = {
    "scmProvider",
    "pullRequest",
    "plugin",
    "clusterDecisionResource",
}


def parse_generator(value: object, where: str, *, depth: int = 0) -> Generator:
    """One entry of ``generators``: exactly one kind, each field checked."""
    entry = _mapping(value, where, required=True)
    for key in entry:
        if key in _ARGO_ONLY_GENERATORS:
            raise SpecError(f"{where}.{key}", "this Argo CD generator is not supported by gitsync")
        if key == "selector":
            raise SpecError(f"{where}.selector", "a post-selector on generators is not supported")
        if key not in _GENERATORS:
            raise SpecError(f"{where}.{key}", "unknown generator")
    kinds = [k for k in entry if k in _GENERATORS]
    if len(kinds) != 1:
        raise SpecError(where, f"exactly one generator per entry, got {len(kinds)}")
    kind = kinds[0]
    body = _mapping(entry[kind], f"{where}.{kind}", required=True)
    here = f"{where}.{kind}"
    if kind == "list":
        return _parse_list(body, here)
    if kind == "git":
        return _parse_git(body, here)
    if kind == "clusters":
        return _parse_clusters(body, here)
    if depth + 1 > MAX_GENERATOR_DEPTH:
        raise SpecError(
            here, f"matrix and merge generators nest at most {MAX_GENERATOR_DEPTH} deep"
        )
    if kind == "matrix":
        return _parse_matrix(body, here, depth)
    return _parse_merge(body, here, depth)


def _parse_matrix(body: Mapping[str, Any], here: str, depth: int) -> MatrixGenerator:
    _only(body, {"generators"}, here, what="matrix generator")
    children = _list(body.get("generators"), f"{here}.generators")
    if len(children) != 2:
        raise SpecError(f"{here}.generators", f"a matrix takes exactly 2, got {len(children)}")
    a, b = (
        parse_generator(c, f"{here}.generators[{i}]", depth=depth + 1)
        for i, c in enumerate(children)
    )
    return MatrixGenerator((a, b))


def _parse_merge(body: Mapping[str, Any], here: str, depth: int) -> MergeGenerator:
    _only(body, {"mergeKeys", "generators"}, here, what="merge generator")
    keys = tuple(
        _string(k, f"{here}.mergeKeys[{i}]")
        for i, k in enumerate(_list(body.get("mergeKeys"), f"{here}.mergeKeys"))
    )
    if not keys:
        raise SpecError(f"{here}.mergeKeys", "at least one key is required")
    children = _list(body.get("generators"), f"{here}.generators")
    if not 2 <= len(children) <= MAX_GENERATORS:
        raise SpecError(f"{here}.generators", f"a merge takes 2 to {MAX_GENERATORS} generators")
    return MergeGenerator(
        keys,
        tuple(
            parse_generator(c, f"{here}.generators[{i}]", depth=depth + 1)
            for i, c in enumerate(children)
        ),
    )


def _parse_list(body: Mapping[str, Any], where: str) -> ListGenerator:
    _only(body, {"elements"}, where, what="list generator")
    elements = []
    for i, element in enumerate(_list(body.get("elements"), f"{where}.elements")):
        elements.append(_mapping(element, f"{where}.elements[{i}]", required=True))
        _check_depth(element, f"{where}.elements[{i}]")
    return ListGenerator(tuple(elements))


MAX_ELEMENT_DEPTH: Final = 32


def _check_depth(value: object, where: str) -> None:
    """Refuse an element nested deeper than ``MAX_ELEMENT_DEPTH`` (iteratively: the parameters
    are flattened and merged recursively later)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_ELEMENT_DEPTH:
            raise SpecError(where, f"nested deeper than {MAX_ELEMENT_DEPTH}")
        children = (
            item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else ()
        )
        stack.extend((child, depth + 1) for child in children)


def _parse_git(body: Mapping[str, Any], where: str) -> GitGenerator:
    _only(
        body,
        {"repoURL", "revision", "directories", "files", "requeueAfterSeconds"},
        where,
        what="git generator",
    )
    url = validate_repo_url(body.get("repoURL"), f"{where}.repoURL")
    revision = validate_revision(str(body.get("revision") or "HEAD"), f"{where}.revision")
    directories = []
    for i, entry in enumerate(_list(body.get("directories"), f"{where}.directories")):
        here = f"{where}.directories[{i}]"
        d = _mapping(entry, here, required=True)
        _only(d, {"path", "exclude"}, here, what="git directories")
        exclude = d.get("exclude", False)
        if not isinstance(exclude, bool):
            raise SpecError(f"{here}.exclude", "expected true or false")
        directories.append(GitDirectory(_pattern(d.get("path"), f"{here}.path"), exclude))
    files = []
    for i, entry in enumerate(_list(body.get("files"), f"{where}.files")):
        here = f"{where}.files[{i}]"
        f = _mapping(entry, here, required=True)
        _only(f, {"path"}, here, what="git files")
        files.append(_pattern(f.get("path"), f"{here}.path"))
    if bool(directories) == bool(files):
        raise SpecError(where, "give either directories or files")
    if directories and all(d.exclude for d in directories):
        raise SpecError(f"{where}.directories", "at least one path that is not an exclude")
    requeue = body.get("requeueAfterSeconds")
    if requeue is not None and (
        isinstance(requeue, bool) or not isinstance(requeue, int) or not 1 <= requeue <= 86400
    ):
        raise SpecError(f"{where}.requeueAfterSeconds", "expected whole seconds from 1 to 86400")
    return GitGenerator(
        url,
        revision,
        tuple(directories),
        tuple(files),
        float(requeue) if requeue is not None else None,
    )


def _pattern(value: object, where: str) -> str:
    text = _string(value, where)
    if len(text) > 1024:
        raise SpecError(where, "longer than 1024 characters")
    return validate_repo_path(text.strip("/") or ".", where)


_OPERATORS: Final = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})


def _parse_clusters(body: Mapping[str, Any], where: str) -> ClustersGenerator:
    _only(body, {"selector", "values"}, where, what="clusters generator")
    selector = _mapping(body.get("selector"), f"{where}.selector")
    _only(selector, {"matchLabels", "matchExpressions"}, f"{where}.selector", what="selector")
    labels = _string_map(selector.get("matchLabels"), f"{where}.selector.matchLabels")
    expressions = _list(selector.get("matchExpressions"), f"{where}.selector.matchExpressions")
    requirements = tuple(
        _requirement(e, f"{where}.selector.matchExpressions[{i}]", _OPERATORS, what="selector")
        for i, e in enumerate(expressions)
    )
    return ClustersGenerator(
        labels, requirements, _string_map(body.get("values"), f"{where}.values")
    )


def _requirement(
    value: object, here: str, operators: frozenset[str], *, what: str
) -> LabelRequirement:
    """One ``matchExpressions`` entry, its operator one of ``operators``."""
    e = _mapping(value, here, required=True)
    _only(e, {"key", "operator", "values"}, here, what=what)
    operator = e.get("operator")
    if operator not in operators:
        raise SpecError(f"{here}.operator", f"expected one of {sorted(operators)}")
    values = tuple(
        _string(v, f"{here}.values[{j}]")
        for j, v in enumerate(_list(e.get("values"), f"{here}.values"))
    )
    if (operator in ("In", "NotIn")) != bool(values):
        raise SpecError(f"{here}.values", f"{operator} takes values only with In and NotIn")
    return LabelRequirement(_string(e.get("key"), f"{here}.key"), operator, values)


def _string_map(value: object, where: str) -> dict[str, str]:
    out = {}
    for key, item in _mapping(value, where).items():
        if not isinstance(item, str):
            raise SpecError(f"{where}.{key}", "expected a string")
        out[str(key)] = item
    return out


_STEP_OPERATORS: Final = frozenset({"In", "NotIn"})
"""Argo CD's RollingSync steps take In and NotIn only."""


def _max_update(value: object, where: str) -> tuple[int | None, int | None]:
    """``maxUpdate``: a whole number >= 1 or ``"N%"`` (1-100). ``0`` is refused rather than
    guessed at: across Argo CD versions it has meant both "none" and "all"."""
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value, None
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        percent = int(value[:-1])
        if 1 <= percent <= 100:
            return None, percent
    raise SpecError(where, 'expected a whole number >= 1 or a percentage "1%" to "100%"')


def _rolling_step(value: object, where: str) -> RollingStep:
    entry = _mapping(value, where, required=True)
    _only(entry, {"matchExpressions", "maxUpdate", "pause"}, where, what="RollingSync")
    expressions = _list(entry.get("matchExpressions"), f"{where}.matchExpressions")
    if not expressions:
        raise SpecError(f"{where}.matchExpressions", "at least one expression")
    requirements = tuple(
        _requirement(e, f"{where}.matchExpressions[{i}]", _STEP_OPERATORS, what="RollingSync")
        for i, e in enumerate(expressions)
    )
    count, percent = _max_update(entry.get("maxUpdate"), f"{where}.maxUpdate")
    pause = entry.get("pause")
    if pause is not None and (not isinstance(pause, Mapping) or pause):
        raise SpecError(f"{where}.pause", "expected {} (the step waits for gitsync appset promote)")
    return RollingStep(requirements, count, percent, pause is not None)


def parse_strategy(value: object, where: str = "spec.strategy") -> RollingSync:
    """``spec.strategy``: ``type: RollingSync`` with ``rollingSync.steps``."""
    strategy = _mapping(value, where, required=True)
    _only(strategy, {"type", "rollingSync"}, where, what="strategy")
    if strategy.get("type") != "RollingSync":
        raise SpecError(f"{where}.type", "expected RollingSync")
    body = _mapping(strategy.get("rollingSync"), f"{where}.rollingSync", required=True)
    _only(body, {"steps"}, f"{where}.rollingSync", what="RollingSync")
    steps = _list(body.get("steps"), f"{where}.rollingSync.steps")
    if not 1 <= len(steps) <= MAX_ROLLING_STEPS:
        raise SpecError(f"{where}.rollingSync.steps", f"1 to {MAX_ROLLING_STEPS} steps")
    return RollingSync(
        tuple(_rolling_step(s, f"{where}.rollingSync.steps[{i}]") for i, s in enumerate(steps))
    )


_SPEC_FIELDS: Final = {
    "generators",
    "template",
    "goTemplate",
    "goTemplateOptions",
    "syncPolicy",
    "strategy",
}
_ARGO_ONLY_SPEC_FIELDS: Final = {
    "templatePatch",
    "ignoreApplicationDifferences",
    "preservedFields",
    "applyNestedSelectors",
}


def parse_application_set(doc: object) -> ApplicationSetSpec:
    """The spec of an ApplicationSet object; raises ``SpecError`` naming the field."""
    obj = _mapping(doc, "ApplicationSet", required=True)
    spec = _mapping(obj.get("spec"), "spec", required=True)
    for key in spec:
        if key in _ARGO_ONLY_SPEC_FIELDS:
            raise SpecError(f"spec.{key}", "is not supported by gitsync")
        if key not in _SPEC_FIELDS:
            raise SpecError(f"spec.{key}", "unknown field")
    entries = _list(spec.get("generators"), "spec.generators")
    if not 1 <= len(entries) <= MAX_GENERATORS:
        raise SpecError("spec.generators", f"1 to {MAX_GENERATORS} generators")
    generators = tuple(parse_generator(g, f"spec.generators[{i}]") for i, g in enumerate(entries))
    template = _mapping(spec.get("template"), "spec.template", required=True)
    _only(template, {"metadata", "spec"}, "spec.template", what="template")
    metadata = _mapping(template.get("metadata"), "spec.template.metadata", required=True)
    _only(
        metadata,
        {"name", "namespace", "labels", "annotations", "finalizers"},
        "spec.template.metadata",
        what="template",
    )
    _mapping(template.get("spec"), "spec.template.spec", required=True)
    go_template = spec.get("goTemplate", False)
    if not isinstance(go_template, bool):
        raise SpecError("spec.goTemplate", "expected true or false")
    options = _list(spec.get("goTemplateOptions"), "spec.goTemplateOptions")
    for i, option in enumerate(options):
        if option not in ("missingkey=error", "missingkey=default", "missingkey=zero"):
            raise SpecError(
                f"spec.goTemplateOptions[{i}]", f"{option!r} is not supported (missingkey=error)"
            )
    if options and not go_template:
        raise SpecError("spec.goTemplateOptions", "applies only with goTemplate: true")
    policy = _mapping(spec.get("syncPolicy"), "spec.syncPolicy")
    _only(
        policy,
        {"applicationsSync", "preserveResourcesOnDeletion"},
        "spec.syncPolicy",
        what="ApplicationSet syncPolicy",
    )
    sync = policy.get("applicationsSync", ApplicationsSync.SYNC.value)
    try:
        applications_sync = ApplicationsSync(sync)
    except ValueError:
        raise SpecError(
            "spec.syncPolicy.applicationsSync",
            f"expected one of {', '.join(p.value for p in ApplicationsSync)}",
        ) from None
    preserve = policy.get("preserveResourcesOnDeletion", False)
    if not isinstance(preserve, bool):
        raise SpecError("spec.syncPolicy.preserveResourcesOnDeletion", "expected true or false")
    strategy = None
    if spec.get("strategy") is not None:
        strategy = parse_strategy(spec["strategy"])
        if not applications_sync.updates:
            raise SpecError(
                "spec.strategy",
                f"RollingSync moves apps by updating them: syncPolicy.applicationsSync "
                f"{applications_sync.value} does not update",
            )
    return ApplicationSetSpec(
        generators=generators,
        template=template,
        go_template=go_template,
        missing_key_error="missingkey=error" in options,
        applications_sync=applications_sync,
        preserve_resources_on_deletion=preserve,
        strategy=strategy,
    )
