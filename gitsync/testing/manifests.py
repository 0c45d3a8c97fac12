"""Small manifests tests build repositories from."""

from __future__ import annotations

from typing import Any

import yaml


def two_wave_manifests(ready_after: float) -> str:
    """A Deployment ``db`` in wave 0 whose pod turns Ready only after ``ready_after`` seconds
    (the simulator's ``sim.gitsync.dev/ready-after``), and a ConfigMap ``after-db`` in wave 1."""
    slow: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "db", "annotations": {"gitsync.dev/sync-wave": "0"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {
                    "labels": {"app": "db"},
                    "annotations": {"sim.gitsync.dev/ready-after": str(ready_after)},
                },
                "spec": {"containers": [{"name": "db", "image": "postgres:16"}]},
            },
        },
    }
    late = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "after-db", "annotations": {"gitsync.dev/sync-wave": "1"}},
        "data": {"ready": "yes"},
    }
    return yaml.safe_dump_all([slow, late])
