"""Hardening case 21: kill -9 of ``gitsync serve`` at random points of 50 syncs and 10 canaries.

A controller pod can die at any instruction: between an apply and the inventory write, half-way
through a prune, between a rollout's action and its status write. Whatever it was doing, the
restarted controller must bring the cluster to what Git declares, must never delete an object
that Git still declares, and must not leave a rollout stuck.

The kill points come from ``random.Random(seed)``: the seed is in every assertion message, and
``GITSYNC_CHAOS_SEED=<n>`` replays a run (the schedule, not the exact timing: the machine's speed
decides what the controller was doing at a given delay). Deletions are read from the API server's
audit log (what landed, with the time the request arrived), and each one is checked against the
commit that was current in Git at that moment.

The hardest schedule, and the one this test makes sure to hit: the controller is killed in the
middle of a sync that creates a Deployment, and while no controller runs Git takes the commit back
(a revert). The restarted controller must prune the Deployment (which the interrupted sync never
got to record in its inventory at the end) and must not finish the interrupted sync either (that
would prune objects the revert declares again). ``Syncer.sync`` records objects in the inventory
before creating them, and the reconciler resumes an interrupted sync only while its revision is
still Git's.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitRepo, GitServer
from tests.support.apps import app_status, application, github_webhook, rollout_status
from tests.support.audit import AuditLog
from tests.support.controller import ServeProcess
from tests.support.manifests import canary_rollout, web_service
from tests.support.waiting import WaitTimeout, wait_for

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("GITSYNC_CHAOS_SEED", "21"))
COMMITS = 50
KILL_CHANCE = 0.35  # about 17 kills in 50 commits
DOWN_CHANCE = 0.5  # of a kill: the next commit is pushed while no controller runs
CANARIES = 10
CONFIGMAPS = [f"cm-{c}" for c in "abcdefgh"]
DEPLOYMENTS = [f"dep-{c}" for c in "abcd"]
CONTROLLER_AGENT = "gitsync-controller"

Declared = dict[tuple[str, str], str]
"""(kind, name) -> the one value that distinguishes versions: a ConfigMap's data, an image."""


# -- Git side --------------------------------------------------------------------------------


def manifest(kind: str, name: str, value: str) -> dict[str, Any]:
    """A ConfigMap in wave 1, or a Deployment in wave 0 whose pods turn ready after two seconds:
    a sync that changes a Deployment spends them between its first apply and its
    inventory write, a window a kill can land in."""
    if kind == "ConfigMap":
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "annotations": {"gitsync.dev/sync-wave": "1"}},
            "data": {"value": value},
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"gitsync.dev/sync-wave": "0"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {"sim.gitsync.dev/ready-after": "2"},
                },
                "spec": {"containers": [{"name": "main", "image": value}]},
            },
        },
    }


def path_of(kind: str, name: str) -> str:
    return f"app/{kind.lower()}-{name}.yaml"


def mutate(rng: random.Random, declared: Declared, commit: int) -> Declared:
    """One to three random adds, modifications and removals; at least one object stays."""
    out = dict(declared)
    for n in range(rng.randint(1, 3)):
        free = [("ConfigMap", c) for c in CONFIGMAPS] + [("Deployment", d) for d in DEPLOYMENTS]
        free = [k for k in free if k not in out]
        move = rng.choice(["add", "modify", "remove"])
        if move == "add" and free:
            key = rng.choice(free)
        elif move == "remove" and len(out) > 1:
            del out[rng.choice(sorted(out))]
            continue
        else:
            key = rng.choice(sorted(out))
        out[key] = f"v{commit}-{n}" if key[0] == "ConfigMap" else f"nginx:1.{commit}.{n}"
    return out


def commit(repo: GitRepo, old: Declared, new: Declared, message: str) -> str:
    files: dict[str, str | None] = {path_of(*k): None for k in old if k not in new}
    for key, value in new.items():
        if old.get(key) != value:
            files[path_of(*key)] = yaml.safe_dump(manifest(*key, value))
    sha = repo.commit(files, message)
    repo.push()
    return sha


# -- cluster side ----------------------------------------------------------------------------


def live_objects(kube: KubeClient, namespace: str) -> Declared:
    out: Declared = {}
    for cm in kube.list("v1", "ConfigMap", namespace)["items"]:
        name = cm["metadata"]["name"]
        if name.startswith("cm-"):
            out[("ConfigMap", name)] = str((cm.get("data") or {}).get("value"))
    for dep in kube.list("apps/v1", "Deployment", namespace)["items"]:
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        out[("Deployment", dep["metadata"]["name"])] = str(image)
    return out


def synced_at(kube: KubeClient, namespace: str, sha: str) -> bool:
    sync = app_status(kube, namespace, "web").get("sync") or {}
    return sync.get("status") == "Synced" and sync.get("revision") == sha


@dataclass(frozen=True)
class Deletion:
    at: datetime
    kind: str
    name: str
    user_agent: str


def controller_deletions(audit: AuditLog, since: int, namespace: str) -> list[Deletion]:
    """Successful DELETEs of ConfigMaps and Deployments in ``namespace`` by any controller,
    with the time the API server received each (the audit log's own clock)."""
    kinds = {"configmaps": "ConfigMap", "deployments": "Deployment"}
    out = []
    with open(audit.path, "rb") as fh:
        fh.seek(since)
        lines = fh.read().splitlines()
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        ref = doc.get("objectRef") or {}
        if (
            doc.get("stage") == "ResponseComplete"
            and doc.get("verb") == "delete"
            and ref.get("namespace") == namespace
            and ref.get("resource") in kinds
            and str(doc.get("userAgent", "")).startswith(CONTROLLER_AGENT)
            and int((doc.get("responseStatus") or {}).get("code") or 0) < 300
        ):
            at = datetime.fromisoformat(doc["requestReceivedTimestamp"])
            out.append(Deletion(at, kinds[ref["resource"]], ref["name"], doc["userAgent"]))
    return out


def declared_at(history: list[tuple[datetime, Declared]], moment: datetime) -> Declared:
    """What Git declared at ``moment``: the last commit whose push began before it."""
    current: Declared = {}
    for began, declared in history:
        if began <= moment:
            current = declared
    return current


# -- the controller under attack -------------------------------------------------------------


class Chaos:
    """One ``gitsync serve`` that the test kills and restarts; counts what it did."""

    def __init__(self, start: Callable[[], ServeProcess], seed: int):
        self._start = start
        self.seed = seed
        self.proc: ServeProcess | None = start()
        self.kills = 0
        self.restarts = 0

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc = None
            self.kills += 1

    def ensure_running(self) -> ServeProcess:
        if self.proc is None:
            self.proc = self._start()
            self.restarts += 1
        return self.proc

    def webhook(self, repo: GitRepo, sha: str) -> None:
        if self.proc is not None:
            code = github_webhook(self.proc.url, repo.file_url(), "refs/heads/main", sha)
            assert code == 202, f"seed {self.seed}: webhook answered {code}"

    def wait(
        self,
        probe: Callable[[], object],
        timeout: float,
        what: str,
        report: Callable[[], str] = str,
    ) -> None:
        """``wait_for``; on a timeout the controller is aborted (SIGABRT) so that the failure
        shows where each of its threads was stuck, after the end of its log."""
        try:
            wait_for(probe, timeout=timeout, what=what)
        except WaitTimeout as exc:
            dump = "(no controller running)"
            popen = self.proc.proc.popen if self.proc and self.proc.proc else None
            if self.proc is not None and popen is not None:
                popen.send_signal(signal.SIGABRT)
                popen.wait(10)
                dump = self.proc.log(150)
            raise WaitTimeout(f"seed {self.seed}: {exc}\n{report()}\n{dump}") from exc


def wait_for_kill_point(
    rng: random.Random,
    kube: KubeClient,
    namespace: str,
    before: Declared,
    after: Declared,
    point: str = "",
) -> None:
    """Return at a kill point after the webhook: at once, at a random moment, or just after the
    sync's first write of the commit landed (the first changed object shows), which on a loaded
    machine is the only reliable way into the middle of a sync."""
    point = point or rng.choice(["at once", "random", "mid-sync", "mid-sync"])
    delay = rng.uniform(0.0, 0.5) if point == "mid-sync" else rng.uniform(0.0, 3.0)
    if point == "at once":
        return
    if point == "mid-sync":
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            live = live_objects(kube, namespace)
            if any(live.get(k) != before.get(k) for k in changed):
                break
            time.sleep(0.05)
    time.sleep(delay)


@pytest.fixture
def chaos(serve: Any) -> Iterator[Callable[[], Chaos]]:
    # PYTHONFAULTHANDLER: on SIGABRT the controller prints every thread's stack (Chaos.wait)
    yield lambda: Chaos(lambda: serve(env={"PYTHONFAULTHANDLER": "1"}), SEED)


def test_kill_9_at_random_points_of_50_syncs_converges_and_never_prunes_what_git_declares(
    chaos: Callable[[], Chaos],
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    audit: AuditLog,
    sim: None,
) -> None:
    rng = random.Random(SEED)
    declared: Declared = {("ConfigMap", "cm-a"): "v0", ("Deployment", "dep-a"): "nginx:1.0"}
    repo = git_server.create_repo(
        f"chaos-{secrets.token_hex(3)}",
        files={path_of(*k): yaml.safe_dump(manifest(*k, v)) for k, v in declared.items()},
    )
    history = [(datetime.now(UTC), dict(declared))]
    since = audit.mark()
    ctl = chaos()
    kube.create(application("web", namespace, repo.file_url()))
    sha = repo.head()
    started = time.monotonic()

    revert_to: Declared | None = None
    for n in range(1, COMMITS + 1):
        # After a kill with no controller running, Git takes back what the interrupted
        # sync was applying (a revert): what it created must still be pruned, what it was
        # pruning must come back.
        kill = ctl.proc is not None and rng.random() < KILL_CHANCE
        down = kill and rng.random() < DOWN_CHANCE
        new = dict(revert_to) if revert_to is not None else mutate(rng, declared, n)
        free = [("Deployment", d) for d in DEPLOYMENTS if ("Deployment", d) not in new]
        if down and revert_to is None:
            # the sync to be interrupted creates a Deployment (wave 0) and prunes a ConfigMap
            # (wave 1, after the Deployment is ready); Git then takes both back
            if free:
                new[rng.choice(free)] = f"nginx:1.{n}.9"
            configmaps = sorted(k for k in new if k[0] == "ConfigMap")
            if len(configmaps) > 1:
                del new[rng.choice(configmaps)]
        before, revert_to = declared, None
        history.append((datetime.now(UTC), dict(new)))
        sha = commit(repo, declared, new, f"commit {n}")
        declared = new
        ctl.webhook(repo, sha)
        if kill:
            wait_for_kill_point(rng, kube, namespace, before, new, "mid-sync" if down else "")
            ctl.kill()
            if down:
                revert_to = before  # the next push lands while no controller runs
                continue
        ctl.ensure_running()
        ctl.wait(
            lambda d=declared, s=sha: (
                live_objects(kube, namespace) == d and synced_at(kube, namespace, s)
            ),
            timeout=120,
            what=f"commit {n}: live == Git at {sha[:8]} ({ctl.kills} kills so far); "
            f"declared {sorted(declared.items())}",
            report=lambda: f"live {sorted(live_objects(kube, namespace).items())}",
        )
    ctl.ensure_running()
    ctl.wait(
        lambda: live_objects(kube, namespace) == declared and synced_at(kube, namespace, sha),
        timeout=120,
        what=f"live == Git at the last commit {sha[:8]}",
    )
    print(
        f"seed {SEED}: {COMMITS} commits, {ctl.kills} kills, {ctl.restarts} restarts, "
        f"{time.monotonic() - started:.0f}s"
    )

    deletions = controller_deletions(audit, since, namespace)
    wrong = [
        d for d in deletions if (d.kind, d.name) in declared_at(history, d.at)
    ]  # Git still declared it when the DELETE arrived
    assert not wrong, f"seed {SEED}: deleted while Git declared them: {wrong}"
    assert deletions, f"seed {SEED}: no prune happened at all; the test proves nothing"
    assert ctl.kills >= 5, f"seed {SEED}: only {ctl.kills} kills"


# -- 10 canaries -----------------------------------------------------------------------------

CANARY_REPLICAS = 4
ROLLOUT = canary_rollout([{"setWeight": 50}, {"pause": {"duration": "2s"}}])
SERVICE = web_service()


def web_deployment(image: str) -> dict[str, Any]:
    dep = manifest("Deployment", "web", image)
    dep["spec"]["replicas"] = CANARY_REPLICAS
    return dep


def rollout_done(kube: KubeClient, namespace: str, image: str, sha: str) -> bool:
    """The rollout of ``image`` finished: Rollout Healthy, every stable pod template on the new
    image, the canary gone, and the Application Synced at ``sha`` and Healthy."""
    stable = kube.get("apps/v1", "Deployment", "web", namespace)
    status = app_status(kube, namespace, "web")
    return (
        rollout_status(kube, namespace).get("phase") == "Healthy"
        and stable is not None
        and stable["spec"]["template"]["spec"]["containers"][0]["image"] == image
        and kube.get("apps/v1", "Deployment", "web-canary", namespace) is None
        and synced_at(kube, namespace, sha)
        and (status.get("health") or {}).get("status") == "Healthy"
    )


@pytest.mark.slow
def test_kill_9_at_random_moments_of_10_canaries_never_leaves_a_rollout_stuck(
    chaos: Callable[[], Chaos],
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    rollout_crd: None,
    sim: None,
) -> None:
    rng = random.Random(SEED)
    repo = git_server.create_repo(
        f"chaos-canary-{secrets.token_hex(3)}",
        files={
            "app/deployment.yaml": yaml.safe_dump(web_deployment("nginx:1.0")),
            "app/service.yaml": yaml.safe_dump(SERVICE),
            "app/rollout.yaml": yaml.safe_dump(ROLLOUT),
        },
    )
    ctl = chaos()
    kube.create(application("web", namespace, repo.file_url()))
    ctl.wait(
        lambda: rollout_done(kube, namespace, "nginx:1.0", repo.head()),
        timeout=120,
        what="the first sync Healthy",
    )
    started = time.monotonic()
    for n in range(1, CANARIES + 1):
        image = f"nginx:2.{n}"
        sha = repo.commit({"app/deployment.yaml": yaml.safe_dump(web_deployment(image))}, image)
        repo.push()
        ctl.webhook(repo, sha)
        for _ in range(rng.randint(1, 2)):
            time.sleep(rng.uniform(0.0, 6.0))  # somewhere in the steps, the pause or the promotion
            ctl.kill()
            time.sleep(rng.choice([0.0, rng.uniform(0.0, 2.0)]))
            ctl.ensure_running()
        ctl.wait(
            lambda i=image, s=sha: rollout_done(kube, namespace, i, s),
            timeout=180,
            what=f"canary {n}: {image} rolled out ({ctl.kills} kills so far)",
            report=lambda: f"Rollout status: {rollout_status(kube, namespace)}",
        )
    print(f"seed {SEED}: {CANARIES} canaries, {ctl.kills} kills, {time.monotonic() - started:.0f}s")
