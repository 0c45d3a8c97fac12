"""The per-app Event index (gitsync.controller.events): ordering, bounding, the message cut,
the query, and which app an Event belongs to - including the tenant fence."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from gitsync.controller.events import (
    MAX_MESSAGE,
    AppEventStore,
    ApplicationEvents,
    apps_of,
    event_time,
    membership_of,
    record_of,
)
from gitsync.controller.interface import EventQuery, EventsUnavailableError
from gitsync.kube.client import ApiError

APP = ("team-a", "web")


def event(
    name: str,
    *,
    second: int = 0,
    namespace: str = "team-a",
    kind: str = "Deployment",
    api_version: str = "apps/v1",
    obj: str = "web",
    obj_namespace: str | None = None,
    type: str = "Normal",
    message: str = "m",
    rv: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(rv)},
        "involvedObject": {
            "apiVersion": api_version,
            "kind": kind,
            "name": obj,
            "namespace": namespace if obj_namespace is None else obj_namespace,
        },
        "type": type,
        "reason": "Test",
        "message": message,
        "lastTimestamp": f"2026-12-07T05:{second // 60:02d}:{second % 60:02d}Z",
        **extra,
    }


def app(
    namespace: str, name: str, resources: list[dict[str, str]], destination: str = ""
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"destination": {"name": destination, "namespace": namespace}},
        "status": {"resources": resources},
    }


def own(namespace: str) -> tuple[str, ...]:
    return (namespace,)  # the built-in policy: a project may use only its own namespace


def no_lookup(*_: str) -> Mapping[str, Any] | None:
    return None


# -- ordering and the record -----------------------------------------------------------------


def test_event_time_takes_the_latest_of_series_last_timestamp_and_event_time() -> None:
    base = {"lastTimestamp": "2026-12-07T05:00:00Z"}
    assert event_time(base) < event_time(
        {**base, "series": {"lastObservedTime": "2026-12-07T05:00:09.500000Z"}}
    )
    assert event_time({"eventTime": "2026-12-07T05:00:01.250000Z", **base}) == pytest.approx(
        event_time(base) + 1.25
    )
    created = {"metadata": {"creationTimestamp": "2026-12-07T04:00:00Z"}}
    assert 0 < event_time(created) < event_time(base)
    assert event_time({"lastTimestamp": "not a time"}) == 0.0


def test_record_cuts_the_message_and_counts_a_series() -> None:
    record = record_of(event("e", message="x" * 100_000, series={"count": 7}, count=2))
    assert len(record.message) == MAX_MESSAGE
    assert record.message.endswith("…")
    assert record.count == 7
    doc = record.to_dict()
    assert doc["involvedObject"] == {
        "group": "apps",
        "kind": "Deployment",
        "namespace": "team-a",
        "name": "web",
    }
    assert doc["lastTimestamp"] == "2026-12-07T05:00:00Z"


# -- the store: bounded, newest first --------------------------------------------------------


def test_store_keeps_the_newest_n_in_order_whatever_the_arrival_order() -> None:
    store = AppEventStore(per_app=5)
    seconds = [7, 3, 9, 1, 8, 2, 6, 0, 5, 4]
    for i, s in enumerate(seconds):
        store.put(record_of(event(f"e{s}", second=s, rv=i + 1)), [APP])
    assert [r.id[1] for r in store.query(APP)] == ["e9", "e8", "e7", "e6", "e5"]
    assert store.size() == 5


def test_store_bound_holds_for_ten_thousand_events() -> None:
    store = AppEventStore(per_app=200)
    for i in range(10_000):
        store.put(record_of(event(f"e{i}", second=i % 3600, rv=i + 1)), [APP])
    kept = store.query(APP)
    assert len(kept) == 200 and store.size() == 200
    assert [r.order for r in kept] == sorted((r.order for r in kept), reverse=True)


def test_store_decides_as_a_scan_of_every_kept_record_would() -> None:
    """The heap that finds a full app's oldest record (stale entries skipped, rebuilt when they
    pile up) against the plain scan it replaced, over random adds, updates, owner changes and
    removals."""
    rng = random.Random(20)
    store = AppEventStore(per_app=5)
    other = ("team-a", "api")
    scan: dict[tuple[str, str], dict[str, tuple[float, int]]] = {APP: {}, other: {}}
    for rv in range(1, 3000):
        name = f"e{rng.randrange(40)}"
        if rng.random() < 0.1:
            store.remove(("team-a", name))
            for kept in scan.values():
                kept.pop(name, None)
            continue
        record = record_of(event(name, second=rng.randrange(600), rv=rv))
        apps = rng.choice([[APP], [other], [APP, other]])
        store.put(record, apps)
        for app, kept in scan.items():
            if app not in apps:
                kept.pop(name, None)
            elif name in kept or len(kept) < 5:
                kept[name] = record.order
            else:
                oldest = min(kept, key=lambda n: kept[n])
                if record.order > kept[oldest]:
                    del kept[oldest]
                    kept[name] = record.order
        for app, kept in scan.items():
            assert {r.id[1]: r.order for r in store.query(app)} == kept, rv


def test_ties_in_time_go_to_the_later_write() -> None:
    store = AppEventStore(per_app=2)
    for i in range(4):
        store.put(record_of(event(f"e{i}", second=1, rv=i + 10)), [APP])
    assert [r.id[1] for r in store.query(APP)] == ["e3", "e2"]


def test_a_modified_event_replaces_its_older_state() -> None:
    store = AppEventStore(per_app=3)
    store.put(record_of(event("e", second=1, count=1)), [APP])
    store.put(record_of(event("e", second=9, count=4, rv=2)), [APP])
    (only,) = store.query(APP)
    assert only.count == 4


def test_remove_and_retain_forget_events() -> None:
    store = AppEventStore(per_app=10)
    for i in range(3):
        store.put(record_of(event(f"e{i}", second=i)), [APP])
    store.remove(("team-a", "e0"))
    store.retain("team-a", {("team-a", "e2")})
    assert [r.id[1] for r in store.query(APP)] == ["e2"]


def test_an_event_of_no_app_is_not_kept() -> None:
    store = AppEventStore(per_app=10)
    store.put(record_of(event("e")), [])
    assert store.size() == 0


def test_per_app_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="events per app"):
        AppEventStore(per_app=0)


# -- the query --------------------------------------------------------------------------------


def test_query_filters_by_object_and_type_and_limits() -> None:
    store = AppEventStore(per_app=10)
    store.put(record_of(event("a", second=1, kind="Pod", api_version="v1", obj="p1")), [APP])
    store.put(
        record_of(event("b", second=2, type="Warning", kind="Pod", api_version="v1", obj="p1")),
        [APP],
    )
    store.put(record_of(event("c", second=3)), [APP])
    names = [r.id[1] for r in store.query(APP, EventQuery(kind="Pod", name="p1"))]
    assert names == ["b", "a"]
    assert [r.id[1] for r in store.query(APP, EventQuery(type="Warning"))] == ["b"]
    assert [r.id[1] for r in store.query(APP, EventQuery(limit=1))] == ["c"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"type": "Error"}, "type: must be one of Normal, Warning"),
        ({"limit": "0"}, "limit: must be a whole number"),
        ({"limit": "ten"}, "limit: must be a whole number"),
        ({"limit": "9" * 50}, "limit: must be a whole number"),
        ({"kind": "x" * 300}, "kind: longer than 253"),
        ({"sort": "asc"}, "unknown query parameter 'sort'"),
    ],
)
def test_query_parse_names_the_bad_parameter(args: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EventQuery.parse(args)


# -- which app an Event belongs to ------------------------------------------------------------


DEPLOYMENT = {"group": "apps", "kind": "Deployment", "namespace": "team-a", "name": "web"}


def test_events_of_managed_objects_and_of_the_application_itself() -> None:
    membership = membership_of([app("team-a", "web", [DEPLOYMENT])], own)
    assert apps_of(event("e"), membership, no_lookup) == {APP}
    about_app = event("a", kind="Application", api_version="gitsync.dev/v1alpha1", obj="web")
    assert apps_of(about_app, membership, no_lookup) == {APP}
    assert apps_of(event("x", obj="other"), membership, no_lookup) == set()


def test_children_are_walked_through_owner_references() -> None:
    live = {
        ("v1", "Pod", "web-abc-1"): {
            "metadata": {
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "web-abc",
                        "controller": True,
                    }
                ]
            }
        },
        ("apps/v1", "ReplicaSet", "web-abc"): {
            "metadata": {
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "controller": True,
                    }
                ]
            }
        },
    }

    def lookup(api_version: str, kind: str, name: str, namespace: str) -> Mapping[str, Any] | None:
        assert namespace == "team-a"
        return live.get((api_version, kind, name))

    membership = membership_of([app("team-a", "web", [DEPLOYMENT])], own)
    pod = event("p", kind="Pod", api_version="v1", obj="web-abc-1")
    assert apps_of(pod, membership, lookup) == {APP}
    orphan = event("o", kind="Pod", api_version="v1", obj="stray")
    assert apps_of(orphan, membership, lookup) == set()


def test_an_owner_reference_loop_ends() -> None:
    def lookup(api_version: str, kind: str, name: str, namespace: str) -> Mapping[str, Any]:
        return {
            "metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": name}]}
        }

    membership = membership_of([app("team-a", "web", [DEPLOYMENT])], own)
    assert apps_of(event("p", kind="Pod", api_version="v1", obj="x"), membership, lookup) == set()


def test_tenant_fence_another_namespaces_events_are_never_an_apps() -> None:
    """An app listing an object in a namespace its project may not use (the policy refused to
    apply it) does not see that namespace's Events; nor does an Event written in the app's
    namespace about an object elsewhere, nor an Event elsewhere naming the app's object."""
    foreign = {"group": "apps", "kind": "Deployment", "namespace": "team-b", "name": "db"}
    membership = membership_of([app("team-a", "web", [DEPLOYMENT, foreign])], own)
    assert membership.namespaces[APP] == frozenset({"team-a"})
    in_b = event("b", namespace="team-b", obj="db")
    assert apps_of(in_b, membership, no_lookup) == set()
    pointing_out = event("c", obj="db", obj_namespace="team-b")
    assert apps_of(pointing_out, membership, no_lookup) == set()
    written_in_b = event("d", namespace="team-b", obj="web", obj_namespace="team-a")
    assert apps_of(written_in_b, membership, no_lookup) == set()


def test_policy_allowed_namespaces_are_seen() -> None:
    other = {"group": "", "kind": "ConfigMap", "namespace": "team-a-extra", "name": "c"}
    membership = membership_of(
        [app("team-a", "web", [DEPLOYMENT, other])], lambda ns: ("team-a", "team-a-*")
    )
    assert membership.namespaces[APP] == frozenset({"team-a", "team-a-extra"})
    e = event("c", namespace="team-a-extra", kind="ConfigMap", api_version="v1", obj="c")
    assert apps_of(e, membership, no_lookup) == {APP}


def test_an_app_on_another_cluster_has_only_its_own_events() -> None:
    membership = membership_of([app("team-a", "web", [DEPLOYMENT], destination="east")], own)
    assert apps_of(event("e"), membership, no_lookup) == set()
    about_app = event("a", kind="Application", api_version="gitsync.dev/v1alpha1", obj="web")
    assert apps_of(about_app, membership, no_lookup) == {APP}


@pytest.mark.parametrize("value", ["0", "10001", "ten", "-5"])
def test_serve_refuses_a_bad_events_per_app_naming_the_flag(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from gitsync.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", f"--events-per-app={value}"])
    assert "--events-per-app" in capsys.readouterr().err
    assert build_parser().parse_args(["serve"]).events_per_app == 200


def test_app_events_table_is_one_line_per_event() -> None:
    from gitsync.appclient import format_events

    doc = record_of(
        event("e", type="Warning", message="line one\nline two", kind="Pod", obj="p")
    ).to_dict()
    header, row = format_events([doc], wide=False).splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"]
    assert row.split() == [
        "2026-12-07T05:00:00Z",
        "Warning",
        "Test",
        "Pod/p",
        "1",
        "line",
        "one",
        "line",
        "two",
    ]
    wide_header = format_events([doc], wide=True).splitlines()[0]
    assert "NAMESPACE" in wide_header and "SOURCE" in wide_header and "FIRST SEEN" in wide_header


# -- loading is not failing ----------------------------------------------------------------------


class FirstList:
    """Stands in for a namespace's ``KindStream`` in ``ApplicationEvents``: whether its first
    list is done and the last error of its loop (the stream itself is tested against the
    real control plane in tests/integration/test_kube_stream.py)."""

    def __init__(self, namespace: str, *, listed: bool, error: BaseException | None = None):
        self.namespace = namespace
        self.listed = threading.Event()
        if listed:
            self.listed.set()
        self.last_error = error


def index_with(*streams: FirstList) -> ApplicationEvents:
    events = ApplicationEvents(
        None,  # type: ignore[arg-type]  # never asked: every namespace's stream is given
        applications=lambda: [app("team-a", "web", [DEPLOYMENT])],
        allowed_namespaces=own,
        lookup=no_lookup,
    )
    events._streams.update({s.namespace: s for s in streams})  # type: ignore[misc]
    events.store.put(record_of(event("early")), [APP])  # listed so far
    return events


def test_a_namespace_still_listing_is_loading_with_the_events_known_so_far() -> None:
    loading = index_with(FirstList("team-a", listed=False)).events(APP, wait=0.0)
    assert loading is not None
    assert [r.id[1] for r in loading.records] == ["early"] and loading.loading == ("team-a",)
    listed = index_with(FirstList("team-a", listed=True)).events(APP, wait=0.0)
    assert listed is not None and listed.loading == ()
    assert index_with(FirstList("team-a", listed=True)).events(("team-a", "nope")) is None


def test_a_stream_failing_before_its_first_list_is_an_error_with_its_reason() -> None:
    forbidden = ApiError(403, "Forbidden", 'events is forbidden: cannot list resource "events"')
    failing = index_with(FirstList("team-a", listed=False, error=forbidden))
    with pytest.raises(EventsUnavailableError, match=r"team-a cannot be listed: .*forbidden"):
        failing.events(APP, wait=0.0)
    # an error of a later watch, once listed, is the stream's business: the Events are known
    recovered = index_with(FirstList("team-a", listed=True, error=forbidden)).events(APP)
    assert recovered is not None and recovered.loading == ()


def test_app_events_cli_asks_again_while_loading_then_exits_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from gitsync.appcli import EVENTS_LOADING_WAIT, _cmd_events
    from gitsync.appclient import EXIT_OK, EXIT_TIMEOUT

    early = record_of(event("early")).to_dict()
    later = record_of(event("later", second=5)).to_dict()
    loading = {"items": [early], "loading": True, "message": "still loading the Events of team-a"}

    class Answers:
        def __init__(self, *docs: dict[str, Any]) -> None:
            self.docs, self.asked = list(docs), 0

        def get(self, path: str, **query: Any) -> dict[str, Any]:
            assert path == "/applications/team-a/web/events", path
            self.asked += 1
            return self.docs.pop(0) if len(self.docs) > 1 else self.docs[0]

    def run(api: Answers) -> int:
        now = [0.0]
        args = argparse.Namespace(
            app="team-a/web", kind="", name="", type="", limit=0, output="json"
        )
        return _cmd_events(
            args,
            api,  # type: ignore[arg-type]
            clock=lambda: now[0],
            sleep=lambda s: now.__setitem__(0, now[0] + s),
        )

    api = Answers(loading, {"items": [later, early], "loading": False})
    assert run(api) == EXIT_OK and api.asked == 2
    out = capsys.readouterr()
    assert [e["name"] for e in json.loads(out.out)] == ["later", "early"] and out.err == ""

    api = Answers(loading)
    assert run(api) == EXIT_TIMEOUT
    assert api.asked == 1 + EVENTS_LOADING_WAIT  # once a second, bounded
    out = capsys.readouterr()
    assert [e["name"] for e in json.loads(out.out)] == ["early"]
    assert "still loading the Events of team-a" in out.err and "1 known so far" in out.err
