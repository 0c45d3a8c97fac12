"""Small manifests tests build repositories from."""

from __future__ import annotations

from typing import Any

import yaml

from gitsync import kinds


def slow_database(ready_after: float) -> dict[str, Any]:
    """A Deployment ``db`` whose pod turns Ready only after ``ready_after`` seconds (the
    simulator's ``sim.gitsync.dev/ready-after``)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "db"},
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


def two_wave_manifests(ready_after: float) -> str:
    """``slow_database`` in wave 0, and a ConfigMap ``after-db`` in wave 1."""
    slow = slow_database(ready_after)
    slow["metadata"]["annotations"] = {"gitsync.dev/sync-wave": "0"}
    late = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "after-db", "annotations": {"gitsync.dev/sync-wave": "1"}},
        "data": {"ready": "yes"},
    }
    return yaml.safe_dump_all([slow, late])


ROLLOUT_API = kinds.API_VERSION


def web_deployment(image: str, replicas: int, **pod_annotations: str) -> dict[str, Any]:
    """The Deployment ``web`` (pods labelled ``app: web``, port 80) the rollout tests govern;
    ``pod_annotations`` reach the pod template (the simulator reads ``sim.gitsync.dev/*``)."""
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]},
    }
    if pod_annotations:
        template["metadata"]["annotations"] = dict(pod_annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template,
        },
    }


def web_service(name: str = "web") -> dict[str, Any]:
    """A Service selecting every ``app: web`` pod on port 80 (stable, active or preview)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]},
    }


def canary_rollout(steps: list[dict[str, Any]], *, deadline: int = 120) -> dict[str, Any]:
    """A Rollout ``web`` governing ``web_deployment`` with a router-less canary over ``web``."""
    return {
        "apiVersion": ROLLOUT_API,
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "web"},
            "progressDeadlineSeconds": deadline,
            "strategy": {"canary": {"stableService": "web", "steps": steps}},
        },
    }
