"""``translate``: Argo CD documents in, gitsync documents and the report out.

The one place that dispatches on the kind of each document (``TRANSLATORS``): an Application
becomes a gitsync Application, an AppProject the policy entry of the namespace its Applications
are imported into, an ApplicationSet gitsync's ApplicationSet (``gitsync.argocd.appset``).

Which namespace is a project's: gitsync's project *is* the namespace, so the AppProject P is
written as ``projects.<N>`` for each namespace N its Applications are imported into (one, with
``--namespace``). A project none of whose Applications were imported is keyed by
``--namespace`` when given, else by its own name (the report says so). Two AppProjects whose
Applications share a namespace cannot both be its rules: neither is written, and the report says
to import them into namespaces of their own. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitsync.argocd.application import (
    ARGO_API_VERSION,
    DEFAULT_NAMESPACE,
    ImportOptions,
    TranslatedApplication,
    translate_application,
)
from gitsync.argocd.appset import translate_application_set
from gitsync.argocd.project import TranslatedProject, translate_project
from gitsync.argocd.report import DocumentReport, ImportReport
from gitsync.kinds import API_VERSION, DESTINATION_POLICY


@dataclass(frozen=True)
class SourceDocument:
    """One input document and where it was read (``FILE`` or ``FILE#N``)."""

    source: str
    document: Mapping[str, Any]


@dataclass
class ImportResult:
    applications: list[dict[str, Any]] = field(default_factory=list)
    """gitsync Applications, in input order."""
    application_sets: list[dict[str, Any]] = field(default_factory=list)
    """gitsync ApplicationSets, in input order."""
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    """namespace -> its project's rules (``projects.<namespace>`` of the --policy file)."""
    report: ImportReport = field(default_factory=ImportReport)

    @property
    def policy(self) -> dict[str, Any] | None:
        """The policy file snippet holding ``projects``, or None when no project was imported."""
        if not self.projects:
            return None
        return {"apiVersion": API_VERSION, "kind": DESTINATION_POLICY, "projects": self.projects}


def is_argo_application(doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` is an Argo CD Application (what ``-f`` translates)."""
    return doc.get("apiVersion") == ARGO_API_VERSION and doc.get("kind") == "Application"


def _not_supported(reason: str) -> Callable[[SourceDocument], DocumentReport]:
    def report(item: SourceDocument) -> DocumentReport:
        meta = item.document.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        return DocumentReport(
            item.source,
            str(item.document.get("kind") or "(no kind)"),
            str(meta.get("name") or ""),
            str(meta.get("namespace") or ""),
            written=False,
            problem=reason,
        )

    return report


TRANSLATORS: Mapping[str, Callable[[SourceDocument], DocumentReport] | None] = {
    "Application": None,  # translate_application, with the options and the projects
    "AppProject": None,  # translate_project, keyed once every Application is known
    "ApplicationSet": None,  # translate_application_set, with the options
}
"""The Argo CD kinds the importer reads; None: translated by ``translate`` itself."""


def translate(documents: Sequence[SourceDocument], options: ImportOptions) -> ImportResult:
    """Every document translated or reported; see the module docstring for projects."""
    result = ImportResult()
    reports: list[DocumentReport] = []
    project_docs = [
        d
        for d in documents
        if _argo_kind(d.document) == "AppProject"
        and isinstance(d.document.get("metadata"), Mapping)
    ]
    project_names = {str(d.document["metadata"].get("name") or "") for d in project_docs}
    apps: list[TranslatedApplication] = []
    projects: list[TranslatedProject] = []
    for item in documents:
        kind = _argo_kind(item.document)
        if kind == "Application":
            app = translate_application(item.document, item.source, options, project_names)
            apps.append(app)
            reports.append(app.report)
        elif kind == "AppProject":
            project = translate_project(item.document, item.source)
            projects.append(project)
            reports.append(project.report)
        elif kind == "ApplicationSet":
            app_set = translate_application_set(item.document, item.source, options)
            reports.append(app_set.report)
            if app_set.document is not None:
                result.application_sets.append(app_set.document)
        elif kind is not None and (special := TRANSLATORS.get(kind)) is not None:
            reports.append(special(item))
        else:
            reports.append(
                _not_supported("not an Argo CD Application, AppProject or ApplicationSet")(item)
            )
    _refuse_duplicates(apps)
    result.applications = [a.document for a in apps if a.document is not None]
    result.projects = _key_projects(projects, apps, options)
    result.report = ImportReport(reports)
    return result


def _refuse_duplicates(apps: list[TranslatedApplication]) -> None:
    """Two Applications imported to one namespace under one name: the second is not written
    (one would silently replace the other)."""
    seen: dict[tuple[str, str], str] = {}
    for app in apps:
        if app.document is None:
            continue
        key = (app.namespace, str(app.document["metadata"].get("name")))
        if key in seen:
            app.document = None
            app.report.written = False
            app.report.problem = (
                f"{seen[key]} is imported as Application {key[0]}/{key[1]} too: give one of "
                "them another name or --namespace"
            )
        else:
            seen[key] = app.report.source


def _argo_kind(doc: Mapping[str, Any]) -> str | None:
    if doc.get("apiVersion") != ARGO_API_VERSION:
        return None
    kind = doc.get("kind")
    return kind if isinstance(kind, str) else None


def _key_projects(
    projects: list[TranslatedProject],
    apps: list[TranslatedApplication],
    options: ImportOptions,
) -> dict[str, dict[str, Any]]:
    namespaces_of: dict[str, list[str]] = {}
    for app in apps:
        if app.document is not None and app.project:
            found = namespaces_of.setdefault(app.project, [])
            if app.namespace not in found:
                found.append(app.namespace)
    claims: dict[str, list[TranslatedProject]] = {}
    for project in projects:
        if project.rules is None:
            continue
        keys = namespaces_of.get(project.name) or [options.namespace or project.name]
        how = (
            "the namespace of its Applications"
            if project.name in namespaces_of
            else (
                "--namespace"
                if options.namespace
                else f"its name: no Application of it was imported (rename the key to the "
                f"namespace its Applications live in, default {DEFAULT_NAMESPACE})"
            )
        )
        project.report.output = ", ".join(f"projects.{k}" for k in keys) + f" (keyed by {how})"
        for key in keys:
            claims.setdefault(key, []).append(project)
    out: dict[str, dict[str, Any]] = {}
    for key, claimants in claims.items():
        if len(claimants) == 1:
            out[key] = claimants[0].rules or {}
            continue
        names = ", ".join(sorted(c.name for c in claimants))
        for c in claimants:
            c.report.written = False
            c.report.problem = (
                f"AppProjects {names} would all be the rules of namespace {key} (gitsync's "
                "project is the namespace): import each project's Applications with its own "
                "--namespace"
            )
    return {k: v for k, v in out.items() if all(c.report.written for c in claims[k])}


__all__ = [
    "ImportOptions",
    "ImportResult",
    "SourceDocument",
    "is_argo_application",
    "translate",
]
