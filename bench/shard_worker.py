"""One sharded controller in a process of its own, driven over stdin by ``bench.scale``.

Issue 9's scenario 9 asks what a second shard process buys for a no-change refresh of 3,000
apps. Controllers in one process share one GIL, so a second in-process controller would measure
the interpreter, not the design: each shard gets its own process here. It builds the real
``Controller`` with ``ControllerConfig(shards=N, identity=..., lease_duration=15)`` (what
``gitsync serve --shards N`` builds) against the kubeconfig, counting its API requests, and
answers one JSON line per command line:

* ``status`` - the shards it holds, how many apps that is, and whether its queue is idle;
* ``refresh`` - every app of a shard it holds handed to ``Controller.refresh(key, "interval")``
  at once (as ``bench.scale.full_refresh`` does in-process); answers the seconds until its queue
  drained, the CPU seconds of this process, its RSS (this process is the controller alone: no
  Git server, no bench bookkeeping), the API requests by verb (dry runs apart) and the writes -
  the shard Leases' renewals counted apart from writes to apps and their objects;
* ``quit`` - stops the controller (its shard Leases are released) and exits.

    python -m bench.shard_worker --kubeconfig K --namespace NS --controller-namespace CNS
                                 --shards N --identity ID --cache-dir DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.scale import CountingClient, idle, rss_mib, wait
from gitsync import logs
from gitsync.controller.controller import Controller, ControllerConfig


def owned_keys(controller: Controller) -> list[tuple[str, str]]:
    sharding = controller.sharding
    assert sharding is not None
    held = set(sharding.held())
    return [k for k in controller.store.app_keys() if sharding.shard_of_key(k) in held]


def status(controller: Controller) -> dict[str, Any]:
    assert controller.sharding is not None
    return {
        "held": controller.sharding.held(),
        "apps": len(owned_keys(controller)),
        "idle": idle(controller),
        "rss_mib": rss_mib()[0],
    }


def refresh(controller: Controller, kube: CountingClient) -> dict[str, Any]:
    keys = owned_keys(controller)
    before, written = kube.snapshot()
    cpu = time.process_time()
    started = time.perf_counter()
    for key in keys:
        controller.refresh(key, "interval")
    wait(lambda: idle(controller), 60 + len(keys), "the refresh of every held app", 0.005)
    seconds = time.perf_counter() - started
    after, written_after = kube.snapshot()
    writes = written_after - written
    leases = {path: n for path, n in writes.items() if "/leases/" in path}
    rss, peak = rss_mib()
    return {
        "apps": len(keys),
        "seconds": seconds,
        "cpu": time.process_time() - cpu,
        "rss_mib": rss,
        "peak_mib": peak,
        "requests": dict(after - before),
        "written": {path: n for path, n in writes.items() if path not in leases},
        "lease_writes": sum(leases.values()),  # the shard Leases' renewals, not app writes
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shard_worker", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True, help="the Applications' namespace")
    parser.add_argument("--controller-namespace", required=True, help="where the Leases live")
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logs.configure("warning")
    kube = CountingClient.from_kubeconfig(args.kubeconfig)
    assert isinstance(kube, CountingClient)
    controller = Controller(
        kube,
        ControllerConfig(
            cache_dir=args.cache_dir,
            namespaces=[args.namespace],
            shards=args.shards,
            identity=args.identity,
            lease_duration=15,
            controller_namespace=args.controller_namespace,
            impersonate=False,  # the bench sets up no tenant ServiceAccounts
        ),
    )
    controller.start()
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command == "status":
                answer = status(controller)
            elif command == "refresh":
                answer = refresh(controller, kube)
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
