"""Many Applications on one controller: no-change refresh, drift at scale, and growth.

Issue 9's scenarios 2, 3 and 8 ask what one controller costs when a thousand apps sit still, how
fast it notices and heals a few edited objects among them, and how both grow with the number of
apps. They are measured on the real ``Controller`` running in this process (so its API requests
can be counted by verb and whether they were dry runs, and its CPU read with
``time.process_time``), against the test Git server over HTTP and the given API server:

* one Git repository holds ``apps/aNNNN/`` directories of 10 small objects each (7 ConfigMaps,
  2 headless Services, 1 Deployment with ``replicas: 0`` so no Pods load the API server);
* Applications are custom resources (the default store) in one namespace, deploying into it,
  automated with ``selfHeal``;
* the apps are added in stages (e.g. 100, then up to 1,000, then 3,000) to the same controller;
  at each stage everything is first synced and settled off the clock (the time that takes is
  reported as the setup figure), then a **full refresh** of every app is timed: each app is
  handed to ``Controller.refresh`` with the interval timer's reason - the cheap head check
  (``ls-remote``, which timer-driven refreshes of one repository may share, see
  ``SourceCache.resolve``) and, because ``refresh`` marks the live state as changed, a full
  compare against the watch cache (what every ``full_compare_every`` does) - and the clock stops
  when the work queue is empty with no reconcile running. The reference is ``kubectl get -o
  json`` of the same objects (a plain read of everything, no comparison) and the 5 s goal;
* drift: at the stage named for it, ``drift_edits`` ConfigMaps of distinct random apps are
  edited behind gitsync's back; timed until the controller has started a self-heal of each app
  (seen in its own Application cache) and until the API server serves the Git value again.

The RSS is the whole bench process (controller plus the bench's own small bookkeeping), read
from ``/proc/self/status``; it is an upper bound for the controller's.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import random
import resource
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.scenarios import BenchError, Row, median
from bench.ui_list import waitress_server
from gitsync.controller.controller import PUSH_WINDOW, Controller, ControllerConfig, ensure_crd
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from gitsync.render.kustomize import kubectl_path
from gitsync.web import create_app
from tests.support import apps as testing_apps
from tests.support.cluster import temporary_namespace

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "charts/gitsync/crds/applications.gitsync.dev.yaml"
OBJECTS_PER_APP = 10
GOAL_SECONDS = 5.0
GOAL_RSS_MIB = 300.0
WRITES = ("POST", "PUT", "PATCH", "DELETE")


class CountingClient(KubeClient):
    """A ``KubeClient`` counting requests by (verb, dry run?) under a lock.

    ``KubeClient.requests`` only sees the verb, so a compare's server-side-apply dry run would
    look like a write; this looks at the query."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[str] = Counter()
        self.written: Counter[str] = Counter()  # real writes by path: what a note names
        self._count_lock = threading.Lock()

    def request(
        self, method: str, path: str, *, query: dict[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        name = f"{method} (dry run)" if query and "dryRun" in query else method
        with self._count_lock:
            self.counts[name] += 1
            if name in WRITES:
                self.written[f"{method} {path}"] += 1
        return super().request(method, path, query=query, **kwargs)

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        """(requests by verb, real writes by path) so far."""
        with self._count_lock:
            return Counter(self.counts), Counter(self.written)


# -- the repository -----------------------------------------------------------------------------


def app_name(i: int) -> str:
    return f"a{i:04d}"


def app_files(i: int, image: str = "nginx:1.25") -> dict[str, str]:
    """The 10 objects of app ``i``: 7 ConfigMaps, 2 headless Services, 1 Deployment."""
    app = app_name(i)
    labels = {"bench": "scale", "app.kubernetes.io/instance": app}
    docs: dict[str, dict[str, Any]] = {}
    for j in range(7):
        docs[f"cm-{j}.yaml"] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{app}-cm-{j}", "labels": labels},
            "data": {"index": str(j), "value": f"{app}-{j}"},
        }
    for j in range(2):
        docs[f"svc-{j}.yaml"] = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{app}-svc-{j}", "labels": labels},
            "spec": {
                "clusterIP": "None",
                "selector": {"app": app},
                "ports": [{"name": "http", "port": 80 + j}],
            },
        }
    docs["deploy.yaml"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{app}-web", "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }
    return {f"apps/{app}/{name}": yaml.safe_dump(doc) for name, doc in docs.items()}


def application(i: int, namespace: str, repo_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": app_name(i), "namespace": namespace},
        "spec": {
            "source": {
                "repoURL": repo_url,
                "targetRevision": "main",
                "path": f"apps/{app_name(i)}",
            },
            "destination": {"namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            "interval": "3m",
        },
    }


# -- observing the controller -------------------------------------------------------------------


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def idle(controller: Controller) -> bool:
    return len(controller.queue) == 0 and controller.queue.active() == 0


def wait(check: Callable[[], bool], timeout: float, what: str, poll: float = 0.01) -> float:
    """Seconds until ``check()``; ``BenchError`` after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)
    return time.monotonic() - started


def synced(controller: Controller, keys: Sequence[tuple[str, str]]) -> bool:
    for key in keys:
        status = (controller.store.get(key) or {}).get("status") or {}
        if (status.get("sync") or {}).get("status") != "Synced":
            return False
        if (status.get("health") or {}).get("status") != "Healthy":
            return False
    return True


def operation_id(controller: Controller, key: tuple[str, str]) -> str:
    status = (controller.store.get(key) or {}).get("status") or {}
    return str((status.get("operationState") or {}).get("id") or "")


# -- the figures --------------------------------------------------------------------------------


@dataclass
class Refresh:
    seconds: float
    cpu: float
    git_cpu: float
    requests: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)


def full_refresh(controller: Controller, kube: CountingClient, keys: Sequence[Any]) -> Refresh:
    """Refresh every app at once; the clock stops when no reconcile is left."""
    wait(lambda: idle(controller), 120, "the controller to settle before a refresh", 0.05)
    before, written = kube.snapshot()
    cpu, git_cpu = time.process_time(), children_cpu()
    started = time.perf_counter()
    for key in keys:
        controller.refresh(key, "interval")
    wait(lambda: idle(controller), 60 + len(keys), "the refresh of every app", 0.005)
    seconds = time.perf_counter() - started
    after, written_after = kube.snapshot()
    return Refresh(
        seconds,
        time.process_time() - cpu,
        children_cpu() - git_cpu,
        after - before,
        written_after - written,
    )


def kubectl_get(kubeconfig: Path, namespace: str) -> float:
    """Seconds for ``kubectl get`` of every object the apps manage, as JSON."""
    started = time.perf_counter()
    out = subprocess.run(
        [
            kubectl_path(),
            f"--kubeconfig={kubeconfig}",
            "get",
            "configmaps,services,deployments",
            "-n",
            namespace,
            "-l",
            "bench=scale",
            "-o",
            "json",
        ],
        capture_output=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise BenchError(f"kubectl get failed: {out.stderr.decode(errors='replace')[:300]}")
    return seconds


@dataclass
class Drift:
    reported: float  # every edited app has a self-heal operation started
    corrected: float  # the API server serves the Git value of every edited object again


def drift(
    controller: Controller,
    bench_kube: KubeClient,
    namespace: str,
    apps: Sequence[int],
    rng: random.Random,
) -> Drift:
    """Edit one ConfigMap in each of ``apps`` behind gitsync's back; time the self-heal."""
    wait(lambda: idle(controller), 120, "the controller to settle before the drift", 0.05)
    keys = {i: (namespace, app_name(i)) for i in apps}
    before = {i: operation_id(controller, key) for i, key in keys.items()}
    edited = {i: f"{app_name(i)}-cm-{rng.randrange(7)}" for i in apps}
    started = time.perf_counter()
    for name in edited.values():
        bench_kube.patch(
            "v1", "ConfigMap", name, {"data": {"value": "drifted"}}, namespace=namespace
        )
    reported: dict[int, float] = {}
    corrected: dict[int, float] = {}
    deadline = started + 120
    while len(corrected) < len(apps) or len(reported) < len(apps):
        if time.perf_counter() > deadline:
            raise BenchError(f"drift not healed within 120 s: {sorted(set(apps) - set(corrected))}")
        for i, key in keys.items():
            if i not in reported and operation_id(controller, key) != before[i]:
                reported[i] = time.perf_counter() - started
        for i, name in edited.items():
            if i in corrected:
                continue
            live = bench_kube.get("v1", "ConfigMap", name, namespace) or {}
            if (live.get("data") or {}).get("value") != "drifted":
                corrected[i] = time.perf_counter() - started
        time.sleep(0.05)
    return Drift(max(reported.values()), max(corrected.values()))


# -- push-to-live among many apps (scenario 4) ---------------------------------------------------

SOLO = 9000  # the app with a repository of its own (outside the stages' 0..N-1)
GOAL_PUSH_P50, GOAL_PUSH_P95 = 1.0, 2.0


def github_push(base: str, secret: str, repo_url: str, sha: str, changed: str) -> int:
    """Deliver a signed GitHub push webhook for ``main`` to the controller's web app, as a forge
    would - with the commit and the file it modified (``changed``), as GitHub lists them; returns
    how many Applications it refreshed."""
    status, answer = testing_apps.github_push(base, repo_url, sha, changed=[changed], secret=secret)
    if status != 202 or not answer.get("refreshed"):
        raise BenchError(f"webhook answered {status} {answer}; expected 202 refreshing apps")
    return int(answer["refreshed"])


def deployment_image(kube: KubeClient, namespace: str, i: int) -> str | None:
    live = kube.get("apps/v1", "Deployment", f"{app_name(i)}-web", namespace) or {}
    containers = ((live.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers")
    return str(containers[0].get("image")) if containers else None


_last_push: dict[str, float] = {}  # repository -> time.monotonic() of its latest timed push


@dataclass
class Push:
    live: float  # git push started -> the API server serves the new image
    drained: float  # ... -> every app the webhook refreshed is done
    refreshed: int
    requests: Counter[str] = field(default_factory=Counter)  # the controller's, by verb


def push_round(  # noqa: PLR0917 - one round's parts, named at the one call
    controller: Controller,
    bench_kube: KubeClient,
    namespace: str,
    repo: GitRepo,
    web: tuple[str, str],
    i: int,
    image: str,
) -> Push:
    """Commit a new image for app ``i`` (off the clock); then push, webhook, wait until live.
    A push comes at least a push window after the previous one to the same repository, as a
    person's pushes do: one inside the window joins the run at its end by design (the
    controller's flood bound), which measures the window, not the pipeline."""
    wait(lambda: idle(controller), 120, "the controller to settle before a push", 0.05)
    quiet = _last_push.get(repo.name, 0.0) + PUSH_WINDOW - time.monotonic()
    if quiet > 0:
        time.sleep(quiet)
    path = f"apps/{app_name(i)}/deploy.yaml"
    sha = repo.commit({path: app_files(i, image)[path]}, f"{app_name(i)}: {image}")
    counting = controller.kube if isinstance(controller.kube, CountingClient) else None
    before = counting.snapshot()[0] if counting else Counter()
    started = time.perf_counter()
    _last_push[repo.name] = time.monotonic()
    repo.push()
    refreshed = github_push(web[0], web[1], repo.http_url(), sha, path)
    wait(lambda: deployment_image(bench_kube, namespace, i) == image, 120, f"{image} live", 0.02)
    live = time.perf_counter() - started
    wait(lambda: idle(controller), 300, "every refreshed app", 0.02)
    drained = time.perf_counter() - started
    after = counting.snapshot()[0] if counting else Counter()
    return Push(live, drained, refreshed, after - before)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def push_rows(size: int, monorepo: Sequence[Push], solo: Sequence[Push]) -> list[Row]:
    rows = []
    for name, pushes in (("shared repo", monorepo), ("own repo", solo)):
        live = [p.live for p in pushes]
        rows.append(
            Row(
                f"push-to-live p50, 1 of N apps, {name}",
                size,
                "s",
                percentile(live, 50),
                "goal",
                GOAL_PUSH_P50,
                len(pushes),
                samples={"gitsync": live, "drained": [p.drained for p in pushes]},
                note=f"p95 {percentile(live, 95):.3f} s (goal {GOAL_PUSH_P95:g} s); the webhook "
                f"refreshed {pushes[0].refreshed} apps; all of them done after "
                f"{median([p.drained for p in pushes]):.2f} s (median); controller requests "
                f"per push {json.dumps(dict(sorted(pushes[-1].requests.items())))}",
            )
        )
    return rows


def push_to_live(  # noqa: PLR0917 - the stage's parts, named at the one call
    controller: Controller,
    bench_kube: KubeClient,
    server: GitServer,
    namespace: str,
    monorepo: GitRepo,
    size: int,
    pushes: tuple[int, int],
    rng: random.Random,
) -> list[Row]:
    """Scenario 4 at ``size`` apps: pushes alternate between the shared repository (one app's
    Deployment image; the webhook refreshes every app following the repository) and an extra
    app with a repository of its own; ``pushes`` = how many to each. The webhook goes through
    the controller's real Flask app behind waitress (``create_app``, as ``gitsync serve`` builds
    it), signed like GitHub's."""
    solo = server.create_repo("solo", files=dict(app_files(SOLO)))
    bench_kube.apply(application(SOLO, namespace, solo.http_url()), field_manager="gitsync-bench")
    wait(lambda: synced(controller, [(namespace, app_name(SOLO))]), 120, "the solo app", 0.1)
    secret = secrets.token_hex(16)
    app = create_app(
        controller, metrics_exposition=lambda: b"", webhook_secrets=lambda provider: [secret]
    )
    shared: list[Push] = []
    own: list[Push] = []
    with waitress_server(app) as base:
        for r in range(max(pushes)):
            image = f"nginx:1.25.{r + 1}"
            rounds = [(monorepo, rng.randrange(size), shared), (solo, SOLO, own)]
            rounds = [x for x, n in zip(rounds, pushes, strict=True) if r < n]
            for repo, i, out in rounds if r % 2 == 0 else rounds[::-1]:
                out.append(
                    push_round(controller, bench_kube, namespace, repo, (base, secret), i, image)
                )
                print(
                    f"    push {r + 1}: {'own' if out is own else 'shared'} repo "
                    f"{out[-1].live:.3f} s (all {out[-1].refreshed} done {out[-1].drained:.2f} s)",
                    flush=True,
                )
    return push_rows(size, shared, own)


# -- the profile ---------------------------------------------------------------------------------


def profile_refresh(controller: Controller, keys: Sequence[Any], out: Path) -> float:
    """One no-change refresh of every app under pyinstrument, written to ``out`` as text.

    pyinstrument samples only the thread it runs on, so the reconciles run here, one after the
    other, on this thread - the same ``Controller._reconcile`` a worker runs for an interval
    refresh (with the live state marked changed, as ``Controller.refresh`` does) - while the
    idle workers wait. Returns the serial wall time."""
    from pyinstrument import Profiler  # only with --profile: a dev extra

    wait(lambda: idle(controller), 120, "the controller to settle before the profile", 0.05)
    profiler = Profiler(interval=0.001)
    started = time.perf_counter()
    profiler.start()
    for key in keys:
        controller.reconciler.mark_live_change(key)
        controller._reconcile(key, {"interval"})
    profiler.stop()
    seconds = time.perf_counter() - started
    out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    return seconds


# -- sharded refresh in separate processes (scenario 9) ------------------------------------------


class ShardWorker:
    """``python -m bench.shard_worker`` as a child process, one JSON answer per command."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self.last_status: dict[str, Any] = {}
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.shard_worker", *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=ROOT,
            )

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise BenchError(f"a shard worker exited ({self.proc.wait()}):\n{tail}")
        doc: dict[str, Any] = json.loads(line)
        if "error" in doc:
            raise BenchError(f"shard worker: {doc['error']}")
        return doc

    def ask(self, command: str) -> dict[str, Any]:
        self.send(command)
        return self.answer()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send("quit")
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Sharded:
    seconds: float  # the slowest process's refresh
    cpu: list[float]  # per process
    rss: list[float]  # per process, MiB
    apps: list[int]
    writes: int  # to apps and their objects; the Leases' renewals are apart
    lease_writes: int
    gets: float


def settled(workers: Sequence[ShardWorker], shards: int, size: int) -> bool:
    """Every shard held, each process its fair share, all apps (at least ``size``: the push
    scenario's extra app may be there too) held, queues idle."""
    docs = [w.ask("status") for w in workers]
    fair = shards // len(workers)
    for worker, doc in zip(workers, docs, strict=True):
        worker.last_status = doc
    return (
        all(len(d["held"]) == fair and d["idle"] for d in docs)
        and sum(d["apps"] for d in docs) >= size
    )


def settled_twice(workers: Sequence[ShardWorker], shards: int, size: int) -> bool:
    """Settled at two looks a second apart: a shard just gained queues its apps only after its
    Lease is held, so a single idle look could come before that."""
    if not settled(workers, shards, size):
        return False
    time.sleep(1)
    return settled(workers, shards, size)


def sharded_refresh(  # noqa: PLR0917 - the stage's parts, named at the one call
    kubeconfig: Path,
    bench_kube: KubeClient,
    namespace: str,
    size: int,
    processes: int,
    runs: int,
    workdir: Path,
) -> list[Sharded]:
    """``runs`` no-change refreshes of all ``size`` apps by ``processes`` shard processes (2
    shards in all), each refreshing the apps of the shards it holds, all at once."""
    shards = 2
    results = []
    with contextlib.ExitStack() as stack:
        lease_ns = stack.enter_context(temporary_namespace(bench_kube, "bench-shards"))
        workers = []
        for w in range(processes):
            worker = ShardWorker(
                [
                    f"--kubeconfig={kubeconfig}",
                    f"--namespace={namespace}",
                    f"--controller-namespace={lease_ns}",
                    f"--shards={shards}",
                    f"--identity=bench-shard-{w}",
                    f"--cache-dir={workdir / f'shard-{processes}-{w}'}",
                ],
                workdir / f"shard-{processes}-{w}.log",
            )
            stack.callback(worker.stop)
            workers.append(worker)
        # settled twice in a row, a second apart: a shard just gained queues its apps after
        # the Lease is held, so one idle look could come before that
        began = time.monotonic()
        try:
            wait(lambda: settled_twice(workers, shards, size), 300 + size / 5, "", 1.0)
        except BenchError as exc:
            seen = [w.last_status for w in workers]
            raise BenchError(f"{processes} shard processes did not settle: {seen}") from exc
        print(
            f"    {processes} shard process(es) holding {size} apps, settled in "
            f"{time.monotonic() - began:.0f} s",
            flush=True,
        )
        for _ in range(runs):
            for worker in workers:
                worker.send("refresh")
            docs = [worker.answer() for worker in workers]
            requests: Counter[str] = Counter()
            writes = leases = 0
            for d in docs:
                requests.update(d["requests"])
                writes += sum(d["written"].values())
                leases += d["lease_writes"]
            results.append(
                Sharded(
                    max(d["seconds"] for d in docs),
                    [d["cpu"] for d in docs],
                    [d["rss_mib"] for d in docs],
                    [d["apps"] for d in docs],
                    writes,
                    leases,
                    requests.get("GET", 0) + requests.get("PATCH (dry run)", 0),
                )
            )
    return results


def shard_rows(size: int, by_processes: dict[int, list[Sharded]]) -> list[Row]:
    rows = []
    one = median([s.seconds for s in by_processes[1]]) if 1 in by_processes else None
    for processes, samples in sorted(by_processes.items()):
        seconds = [s.seconds for s in samples]
        last = samples[-1]
        label = f"{processes} process{'es' if processes > 1 else ''}"
        n = processes
        rows += [
            Row(
                f"sharded refresh, no change, {label}",
                size,
                "s",
                median(seconds),
                "1 process" if processes > 1 and one is not None else "goal",
                one if processes > 1 and one is not None else GOAL_SECONDS,
                len(samples),
                samples={"gitsync": seconds},
                note=f"2 shards; apps per process {last.apps}; GETs + dry runs {last.gets:g}; "
                "wall time is the slowest process's",
            ),
            Row(
                f"sharded refresh: CPU s per process, {label}",
                size,
                "s",
                max(median([s.cpu[p] for s in samples]) for p in range(processes)),
                "",
                None,
                len(samples),
                note="per process: "
                + " / ".join(f"{median([s.cpu[p] for s in samples]):.2f}" for p in range(n)),
            ),
            Row(
                f"sharded refresh: RSS per process, {label}",
                size,
                "MiB",
                max(last.rss),
                "goal (1,000 apps)",
                GOAL_RSS_MIB,
                1,
                note="per process: "
                + " / ".join(f"{r:.0f}" for r in last.rss)
                + " (controller-only: no Git server, no bench in the process)",
            ),
            Row(
                f"sharded refresh: writes, {label}",
                size,
                "writes",
                sum(s.writes for s in samples) / len(samples),
                "",
                None,
                len(samples),
                note=f"Lease renewals in the window, apart: {last.lease_writes}",
            ),
        ]
    return rows


# -- the run ------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_controller(kube: CountingClient, namespace: str, workdir: Path) -> Iterator[Controller]:
    controller = Controller(
        kube,
        ControllerConfig(
            cache_dir=workdir / "controller-cache", namespaces=[namespace], impersonate=False
        ),
    )
    controller.start()
    try:
        yield controller
    finally:
        with contextlib.suppress(BenchError):  # let the last self-heals finish first
            wait(lambda: idle(controller), 30, "the controller to settle", 0.1)
        controller.stop()


def create_apps(
    kube: KubeClient, namespace: str, repo_url: str, indexes: Sequence[int], workers: int
) -> None:
    def create(i: int) -> None:
        kube.apply(application(i, namespace, repo_url), field_manager="gitsync-bench")

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, indexes))


def scale_rows(
    kubeconfig: Path,
    sizes: Sequence[int],
    runs: int,
    *,
    drift_at: int,
    drift_edits: int,
    workdir: Path,
    workers: int = 8,
    push_at: int = -1,
    pushes: tuple[int, int] = (0, 0),
    shard_at: dict[int, tuple[int, ...]] | None = None,
    shard_runs: int = 3,
    profile: Path | None = None,
    on_rows: Callable[[list[Row]], None] | None = None,
) -> list[Row]:
    """Every figure of scenarios 2, 3 and 8, stage by stage (``sizes`` ascending)."""
    rows: list[Row] = []
    rng = random.Random(9)  # noqa: S311 - which objects to edit, not a secret
    bench_kube = KubeClient.from_kubeconfig(str(kubeconfig), user_agent="gitsync-bench")
    kube = CountingClient.from_kubeconfig(str(kubeconfig))
    if not isinstance(kube, CountingClient):  # from_kubeconfig builds cls
        raise BenchError("CountingClient.from_kubeconfig did not build a CountingClient")
    ensure_crd(bench_kube, yaml.safe_load(CRD.read_text()))
    largest = max(sizes)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(GitServer(ssh=False))
        files: dict[str, str | bytes | None] = {}
        for i in range(largest):
            files.update(app_files(i))
        repo = server.create_repo("scale", files=files)
        del files  # not the controller's memory: keep it out of the RSS figure
        repo_url = repo.http_url()  # anonymous smart HTTP
        namespace = stack.enter_context(temporary_namespace(bench_kube, "bench-scale"))
        controller = stack.enter_context(running_controller(kube, namespace, workdir))
        created = 0
        growth: list[tuple[int, float, float]] = []
        for size in sorted(sizes):
            began = time.monotonic()
            create_apps(bench_kube, namespace, repo_url, range(created, size), workers)
            created = size
            keys = [(namespace, app_name(i)) for i in range(size)]
            all_synced = functools.partial(synced, controller, keys)
            wait(all_synced, 120 + size, f"{size} apps to sync", 0.5)
            wait(lambda: idle(controller), 120, "the controller to settle", 0.1)
            setup = time.monotonic() - began
            print(f"  {size} apps synced in {setup:.0f} s; refreshing ...", flush=True)
            samples: list[Refresh] = []
            refs: list[float] = []
            for run in range(runs):
                if run % 2:
                    refs.append(kubectl_get(kubeconfig, namespace))
                samples.append(full_refresh(controller, kube, keys))
                if not run % 2:
                    refs.append(kubectl_get(kubeconfig, namespace))
            rss, peak = rss_mib()
            stage = refresh_rows(size, samples, refs, setup=setup, rss=rss, peak=peak)
            growth.append((size, median([s.seconds for s in samples]), rss))
            if size == drift_at:
                picks = rng.sample(range(size), min(size, drift_edits * runs))
                edits = min(drift_edits, size)
                batches = [picks[r * edits : (r + 1) * edits] for r in range(len(picks) // edits)]
                results = [drift(controller, bench_kube, namespace, b, rng) for b in batches]
                stage += drift_rows(size, edits, results)
            if profile is not None and size == largest:
                serial = profile_refresh(controller, keys, profile)
                print(f"  serial refresh of {size} apps under pyinstrument: {serial:.1f} s")
                stage.append(
                    Row(
                        "refresh all apps, serial, under pyinstrument",
                        size,
                        "s",
                        serial,
                        "",
                        None,
                        1,
                        note=f"one thread, profiler on; report in {profile}",
                    )
                )
            if size == push_at:
                print(f"  push-to-live among {size} apps, {pushes} pushes (shared, own repo) ...")
                stage += push_to_live(
                    controller, bench_kube, server, namespace, repo, size, pushes, rng
                )
            by_processes = {
                processes: sharded_refresh(
                    kubeconfig, bench_kube, namespace, size, processes, shard_runs, workdir
                )
                for processes in (shard_at or {}).get(size, ())
            }
            if by_processes:
                stage += shard_rows(size, by_processes)
            rows += stage
            if on_rows is not None:
                on_rows(stage)
        rows += growth_rows(growth)
    return rows


def refresh_rows(
    size: int,
    samples: Sequence[Refresh],
    refs: Sequence[float],
    *,
    setup: float,
    rss: float,
    peak: float,
) -> list[Row]:
    runs = len(samples)
    total: Counter[str] = Counter()
    written: Counter[str] = Counter()
    for s in samples:
        total.update(s.requests)
        written.update(s.written)
    per_run = {verb: n / runs for verb, n in sorted(total.items())}
    writes = sum(n for verb, n in per_run.items() if verb in WRITES)
    seconds = [s.seconds for s in samples]
    return [
        Row(
            "refresh all apps, no change",
            size,
            "s",
            median(seconds),
            "`kubectl get -o json` of the objects",
            median(refs),
            runs,
            samples={"gitsync": seconds, "reference": list(refs)},
            note=f"goal {GOAL_SECONDS:g} s; {size * OBJECTS_PER_APP} objects; requests per "
            f"refresh {json.dumps(per_run) if per_run else 'none'}",
        ),
        Row(
            "refresh all apps: CPU seconds (controller)",
            size,
            "s",
            median([s.cpu for s in samples]),
            "",
            None,
            runs,
            samples={"gitsync": [s.cpu for s in samples]},
            note=f"git child processes (ls-remote): {median([s.git_cpu for s in samples]):.2f} s",
        ),
        Row(
            "refresh all apps: writes",
            size,
            "writes",
            writes,
            "",
            None,
            runs,
            note=", ".join(f"{path} x{n}" for path, n in written.most_common(3)),
        ),
        Row(
            "refresh all apps: GETs + dry runs",
            size,
            "requests",
            per_run.get("GET", 0) + per_run.get("PATCH (dry run)", 0),
            "",
            None,
            runs,
        ),
        Row(
            "controller RSS after refresh",
            size,
            "MiB",
            rss,
            "goal",
            GOAL_RSS_MIB,
            1,
            note=f"peak {peak:.0f} MiB (whole bench process)",
        ),
        Row("create + first sync of the new apps (setup)", size, "s", setup, "", None, 1),
    ]


def drift_rows(size: int, edits: int, results: Sequence[Drift]) -> list[Row]:
    reported = [d.reported for d in results]
    corrected = [d.corrected for d in results]
    note = f"{edits} ConfigMaps of distinct apps edited at once, among {size} apps"
    return [
        Row(
            "drift: all edits reported (self-heal started)",
            size,
            "s",
            median(reported),
            "goal",
            GOAL_SECONDS,
            len(results),
            samples={"gitsync": reported},
            note=note,
        ),
        Row(
            "drift: all edits corrected",
            size,
            "s",
            median(corrected),
            "goal",
            GOAL_SECONDS,
            len(results),
            samples={"gitsync": corrected},
        ),
    ]


def growth_rows(growth: Sequence[tuple[int, float, float]]) -> list[Row]:
    """Per-app cost at each size against the smallest: 1.0 is linear, above is superlinear."""
    if len(growth) < 2:
        return []
    base_n, base_s, base_rss = growth[0]
    rows = []
    for n, seconds, rss in growth[1:]:
        rows.append(
            Row(
                "growth: refresh time per app",
                n,
                "ms",
                seconds / n * 1000,
                f"at N={base_n}",
                base_s / base_n * 1000,
                1,
                note="ratio 1 = linear",
            )
        )
        rows.append(
            Row(
                "growth: RSS above the smallest stage, per app",
                n,
                "KiB",
                (rss - base_rss) * 1024 / (n - base_n),
                "",
                None,
                1,
                note=f"constant per app = linear; RSS {base_rss:.0f} MiB at N={base_n}",
            )
        )
    return rows
