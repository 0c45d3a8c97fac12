"""The ``gitsync`` command line.

Subcommands are thin: they parse arguments, call into the layers below, print, and map outcomes to
exit codes. ``cluster up`` / ``cluster down`` manage the project's local test control plane for
people and the demo; tests start their own through pytest fixtures.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gitsync import __version__, logs
from gitsync.application import Application, SpecError

if TYPE_CHECKING:
    from gitsync.engine import Engine
    from gitsync.source import GitCredentials

DEFAULT_CLUSTER_DIR = Path(".cluster")


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"gitsync {__version__}")
    return 0


def _cmd_cluster_up(args: argparse.Namespace) -> int:
    from gitsync.testing.controlplane import ControlPlane, ControlPlaneError

    workdir = Path(args.dir).resolve()
    if (workdir / "state.json").exists():
        print(
            f"a control plane is already recorded in {workdir}; run `gitsync cluster down` first",
            file=sys.stderr,
        )
        return 2
    cp = ControlPlane(workdir, simulator_nodes=args.nodes, detached=True)
    try:
        cp.start()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"control plane ready in {cp.startup_seconds:.1f}s at {cp.host}",
        f"(logs in {workdir / 'logs'})",
    )
    print(f"KUBECONFIG={cp.kubeconfig_path}")
    return 0


def _cmd_cluster_down(args: argparse.Namespace) -> int:
    from gitsync.testing.controlplane import ControlPlane

    stopped = ControlPlane.stop_detached(Path(args.dir).resolve())
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


# -- engine commands -------------------------------------------------------------------------

EXIT_OK, EXIT_DIFF, EXIT_ERROR = 0, 1, 2


def _load_application(path: str) -> Application:
    from gitsync.application import parse_application
    from gitsync.render import RenderLimits, load_yaml_documents

    data = Path(path).read_bytes()
    docs = load_yaml_documents(data, source=path, limits=RenderLimits(max_bytes=1024 * 1024))
    if len(docs) != 1:
        raise SpecError("(file)", f"{path} must hold exactly one Application, found {len(docs)}")
    return parse_application(docs[0])


def _credentials(args: argparse.Namespace) -> GitCredentials | None:
    from gitsync.source import GitCredentials

    def read(path: str | None) -> str | None:
        return Path(path).read_text() if path else None

    username = args.git_username or os.environ.get("GITSYNC_GIT_USERNAME")
    password = read(args.git_password_file) or os.environ.get("GITSYNC_GIT_PASSWORD")
    ssh_key = read(args.ssh_key or os.environ.get("GITSYNC_GIT_SSH_KEY_FILE"))
    known_hosts = read(args.known_hosts or os.environ.get("GITSYNC_GIT_KNOWN_HOSTS_FILE"))
    if not any((username, password, ssh_key, known_hosts)):
        return None
    return GitCredentials(
        username=username, password=password, ssh_private_key=ssh_key, known_hosts=known_hosts
    )


def _engine(args: argparse.Namespace) -> Engine:
    from gitsync.engine import Engine
    from gitsync.kube import KubeClient
    from gitsync.source import SourceCache

    kube = KubeClient.from_kubeconfig(args.kubeconfig, context=args.context)
    cache_root = Path(args.cache_dir or _default_cache_dir())
    creds = _credentials(args)
    return Engine(kube, SourceCache(cache_root), credentials=lambda app: creds)


def _default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gitsync" / "sources"


def _run_engine_command(
    args: argparse.Namespace, body: Callable[[Engine, Application], int]
) -> int:
    from gitsync.errors import GitsyncError

    try:
        app = _load_application(args.file)
        return body(_engine(args), app)
    except (GitsyncError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _cmd_diff(args: argparse.Namespace) -> int:
    def body(engine: Engine, app: Application) -> int:
        from gitsync.model import SyncStatus

        state = engine.compare(app)
        print(
            f"{app.qualified_name} at {state.revision.sha[:12]} ({state.revision.ref or 'commit'})"
        )
        for key, error in state.comparison.errors:
            print(f"error: {key}: {error}", file=sys.stderr)
        changed = 0
        for d in state.comparison.diffs:
            if d.status == SyncStatus.SYNCED:
                continue
            changed += 1
            print(f"===== {d.key} ({d.status})")
            if d.unified:
                print(d.unified, end="" if d.unified.endswith("\n") else "\n")
        print(f"{changed} of {len(state.comparison.diffs)} objects differ")
        if state.comparison.errors:
            return EXIT_ERROR
        return EXIT_OK if state.comparison.in_sync else EXIT_DIFF

    return _run_engine_command(args, body)


def _cmd_sync(args: argparse.Namespace) -> int:
    def body(engine: Engine, app: Application) -> int:
        state, result = engine.sync(app, dry_run=args.dry_run, prune=args.prune or None)
        mode = " (dry run)" if result.dry_run else ""
        print(f"sync {app.qualified_name} to {state.revision.sha[:12]}{mode}")
        rows = [("KIND", "NAMESPACE", "NAME", "RESULT", "MESSAGE")]
        rows += [
            (r.key.kind, r.key.namespace, r.key.name, str(r.code), r.message)
            for r in sorted(result.results, key=lambda r: (r.wave, r.key))
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print(
                "  ".join(col.ljust(w) for col, w in zip(row, widths, strict=False)) + "  " + row[4]
            )
        if result.message:
            print(f"error: {result.message}", file=sys.stderr)
        print(f"phase: {result.phase}")
        return EXIT_OK if result.succeeded else EXIT_DIFF

    return _run_engine_command(args, body)


def _cmd_health(args: argparse.Namespace) -> int:
    def body(engine: Engine, app: Application) -> int:
        from gitsync.model import HealthStatus

        state = engine.compare(app)
        for key, health in state.resource_health():
            print(f"{health.status:<12} {key}  {health.message}")
        overall = state.health
        print(f"health: {overall.status}" + (f" ({overall.message})" if overall.message else ""))
        return EXIT_OK if overall.status == HealthStatus.HEALTHY else EXIT_DIFF

    return _run_engine_command(args, body)


def _cmd_render(args: argparse.Namespace) -> int:
    import json

    import yaml

    from gitsync.render import HelmOptions, RenderError, RenderRequest, detect, render

    path = Path(args.path).resolve()
    root = Path(args.repo_root).resolve() if args.repo_root else _repo_root_of(path)
    rel = str(path.relative_to(root)) if path != root else "."
    helm = None
    if detect(root, rel) == "helm":
        helm = HelmOptions(
            release_name=args.release_name or path.name.lower(),
            value_files=tuple(str(Path(v).resolve().relative_to(path)) for v in args.helm_values),
            set_values=tuple(args.set),
        )
    try:
        manifests = render(
            RenderRequest(repo_root=root, path=rel, namespace=args.namespace, helm=helm)
        )
    except (RenderError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    objs = [m.obj for m in manifests]
    if args.output == "json":
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}, indent=2))
    else:
        print(yaml.safe_dump_all(objs, sort_keys=False), end="")
    return EXIT_OK


def _repo_root_of(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return path


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", required=True, help="the Application manifest (YAML)")
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument("--context", default=None)
    p.add_argument("--cache-dir", default=None, help="Git mirrors and checkouts")
    p.add_argument("--git-username", default=None, help="or $GITSYNC_GIT_USERNAME")
    p.add_argument("--git-password-file", default=None, help="or $GITSYNC_GIT_PASSWORD")
    p.add_argument("--ssh-key", default=None, help="private key file, or $GITSYNC_GIT_SSH_KEY_FILE")
    p.add_argument("--known-hosts", default=None, help="or $GITSYNC_GIT_KNOWN_HOSTS_FILE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitsync",
        description="GitOps continuous delivery for Kubernetes: make the cluster match Git.",
    )
    parser.add_argument("--log-level", default=os.environ.get("GITSYNC_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)

    render = sub.add_parser(
        "render", help="render a directory (plain, Kustomize or Helm) to stdout"
    )
    render.add_argument("path")
    render.add_argument("--repo-root", default=None, help="confinement root (default: git root)")
    render.add_argument("--helm-values", action="append", default=[], metavar="FILE")
    render.add_argument("--set", action="append", default=[], metavar="K=V")
    render.add_argument("--release-name", default=None)
    render.add_argument("--namespace", default="")
    render.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    render.set_defaults(func=_cmd_render)

    diff = sub.add_parser(
        "diff", help="show how the cluster differs from Git (exit 0 same, 1 differs, 2 error)"
    )
    _engine_args(diff)
    diff.set_defaults(func=_cmd_diff)

    sync = sub.add_parser("sync", help="make the cluster match Git; prints a result per object")
    _engine_args(sync)
    sync.add_argument("--dry-run", action="store_true", help="send everything with dryRun=All")
    sync.add_argument("--prune", action="store_true", help="delete objects Git no longer has")
    sync.set_defaults(func=_cmd_sync)

    health = sub.add_parser("health", help="health of the app's objects (exit 0 when Healthy)")
    _engine_args(health)
    health.set_defaults(func=_cmd_health)

    cluster = sub.add_parser(
        "cluster", help="the local test control plane (etcd + kube-apiserver + controllers)"
    )
    cluster_sub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    up = cluster_sub.add_parser(
        "up", help="start it in the background; prints KUBECONFIG=<path> last"
    )
    up.add_argument(
        "--dir", default=str(DEFAULT_CLUSTER_DIR), help="state and logs (default .cluster)"
    )
    up.add_argument("--nodes", type=int, default=3, help="simulated nodes (default 3)")
    up.set_defaults(func=_cmd_cluster_up)
    down = cluster_sub.add_parser("down", help="stop exactly what `cluster up` started")
    down.add_argument("--dir", default=str(DEFAULT_CLUSTER_DIR))
    down.set_defaults(func=_cmd_cluster_down)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
