"""The Application: what to deploy (a Git source or a chart from a Helm or OCI repository, or
several of them: ``spec.sources``, Argo CD's multiple sources with ``ref``), where (a destination)
and how (sync policy).

Parsed from a plain dict (a YAML file for the CLI, the custom resource for the controller) into
frozen dataclasses, and validated strictly: unknown fields, bad revision syntax, negative or absurd
durations and paths that climb out of the repository are rejected with a message that names the
field (``spec.syncPolicy.retry.backoff.duration: ...``). A bad spec is a terminal error for that one
Application; nothing else is affected. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import SplitResult, urlsplit

import semantic_version

from gitsync import sync_options
from gitsync.errors import TerminalError
from gitsync.kinds import API_VERSION
from gitsync.kinds import APPLICATION as KIND
from gitsync.sync_options import SyncOptions
from gitsync.sync_windows import SyncWindow, WindowError, parse_sync_windows

MAX_INTERVAL_SECONDS = 24 * 3600
MIN_INTERVAL_SECONDS = 1
MAX_BACKOFF_SECONDS = 24 * 3600
MAX_RETRY_LIMIT = 100
KNOWN_SYNC_OPTIONS = frozenset(
    name
    for name, spec in sync_options.OPTIONS.items()
    if sync_options.Level.APP in spec.levels
    and set(sync_options.BOOL) <= set(spec.values)
    and not spec.refused
)
"""The app-level sync options that take true and false, both honoured."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20~^:?*\[\\;|&$`'\"<>(){}]")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
SERVER_SET_METADATA = (
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "finalizers",
    "ownerReferences",
    "selfLink",
    "deletionTimestamp",
    "generateName",
    "deletionGracePeriodSeconds",
)
"""Metadata the API server (or a client other than Git) sets: read past, never an error."""
_IGNORED_METADATA = ("labels", "annotations", *SERVER_SET_METADATA)
_KUBE_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.+-]*)?$")
MAX_API_VERSIONS = 5000
UNSUPPORTED_HELM_FIELDS = {
    "fileParameters": "files are read only as valueFiles; use valueFiles or parameters",
    "passCredentials": "credentials are never sent to another host than their repository's",
    "version": "gitsync renders with Helm v4 only",
    "skipTests": "test hooks (helm.sh/hook: test) are never applied",
    "skipSchemaValidation": "values are always validated against values.schema.json",
}
"""Argo CD ``helm`` fields gitsync does not implement, and why: each is a spec error naming it."""
_SEMVER_HINT = re.compile(r"[<>=^~*|\s]|^v?\d+(\.(\d+|[xX*]))*\.[xX*]")
_CHART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
CHART_REPO_SCHEMES = ("https://", "http://", "oci://")
MAX_SOURCES = 20
MAX_DEPENDENCIES = 32
"""``spec.sources`` entries at most: each is fetched and rendered on every compare."""
_REF_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


class SpecError(TerminalError):
    """The Application spec is invalid; ``field`` is the dotted path of the offending field."""

    def __init__(self, field_path: str, problem: str):
        self.field = field_path
        self.problem = problem
        super().__init__(f"{field_path}: {problem}")


def parse_duration(
    value: object, field_path: str, *, maximum: float, minimum: float = 0.0
) -> float:
    """A Go-style duration (``90s``, ``3m``, ``1h30m``, ``250ms``) in seconds, within bounds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SpecError(field_path, f"expected a duration such as '30s' or '3m', got {value!r}")
    text = str(value).strip()
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        if text.startswith("-"):
            raise SpecError(field_path, f"duration must not be negative: {text!r}")
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise SpecError(field_path, f"not a duration (use e.g. '30s', '3m', '1h30m'): {text!r}")
    if seconds < 0:
        raise SpecError(field_path, f"duration must not be negative: {text!r}")
    if seconds < minimum:
        raise SpecError(field_path, f"duration {text!r} is below the minimum of {minimum:g}s")
    if seconds > maximum:
        raise SpecError(field_path, f"duration {text!r} exceeds the maximum of {maximum:g}s")
    return seconds


def _or_default(value: object, default: str) -> object:
    """``default`` only when the field is absent: "" or 0 is an error, not a default."""
    return default if value is None else value


def is_semver_range(revision: str) -> bool:
    """Whether ``targetRevision`` is a semver range over tags rather than a ref or a SHA.

    Anything with range operators (``<>=^~*|`` or spaces) or an ``x`` wildcard after a number
    (``1.x``) is a range; so a branch literally named ``1.x`` must be written ``refs/heads/1.x``.
    """
    return bool(_SEMVER_HINT.search(revision))


def validate_revision(revision: str, field_path: str) -> str:
    if not revision:
        raise SpecError(field_path, "must not be empty")
    if len(revision) > 255:
        raise SpecError(field_path, "is longer than 255 characters")
    if revision.startswith("-"):
        raise SpecError(field_path, f"must not start with '-': {revision!r}")
    if is_semver_range(revision):
        try:
            semantic_version.NpmSpec(revision)
        except ValueError as exc:
            raise SpecError(field_path, f"not a valid semver range: {revision!r} ({exc})") from None
        return revision
    if _SHA.match(revision) or revision == "HEAD":
        return revision
    if (
        _REF_FORBIDDEN.search(revision)
        or ".." in revision
        or "@{" in revision
        or revision.endswith((".", "/", ".lock"))
        or revision.startswith("/")
        or "//" in revision
    ):
        raise SpecError(
            field_path, f"not a valid branch, tag, commit SHA or semver range: {revision!r}"
        )
    return revision


def validate_repo_path(path: str, field_path: str) -> str:
    """A repository-relative directory: no absolute paths, no ``..`` segments."""
    if not isinstance(path, str):
        raise SpecError(field_path, f"expected a string, got {type(path).__name__}")
    if "\x00" in path:
        raise SpecError(field_path, "must not contain NUL")
    pure = PurePosixPath(path or ".")
    if pure.is_absolute():
        raise SpecError(field_path, f"must be relative to the repository root: {path!r}")
    if ".." in pure.parts:
        raise SpecError(field_path, f"must not contain '..': {path!r}")
    return str(pure)


def validate_repo_url(url: object, field_path: str) -> str:
    if not isinstance(url, str) or not url:
        raise SpecError(field_path, "is required (https://, ssh://, git@host:path or file://)")
    if url.startswith("-") or any(c in url for c in "\x00\n\r \t"):
        raise SpecError(field_path, "contains characters a repository URL cannot have")
    if re.match(r"^(https?|ssh|file)://", url):
        try:
            urlsplit(url).port  # noqa: B018 - raises ValueError on a malformed host or port
        except ValueError as exc:
            raise SpecError(field_path, f"not a valid URL: {exc}") from None
        return url
    if re.match(r"^[\w.-]+@[\w.-]+:[^/]", url):
        return url
    raise SpecError(field_path, "must be https://, http://, ssh://, file:// or user@host:path")


class SpecFields:
    """Reads a mapping field by field, names the field in every error, and complains about
    anything left over (``done``). Shared by every spec parser (Application, Rollout); a
    subclass sets ``error`` to its own ``SpecError`` subclass and ``max_duration``."""

    error: type[SpecError] = SpecError
    max_duration: float = MAX_INTERVAL_SECONDS

    def __init__(self, value: object, path: str):
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected an object, got {type(value).__name__}")
        self._data: Mapping[str, Any] = value
        self._path = path
        self._seen: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def has(self, name: str) -> bool:
        return name in self._data

    def one_of(self, names: tuple[str, ...], *, required: bool) -> str:
        """The one of ``names`` that is set ("" when none is and that is allowed)."""
        present = [n for n in names if self.has(n)]
        if len(present) > 1:
            raise self.error(self.path(present[1]), f"set only one of {', '.join(names)}")
        if not present:
            if required:
                raise self.error(self._path, f"set one of {', '.join(names)}")
            return ""
        return present[0]

    def raw(self, name: str) -> Any:
        self._seen.add(name)
        return self._data.get(name)

    def text(self, name: str, default: str = "") -> str:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(self.path(name), f"expected a string, got {type(value).__name__}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(self.path(name), f"expected true or false, got {value!r}")
        return value

    def integer(self, name: str, *, minimum: int, maximum: int) -> int | None:
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(self.path(name), f"expected an integer, got {value!r}")
        if not minimum <= value <= maximum:
            raise self.error(
                self.path(name), f"expected an integer from {minimum} to {maximum}, got {value}"
            )
        return value

    def duration(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        seconds = self.optional_duration(name, minimum=minimum)
        return default if seconds is None else seconds

    def optional_duration(self, name: str, *, minimum: float = 0.0) -> float | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return parse_duration(
                value, self.path(name), maximum=self.max_duration, minimum=minimum
            )
        except SpecError as exc:
            raise self.error(exc.field, exc.problem) from None

    def items(self, name: str) -> list[Any]:
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(self.path(name), f"expected a list, got {type(value).__name__}")
        return value

    def done(self) -> None:
        unknown = sorted(str(k) for k in set(self._data) - self._seen)
        if unknown:
            raise self.error(self.path(unknown[0]), "unknown field")


@dataclass(frozen=True)
class JsonnetVariable:
    """One ``directory.jsonnet`` ``tlas``/``extVars`` entry (Argo CD's ``JsonnetVar``)."""

    name: str
    value: str
    code: bool = False


@dataclass(frozen=True)
class DirectoryJsonnet:
    """Argo CD's ``directory.jsonnet``; ``libs`` are repository-relative directories."""

    tlas: tuple[JsonnetVariable, ...] = ()
    ext_vars: tuple[JsonnetVariable, ...] = ()
    libs: tuple[str, ...] = ()


@dataclass(frozen=True)
class DirectorySource:
    recurse: bool = False
    include: str = ""
    exclude: str = ""
    jsonnet: DirectoryJsonnet = field(default_factory=DirectoryJsonnet)


@dataclass(frozen=True)
class HelmParameter:
    """One ``helm.parameters`` entry: ``--set name=value`` (``--set-string`` when
    ``force_string``)."""

    name: str
    value: str
    force_string: bool = False


@dataclass(frozen=True)
class HelmSource:
    """``spec.source.helm`` in Argo CD's spelling. ``values`` is the object form
    (``valuesObject``, or ``values`` written as an object as gitsync always allowed);
    ``values_yaml`` is Argo's ``values`` string, parsed by the renderer's safe YAML loader."""

    release_name: str = ""
    value_files: tuple[str, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)
    values_yaml: str = ""
    parameters: tuple[HelmParameter, ...] = ()
    ignore_missing_value_files: bool = False
    skip_crds: bool = False
    namespace: str = ""
    kube_version: str = ""
    api_versions: tuple[str, ...] | None = None
    """``None``: from the destination cluster's discovery; ``()`` is not accepted."""


@dataclass(frozen=True)
class KustomizeImage:
    """One ``kustomize.images`` entry: Argo CD's string (``kustomize edit set image``'s syntax,
    ``name=newName:tag``, ``name:tag``, ``name@digest``...) taken apart. ``name`` is the image
    kustomize looks for; "" in the others leaves that part as it is."""

    name: str
    new_name: str = ""
    new_tag: str = ""
    digest: str = ""


@dataclass(frozen=True)
class KustomizeReplica:
    """One ``kustomize.replicas`` entry: the workload named ``name`` gets ``count`` replicas."""

    name: str
    count: int


@dataclass(frozen=True)
class KustomizePatchTarget:
    """A patch's ``target`` in kustomize's spelling; "" matches anything."""

    group: str = ""
    version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    label_selector: str = ""
    annotation_selector: str = ""


@dataclass(frozen=True)
class KustomizePatch:
    """One ``kustomize.patches`` entry: inline ``patch`` text, or a ``path`` to a patch file
    relative to the app's directory (and inside it, as kustomize's RootOnly rule asks)."""

    patch: str = ""
    path: str = ""
    target: KustomizePatchTarget | None = None
    allow_name_change: bool | None = None
    allow_kind_change: bool | None = None


@dataclass(frozen=True)
class KustomizeSource:
    """``spec.source.kustomize``: Argo CD's overrides, applied by the renderer through an
    overlay that kustomize builds. ``components`` are paths relative to the app's directory."""

    images: tuple[KustomizeImage, ...] = ()
    name_prefix: str = ""
    name_suffix: str = ""
    common_labels: Mapping[str, str] = field(default_factory=dict)
    force_common_labels: bool = False
    label_without_selector: bool = False
    label_include_templates: bool = False
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    force_common_annotations: bool = False
    namespace: str = ""
    replicas: tuple[KustomizeReplica, ...] = ()
    patches: tuple[KustomizePatch, ...] = ()
    components: tuple[str, ...] = ()
    ignore_missing_components: bool = False

    @property
    def has_overrides(self) -> bool:
        """Whether anything changes what ``kustomize build`` of the directory gives."""
        return bool(
            self.images
            or self.name_prefix
            or self.name_suffix
            or self.common_labels
            or self.common_annotations
            or self.namespace
            or self.replicas
            or self.patches
            or self.components
        )


@dataclass(frozen=True)
class Source:
    repo_url: str
    target_revision: str = "HEAD"
    path: str = "."
    directory: DirectorySource | None = None
    kustomize: KustomizeSource | None = None
    helm: HelmSource | None = None
    credentials_secret: str = ""
    chart: str = ""
    """``spec.source.chart`` (Argo CD's field): a chart from the Helm repository (``https://``)
    or OCI registry (``oci://``) ``repo_url``; "" for a Git source. ``repoURL:
    oci://host/path/NAME`` without ``chart`` is read as ``repo_url`` ``oci://host/path`` and
    ``chart`` NAME, so ``repo_url`` is always the repository without the chart's name."""
    ref: str = ""
    """``ref`` of a ``spec.sources`` entry (Argo CD): other sources name files of this Git
    source's checkout as ``$REF/path`` in ``helm.valueFiles``."""
    ref_only: bool = False
    """A ``ref`` source without ``path``: it provides files and renders nothing itself."""

    @property
    def is_chart(self) -> bool:
        return bool(self.chart)

    @property
    def is_oci(self) -> bool:
        return self.repo_url.lower().startswith("oci://")


@dataclass(frozen=True)
class Destination:
    namespace: str = ""
    name: str = ""  # a registered cluster; "" is the cluster gitsync runs in


@dataclass(frozen=True)
class Backoff:
    duration: float = 5.0
    factor: float = 2.0
    max_duration: float = 180.0


@dataclass(frozen=True)
class Retry:
    limit: int = 5
    backoff: Backoff = Backoff()


@dataclass(frozen=True)
class SyncPolicy:
    automated: bool = False
    prune: bool = False
    self_heal: bool = False
    allow_empty: bool = False
    options: frozenset[str] = frozenset()
    """The names of the sync options set to ``true``."""
    retry: Retry = Retry()
    sync_options: SyncOptions = field(default_factory=SyncOptions)
    """Every sync option as written (``PrunePropagationPolicy=orphan``, ``Prune=false``...)."""

    def option(self, name: str) -> bool:
        return name in self.options


@dataclass(frozen=True)
class IgnoreDifference:
    """One ``spec.ignoreDifferences`` entry as written (Argo CD's fields), already validated.
    ``gitsync.diff.IgnoreRule.from_difference`` turns it into the matcher the diff applies."""

    group: str = "*"
    kind: str = "*"
    name: str = "*"
    namespace: str = "*"
    json_pointers: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class DependencyRef:
    """One ``spec.dependsOn`` entry (Flux's spelling): an Application that must be Ready before
    this one syncs; ``namespace`` defaults to the dependent's own."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Application:
    name: str
    namespace: str
    source: Source
    destination: Destination
    sync_policy: SyncPolicy = SyncPolicy()
    ignore_differences: tuple[IgnoreDifference, ...] = ()
    interval: float = 180.0
    suspend: bool = False
    uid: str = ""
    generation: int = 0
    sync_windows: tuple[SyncWindow, ...] = ()
    """``spec.syncWindows``: the app's own windows, judged apart from its project's."""
    service_account_name: str = ""
    """``spec.serviceAccountName`` (Flux's spelling): the ServiceAccount in ``namespace`` the
    app's reads and writes run as; "" leaves it to the controller's default."""
    sources: tuple[Source, ...] = ()
    """``spec.sources`` (Argo CD's multiple sources) in order; ``()`` for a ``spec.source`` app.
    ``source`` is then the first entry, for what names one repository (lists, webhooks)."""
    depends_on: tuple[DependencyRef, ...] = ()
    """``spec.dependsOn``: automated sync waits until each is Ready at its current revision
    (``gitsync.controller.dependencies``)."""

    @property
    def all_sources(self) -> tuple[Source, ...]:
        """Every source the app fetches: ``spec.sources``, or ``spec.source`` alone."""
        return self.sources or (self.source,)

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}/{self.name}"


def _dns_name(value: str, path: str, *, label: bool = False, required: bool = True) -> str:
    if not value:
        if required:
            raise SpecError(path, "is required")
        return value
    pattern = _DNS_LABEL if label else DNS_SUBDOMAIN
    if not pattern.match(value):
        kind = "DNS label" if label else "DNS subdomain"
        raise SpecError(path, f"must be a lowercase {kind} (a-z, 0-9, '-'): {value!r}")
    return value


def validate_chart_target(revision: str, field_path: str) -> str:
    """A chart version (``1.2.3``) or an npm-style semver range (``>=1.0.0 <2.0.0``, ``1.x``,
    ``*``), read by the same rules as a semver range over Git tags."""
    if not revision:
        raise SpecError(field_path, "must not be empty")
    if len(revision) > 255:
        raise SpecError(field_path, "is longer than 255 characters")
    try:
        semantic_version.NpmSpec(revision)
    except ValueError:
        raise SpecError(
            field_path,
            f"with chart, a chart version or semver range such as '1.2.3', '>=1.0.0 <2.0.0' "
            f"or '*', got {revision!r}",
        ) from None
    return revision


def split_oci_chart_url(url: str) -> tuple[str, str]:
    """``oci://host/path/NAME`` (Helm's spelling of a chart in a registry) as the repository
    ``oci://host/path`` and the chart ``NAME``; ``(url, "")`` when the URL names no chart."""
    if not url.lower().startswith("oci://") or "/" not in url[len("oci://") :].strip("/"):
        return url, ""
    repository, _, chart = url.rstrip("/").rpartition("/")
    return repository, chart


def _chart_repo_url(url: object, field_path: str) -> tuple[str, SplitResult]:
    """A chart repository URL, checked: http(s) or oci, a host, no credentials in it."""
    if not isinstance(url, str) or not url.lower().startswith(CHART_REPO_SCHEMES):
        raise SpecError(
            field_path, "with chart, a Helm repository (https://, http://) or oci:// registry"
        )
    if any(c in url for c in "\x00\n\r \t?#"):
        raise SpecError(field_path, "contains characters a chart repository URL cannot have")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed host or port
    except ValueError as exc:
        raise SpecError(field_path, f"not a valid URL: {exc}") from None
    if not parts.hostname:
        raise SpecError(field_path, "has no host")
    if parts.username or parts.password:
        raise SpecError(
            field_path, "must not carry credentials; use a repository-credential Secret"
        )
    return url, parts


def _parse_chart_source(f: SpecFields) -> Source | None:
    """The chart source ``f`` describes, or None for a Git source. A chart source has ``chart``
    (or an ``oci://`` repoURL that ends with the chart's name)."""
    url = f.raw("repoURL")
    chart = f.text("chart")
    if not chart and not (isinstance(url, str) and url.lower().startswith("oci://")):
        if f.has("chart"):
            raise SpecError(f.path("chart"), "must not be empty")
        return None
    field_path = f.path("repoURL")
    url, parts = _chart_repo_url(url, field_path)
    if not chart:  # oci://host/path/NAME
        if not parts.path.strip("/"):
            raise SpecError(field_path, "names no chart: set chart, or end the URL with its name")
        url, chart = split_oci_chart_url(url)
    if not _CHART_NAME.match(chart):
        raise SpecError(
            f.path("chart"), f"not a chart name (letters, digits, '.', '_', '-'): {chart!r}"
        )
    if f.has("path"):
        raise SpecError(f.path("path"), "must not be set with chart (the chart is the source)")
    for other in ("directory", "kustomize"):
        if f.raw(other) is not None:
            raise SpecError(f.path(other), "cannot be used with chart (a chart renders with helm)")
    if not f.has("targetRevision"):
        raise SpecError(
            f.path("targetRevision"), "is required with chart (a version or a semver range)"
        )
    revision = validate_chart_target(f.text("targetRevision"), f.path("targetRevision"))
    return Source(url.rstrip("/"), revision, ".", chart=chart)


def _parse_source(value: object, where: str = "spec.source", *, listed: bool = False) -> Source:
    """One source at ``where``; ``listed``: an entry of ``spec.sources``, which may have ``ref``."""
    f = SpecFields(value, where)
    ref = f.text("ref")
    if f.has("ref") and not listed:
        raise SpecError(f.path("ref"), "is only read in spec.sources entries")
    if f.has("ref") and not _REF_NAME.match(ref):
        raise SpecError(
            f.path("ref"), f"expected a name of letters, digits, '_' and '-', got {ref!r}"
        )
    ref_only = bool(ref) and not f.has("path") and not f.has("chart")
    chart_source = _parse_chart_source(f)
    if chart_source is not None:
        repo_url = chart_source.repo_url
    else:
        repo_url = validate_repo_url(f.raw("repoURL"), f.path("repoURL"))
    if chart_source is not None:
        revision, path = chart_source.target_revision, chart_source.path
    else:
        revision = validate_revision(f.text("targetRevision", "HEAD"), f.path("targetRevision"))
        path = validate_repo_path(f.text("path", "."), f.path("path"))
    directory = None
    if f.raw("directory") is not None:
        d = SpecFields(f.raw("directory"), f.path("directory"))
        jsonnet = (
            _parse_jsonnet(SpecFields(d.raw("jsonnet"), d.path("jsonnet")))
            if d.raw("jsonnet") is not None
            else DirectoryJsonnet()
        )
        directory = DirectorySource(
            d.flag("recurse"), d.text("include"), d.text("exclude"), jsonnet
        )
        d.done()
    kustomize = (
        parse_kustomize(SpecFields(f.raw("kustomize"), f.path("kustomize")))
        if f.raw("kustomize") is not None
        else None
    )
    helm = _parse_helm(f.raw("helm"), f.path("helm")) if f.raw("helm") is not None else None
    creds = ""
    if f.raw("secretRef") is not None:
        s = SpecFields(f.raw("secretRef"), f.path("secretRef"))
        creds = _dns_name(s.text("name"), s.path("name"))
        s.done()
    f.done()
    if sum([directory is not None, kustomize is not None, helm is not None]) > 1:
        raise SpecError(where, "set at most one of directory, kustomize, helm")
    chart = chart_source.chart if chart_source is not None else ""
    if ref and chart:  # Argo CD too: a ref provides files from a Git checkout
        raise SpecError(f.path("ref"), "must be on a Git source, not a chart")
    if ref_only and (directory is not None or kustomize is not None or helm is not None):
        raise SpecError(where, "a ref source without path renders nothing: set path to render it")
    return Source(repo_url, revision, path, directory, kustomize, helm, creds, chart, ref, ref_only)


def _ref_of(entry: str) -> str | None:
    """The ref a ``valueFiles`` entry names (``$values/env/a.yaml`` -> ``values``), or None."""
    return entry[1:].split("/", 1)[0] if entry.startswith("$") else None


def _parse_sources(value: object) -> tuple[Source, ...]:
    """``spec.sources``: 1 to ``MAX_SOURCES`` entries, ``ref`` names unique, every ``$REF``
    in a ``valueFiles`` entry declared, and at least one entry that renders."""
    if not isinstance(value, list) or not value or len(value) > MAX_SOURCES:
        raise SpecError("spec.sources", f"expected a list of 1 to {MAX_SOURCES} sources")
    sources = tuple(
        _parse_source(item, f"spec.sources[{i}]", listed=True) for i, item in enumerate(value)
    )
    refs: dict[str, int] = {}
    for i, src in enumerate(sources):
        if src.ref in refs:
            raise SpecError(
                f"spec.sources[{i}].ref",
                f"{src.ref!r} is already the ref of spec.sources[{refs[src.ref]}]",
            )
        if src.ref:
            refs[src.ref] = i
    for i, src in enumerate(sources):
        for j, entry in enumerate(src.helm.value_files if src.helm else ()):
            name = _ref_of(entry)
            field_path = f"spec.sources[{i}].helm.valueFiles[{j}]"
            if name is None:
                continue
            if name not in refs:
                raise SpecError(field_path, f"names ${name}, but no source has ref: {name}")
            rest = entry[len(name) + 2 :]
            if not rest or ".." in PurePosixPath(rest).parts:
                raise SpecError(
                    field_path, f"expected ${name}/PATH with no '..' in PATH, got {entry!r}"
                )
    if all(src.ref_only for src in sources):
        raise SpecError("spec.sources", "every source is a ref-only source: nothing renders")
    return sources


def _parse_helm(value: object, path: str) -> HelmSource:
    h = SpecFields(value, path)
    for name, why in UNSUPPORTED_HELM_FIELDS.items():
        if h.has(name):
            raise SpecError(h.path(name), f"Argo CD's {name} is not supported by gitsync ({why})")
    values, values_yaml = _helm_values(h)
    release = h.text("releaseName")
    if release:
        _dns_name(release, h.path("releaseName"), label=True)
    kube_version = h.text("kubeVersion")
    if kube_version and not _KUBE_VERSION.match(kube_version):
        raise SpecError(
            h.path("kubeVersion"), f"expected a version such as 'v1.29.3', got {kube_version!r}"
        )
    helm = HelmSource(
        release_name=release,
        value_files=_helm_value_files(h),
        values=dict(values or {}),
        values_yaml=values_yaml,
        parameters=_helm_parameters(h),
        ignore_missing_value_files=h.flag("ignoreMissingValueFiles"),
        skip_crds=h.flag("skipCrds"),
        namespace=_dns_name(h.text("namespace"), h.path("namespace"), label=True, required=False),
        kube_version=kube_version,
        api_versions=_helm_api_versions(h),
    )
    h.done()
    return helm


def _helm_value_files(h: SpecFields) -> tuple[str, ...]:
    files = []
    for i, vf in enumerate(h.items("valueFiles")):
        p = f"{h.path('valueFiles')}[{i}]"
        if not isinstance(vf, str) or not vf or PurePosixPath(vf).is_absolute() or "\x00" in vf:
            raise SpecError(p, f"expected a relative file path or glob, got {vf!r}")
        files.append(vf)
    return tuple(files)


def _helm_values(h: SpecFields) -> tuple[Mapping[str, Any] | None, str]:
    """``values`` (Argo CD's YAML string, or an object) or ``valuesObject``: the object and the
    string, one of them empty; both set is refused rather than one silently dropped."""
    values, values_yaml = h.raw("values"), ""
    if h.has("valuesObject"):
        if values is not None:
            raise SpecError(
                h.path("values"),
                "set only one of values, valuesObject (Argo CD would ignore values)",
            )
        values = h.raw("valuesObject")
        if not isinstance(values, Mapping):
            raise SpecError(h.path("valuesObject"), "expected an object")
    elif isinstance(values, str):
        values_yaml, values = values, None
    elif values is not None and not isinstance(values, Mapping):
        raise SpecError(h.path("values"), "expected a YAML string or an object")
    return values, values_yaml


_ARGO_BUILD_ENV = re.compile(r"\$\{?(ARGOCD_APP_|KUBE_)")


def _parse_jsonnet(j: SpecFields) -> DirectoryJsonnet:
    libs = tuple(
        validate_repo_path(lib, f"{j.path('libs')}[{i}]") for i, lib in enumerate(j.items("libs"))
    )
    parsed = DirectoryJsonnet(_jsonnet_variables(j, "tlas"), _jsonnet_variables(j, "extVars"), libs)
    j.done()
    return parsed


def _jsonnet_variables(j: SpecFields, name: str) -> tuple[JsonnetVariable, ...]:
    variables: list[JsonnetVariable] = []
    for i, item in enumerate(j.items(name)):
        var = SpecFields(item, f"{j.path(name)}[{i}]")
        var_name = var.text("name")
        if not var_name or "\x00" in var_name:
            raise SpecError(var.path("name"), f"expected a variable name, got {var_name!r}")
        if var_name in {v.name for v in variables}:
            raise SpecError(var.path("name"), f"{var_name!r} is given twice")
        value = var.text("value")
        if _ARGO_BUILD_ENV.search(value):
            # Argo CD substitutes its build environment here; passing "$ARGOCD_APP_NAME" on
            # literally would render something else than Argo CD without a word
            raise SpecError(
                var.path("value"),
                "Argo CD's build environment ($ARGOCD_*, $KUBE_*) is not substituted by gitsync: "
                "write the value out",
            )
        variables.append(JsonnetVariable(var_name, value, var.flag("code")))
        var.done()
    return tuple(variables)


UNSUPPORTED_KUSTOMIZE_FIELDS = {
    "version": "gitsync builds with the kustomize built into its kubectl",
    "kubeVersion": "it only reaches Helm charts inflated by kustomize, which gitsync refuses",
    "apiVersions": "it only reaches Helm charts inflated by kustomize, which gitsync refuses",
}
"""Argo CD ``kustomize`` fields gitsync does not implement, and why: each is a spec error."""
MAX_KUSTOMIZE_ENTRIES = 100
"""``images``, ``replicas``, ``patches``, ``components``, labels and annotations: at most this
many entries each (they are written into every render's overlay)."""
MAX_KUSTOMIZE_PATCH_BYTES = 256 * 1024
MAX_ANNOTATION_BYTES = 256 * 1024
"""What the API server allows for all of an object's annotations together."""
_IMAGE_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(
    rf"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?/)?{_IMAGE_PART}(?:/{_IMAGE_PART})*$"
)
_IMAGE_TAG = re.compile(r"^\w[\w.-]{0,127}$")
_IMAGE_DIGEST = re.compile(
    r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$"
)
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_NAME_PREFIX = re.compile(r"^[a-z0-9][-a-z0-9.]{0,62}$")
_NAME_SUFFIX = re.compile(r"^[-a-z0-9.]{0,62}[a-z0-9]$")
_MAX_REPLICAS = 2**31 - 1
_ENVSUBST_HINT = (
    "Argo CD substitutes its build environment ($ARGOCD_APP_REVISION, ...) here and gitsync "
    "does not: write the value out"
)


def parse_kustomize(k: SpecFields) -> KustomizeSource:
    """``spec.source.kustomize`` in Argo CD's spelling, every value checked."""
    for name, why in UNSUPPORTED_KUSTOMIZE_FIELDS.items():
        if k.has(name):
            raise SpecError(k.path(name), f"Argo CD's {name} is not supported by gitsync ({why})")
    prefix, suffix = k.text("namePrefix"), k.text("nameSuffix")
    if prefix and not _NAME_PREFIX.match(prefix):
        raise SpecError(k.path("namePrefix"), f"expected a lowercase name prefix, got {prefix!r}")
    if suffix and not _NAME_SUFFIX.match(suffix):
        raise SpecError(k.path("nameSuffix"), f"expected a lowercase name suffix, got {suffix!r}")
    envsubst = k.flag("commonAnnotationsEnvsubst")
    source = KustomizeSource(
        images=_kustomize_images(k),
        name_prefix=prefix,
        name_suffix=suffix,
        common_labels=_kustomize_metadata(k, "commonLabels", labels=True, envsubst=True),
        force_common_labels=k.flag("forceCommonLabels"),
        label_without_selector=k.flag("labelWithoutSelector"),
        label_include_templates=k.flag("labelIncludeTemplates"),
        common_annotations=_kustomize_metadata(
            k, "commonAnnotations", labels=False, envsubst=envsubst
        ),
        force_common_annotations=k.flag("forceCommonAnnotations"),
        namespace=_dns_name(k.text("namespace"), k.path("namespace"), label=True, required=False),
        replicas=_kustomize_replicas(k),
        patches=_kustomize_patches(k),
        components=_kustomize_components(k),
        ignore_missing_components=k.flag("ignoreMissingComponents"),
    )
    k.done()
    return source


def _kustomize_list(k: SpecFields, name: str) -> list[Any]:
    listed = k.items(name)
    if len(listed) > MAX_KUSTOMIZE_ENTRIES:
        raise SpecError(k.path(name), f"at most {MAX_KUSTOMIZE_ENTRIES} entries, got {len(listed)}")
    return listed


def _kustomize_images(k: SpecFields) -> tuple[KustomizeImage, ...]:
    images: dict[str, KustomizeImage] = {}
    for i, entry in enumerate(_kustomize_list(k, "images")):
        where = f"{k.path('images')}[{i}]"
        image = parse_kustomize_image(entry, where)
        if image.name in images:
            raise SpecError(where, f"image {image.name!r} is given twice")
        images[image.name] = image
    return tuple(images.values())


def parse_kustomize_image(entry: object, where: str) -> KustomizeImage:
    """One Argo CD image override: ``[name=]newName[:tag|@digest]``, as ``kustomize edit set
    image`` reads it; without ``name=``, only a tag or digest can be set."""
    if not isinstance(entry, str) or not entry or len(entry) > 512:
        raise SpecError(
            where, f"expected an image such as 'nginx=registry/nginx:1.25', got {entry!r}"
        )
    if "$" in entry:
        raise SpecError(where, _ENVSUBST_HINT)
    name, renamed, new = entry.partition("=")
    reference, tag, digest = _split_image(new if renamed else entry, where)
    if not renamed:
        if not tag and not digest:
            raise SpecError(
                where, f"{entry!r} changes nothing: use name=newName, name:tag or name@digest"
            )
        return KustomizeImage(reference, new_tag=tag, digest=digest)
    if not _IMAGE_NAME.match(name) or len(name) > 255:
        raise SpecError(where, f"{name!r} is not an image name")
    return KustomizeImage(name, new_name=reference, new_tag=tag, digest=digest)


def _split_image(text: str, where: str) -> tuple[str, str, str]:
    """``registry:5000/app:1.2`` -> (``registry:5000/app``, ``1.2``, ""); a digest after ``@``."""
    rest, at, digest = text.partition("@")
    head, colon, tag = rest.rpartition(":")
    if not colon or "/" in tag:  # the colon was a registry's port, or there is none
        head, colon, tag = rest, "", ""
    if not _IMAGE_NAME.match(head) or len(head) > 255:
        raise SpecError(where, f"{head!r} is not an image name")
    if colon and not _IMAGE_TAG.match(tag):
        raise SpecError(where, f"{tag!r} is not an image tag")
    if at and not _IMAGE_DIGEST.match(digest):
        raise SpecError(where, f"{digest!r} is not a digest such as 'sha256:<64 hex digits>'")
    if tag and digest:
        raise SpecError(where, "set a tag or a digest, not both")
    return head, tag, digest


def _qualified_key(key: object, where: str) -> str:
    """A label or annotation key: ``[prefix/]name``, the prefix a DNS subdomain."""
    if not isinstance(key, str):
        raise SpecError(where, f"expected a key such as 'team' or 'example.com/team', got {key!r}")
    prefix, slash, name = key.rpartition("/")
    if not _LABEL_NAME.match(name) or (slash and not DNS_SUBDOMAIN.match(prefix)):
        raise SpecError(where, f"{key!r} is not a label or annotation key ([prefix/]name)")
    return key


def _kustomize_metadata(
    k: SpecFields, name: str, *, labels: bool, envsubst: bool
) -> dict[str, str]:
    """``commonLabels``/``commonAnnotations``: keys checked, values strings (label values
    checked as such); Argo CD substitutes variables in labels always, in annotations only
    with ``commonAnnotationsEnvsubst``."""
    value = k.raw(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(k.path(name), f"expected an object of strings, got {type(value).__name__}")
    if len(value) > MAX_KUSTOMIZE_ENTRIES:
        raise SpecError(k.path(name), f"at most {MAX_KUSTOMIZE_ENTRIES} entries, got {len(value)}")
    found: dict[str, str] = {}
    for key, text in value.items():
        where = f"{k.path(name)}.{key}"
        _qualified_key(key, where)
        if not isinstance(text, str):
            raise SpecError(where, f"expected a string (quote it), got {text!r}")
        if envsubst and "$" in text:
            raise SpecError(where, _ENVSUBST_HINT)
        if labels and not _LABEL_VALUE.match(text):
            raise SpecError(where, f"{text!r} is not a label value (at most 63 of a-z, 0-9, -_.)")
        found[key] = text
    if sum(len(key) + len(text) for key, text in found.items()) > MAX_ANNOTATION_BYTES:
        raise SpecError(k.path(name), f"more than {MAX_ANNOTATION_BYTES} bytes in all")
    return found


def _kustomize_replicas(k: SpecFields) -> tuple[KustomizeReplica, ...]:
    replicas: list[KustomizeReplica] = []
    for i, item in enumerate(_kustomize_list(k, "replicas")):
        r = SpecFields(item, f"{k.path('replicas')}[{i}]")
        name = _dns_name(r.text("name"), r.path("name"))
        if name in {replica.name for replica in replicas}:
            raise SpecError(r.path("name"), f"{name!r} is given twice")
        count = r.raw("count")
        if isinstance(count, str) and count.isdigit():  # Argo CD: an int or a string of one
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_REPLICAS:
            raise SpecError(r.path("count"), f"expected a replica count from 0, got {count!r}")
        replicas.append(KustomizeReplica(name, count))
        r.done()
    return tuple(replicas)


_PATCH_TARGET_FIELDS = (  # in the order of KustomizePatchTarget's fields
    "group",
    "version",
    "kind",
    "name",
    "namespace",
    "labelSelector",
    "annotationSelector",
)


def _kustomize_patches(k: SpecFields) -> tuple[KustomizePatch, ...]:
    patches: list[KustomizePatch] = []
    for i, item in enumerate(_kustomize_list(k, "patches")):
        p = SpecFields(item, f"{k.path('patches')}[{i}]")
        which = p.one_of(("patch", "path"), required=True)
        text = p.text(which)
        if which == "patch" and not text.strip():
            raise SpecError(p.path("patch"), "must not be empty")
        if len(text.encode()) > MAX_KUSTOMIZE_PATCH_BYTES or "\x00" in text:
            raise SpecError(p.path(which), f"at most {MAX_KUSTOMIZE_PATCH_BYTES} bytes, no NUL")
        if which == "path":
            pure = PurePosixPath(text or ".")
            if pure.is_absolute() or ".." in pure.parts or str(pure) == ".":
                raise SpecError(
                    p.path("path"),
                    f"expected a patch file in the app's directory (relative, no '..'): {text!r}",
                )
            text = str(pure)
        target = _patch_target(p.raw("target"), p.path("target"))
        allow_name: bool | None = None
        allow_kind: bool | None = None
        if p.raw("options") is not None:
            o = SpecFields(p.raw("options"), p.path("options"))
            allow_name = o.flag("allowNameChange") if o.has("allowNameChange") else None
            allow_kind = o.flag("allowKindChange") if o.has("allowKindChange") else None
            o.done()
        patches.append(
            KustomizePatch(
                patch=text if which == "patch" else "",
                path=text if which == "path" else "",
                target=target,
                allow_name_change=allow_name,
                allow_kind_change=allow_kind,
            )
        )
        p.done()
    return tuple(patches)


def _patch_target(value: object, where: str) -> KustomizePatchTarget | None:
    if value is None:
        return None
    t = SpecFields(value, where)
    values: list[str] = []
    for name in _PATCH_TARGET_FIELDS:
        text = t.text(name)
        if len(text) > 1024 or any(c in text for c in "\x00\n"):
            raise SpecError(t.path(name), "at most 1024 characters on one line")
        values.append(text)
    t.done()
    return KustomizePatchTarget(*values)


def _kustomize_components(k: SpecFields) -> tuple[str, ...]:
    """Directories relative to the app's; ``..`` is allowed (components usually sit next to
    the overlays), the renderer keeps them inside the repository."""
    components: list[str] = []
    for i, entry in enumerate(_kustomize_list(k, "components")):
        where = f"{k.path('components')}[{i}]"
        if not isinstance(entry, str) or not entry or len(entry) > 1024 or "\x00" in entry:
            raise SpecError(where, f"expected a directory relative to the app's, got {entry!r}")
        if PurePosixPath(entry).is_absolute():
            raise SpecError(where, f"must be relative to the app's directory: {entry!r}")
        components.append(entry)
    return tuple(components)


def _helm_parameters(h: SpecFields) -> tuple[HelmParameter, ...]:
    parameters = []
    for i, item in enumerate(h.items("parameters")):
        param = SpecFields(item, f"{h.path('parameters')}[{i}]")
        name = param.text("name")
        if not name or any(c in name for c in "=,\x00"):
            raise SpecError(
                param.path("name"), f"expected a value path such as 'a.b', got {name!r}"
            )
        raw = _or_default(param.raw("value"), "")  # Argo CD: no value is the empty string
        if not isinstance(raw, str):
            raise SpecError(param.path("value"), f"expected a string (quote it), got {raw!r}")
        parameters.append(HelmParameter(name, raw, param.flag("forceString")))
        param.done()
    return tuple(parameters)


def _helm_api_versions(h: SpecFields) -> tuple[str, ...] | None:
    if not h.has("apiVersions"):
        return None
    listed = h.items("apiVersions")
    if not listed or len(listed) > MAX_API_VERSIONS:
        raise SpecError(
            h.path("apiVersions"),
            f"expected 1 to {MAX_API_VERSIONS} entries, got {len(listed)}",
        )
    for i, entry in enumerate(listed):
        if not isinstance(entry, str) or not re.fullmatch(r"[\w.-]+(/[\w.-]+){0,2}", entry):
            raise SpecError(
                f"{h.path('apiVersions')}[{i}]",
                f"expected [group/]version[/Kind] such as 'apps/v1/Deployment', got {entry!r}",
            )
    return tuple(listed)


def _parse_sync_policy(value: object) -> SyncPolicy:
    f = SpecFields(value, "spec.syncPolicy")
    automated = f.raw("automated")
    prune = self_heal = allow_empty = False
    if automated is not None:
        a = SpecFields(automated, f.path("automated"))
        prune, self_heal, allow_empty = a.flag("prune"), a.flag("selfHeal"), a.flag("allowEmpty")
        a.done()
    try:
        options = sync_options.parse_app_options(f.items("syncOptions"), f.path("syncOptions"))
    except sync_options.SyncOptionError as exc:
        raise SpecError(exc.where, exc.problem) from exc
    retry = Retry()
    if f.raw("retry") is not None:
        r = SpecFields(f.raw("retry"), f.path("retry"))
        limit = r.raw("limit")
        if limit is None:
            limit = 5
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not -1 <= limit <= MAX_RETRY_LIMIT
        ):
            raise SpecError(
                r.path("limit"), f"expected an integer from -1 to {MAX_RETRY_LIMIT}, got {limit!r}"
            )
        backoff = Backoff()
        if r.raw("backoff") is not None:
            b = SpecFields(r.raw("backoff"), r.path("backoff"))
            duration = parse_duration(
                _or_default(b.raw("duration"), "5s"),
                b.path("duration"),
                maximum=MAX_BACKOFF_SECONDS,
            )
            factor = b.raw("factor")
            if factor is None:
                factor = 2
            if (
                isinstance(factor, bool)
                or not isinstance(factor, int | float)
                or not 1 <= factor <= 10
            ):
                raise SpecError(b.path("factor"), f"expected a number from 1 to 10, got {factor!r}")
            max_duration = parse_duration(
                _or_default(b.raw("maxDuration"), "3m"),
                b.path("maxDuration"),
                maximum=MAX_BACKOFF_SECONDS,
            )
            b.done()
            backoff = Backoff(duration, float(factor), max(max_duration, duration))
        r.done()
        retry = Retry(limit, backoff)
    f.done()
    return SyncPolicy(
        automated is not None,
        prune,
        self_heal,
        allow_empty,
        options.names_true(),
        retry,
        options,
    )


def parse_ignore_differences(value: object) -> tuple[IgnoreDifference, ...]:
    """``spec.ignoreDifferences``: the one parser of these rules; errors name the field."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError("spec.ignoreDifferences", "expected a list")
    rules = []
    for i, item in enumerate(value):
        f = SpecFields(item, f"spec.ignoreDifferences[{i}]")
        pointers = []
        for j, ptr in enumerate(f.items("jsonPointers")):
            # "" is a JSON pointer too, but to the whole object: ignoring all of it is not a
            # difference rule (IgnoreRule refuses it), so the spec refuses it with the field's name
            if not isinstance(ptr, str) or not ptr.startswith("/") or len(ptr) > 1024:
                raise SpecError(
                    f"{f.path('jsonPointers')}[{j}]",
                    f"not a JSON pointer to a field (starts with '/'): {ptr!r}",
                )
            pointers.append(ptr)
        managers = []
        for j, mgr in enumerate(f.items("managedFieldsManagers")):
            if not isinstance(mgr, str) or not mgr:
                raise SpecError(
                    f"{f.path('managedFieldsManagers')}[{j}]", "expected a manager name"
                )
            managers.append(mgr)
        rules.append(
            IgnoreDifference(
                group=f.text("group", "*") or "",
                kind=f.text("kind", "*"),
                name=f.text("name", "*"),
                namespace=f.text("namespace", "*"),
                json_pointers=tuple(pointers),
                managers=tuple(managers),
            )
        )
        f.done()
    return tuple(rules)


def parse_depends_on(value: object, namespace: str, name: str) -> tuple[DependencyRef, ...]:
    """``spec.dependsOn``: at most ``MAX_DEPENDENCIES`` distinct Applications, none the app
    itself (the shortest dependency cycle; longer ones need the other apps and are found by
    ``gitsync.controller.dependencies.find_cycle``)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_DEPENDENCIES:
        raise SpecError("spec.dependsOn", f"expected a list of at most {MAX_DEPENDENCIES} entries")
    refs: list[DependencyRef] = []
    for i, entry in enumerate(value):
        where = f"spec.dependsOn[{i}]"
        f = SpecFields(entry, where)
        ref = DependencyRef(
            namespace=_dns_name(
                f.text("namespace"), f.path("namespace"), label=True, required=False
            )
            or namespace,
            name=_dns_name(f.text("name"), f.path("name")),
        )
        f.done()
        if ref == DependencyRef(namespace, name):
            raise SpecError(where, f"the application depends on itself (cycle: {ref} -> {ref})")
        if ref in refs:
            raise SpecError(where, f"{ref} is listed twice")
        refs.append(ref)
    return tuple(refs)


def parse_application(doc: object) -> Application:
    """Validate an Application document; raises ``SpecError`` naming the first bad field."""
    top = SpecFields(doc, "")
    api_version, kind = top.text("apiVersion"), top.text("kind")
    if api_version != API_VERSION or kind != KIND:
        raise SpecError(
            "apiVersion/kind", f"expected {API_VERSION} {KIND}, got {api_version} {kind}"
        )
    meta = SpecFields(top.raw("metadata"), "metadata")
    name = _dns_name(meta.text("name"), "metadata.name")
    namespace = _dns_name(meta.text("namespace", "gitsync"), "metadata.namespace", label=True)
    uid = meta.text("uid")
    generation = meta.raw("generation") or 0
    for ignored in _IGNORED_METADATA:
        meta.raw(ignored)
    meta.done()
    top.raw("status")
    spec = SpecFields(top.raw("spec"), "spec")
    sources: tuple[Source, ...] = ()
    if spec.raw("sources") is not None:
        if spec.raw("source") is not None:
            raise SpecError("spec.sources", "set only one of source, sources")
        sources = _parse_sources(spec.raw("sources"))
        source = sources[0]
    elif spec.raw("source") is None:
        raise SpecError("spec.source", "is required (or spec.sources)")
    else:
        source = _parse_source(spec.raw("source"))
    for i, entry in enumerate(source.helm.value_files if source.helm and not sources else ()):
        if entry.startswith("$"):
            raise SpecError(
                f"spec.source.helm.valueFiles[{i}]",
                f"{entry!r} names a ref, which only spec.sources entries can declare",
            )
    d = SpecFields(spec.raw("destination"), "spec.destination")
    destination = Destination(
        namespace=_dns_name(d.text("namespace"), d.path("namespace"), label=True, required=False),
        name=_dns_name(d.text("name"), d.path("name"), required=False),
    )
    d.done()
    policy = _parse_sync_policy(spec.raw("syncPolicy"))
    ignore = parse_ignore_differences(spec.raw("ignoreDifferences"))
    interval = parse_duration(
        _or_default(spec.raw("interval"), "3m"),
        "spec.interval",
        minimum=MIN_INTERVAL_SECONDS,
        maximum=MAX_INTERVAL_SECONDS,
    )
    suspend = spec.flag("suspend")
    try:
        windows = parse_sync_windows(spec.raw("syncWindows"), "spec.syncWindows", scoped=False)
    except WindowError as exc:
        raise SpecError(exc.field, exc.problem) from None
    service_account = _dns_name(
        spec.text("serviceAccountName"), "spec.serviceAccountName", required=False
    )
    depends_on = parse_depends_on(spec.raw("dependsOn"), namespace, name)
    spec.done()
    top.done()
    return Application(
        name=name,
        namespace=namespace,
        source=source,
        destination=destination,
        sync_policy=policy,
        ignore_differences=ignore,
        interval=interval,
        suspend=suspend,
        sync_windows=windows,
        uid=uid,
        generation=int(generation) if isinstance(generation, int) else 0,
        service_account_name=service_account,
        sources=sources,
        depends_on=depends_on,
    )
