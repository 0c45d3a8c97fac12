"""The ``gitsync app`` subcommands: argument parsing, one API call or a poll loop, printing.

What each command sends and how answers are checked lives in ``gitsync.appclient``; this module
only maps flags to requests and outcomes to exit codes (documented there). Tables go to stdout and
progress and errors to stderr, so ``-o json`` output can be piped whole.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitsync.appclient import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    MAX_PAGES,
    OUTPUTS,
    SET_OUTPUTS,
    ApiClient,
    ClientError,
    WaitGoal,
    WaitState,
    dump,
    format_detail,
    format_diff,
    format_events,
    format_history,
    format_list,
    format_set_detail,
    format_set_list,
    parse_duration,
    split_app,
    wait_decision,
)
from gitsync.apptree import format_tree

if TYPE_CHECKING:
    _Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

MAX_TOKEN_FILE_BYTES = 4096
POLL_INTERVAL = 2.0  # the API shares its reads for 1 s; polling faster only repeats them
EVENTS_LOADING_WAIT = 10.0  # `app events`: how long to ask again while Events are loading
EVENTS_LOADING_POLL = 1.0


class UsageError(Exception):
    """Bad flags or environment: exit 2 with the message."""


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            with open(args.token_file, "rb") as fh:
                raw = fh.read(MAX_TOKEN_FILE_BYTES + 1)
        except OSError as exc:
            raise UsageError(
                f"--token-file: cannot read {args.token_file}: {exc.strerror}"
            ) from None
        if len(raw) > MAX_TOKEN_FILE_BYTES:
            raise UsageError(f"--token-file: {args.token_file} is larger than 4 KiB")
        lines = raw.decode("utf-8", "replace").splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise UsageError(f"--token-file: {args.token_file} is empty")
        return token
    return os.environ.get("GITSYNC_TOKEN", "").strip()


def client_from(args: argparse.Namespace) -> ApiClient:
    server = args.server or os.environ.get("GITSYNC_SERVER", "")
    if not server:
        raise UsageError("no server: pass --server URL or set GITSYNC_SERVER")
    try:
        return ApiClient(
            server,
            _token(args),
            ca_file=args.ca_file,
            insecure_skip_tls_verify=args.insecure_skip_tls_verify,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _app_path(text: str) -> str:
    namespace, name = split_app(text)
    return f"/applications/{namespace}/{name}"


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _list_all(
    args: argparse.Namespace,
    client: ApiClient,
    path: str,
    format_table: Callable[..., str],
    filters: Mapping[str, str] | None = None,
) -> int:
    """Every page of a list endpoint, printed as one document. ``filters`` are the endpoint's
    own query parameters; without them ``-n`` is applied on the client."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        doc = client.get(path, page=page, per_page=1000, **(filters or {}))
        items += [
            i
            for i in doc.get("items") or ()
            if filters is not None or not args.namespace or i.get("namespace") == args.namespace
        ]
        if page >= int(doc.get("pages") or 1) or page >= MAX_PAGES:
            break
        page += 1
    if args.output in ("json", "yaml"):
        listing = {"items": items, "page": 1, "perPage": len(items), "total": len(items)}
        _print(dump({**listing, "pages": 1}, args.output))
    else:
        _print(format_table(items))
    return EXIT_OK


def _cmd_list(args: argparse.Namespace, client: ApiClient) -> int:
    filters = {
        name: value
        for name, value in (
            ("namespace", args.namespace),
            ("label", args.selector),
            ("sync", args.sync),
            ("health", args.health),
            ("repo", args.repo),
        )
        if value
    }
    return _list_all(
        args,
        client,
        "/applications",
        lambda items: format_list(items, wide=args.output == "wide"),
        filters,
    )


def _cmd_set_list(args: argparse.Namespace, client: ApiClient) -> int:
    return _list_all(args, client, "/applicationsets", format_set_list)


def _cmd_set_get(args: argparse.Namespace, client: ApiClient) -> int:
    namespace, name = split_app(args.appset)
    doc = client.get(f"/applicationsets/{namespace}/{name}")
    _print(dump(doc, args.output) if args.output != "table" else format_set_detail(doc))
    return EXIT_OK


def _cmd_get(args: argparse.Namespace, client: ApiClient) -> int:
    doc = client.get(_app_path(args.app))
    query: dict[str, str | int] = {"orphans": "true"} if args.orphans else {}
    tree = client.get(_app_path(args.app) + "/tree", **query)
    if args.output in ("json", "yaml"):
        _print(dump({**doc, "tree": tree}, args.output))
    else:
        _print(format_detail(doc, wide=args.output == "wide") + "\n" + format_tree(tree))
    return EXIT_OK


def _cmd_history(args: argparse.Namespace, client: ApiClient) -> int:
    history = client.get(_app_path(args.app)).get("history") or []
    if args.output in ("json", "yaml"):
        _print(dump(history, args.output))
    else:
        _print(format_history(history, wide=args.output == "wide"))
    return EXIT_OK


def _cmd_events(
    args: argparse.Namespace,
    client: ApiClient,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """While the controller is still listing a namespace's Events (``"loading": true``) ask
    again for up to ``EVENTS_LOADING_WAIT`` seconds; still loading then: print the Events known
    so far, say so on stderr and exit ``EXIT_TIMEOUT`` (the list may be incomplete)."""
    query: dict[str, str | int] = {
        k: v for k, v in (("kind", args.kind), ("name", args.name), ("type", args.type)) if v
    }
    if args.limit:
        query["limit"] = args.limit
    deadline = clock() + EVENTS_LOADING_WAIT
    doc = client.get(_app_path(args.app) + "/events", **query)
    while doc.get("loading") is True and clock() < deadline:
        sleep(EVENTS_LOADING_POLL)
        doc = client.get(_app_path(args.app) + "/events", **query)
    items = doc.get("items") or []
    if args.output in ("json", "yaml"):
        _print(dump(items, args.output))
    else:
        _print(format_events(items, wide=args.output == "wide"))
    if doc.get("loading") is True:
        sys.stderr.write(
            f"{args.app}: {doc.get('message') or 'the Events are still loading'} "
            f"(shown: the {len(items)} known so far); run again shortly\n"
        )
        return EXIT_TIMEOUT
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace, client: ApiClient) -> int:
    query: dict[str, str | int] = {"all": "true"} if args.all else {}
    doc = client.get(_app_path(args.app) + "/diff", **query)
    if args.output in ("json", "yaml"):
        _print(dump(doc, args.output))
    else:
        _print(format_diff(doc))
    return EXIT_OK if doc.get("inSync") else EXIT_FAILED


def _cmd_action(args: argparse.Namespace, client: ApiClient) -> int:
    body: dict[str, Any] = {}
    if args.app_command == "sync":
        body = {"prune": args.prune}
    elif args.app_command == "rollback":
        body = {"id": args.id}
    doc = client.post(_app_path(args.app) + "/" + args.app_command, body)
    if args.output in ("json", "yaml"):
        _print(dump(doc, args.output))
    else:
        _print(f"{doc.get('application')}: {doc.get('message')}\n")
    return EXIT_OK


def _cmd_wait(
    args: argparse.Namespace,
    client: ApiClient,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    # Neither flag: wait for both, like ``argocd app wait``.
    both = not args.sync and not args.health
    goal = WaitGoal(sync=args.sync or both, health=args.health or both, revision=args.revision)
    path = _app_path(args.app)
    deadline = clock() + args.timeout
    doc = client.get(path)  # a wrong server, token or name fails at once, not at the timeout
    last_reason = ""
    while True:
        decision = wait_decision(doc, goal)
        if decision.state is WaitState.REACHED:
            _print(f"{args.app}: {decision.reason}\n")
            return EXIT_OK
        if decision.state is WaitState.FAILED:
            sys.stderr.write(f"{args.app}: {decision.reason}\n")
            return EXIT_FAILED
        if decision.reason != last_reason:
            sys.stderr.write(f"{args.app}: waiting: {decision.reason}\n")
            last_reason = decision.reason
        left = deadline - clock()
        if left <= 0:
            sys.stderr.write(
                f"{args.app}: timed out after {args.timeout:g}s waiting: {decision.reason}\n"
            )
            return EXIT_TIMEOUT
        sleep(min(POLL_INTERVAL, left))
        try:
            doc = client.get(path)
        except ClientError as exc:
            if not exc.transient:
                raise
            # the controller restarting or a proxy hiccup: keep the last state, try again
            last_reason = f"{decision.reason} (last request failed: {exc})"


def matching_pods(pods: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    """The Pods ``app logs`` reads: those of the managed object ``kind``/``name`` (a Deployment:
    its Pods; ``--kind Pod``: that Pod), any with that Pod or owner name, or every one."""
    if kind.lower() == "pod":
        return [p for p in pods if p["name"] == name or not name]
    found = []
    for pod in pods:
        owner = pod.get("owner") or {}
        if kind and str(owner.get("kind", "")).lower() != kind.lower():
            continue
        if name and name not in (owner.get("name"), pod["name"] if not kind else None):
            continue
        found.append(pod)
    return found


def _cmd_logs(args: argparse.Namespace, client: ApiClient) -> int:
    path = _app_path(args.app)
    pods = matching_pods(client.get(path + "/pods").get("items") or [], args.kind, args.name)
    if not pods:
        asked = " ".join(f"--{k} {v}" for k, v in (("kind", args.kind), ("name", args.name)) if v)
        raise UsageError(f"no Pod of {args.app} matches {asked or 'anything'}")
    if args.follow and len(pods) > 1:
        sys.stderr.write(f"{len(pods)} Pods match; following {pods[0]['name']}\n")
        pods = pods[:1]
    out = sys.stdout.buffer

    def write(chunk: bytes) -> None:
        out.write(chunk)
        out.flush()

    for pod in pods:
        if len(pods) > 1:
            write(f"==> {pod['namespace']}/{pod['name']} <==\n".encode())
        query: dict[str, str | int] = {"pod": pod["name"], "namespace": pod["namespace"]}
        if args.container:
            query["container"] = args.container
        if args.previous:
            query["previous"] = "true"
        if args.tail:
            query["tailLines"] = args.tail
        if args.follow:
            query["follow"] = "true"
        client.stream(path + "/logs", query, write)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    where = f"gitsync {args.command} {getattr(args, 'app_command', None) or args.appset_command}"
    try:
        client = client_from(args)
        command: Callable[[argparse.Namespace, ApiClient], int] = args.app_func
        return command(args, client)
    except (UsageError, ValueError, ClientError) as exc:
        sys.stderr.write(f"{where}: {exc}\n")
        return EXIT_ERROR


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be longer than 0s")
    return seconds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _connection_args(p: argparse.ArgumentParser, *, output: bool) -> None:
    p.add_argument(
        "--server",
        default=None,
        help="the controller's URL, e.g. https://gitsync.example.com (default: $GITSYNC_SERVER)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file whose first line is the API token (default: $GITSYNC_TOKEN; never a flag "
        "value, so it does not show in ps)",
    )
    p.add_argument("--ca-file", default=None, help="CA bundle (PEM) to verify the server with")
    p.add_argument(
        "--insecure-skip-tls-verify",
        action="store_true",
        help="do not verify the server's TLS certificate (testing only)",
    )
    if not output:  # app wait prints a line, not a document
        return
    p.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default="table",
        help="table (default), wide (more columns), json (the API's document), yaml",
    )


def add_app_parser(sub: _Subcommands) -> None:
    app = sub.add_parser(
        "app",
        help="inspect and act on Applications through a running controller's API",
        description="Talks to `gitsync serve`'s JSON API (docs/api.md). Exit codes: 0 done/"
        "reached, 1 failure state reached (wait) or differences (diff), 2 usage, connection or "
        "API error, 3 timeout (wait).",
    )
    app.set_defaults(func=run)
    commands = app.add_subparsers(dest="app_command", metavar="ACTION", required=True)

    def command(
        name: str, text: str, func: Callable[[argparse.Namespace, ApiClient], int]
    ) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=text, description=text)
        _connection_args(p, output=name not in ("wait", "logs"))
        if name != "list":
            p.add_argument("app", metavar="NAMESPACE/NAME", help="the Application")
        p.set_defaults(app_func=func)
        return p

    listing = command("list", "list Applications with sync and health", _cmd_list)
    listing.add_argument(
        "-n",
        "--namespace",
        default="",
        help="only Applications in this namespace (their project); several: a,b",
    )
    listing.add_argument(
        "-l",
        "--selector",
        default="",
        help="only Applications whose labels match: key=value, key!=value, key, !key "
        "(comma-separated, all must hold)",
    )
    listing.add_argument(
        "--sync", default="", help="only this sync status: Synced, OutOfSync, Unknown; several: a,b"
    )
    listing.add_argument(
        "--health",
        default="",
        help="only this health: Healthy, Progressing, Degraded, Suspended, Missing, Unknown; "
        "several: a,b",
    )
    listing.add_argument(
        "--repo",
        default="",
        help="only Applications of this repository URL (case, a trailing / or .git ignored)",
    )
    get = command(
        "get", "one Application: summary, its objects, and their live tree with health", _cmd_get
    )
    get.add_argument(
        "--orphans",
        action="store_true",
        help="also list objects in its namespaces that nothing it manages owns",
    )
    diff = command("diff", "compare Git with the cluster now (exit 1 on differences)", _cmd_diff)
    diff.add_argument("--all", action="store_true", help="also list objects that are in sync")
    command("history", "the Application's deployments, newest first", _cmd_history)
    events = command(
        "events",
        "the Kubernetes Events of the Application, its objects and their Pods, newest first "
        f"(exit {EXIT_TIMEOUT} when they are still loading after {EVENTS_LOADING_WAIT:.0f}s: "
        "those known so far are printed)",
        _cmd_events,
    )
    events.add_argument("--kind", default="", help="only Events about objects of this kind")
    events.add_argument("--name", default="", help="only Events about objects of this name")
    events.add_argument(
        "--type", choices=("Normal", "Warning"), default="", help="only Events of this type"
    )
    events.add_argument(
        "--limit", type=_positive_int, default=0, help="at most this many (default: all kept)"
    )
    wait = command(
        "wait",
        "wait until the Application is synced and healthy (exit 0), fails (1) or times out (3)",
        _cmd_wait,
    )
    wait.add_argument("--sync", action="store_true", help="wait for Synced")
    wait.add_argument("--health", action="store_true", help="wait for Healthy")
    wait.add_argument(
        "--revision",
        default="",
        help="wait for this commit SHA (or a prefix, or a chart version): states of earlier "
        "revisions neither end nor fail the wait",
    )
    wait.add_argument(
        "--timeout",
        type=_duration,
        default=300.0,
        help="give up after this long, e.g. 90s, 5m, 1h (default 5m; exit 3)",
    )
    sync = command("sync", "ask the controller to sync now (admin token)", _cmd_action)
    sync.add_argument("--prune", action="store_true", help="also delete objects gone from Git")
    command("refresh", "ask the controller to compare with Git now (admin token)", _cmd_action)
    rollback = command(
        "rollback", "redeploy a history entry; pauses automated sync (admin token)", _cmd_action
    )
    rollback.add_argument("id", type=_positive_int, help="the history entry's ID (app history)")
    logs = command(
        "logs",
        "print container logs of the Application's Pods (the server's --logs-role decides who may)",
        _cmd_logs,
    )
    logs.add_argument(
        "--kind", default="", help="the managed object's kind, e.g. Deployment (or Pod)"
    )
    logs.add_argument(
        "--name", default="", help="the managed object's name (its Pods), or a Pod's name"
    )
    logs.add_argument("-c", "--container", default="", help="the container (needed when several)")
    logs.add_argument(
        "-p", "--previous", action="store_true", help="the previous (restarted) container's log"
    )
    logs.add_argument(
        "--tail",
        type=_positive_int,
        default=None,
        help="last N lines (default: the server's, 1000; at most 100000)",
    )
    logs.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new lines until the server's --logs-max-seconds (one Pod)",
    )


def add_appset_parser(sub: _Subcommands) -> _Subcommands:
    """``gitsync appset``; returns its subcommands, so ``cli`` can add ``promote`` (which writes
    through the Kubernetes API, not the controller's read-only API)."""
    appset = sub.add_parser(
        "appset",
        help="inspect ApplicationSets through a running controller's API",
        description="Talks to `gitsync serve`'s JSON API (docs/api.md), with the same flags and "
        "environment as `gitsync app`. Exit codes: 0 done, 2 usage, connection or API error.",
    )
    appset.set_defaults(func=run)
    commands = appset.add_subparsers(dest="appset_command", metavar="ACTION", required=True)

    def command(
        name: str, text: str, func: Callable[[argparse.Namespace, ApiClient], int]
    ) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=text, description=text)
        _connection_args(p, output=False)
        p.add_argument(
            "-o",
            "--output",
            choices=SET_OUTPUTS,
            default="table",
            help="table (default), json (the API's document), yaml",
        )
        p.set_defaults(app_func=func)
        return p

    listing = command(
        "list", "list ApplicationSets with their generators and app count", _cmd_set_list
    )
    listing.add_argument(
        "-n", "--namespace", default="", help="only ApplicationSets in this namespace"
    )
    get = command(
        "get", "one ApplicationSet: generators, conditions, its Applications", _cmd_set_get
    )
    get.add_argument("appset", metavar="NAMESPACE/NAME", help="the ApplicationSet")
    return commands
