"""RenderCache at the scale of a controller: bounds that hold a thousand apps, and cheap copies
that are still copies all the way down."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from gitsync.model import ResourceKey
from gitsync.render import RenderCache, RenderedManifest, RenderRequest

ROOT = Path("/nonexistent")  # the fake renderers below never read it


def manifests(path: str, count: int = 1) -> list[RenderedManifest]:
    out = []
    for i in range(count):
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{path}-{i}", "labels": {"app": path}},
            "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": path}},
            "data": {"when": datetime.date(2024, 1, 2), "raw": b"\x00"},
        }
        out.append(
            RenderedManifest(ResourceKey("", "Service", "", obj["metadata"]["name"]), obj, path)
        )
    return out


def test_every_app_of_a_thousand_hits_on_the_second_refresh() -> None:
    # One controller refreshes every app in turn: an LRU smaller than the number of apps (the old
    # bound was 256 entries) would miss - and render again - on every single refresh.
    calls: list[str] = []

    def fake(req: RenderRequest) -> list[RenderedManifest]:
        calls.append(req.path)
        return manifests(req.path, 10)

    cache = RenderCache(renderer=fake)
    for _ in range(2):
        for i in range(1000):
            cache.get_or_render("c" * 40, RenderRequest(ROOT, f"apps/a{i:04d}"))
    assert len(calls) == 1000


def test_the_manifest_bound_evicts_the_least_recently_used() -> None:
    calls: list[str] = []

    def fake(req: RenderRequest) -> list[RenderedManifest]:
        calls.append(req.path)
        return manifests(req.path, 3)

    cache = RenderCache(max_manifests=7, renderer=fake)
    for path in ("one", "two", "one", "three", "one"):
        cache.get_or_render("c", RenderRequest(ROOT, path))
    # 9 manifests would be over 7: "two", least recently used, made room for "three"
    assert len(cache) == 2
    cache.get_or_render("c", RenderRequest(ROOT, "two"))
    assert calls == ["one", "two", "three", "two"]


def test_copies_are_independent_at_every_depth() -> None:
    cache = RenderCache(renderer=lambda req: manifests(req.path))
    req = RenderRequest(ROOT, "web")
    first = cache.get_or_render("c", req)  # the miss: the renderer's own list
    first[0].obj["spec"]["ports"][0]["port"] = 1
    first[0].obj["spec"]["ports"].append({"port": 2})
    hit = cache.get_or_render("c", req)
    assert hit[0].obj["spec"]["ports"] == [{"port": 80, "name": "http"}]
    hit[0].obj["metadata"]["labels"]["app"] = "changed"
    hit[0].obj["spec"]["selector"].clear()
    again = cache.get_or_render("c", req)
    assert again[0].obj["metadata"]["labels"] == {"app": "web"}
    assert again[0].obj["spec"]["selector"] == {"app": "web"}
    # immutable leaves (YAML dates, !!binary) come through unchanged
    assert again[0].obj["data"] == {"when": datetime.date(2024, 1, 2), "raw": b"\x00"}
    assert again[0].key == ResourceKey("", "Service", "", "web-0") and again[0].source == "web"
