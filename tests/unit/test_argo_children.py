"""Argo CD Applications rendered by a parent app (Argo CD's app of apps) are translated to
gitsync Applications by the same code as ``gitsync import argocd``; one that cannot be carried
fails the render naming its fields (``gitsync/engine/argo_children.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync import kinds
from gitsync.application import Application, parse_application
from gitsync.engine.argo_children import as_gitsync_applications
from gitsync.model import ResourceKey
from gitsync.render import RenderedManifest, RenderError

PARENT_NAMESPACE = "team-a"


def parent() -> Application:
    return parse_application(
        {
            "apiVersion": kinds.API_VERSION,
            "kind": kinds.APPLICATION,
            "metadata": {"name": "apps", "namespace": PARENT_NAMESPACE},
            "spec": {
                "source": {"repoURL": "https://git.example.com/apps.git", "path": "apps"},
                "destination": {"namespace": PARENT_NAMESPACE},
            },
        }
    )


def argo_child(namespace: str | None = "argocd", **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "guestbook",
        "finalizers": ["resources-finalizer.argocd.argoproj.io"],
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": meta,
        "spec": {
            "project": "default",
            "source": {
                "repoURL": "https://git.example.com/apps.git",
                "targetRevision": "HEAD",
                "path": "guestbook",
            },
            "destination": {
                "server": "https://kubernetes.default.svc",
                "namespace": PARENT_NAMESPACE,
            },
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            **spec,
        },
    }


def rendered(obj: dict[str, Any]) -> RenderedManifest:
    return RenderedManifest(ResourceKey.of(obj), obj, "helm:apps/templates/guestbook.yaml")


def translated(obj: dict[str, Any]) -> RenderedManifest:
    (out,) = as_gitsync_applications([rendered(obj)], parent())
    return out


@pytest.mark.parametrize(
    ("namespace", "lands_in"),
    [
        ("argocd", PARENT_NAMESPACE),  # Argo CD's namespace: the parent's project
        ("team-b", "team-b"),  # apps in any namespace: kept, the policy decides
        (None, ""),  # none: the destination namespace, like every object
    ],
)
def test_a_rendered_argo_application_becomes_a_gitsync_application(
    namespace: str | None, lands_in: str
) -> None:
    out = translated(argo_child(namespace))
    assert out.key == ResourceKey(kinds.GROUP, kinds.APPLICATION, lands_in, "guestbook")
    assert out.obj["apiVersion"] == kinds.API_VERSION
    assert out.source == "helm:apps/templates/guestbook.yaml"
    spec = out.obj["spec"]
    assert spec["source"]["path"] == "guestbook" and "project" not in spec
    assert spec["destination"] == {"namespace": PARENT_NAMESPACE}  # in-cluster: no name
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert out.obj["metadata"]["finalizers"] == ["gitsync.dev/resources-finalizer"]
    if lands_in:  # what it becomes is a valid gitsync Application
        assert parse_application(out.obj).namespace == lands_in


def test_other_objects_and_gitsync_applications_are_left_as_they_are() -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
    ours = {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.APPLICATION,
        "metadata": {"name": "child"},
        "spec": {"source": {"repoURL": "https://git.example.com/x.git"}},
    }
    manifests = [rendered(config_map), rendered(ours)]
    assert as_gitsync_applications(manifests, parent()) == manifests


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        (
            {"source": {"repoURL": "https://git.example.com/x.git", "plugin": {"name": "cdk8s"}}},
            "spec.source.plugin",
        ),
        ({"revisionHistoryLimit": 3}, "spec.revisionHistoryLimit"),
    ],
)
def test_a_child_with_a_field_gitsync_does_not_carry_fails_the_render_naming_it(
    spec: dict[str, Any], named: str
) -> None:
    with pytest.raises(RenderError) as caught:
        translated(argo_child(**spec))
    message = str(caught.value)
    assert "'guestbook'" in message and named in message, message
    assert message.startswith("helm:apps/templates/guestbook.yaml: "), message


def test_a_child_for_a_cluster_named_only_by_url_fails_the_render_naming_the_field() -> None:
    child = argo_child(destination={"server": "https://prod.example.com:6443", "namespace": "web"})
    with pytest.raises(RenderError) as caught:
        translated(child)
    assert "spec.destination.server" in str(caught.value), caught.value
    assert "cannot be run by gitsync" in str(caught.value), caught.value
