"""Render: turn a directory of a Git checkout into the list of desired manifests.

This is the second stage of the pipeline (source -> **render** -> diff -> sync). It is pure apart
from reading the checkout and running kustomize and Helm, and it treats the repository as
untrusted input: nothing is read outside the checkout (resolved paths and symlinks are checked
against the repo root), every read and tool run is bounded in bytes, documents, files and time
(``RenderLimits``), and all YAML goes through one loader that refuses alias bombs
(``load_yaml_documents``). Failures are ``RenderError`` (terminal: the same commit fails the same
way) naming the repo-relative file and, where known, the line.

The source type is detected like Argo CD does: ``Chart.yaml`` -> Helm, a kustomization file ->
kustomize, otherwise a plain directory of YAML/JSON. Explicit options in the request win over
detection. ``RenderCache`` memoises renders per (commit, path, parameters).

Owns: turning a checkout into manifests. May import: application, model, kinds, errors, logs;
``helm_python`` only in ``render.helm`` and ``render.helm_worker``. Never sync, engine or above
(import-linter: ``layers``).
"""

from __future__ import annotations

from gitsync.render.cache import RenderCache
from gitsync.render.directory import what_was_found
from gitsync.render.errors import LimitExceededError, PathEscapeError, RenderError
from gitsync.render.manifest import RenderedManifest, copy_object
from gitsync.render.options import (
    DirectoryOptions,
    HelmOptions,
    JsonnetOptions,
    JsonnetVar,
    KustomizeOptions,
    RenderLimits,
    RenderRequest,
    helm_set_expression,
)
from gitsync.render.renderer import SourceType, detect, render, source_type
from gitsync.render.safe_yaml import load_yaml_documents

__all__ = [
    "DirectoryOptions",
    "HelmOptions",
    "JsonnetOptions",
    "JsonnetVar",
    "KustomizeOptions",
    "LimitExceededError",
    "PathEscapeError",
    "RenderCache",
    "RenderError",
    "RenderLimits",
    "RenderRequest",
    "RenderedManifest",
    "SourceType",
    "copy_object",
    "detect",
    "helm_set_expression",
    "load_yaml_documents",
    "render",
    "source_type",
    "what_was_found",
]
