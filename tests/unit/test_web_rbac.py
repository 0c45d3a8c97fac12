"""Issue 21 (rbac): the policy file, the role algebra, project globs, and the web layer asking
the one authorizer - lists filtered with their counts, the same 403 for an app one may not see
and one that does not exist, scoped tokens that expire and can be revoked, the audit trail.

The token store is exercised through ``SecretsInMemory``: our own ``SecretAccess`` protocol
(get / create / merge patch with resourceVersion), not the Kubernetes API; the integration test
tests/integration/test_rbac_it.py runs the same against a real API server and ``gitsync serve``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import structlog
from flask import Flask
from flask.testing import FlaskClient
from test_web_appsets import appset
from test_web_support import (
    ADMIN_PASSWORD,
    API_TOKEN,
    READ_ONLY_TOKEN,
    FakeController,
    application,
    bearer,
    login_form_token,
)

from gitsync.application_status import HealthSummary, ResourceStatus
from gitsync.kube import ApiError
from gitsync.web import AuthSettings, create_app
from gitsync.web.audit import EventBudget
from gitsync.web.auth import Method, Principal, Via, global_grant
from gitsync.web.rbac import (
    Action,
    Authorizer,
    Grant,
    PolicyError,
    Role,
    parse_policy,
)
from gitsync.web.tokens import TokenError, TokenStore, parse_lifetime

POLICY = """\
bindings:
  - subjects: [group:team-a, token:ci-a]
    role: operator
    projects: [team-a, "team-a-*"]
  - subjects: [user:bob@example.com]
    role: viewer
    projects: [team-b]
  - subjects: [group:platform]
    role: admin
    global: true
"""


def who(*groups: str, name: str = "someone", grants: tuple[Grant, ...] = ()) -> Principal:
    return Principal(name, Via.SESSION, Method.OIDC, grants, groups)


# -- the policy file ---------------------------------------------------------------------------


def test_a_policy_binds_subjects_to_roles_per_project_glob_and_globally() -> None:
    authz = Authorizer(parse_policy(POLICY))
    alice = who("team-a", name="alice@example.com")
    assert authz.role(alice, "team-a") == Role.OPERATOR
    assert authz.role(alice, "team-a-dev") == Role.OPERATOR
    assert authz.role(alice, "team-ab") is None  # "team-a-*" is not "team-a*"
    assert authz.role(alice, "team-b") is None
    assert authz.role(who(name="bob@example.com"), "team-b") == Role.VIEWER
    assert authz.role(who("platform"), "anything") == Role.ADMIN
    assert authz.role(who("platform"), None) == Role.ADMIN
    assert authz.role(who(), "team-a") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bindings: []\nextra: 1\n", "line 2: the policy: unknown key 'extra'"),
        (
            "bindings:\n  - subjects: [group:a]\n    role: owner\n    projects: [a]\n",
            "line 3: bindings[0].role: 'owner' is not a role",
        ),
        (
            "bindings:\n  - subjects: [alice]\n    role: viewer\n    projects: [a]\n",
            "line 2: bindings[0].subjects: 'alice' must be user:NAME",
        ),
        (
            "bindings:\n  - subjects: [group:a]\n    role: viewer\n    projets: [a]\n",
            "line 4: bindings[0]: unknown key 'projets'",
        ),
        (
            "bindings:\n  - subjects: [group:a]\n    role: viewer\n",
            "give either projects or global: true",
        ),
        (
            "bindings:\n  - subjects: [group:a]\n    role: viewer\n    global: true\n"
            "    projects: [a]\n",
            "give either projects or global: true",
        ),
        (
            "bindings:\n  - subjects: [group:a]\n    role: viewer\n    global: 'yes'\n",
            "line 4: bindings[0].global must be true or false",
        ),
        (
            "bindings:\n  - subjects: [group:a]\n    role: viewer\n    projects: [Team_A]\n",
            "line 4: bindings[0].projects: 'Team_A' is not a namespace",
        ),
        ("bindings:\n  - subjects: []\n    role: viewer\n", "subjects must be a non-empty"),
        ("", "the policy is empty"),
        ("bindings: [\n", "not valid YAML"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_line_and_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=r"^test\.policy: ") as err:
        parse_policy(text, "test.policy")
    assert message in str(err.value)


# -- the role algebra --------------------------------------------------------------------------

EXPECTED = {
    Role.VIEWER: {Action.GET},
    Role.OPERATOR: {Action.GET, Action.SYNC, Action.REFRESH, Action.ROLLOUT},
    Role.ADMIN: set(Action) - {Action.ADMIN},  # token management only when global
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_roles_nest_and_admin_actions_need_a_global_admin(role: Role, action: Action) -> None:
    authz = Authorizer()
    on_project = who(grants=(Grant(role, ("team-a",)),))
    globally = who(grants=(Grant(role),))
    assert authz.allows(on_project, action, "team-a") == (action in EXPECTED[role])
    assert authz.allows(on_project, action, "team-b") is False
    assert authz.allows(on_project, action, None) is False
    allowed_globally = action in EXPECTED[role] or (role == Role.ADMIN and action == Action.ADMIN)
    assert authz.allows(globally, action, "team-b") == allowed_globally
    if action == Action.ADMIN:
        assert authz.allows(globally, action, None) == (role == Role.ADMIN)


def test_the_highest_role_from_credential_and_policy_wins() -> None:
    authz = Authorizer(parse_policy(POLICY))
    viewer_in_team_a = who("team-a", grants=(Grant(Role.VIEWER, ("team-a",)),))
    assert authz.role(viewer_in_team_a, "team-a") == Role.OPERATOR
    nobody = Principal("", Via.NONE, Method.NONE)
    assert nobody.subjects == () and authz.role(nobody, "team-a") is None


def test_a_scoped_token_answers_only_to_its_token_subject() -> None:
    token = Principal("token:ci-a", Via.BEARER, Method.API_TOKEN, (), token="ci-a")
    assert token.subjects == ("token:ci-a",)
    assert Authorizer(parse_policy(POLICY)).role(token, "team-a") == Role.OPERATOR


def test_without_a_policy_the_credentials_keep_their_global_roles() -> None:
    authz = Authorizer()
    admin = Principal("admin", Via.SESSION, Method.PASSWORD, global_grant(Role.ADMIN))
    viewer = Principal("viewer", Via.BEARER, Method.STATIC_TOKEN, global_grant(Role.VIEWER))
    assert authz.allows(admin, Action.ROLLBACK, "any") and authz.allows(admin, Action.ADMIN, None)
    assert authz.allows(viewer, Action.GET, "any") and not authz.allows(viewer, Action.SYNC, "any")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86400), ("1d12h", 129600)]
)
def test_token_lifetimes(text: str, seconds: float) -> None:
    assert parse_lifetime(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-1h", "24 h", "h"])
def test_bad_token_lifetimes(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_lifetime(text)


# -- the web layer -----------------------------------------------------------------------------


class SecretsInMemory:
    """``gitsync.web.tokens.SecretAccess`` over a dict, with resourceVersion conflicts."""

    def __init__(self) -> None:
        self.objs: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> Any:
        obj = self.objs.get((namespace, name))
        return copy.deepcopy(obj) if obj else None

    def create(self, obj: dict[str, Any], *, namespace: str = "", subresource_of: str = "") -> Any:
        key = (namespace, obj["metadata"]["name"])
        if key in self.objs:
            raise ApiError(409, "AlreadyExists", "exists")
        self.version += 1
        self.objs[key] = {
            **obj,
            "metadata": {**obj["metadata"], "resourceVersion": str(self.version)},
        }
        return obj

    def patch(self, api_version: str, kind: str, name: str, patch: Any, **kw: Any) -> Any:
        obj = self.objs[(kw["namespace"], name)]
        if patch["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "changed")
        for k, v in patch["data"].items():
            if v is None:
                obj["data"].pop(k, None)
            else:
                obj["data"][k] = v
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        return obj


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


SECRET_SHAPED = (ResourceStatus("", "Secret", "team-a", "db", "Synced", HealthSummary("Healthy")),)


@pytest.fixture
def controller() -> FakeController:
    return FakeController(
        [
            application("web", "team-a"),
            application("api", "team-a"),
            application("db", "team-a", resources=SECRET_SHAPED),
            application("web", "team-b"),
        ]
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> TokenStore:
    return TokenStore(SecretsInMemory(), "gitsync", refresh=0, clock=clock)


@pytest.fixture
def events() -> list[tuple[Any, ...]]:
    return []


def rbac_app(
    controller: FakeController,
    tokens: TokenStore,
    events: list[tuple[Any, ...]],
    *,
    policy: str = POLICY,
    disable_admin_password: bool = False,
) -> Flask:
    app = create_app(
        controller,
        metrics_exposition=lambda: b"",
        webhook_secrets=lambda provider: [],
        auth=AuthSettings.build(
            admin_password=ADMIN_PASSWORD,
            api_tokens=[API_TOKEN],
            read_only_tokens=[READ_ONLY_TOKEN],
            admin_password_disabled=disable_admin_password,
        ),
        snapshot_ttl=0,
        authorizer=Authorizer(parse_policy(policy)),
        tokens=tokens,
        record_event=lambda *event: events.append(event),
    )
    app.testing = True
    return app


@pytest.fixture
def client(controller: FakeController, tokens: TokenStore, events: list[Any]) -> FlaskClient:
    return rbac_app(controller, tokens, events).test_client()


def mint(client: FlaskClient, name: str, role: str, *projects: str, expires: str = "1h") -> str:
    body = {"name": name, "role": role, "projects": list(projects), "expires": expires}
    response = client.post("/api/v1/tokens", json=body, headers=bearer(API_TOKEN))
    assert response.status_code == 201, response.get_data(as_text=True)
    token = response.get_json()["token"]
    assert isinstance(token, str) and token.startswith("gst_")
    return token


def names(client: FlaskClient, token: str) -> tuple[list[str], int]:
    doc = client.get("/api/v1/applications", headers=bearer(token)).get_json()
    return [f"{i['namespace']}/{i['name']}" for i in doc["items"]], doc["total"]


def test_a_project_token_lists_only_its_project_counts_included(client: FlaskClient) -> None:
    token = mint(client, "ci-a", "operator", "team-a")
    assert names(client, token) == (["team-a/api", "team-a/db", "team-a/web"], 3)
    page = client.get("/", headers=bearer(token)).get_data(as_text=True)
    assert "team-b" not in page
    assert names(client, API_TOKEN)[1] == 4  # the static admin token still sees all


def test_refusals_do_not_reveal_whether_an_app_exists(
    client: FlaskClient, controller: FakeController
) -> None:
    token = mint(client, "ci-a", "operator", "team-a")
    for method, suffix, body in [
        ("GET", "", None),
        ("GET", "/diff", None),
        ("GET", "/rollouts", None),
        ("POST", "/sync", {}),
        ("POST", "/refresh", {}),
        ("POST", "/rollouts/web/promote", {}),
    ]:
        answers = []
        for name in ("web", "no-such-app"):
            response = client.open(
                f"/api/v1/applications/team-b/{name}{suffix}",
                method=method,
                json=body,
                headers=bearer(token),
            )
            answers.append((response.status_code, response.get_data()))
        assert answers[0] == answers[1], (method, suffix)
        assert answers[0][0] == 403
    assert client.get("/apps/team-b/web", headers=bearer(token)).status_code == 403
    assert controller.store.patches == []


def test_an_operator_syncs_its_project_a_viewer_cannot(
    client: FlaskClient, controller: FakeController
) -> None:
    operator = mint(client, "ci-a", "operator", "team-a")
    viewer = mint(client, "look-a", "viewer", "team-a")
    sync = "/api/v1/applications/team-a/web/sync"
    assert client.post(sync, json={}, headers=bearer(viewer)).status_code == 403
    assert client.post(sync, json={}, headers=bearer(operator)).status_code == 202
    rollback = "/api/v1/applications/team-a/web/rollback"
    assert client.post(rollback, json={"id": 1}, headers=bearer(operator)).status_code == 403
    assert [key for key, _ in controller.store.patches] == [("team-a", "web")]


def test_the_diff_of_an_app_with_secrets_needs_diff_secrets(client: FlaskClient) -> None:
    operator = mint(client, "ci-a", "operator", "team-a")
    admin = mint(client, "admin-a", "admin", "team-a")
    assert (
        client.get("/api/v1/applications/team-a/web/diff", headers=bearer(operator)).status_code
        == 200
    )
    assert (
        client.get("/api/v1/applications/team-a/db/diff", headers=bearer(operator)).status_code
        == 403
    )
    assert client.get("/apps/team-a/db/diff", headers=bearer(operator)).status_code == 403
    assert (
        client.get("/api/v1/applications/team-a/db/diff", headers=bearer(admin)).status_code == 200
    )


def test_only_a_global_admin_manages_tokens(client: FlaskClient) -> None:
    project_admin = mint(client, "admin-a", "admin", "team-a")
    body = {"name": "x", "role": "admin", "projects": ["*"], "expires": "1h"}
    for token in (project_admin, READ_ONLY_TOKEN):
        assert client.post("/api/v1/tokens", json=body, headers=bearer(token)).status_code == 403
        assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 403
    listed = client.get("/api/v1/tokens", headers=bearer(API_TOKEN)).get_json()["items"]
    assert [t["name"] for t in listed] == ["admin-a"]
    assert "sha256" not in json.dumps(listed) and project_admin not in json.dumps(listed)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "Bad_Name", "role": "viewer", "projects": ["a"], "expires": "1h"}, "name:"),
        ({"name": "a", "role": "owner", "projects": ["a"], "expires": "1h"}, "role:"),
        ({"name": "a", "role": "viewer", "projects": [], "expires": "1h"}, "project:"),
        ({"name": "a", "role": "viewer", "projects": ["a"], "expires": "400d"}, "expires:"),
        ({"name": "a", "role": "viewer", "projects": ["a"], "expires": "soon"}, "expires:"),
        ({"name": "a", "role": "viewer", "projects": ["a"]}, "expires:"),
        ({"name": "a", "role": "viewer", "projects": ["a"], "expires": "1h", "x": 1}, "'x'"),
    ],
)
def test_bad_token_requests_name_the_field(
    client: FlaskClient, body: dict[str, Any], message: str
) -> None:
    response = client.post("/api/v1/tokens", json=body, headers=bearer(API_TOKEN))
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_a_token_stops_working_at_expiry_and_at_revocation(
    client: FlaskClient, clock: Clock
) -> None:
    expiring = mint(client, "short", "viewer", "team-a", expires="10m")
    revoked = mint(client, "gone", "viewer", "team-a", expires="10m")
    assert client.get("/api/v1/applications", headers=bearer(expiring)).status_code == 200
    response = client.post("/api/v1/tokens/gone/revoke", json={}, headers=bearer(API_TOKEN))
    assert response.status_code == 200
    assert client.get("/api/v1/applications", headers=bearer(revoked)).status_code == 401
    clock.now += 599
    assert client.get("/api/v1/applications", headers=bearer(expiring)).status_code == 200
    clock.now += 1
    assert client.get("/api/v1/applications", headers=bearer(expiring)).status_code == 401
    assert (
        client.post("/api/v1/tokens/gone/revoke", json={}, headers=bearer(API_TOKEN)).status_code
        == 404
    )


def test_token_names_are_unique(tokens: TokenStore) -> None:
    tokens.create("ci", "viewer", ["a"], 60, created_by="t")
    with pytest.raises(TokenError, match="exists"):
        tokens.create("ci", "viewer", ["a"], 60, created_by="t")


def test_every_action_is_audited_as_a_log_line_and_an_event(
    client: FlaskClient, events: list[tuple[Any, ...]]
) -> None:
    operator = mint(client, "ci-a", "operator", "team-a")
    with structlog.testing.capture_logs() as logs:
        client.post("/api/v1/applications/team-a/web/sync", json={}, headers=bearer(operator))
        client.post("/api/v1/applications/team-b/web/sync", json={}, headers=bearer(operator))
    audit = [entry for entry in logs if entry["event"] == "audit"]
    assert [(a["who"], a["action"], a["app"], a["result"], a["status"]) for a in audit] == [
        ("token:ci-a", "sync", "team-a/web", "requested", 202),
        ("token:ci-a", "sync", "team-b/web", "denied", 403),
    ]
    assert all(a["client"] and a["method"] == "api-token" for a in audit)
    assert [(e[0], e[1], e[3]) for e in events] == [
        (("team-a", "web"), "ActionRequested", False),
        (("team-b", "web"), "ActionDenied", True),
    ]
    assert "sync by token:ci-a (api-token) from " in events[0][2]
    assert operator not in repr(logs) + repr(events)


def test_the_admin_password_can_be_disabled(
    controller: FakeController, tokens: TokenStore, events: list[Any]
) -> None:
    client = rbac_app(controller, tokens, events, disable_admin_password=True).test_client()
    form = login_form_token(client)
    response = client.post("/login", data={"csrf_token": form, "password": ADMIN_PASSWORD})
    assert response.status_code == 401
    assert client.get("/api/v1/applications", headers=bearer(API_TOKEN)).status_code == 200


def test_a_session_with_groups_gets_the_policy_roles(
    controller: FakeController, tokens: TokenStore, events: list[Any]
) -> None:
    """What an OIDC login (another helper's part) hands over: a session with groups and no
    global role. The policy alone decides."""
    app = rbac_app(controller, tokens, events)
    guard_sessions = app.extensions.get("gitsync_guard")
    assert guard_sessions is not None
    session = guard_sessions.sessions.create(
        None, "alice@example.com", groups=("team-a",), via="oidc"
    )
    client = app.test_client()
    client.set_cookie("gitsync_session", guard_sessions.sessions.encode(session))
    doc = client.get("/api/v1/applications").get_json()
    assert doc["total"] == 3
    headers = {"X-CSRF-Token": session.csrf}
    assert (
        client.post("/api/v1/applications/team-a/web/sync", json={}, headers=headers).status_code
        == 202
    )
    assert (
        client.post("/api/v1/applications/team-b/web/sync", json={}, headers=headers).status_code
        == 403
    )


def test_a_viewer_refused_before_the_project_check_is_audited_too(
    client: FlaskClient, events: list[tuple[Any, ...]]
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = client.post(
            "/api/v1/applications/team-a/web/sync", json={}, headers=bearer(READ_ONLY_TOKEN)
        )
    assert response.status_code == 403
    audit = [(e["who"], e["action"], e["app"], e["result"]) for e in logs if e["event"] == "audit"]
    assert audit == [("read-only-token", "sync", "team-a/web", "denied")]
    assert [(e[0], e[1]) for e in events] == [(("team-a", "web"), "ActionDenied")]


def test_appsets_of_other_projects_are_not_listed(
    controller: FakeController, tokens: TokenStore, events: list[Any]
) -> None:
    controller.sets = [appset("fleet", "team-a"), appset("fleet", "team-b")]
    client = rbac_app(controller, tokens, events).test_client()
    token = mint(client, "ci-a", "viewer", "team-a")
    doc = client.get("/api/v1/applicationsets", headers=bearer(token)).get_json()
    assert [(i["namespace"], i["name"]) for i in doc["items"]] == [("team-a", "fleet")]
    assert doc["total"] == 1
    there = client.get("/api/v1/applicationsets/team-b/fleet", headers=bearer(token))
    absent = client.get("/api/v1/applicationsets/team-b/none", headers=bearer(token))
    assert (there.status_code, there.get_data()) == (absent.status_code, absent.get_data())
    assert there.status_code == 403
    assert "team-b" not in client.get("/appsets", headers=bearer(token)).get_data(as_text=True)


ROUTE_VALUES = {"namespace": "team-b", "name": "web", "action": "sync", "path": "web/promote"}


def test_every_route_about_an_application_asks_the_authorizer(
    controller: FakeController, tokens: TokenStore, events: list[Any]
) -> None:
    """Every route with a ``namespace`` in its path answers a team-a member's request about
    team-b with the one 403, by session (pages, forms, API) and by token (API) - a route added
    without ``guard.allow`` fails here."""
    app = rbac_app(controller, tokens, events)
    cookies = app.extensions["gitsync_guard"].sessions
    session = cookies.create(None, "alice@example.com", groups=("team-a",), via="oidc")
    by_session = app.test_client()
    by_session.set_cookie("gitsync_session", cookies.encode(session))
    by_token = app.test_client()
    token = mint(by_token, "ci-a", "admin", "team-a")
    checked = []
    for rule in app.url_map.iter_rules():
        if "namespace" not in rule.arguments:
            continue
        values = {arg: ROUTE_VALUES.get(arg, "x") for arg in rule.arguments}
        path = app.url_map.bind("localhost").build(rule.endpoint, values)
        api = path.startswith("/api/")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            asks = [
                by_session.open(
                    path,
                    method=method,
                    **(
                        {"json": {}, "headers": {"X-CSRF-Token": session.csrf}}
                        if api
                        else {"data": {"csrf_token": session.csrf}}
                    ),
                )
            ]
            if api:
                asks.append(by_token.open(path, method=method, json={}, headers=bearer(token)))
            for response in asks:
                assert response.status_code == 403, (method, path, response.status_code)
                assert b"not allowed in project 'team-b'" in response.get_data(), (method, path)
            checked.append((method, rule.rule))
    assert len(checked) >= 10, checked


def test_a_revocation_ends_the_token_at_once_here_and_within_the_refresh_elsewhere(
    clock: Clock,
) -> None:
    secrets_store = SecretsInMemory()
    ticks = Clock()
    here = TokenStore(secrets_store, "gitsync", refresh=3600, clock=clock, monotonic=ticks)
    replica = TokenStore(secrets_store, "gitsync", refresh=5, clock=clock, monotonic=ticks)
    _, token = here.create("ci", "operator", ["team-a"], 3600, created_by="admin")
    assert here.check(token) is not None and replica.check(token) is not None
    here.revoke("ci")
    assert here.check(token) is None  # this replica re-reads after its own write
    ticks.now += 4.9
    assert replica.check(token) is not None  # the other still has its copy ...
    ticks.now += 0.2
    assert replica.check(token) is None  # ... for at most the refresh
    assert (
        "ci"
        not in (secrets_store.get("v1", "Secret", "gitsync-api-tokens", "gitsync") or {})["data"]
    )


def test_a_client_repeating_a_refused_request_cannot_flood_events(
    client: FlaskClient, events: list[tuple[Any, ...]]
) -> None:
    operator = mint(client, "ci-a", "operator", "team-a")
    with structlog.testing.capture_logs() as logs:
        for _ in range(100):
            client.post("/api/v1/applications/team-b/web/sync", json={}, headers=bearer(operator))
    audit = [entry for entry in logs if entry["event"] == "audit"]
    assert len(audit) == 100  # every request keeps its log line
    assert len(events) == 1  # the same refusal is recorded once per 30 s
    assert [a["eventRecorded"] for a in audit[:2]] == [True, False]


def test_the_event_budget_bounds_distinct_events_too() -> None:
    ticks = Clock()
    budget = EventBudget(per_second=5, burst=50, clock=ticks)
    assert sum(budget.allow(("app", n)) for n in range(200)) == 50
    ticks.now += 1
    assert sum(budget.allow(("app", n)) for n in range(200, 400)) == 5
    ticks.now += 30
    assert budget.allow(("app", 0))  # a repeat is recorded again after the window


def test_refused_token_management_is_audited(client: FlaskClient) -> None:
    viewer = mint(client, "look-a", "viewer", "team-a")
    project_admin = mint(client, "admin-a", "admin", "team-a")
    body = {"name": "x", "role": "admin", "projects": ["*"], "expires": "1h"}
    with structlog.testing.capture_logs() as logs:
        for token in (viewer, project_admin):
            response = client.post("/api/v1/tokens", json=body, headers=bearer(token))
            assert response.status_code == 403
    audit = [
        (e["who"], e["action"], e["target"], e["result"]) for e in logs if e["event"] == "audit"
    ]
    assert audit == [
        ("token:look-a", "admin", "/api/v1/tokens", "denied"),
        ("token:admin-a", "admin", "/api/v1/tokens", "denied"),
    ]
