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
class DirectoryOptions:
    """Plain-directory source, like Argo CD's ``directory``: globs match the file name or the
    path relative to the app directory; ``{a,b}`` alternatives are supported."""

    recurse: bool = False
    include: str | None = None
    exclude: str | None = None


@dataclass(frozen=True)
class HelmOptions:
    """Helm source. Values are layered like Argo CD: ``value_files`` in order, then ``values``,
    then ``set_values`` (``"a.b=c"`` expressions, Helm ``--set`` syntax)."""

    release_name: str
    value_files: tuple[str, ...] = ()
    values: Mapping[str, Any] | None = None
    set_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class KustomizeOptions:
    """Kustomize source. No options yet: builds always run with the fixed safe flag set."""


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
