"""``rollout-promoted`` end to end: a real ``gitsync serve`` on the test control plane, a canary
Rollout paused for promotion, ``gitsync rollout promote`` run as a person runs it, and a webhook
receiver on loopback that must get exactly one promoted message, with the UI link, at the
revision the canary rolled out."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from gitsync import kinds
from gitsync.kube import KubeClient
from gitsync.localenv.gitserver import GitServer
from tests.integration.test_notifications_it import (
    EXTERNAL,
    allow,
    canary_repo,
    deploy,
    messages,
    webhook_setup,
)
from tests.support.cli import run_gitsync
from tests.support.cluster import TestCluster
from tests.support.manifests import web_deployment
from tests.support.receivers import Receiver
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def rollout_phase(kube: KubeClient, namespace: str) -> str:
    obj = kube.get(kinds.API_VERSION, kinds.ROLLOUT, "web", namespace) or {}
    return str((obj.get("status") or {}).get("phase") or "")


def test_a_canary_promoted_with_the_cli_sends_one_promoted_message_with_the_ui_link(
    serve: Any,
    cluster: TestCluster,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    notification_crds: None,
    rollout_crd: None,
) -> None:
    repo = canary_repo(git_server)
    with Receiver() as chat:
        webhook_setup(kube, namespace, chat, ["rollout-paused", "rollout-promoted"])
        serve(*allow(chat), f"--external-url={EXTERNAL}")
        first = deploy(kube, namespace, repo)
        time.sleep(3)
        assert messages(chat, "rollout-promoted") == []  # the first version was never promoted
        repo.commit({"app/deployment.yaml": yaml.safe_dump(web_deployment("nginx:1.26", 4))}, "v2")
        repo.push()
        v2 = repo.head()
        assert v2 != first
        wait_for(lambda: messages(chat, "rollout-paused", v2), timeout=90, what="paused at v2")
        assert messages(chat, "rollout-promoted") == []  # paused is not promoted

        promote = run_gitsync(
            "rollout",
            "promote",
            "web",
            "--namespace",
            namespace,
            "--kubeconfig",
            str(cluster.kubeconfig_path),
        )
        assert promote.code == 0, promote

        wait_for(
            lambda: messages(chat, "rollout-promoted"), timeout=120, what="rollout-promoted message"
        )
        assert rollout_phase(kube, namespace) == "Healthy"
        time.sleep(8)  # several reconciles and status writes later: still one message
        (promoted,) = messages(chat, "rollout-promoted")
        assert promoted["revision"] == v2
        assert promoted["application"] == {"namespace": namespace, "name": "web"}
        assert promoted["url"] == f"{EXTERNAL}/applications/{namespace}/web"
        assert "promoted revision" in promoted["reason"]
        assert len(messages(chat, "rollout-paused")) == 1
