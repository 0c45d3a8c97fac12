"""The Application store against the real API server: an Application deleted while it was being
reconciled (its namespace going away after a test, or a user's `kubectl delete`) has no status
left to write - that is the end of its reconcile, not a crash logged as one."""

from __future__ import annotations

import pytest

from gitsync.controller.apps import CrdApplications
from gitsync.kube import ApiError, KubeClient
from gitsync.kube.cache import WatchCache
from tests.support.apps import application

pytestmark = pytest.mark.integration

API = "gitsync.dev/v1alpha1"


def test_a_status_write_for_a_deleted_application_is_not_an_error(
    kube: KubeClient, namespace: str, crd: None
) -> None:
    store = CrdApplications(kube, WatchCache(kube))
    kube.create(application("gone", namespace, "https://git.example.com/x.git"))
    store.write_status((namespace, "gone"), {"sync": {"status": "Synced"}}, {})
    written = kube.get(API, "Application", "gone", namespace)
    assert written is not None and written["status"]["sync"]["status"] == "Synced"
    kube.delete(API, "Application", "gone", namespace)
    store.write_status((namespace, "gone"), {"sync": {"status": "OutOfSync"}}, {})  # no raise
    assert kube.get(API, "Application", "gone", namespace) is None


def test_other_status_write_failures_still_raise(
    kube: KubeClient, namespace: str, crd: None
) -> None:
    kube.create(application("kept", namespace, "https://git.example.com/x.git"))
    # a client that may not write it: the 403 is the caller's to handle, not swallowed
    nobody = kube.impersonating_service_account(namespace, "nobody")
    store = CrdApplications(nobody, WatchCache(kube))
    with pytest.raises(ApiError) as raised:
        store.write_status((namespace, "kept"), {"sync": {"status": "Synced"}}, {})
    assert raised.value.status == 403
