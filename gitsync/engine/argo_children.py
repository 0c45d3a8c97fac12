"""Argo CD Applications a parent app renders (Argo CD's app of apps) become gitsync Applications.

A repository written for Argo CD's app-of-apps pattern renders ``argoproj.io/v1alpha1``
Applications. Applied as they are they would need Argo CD's CRD, and nothing would run them. So
each is translated at render time exactly as ``gitsync import argocd`` translates a file (the
same code, ``gitsync.argocd``): the parent applies, compares and prunes gitsync Applications,
and the controller runs them like any child of a gitsync parent - a tenant object under the
destination policy, running with its own namespace's rights. A child with a field the
translation cannot carry fails the render, naming the fields, so nothing is applied without a
setting its author wrote (``-f`` refuses such a file unless ``--allow-partial``; a render has no
such switch).

Namespaces: Argo CD reads Applications from its own namespace, ``argocd`` in a default install,
and app-of-apps repositories put their children there. In gitsync an Application's namespace is
its project, so a child in ``argocd`` is created in the parent's own namespace - the counterpart
of "where the controller reads Applications", and a namespace the parent's project may always
use. A child naming any other namespace (Argo CD's "apps in any namespace") keeps it, and one
naming none gets the parent's destination namespace like every object; the destination policy
then decides, as for every object the parent renders. Destinations: Argo CD's in-cluster URL or
a ``destination.name``; another server URL names no cluster gitsync can look up while
rendering, and the render says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from gitsync.application import Application
from gitsync.argocd import ImportOptions, is_argo_application, translate_application
from gitsync.argocd.report import format_path
from gitsync.model import ResourceKey
from gitsync.render import RenderedManifest, RenderError

ARGO_NAMESPACE = "argocd"
"""The namespace a default Argo CD install reads Applications from."""


def as_gitsync_applications(
    manifests: Sequence[RenderedManifest], parent: Application
) -> list[RenderedManifest]:
    """``manifests`` with every Argo CD Application translated to a gitsync Application;
    everything else as it is. Raises ``RenderError`` naming a child that cannot be carried."""
    return [
        _translated(manifest, parent) if is_argo_application(manifest.obj) else manifest
        for manifest in manifests
    ]


def _translated(manifest: RenderedManifest, parent: Application) -> RenderedManifest:
    meta = manifest.obj.get("metadata") or {}
    in_argo_namespace = meta.get("namespace") == ARGO_NAMESPACE
    options = ImportOptions(namespace=parent.namespace if in_argo_namespace else None)
    result = translate_application(manifest.obj, manifest.source, options)
    what = f"the Argo CD Application {meta.get('name')!r}"
    if result.document is None:
        raise RenderError(
            f"{what} cannot be run by gitsync: {result.report.problem}", source=manifest.source
        )
    missing = [format_path(f.path) for f in result.report.not_carried]
    if missing:
        raise RenderError(
            f"{what} has fields gitsync does not carry: {', '.join(missing)} "
            f"(`gitsync import argocd` on the rendered Application shows why)",
            source=manifest.source,
        )
    doc = result.document
    return RenderedManifest(ResourceKey.of(doc), doc, manifest.source, manifest.hook)
