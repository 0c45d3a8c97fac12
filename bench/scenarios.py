"""The suite's scenarios: each times gitsync and its reference in the same run, alternating.

Every scenario returns ``Row`` values - one line of the table ``python -m bench`` prints - holding
the median of its runs for gitsync and for the reference (what a user would do without gitsync,
or the floor nothing can beat), and the raw samples for the JSON file. Order alternates between
runs (gitsync first on even runs, the reference first on odd ones) so that neither side always
meets a warmer API server.

* cold apply - ``Syncer.sync`` vs ``kubectl apply --server-side -f DIR`` vs a minimal concurrent
  SSA client (``KubeClient.apply`` on a thread pool: the API server's own limit), each into a
  fresh namespace;
* no-change re-sync - the same app synced again, counting API writes; dry-run PATCHes (the
  compare step's server-side-apply dry runs) are counted apart from real writes by looking at the
  request's ``dryRun`` query (``CountingKube``);
* render - a plain directory, the example Kustomize overlay and Helm chart, and a render-cache hit;
* diff - ``diff_resource`` over object pairs, half synced, half with one changed field.

Nothing here asserts a goal: figures are printed, the reader judges (STYLE.md).
"""

from __future__ import annotations

import contextlib
import copy
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import yaml

from gitsync.application import Application, parse_application
from gitsync.diff import diff_resource
from gitsync.kube import ApiError, KubeClient
from gitsync.model import ResourceKey, SyncStatus
from gitsync.render import RenderCache, RenderedManifest, RenderRequest, render
from gitsync.render.kustomize import kubectl_path
from gitsync.sync import Syncer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_REPO = ROOT / "example-repo"
KUSTOMIZE_OVERLAY = "apps/podinfo-kustomize/overlays/staging"
HELM_CHART = "apps/helm-chart"
FIELD_MANAGER = "gitsync-bench-raw"
KUBECTL_MANAGER = "kubectl-bench"


class BenchError(RuntimeError):
    """The bench could not measure what it says (an apply failed, a render came out empty)."""


@dataclass
class Row:
    """One line of the table: medians over ``runs``; ``ratio`` is gitsync / reference."""

    scenario: str
    n: int
    unit: str
    gitsync: float
    reference_name: str
    reference: float | None
    runs: int
    lower_is_better: bool = True
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference is None or self.reference == 0:
            return None
        return self.gitsync / self.reference

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "n": self.n,
            "unit": self.unit,
            "gitsync": self.gitsync,
            "reference_name": self.reference_name,
            "reference": self.reference,
            "ratio": self.ratio,
            "runs": self.runs,
            "lower_is_better": self.lower_is_better,
            "samples": self.samples,
            "note": self.note,
        }


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def alternate(runs: int, sides: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run every side once per run, rotating which goes first; each returns its own figure."""
    names = list(sides)
    out: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(sides[name]())
    return out


# -- the app under test ----------------------------------------------------------------------


def manifest_objects(n: int) -> list[dict[str, Any]]:
    """``n`` objects, a third each ConfigMaps, Services (headless) and Deployments (``replicas:
    0``, so the controller-manager creates no Pods that would load the API server while timing)."""
    objs: list[dict[str, Any]] = []
    for i in range(n):
        name = f"obj-{i:05d}"
        labels = {"app.kubernetes.io/name": name, "bench": "cold-apply"}
        kind = i % 3
        if kind == 0:
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "labels": labels},
                    "data": {"index": str(i), "payload": "x" * 200},
                }
            )
        elif kind == 1:
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {
                        # headless: the test control plane's Service CIDR holds few IPs
                        "clusterIP": "None",
                        "selector": {"app.kubernetes.io/name": name},
                        "ports": [
                            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
                        ],
                    },
                }
            )
        else:
            objs.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {
                        "replicas": 0,
                        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                        "template": {
                            "metadata": {"labels": {"app.kubernetes.io/name": name}},
                            "spec": {
                                "containers": [
                                    {
                                        "name": "web",
                                        "image": "nginx:1.25",
                                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                        "env": [{"name": "INDEX", "value": str(i)}],
                                    }
                                ]
                            },
                        },
                    },
                }
            )
    return objs


def write_manifests(objs: Sequence[dict[str, Any]], directory: Path) -> Path:
    """One file per object, as a plain-directory app holds them."""
    directory.mkdir(parents=True, exist_ok=True)
    for obj in objs:
        name = f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        (directory / name).write_text(yaml.safe_dump(obj, sort_keys=False))
    return directory


def bench_application(namespace: str) -> Application:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": f"bench-{secrets.token_hex(3)}", "namespace": namespace},
            "spec": {
                "source": {"repoURL": "file:///unused", "path": "."},
                "destination": {"namespace": namespace},
                "syncPolicy": {"automated": {"prune": True}},
            },
        }
    )


class CountingKube(KubeClient):
    """A ``KubeClient`` that also counts writes by whether they were dry runs.

    ``KubeClient.requests`` records a dry-run PATCH as a PATCH (it only sees the verb), so a
    no-change compare's dry runs would look like writes; this looks at the query instead."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.real_writes = 0
        self.dry_run_writes = 0
        self.reads = 0

    def request(
        self, method: str, path: str, *, query: dict[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            if query and "dryRun" in query:
                self.dry_run_writes += 1
            else:
                self.real_writes += 1
        elif method == "GET":
            self.reads += 1
        return super().request(method, path, query=query, **kwargs)

    def reset_counts(self) -> None:
        self.real_writes = self.dry_run_writes = self.reads = 0


@contextlib.contextmanager
def fresh_namespace(kube: KubeClient, prefix: str) -> Iterator[str]:
    """A new namespace, deleted afterwards - and waited for (off the clock), so the namespace
    controller's clean-up does not load the API server during the next timing."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(ApiError):
            kube.delete("v1", "Namespace", name)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if kube.get("v1", "Namespace", name) is None:
                    break
            except ApiError:
                break
            time.sleep(0.25)


def kubectl_apply(kubeconfig: Path, directory: Path, namespace: str) -> None:
    result = subprocess.run(
        [
            kubectl_path(),
            f"--kubeconfig={kubeconfig}",
            "apply",
            "--server-side",
            "--force-conflicts",
            f"--field-manager={KUBECTL_MANAGER}",
            f"--namespace={namespace}",
            "-f",
            str(directory),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise BenchError(f"kubectl apply failed: {result.stderr.strip()[-2000:]}")


def raw_apply(
    kube: KubeClient, objs: Sequence[dict[str, Any]], namespace: str, workers: int
) -> None:
    """The API server's limit: the same SSA PATCHes, concurrently, nothing else."""

    def one(obj: dict[str, Any]) -> object:
        body = copy.deepcopy(obj)  # outside the pool would be fairer, but it is ~µs per object
        body["metadata"]["namespace"] = namespace
        return kube.apply(body, field_manager=FIELD_MANAGER)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, objs))


def gitsync_sync(syncer: Syncer, app: Application, manifests: Sequence[RenderedManifest]) -> None:
    result = syncer.sync(app, manifests, revision="bench")
    if not result.succeeded:
        failed = [r for r in result.results if r.message and r.code.name == "SYNC_FAILED"]
        raise BenchError(f"gitsync sync failed: {result.message} {failed[:3]}")


# -- 1 and 2: cold apply, no-change re-sync -----------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    workers: int


def cold_apply_and_resync(cluster: Cluster, n: int, runs: int, workdir: Path) -> list[Row]:
    objs = manifest_objects(n)
    directory = write_manifests(objs, workdir / f"cold-{n}")
    manifests = render(RenderRequest(repo_root=directory, path="."))
    if len(manifests) != n:
        raise BenchError(f"rendered {len(manifests)} objects, expected {n}")
    kube = CountingKube.from_kubeconfig(str(cluster.kubeconfig), user_agent="gitsync-bench")
    assert isinstance(kube, CountingKube)
    raw_kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig), user_agent="bench-raw-ssa")
    resync: dict[str, list[float]] = {
        "first_s": [],
        "steady_s": [],
        "kubectl_s": [],
        "first_writes": [],
        "first_dry_runs": [],
        "steady_writes": [],
        "steady_dry_runs": [],
        "steady_gets": [],
    }

    def resync_once(syncer: Syncer, app: Application, phase: str) -> None:
        kube.reset_counts()
        # A fresh copy per sync: the syncer annotates the objects it prepares.
        resync[f"{phase}_s"].append(
            timed(lambda: gitsync_sync(syncer, app, copy.deepcopy(manifests)))
        )
        resync[f"{phase}_writes"].append(kube.real_writes)
        resync[f"{phase}_dry_runs"].append(kube.dry_run_writes)
        if phase == "steady":
            resync["steady_gets"].append(kube.reads)

    def gitsync_side() -> float:
        with fresh_namespace(kube, "bench-gitsync") as namespace:
            app = bench_application(namespace)
            syncer = Syncer(kube, workers=cluster.workers)
            fresh = copy.deepcopy(manifests)
            took = timed(lambda: gitsync_sync(syncer, app, fresh))
            # 2. no change. The first re-sync after the apply compares every object by a
            # dry run (the syncer's memo only knows objects that existed at compare time);
            # from the second on the memo is warm, as in a controller's steady state.
            resync_once(syncer, app, "first")
            resync_once(syncer, app, "steady")
            return took

    def kubectl_side() -> float:
        with fresh_namespace(kube, "bench-kubectl") as namespace:
            took = timed(lambda: kubectl_apply(cluster.kubeconfig, directory, namespace))
            resync["kubectl_s"].append(
                timed(lambda: kubectl_apply(cluster.kubeconfig, directory, namespace))
            )
            return took

    def raw_side() -> float:
        with fresh_namespace(kube, "bench-raw") as namespace:
            return timed(lambda: raw_apply(raw_kube, objs, namespace, cluster.workers))

    samples = alternate(runs, {"gitsync": gitsync_side, "kubectl": kubectl_side, "raw": raw_side})
    g, k, r = (median(samples[s]) for s in ("gitsync", "kubectl", "raw"))
    rows = [
        Row("cold apply", n, "s", g, "kubectl apply --server-side", k, runs, samples=samples),
        Row(
            "cold apply",
            n,
            "s",
            g,
            f"raw SSA, {cluster.workers} threads",
            r,
            runs,
            samples=samples,
        ),
        Row(
            "no-change re-sync, first after apply",
            n,
            "s",
            median(resync["first_s"]),
            "kubectl apply --server-side again",
            median(resync["kubectl_s"]),
            runs,
            samples={"gitsync": resync["first_s"], "kubectl": resync["kubectl_s"]},
            note=f"{median(resync['first_writes']):g} real writes, "
            f"{median(resync['first_dry_runs']):g} dry-run PATCHes",
        ),
        Row(
            "no-change re-sync, steady (memo warm)",
            n,
            "s",
            median(resync["steady_s"]),
            "kubectl apply --server-side again",
            median(resync["kubectl_s"]),
            runs,
            samples={"gitsync": resync["steady_s"], "kubectl": resync["kubectl_s"]},
            note=f"{median(resync['steady_gets']):g} GET requests (a LIST per kind the app has "
            "many of, a GET for each other object, the inventory)",
        ),
        Row(
            "no-change re-sync: real writes (steady)",
            n,
            "writes",
            median(resync["steady_writes"]),
            "",
            None,
            runs,
            samples={"gitsync": resync["steady_writes"], "first": resync["first_writes"]},
        ),
        Row(
            "no-change re-sync: dry-run PATCHes (steady)",
            n,
            "requests",
            median(resync["steady_dry_runs"]),
            "",
            None,
            runs,
            samples={"gitsync": resync["steady_dry_runs"], "first": resync["first_dry_runs"]},
        ),
    ]
    return rows


# -- 3: render -----------------------------------------------------------------------------------


def read_and_parse(directory: Path) -> int:
    count = 0
    for path in sorted(directory.iterdir()):
        if path.suffix in (".yaml", ".yml"):
            count += sum(1 for doc in yaml.safe_load_all(path.read_text()) if doc)
    return count


def kubectl_kustomize(directory: Path) -> int:
    result = subprocess.run(
        [kubectl_path(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return sum(1 for doc in yaml.safe_load_all(result.stdout) if doc)


def helm_direct(chart_dir: Path) -> int:
    """The minimal use of helm_python: load, render with the chart's values, parse."""
    with helm_python.Chart.load(str(chart_dir)) as chart:
        templates = chart.render({}, name="helm-chart", namespace="default", is_install=True)
    count = 0
    for name, text in templates.items():
        if name.endswith(".yaml"):
            count += sum(1 for doc in yaml.safe_load_all(text) if doc)
    return count


def render_rows(files: int, runs: int, workdir: Path) -> list[Row]:
    rows = []
    plain = write_manifests(manifest_objects(files), workdir / f"render-{files}")
    req = RenderRequest(repo_root=plain, path=".")

    def check(count: int, expected: int, what: str) -> None:
        if count != expected:
            raise BenchError(f"{what}: {count} objects, expected {expected}")

    samples = alternate(
        runs,
        {
            "gitsync": lambda: timed(lambda: check(len(render(req)), files, "render")),
            "reference": lambda: timed(lambda: check(read_and_parse(plain), files, "safe_load")),
        },
    )
    rows.append(
        Row(
            "render: plain directory",
            files,
            "s",
            median(samples["gitsync"]),
            "open + yaml.safe_load_all",
            median(samples["reference"]),
            runs,
            samples=samples,
        )
    )

    kreq = RenderRequest(repo_root=EXAMPLE_REPO, path=KUSTOMIZE_OVERLAY)
    kobjects = len(render(kreq))
    samples = alternate(
        runs,
        {
            "gitsync": lambda: timed(lambda: render(kreq)),
            "reference": lambda: timed(lambda: kubectl_kustomize(EXAMPLE_REPO / KUSTOMIZE_OVERLAY)),
        },
    )
    rows.append(
        Row(
            "render: example Kustomize overlay",
            kobjects,
            "s",
            median(samples["gitsync"]),
            "kubectl kustomize",
            median(samples["reference"]),
            runs,
            samples=samples,
        )
    )

    hreq = RenderRequest(repo_root=EXAMPLE_REPO, path=HELM_CHART)
    hobjects = len(render(hreq))
    samples = alternate(
        runs,
        {
            "gitsync": lambda: timed(lambda: render(hreq)),
            "reference": lambda: timed(lambda: helm_direct(EXAMPLE_REPO / HELM_CHART)),
        },
    )
    rows.append(
        Row(
            "render: example Helm chart",
            hobjects,
            "s",
            median(samples["gitsync"]),
            "helm_python in-process",
            median(samples["reference"]),
            runs,
            samples=samples,
            note="gitsync renders in a child process (deadline, output cap); the reference "
            "does not",
        )
    )

    # Cache hit: per call, an unchanged commit - the plain directory (the biggest app here) and
    # a 10-object app, the size of every app in the many-app scenarios.
    small = write_manifests(manifest_objects(10), workdir / "render-10")
    rows.append(cache_hit_row(req, files, runs))
    rows.append(cache_hit_row(RenderRequest(repo_root=small, path="."), 10, runs))
    return rows


def cache_hit_row(req: RenderRequest, files: int, runs: int) -> Row:
    """The cost of a render-cache hit for ``req`` (``files`` manifests), per call."""
    cache = RenderCache()
    cache.get_or_render("c0ffee", req)
    calls = max(3, min(200, 20_000 // max(files, 1)))
    key_only: dict[Any, list[RenderedManifest]] = {RenderCache.key("c0ffee", req): []}

    def hit() -> float:
        return timed(lambda: [cache.get_or_render("c0ffee", req) for _ in range(calls)]) / calls

    def lookup() -> float:
        return (
            timed(lambda: [key_only.get(RenderCache.key("c0ffee", req)) for _ in range(calls)])
            / calls
        )

    samples = alternate(runs, {"gitsync": hit, "reference": lookup})
    micro = {k: [v * 1e6 for v in vs] for k, vs in samples.items()}
    return Row(
        "render cache hit, per call",
        files,
        "µs",
        median(micro["gitsync"]),
        "dict lookup of the cache key",
        median(micro["reference"]),
        runs,
        samples=micro,
        note=f"{calls} calls per run; the hit returns its own copy of {files} manifests "
        "(goal < 1 ms per app)",
    )


# -- 4: diff ---------------------------------------------------------------------------------------


def _live_version(obj: dict[str, Any], i: int) -> dict[str, Any]:
    """``obj`` as the API server returns it: defaults, metadata, managedFields, status."""
    live = copy.deepcopy(obj)
    meta = live["metadata"]
    meta.update(
        {
            "namespace": "bench",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(1000 + i),
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [
                {
                    "manager": "gitsync",
                    "operation": "Apply",
                    "apiVersion": live["apiVersion"],
                    "time": "2026-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}},
                }
            ],
        }
    )
    if live["kind"] == "Deployment":
        spec = live["spec"]
        spec.update({"progressDeadlineSeconds": 600, "revisionHistoryLimit": 10})
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        }
        container = spec["template"]["spec"]["containers"][0]
        container.update({"imagePullPolicy": "IfNotPresent", "resources": {}})
        live["status"] = {"observedGeneration": 1, "replicas": 0}
    elif live["kind"] == "Service":
        live["spec"].update({"type": "ClusterIP", "sessionAffinity": "None"})
        live["status"] = {"loadBalancer": {}}
    return live


def diff_pairs(n: int) -> list[tuple[ResourceKey, dict[str, Any], dict[str, Any], bool]]:
    """``n`` (key, desired as a dry run returns it, live, changed) - every other one changed."""
    pairs = []
    for i, obj in enumerate(manifest_objects(n)):
        live = _live_version(obj, i)
        desired = copy.deepcopy(live)
        changed = i % 2 == 1
        if changed:
            meta = desired["metadata"]
            meta["resourceVersion"] = str(2000 + i)
            meta["labels"] = {**meta["labels"], "bench": "changed"}
        pairs.append((ResourceKey.of(live), desired, live, changed))
    return pairs


def diff_rows(n: int, runs: int) -> list[Row]:
    pairs = diff_pairs(n)

    def gitsync() -> float:
        def go() -> None:
            for key, desired, live, changed in pairs:
                status = diff_resource(key, desired, live, mask_scope="bench/diff").status
                if (status == SyncStatus.OUT_OF_SYNC) != changed:
                    raise BenchError(f"diff of {key}: {status}, expected changed={changed}")

        return n / timed(go)

    def naive() -> float:
        return n / timed(
            lambda: [
                d["metadata"]["labels"] == lv["metadata"]["labels"]
                and d.get("spec") == lv.get("spec")
                for _, d, lv, _c in pairs
            ]
        )

    samples = alternate(runs, {"gitsync": gitsync, "reference": naive})
    return [
        Row(
            "diff: diff_resource",
            n,
            "objects/s",
            median(samples["gitsync"]),
            "dict == on labels and spec (floor)",
            median(samples["reference"]),
            runs,
            lower_is_better=False,
            samples=samples,
            note="half synced, half with one changed label; includes normalization",
        )
    ]
