"""Hardening (issue 8, item 16): API errors about Secrets reach users without the values."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from gitsync.application import parse_application
from gitsync.kube import KubeClient
from gitsync.model import ResourceKey, ResultCode
from gitsync.render import RenderedManifest
from gitsync.sync import Syncer

pytestmark = pytest.mark.integration


def app_for(namespace: str) -> Any:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": f"secrets-{secrets.token_hex(3)}", "namespace": namespace},
            "spec": {
                "source": {"repoURL": "file:///unused"},
                "destination": {"namespace": namespace},
            },
        }
    )


def secret(name: str, data: dict[str, str], *, immutable: bool = False) -> RenderedManifest:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": data,
    }
    if immutable:
        obj["immutable"] = True
    return RenderedManifest(ResourceKey.of(obj), obj, "secret.yaml")


def test_invalid_base64_fails_without_showing_the_value(kube: KubeClient, namespace: str) -> None:
    value = "NOT-base64-" + secrets.token_hex(6) + "!!"
    result = Syncer(kube).sync(
        app_for(namespace), [secret("bad", {"password": value})], revision="r1"
    )
    [outcome] = [r for r in result.results if r.key.name == "bad"]
    assert outcome.code == ResultCode.SYNC_FAILED
    assert outcome.message  # the server's reason is passed on ...
    assert value not in outcome.message and value not in repr(result)  # ... but not the value


def test_changing_an_immutable_secret_fails_without_showing_either_value(
    kube: KubeClient, namespace: str
) -> None:
    import base64

    old, new = "old-" + secrets.token_hex(6), "new-" + secrets.token_hex(6)
    enc = {v: base64.b64encode(v.encode()).decode() for v in (old, new)}
    syncer, app = Syncer(kube), app_for(namespace)
    first = syncer.sync(
        app, [secret("locked", {"password": enc[old]}, immutable=True)], revision="r1"
    )
    assert first.succeeded, first.results
    second = syncer.sync(
        app, [secret("locked", {"password": enc[new]}, immutable=True)], revision="r2"
    )
    [outcome] = [r for r in second.results if r.key.name == "locked"]
    assert outcome.code == ResultCode.SYNC_FAILED and "immutable" in outcome.message
    shown = outcome.message + repr(second)
    for value in (old, new, enc[old], enc[new]):
        assert value not in shown
