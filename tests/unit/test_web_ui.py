"""The server-rendered pages: escaping, links, security headers, the list's filters and pages,
the detail page, the diff page and the form fallback of the actions."""

from __future__ import annotations

import base64
import os
import re
import time

import pytest
from flask.testing import FlaskClient
from test_web_support import SHA1, FakeController, application, login, make_app

from gitsync.application_status import HealthSummary, ResourceStatus
from gitsync.diff import diff_resource
from gitsync.model import ResourceKey
from gitsync.web.app import CONTENT_SECURITY_POLICY

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def controller() -> FakeController:
    return FakeController([application("web"), application("api", "team-b", sync="OutOfSync")])


@pytest.fixture
def client(controller: FakeController) -> FlaskClient:
    client = make_app(controller).test_client()
    login(client)
    return client


def page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def test_the_list_shows_one_row_per_application(client: FlaskClient) -> None:
    html = page(client, "/")
    assert html.count('<tr data-app="') == 2
    row = html[html.index('data-app="team-a/web"') :]
    row = row[: row.index("</tr>")]
    assert 'href="/apps/team-a/web"' in row
    assert "https://git.example.com/org/deploy.git" in row and "apps/web @ main" in row
    assert "2222222" in row and "set replicas to 3" in row and "Ada &lt;ada@example.com&gt;" in row
    assert 'class="badge sync-synced"' in row and ">Synced<" in row
    assert 'class="badge health-healthy"' in row and ">Healthy<" in row
    assert "2024-05-02 10:00:00 UTC" in row


def test_commit_messages_and_names_render_escaped(controller: FakeController) -> None:
    controller.store.objs.clear()
    evil = application(
        "web",
        message=XSS,
        author=XSS,
        annotations={"note": XSS},
        resources=[
            ResourceStatus(
                "", "ConfigMap", "team-a", XSS, "OutOfSync", HealthSummary("Healthy", XSS)
            )
        ],
    )
    evil["status"]["conditions"][0]["message"] = XSS
    evil["spec"]["source"]["path"] = XSS
    controller.store.objs[("team-a", "web")] = evil
    client = make_app(controller).test_client()
    login(client)
    for url in ("/", "/apps/team-a/web"):
        html = page(client, url)
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html, url
        # scripts only from /static (app.js, and the page parts' own files), none inline
        tags = re.findall(r"<script\b[^>]*>", html)
        assert tags and all(re.search(r'src="/static/[a-z_-]+\.js"', t) for t in tags), tags


def test_a_javascript_repo_url_is_text_not_a_link(controller: FakeController) -> None:
    controller.store.objs[("team-a", "web")]["spec"]["source"]["repoURL"] = "javascript:alert(1)"
    client = make_app(controller).test_client()
    login(client)
    for url in ("/", "/apps/team-a/web"):
        html = page(client, url)
        assert 'href="javascript:' not in html.lower()
        assert '<span class="repo">javascript:alert(1)</span>' in html
    # an https repo is a link, opened without a referrer
    html = page(client, "/apps/team-b/api")
    assert '<a class="repo" href="https://git.example.com/org/deploy.git"' in html
    assert 'rel="noopener noreferrer external"' in html


@pytest.mark.parametrize(
    "url", ["/", "/apps/team-a/web", "/apps/team-a/web/diff", "/login", "/nope", "/api/v1/x"]
)
def test_security_headers_on_every_response(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    expected = CONTENT_SECURITY_POLICY
    if os.environ.get("GITSYNC_TEST_WEB_SSO") == "1":  # logout may end on the provider's page
        expected = expected.replace("form-action 'self'", "form-action 'self' http://127.0.0.1:9")
    assert response.headers["Content-Security-Policy"] == expected
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ):
        assert directive in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script_or_style(client: FlaskClient) -> None:
    for url in ("/", "/apps/team-a/web", "/apps/team-a/web/diff", "/login"):
        html = page(client, url)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), url
        assert " style=" not in html and "<style" not in html, url
        assert not re.search(r"\son[a-z]+=", html), url


def test_unknown_pages_are_404_html_and_api_404_json(client: FlaskClient) -> None:
    assert client.get("/apps/team-a/missing").status_code == 404
    response = client.get("/api/v1/applications/team-a/missing")
    assert response.status_code == 404 and response.get_json()["error"]


def many(n: int) -> FakeController:
    return FakeController(
        [
            application(
                f"app-{i:04d}",
                f"ns-{i % 7}",
                sync="OutOfSync" if i % 4 == 0 else "Synced",
                health="Degraded" if i % 5 == 0 else "Healthy",
            )
            for i in range(n)
        ]
    )


def test_list_pages_and_filters(controller: FakeController) -> None:
    client = make_app(many(120)).test_client()
    login(client)
    first = page(client, "/")
    assert first.count("<tr data-app=") == 50 and "Page 1 of 3" in first
    assert 'href="/?page=2"' in first and 'rel="prev"' not in first
    third = page(client, "/?page=3")
    assert third.count("<tr data-app=") == 20 and 'rel="next"' not in third
    filtered = page(client, "/?sync=outofsync&health=degraded&per_page=10")
    rows = re.findall(r'<tr data-app="([^"]+)"', filtered)
    assert len(rows) == 6  # i % 20 == 0 for i < 120
    paged = page(client, "/?sync=outofsync&health=degraded&per_page=4")
    assert paged.count("<tr data-app=") == 4 and "Page 1 of 2" in paged
    assert 'href="/?sync=outofsync&amp;health=degraded&amp;per_page=4&amp;page=2"' in paged
    assert '<option value="outofsync" selected>' in filtered
    text = page(client, "/?q=app-011")
    names = re.findall(r'<tr data-app="[^/]+/([^"]+)"', text)
    assert sorted(names) == [f"app-011{i}" for i in range(10)]
    assert "No applications match these filters" in page(client, "/?q=nothing-like-this")
    # bad numbers on a page fall back instead of failing
    assert page(client, "/?page=abc&per_page=-3").count("<tr data-app=") == 1


def test_a_thousand_applications_list_page(capsys: pytest.CaptureFixture[str]) -> None:
    client = make_app(many(1000)).test_client()
    login(client)
    timings = {}
    for label, url in [("default page (50)", "/"), ("all 1000 on one page", "/?per_page=1000")]:
        started = time.perf_counter()
        html = page(client, url)
        timings[label] = time.perf_counter() - started
        assert html.count("<tr data-app=") == (50 if label.startswith("default") else 1000)
    started = time.perf_counter()
    assert client.get("/api/v1/applications?per_page=1000").get_json()["total"] == 1000
    timings["API, 1000 items"] = time.perf_counter() - started
    with capsys.disabled():
        print()
        for label, seconds in timings.items():
            print(f"1000 Applications, list {label}: {seconds * 1000:.0f} ms")


def test_detail_page_shows_tree_operation_history_and_actions(client: FlaskClient) -> None:
    html = page(client, "/apps/team-a/web")
    assert '<span data-field="sourceType">Directory</span>' in html
    tree = html[html.index('<ul id="resources">') :]
    tree = tree[: tree.index("</ul>")]
    assert 'data-resource="/ConfigMap/team-a/config"' in tree
    assert 'data-resource="apps/Deployment/team-a/web"' in tree
    assert "last sync: Synced" in tree
    history = html[html.index('<tbody id="history">') :]
    assert history.index('data-history="2"') < history.index('data-history="1"')
    assert "Roll back" in history and 'name="id" value="1"' in history
    assert 'data-confirm="Roll back team-a/web to history entry #1 (1111111)?' in html
    assert "Sync now" in html and 'name="prune"' in html
    assert 'data-confirm="Sync team-a/web to its target revision now?"' in html
    assert "Pause automation" in html
    assert 'data-api="/api/v1/applications/team-a/web"' in html
    hooks = html[html.index('<tbody id="operation-hooks">') :]
    hooks = hooks[: hooks.index("</tbody>")]
    assert ">PreSync<" in hooks and ">migrate<" in hooks and ">4.2s<" in hooks


def secret(value: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "team-a"},
        "type": "Opaque",
        "data": {"password": base64.b64encode(value.encode()).decode()},
    }


def test_diff_page_masks_secret_values(controller: FakeController) -> None:
    key = ResourceKey("", "Secret", "team-a", "db")
    controller.diffs[("team-a", "web")] = [
        diff_resource(
            key,
            secret("new-Pa55word!"),
            secret("old-Pa55word!"),
            desired_is_dry_run=False,
            mask_scope="t/app",
        )
    ]
    client = make_app(controller).test_client()
    login(client)
    html = page(client, "/apps/team-a/web/diff")
    assert "Secret" in html and "OutOfSync" in html
    assert '<pre class="diff"><span class="file">--- live/Secret/team-a/db\n</span>' in html
    assert '<span class="del">-  password: ++++++++ (hmac-sha256:' in html
    assert '<span class="add">+  password: ++++++++ (hmac-sha256:' in html
    for value in ("new-Pa55word!", "old-Pa55word!"):
        assert value not in html
        assert base64.b64encode(value.encode()).decode() not in html


def test_form_actions_redirect_back_with_the_result(
    client: FlaskClient, controller: FakeController
) -> None:
    html = page(client, "/")
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert csrf
    token = csrf.group(1)
    response = client.post("/apps/team-a/web/sync", data={"csrf_token": token, "prune": "on"})
    assert response.status_code == 303
    assert "sync requested (with prune)" in page(client, "/apps/team-a/web")
    response = client.post("/apps/team-a/web/rollback", data={"csrf_token": token, "id": "99"})
    assert "no history entry 99" in page(client, "/apps/team-a/web")
    client.post("/apps/team-a/web/rollback", data={"csrf_token": token, "id": "1"})
    assert controller.store.patches[-1][1] == {"gitsync.dev/rollback-to": "1"}
    detail = page(client, "/apps/team-a/web")
    assert "rollback to history entry 1 requested" in detail
    assert SHA1[:7] in detail
    assert client.post("/apps/team-a/web/explode", data={"csrf_token": token}).status_code == 404


def test_pause_for_automated_apps_resume_when_paused(controller: FakeController) -> None:
    controller.store.objs[("team-a", "manual")] = application("manual", automated=False)
    controller.store.objs[("team-a", "paused")] = application(
        "paused", annotations={"gitsync.dev/automation-paused": "rollback to 1"}
    )
    client = make_app(controller).test_client()
    login(client)

    def visible(html: str, label: str) -> bool:
        form = html[: html.index(label)]
        form = form[form.rindex("<form") :]
        return " hidden>" not in form

    automated = page(client, "/apps/team-a/web")
    assert visible(automated, "Pause automation") and not visible(automated, "Resume automation")
    manual = page(client, "/apps/team-a/manual")
    assert not visible(manual, "Pause automation") and not visible(manual, "Resume automation")
    assert "manual sync" in manual
    paused = page(client, "/apps/team-a/paused")
    assert visible(paused, "Resume automation") and not visible(paused, "Pause automation")
    assert "automated sync paused" in paused


def test_the_sync_form_offers_a_dry_run_preview(client: FlaskClient) -> None:
    html = page(client, "/apps/team-b/api")
    form = html[html.index("<summary>Sync…</summary>") : html.index("</details>")]
    assert 'name="prune"' in form
    assert 'href="/apps/team-b/api/diff"' in form and "Preview (dry run)" in form
    assert "Nothing is written" in form


def test_a_chart_app_shows_its_chart_version_and_source_type(controller: FakeController) -> None:
    """Issue 15: for a chart source the pages name the chart, its deployed version with the
    recorded digest and the source type, instead of a path and a Git revision."""
    controller.store.objs.clear()
    obj = application("web", sha="web@1.12.3", message="")
    source = {"repoURL": "oci://registry.example.com/charts/web", "targetRevision": "1.x"}
    obj["spec"]["source"] = source
    obj["status"]["sourceType"] = "OCI"
    obj["status"]["sourceRevision"]["digest"] = "sha256:" + "b" * 64
    controller.store.objs[("team-a", "web")] = obj
    client = make_app(controller).test_client()
    login(client)
    row = page(client, "/")
    assert 'chart <code class="chart">web</code> @ 1.x' in row
    assert '<span data-field="sourceType">OCI</span>' in row
    html = page(client, "/apps/team-a/web")
    assert 'chart <code class="chart">web</code> @ 1.x' in html
    assert '<code data-field="chartVersion">1.12.3</code>' in html
    assert "sha256:" + "b" * 64 in html
    assert '<span data-field="sourceType">OCI</span>' in html
    assert "Git revision" not in html


def test_the_app_page_lists_its_dependencies_and_the_wait(controller: FakeController) -> None:
    obj = application("api")
    obj["spec"]["dependsOn"] = [{"name": "db"}]
    obj["status"]["waitingFor"] = [{"namespace": "team-a", "name": "db", "reason": "<b>x</b>"}]
    controller.store.objs[("team-a", "api")] = obj
    client = make_app(controller).test_client()
    login(client)
    html = page(client, "/apps/team-a/api")
    deps = html[html.index('<dd id="depends-on">') :]
    deps = deps[: deps.index("</dd>")]
    assert 'href="/apps/team-a/db"' in deps and "waiting: &lt;b&gt;x&lt;/b&gt;" in deps
    row = page(client, "/")
    assert "waiting for team-a/db (&lt;b&gt;x&lt;/b&gt;)" in row
    assert '<dd id="depends-on">' not in page(client, "/apps/team-a/web")
