"""The seams between the controller and the layers beside it, served by small in-process
implementations of gitsync's own interfaces (never a fake Kubernetes API):

* the web layer asks the controller only what ``ControllerView``
  (``gitsync.controller.interface``) declares - the diff through ``application_diff``, a
  destination cluster's client through ``cluster_client`` - and never reaches past it (an
  attribute-recording controller fails the test on the first private or undeclared name);
* the reconciler asks the engine only what its ``AppEngine`` protocol declares (the head check
  through ``resolve_revision``, rollouts through ``tick_rollouts``), never the engine's sources,
  credentials or rollout executor.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from test_web_rollout import FakeKube, app_with_rollouts, rollout
from test_web_support import (
    API_TOKEN,
    SHA2,
    FakeController,
    application,
    bearer,
    login,
    make_app,
)

from gitsync.application import Application
from gitsync.controller.clusters import ClusterError
from gitsync.controller.interface import ControllerView
from gitsync.controller.reconciler import AppEngine, Reconciler
from gitsync.diff import ResourceDiff
from gitsync.model import ResourceKey, SyncStatus
from gitsync.rollout import RolloutStepResult
from gitsync.source.revision import Revision

AUTH = bearer(API_TOKEN)


def _members(protocol: type) -> frozenset[str]:
    return frozenset(name for name in dir(protocol) if not name.startswith("_"))


class InterfaceOnly:
    """A controller that answers what ``ControllerView`` declares and records every name the
    web layer asks it for - ``getattr(controller, "_engine_for", None)`` included."""

    def __init__(self, inner: FakeController, clusters: dict[str, FakeKube]):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_clusters", clusters)
        object.__setattr__(self, "asked", [])

    def __getattribute__(self, name: str) -> Any:
        if name in ("asked", "_inner", "_clusters", "__class__", "__dict__"):
            return object.__getattribute__(self, name)
        object.__getattribute__(self, "asked").append(name)
        if name == "cluster_client":
            return object.__getattribute__(self, "_cluster_client")
        if name not in _members(ControllerView):
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, "_inner"), name)

    def _cluster_client(self, name: str) -> FakeKube:
        clusters = object.__getattribute__(self, "_clusters")
        if name not in clusters:
            raise ClusterError(f"destination cluster {name!r} is not registered")
        return clusters[name]


def _remote_app() -> dict[str, Any]:
    """An Application deploying to the registered cluster ``east``, with one Rollout there."""
    obj = app_with_rollouts("web", "team-a")
    obj["spec"]["destination"]["name"] = "east"
    return obj


def test_the_web_layer_asks_the_controller_only_through_its_interface() -> None:
    key = ResourceKey("", "ConfigMap", "team-a", "config")
    inner = FakeController([_remote_app(), application("api")])
    inner.diffs[("team-a", "api")] = [ResourceDiff(key, SyncStatus.OUT_OF_SYNC, unified="-a\n+b\n")]
    east = FakeKube()
    east.add(rollout())
    controller = InterfaceOnly(inner, {"east": east})
    client = make_app(controller).test_client()  # type: ignore[arg-type]

    diff = client.get("/api/v1/applications/team-a/api/diff", headers=AUTH)
    assert diff.status_code == 200, diff.get_data(as_text=True)
    doc = diff.get_json()
    assert doc["revision"]["sha"] == SHA2 and doc["resources"][0]["diff"] == "-a\n+b\n"
    assert client.get("/api/v1/applications/team-a/nope/diff", headers=AUTH).status_code == 404
    rollouts = client.get("/api/v1/applications/team-a/web/rollouts", headers=AUTH)
    assert rollouts.status_code == 200, rollouts.get_data(as_text=True)
    [shown] = rollouts.get_json()["rollouts"]
    assert shown["phase"] == "Paused" and east.gets == [("team-a", "web")]
    login(client)  # the pages: the detail page with its rollout panel, and the diff page
    page = client.get("/apps/team-a/web")
    assert page.status_code == 200 and 'data-rollout="web"' in page.get_data(as_text=True)
    page = client.get("/apps/team-a/api/diff")
    assert page.status_code == 200 and "config" in page.get_data(as_text=True)

    asked = set(object.__getattribute__(controller, "asked"))
    assert asked <= _members(ControllerView), asked - _members(ControllerView)
    assert {"application_diff", "cluster_client"} <= asked


def test_an_unregistered_cluster_is_a_clear_answer_not_a_crash() -> None:
    controller = InterfaceOnly(FakeController([_remote_app()]), {})
    client = make_app(controller).test_client()  # type: ignore[arg-type]

    listed = client.get("/api/v1/applications/team-a/web/rollouts", headers=AUTH)
    assert listed.status_code == 200
    [shown] = listed.get_json()["rollouts"]
    assert "cannot reach cluster 'east'" in str(shown)
    asked = client.post(
        "/api/v1/applications/team-a/web/rollouts/web/promote", json={}, headers=AUTH
    )
    assert asked.status_code == 502, asked.get_data(as_text=True)


# -- the reconciler and the engine -------------------------------------------------------------


class MemoryStore:
    """The Application store (``gitsync.controller.apps.ApplicationStore``) in memory."""

    def __init__(self, obj: dict[str, Any]):
        self.obj = obj
        self.annotations: list[dict[str, str | None]] = []

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        return self.obj

    def app_keys(self) -> list[tuple[str, str]]:
        return [("team-a", "web")]

    def write_status(
        self, key: tuple[str, str], status: dict[str, Any], previous: dict[str, Any]
    ) -> None:
        self.obj["status"] = status

    def patch_annotations(self, key: tuple[str, str], annotations: dict[str, str | None]) -> None:
        self.annotations.append(annotations)

    def record_event(self, *args: Any, **kwargs: Any) -> None:
        pass


class EngineOnly:
    """An engine that answers what ``AppEngine`` declares and records every name asked for.
    Its compare finds the app in sync at the head, with one Rollout to advance."""

    def __init__(self) -> None:
        object.__setattr__(self, "asked", [])
        object.__setattr__(self, "resolved", [])
        object.__setattr__(self, "ticked", [])

    def __getattribute__(self, name: str) -> Any:
        if name in ("asked", "resolved", "ticked", "__class__", "__dict__"):
            return object.__getattribute__(self, name)
        object.__getattribute__(self, "asked").append(name)
        if name not in _members(AppEngine):
            raise AttributeError(name)
        return object.__getattribute__(self, name)

    def check_source(self, app: Application) -> None:
        pass

    def resolve_revision(self, app: Application, *, max_age: float = 0.0) -> str:
        self.resolved.append((app.source.target_revision, max_age))
        return SHA2

    def compare(self, app: Application, sha: str | None = None) -> Any:
        rollout_key = ResourceKey("gitsync.dev", "Rollout", "team-a", "web")
        return SimpleNamespace(
            app=app,
            revision=Revision(sha or "", "refs/heads/main", "m", "a", ""),
            manifests=(),
            comparison=SimpleNamespace(in_sync=True, diffs=[], errors=[], items=[], shared={}),
            source_type="plain",
            sync_status=SyncStatus.SYNCED,
            health=SimpleNamespace(status="Healthy", message=""),
            rollouts=lambda: [rollout_key],
            resource_health=lambda: [],
        )

    def sync(self, app: Application, **kwargs: Any) -> Any:
        raise AssertionError("an app in sync is not synced")

    def tick_rollouts(self, app: Application, rollouts: Any) -> list[RolloutStepResult]:
        self.ticked.extend(rollouts)
        return [RolloutStepResult(key, SimpleNamespace(), requeue_after=7.0) for key in rollouts]  # type: ignore[arg-type]


def test_the_reconciler_asks_the_engine_only_through_its_protocol() -> None:
    obj = application("web", automated=False)
    obj.pop("status")
    engine = EngineOnly()
    reconciler = Reconciler(MemoryStore(obj), lambda app: engine)  # type: ignore[arg-type,return-value]

    result = reconciler.reconcile(("team-a", "web"), {"manual"})

    assert object.__getattribute__(engine, "resolved") == [("main", 0.0)]
    assert object.__getattribute__(engine, "ticked") == [
        ResourceKey("gitsync.dev", "Rollout", "team-a", "web")
    ]
    assert result.requeue == 7.0  # the rollout's own requeue reached the work queue
    asked = set(object.__getattribute__(engine, "asked"))
    assert asked <= _members(AppEngine), asked - _members(AppEngine)


@pytest.mark.parametrize("protocol", [ControllerView, AppEngine])
def test_the_protocols_declare_what_their_implementations_offer(protocol: type) -> None:
    """``Controller`` and ``Engine`` offer every member of the protocol they are used through
    (mypy checks the signatures where ``gitsync serve`` passes the controller to ``create_app``
    and the controller hands its engines to the reconciler)."""
    from gitsync.controller import controller as controller_module
    from gitsync.engine import Engine

    implementation = controller_module.Controller if protocol is ControllerView else Engine
    offered = set(dir(implementation))
    instance_attributes = {"store"} if protocol is ControllerView else set()
    assert _members(protocol) - offered - instance_attributes == set()
