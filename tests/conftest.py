"""Shared fixtures: the cluster under test (session-wide) and a namespace per test."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from gitsync.kube import KubeClient
from tests.support.cluster import TestCluster, temporary_namespace, test_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[TestCluster]:
    with test_cluster() as c:
        yield c


@pytest.fixture(scope="session")
def kube(cluster: TestCluster) -> KubeClient:
    return cluster.client()


@pytest.fixture
def namespace(kube: KubeClient, request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:30]
    with temporary_namespace(kube, prefix or "t") as ns:
        yield ns


@pytest.fixture
def simulator(cluster: TestCluster) -> None:
    """Tests of the pod simulator itself; a real cluster runs real kubelets instead."""
    if not cluster.has_simulator:
        pytest.skip("needs the gitsync pod simulator (GITSYNC_TEST_KUBECONFIG points elsewhere)")
