"""ChartStore keeps one repository adapter per repository and credential identity.

A new adapter per refresh opened a new connection pool each time: every unchanged poll of a
chart repository paid a TCP (and TLS) handshake. Reusing the adapter must not let one
credential's adapter serve a request made with another credential."""

from __future__ import annotations

from pathlib import Path

from gitsync.engine.chart_sources import ChartStore
from gitsync.source.charts import ChartCredential


def test_the_same_repository_and_credential_reuse_one_adapter(tmp_path: Path) -> None:
    store = ChartStore(tmp_path)
    first = store.repository("https://charts.example.com/stable", ChartCredential("u", "p"))
    again = store.repository("https://charts.example.com/stable", ChartCredential("u", "p"))
    assert again is first


def test_another_credential_or_repository_gets_its_own_adapter(tmp_path: Path) -> None:
    store = ChartStore(tmp_path)
    url = "oci://registry.example.com/charts"
    base = store.repository(url, ChartCredential("u", "p"))
    others = [
        store.repository(url, ChartCredential("u", "other")),
        store.repository(url, ChartCredential("v", "p")),
        store.repository(url, ChartCredential("u", "p", allow_plain_http=True)),
        store.repository(url, ChartCredential("u", "p", insecure=True)),
        store.repository("oci://registry.example.com/other", ChartCredential("u", "p")),
    ]
    assert all(other is not base for other in others)
    assert len({id(other) for other in others}) == len(others)
