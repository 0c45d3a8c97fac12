"""The rollout panel in a real browser (headless Debian chromium through Playwright).

1. Against a live ``gitsync serve`` on the test control plane, logged in as admin: a canary of 10
   replicas (steps setWeight 20 / pause {} / setWeight 50 / pause {}) moves on the open page
   without a reload - step and weight bar, in the panel and in the list's rollout cell; Promote
   advances it to the next step; Abort returns it to stable (0 % canary, Degraded with its
   message); ``gitsync rollout retry`` (the CLI) starts it again and Promote full finishes it.
2. The panel's script against Rollouts on the real API server whose status the test writes
   (analysis measurements, a timed pause): app.js draws the same chart as the server-rendered
   SVG, counts the pause down, and follows status changes live.

Screenshots go to .artifacts/screenshots/rollout-*.png. Every page is watched for console errors,
so a Content-Security-Policy violation (an inline style or script) fails the test.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.controller.interface import AppEvents
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from gitsync.web import AuthSettings, create_app
from tests.support.apps import app_status, application, github_webhook
from tests.support.browser import UI, screenshot_path
from tests.support.cli import run_gitsync
from tests.support.cluster import TestCluster
from tests.support.manifests import canary_rollout, web_deployment, web_service
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ROLLOUT_CRD = ROOT / "charts/gitsync/crds/rollouts.gitsync.dev.yaml"
ROLLOUT_API = "gitsync.dev/v1alpha1"
REPLICAS = 10


def deployment(image: str) -> dict[str, Any]:
    return web_deployment(image, REPLICAS)


SERVICE = web_service()
CANARY = canary_rollout(
    [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}], deadline=300
)


def canary_repo(git_server: GitServer) -> GitRepo:
    return git_server.create_repo(
        f"ui-canary-{secrets.token_hex(3)}",
        files={
            "app/deployment.yaml": yaml.safe_dump(deployment("nginx:1.25")),
            "app/service.yaml": yaml.safe_dump(SERVICE),
            "app/rollout.yaml": yaml.safe_dump(CANARY),
        },
    )


def app_ready(kube: KubeClient, namespace: str, sha: str) -> bool:
    status = app_status(kube, namespace, "web")
    return (
        status.get("sync", {}).get("revision") == sha
        and status.get("sync", {}).get("status") == "Synced"
        and status.get("health", {}).get("status") == "Healthy"
    )


def live_image(kube: KubeClient, namespace: str) -> str:
    live = kube.get("apps/v1", "Deployment", "web", namespace) or {}
    return str(live["spec"]["template"]["spec"]["containers"][0]["image"]) if live else ""


def test_canary_moves_on_the_open_page_promote_advances_abort_returns_to_stable(
    ui: Any,
    kube: KubeClient,
    cluster: TestCluster,
    namespace: str,
    git_server: GitServer,
    rollout_crd: None,
) -> None:
    from playwright.sync_api import expect

    ctl = ui.serve()
    repo = canary_repo(git_server)
    first = repo.head()
    kube.create(application("web", namespace, repo.file_url()))
    wait_for(lambda: app_ready(kube, namespace, first), timeout=120, what="first sync healthy")

    view = ui.open(ctl, "rollout")
    try:
        page = view.page
        page.goto(f"{ctl.url}/apps/{namespace}/web")
        panel = page.locator('#rollouts article.rollout[data-rollout="web"]')
        bar = panel.locator("svg.weight-bar")
        expect(panel.locator(".badge")).to_have_text("Healthy")
        expect(panel.locator(".weight-text")).to_contain_text("stable 100 %")
        expect(bar.locator("rect.bar-canary")).to_have_attribute("width", "0")
        expect(panel.get_by_role("button", name="Promote", exact=True)).to_be_disabled()
        page.evaluate("window.__notReloaded = true")
        view.shot("healthy")

        # a push starts the canary; the open page follows it: 2 of 10 pods, then the pause
        sha = repo.commit({"app/deployment.yaml": yaml.safe_dump(deployment("nginx:1.26"))}, "v2")
        repo.push()
        assert github_webhook(ctl.url, repo.file_url(), "refs/heads/main", sha) == 202
        expect(panel.locator(".rollout-step")).to_have_text(
            "step 2 of 4: pause until promoted", timeout=90_000
        )
        expect(panel.locator(".badge")).to_have_text("Paused")
        expect(panel.locator(".weight-canary")).to_have_text("canary 20 %")
        expect(panel.locator(".weight-stable")).to_have_text("stable 80 %")
        expect(bar.locator("rect.bar-canary")).to_have_attribute("width", "20")
        expect(bar).to_have_attribute("aria-label", "stable 80 %, canary 20 %")
        expect(panel.locator('li.step-current[aria-current="step"]')).to_have_text(
            "pause until promoted"
        )
        expect(panel.locator("li.step-done")).to_have_count(1)
        assert live_image(kube, namespace) == "nginx:1.25"  # the template is held by the rollout
        view.shot("paused-at-20")

        # the list shows phase, step and weight of the running rollout
        listing = view.context.new_page()
        listing.goto(ctl.url + "/")
        cell = listing.locator(f'tr[data-app="{namespace}/web"] .rollout-cell[data-rollout="web"]')
        expect(cell.locator(".badge")).to_have_text("Paused")
        expect(cell.locator(".rollout-step")).to_have_text("step 2/4")
        expect(cell.locator(".weight-text")).to_have_text("canary 20 %")
        listing.screenshot(path=str(screenshot_path("rollout-list.png")), full_page=True)

        # Promote: on to 50 %, paused at the last step
        panel.get_by_role("button", name="Promote", exact=True).click()
        expect(page.locator("#action-result")).to_have_text(
            "web: promote to the next step requested"
        )
        assert any(d.startswith("Promote rollout web of") for d in view.dialogs), view.dialogs
        expect(panel.locator(".rollout-step")).to_have_text(
            "step 4 of 4: pause until promoted", timeout=90_000
        )
        expect(panel.locator(".weight-canary")).to_have_text("canary 50 %")
        expect(bar.locator("rect.bar-canary")).to_have_attribute("width", "50")
        expect(panel.locator(".badge")).to_have_text("Paused")
        # the list follows without a reload too
        expect(cell.locator(".rollout-step")).to_have_text("step 4/4")
        expect(cell.locator(".weight-text")).to_have_text("canary 50 %")
        view.shot("promoted-to-50")

        # Abort: traffic back on stable, the canary gone, Degraded with the reason
        panel.get_by_role("button", name="Abort").click()
        expect(page.locator("#action-result")).to_contain_text("abort requested")
        expect(panel.locator(".badge")).to_have_text("Degraded", timeout=60_000)
        expect(panel.locator(".rollout-message")).to_contain_text("abort requested")
        expect(panel.locator(".rollout-message")).to_contain_text("traffic is back on stable")
        expect(panel.locator(".weight-canary")).to_have_text("canary 0 %", timeout=60_000)
        expect(bar.locator("rect.bar-canary")).to_have_attribute("width", "0")
        expect(panel.locator(".weight-stable")).to_have_text("stable 100 %")
        expect(panel.get_by_role("button", name="Retry")).to_be_enabled()
        expect(panel.get_by_role("button", name="Abort")).to_be_disabled()
        assert live_image(kube, namespace) == "nginx:1.25"
        view.shot("aborted")

        # the CLI retries it (the same annotation, resolved through the Application) ...
        run = run_gitsync(
            "rollout",
            "retry",
            f"{namespace}/web/web",
            f"--kubeconfig={cluster.kubeconfig_path}",
            timeout=60,
        )
        assert run.code == 0, run
        assert f"retry requested for Rollout {namespace}/web" in run.stdout
        expect(panel.locator(".rollout-step")).to_have_text(
            "step 2 of 4: pause until promoted", timeout=90_000
        )
        expect(panel.locator(".weight-canary")).to_have_text("canary 20 %")

        # ... and Promote full finishes it: the stable Deployment runs the new image
        panel.get_by_role("button", name="Promote full").click()
        expect(page.locator("#action-result")).to_contain_text("full promotion requested")
        assert any("in full" in d for d in view.dialogs), view.dialogs
        expect(panel.locator(".badge")).to_have_text("Healthy", timeout=120_000)
        expect(panel.locator(".rollout-step")).to_have_text("all 4 steps done")
        expect(panel.locator(".weight-stable")).to_have_text("stable 100 %")
        expect(listing.locator(f'tr[data-app="{namespace}/web"] .rollout-cell')).to_have_count(0)
        wait_for(lambda: app_ready(kube, namespace, sha), timeout=90, what="app Synced+Healthy")
        assert live_image(kube, namespace) == "nginx:1.26"
        assert page.evaluate("window.__notReloaded") is True
        view.shot("promoted-full")
        listing.close()
    except Exception:
        print(ctl.log(120))
        raise
    finally:
        view.close()


# -- the panel's script, against Rollouts the test writes ----------------------------------------


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def measurements(start: datetime, values: list[str]) -> list[dict[str, str]]:
    out = []
    for i, value in enumerate(values):
        m = {"time": stamp(start + timedelta(seconds=10 * i))}
        if value:
            m.update(phase="Successful" if float(value) >= 0.95 else "Failed", value=value)
        else:
            m.update(phase="Inconclusive", message="no data")
        out.append(m)
    return out


STATIC_ROLLOUT_SPEC = {
    "targetRef": {"kind": "Deployment", "name": "web"},
    "strategy": {
        "canary": {
            "stableService": "web",
            "steps": [
                {"setWeight": 20},
                {"pause": {"duration": "10m"}},
                {"analysis": {"metrics": ["success-rate"]}},
                {"setWeight": 50},
            ],
        }
    },
    "metrics": [
        {
            "name": "success-rate",
            "interval": "10s",
            "count": 5,
            "successCondition": "result >= 0.95",
            "provider": {"prometheus": {"address": "http://prometheus:9090", "query": "vector(1)"}},
        }
    ],
}


class StaticApplications:
    """The controller as the web layer sees it (its own ``ControllerView`` interface), with one
    Application whose status the test wrote; its Rollouts are read from the real API server."""

    def __init__(self, kube: KubeClient, namespace: str, rollouts: list[str]):
        self.kube = kube
        self.ready = True
        self.store = self
        self.obj: dict[str, Any] = {
            "apiVersion": ROLLOUT_API,
            "kind": "Application",
            "metadata": {"name": "shop", "namespace": namespace},
            "spec": {
                "source": {"repoURL": "https://git.example.com/shop.git", "path": "app"},
                "destination": {"namespace": namespace},
            },
            "status": {
                "sync": {"status": "Synced"},
                "health": {"status": "Suspended"},
                "resources": [
                    {
                        "group": "gitsync.dev",
                        "kind": "Rollout",
                        "namespace": namespace,
                        "name": name,
                        "status": "Synced",
                        "health": {"status": "Suspended"},
                    }
                    for name in rollouts
                ],
            },
        }

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        meta = self.obj["metadata"]
        return self.obj if key == (meta["namespace"], meta["name"]) else None

    def patch_annotations(self, key: tuple[str, str], annotations: dict[str, str | None]) -> None:
        raise AssertionError("not used")

    def on_push(self, event: Any) -> int:
        return 0

    def application_objects(self) -> list[dict[str, Any]]:
        return [self.obj]

    def application_set_objects(self) -> list[dict[str, Any]]:
        return []

    def refresh(self, key: tuple[str, str], reason: str = "manual") -> None:
        pass

    def application_diff(self, key: tuple[str, str]) -> Any:
        raise AssertionError("not used")

    def application_tree(self, key: tuple[str, str], *, orphans: bool = False) -> dict[str, Any]:
        return {"nodes": [], "orphans": None, "limits": {}, "warnings": []}

    def application_events(self, key: tuple[str, str], query: Any) -> AppEvents:
        return AppEvents([])  # the page's Events section: none in this test

    def cluster_client(self, name: str) -> KubeClient:
        assert name in ("", "in-cluster"), name
        return self.kube


@pytest.fixture
def static_ui(kube: KubeClient, namespace: str, rollout_crd: None) -> Iterator[Any]:
    import waitress
    from waitress import wasyncore

    password = "static-" + secrets.token_urlsafe(12)
    view = StaticApplications(kube, namespace, ["api", "web"])
    app = create_app(
        view,
        metrics_exposition=lambda: b"",
        webhook_secrets=lambda provider: [],
        auth=AuthSettings.build(admin_password=password),
    )
    server: Any = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    stopping = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except OSError:  # a socket closed under select() while stopping
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.effective_port}"
        yield type("Served", (), {"url": url, "password": password})
    finally:
        stopping.set()
        server.task_dispatcher.shutdown()
        server.close()
        wasyncore.close_all(server._map)
        thread.join(10)
        assert not thread.is_alive()


def write_status(kube: KubeClient, namespace: str, name: str, status: dict[str, Any]) -> None:
    kube.patch(
        ROLLOUT_API, "Rollout", name, {"status": status}, namespace=namespace, subresource="status"
    )


def test_the_panel_script_draws_the_chart_counts_down_and_follows_status(
    static_ui: Any,
    browser: Any,
    kube: KubeClient,
    namespace: str,
) -> None:
    from playwright.sync_api import expect

    start = datetime.now(UTC) - timedelta(minutes=1)
    for name in ("api", "web"):
        kube.create(
            {
                "apiVersion": ROLLOUT_API,
                "kind": "Rollout",
                "metadata": {"name": name, "namespace": namespace},
                "spec": STATIC_ROLLOUT_SPEC,
            }
        )
    common = {"stableHash": "57ab1e", "canaryHash": "c4n4ry", "replicas": 10}
    write_status(
        kube,
        namespace,
        "web",
        {
            **common,
            "phase": "Paused",
            "message": "step 2/4 (pause 10m)",
            "currentStepIndex": 1,
            "currentWeight": 20,
            "pauseUntil": stamp(datetime.now(UTC) + timedelta(seconds=95)).split(".")[0] + "Z",
        },
    )
    run = {
        "step": 2,
        "metric": "success-rate",
        "phase": "Running",
        "startedAt": stamp(start),
        "successful": 2,
        "failed": 1,
        "inconclusive": 1,
        "measurements": measurements(start, ["0.99", "0.5", "", "0.97"]),
    }
    write_status(
        kube,
        namespace,
        "api",
        {
            **common,
            "phase": "Progressing",
            "message": "step 3/4 (analysis): measuring success-rate",
            "currentStepIndex": 2,
            "currentWeight": 20,
            "analysisRuns": [run],
        },
    )
    served = UI(browser, static_ui, static_ui.password, "rollout-panel")
    try:
        page = served.page
        url = f"{static_ui.url}/apps/{namespace}/shop"
        html = served.context.request.get(url).text()  # the page as the server renders it
        server_svg = html[html.index('data-metric="success-rate"') :]
        server_svg = server_svg[: server_svg.index("</svg>")]
        page.goto(url)
        api = page.locator('article.rollout[data-rollout="api"]')
        web = page.locator('article.rollout[data-rollout="web"]')
        chart = api.locator("svg.chart")
        expect(chart.locator("path.marker")).to_have_count(4)
        # the script replaced the server-rendered panel with its own DOM on its first poll
        expect(page.locator("#rollouts[data-updated]")).to_have_count(1)
        expect(chart.locator("path.marker")).to_have_count(4)
        script_svg = chart.evaluate("n => n.outerHTML")

        def geometry(svg: str) -> list[str]:
            import re

            return re.findall(r' (?:d|points)="([^"]+)"', svg)

        assert geometry(script_svg) == geometry(server_svg)  # app.js draws what Python drew
        expect(chart.locator("path.marker-failed")).to_have_count(1)
        expect(chart.locator("path.marker-inconclusive title")).to_have_text(
            f"{run['measurements'][2]['time']}: no value (Inconclusive) - no data"
        )
        expect(chart.locator("text.axis")).to_have_text(["0.99", "0.5"])
        expect(api.locator(".rollout-step")).to_have_text("step 3 of 4: analysis: success-rate")

        # the pause counts down by itself, between polls
        countdown = web.locator(".countdown")
        expect(countdown).to_have_text(_minutes_left(), timeout=5_000)
        first = _seconds(countdown.text_content() or "")
        page.wait_for_timeout(2_500)
        later = _seconds(countdown.text_content() or "")
        assert 1 <= first - later <= 4, (first, later)
        served.shot("chart-and-countdown")

        # status written now shows without a reload: a new measurement, then the next step
        run["measurements"] = measurements(start, ["0.99", "0.5", "", "0.97", "0.98"])
        run["successful"] = 3
        write_status(kube, namespace, "api", {"analysisRuns": [run]})
        expect(chart.locator("path.marker")).to_have_count(5)
        write_status(
            kube,
            namespace,
            "api",
            {"currentStepIndex": 3, "currentWeight": 50, "message": "step 4/4 (setWeight 50)"},
        )
        expect(api.locator(".rollout-step")).to_have_text("step 4 of 4: set weight 50 %")
        expect(api.locator("rect.bar-canary")).to_have_attribute("width", "50")
        served.shot("followed")
    finally:
        served.close()


def _seconds(text: str) -> int:
    minutes, _, seconds = text.partition("m ")
    return int(minutes) * 60 + int(seconds.rstrip("s")) if seconds else int(text.rstrip("s"))


def _minutes_left() -> Any:
    import re

    return re.compile(r"^1m \d\ds$")
