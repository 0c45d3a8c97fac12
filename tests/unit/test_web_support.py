"""Shared pieces of the web unit tests (test_web_*.py): an in-memory ``ControllerView`` - our own
interface, not the Kubernetes API - Application documents shaped like the controller's status,
an app factory and a login helper. No tests live here."""

from __future__ import annotations

import copy
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from gitsync.application_status import (
    ApplicationStatus,
    Condition,
    HealthSummary,
    HistoryEntry,
    HookStatus,
    OperationState,
    ResourceResult,
    ResourceStatus,
    SourceRevision,
    SyncSummary,
)
from gitsync.controller.clusters import ClusterError
from gitsync.controller.interface import AppEvents, EventsUnavailableError
from gitsync.diff import ResourceDiff
from gitsync.web import AuthSettings, LoginLimits, create_app
from gitsync.web.oidc import OidcSettings
from gitsync.web.podlogs import LogLimits
from gitsync.web.rbac import Authorizer
from gitsync.web.sessions import Revocations
from gitsync.webhook import PushEvent

AppKey = tuple[str, str]

ADMIN_PASSWORD = "admin-" + secrets.token_hex(8)
API_TOKEN = "api-" + secrets.token_hex(16)
READ_ONLY_TOKEN = "ro-" + secrets.token_hex(16)
SECRETS = (ADMIN_PASSWORD, API_TOKEN, READ_ONLY_TOKEN)
SHA1 = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
SHA2 = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


def application(
    name: str,
    namespace: str = "team-a",
    *,
    repo: str = "https://git.example.com/org/deploy.git",
    path: str = "apps/web",
    sha: str = SHA2,
    message: str = "set replicas to 3",
    author: str = "Ada <ada@example.com>",
    sync: str = "Synced",
    health: str = "Healthy",
    automated: bool = True,
    annotations: dict[str, str] | None = None,
    resources: Sequence[ResourceStatus] | None = None,
    history: Sequence[HistoryEntry] | None = None,
) -> dict[str, Any]:
    """An Application as ``Controller.application_objects()`` returns it; its status is built
    with the controller's own status types, so a renamed or new field cannot drift from here."""
    if resources is None:
        resources = (
            ResourceStatus(
                "",
                "ConfigMap",
                namespace,
                "config",
                "Synced" if sync == "Synced" else "OutOfSync",
                HealthSummary("Healthy"),
            ),
            ResourceStatus("apps", "Deployment", namespace, "web", "Synced", HealthSummary(health)),
        )
    if history is None:
        history = (
            HistoryEntry(
                1, "op1", SHA1, "first", author, "2024-05-01T10:00:00Z", "Succeeded", "automated"
            ),
            HistoryEntry(
                2, "op2", sha, message, author, "2024-05-02T10:00:00Z", "Succeeded", "automated"
            ),
        )
    synced = sync == "Synced"
    status = ApplicationStatus(
        sync=SyncSummary(sync, sha),
        health=HealthSummary(health),
        source_revision=SourceRevision(
            sha, "refs/heads/main", message, author, "2024-05-02T09:59:00+00:00"
        ),
        conditions=(
            Condition(
                type="Ready",
                status="True" if synced else "False",
                reason="Synced" if synced else "OutOfSync",
                message="synced and healthy",
                observed_generation=1,
                last_transition_time="2024-05-02T10:00:00Z",
            ),
        ),
        resources=tuple(resources),
        operation_state=OperationState(
            id="op2",
            phase="Succeeded",
            revision=sha,
            initiated_by="automated",
            started_at="2024-05-02T09:59:58Z",
            finished_at="2024-05-02T10:00:00Z",
            message="succeeded at revision " + sha[:12],
            resources=(
                ResourceResult("", "ConfigMap", namespace, "config", "Synced", "configured"),
            ),
            hooks=(
                HookStatus(
                    "batch", "Job", namespace, "migrate", "PreSync", "Succeeded", "done", 4200
                ),
            ),
        ),
        history=tuple(history),
        last_applied_revision=sha,
        source_type="Directory",
    )
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "source": {"repoURL": repo, "targetRevision": "main", "path": path},
            "destination": {"namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}} if automated else {},
        },
        "status": status.to_dict(),
    }


class FakeStore:
    def __init__(self, objs: list[dict[str, Any]]):
        self.objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}
        self.patches: list[tuple[AppKey, dict[str, str | None]]] = []
        self.fail: Exception | None = None

    def get(self, key: AppKey) -> dict[str, Any] | None:
        obj = self.objs.get(key)
        return copy.deepcopy(obj) if obj is not None else None

    def patch_annotations(self, key: AppKey, annotations: dict[str, str | None]) -> None:
        if self.fail is not None:
            raise self.fail
        self.patches.append((key, dict(annotations)))
        current = self.objs[key]["metadata"].setdefault("annotations", {})
        for k, v in annotations.items():
            if v is None:
                current.pop(k, None)
            else:
                current[k] = v


@dataclass
class FakeController:
    """The controller as the web layer sees it, in memory."""

    objs: list[dict[str, Any]] = field(default_factory=list)
    diffs: dict[AppKey, list[ResourceDiff]] = field(default_factory=dict)
    ready: bool = True
    refreshed: list[tuple[AppKey, str]] = field(default_factory=list)
    diff_calls: int = 0
    sets: list[dict[str, Any]] = field(default_factory=list)  # ApplicationSets
    trees: dict[AppKey, dict[str, Any]] = field(default_factory=dict)  # application_tree answers
    tree_calls: list[tuple[AppKey, bool]] = field(default_factory=list)
    events: dict[AppKey, list[dict[str, Any]]] = field(default_factory=dict)  # Kubernetes Events
    event_queries: list[tuple[AppKey, Any]] = field(default_factory=list)
    events_loading: bool = False
    events_failing: bool = False

    def __post_init__(self) -> None:
        self.store = FakeStore(self.objs)

    def on_push(self, event: PushEvent) -> int:
        return 0

    def application_objects(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(self.store.objs[k]) for k in sorted(self.store.objs)]

    def application_set_objects(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.sets)

    def refresh(self, key: AppKey, reason: str = "manual") -> None:
        self.refreshed.append((key, reason))

    def application_tree(self, key: AppKey, *, orphans: bool = False) -> dict[str, Any] | None:
        self.tree_calls.append((key, orphans))
        if key not in self.store.objs:
            return None
        empty = {"nodes": [], "orphans": [] if orphans else None, "limits": {}, "warnings": []}
        return copy.deepcopy(self.trees.get(key, empty))

    def application_events(self, key: AppKey, query: Any) -> AppEvents | None:
        self.event_queries.append((key, query))
        if self.events_failing:
            raise EventsUnavailableError(
                "the Events of namespace team-a cannot be listed: 403 Forbidden"
            )
        if key not in self.store.objs:
            return None
        loading = (key[0],) if self.events_loading else ()
        return AppEvents(copy.deepcopy(self.events.get(key, [])), loading)

    def cluster_client(self, name: str) -> Any:
        raise ClusterError(f"destination cluster {name!r} is not registered")

    def application_diff(self, key: AppKey) -> Any:
        self.diff_calls += 1
        if key not in self.store.objs:
            return None
        diffs = self.diffs.get(key, [])
        return SimpleNamespace(
            revision=SimpleNamespace(sha=SHA2, ref="refs/heads/main"),
            comparison=SimpleNamespace(
                diffs=diffs,
                errors=[],
                in_sync=all(d.status == "Synced" for d in diffs),
            ),
        )


def make_app(
    controller: FakeController,
    *,
    anonymous_read: bool = False,
    limits: LoginLimits | None = None,
    clock: Callable[[], float] | None = None,
    secure_cookie: bool = False,
    admin_password: str | None = ADMIN_PASSWORD,
    admin_password_bcrypt: str | None = None,
    logs: LogLimits | None = None,
    session_keys: tuple[bytes, ...] = (),
    oidc: OidcSettings | None = None,
    revocations: Revocations | None = None,
    authorizer: Authorizer | None = None,
) -> Flask:
    """The app for the tests. ``GITSYNC_TEST_WEB_SSO=1`` turns single sign-on on in every app
    that does not configure its own (the hardening tests then run with SSO enabled)."""
    if oidc is None and os.environ.get("GITSYNC_TEST_WEB_SSO") == "1":
        oidc = OidcSettings.build(
            issuer="http://127.0.0.1:9",
            client_id="gitsync",
            client_secret="unused-secret",
            external_url="http://localhost",
        )
    settings = AuthSettings.build(
        admin_password=admin_password,
        admin_password_bcrypt=admin_password_bcrypt,
        api_tokens=[API_TOKEN],
        read_only_tokens=[READ_ONLY_TOKEN],
        anonymous_read=anonymous_read,
        secure_cookie=secure_cookie,
        login_limits=limits,
        session_keys=session_keys,
    )
    app = create_app(
        controller,
        metrics_exposition=lambda: b"# metrics\n",
        webhook_secrets=lambda provider: [],
        auth=settings,
        snapshot_ttl=0,
        clock=clock,
        logs=logs,
        oidc=oidc,
        revocations=revocations,
        authorizer=authorizer,
    )
    app.testing = True
    return app


_CSRF_FIELD = re.compile(
    r'action="/login">\s*<input type="hidden" name="csrf_token" value="([^"]+)"'
)
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def login_form_token(client: FlaskClient) -> str:
    page = client.get("/login")
    match = _CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, "the login form has a CSRF field"
    return match.group(1)


def login(client: FlaskClient, password: str = ADMIN_PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token (from the page's meta tag)."""
    token = login_form_token(client)
    response = client.post("/login", data={"csrf_token": token, "password": password, "next": "/"})
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get("/")
    match = _CSRF_META.search(page.get_data(as_text=True))
    assert match and match.group(1)
    return match.group(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
