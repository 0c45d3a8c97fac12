"""The tests' Helm chart repository: the product's loopback repository
(``gitsync.localenv.chartrepo``, HTTPS with a test CA and basic auth when asked) plus what only
tests need.

Charts are written per version (one ConfigMap ``<release>-cm`` carrying the chart version and a
greeting) and packaged by Helm itself, so a test can publish a new version while a controller is
watching and see it deployed. Hostile content is published as raw files (``put_file``) or as a
generated stream of any size that is never held in memory (``put_generated``).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import yaml

from gitsync.localenv.chartrepo import ChartRepositoryServer, ChartRequest, GeneratedBody

CHART_REPO_USER = "chart-reader"
CHART_REPO_PASSWORD = "chart-secret-4e1b9c"

__all__ = [
    "CHART_REPO_PASSWORD",
    "CHART_REPO_USER",
    "ChartRepoServer",
    "ChartRequest",
    "configmap_chart_templates",
    "write_chart",
]


def configmap_chart_templates(name: str) -> dict[str, str]:
    """A chart whose one object is a ConfigMap ``<release>-cm`` carrying the chart version."""
    return {
        "configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            "  name: {{ .Release.Name }}-cm\n"
            "data:\n  chartVersion: {{ .Chart.Version | quote }}\n"
            "  greeting: {{ .Values.greeting | quote }}\n"
        )
    }


def write_chart(
    work: Path,
    name: str,
    version: str,
    *,
    templates: dict[str, str] | None = None,
    values: dict[str, object] | None = None,
) -> Path:
    """Chart ``name`` at ``version`` written under ``work`` (the configmap chart unless
    ``templates`` are given); its directory, ready for ``helm package``."""
    directory = work / f"{name}-{version}" / name
    if directory.parent.exists():
        shutil.rmtree(directory.parent)
    (directory / "templates").mkdir(parents=True)
    chart = {"apiVersion": "v2", "name": name, "version": version, "type": "application"}
    (directory / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (directory / "values.yaml").write_text(
        yaml.safe_dump(values if values is not None else {"greeting": "hello"})
    )
    for file, text in (templates or configmap_chart_templates(name)).items():
        (directory / "templates" / file).write_text(text)
    return directory


class ChartRepoServer(ChartRepositoryServer):
    """The loopback repository with test-only publishing: charts by name and version, raw
    files, generated streams."""

    def __init__(self, root: Path, *, username: str = "", password: str = "", tls: bool = True):
        self._generated: dict[str, GeneratedBody] = {}
        self._generated_lock = threading.Lock()
        super().__init__(root, username=username, password=password, tls=tls)

    def publish(
        self,
        name: str,
        version: str,
        *,
        templates: dict[str, str] | None = None,
        values: dict[str, object] | None = None,
    ) -> Path:
        """Package chart ``name`` at ``version`` with Helm and re-index the repository."""
        chart = write_chart(self.root / "work", name, version, templates=templates, values=values)
        return self.publish_chart(chart)

    def put_file(self, relative: str, data: bytes) -> None:
        """Serve ``data`` at ``/relative`` (replacing what was there)."""
        path = self.charts_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def put_generated(self, relative: str, size: int, pattern: bytes) -> None:
        """Serve ``size`` bytes of ``pattern`` repeated at ``/relative``, streamed."""
        with self._generated_lock:
            self._generated["/" + relative] = GeneratedBody(size, pattern)

    def generated(self, path: str) -> GeneratedBody | None:
        with self._generated_lock:
            return self._generated.get(path)

    def index(self) -> dict[str, object]:
        loaded = yaml.safe_load((self.charts_dir / "index.yaml").read_text())
        assert isinstance(loaded, dict)
        return loaded

    def write_index(self, document: dict[str, object]) -> None:
        self.put_file("index.yaml", yaml.safe_dump(document).encode())
