"""From an ApplicationSet's generators to its Applications: parameters, then rendered templates.

Generators are untrusted input - a tenant's repository, a tenant's list - so every step is
bounded before it allocates: a parameter list longer than ``max_applications`` is an error where
it appears (a matrix's size is its factors' product, checked before the product is built),
parameter files are read only if they are regular files inside the checkout and within
``max_file_bytes`` (``max_parameter_bytes`` over all of them), parsed by the one safe YAML loader
(alias bombs and deep nesting refused), and the rendered Applications stop at ``max_total_bytes``.
A failure is an exception, never a shorter list: the caller must not mistake "could not
generate" for "generated nothing" (which could delete Applications).

Parameters have Argo CD's names and two shapes, as in Argo CD: flat keys (``path.basename``,
``metadata.labels.env``, ``path[0]``) for fasttemplate and nested objects (``.path.basename``,
``.path.segments``) with ``goTemplate: true``. The repositories and the registered clusters
come through ``GeneratorInputs`` (the controller's source cache and cluster Secrets), so this
module reaches no adapter.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final, Protocol

from gitsync import kinds
from gitsync.application import SpecError, parse_application
from gitsync.appset.spec import (
    ApplicationSetSpec,
    ClustersGenerator,
    Generator,
    GitGenerator,
    ListGenerator,
    MatrixGenerator,
    MergeGenerator,
)
from gitsync.appset.template import TemplateOptions, normalize, render_value
from gitsync.errors import TerminalError
from gitsync.render.errors import RenderError
from gitsync.render.options import RenderLimits
from gitsync.render.safe_yaml import load_yaml_with_lines

SET_LABEL: Final = "gitsync.dev/application-set"
"""The label naming the ApplicationSet that generated an Application."""
LOCAL_CLUSTER: Final = "in-cluster"
LOCAL_SERVER: Final = "https://kubernetes.default.svc"
MAX_WALKED_DIRECTORIES: Final = 100_000

Params = dict[str, Any]


class GenerationError(TerminalError):
    """The set's generators or template cannot produce Applications (bad parameters, a limit);
    retried only when the set or its inputs change."""


@dataclass(frozen=True)
class GenerationLimits:
    """Bounds on one generation of one set (``gitsync serve --appset-*`` flags)."""

    max_applications: int = 5000
    max_total_bytes: int = 32 << 20
    max_string_bytes: int = 64 << 10
    max_file_bytes: int = 1 << 20
    max_parameter_bytes: int = 16 << 20
    max_files: int = 1000


@dataclass(frozen=True)
class ClusterInfo:
    """A registered destination cluster as the clusters generator sees it (no credentials)."""

    name: str
    server: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


class GeneratorInputs(Protocol):
    """What generators read, owned by the controller."""

    def checkout(self, repo_url: str, revision: str) -> Path:
        """The read-only tree of ``revision`` of ``repo_url``, fetched with the set's
        credentials and policy. Raises a ``GitsyncError``."""
        ...

    def clusters(self) -> list[ClusterInfo]:
        """The local cluster (``in-cluster``) and every registered remote one."""
        ...


# -- parameters ------------------------------------------------------------------------------


def flatten(value: Mapping[str, Any], prefix: str = "") -> Params:
    """Nested parameters as fasttemplate's flat keys: ``a.b`` for objects, ``a[0]`` for lists."""
    out: Params = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            out.update(flatten(item, f"{name}."))
        elif isinstance(item, list):
            for i, element in enumerate(item):
                if isinstance(element, Mapping):
                    out.update(flatten(element, f"{name}[{i}]."))
                else:
                    out[f"{name}[{i}]"] = element
        else:
            out[name] = item
    return out


def path_params(directory: str, filename: str | None, *, go_template: bool) -> Params:
    """Argo CD's ``path`` parameters of a directory (and of a file in it)."""
    segments = [] if directory in ("", ".") else directory.split("/")
    basename = segments[-1] if segments else ""
    nested: Params = {
        "path": directory,
        "basename": basename,
        "basenameNormalized": normalize(basename),
        "segments": segments,
    }
    if filename is not None:
        nested["filename"] = filename
        nested["filenameNormalized"] = normalize(filename)
    if go_template:
        return {"path": nested}
    flat: Params = {"path": directory}
    for key, value in nested.items():
        if key == "segments":
            for i, segment in enumerate(segments):
                flat[f"path[{i}]"] = segment
        elif key != "path":
            flat[f"path.{key}"] = value
    return flat


def list_params(generator: ListGenerator, *, go_template: bool) -> list[Params]:
    return [dict(element) if go_template else flatten(element) for element in generator.elements]


def cluster_params(
    cluster: ClusterInfo, generator: ClustersGenerator, options: TemplateOptions
) -> Params:
    nested: Params = {
        "name": cluster.name,
        "nameNormalized": normalize(cluster.name),
        "server": cluster.server,
        "metadata": {"labels": dict(cluster.labels), "annotations": dict(cluster.annotations)},
    }
    view = nested if options.go_template else flatten(nested)
    # As in Argo CD, the generator's values may use the cluster's own parameters.
    values = {
        key: render_value(value, view, options, where=f"clusters.values.{key}")
        for key, value in generator.values.items()
    }
    if options.go_template:
        return {**nested, "values": values}
    return {**view, **{f"values.{k}": v for k, v in values.items()}}


def selects(generator: ClustersGenerator, labels: Mapping[str, str]) -> bool:
    """Whether a cluster with ``labels`` matches the generator's label selector."""
    if any(labels.get(k) != v for k, v in generator.match_labels.items()):
        return False
    return all(r.matches(labels) for r in generator.match_expressions)


@dataclass(frozen=True)
class _CharClass:
    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    negate: bool

    def matches(self, ch: str) -> bool:
        found = ch in self.chars or any(lo <= ch <= hi for lo, hi in self.ranges)
        return found is not self.negate


_STAR: Final = "*"
_ANY: Final = "?"
_Token = str | _CharClass  # a literal character, _STAR, _ANY or a class


def _segment_tokens(segment: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        end = segment.find("]", i + 2) if c == "[" else -1
        if c == "*":
            if not tokens or tokens[-1] != _STAR:  # "**" inside a segment is one "*"
                tokens.append(_STAR)
            i += 1
        elif c == "?":
            tokens.append(_ANY)
            i += 1
        elif end > 0:
            body = segment[i + 1 : end]
            negate = body.startswith(("!", "^"))
            body = body[1:] if negate else body
            ranges = tuple(
                (body[k], body[k + 2]) for k in range(len(body) - 2) if body[k + 1] == "-"
            )
            tokens.append(_CharClass(frozenset(body), ranges, negate))
            i = end + 1
        else:
            tokens.append("\\" + c)  # a literal, marked so it never reads as _STAR or _ANY
            i += 1
    return tokens


def _wildcard(tokens: list[Any], items: list[Any], one: Any) -> bool:
    """Wildcard matching with one backtrack point (the last star): O(len(tokens) * len(items))
    at worst, never exponential - patterns are a tenant's, so no backtracking regex."""
    p = t = 0
    star, mark = -1, 0
    while t < len(items):
        if p < len(tokens) and tokens[p] != _STAR and one(tokens[p], items[t]):
            p, t = p + 1, t + 1
        elif p < len(tokens) and tokens[p] == _STAR:
            star, mark, p = p, t, p + 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    while p < len(tokens) and tokens[p] == _STAR:
        p += 1
    return p == len(tokens)


def _char(token: _Token, ch: str) -> bool:
    if isinstance(token, _CharClass):
        return token.matches(ch)
    return token == _ANY or token[1:] == ch


@dataclass(frozen=True)
class Glob:
    """A path glob: ``*``, ``?`` and ``[...]`` stay within a segment, a ``**`` segment spans
    any number of segments (Go's ``path.Match`` plus doublestar's ``**``)."""

    segments: tuple[Any, ...]  # _STAR for "**", else the segment's tokens

    @classmethod
    def parse(cls, pattern: str) -> Glob:
        parts: list[Any] = []
        for segment in pattern.split("/"):
            if segment == "**":
                if not parts or parts[-1] != _STAR:
                    parts.append(_STAR)
            else:
                parts.append(_segment_tokens(segment))
        return cls(tuple(parts))

    def matches(self, path: str) -> bool:
        def segment(tokens: list[_Token], text: str) -> bool:
            return _wildcard(tokens, list(text), _char)

        return _wildcard(list(self.segments), path.split("/"), segment)


def _walk(root: Path) -> tuple[list[str], list[str]]:
    """Every directory and regular-file path under ``root`` (relative, ``/``-separated); links
    are not followed. Bounded by ``MAX_WALKED_DIRECTORIES`` (a checkout is bounded too)."""
    dirs: list[str] = []
    files: list[str] = []
    for top, subdirs, names in os.walk(root, followlinks=False):
        rel = os.path.relpath(top, root)
        subdirs[:] = sorted(d for d in subdirs if not (Path(top) / d).is_symlink())
        for d in subdirs:
            dirs.append(d if rel == "." else f"{rel}/{d}")
        for name in sorted(names):
            files.append(name if rel == "." else f"{rel}/{name}")
        if len(dirs) > MAX_WALKED_DIRECTORIES:
            raise GenerationError(f"more than {MAX_WALKED_DIRECTORIES} directories")
    return dirs, files


def git_directory_params(
    generator: GitGenerator, root: Path, *, go_template: bool, limits: GenerationLimits
) -> list[Params]:
    """One parameter set per directory matching an include pattern and no exclude pattern."""
    dirs, _ = _walk(root)
    include = [Glob.parse(d.path) for d in generator.directories if not d.exclude]
    exclude = [Glob.parse(d.path) for d in generator.directories if d.exclude]
    matched = [
        d
        for d in dirs
        if any(p.matches(d) for p in include) and not any(p.matches(d) for p in exclude)
    ]
    _check_count(len(matched), "the git directories generator", limits)
    return [path_params(d, None, go_template=go_template) for d in sorted(matched)]


def git_file_params(
    generator: GitGenerator, root: Path, *, go_template: bool, limits: GenerationLimits
) -> list[Params]:
    """One parameter set per object in each matching file (a file holding a list gives one
    per element), with the file's ``path`` parameters."""
    _, files = _walk(root)
    patterns = [Glob.parse(p) for p in generator.files]
    matched = sorted(f for f in files if any(p.matches(f) for p in patterns))
    if len(matched) > limits.max_files:
        raise GenerationError(
            f"{len(matched)} parameter files match; the limit is {limits.max_files}"
        )
    out: list[Params] = []
    budget = limits.max_parameter_bytes
    for rel in matched:
        text = _read_parameter_file(root, rel, limits.max_file_bytes)
        budget -= len(text)
        if budget < 0:
            raise GenerationError(
                f"parameter files exceed {limits.max_parameter_bytes} bytes together"
            )
        source = f"{generator.repo_url}: {rel}"
        try:
            docs = load_yaml_with_lines(
                text,
                source=source,
                limits=RenderLimits(max_bytes=limits.max_file_bytes, max_documents=1000),
                lists_too=True,
            )
        except RenderError as exc:
            raise GenerationError(str(exc)) from None
        where = PurePosixPath(rel)
        directory = str(where.parent) if str(where.parent) != "." else ""
        for _, _, doc in docs:
            for item in doc if isinstance(doc, list) else [doc]:
                if not isinstance(item, dict):
                    raise GenerationError(f"{source}: list items must be objects")
                base = item if go_template else flatten(item)
                out.append({**base, **path_params(directory, where.name, go_template=go_template)})
                _check_count(len(out), "the git files generator", limits)
    return out


def _read_parameter_file(root: Path, rel: str, max_bytes: int) -> bytes:
    path = root / rel
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise GenerationError(f"{rel}: parameter files must be regular files (not links)")
    if info.st_size > max_bytes:
        raise GenerationError(f"{rel}: {info.st_size} bytes exceeds the limit of {max_bytes}")
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise GenerationError(f"{rel}: exceeds the limit of {max_bytes} bytes")
    return data


def _check_count(count: int, what: str, limits: GenerationLimits) -> None:
    if count > limits.max_applications:
        raise GenerationError(
            f"{what} yields {count} parameter sets; the limit is {limits.max_applications} "
            "applications per set"
        )


def _combine(a: Params, b: Params, *, go_template: bool, where: str) -> Params:
    if go_template:
        return _deep_merge(a, b)
    for key, value in b.items():
        if key in a and a[key] != value:
            raise GenerationError(f"{where}: both generators set {key!r} to different values")
    return {**a, **b}


def _deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> Params:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _merge_key(params: Params, keys: Sequence[str], *, go_template: bool) -> tuple[Any, ...]:
    values = []
    for key in keys:
        if go_template:
            current: Any = params
            for part in key.split("."):
                current = current.get(part) if isinstance(current, Mapping) else None
            values.append(json.dumps(current, sort_keys=True))
        else:
            values.append(json.dumps(params.get(key), sort_keys=True))
    return tuple(values)


def generate(
    generator: Generator,
    inputs: GeneratorInputs,
    options: TemplateOptions,
    limits: GenerationLimits,
    where: str,
) -> list[Params]:
    """The parameter sets of one generator; raises ``GenerationError``, ``TemplateError`` or
    whatever ``inputs`` raise (a ``GitsyncError``)."""
    go = options.go_template
    if isinstance(generator, ListGenerator):
        _check_count(len(generator.elements), f"{where}.list", limits)
        return list_params(generator, go_template=go)
    if isinstance(generator, GitGenerator):
        root = inputs.checkout(generator.repo_url, generator.revision)
        if generator.directories:
            return git_directory_params(generator, root, go_template=go, limits=limits)
        return git_file_params(generator, root, go_template=go, limits=limits)
    if isinstance(generator, ClustersGenerator):
        clusters = [c for c in inputs.clusters() if selects(generator, c.labels)]
        _check_count(len(clusters), f"{where}.clusters", limits)
        return [cluster_params(c, generator, options) for c in clusters]
    if isinstance(generator, MatrixGenerator):
        first = generate(generator.generators[0], inputs, options, limits, f"{where}.matrix[0]")
        second = generate(generator.generators[1], inputs, options, limits, f"{where}.matrix[1]")
        total = len(first) * len(second)
        _check_count(total, f"{where}.matrix ({len(first)} x {len(second)})", limits)
        return [
            _combine(a, b, go_template=go, where=f"{where}.matrix") for a in first for b in second
        ]
    return _merge(generator, inputs, options, limits, where)


def _merge(
    generator: MergeGenerator,
    inputs: GeneratorInputs,
    options: TemplateOptions,
    limits: GenerationLimits,
    where: str,
) -> list[Params]:
    go = options.go_template
    base = generate(generator.generators[0], inputs, options, limits, f"{where}.merge[0]")
    keys = generator.merge_keys
    index: dict[tuple[Any, ...], int] = {}
    for i, params in enumerate(base):
        key = _merge_key(params, keys, go_template=go)
        if key in index:
            raise GenerationError(
                f"{where}.merge: two parameter sets of the first generator share the merge "
                f"keys {', '.join(keys)}"
            )
        index[key] = i
    merged = list(base)
    for n, child in enumerate(generator.generators[1:], start=1):
        for params in generate(child, inputs, options, limits, f"{where}.merge[{n}]"):
            position = index.get(_merge_key(params, keys, go_template=go))
            if position is not None:
                merged[position] = (
                    _deep_merge(merged[position], params) if go else {**merged[position], **params}
                )
    return merged


# -- applications ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SetIdentity:
    """The ApplicationSet the Applications belong to."""

    namespace: str
    name: str
    uid: str


def owner_reference(owner: SetIdentity) -> dict[str, Any]:
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.APPLICATION_SET,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def application_of(
    spec: ApplicationSetSpec,
    params: Params,
    owner: SetIdentity,
    options: TemplateOptions,
    *,
    resources_finalizers: frozenset[str],
    default_finalizer: str,
) -> dict[str, Any]:
    """The Application one parameter set makes, checked as an Application; raises
    ``TemplateError`` or ``SpecError`` (naming the template field)."""
    rendered = render_value(dict(spec.template), params, options, where="spec.template")
    metadata = rendered.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("spec.template.metadata.name", "renders to an empty name")
    namespace = metadata.get("namespace") or owner.namespace
    if namespace != owner.namespace:
        raise SpecError(
            "spec.template.metadata.namespace",
            f"application {name!r} would go to namespace {namespace!r}; an ApplicationSet "
            f"generates Applications in its own namespace ({owner.namespace}) only",
        )
    labels = _string_map(metadata.get("labels"), "spec.template.metadata.labels")
    annotations = _string_map(metadata.get("annotations"), "spec.template.metadata.annotations")
    finalizers = [str(f) for f in metadata.get("finalizers") or []]
    if spec.preserve_resources_on_deletion:
        finalizers = [f for f in finalizers if f not in resources_finalizers]
    elif not any(f in resources_finalizers for f in finalizers):
        finalizers.append(default_finalizer)
    doc: dict[str, Any] = {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.APPLICATION,
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {**labels, SET_LABEL: owner.name},
            "annotations": annotations,
            "finalizers": finalizers,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": rendered.get("spec") or {},
    }
    try:
        parse_application(
            {
                "apiVersion": doc["apiVersion"],
                "kind": doc["kind"],
                "metadata": {"name": name, "namespace": owner.namespace},
                "spec": doc["spec"],
            }
        )
    except SpecError as exc:
        raise SpecError(
            f"spec.template.{exc.field}", f"application {name!r}: {exc.problem}"
        ) from None
    return doc


def _string_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise SpecError(where, "expected an object of strings")
    return {str(k): v for k, v in value.items()}


MAX_SHOWN_PARAMETERS = 32  # parameters shown per generated app (status, page, CLI)
MAX_SHOWN_VALUE = 256  # characters of one shown parameter value
CUT = "…"
MORE_KEY = "…"  # the shown parameters' last key when some were left out: "<n> more"
MAX_SHOWN_TOTAL = 256 * 1024  # bytes of shown parameters in one set's status (etcd takes 1.5 MiB)


def _shown_value(value: object) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, int | float):
        text = str(value)
    else:  # a list or object fasttemplate's flat keys left whole: its compact JSON
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 1] + CUT


def shown_parameters(params: Mapping[str, Any]) -> dict[str, str]:
    """A parameter set as the status shows it: flat keys (fasttemplate's), values as text,
    at most ``MAX_SHOWN_PARAMETERS`` keys (sorted; the rest counted under ``MORE_KEY``) and
    ``MAX_SHOWN_VALUE`` characters a value, so a set of huge parameters cannot swell the
    status object past what etcd takes."""
    flat = flatten(params)
    keys = sorted(flat)
    out = {key[:MAX_SHOWN_VALUE]: _shown_value(flat[key]) for key in keys[:MAX_SHOWN_PARAMETERS]}
    if len(keys) > MAX_SHOWN_PARAMETERS:
        out[MORE_KEY] = f"{len(keys) - MAX_SHOWN_PARAMETERS} more"
    return out


@dataclass(frozen=True)
class GeneratorYield:
    """How many parameter sets one entry of ``spec.generators`` gave: what an empty
    generation's message names, generator by generator."""

    where: str  # "spec.generators[0]"
    generator: str  # described_generator's words
    parameter_sets: int

    def __str__(self) -> str:
        sets = "parameter set" if self.parameter_sets == 1 else "parameter sets"
        return f"{self.where} ({self.generator}) gave {self.parameter_sets} {sets}"


MAX_DESCRIBED_PATHS = 4  # git paths named in one generator's description
MAX_DESCRIBED_PATH = 128  # characters of one


def described_generator(generator: Generator) -> str:
    """A generator in a few words for a message: its kind, and the paths of a git one (never
    its repoURL, which may carry credentials)."""
    if isinstance(generator, ListGenerator):
        return "list"
    if isinstance(generator, GitGenerator):
        paths = [("!" if d.exclude else "") + d.path for d in generator.directories]
        kind = "git directories" if generator.directories else "git files"
        paths = paths or list(generator.files)
        shown = ", ".join(p[:MAX_DESCRIBED_PATH] for p in paths[:MAX_DESCRIBED_PATHS])
        more = len(paths) - MAX_DESCRIBED_PATHS
        return f"{kind} {shown}" + (f" and {more} more" if more > 0 else "")
    if isinstance(generator, ClustersGenerator):
        return "clusters"
    joiner = " x " if isinstance(generator, MatrixGenerator) else " + "
    kind = "matrix" if isinstance(generator, MatrixGenerator) else "merge"
    return f"{kind} of " + joiner.join(described_generator(g) for g in generator.generators)


@dataclass(frozen=True)
class Generation:
    """What one generation produced: the Applications by name, the parameter sets, the
    parameters each Application was rendered from (``shown_parameters``), and what each of
    ``spec.generators`` gave."""

    applications: dict[str, dict[str, Any]]
    parameter_sets: int
    parameters: dict[str, dict[str, str]] = field(default_factory=dict)
    yields: tuple[GeneratorYield, ...] = ()


def generate_applications(
    spec: ApplicationSetSpec,
    owner: SetIdentity,
    inputs: GeneratorInputs,
    limits: GenerationLimits,
    *,
    resources_finalizers: frozenset[str],
    default_finalizer: str,
) -> Generation:
    """Every Application the set's generators and template make now. Raises (never returns
    a partial result): ``GenerationError``, ``TemplateError``, ``SpecError`` or the inputs'
    ``GitsyncError``."""
    options = TemplateOptions(
        go_template=spec.go_template,
        missing_key_error=spec.missing_key_error,
        max_string_bytes=limits.max_string_bytes,
    )
    sets: list[Params] = []
    yields: list[GeneratorYield] = []
    for i, generator in enumerate(spec.generators):
        where = f"spec.generators[{i}]"
        made = generate(generator, inputs, options, limits, where)
        yields.append(GeneratorYield(where, described_generator(generator), len(made)))
        sets.extend(made)
        _check_count(len(sets), "the generators together", limits)
    apps: dict[str, dict[str, Any]] = {}
    shown: dict[str, dict[str, str]] = {}
    size = shown_size = 0
    for params in sets:
        doc = application_of(
            spec,
            params,
            owner,
            options,
            resources_finalizers=resources_finalizers,
            default_finalizer=default_finalizer,
        )
        name = doc["metadata"]["name"]
        if name in apps:
            raise GenerationError(
                f"two parameter sets render the same application name {name!r}; make "
                "spec.template.metadata.name unique per parameter set"
            )
        size += len(json.dumps(doc))
        if size > limits.max_total_bytes:
            raise GenerationError(
                f"the generated applications exceed {limits.max_total_bytes} bytes"
            )
        apps[name] = doc
        shown[name] = shown_parameters(params)
        shown_size += len(json.dumps(shown[name]))
        if shown_size > MAX_SHOWN_TOTAL:  # the status must stay writable however many apps
            left_out = f"{len(flatten(params))} left out: over {MAX_SHOWN_TOTAL} bytes for the set"
            shown[name] = {MORE_KEY: left_out}
    return Generation(apps, len(sets), shown, tuple(yields))
