"""Node and pod simulator: plays the kubelets for the local control plane.

There is no kubelet (and no container runtime) on our machines, so this process does the three
things the rest of Kubernetes needs from kubelets:

* registers Ready Nodes and heartbeats them like a kubelet (renews a Lease per node in
  ``kube-node-lease`` and refreshes the Ready condition's ``lastHeartbeatTime`` every
  ``HEARTBEAT_SECONDS``) - without this the node-lifecycle controller marks the nodes NotReady after
  ~40 s, taints them, flips pods unready and evicts them;
* binds unscheduled pods to a node through the Binding subresource (there is no scheduler either);
* reports pod status - Running and Ready with a unique pod IP - so the real Deployment controller
  counts ``readyReplicas`` and the real Endpoints controller lists the pod IPs; finishes graceful
  deletions as a kubelet would.

Pods can be told to misbehave through their template's annotations, so degraded paths are testable:

* ``sim.gitsync.dev/behavior``: ``ready`` (default), ``never-ready`` (running, never Ready),
  ``crashloop`` (container waiting in CrashLoopBackOff), ``image-pull`` (ImagePullBackOff),
  ``fail`` (phase Failed);
* ``sim.gitsync.dev/ready-after``: seconds before the pod turns Ready (default 0).

A pod that runs but is not Ready says why, as a kubelet does: its Ready and ContainersReady
conditions carry reason ``ContainersNotReady`` and ``containers with unready status: [...]``.
A misbehaving pod also gets the Events a kubelet records (core/v1, ``source.component: kubelet``):
``never-ready`` a Warning ``Unhealthy`` ("Readiness probe failed: ..."), ``crashloop`` a Warning
``BackOff`` ("Back-off restarting failed container ..."), ``image-pull`` a Warning ``Failed``
("Error: ImagePullBackOff") and a Normal ``BackOff``. Like the kubelet's event recorder, a repeat
updates ``count`` and ``lastTimestamp`` of the same Event, at most once per ``EVENT_SECONDS`` per
pod, so a crowd of broken pods never floods the API server.

Pods with ``restartPolicy`` Never/OnFailure (Jobs) run to ``Succeeded`` (or ``Failed``) - after
``ready-after`` seconds, when given, so a test can catch a Job (a sync hook) while it runs.

With ``--pki-dir`` (the control plane passes its own) each node also serves the kubelet's
container-logs endpoint, so ``pods/log`` works through the real API server; what the containers
"write" is set by annotations too (``gitsync.localenv.kubelet`` lists them and explains the API
server's flags this needs).
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import itertools
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitsync.kube import ApiError, KubeClient
from gitsync.localenv.kubelet import KubeletLogServer
from gitsync.localenv.pki import make_kubelet_cert

HEARTBEAT_SECONDS = 10.0
RESYNC_SECONDS = 15.0
BEHAVIOR = "sim.gitsync.dev/behavior"
READY_AFTER = "sim.gitsync.dev/ready-after"
EVENT_SECONDS = 10.0
PROBE_FAILED = "Readiness probe failed: HTTP probe failed with statuscode: 503"
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def readiness_conditions(
    containers: list[str], ready: bool, phase: str, now: str
) -> list[dict[str, Any]]:
    """The ContainersReady and Ready conditions as the kubelet writes them: when a running pod is
    not ready, the reason and the names of the unready containers (what ``kubectl describe`` and
    our tree show); a finished pod's are ``PodCompleted``. An absent reason or message is
    ``None``: the status is a strategic merge patch, where ``None`` removes the one an earlier
    patch set (a ``ready-after`` pod turning Ready keeps no ``ContainersNotReady``)."""
    why: dict[str, str | None] = {"reason": None, "message": None}
    if phase in ("Succeeded", "Failed"):
        why = {"reason": "PodCompleted", "message": None}
    elif not ready:
        why = {
            "reason": "ContainersNotReady",
            "message": f"containers with unready status: [{' '.join(containers)}]",
        }
    status = "True" if ready else "False"
    return [
        {"type": kind, "status": status, "lastTransitionTime": now, **why}
        for kind in ("ContainersReady", "Ready")
    ]


def kubelet_events(
    pod: dict[str, Any], behavior: str, count: int, first: str, now: str
) -> list[dict[str, Any]]:
    """The Events a kubelet records about a pod that misbehaves this way (none for the others),
    one per container, named deterministically so a repeat updates the same Event's ``count``."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    out = []
    for c in spec.get("containers") or []:
        name = c["name"]
        said: list[tuple[str, str, str]] = []  # (type, reason, message)
        if behavior == "never-ready":
            said = [("Warning", "Unhealthy", PROBE_FAILED)]
        elif behavior == "crashloop":
            said = [
                (
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {name} in pod "
                    f"{meta['name']}_{meta['namespace']}({meta['uid']})",
                )
            ]
        elif behavior == "image-pull":
            said = [
                ("Warning", "Failed", "Error: ImagePullBackOff"),
                ("Normal", "BackOff", f'Back-off pulling image "{c.get("image", "")}"'),
            ]
        for kind, reason, message in said:
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {
                        "name": f"{meta['name']}.{name}.{reason.lower()}",
                        "namespace": meta["namespace"],
                    },
                    "involvedObject": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "namespace": meta["namespace"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "fieldPath": f"spec.containers{{{name}}}",
                    },
                    "type": kind,
                    "reason": reason,
                    "message": message,
                    "source": {"component": "kubelet", "host": spec.get("nodeName", "")},
                    "reportingComponent": "kubelet",
                    "reportingInstance": spec.get("nodeName", ""),
                    "firstTimestamp": first,
                    "lastTimestamp": now,
                    "count": count,
                }
            )
    return out


class Simulator:
    """Runs until ``stop()``; thread-safe enough for one watch thread and one worker thread."""

    def __init__(
        self,
        client: KubeClient,
        nodes: int = 3,
        prefix: str = "sim-node",
        pki_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self._clock = clock
        self.node_names = [f"{prefix}-{i}" for i in range(nodes)]
        self.kubelet: KubeletLogServer | None = None
        if pki_dir is not None:
            addresses = [self._node_address(i) for i in range(nodes)]
            cert, key = make_kubelet_cert(pki_dir, addresses)
            self.kubelet = KubeletLogServer(addresses, cert, key, self._pod)
        self._next_node = itertools.cycle(self.node_names)
        self._stop = threading.Event()
        self._work: queue.Queue[tuple[str, str]] = queue.Queue()
        self._timers: list[tuple[float, tuple[str, str]]] = []
        self._timers_lock = threading.Lock()
        self._used_ips: set[str] = set()
        self._ip_iter = POD_CIDR.hosts()
        self._pods: dict[tuple[str, str], dict[str, Any]] = {}
        self._pods_lock = threading.Lock()
        # per misbehaving pod: when its Events were last recorded (monotonic), how many times,
        # and the first time (the Events' firstTimestamp)
        self._events: dict[tuple[str, str], tuple[float, int, str]] = {}
        self._events_lock = threading.Lock()

    # -- nodes --------------------------------------------------------------------------------

    @staticmethod
    def _node_address(index: int) -> str:
        return f"127.0.1.{index + 1}"

    def _pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._pods_lock:
            return self._pods.get((namespace, name))

    def _node_status(self, index: int) -> dict[str, Any]:
        now = _now()
        port = self.kubelet.ports[index] if self.kubelet else 0
        return {
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"},
            "allocatable": {
                "cpu": "64",
                "memory": "256Gi",
                "pods": "250",
                "ephemeral-storage": "1Ti",
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "gitsync simulator is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": self._node_address(index)},
                {"type": "Hostname", "address": self.node_names[index]},
            ],
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": "",
                "osImage": "gitsync simulator",
                "containerRuntimeVersion": "sim://1",
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def register_nodes(self) -> None:
        for i, name in enumerate(self.node_names):
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "sim.gitsync.dev/node": "true",
                    },
                },
            }
            try:
                self.client.create(node)
            except ApiError as exc:
                if exc.status != 409:
                    raise
            self.client.patch(
                "v1", "Node", name, {"status": self._node_status(i)}, subresource="status"
            )
        self.heartbeat()

    def heartbeat(self) -> None:
        now = _now()
        for name in self.node_names:
            self._renew_lease(name)
            try:
                node = self.client.get("v1", "Node", name)
                if node is None:
                    continue
                conditions = node.get("status", {}).get("conditions") or []
                for cond in conditions:
                    if cond.get("type") == "Ready":
                        if cond.get("status") != "True":
                            cond["lastTransitionTime"] = now
                        cond.update(status="True", reason="KubeletReady", lastHeartbeatTime=now)
                self.client.patch(
                    "v1",
                    "Node",
                    name,
                    {"status": {"conditions": conditions}},
                    subresource="status",
                    patch_type="strategic",
                )
            except ApiError as exc:
                print(f"heartbeat {name}: {exc}", file=sys.stderr, flush=True)

    def _renew_lease(self, name: str) -> None:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 40,
                "renewTime": _now_micro(),
            },
        }
        try:
            self.client.apply(lease, field_manager="gitsync-simulator")
        except ApiError as exc:
            print(f"lease {name}: {exc}", file=sys.stderr, flush=True)

    # -- pods ---------------------------------------------------------------------------------

    def _allocate_ip(self) -> str:
        for ip in self._ip_iter:
            text = str(ip)
            if text not in self._used_ips:
                self._used_ips.add(text)
                return text
        raise RuntimeError("pod CIDR exhausted")

    def _remember(self, pod: dict[str, Any]) -> tuple[str, str]:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        with self._pods_lock:
            self._pods[key] = pod
            ip = (pod.get("status") or {}).get("podIP")
            if ip:
                self._used_ips.add(ip)
        return key

    def _later(self, delay: float, key: tuple[str, str]) -> None:
        with self._timers_lock:
            heapq.heappush(self._timers, (time.monotonic() + delay, key))

    def handle(self, key: tuple[str, str]) -> None:
        with self._pods_lock:
            pod = self._pods.get(key)
        if pod is None:
            with self._events_lock:
                self._events.pop(key, None)
            return
        meta, spec = pod["metadata"], pod.get("spec") or {}
        status = pod.get("status") or {}
        node = spec.get("nodeName")
        if meta.get("deletionTimestamp"):
            if not node or node in self.node_names:
                self._finish_delete(pod)
            return
        if not node:
            self._bind(pod)
            return
        if node not in self.node_names:
            return
        self._report(pod, status)

    def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": next(self._next_node)},
        }
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding"
        try:
            self.client.create(binding, subresource_of=path)
        except ApiError as exc:
            if exc.status not in (404, 409):
                print(f"bind {meta['name']}: {exc}", file=sys.stderr, flush=True)

    def _finish_delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.client.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta["uid"]},
                },
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                print(f"delete {meta['name']}: {exc}", file=sys.stderr, flush=True)

    def _report(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        annotations = meta.get("annotations") or {}
        behavior = annotations.get(BEHAVIOR, "ready")
        restart = spec.get("restartPolicy", "Always")
        created = datetime.strptime(meta["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC
        )
        try:
            ready_after = float(annotations.get(READY_AFTER, "0"))
        except ValueError:
            ready_after = 0.0
        age = (datetime.now(UTC) - created).total_seconds()
        finishes = restart != "Always" and behavior in ("ready", "fail")
        waiting_for_readiness = (behavior == "ready" or finishes) and age < ready_after

        phase, ready = "Running", behavior == "ready" and not waiting_for_readiness
        if finishes and not waiting_for_readiness:
            phase = "Succeeded" if behavior == "ready" else "Failed"
            ready = False
        elif behavior == "fail":
            phase = "Failed"
        want = self._desired_status(pod, status, behavior, phase, ready)
        if not self._status_matches(status, want):
            try:
                self.client.patch(
                    "v1",
                    "Pod",
                    meta["name"],
                    {"status": want},
                    namespace=meta["namespace"],
                    subresource="status",
                    patch_type="strategic",
                )
            except ApiError as exc:
                if exc.status not in (404, 409):
                    print(f"status {meta['name']}: {exc}", file=sys.stderr, flush=True)
        if waiting_for_readiness:
            self._later(ready_after - age + 0.05, (meta["namespace"], meta["name"]))
        if phase == "Running" and behavior in ("never-ready", "crashloop", "image-pull"):
            self._record_events(pod, behavior)

    def _record_events(self, pod: dict[str, Any], behavior: str) -> None:
        """Record (or repeat) the pod's kubelet Events, at most once per ``EVENT_SECONDS``; each
        recording schedules the next, so one timer per pod keeps the count going."""
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        now = self._clock()
        with self._events_lock:
            last, count, first = self._events.get(key, (0.0, 0, ""))
            if count and now - last < EVENT_SECONDS:
                return  # recorded recently; the timer set then brings the pod back
            count, first = count + 1, first or _now()
            self._events[key] = (now, count, first)
        for event in kubelet_events(pod, behavior, count, first, _now()):
            self._post_event(event)
        self._later(EVENT_SECONDS + 0.05, key)

    def _post_event(self, event: dict[str, Any]) -> None:
        meta = event["metadata"]
        repeat = {"count": event["count"], "lastTimestamp": event["lastTimestamp"]}
        try:
            try:
                if event["count"] == 1:
                    self.client.create(event)
                else:
                    self.client.patch(
                        "v1", "Event", meta["name"], repeat, namespace=meta["namespace"]
                    )
            except ApiError as exc:
                if exc.status == 409:  # recorded before this simulator started
                    self.client.patch(
                        "v1", "Event", meta["name"], repeat, namespace=meta["namespace"]
                    )
                elif exc.status == 404 and event["count"] > 1:  # expired (the API's event TTL)
                    self.client.create(event)
                else:
                    raise
        except ApiError as exc:
            # 403/404: the namespace is going away with its pods
            if exc.status not in (403, 404, 409):
                print(f"event {meta['name']}: {exc}", file=sys.stderr, flush=True)

    def _desired_status(
        self, pod: dict[str, Any], status: dict[str, Any], behavior: str, phase: str, ready: bool
    ) -> dict[str, Any]:
        now = _now()
        spec = pod.get("spec") or {}
        ip = status.get("podIP") or self._allocate_ip()
        node_index = self.node_names.index(spec["nodeName"])
        containers = []
        for c in spec.get("containers") or []:
            state: dict[str, Any]
            if phase == "Succeeded":
                state = {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": now,
                        "finishedAt": now,
                    }
                }
            elif phase == "Failed":
                state = {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": now,
                        "finishedAt": now,
                    }
                }
            elif behavior == "crashloop":
                state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off restarting failed container {c['name']}",
                    }
                }
            elif behavior == "image-pull":
                state = {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{c.get("image", "")}"',
                    }
                }
            else:
                state = {"running": {"startedAt": status.get("startTime") or now}}
            containers.append(
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": f"sim://{c.get('image', '')}",
                    "containerID": f"sim://{pod['metadata']['uid']}/{c['name']}",
                    "ready": ready,
                    "started": "running" in state,
                    "restartCount": 3 if behavior == "crashloop" else 0,
                    "state": state,
                }
            )
        names = [c["name"] for c in spec.get("containers") or []]
        return {
            "phase": phase,
            "hostIP": f"127.0.1.{node_index + 1}",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": status.get("startTime") or now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                *readiness_conditions(names, ready, phase, now),
            ],
            "containerStatuses": containers,
        }

    @staticmethod
    def _status_matches(have: dict[str, Any], want: dict[str, Any]) -> bool:
        if have.get("phase") != want["phase"] or have.get("podIP") != want["podIP"]:
            return False
        have_cond = {c.get("type"): c.get("status") for c in have.get("conditions") or []}
        want_cond = {c["type"]: c["status"] for c in want["conditions"]}
        if have_cond != want_cond:
            return False
        have_states = [
            sorted((cs.get("state") or {}).keys()) for cs in have.get("containerStatuses") or []
        ]
        want_states = [sorted(cs["state"].keys()) for cs in want["containerStatuses"]]
        return have_states == want_states

    # -- loops --------------------------------------------------------------------------------

    def _list_pods(self) -> str:
        doc = self.client.request("GET", "/api/v1/pods")
        seen = set()
        for pod in doc.get("items", []):
            key = self._remember(pod)
            seen.add(key)
            self._work.put(key)
        with self._pods_lock:
            for key in set(self._pods) - seen:
                del self._pods[key]
        return str(doc["metadata"]["resourceVersion"])

    def watch_loop(self) -> None:
        rv = ""
        last_list = 0.0
        while not self._stop.is_set():
            try:
                if not rv or time.monotonic() - last_list > RESYNC_SECONDS * 4:
                    rv = self._list_pods()
                    last_list = time.monotonic()
                query = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true",
                         "timeoutSeconds": str(int(RESYNC_SECONDS))}  # fmt: skip
                for event in self.client.stream(
                    "/api/v1/pods", query=query, timeout=RESYNC_SECONDS + 10
                ):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        rv = ""  # 410 Gone and friends: relist
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event.get("type") == "BOOKMARK":
                        continue
                    if event.get("type") == "DELETED":
                        meta = obj["metadata"]
                        with self._pods_lock:
                            self._pods.pop((meta["namespace"], meta["name"]), None)
                        continue
                    self._work.put(self._remember(obj))
                    if self._stop.is_set():
                        return
            except ApiError as exc:
                print(f"watch: {exc}", file=sys.stderr, flush=True)
                rv = ""
                self._stop.wait(1.0)

    def work_loop(self) -> None:
        while not self._stop.is_set():
            with self._timers_lock:
                while self._timers and self._timers[0][0] <= time.monotonic():
                    self._work.put(heapq.heappop(self._timers)[1])
            try:
                key = self._work.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                self.handle(key)
            except ApiError as exc:
                print(f"handle {key}: {exc}", file=sys.stderr, flush=True)

    def heartbeat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.heartbeat()

    def run(self) -> None:
        if self.kubelet:
            self.kubelet.start()
        self.register_nodes()
        threads = [
            threading.Thread(target=self.watch_loop, name="sim-watch", daemon=True),
            threading.Thread(target=self.work_loop, name="sim-work", daemon=True),
            threading.Thread(target=self.heartbeat_loop, name="sim-heartbeat", daemon=True),
        ]
        for t in threads:
            t.start()
        print(f"simulator: {len(self.node_names)} nodes ready", file=sys.stderr, flush=True)
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()
        if self.kubelet:
            self.kubelet.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument(
        "--pki-dir",
        type=Path,
        default=None,
        help="the control plane's PKI directory: serve container logs with a kubelet certificate "
        "signed by its CA",
    )
    args = parser.parse_args(argv)
    sim = Simulator(
        KubeClient.from_kubeconfig(args.kubeconfig, user_agent="gitsync-simulator"),
        args.nodes,
        pki_dir=args.pki_dir,
    )
    signal.signal(signal.SIGTERM, lambda *_: sim.stop())
    signal.signal(signal.SIGINT, lambda *_: sim.stop())
    sim.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
