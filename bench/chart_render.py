"""A chart from a Helm repository, rendered warm, against Helm rendering the same chart in-process.

Issue 15 asks for the cost of a chart source once its archive is cached: what a refresh pays to
render an app whose chart comes from a repository rather than from Git. The example repository's
Helm chart (``example-repo/apps/helm-chart``) is packaged and indexed by Helm into a real chart
repository on loopback (``gitsync.localenv.chartrepo``: HTTPS with a throw-away CA), fetched once
through ``ChartStore`` (download, digest check, unpack), and then measured per call:

* **warm render**: ``ChartStore.resolve`` (the index asked again with ``If-None-Match``, answered
  ``304``), ``ChartStore.checkout`` (the unpacked chart found under the recorded digest, nothing
  downloaded) and ``render`` of the chart directory (Helm in a child process, with its deadline
  and output cap) - a refresh whose render cache missed;
* **warm refresh**: the same with the render cache the engine keys by the chart's digest, so an
  unchanged chart costs the index request and a cache hit.

The reference is ``helm_python`` loading and rendering the same unpacked chart in this process
(``helm_direct``), alternating with gitsync in every run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.scenarios import (
    EXAMPLE_REPO,
    HELM_CHART,
    BenchError,
    Row,
    alternate,
    helm_direct,
    median,
    timed,
)
from gitsync.engine.chart_sources import ChartStore
from gitsync.localenv.chartrepo import ChartRepositoryServer
from gitsync.render import HelmOptions, RenderCache, RenderRequest, render
from gitsync.source.charts import ChartCredential

CHART = "helm-demo"  # example-repo/apps/helm-chart's name
TARGET = ">=0.1.0 <1.0.0"


def chart_render_rows(runs: int, workdir: Path) -> list[Row]:
    with ChartRepositoryServer(workdir / "chart-repository") as server:
        server.publish_chart(EXAMPLE_REPO / HELM_CHART)
        credential = ChartCredential(ca_data=server.ca_pem)
        store = ChartStore(workdir / "chart-store")
        first = store.resolve(server.url, CHART, TARGET, credential)
        cold = store.checkout(server.url, first, credential)
        chart_dir = cold.root / cold.path
        expected = helm_direct(chart_dir)
        cache = RenderCache()

        def warm(cached: bool) -> int:
            version = store.resolve(server.url, CHART, TARGET, credential)
            checkout = store.checkout(server.url, version, credential)
            req = RenderRequest(
                repo_root=checkout.root,
                path=checkout.path,
                namespace="default",
                helm=HelmOptions(release_name="helm-chart"),
            )
            rendered = cache.get_or_render(checkout.digest, req) if cached else render(req)
            return len(rendered)

        def check(count: int) -> None:
            if count != expected:
                raise BenchError(f"chart render: {count} objects, Helm rendered {expected}")

        def gitsync_side(cached: bool) -> Callable[[], float]:
            return lambda: timed(lambda: check(warm(cached)))

        downloads = len(server.requested(f"/{CHART}-0.1.0.tgz"))
        rows = []
        for cached, scenario, note in (
            (
                False,
                "render: repository chart, warm (index 304, cached archive)",
                "index request + unpacked chart found by digest + render in a child process",
            ),
            (
                True,
                "refresh: repository chart, unchanged (index 304, render cache hit)",
                "what a refresh of an unchanged chart app pays before the diff",
            ),
        ):
            samples = alternate(
                runs,
                {
                    "gitsync": gitsync_side(cached),
                    "reference": lambda: timed(lambda: check(helm_direct(chart_dir))),
                },
            )
            rows.append(
                Row(
                    scenario,
                    expected,
                    "s",
                    median(samples["gitsync"]),
                    "helm_python in-process, same chart",
                    median(samples["reference"]),
                    runs,
                    samples=samples,
                    note=note,
                )
            )
        if len(server.requested(f"/{CHART}-0.1.0.tgz")) != downloads:
            raise BenchError("the warm runs downloaded the chart archive again")
        if not any(r.status == 304 for r in server.requested("/index.yaml")):
            raise BenchError("the index was not answered 304 on the warm runs")
        return rows
