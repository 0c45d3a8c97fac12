"""Which finalizer asks for an Application's objects to be deleted, and how (foreground or
background, Argo CD's names honoured), and which live objects such a deletion may touch: only
those whose tracking annotation names this app and this very object, and the destination policy
allows."""

from __future__ import annotations

from typing import Any

import pytest

from gitsync.application import parse_application
from gitsync.model import ResourceKey
from gitsync.policy import Policy
from gitsync.sync.deletion import Propagation, delete_verdict, resources_finalizer
from gitsync.sync.tracking import TRACKING_ANNOTATION, tracking_id

APP = parse_application(
    {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "namespace": "team-a"},
        "spec": {"source": {"repoURL": "https://git.example.com/shop.git"}},
    }
)
KEY = ResourceKey("", "ConfigMap", "team-a", "settings")


@pytest.mark.parametrize(
    ("finalizers", "expected"),
    [
        ([], None),
        (["kubernetes.io/pvc-protection"], None),
        (["gitsync.dev/resources-finalizer"], Propagation.FOREGROUND),
        (["gitsync.dev/resources-finalizer-background"], Propagation.BACKGROUND),
        (["resources-finalizer.argocd.argoproj.io"], Propagation.FOREGROUND),
        (["resources-finalizer.argocd.argoproj.io/foreground"], Propagation.FOREGROUND),
        (["resources-finalizer.argocd.argoproj.io/background"], Propagation.BACKGROUND),
        (
            [
                "resources-finalizer.argocd.argoproj.io/background",
                "gitsync.dev/resources-finalizer",
            ],
            Propagation.FOREGROUND,
        ),
    ],
)
def test_the_resources_finalizer_and_its_propagation(
    finalizers: list[str], expected: Propagation | None
) -> None:
    found = resources_finalizer(finalizers)
    assert (found[1] if found else None) == expected
    if found:
        assert found[0] in finalizers


def live(tracking: str | None, namespace: str = "team-a") -> dict[str, Any]:
    annotations = {TRACKING_ANNOTATION: tracking} if tracking else {}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace, "annotations": annotations},
    }


def test_only_objects_tracked_by_this_app_are_deleted() -> None:
    policy = Policy()
    ours = live(tracking_id("team-a/shop", KEY))
    assert delete_verdict(APP, KEY, ours, policy=policy, namespaced=True) is None
    theirs = live(tracking_id("team-a/blog", KEY))
    why = delete_verdict(APP, KEY, theirs, policy=policy, namespaced=True)
    assert why is not None and "not owned by this app" in why
    assert delete_verdict(APP, KEY, live(None), policy=policy, namespaced=True) is not None


@pytest.mark.parametrize(
    "annotation", ["argocd.argoproj.io/sync-options", "gitsync.dev/sync-options"]
)
def test_delete_false_keeps_an_object_when_its_app_is_deleted(annotation: str) -> None:
    kept = live(tracking_id("team-a/shop", KEY))
    kept["metadata"]["annotations"][annotation] = "Delete=false"
    why = delete_verdict(APP, KEY, kept, policy=Policy(), namespaced=True)
    assert why is not None and "Delete=false" in why
    kept["metadata"]["annotations"][annotation] = "Delete=true"
    assert delete_verdict(APP, KEY, kept, policy=Policy(), namespaced=True) is None


def test_an_object_outside_the_apps_policy_is_not_deleted() -> None:
    key = ResourceKey("", "ConfigMap", "kube-system", "settings")
    obj = live(tracking_id("team-a/shop", key), namespace="kube-system")
    why = delete_verdict(APP, key, obj, policy=Policy(), namespaced=True)
    assert why is not None and "denied by destination policy" in why
