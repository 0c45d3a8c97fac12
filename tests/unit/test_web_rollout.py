"""The rollout panel and its API: what a person sees of a canary (step, weight, pause, analysis),
that everything from the Rollout is escaped, and that promote / abort / retry write the right
annotation on the right Rollout - only for an admin, only with the session's CSRF token.

The Rollouts are served by an in-memory stand-in for the controller's Kubernetes client (the
web layer's own ``KubeAccess`` interface); the real thing is exercised by
tests/integration/test_ui_rollout.py.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from test_web_support import (
    API_TOKEN,
    READ_ONLY_TOKEN,
    FakeController,
    application,
    bearer,
    login,
    make_app,
)

from gitsync.rollout.status import ABORT_ANNOTATION, PROMOTE_ANNOTATION, RETRY_ANNOTATION
from gitsync.web.rollouts import (
    RolloutRef,
    Rollouts,
    chart,
    remaining,
    rollout_document,
    rollout_refs,
)

ROLLOUT_API = "gitsync.dev/v1alpha1"
STEPS = [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 50}, {"pause": {}}]
PROMOTE_URL = "/api/v1/applications/team-a/web/rollouts/web/promote"


def rollout(
    name: str = "web",
    namespace: str = "team-a",
    *,
    phase: str = "Paused",
    index: int = 1,
    weight: int = 20,
    pause_until: str = "",
    canary_hash: str = "c4n4ry",
    aborted_hash: str = "",
    message: str = "step 2/4 (pause): paused",
    runs: list[dict[str, Any]] | None = None,
    steps: list[dict[str, Any]] | None = None,
    blue_green: bool = False,
) -> dict[str, Any]:
    strategy: dict[str, Any] = (
        {"blueGreen": {"activeService": "web"}}
        if blue_green
        else {"canary": {"stableService": "web", "steps": STEPS if steps is None else steps}}
    )
    status: dict[str, Any] = {
        "phase": phase,
        "message": message,
        "currentStepIndex": index,
        "currentWeight": weight,
        "stableHash": "57ab1e",
        "canaryHash": canary_hash,
        "gitRevision": "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "replicas": 10,
        "readyCanaryReplicas": weight // 10,
        "readyStableReplicas": 10 - weight // 10,
    }
    if pause_until:
        status["pauseUntil"] = pause_until
    if aborted_hash:
        status["abortedHash"] = aborted_hash
    if runs:
        status["analysisRuns"] = runs
    return {
        "apiVersion": ROLLOUT_API,
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "annotations": {}},
        "spec": {"targetRef": {"kind": "Deployment", "name": name}, "strategy": strategy},
        "status": status,
    }


def app_with_rollouts(
    name: str = "web", namespace: str = "team-a", rollouts: dict[str, str] | None = None
) -> dict[str, Any]:
    """An Application listing Rollouts (name -> the health it recorded for each)."""
    obj = application(name, namespace, health="Suspended")
    for rname, health in (rollouts if rollouts is not None else {"web": "Suspended"}).items():
        obj["status"]["resources"].append(
            {
                "group": "gitsync.dev",
                "kind": "Rollout",
                "namespace": namespace,
                "name": rname,
                "status": "Synced",
                "health": {"status": health},
            }
        )
    return obj


@dataclass
class FakeKube:
    """Rollouts in memory, behind the web layer's ``KubeAccess`` interface."""

    objs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    gets: list[tuple[str, str]] = field(default_factory=list)
    patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail: Exception | None = None

    def add(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objs[(meta["namespace"], meta["name"])] = obj

    def get(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> dict[str, Any] | None:
        assert (api_version, kind) == (ROLLOUT_API, "Rollout")
        self.gets.append((namespace, name))
        if self.fail is not None:
            raise self.fail
        obj = self.objs.get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str = "",
        patch_type: str = "merge",
    ) -> dict[str, Any]:
        assert (api_version, kind, patch_type) == (ROLLOUT_API, "Rollout", "merge")
        self.patches.append((namespace, name, patch))
        obj = self.objs[(namespace, name)]
        obj["metadata"]["annotations"].update(patch["metadata"]["annotations"])
        return obj


@dataclass
class RolloutController(FakeController):
    kube: FakeKube = field(default_factory=FakeKube)

    def cluster_client(self, name: str) -> Any:
        return self.kube if name in ("", "in-cluster") else super().cluster_client(name)


def controller_with(*rollout_objs: dict[str, Any], app: dict[str, Any] | None = None) -> Any:
    ctl = RolloutController([app or app_with_rollouts(), application("plain", "team-b")])
    for obj in rollout_objs:
        ctl.kube.add(obj)
    return ctl


def admin(ctl: Any) -> tuple[FlaskClient, str]:
    client = make_app(ctl).test_client()
    return client, login(client)


def soon(seconds: int) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


RUNS = [
    {
        "step": 2,
        "metric": "success-rate",
        "phase": "Running",
        "startedAt": "2024-05-02T10:00:00.000Z",
        "successful": 2,
        "failed": 1,
        "measurements": [
            {"time": "2024-05-02T10:00:00.000Z", "phase": "Successful", "value": "0.99"},
            {"time": "2024-05-02T10:00:10.000Z", "phase": "Failed", "value": "0.5"},
            {"time": "2024-05-02T10:00:20.000Z", "phase": "Inconclusive", "message": "no data"},
            {"time": "2024-05-02T10:00:30.000Z", "phase": "Successful", "value": "0.97"},
        ],
    }
]


# -- the panel ---------------------------------------------------------------------------------


def test_the_panel_shows_step_weight_pause_and_analysis() -> None:
    ctl = controller_with(rollout(pause_until=soon(25), runs=RUNS))
    client, _ = admin(ctl)
    page = client.get("/apps/team-a/web").get_data(as_text=True)
    panel = page[page.index('id="rollouts-panel"') :]
    assert 'id="rollouts-panel"' in page and "hidden" not in panel[: panel.index(">")]
    assert '<article class="rollout" data-rollout="web">' in panel
    assert "step 2 of 4: pause 30s" in panel
    assert 'class="badge rollout-paused"' in panel
    # the weight bar, in SVG attributes (the CSP forbids inline styles) and in words
    assert '<rect class="bar-stable" x="0" y="0" width="80" height="10">' in panel
    assert '<rect class="bar-canary" x="80" y="0" width="20" height="10">' in panel
    assert 'aria-label="stable 80 %, canary 20 %"' in panel
    assert "stable 80 %" in panel and "canary 20 %" in panel and "step target 20 %" in panel
    assert "2 canary + 8 stable pods ready of 10" in panel
    # the pause counts down from its deadline
    countdown = re.search(r'class="countdown" data-until="([^"]+)">(\d+)s<', panel)
    assert countdown and 20 <= int(countdown.group(2)) <= 25
    # steps: done, current, pending
    assert '<li class="step step-done">set weight 20 %</li>' in panel
    assert '<li class="step step-current" aria-current="step">pause 30s</li>' in panel
    assert '<li class="step step-pending">pause until promoted</li>' in panel
    # analysis: one chart per run, a marker per measurement, its shape by phase
    assert 'data-metric="success-rate"' in panel and "step 3 · <strong>success-rate" in panel
    assert "2 successful, 1 failed, 0 inconclusive, 0 errors" in panel
    assert panel.count('<path class="marker marker-successful"') == 2
    assert panel.count('<path class="marker marker-failed"') == 1
    assert panel.count('<path class="marker marker-inconclusive"') == 1
    assert "<polyline" in panel and "<title>2024-05-02T10:00:10.000Z: 0.5 (Failed)" in panel
    assert "no value (Inconclusive) - no data" in panel
    # an admin gets the four buttons; promote / abort apply while the canary runs
    for action, label in [
        ("promote", "Promote"),
        ("promote-full", "Promote full"),
        ("abort", "Abort"),
    ]:
        assert f'<button type="submit" data-action="{action}">{label}</button>' in panel
    assert '<button type="submit" data-action="retry" disabled>Retry</button>' in panel
    assert 'action="/apps/team-a/web/rollouts/web/promote"' in panel
    assert f'data-api="{PROMOTE_URL}"' in panel
    assert "data-confirm=" in panel


def test_the_api_lists_status_and_steps_of_each_rollout() -> None:
    ctl = controller_with(rollout(pause_until=soon(25), runs=RUNS))
    client, _ = admin(ctl)
    doc = client.get("/api/v1/applications/team-a/web/rollouts").get_json()
    assert doc["application"] == "team-a/web" and doc["serverTime"].endswith("Z")
    [r] = doc["rollouts"]
    assert r["name"] == "web" and r["namespace"] == "team-a" and r["strategy"] == "canary"
    assert (r["phase"], r["currentStepIndex"], r["stepNumber"], r["stepCount"]) == (
        "Paused",
        1,
        2,
        4,
    )
    assert r["weight"] == {"canary": 20, "stable": 80, "target": 20}
    assert [s["state"] for s in r["steps"]] == ["done", "current", "pending", "pending"]
    assert [s["text"] for s in r["steps"]][2] == "set weight 50 %"
    assert r["actions"] == {"promote": True, "promoteFull": True, "abort": True, "retry": False}
    assert r["analysisRuns"][0]["metric"] == "success-rate"
    assert [m["value"] for m in r["analysisRuns"][0]["measurements"]] == ["0.99", "0.5", "", "0.97"]
    assert r["gitRevisionShort"] == "2222222" and r["pauseUntil"]
    assert client.get("/api/v1/applications/team-a/nope/rollouts").status_code == 404
    # an app without Rollouts has none, and costs no read of the cluster
    ctl.kube.gets.clear()
    plain = client.get("/api/v1/applications/team-b/plain/rollouts").get_json()
    assert plain["rollouts"] == [] and ctl.kube.gets == []


def test_an_aborted_rollout_shows_stable_at_100_and_offers_retry() -> None:
    aborted = rollout(
        phase="Degraded",
        index=2,
        weight=0,
        aborted_hash="c4n4ry",
        message="aborted canary c4n4ry: abort requested; traffic is back on stable 57ab1e",
    )
    client, _ = admin(controller_with(aborted))
    page = client.get("/apps/team-a/web").get_data(as_text=True)
    assert 'class="badge rollout-degraded"' in page
    assert "aborted at step 3 of 4: set weight 50 %" in page
    assert "aborted canary c4n4ry: abort requested; traffic is back on stable 57ab1e" in page
    assert 'width="100" height="10"' in page and "canary 0 %" in page
    assert '<button type="submit" data-action="retry">Retry</button>' in page
    assert '<button type="submit" data-action="abort" disabled>Abort</button>' in page


def test_a_finished_rollout_has_no_canary_share() -> None:
    done = rollout(phase="Healthy", index=4, weight=100, canary_hash="", message="complete")
    doc = rollout_document(RolloutRef("team-a", "web", "", "Healthy"), done)
    assert doc["weight"] == {"canary": 0, "stable": 100, "target": None}
    assert doc["complete"] and doc["stepText"] == "all 4 steps done"
    assert not any(doc["actions"].values())


def test_blue_green_shows_its_stages() -> None:
    bg = rollout(phase="Paused", index=0, weight=0, blue_green=True, message="preview ready")
    doc = rollout_document(RolloutRef("team-a", "web", "", "Suspended"), bg)
    assert doc["strategy"] == "blueGreen" and doc["stepCount"] == 4
    assert doc["stepText"].startswith("stage 1 of 4: preview")
    client, _ = admin(controller_with(bg))
    page = client.get("/apps/team-a/web").get_data(as_text=True)
    assert "blue-green" in page and "new 0 %" in page


def test_everything_from_the_rollout_is_text() -> None:
    evil = "<script>alert(1)</script>"
    runs = [
        {
            "step": 0,
            "metric": '<img src=x onerror="alert(2)">',
            "phase": "Failed",
            "message": evil,
            "measurements": [
                {"time": "2024-05-02T10:00:00Z", "phase": "Failed", "value": "</title><b>x"}
            ],
        }
    ]
    steps: list[dict[str, Any]] = [
        {"analysis": {"metrics": ["<i>m</i>"]}},
        {"pause": {"duration": "<u>1s</u>"}},
    ]
    ctl = controller_with(rollout(message=evil, runs=runs, steps=steps, index=0))
    client, _ = admin(ctl)
    page = client.get("/apps/team-a/web").get_data(as_text=True)
    for raw in (evil, '<img src=x onerror="alert(2)">', "</title><b>x", "<i>m</i>", "<u>1s</u>"):
        assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=" in page and "&lt;i&gt;m&lt;/i&gt;" in page
    doc = client.get("/api/v1/applications/team-a/web/rollouts").get_json()
    assert doc["rollouts"][0]["message"] == evil  # JSON carries it as text; app.js sets text


def test_a_rollout_that_cannot_be_read_is_an_error_on_the_panel_not_a_failed_page() -> None:
    ctl = controller_with(rollout())
    ctl.kube.fail = RuntimeError("403 Forbidden: rollouts is forbidden for https://u:pw@x")
    client, _ = admin(ctl)
    response = client.get("/apps/team-a/web")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "the Rollout could not be read: 403 Forbidden" in page
    assert "u:pw@" not in page
    ctl.kube.fail = None
    missing = controller_with(app=app_with_rollouts(rollouts={"gone": "Missing"}))
    client, _ = admin(missing)
    assert "the Rollout does not exist (yet)" in client.get("/apps/team-a/web").get_data(
        as_text=True
    )


# -- who sees the buttons ----------------------------------------------------------------------


def test_buttons_only_for_admins() -> None:
    ctl = controller_with(rollout())
    viewer = make_app(ctl).test_client()
    login(viewer, READ_ONLY_TOKEN)
    page = viewer.get("/apps/team-a/web").get_data(as_text=True)
    assert "step 2 of 4" in page  # the panel itself is for everyone who may read
    assert "data-action=" not in page and "Promote full" not in page
    anonymous = make_app(ctl, anonymous_read=True).test_client()
    page = anonymous.get("/apps/team-a/web").get_data(as_text=True)
    assert "step 2 of 4" in page and "data-action=" not in page


# -- actions -----------------------------------------------------------------------------------


def post(client: FlaskClient, url: str, csrf: str, body: Any = None) -> Any:
    return client.post(url, json=body or {}, headers={"X-CSRF-Token": csrf})


@pytest.mark.parametrize(
    ("action", "body", "annotation", "suffix"),
    [
        ("promote", {}, PROMOTE_ANNOTATION, ""),
        ("promote", {"full": True}, PROMOTE_ANNOTATION, ";full"),
        ("abort", {}, ABORT_ANNOTATION, ""),
    ],
)
def test_actions_write_the_annotation_with_a_fresh_nonce(
    action: str, body: dict[str, Any], annotation: str, suffix: str
) -> None:
    ctl = controller_with(rollout())
    client, csrf = admin(ctl)
    url = f"/api/v1/applications/team-a/web/rollouts/web/{action}"
    first = post(client, url, csrf, body)
    assert first.status_code == 202, first.get_json()
    doc = first.get_json()
    assert doc["rollout"] == "team-a/web" and doc["action"] == action
    assert doc["full"] is bool(suffix) and doc["message"].startswith("web: ")
    second = post(client, url, csrf, body)
    assert second.status_code == 202
    [(ns1, name1, patch1), (_, _, patch2)] = ctl.kube.patches
    assert (ns1, name1) == ("team-a", "web")
    assert list(patch1) == ["metadata"] and list(patch1["metadata"]) == ["annotations"]
    value1 = patch1["metadata"]["annotations"][annotation]
    value2 = patch2["metadata"]["annotations"][annotation]
    assert re.fullmatch(r"[0-9a-f]{12}" + re.escape(suffix), value1)
    assert value1 != value2  # each request is a new one for the executor
    assert doc["request"] == value1
    assert (("team-a", "web"), f"web:rollout-{action}") in ctl.refreshed


def test_retry_applies_to_an_aborted_rollout_only() -> None:
    ctl = controller_with(rollout())
    client, csrf = admin(ctl)
    url = "/api/v1/applications/team-a/web/rollouts/web/retry"
    refused = post(client, url, csrf)
    assert refused.status_code == 409 and "retry" in refused.get_json()["error"]
    ctl.kube.add(rollout(phase="Degraded", weight=0, aborted_hash="c4n4ry"))
    assert post(client, url, csrf).status_code == 202
    [(_, _, patch)] = ctl.kube.patches
    assert re.fullmatch(r"[0-9a-f]{12}", patch["metadata"]["annotations"][RETRY_ANNOTATION])
    # and promote / abort do not apply to it
    assert post(client, PROMOTE_URL, csrf).status_code == 409
    assert len(ctl.kube.patches) == 1


def test_bad_requests_are_refused_without_a_write() -> None:
    ctl = controller_with(rollout(), rollout("other"))
    client, csrf = admin(ctl)
    base = "/api/v1/applications/team-a/web/rollouts"
    assert post(client, f"{base}/other/promote", csrf).status_code == 404  # not the app's
    assert post(client, f"{base}/web/explode", csrf).status_code == 404
    assert post(client, f"{base}/web", csrf).status_code == 404
    assert post(client, f"{base}/web/abort", csrf, {"full": True}).status_code == 400
    assert post(client, f"{base}/web/promote", csrf, {"full": "yes"}).status_code == 400
    assert post(client, "/api/v1/applications/team-a/nope/rollouts/web/promote", csrf).status_code
    assert ctl.kube.patches == []


def test_a_failed_write_is_a_502() -> None:
    ctl = controller_with(rollout())
    client, csrf = admin(ctl)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("connection refused")

    ctl.kube.patch = refuse  # type: ignore[method-assign]
    response = post(client, PROMOTE_URL, csrf)
    assert response.status_code == 502
    assert response.get_json() == {"error": "the request could not be recorded on the Rollout"}


def test_a_read_only_user_is_refused() -> None:
    ctl = controller_with(rollout())
    by_token = (
        make_app(ctl).test_client().post(PROMOTE_URL, json={}, headers=bearer(READ_ONLY_TOKEN))
    )
    assert by_token.status_code == 403
    viewer = make_app(ctl).test_client()
    csrf = login(viewer, READ_ONLY_TOKEN)
    assert post(viewer, PROMOTE_URL, csrf).status_code == 403
    form = viewer.post(
        "/apps/team-a/web/rollouts/web/abort", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert form.status_code == 403
    anonymous = make_app(ctl, anonymous_read=True).test_client().post(PROMOTE_URL, json={})
    assert anonymous.status_code == 401
    assert ctl.kube.patches == []


def test_an_api_token_may_act_without_csrf() -> None:
    ctl = controller_with(rollout())
    response = make_app(ctl).test_client().post(PROMOTE_URL, json={}, headers=bearer(API_TOKEN))
    assert response.status_code == 202 and len(ctl.kube.patches) == 1


def test_csrf_and_json_are_required() -> None:
    ctl = controller_with(rollout())
    client, csrf = admin(ctl)
    missing = client.post(PROMOTE_URL, json={})
    assert missing.status_code == 403
    assert missing.get_json() == {"error": "missing or wrong CSRF token"}
    assert (
        client.post(PROMOTE_URL, json={}, headers={"X-CSRF-Token": "x" + csrf}).status_code == 403
    )
    cross_site = client.post(
        PROMOTE_URL, json={}, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}
    )
    assert cross_site.status_code == 403
    plain = client.post(
        PROMOTE_URL, data="{}", content_type="text/plain", headers={"X-CSRF-Token": csrf}
    )
    assert plain.status_code == 415
    form = client.post("/apps/team-a/web/rollouts/web/promote", data={"full": "true"})
    assert form.status_code == 403
    assert ctl.kube.patches == []


def test_the_form_fallback_writes_the_same_request() -> None:
    ctl = controller_with(rollout())
    client, csrf = admin(ctl)
    response = client.post(
        "/apps/team-a/web/rollouts/web/promote", data={"csrf_token": csrf, "full": "true"}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/apps/team-a/web"
    [(_, _, patch)] = ctl.kube.patches
    assert patch["metadata"]["annotations"][PROMOTE_ANNOTATION].endswith(";full")
    page = client.get("/apps/team-a/web").get_data(as_text=True)
    assert "full promotion requested" in page
    refused = client.post("/apps/team-a/web/rollouts/web/retry", data={"csrf_token": csrf})
    assert refused.status_code == 303
    assert "nothing to retry" in client.get("/apps/team-a/web").get_data(as_text=True)


# -- the list ----------------------------------------------------------------------------------


def test_the_list_shows_phase_and_weight_of_running_rollouts_only() -> None:
    app = app_with_rollouts(rollouts={"web": "Suspended", "done": "Healthy"})
    ctl = controller_with(rollout(), rollout("done", phase="Healthy", canary_hash=""), app=app)
    client, _ = admin(ctl)
    ctl.kube.gets.clear()
    page = client.get("/").get_data(as_text=True)
    row = page[page.index('data-app="team-a/web"') :]
    row = row[: row.index("</tr>")]
    assert '<div class="rollout-cell" data-rollout="web">' in row
    assert "step 2/4" in row and "canary 20 %" in row and "rollout-paused" in row
    assert 'data-rollout="done"' not in row
    assert ctl.kube.gets == [("team-a", "web")]  # a Rollout recorded Healthy is not read
    items = client.get("/api/v1/applications").get_json()["items"]
    by_name = {i["name"]: i for i in items}
    assert by_name["plain"]["rollouts"] == []
    [cell] = by_name["web"]["rollouts"]
    assert cell == {
        "name": "web",
        "namespace": "team-a",
        "phase": "Paused",
        "stepNumber": 2,
        "stepCount": 4,
        "complete": False,
        "weight": {"canary": 20, "stable": 80, "target": 20},
        "strategy": "canary",
    }


# -- pure parts --------------------------------------------------------------------------------


def test_rollout_refs_come_from_the_applications_resources() -> None:
    obj = app_with_rollouts(rollouts={"b": "Healthy", "a": "Progressing"})
    obj["status"]["resources"].append({"group": "other.io", "kind": "Rollout", "name": "x"})
    obj["spec"]["destination"] = {"namespace": "prod", "name": "east"}
    obj["status"]["resources"].append({"group": "gitsync.dev", "kind": "Rollout", "name": "c"})
    refs = rollout_refs(obj)
    assert [(r.name, r.namespace, r.cluster, r.health) for r in refs] == [
        ("a", "team-a", "east", "Progressing"),
        ("b", "team-a", "east", "Healthy"),
        ("c", "prod", "east", ""),
    ]
    assert rollout_refs({"status": {"resources": "nonsense"}}) == []


def test_malformed_status_never_raises() -> None:
    ref = RolloutRef("ns", "r", "", "")
    for status in [None, [], {"currentStepIndex": "x", "currentWeight": 1e999, "phase": 3}]:
        doc = rollout_document(
            ref, {"spec": {"strategy": {"canary": {"steps": "x"}}}, "status": status}
        )
        assert doc["stepCount"] == 0 and doc["weight"]["canary"] == 0
    weird = rollout(weight=250, index=-3, runs=[{"metric": "m", "measurements": [None, 3]}])
    doc = rollout_document(ref, weird)
    assert doc["currentWeight"] == 100 and doc["currentStepIndex"] == 0
    assert chart(doc["analysisRuns"][0])["points"][0]["plotted"] is False


def test_chart_geometry() -> None:
    run = rollout_document(RolloutRef("ns", "r", "", ""), rollout(runs=RUNS))["analysisRuns"][0]
    c = chart(run)
    xs = [p["x"] for p in c["points"]]
    assert xs == sorted(xs) and xs[0] == 34 and xs[-1] == 232  # by time, edge to edge
    assert c["points"][0]["y"] == 8  # the highest value on top
    assert c["points"][1]["y"] == 64 and c["points"][2]["y"] == 64  # lowest value; no data
    assert [p["shape"] for p in c["points"]] == ["circle", "cross", "square", "circle"]
    assert c["points"][2]["plotted"] is False and len(c["line"].split()) == 3
    assert (c["low"], c["high"]) == ("0.5", "0.99")
    flat = chart(
        {"measurements": [{"time": "", "phase": "Successful", "value": "true", "message": ""}]}
    )
    assert flat["points"][0]["x"] == 133 and flat["points"][0]["y"] == 36


def test_remaining_pause() -> None:
    now = datetime(2024, 5, 2, 10, 0, 0, tzinfo=UTC)
    assert remaining("2024-05-02T10:00:30Z", now) == "30s"
    assert remaining("2024-05-02T10:01:05Z", now) == "1m 05s"
    assert remaining("2024-05-02T12:05:00Z", now) == "2h 05m"
    assert remaining("2024-05-02T09:00:00Z", now) == "0s"
    assert remaining("soon", now) == ""


def test_reads_are_shared_for_the_ttl_and_a_request_reads_fresh() -> None:
    ctl = controller_with(rollout())
    now = [0.0]
    reader = Rollouts(ctl, ttl=1.0, clock=lambda: now[0])
    obj = ctl.store.get(("team-a", "web"))
    reader.of_application(obj)
    reader.of_application(obj)
    assert len(ctl.kube.gets) == 1
    now[0] = 1.5
    reader.of_application(obj)
    assert len(ctl.kube.gets) == 2
    reader.of_application(obj, fresh=True)
    assert len(ctl.kube.gets) == 3
    reader.request(obj, "web", "promote", full=False, actor="test")  # reads live, then forgets
    assert len(ctl.kube.gets) == 4
    reader.of_application(obj)
    assert len(ctl.kube.gets) == 5
