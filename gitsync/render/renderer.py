"""Choosing the renderer for a directory and running it under one deadline.

Detection follows Argo CD: ``Chart.yaml`` means Helm, a kustomization file means kustomize,
anything else is a plain directory. Options present in the request win over detection, so an
Application that says "directory" renders a directory even if a stray Chart.yaml sits in it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

from gitsync.render.chart_dependencies import CHART_FILE
from gitsync.render.confinement import Deadline, Repo
from gitsync.render.directory import render_directory
from gitsync.render.helm import render_helm
from gitsync.render.kustomize import find_kustomization, render_kustomize
from gitsync.render.manifest import RenderedManifest
from gitsync.render.options import DirectoryOptions, HelmOptions, KustomizeOptions, RenderRequest

SourceType = Literal["helm", "kustomize", "plain"]


def detect(repo_root: Path, path: str) -> SourceType:
    """Which renderer a directory needs: Helm if it has Chart.yaml, kustomize if it has a
    kustomization file, plain otherwise. The path is confined like a render's."""
    return _detect_dir(Repo.at(repo_root).app_dir(path))


def _detect_dir(app_dir: Path) -> SourceType:
    if (app_dir / CHART_FILE).is_file():
        return "helm"
    if find_kustomization(app_dir) is not None:
        return "kustomize"
    return "plain"


def source_type(req: RenderRequest) -> SourceType:
    """The renderer ``req`` gets: options present in the request, else what ``detect`` finds."""
    if req.helm is not None:
        return "helm"
    if req.kustomize is not None:
        return "kustomize"
    if req.directory is not None:
        return "plain"
    return detect(req.repo_root, req.path)


def render(req: RenderRequest) -> list[RenderedManifest]:
    """Render ``req.path`` of the checkout at ``req.repo_root`` into manifests (stable order)."""
    deadline = Deadline(req.limits.timeout_seconds)
    repo = Repo.at(req.repo_root)
    app_dir = repo.app_dir(req.path)
    kind = source_type(req)
    if kind == "helm":
        helm = req.helm or HelmOptions(release_name="")
        if not helm.release_name:  # no helm options in the spec: the chart was detected
            helm = replace(helm, release_name=_default_release_name(req.path, repo))
        return render_helm(
            repo, app_dir, helm, namespace=req.namespace, limits=req.limits, deadline=deadline
        )
    if kind == "kustomize":
        options = req.kustomize or KustomizeOptions()
        return render_kustomize(repo, app_dir, options, req.limits, deadline)
    return render_directory(
        repo, app_dir, req.directory or DirectoryOptions(), req.limits, deadline
    )


def _default_release_name(path: str, repo: Repo) -> str:
    """Without Helm options, the release is named after the directory (Argo CD names it after the
    Application, which the render layer does not know)."""
    name = Path(path).name or repo.root.name
    return name.lower().replace("_", "-")[:53]
