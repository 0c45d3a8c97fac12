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

from gitsync import __version__, logs

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitsync",
        description="GitOps continuous delivery for Kubernetes: make the cluster match Git.",
    )
    parser.add_argument("--log-level", default=os.environ.get("GITSYNC_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)

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
