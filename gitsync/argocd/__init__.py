"""Reading Argo CD's manifests: ``gitsync import argocd`` and ``-f`` with an Argo CD Application.

Teams arrive with repositories written for Argo CD. This package turns its ``Application``,
``AppProject`` and ``ApplicationSet`` into gitsync's Application, destination-policy project and
ApplicationSet, and reports what became of every field - carried as written, translated, or not
carried and why - so a migration never loses a setting without saying so. Pure translation over
parsed documents: no I/O and no Kubernetes client (the CLI reads the files and the registered
clusters).
"""

from gitsync.argocd.application import ImportOptions, translate_application
from gitsync.argocd.report import DocumentReport, FieldReport, ImportReport, Outcome
from gitsync.argocd.translate import (
    ImportResult,
    SourceDocument,
    is_argo_application,
    translate,
)

__all__ = [
    "DocumentReport",
    "FieldReport",
    "ImportOptions",
    "ImportReport",
    "ImportResult",
    "Outcome",
    "SourceDocument",
    "is_argo_application",
    "translate",
    "translate_application",
]
