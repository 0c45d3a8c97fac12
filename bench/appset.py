"""One ApplicationSet generating many Applications: creation time and steady-state cost.

Issue 18 asks what one generator producing 1,000 apps costs. Measured on the real
``Controller`` in this process (as ``bench.scale`` does, so its API writes can be counted and
its CPU read), against the test Git server over HTTP and the given API server:

* one Git repository holds ``apps/aNNNN/cm.yaml``, one small ConfigMap per app - the per-app
  work is kept small on purpose: the figures are about the set;
* one ApplicationSet with a ``list`` generator of N elements renders one automated Application
  per element, deploying ``apps/<name>`` into the set's namespace;
* timed from creating the set: until its ``status.applicationCount`` is N and every generated
  Application is in the controller's cache, then until every one is Synced and Healthy;
* after everything settled, a steady window: the controller's CPU seconds per minute
  (``time.process_time``), the set's own worker threads (``gitsync-appset-*``, read from
  ``/proc/self/task``) apart from the rest (the apps' refreshes, watches), the set passes run,
  and the writes to Applications by the set controller (its field manager's applies: must be 0).

A ``list`` generator has no ``requeueAfterSeconds`` (only git generators take one), so the set
is generated again every ``DEFAULT_REQUEUE_SECONDS`` and on every status change of its apps.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.scale import CountingClient, idle, running_controller, synced, wait
from bench.scenarios import BenchError, Row
from gitsync import kinds
from gitsync.appset.spec import DEFAULT_REQUEUE_SECONDS
from gitsync.controller.controller import Controller, ensure_crd
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from gitsync.model import AppKey
from tests.support.cluster import temporary_namespace

ROOT = Path(__file__).resolve().parents[1]
CRDS = [
    ROOT / "charts/gitsync/crds/applications.gitsync.dev.yaml",
    ROOT / "charts/gitsync/crds/applicationsets.gitsync.dev.yaml",
]
SET_NAME = "fleet"
SET_THREAD_PREFIX = "gitsync-appset-"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def app_name(i: int) -> str:
    return f"a{i:04d}"


def config_map(i: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{app_name(i)}-cm", "labels": {"bench": "appset"}},
            "data": {"value": app_name(i)},
        }
    )


def application_set(n: int, namespace: str, repo_url: str) -> dict[str, Any]:
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.APPLICATION_SET,
        "metadata": {"name": SET_NAME, "namespace": namespace},
        "spec": {
            "goTemplate": True,
            "generators": [{"list": {"elements": [{"name": app_name(i)} for i in range(n)]}}],
            "template": {
                "metadata": {"name": "{{ .name }}"},
                "spec": {
                    "source": {
                        "repoURL": repo_url,
                        "targetRevision": "main",
                        "path": "apps/{{ .name }}",
                    },
                    "destination": {"namespace": namespace},
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                },
            },
        },
    }


def set_threads_cpu() -> float:
    """CPU seconds (user + system) of the set controller's worker threads so far."""
    total = 0
    for t in threading.enumerate():
        if not t.name.startswith(SET_THREAD_PREFIX) or t.native_id is None:
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/self/task/{t.native_id}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state is field 3
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLOCK_TICKS


def set_status(controller: Controller, key: AppKey) -> dict[str, Any]:
    sets = controller.appsets.objects() if controller.appsets is not None else []
    found = [s for s in sets if (s["metadata"]["namespace"], s["metadata"]["name"]) == key]
    return (found[0].get("status") or {}) if found else {}


def generated(controller: Controller, keys: Sequence[AppKey]) -> bool:
    return all(controller.store.get(k) is not None for k in keys)


def set_writes(written: dict[str, int]) -> int:
    """Writes to Applications other than their status: the set controller's applies and
    deletes (the app controller writes only ``/status`` and finalizers it never touches in a
    steady window)."""
    return sum(
        n
        for call, n in written.items()
        if "/applications/" in call and not call.endswith("/status")
    )


def appset_rows(kubeconfig: Path, n: int, workdir: Path, steady_seconds: float) -> list[Row]:
    bench_kube = KubeClient.from_kubeconfig(str(kubeconfig), user_agent="gitsync-bench")
    kube = CountingClient.from_kubeconfig(str(kubeconfig))
    if not isinstance(kube, CountingClient):
        raise BenchError("CountingClient.from_kubeconfig did not build a CountingClient")
    for crd in CRDS:
        ensure_crd(bench_kube, yaml.safe_load(crd.read_text()))
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(GitServer(ssh=False))
        repo = server.create_repo(
            "appset", files={f"apps/{app_name(i)}/cm.yaml": config_map(i) for i in range(n)}
        )
        namespace = stack.enter_context(temporary_namespace(bench_kube, "bench-appset"))
        controller = stack.enter_context(running_controller(kube, namespace, workdir))
        if controller.appsets is None:
            raise BenchError("the controller runs no ApplicationSets (no CRD store)")
        passes = [0]
        reconcile = controller.appsets.reconcile

        def counted(key: AppKey, reasons: set[str]) -> None:
            try:
                reconcile(key, reasons)
            finally:  # counted when done: a forced pass below is timed to its end
                passes[0] += 1

        controller.appsets.reconcile = counted  # type: ignore[method-assign]
        key: AppKey = (namespace, SET_NAME)
        keys = [(namespace, app_name(i)) for i in range(n)]
        began = time.monotonic()
        bench_kube.apply(application_set(n, namespace, repo.http_url()), field_manager="bench")
        wait(
            lambda: (
                set_status(controller, key).get("applicationCount") == n
                and generated(controller, keys)
            ),
            120 + n / 2,
            f"the set to generate {n} apps",
            0.05,
        )
        created = time.monotonic() - began
        wait(lambda: synced(controller, keys), 300 + n, f"{n} apps to sync", 0.2)
        all_synced = time.monotonic() - began
        wait(lambda: idle(controller), 120, "the controller to settle", 0.1)
        time.sleep(2)  # the set's pass on the apps' last status changes
        wait(lambda: idle(controller), 120, "the controller to settle", 0.1)
        print(f"  {n} apps generated in {created:.1f} s, synced in {all_synced:.1f} s", flush=True)
        _, written = kube.snapshot()
        cpu, set_cpu, passes_before = time.process_time(), set_threads_cpu(), passes[0]
        time.sleep(steady_seconds)
        cpu, set_cpu = time.process_time() - cpu, set_threads_cpu() - set_cpu
        window_passes = passes[0] - passes_before
        _, written_after = kube.snapshot()
        # one no-change pass of the set, forced (what its requeue timer would run)
        before_pass, pass_cpu = passes[0], set_threads_cpu()
        pass_began = time.perf_counter()
        controller.appsets.queue.add(key, "requeue")
        wait(lambda: passes[0] > before_pass, 120, "a forced pass of the set", 0.005)
        pass_seconds = time.perf_counter() - pass_began
        pass_cpu = set_threads_cpu() - pass_cpu
        _, written_pass = kube.snapshot()
    per_minute = 60 / steady_seconds
    steady = written_after - written
    note = (
        f"list generator, requeue every {DEFAULT_REQUEUE_SECONDS:g} s (no requeueAfterSeconds "
        f"on a list generator); steady window {steady_seconds:g} s"
    )
    return [
        Row("appset: set created -> applicationCount N", n, "s", created, "", None, 1, note=note),
        Row("appset: set created -> all apps Synced", n, "s", all_synced, "", None, 1),
        Row(
            "appset: steady CPU s per minute (controller)",
            n,
            "s",
            cpu * per_minute,
            "",
            None,
            1,
            note=f"set worker threads {set_cpu * per_minute:.2f} s/min over {window_passes} "
            f"set passes; the rest (app refreshes, watches) "
            f"{(cpu - set_cpu) * per_minute:.2f} s/min",
        ),
        Row(
            "appset: Application writes by the set (steady)",
            n,
            "writes",
            set_writes(steady),
            "",
            None,
            1,
            note=f"all writes in the window: {sum(steady.values())}",
        ),
        Row(
            "appset: one no-change set pass",
            n,
            "s",
            pass_seconds,
            "",
            None,
            1,
            note=f"CPU of the set's threads {pass_cpu:.2f} s (per minute at the "
            f"{DEFAULT_REQUEUE_SECONDS:g} s requeue: {pass_cpu * 60 / DEFAULT_REQUEUE_SECONDS:.2f}"
            f" s); Application writes {set_writes(written_pass - written_after)}",
        ),
    ]
