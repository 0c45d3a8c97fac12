"""RenderCache: one render per (commit, path, parameters), shared safely between threads."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from types import MappingProxyType

import pytest

from gitsync.model import ResourceKey
from gitsync.render import (
    DirectoryOptions,
    HelmOptions,
    RenderCache,
    RenderedManifest,
    RenderError,
    RenderLimits,
    RenderRequest,
    render,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "render"
GUESTBOOK = RenderRequest(repo_root=FIXTURES, path="plain/guestbook")


class CountingRenderer:
    def __init__(self) -> None:
        self.calls: list[RenderRequest] = []

    def __call__(self, req: RenderRequest) -> list[RenderedManifest]:
        self.calls.append(req)
        return render(req)


def test_second_call_for_the_same_commit_does_not_render_again() -> None:
    counting = CountingRenderer()
    cache = RenderCache(renderer=counting)
    first = cache.get_or_render("a" * 40, GUESTBOOK)
    second = cache.get_or_render("a" * 40, GUESTBOOK)
    assert len(counting.calls) == 1
    assert (cache.hits, cache.misses) == (1, 1)
    assert [m.key for m in first] == [m.key for m in second]


def test_other_checkout_of_the_same_commit_shares_the_entry(tmp_path: Path) -> None:
    counting = CountingRenderer()
    cache = RenderCache(renderer=counting)
    cache.get_or_render("a" * 40, GUESTBOOK)
    elsewhere = RenderRequest(repo_root=tmp_path, path="plain/guestbook")
    cache.get_or_render("a" * 40, elsewhere)
    assert len(counting.calls) == 1


@pytest.mark.parametrize(
    ("commit", "req"),
    [
        ("b" * 40, GUESTBOOK),
        ("a" * 40, RenderRequest(repo_root=FIXTURES, path="plain/invalid/..")),
        ("a" * 40, RenderRequest(repo_root=FIXTURES, path="plain/guestbook", namespace="x")),
        (
            "a" * 40,
            RenderRequest(
                repo_root=FIXTURES, path="plain/guestbook", directory=DirectoryOptions(recurse=True)
            ),
        ),
        (
            "a" * 40,
            RenderRequest(
                repo_root=FIXTURES, path="plain/guestbook", limits=RenderLimits(max_documents=99)
            ),
        ),
    ],
    ids=["commit", "path", "namespace", "directory-options", "limits"],
)
def test_different_commit_path_or_parameters_render_again(commit: str, req: RenderRequest) -> None:
    calls: list[RenderRequest] = []

    def fake(r: RenderRequest) -> list[RenderedManifest]:
        calls.append(r)
        return []

    cache = RenderCache(renderer=fake)
    cache.get_or_render("a" * 40, GUESTBOOK)
    cache.get_or_render(commit, req)
    assert len(calls) == 2
    assert (cache.hits, cache.misses) == (0, 2)


def test_helm_values_are_part_of_the_key() -> None:
    keys = {
        RenderCache.key("c", RenderRequest(FIXTURES, "x", helm=HelmOptions("r", values=v)))
        for v in ({"a": 1}, {"a": 2}, {"a": 1}, MappingProxyType({"a": 1}))
    }
    assert len(keys) == 2


def test_every_helm_option_and_the_capabilities_are_part_of_the_key() -> None:
    variants = [
        HelmOptions("r"),
        HelmOptions("r", values_yaml="a: 1\n"),
        HelmOptions("r", set_values=("a=1",)),
        HelmOptions("r", set_string_values=("a=1",)),
        HelmOptions("r", value_files=("v/*.yaml",)),
        HelmOptions("r", value_files=("v/*.yaml",), ignore_missing_value_files=True),
        HelmOptions("r", skip_crds=True),
        HelmOptions("r", kube_version="v1.20.2"),
        HelmOptions("r", kube_version="v1.29.3"),
        HelmOptions("r", kube_version="v1.29.3", api_versions=("example.com/v1",)),
    ]
    keys = {RenderCache.key("c", RenderRequest(FIXTURES, "x", helm=h)) for h in variants}
    assert len(keys) == len(variants)


def test_callers_get_copies_they_may_mutate() -> None:
    cache = RenderCache()
    first = cache.get_or_render("a" * 40, GUESTBOOK)
    first[0].obj["metadata"]["namespace"] = "mutated"
    again = cache.get_or_render("a" * 40, GUESTBOOK)
    assert "namespace" not in again[0].obj["metadata"]


def test_least_recently_used_entry_is_evicted() -> None:
    calls: list[str] = []

    def fake(r: RenderRequest) -> list[RenderedManifest]:
        calls.append(r.path)
        return []

    cache = RenderCache(max_entries=2, renderer=fake)
    for path in ("one", "two", "one", "three", "one", "two"):
        cache.get_or_render("c", RenderRequest(FIXTURES, path))
    # "two" was least recently used when "three" arrived, so it is rendered again at the end
    assert calls == ["one", "two", "three", "two"]
    assert len(cache) == 2


def test_errors_are_not_cached() -> None:
    outcomes: list[Exception | None] = [RenderError("flaky"), None]

    def fake(r: RenderRequest) -> list[RenderedManifest]:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return []

    cache = RenderCache(renderer=fake)
    with pytest.raises(RenderError):
        cache.get_or_render("c", GUESTBOOK)
    assert cache.get_or_render("c", GUESTBOOK) == []


def test_concurrent_callers_of_one_key_share_one_render() -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def slow(r: RenderRequest) -> list[RenderedManifest]:
        calls.append(r.path)
        started.set()
        release.wait(10)
        return render(r)

    cache = RenderCache(renderer=slow)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(len(cache.get_or_render("c", GUESTBOOK))))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    assert started.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls == ["plain/guestbook"]
    assert results == [6] * 8
    assert (cache.misses, cache.hits) == (1, 7)


def _odd_manifests() -> list[RenderedManifest]:
    """Objects with every leaf type a YAML loader produces, a Helm hook and a source."""
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "odd", "annotations": {"helm.sh/hook": "test"}},
        "data": {"when": datetime.datetime(2026, 1, 2, 3, 4, 5), "day": datetime.date(2026, 1, 2)},
        "spec": {"n": 2**70, "f": 0.5, "b": True, "none": None, "raw": b"\x00", "set": {1, 2}},
        "list": [[1, "a"], {"deep": [{"x": -1}]}],
    }
    key = ResourceKey("", "ConfigMap", "ns", "odd")
    return [RenderedManifest(key, obj, "helm:templates/odd.yaml", "test")]


def test_a_hit_gives_back_exactly_what_was_rendered_in_fresh_objects() -> None:
    rendered = _odd_manifests()
    cache = RenderCache(renderer=lambda r: _odd_manifests())
    miss = cache.get_or_render("c", GUESTBOOK)
    hits = [cache.get_or_render("c", GUESTBOOK) for _ in range(2)]
    for got in (miss, *hits):
        assert got == rendered  # key, source, hook and every leaf, types included
        assert type(got[0].obj["data"]["when"]) is datetime.datetime
        assert type(got[0].obj["data"]["day"]) is datetime.date
    hits[0][0].obj["list"][1]["deep"][0]["x"] = 99  # one hit's objects are its own, at any depth
    hits[0][0].obj["spec"]["set"].add(3)
    assert hits[1] == rendered
    assert cache.get_or_render("c", GUESTBOOK) == rendered


def test_mutating_the_result_of_the_miss_does_not_reach_the_cache() -> None:
    cache = RenderCache()
    first = cache.get_or_render("a" * 40, GUESTBOOK)
    first[0].obj["metadata"]["labels"] = {"changed": "yes"}
    first[0].obj["spec"] = "gone"
    again = cache.get_or_render("a" * 40, GUESTBOOK)
    assert again == render(GUESTBOOK)


def _config_map(data: object) -> list[RenderedManifest]:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": data}
    return [RenderedManifest(ResourceKey("", "ConfigMap", "", "one"), obj, "one.yaml")]


@pytest.mark.parametrize(
    "leaf",
    [
        float("nan"),  # JSON would bring it back as null
        float("inf"),
        (1, 2),  # JSON would bring it back as a list
        {1: "int key"},
        {True: "bool key"},
        2**64,
        datetime.datetime(2026, 11, 25, 14, 0, tzinfo=datetime.UTC),
        frozenset({"a"}),
    ],
    ids=repr,
)
def test_what_json_cannot_carry_comes_back_exactly(leaf: object) -> None:
    cache = RenderCache(renderer=lambda r: _config_map({"x": leaf}))
    cache.get_or_render("c", GUESTBOOK)
    got = cache.get_or_render("c", GUESTBOOK)[0].obj["data"]["x"]
    assert type(got) is type(leaf)
    assert repr(got) == repr(leaf)  # repr: nan != nan
    if isinstance(leaf, dict):
        assert type(next(iter(got))) is type(next(iter(leaf)))


def test_plain_manifests_are_kept_as_json() -> None:
    """The fast path is the one real manifests take (a pickle would pass the other tests)."""
    cache = RenderCache()
    rendered = cache.get_or_render("c", GUESTBOOK)
    (entry,) = cache._entries.values()
    assert entry.is_json
    assert cache.get_or_render("c", GUESTBOOK) == rendered
