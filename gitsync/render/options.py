"""What to render and within which bounds: the immutable request the engine hands to ``render``.

Requests are frozen dataclasses so that one value can be hashed into the render-cache key and passed
between threads without copies. The namespace is carried along but is *not* written into objects
here: whether an object is namespaced is a discovery question the sync layer answers. Helm is the
one exception, because a chart reads ``.Release.Namespace`` while rendering.

``RenderLimits`` holds every bound in one place so a hostile or broken repository fails with a
``LimitExceededError`` instead of exhausting the controller's memory, CPU or time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitsync.application import KustomizeSource

MIB = 1024 * 1024


@dataclass(frozen=True)
class RenderLimits:
    """Bounds applied to one render.

    ``max_bytes`` bounds manifest bytes: plain files (checked from ``stat`` before anything is
    read) and the output of kustomize and Helm. ``max_input_bytes`` bounds the trees handed to
    kustomize and Helm (including decompressed ``.tgz`` subcharts). ``max_alias_expansion`` is
    the number of YAML nodes that aliases may add per document stream; ``max_depth`` is the
    deepest allowed YAML/JSON nesting. ``max_tool_memory_bytes`` bounds the heap of each
    kustomize or Helm child process (``RLIMIT_DATA``).
    """

    max_bytes: int = 10 * MIB
    max_input_bytes: int = 50 * MIB
    max_documents: int = 10_000
    max_files: int = 10_000
    timeout_seconds: float = 60.0
    max_alias_expansion: int = 100_000
    max_depth: int = 128
    max_tool_memory_bytes: int = 1024 * MIB


@dataclass(frozen=True)
class JsonnetVar:
    """One Argo CD ``tlas``/``extVars`` entry: ``value`` is a string, or code if ``code``."""

    name: str
    value: str
    code: bool = False


@dataclass(frozen=True)
class JsonnetOptions:
    """Argo CD's ``directory.jsonnet``: top-level arguments, external variables and library
    directories (repository-relative, searched after the importing file's directory)."""

    tlas: tuple[JsonnetVar, ...] = ()
    ext_vars: tuple[JsonnetVar, ...] = ()
    libs: tuple[str, ...] = ()


@dataclass(frozen=True)
class DirectoryOptions:
    """Plain-directory source, like Argo CD's ``directory``: globs match the file name or the
    path relative to the app directory; ``{a,b}`` alternatives are supported. ``*.jsonnet``
    files are evaluated with ``jsonnet`` (Argo CD does so in every directory app)."""

    recurse: bool = False
    include: str | None = None
    exclude: str | None = None
    jsonnet: JsonnetOptions = field(default_factory=JsonnetOptions)


@dataclass(frozen=True)
class FetchedDependency:
    """A remote dependency the engine fetched: the unpacked chart at ``path`` (read-only, in
    the chart store), known by its ``digest``. ``repository`` is shown redacted in errors."""

    name: str
    repository: str
    version: str
    digest: str
    path: str


@dataclass(frozen=True)
class HelmOptions:
    """Helm source, with Argo CD's value precedence (lowest first): ``value_files`` in order
    (globs expanded in place), then ``values_yaml`` (Argo's ``values`` string) or ``values`` (an
    object: ``valuesObject``), then ``set_values`` (Helm ``--set`` expressions), then
    ``set_string_values`` (``--set-string``: every value stays a string).

    ``kube_version`` and ``api_versions`` become ``.Capabilities.KubeVersion`` and
    ``.Capabilities.APIVersions``; empty means Helm's built-in defaults. The engine fills them
    from the spec or from the destination cluster's discovery, so they are part of the render
    cache key like everything else here.
    """

    release_name: str
    value_files: tuple[str, ...] = ()
    ignore_missing_value_files: bool = False
    values: Mapping[str, Any] | None = None
    values_yaml: str = ""
    set_values: tuple[str, ...] = ()
    set_string_values: tuple[str, ...] = ()
    skip_crds: bool = False
    kube_version: str = ""
    api_versions: tuple[str, ...] = ()
    ref_roots: Mapping[str, Path] = field(default_factory=dict)
    """The checkouts of an app's ``ref`` sources (``spec.sources``) by ref name: a
    ``value_files`` entry ``$NAME/path`` is read from ``ref_roots[NAME]``, confined to it."""
    dependencies: tuple[FetchedDependency, ...] = ()
    """Remote chart dependencies the engine fetched for a chart in Git (``chart_dependencies``)."""


def helm_set_expression(name: str, value: str) -> str:
    """``name=value`` for ``--set``/``--set-string`` from one Argo CD ``parameters`` entry.

    Argo CD escapes every comma in the value that is not already escaped, so ``a,b`` is one
    string, not two assignments - except a value written as a Helm list, ``{a,b}``, which is
    passed unchanged. Same spelling, same result.
    """
    if value.startswith("{") and value.endswith("}"):
        return f"{name}={value}"
    escaped = []
    previous = ""
    for char in value:
        escaped.append("\\," if char == "," and previous != "\\" else char)
        previous = char
    return f"{name}={''.join(escaped)}"


@dataclass(frozen=True)
class KustomizeOptions:
    """Kustomize source: the build always runs with the fixed safe flag set; ``overrides`` are
    the Application's ``kustomize`` fields (Argo CD's), applied through a generated overlay."""

    overrides: KustomizeSource = field(default_factory=KustomizeSource)


@dataclass(frozen=True)
class RenderRequest:
    """Render ``path`` (relative to ``repo_root``, the checkout) with the given source options."""

    repo_root: Path
    path: str
    namespace: str = ""
    directory: DirectoryOptions | None = None
    helm: HelmOptions | None = None
    kustomize: KustomizeOptions | None = None
    limits: RenderLimits = field(default_factory=RenderLimits)
