"""KubeClient asks the credentials for a header at most once a second, and afresh after a 401.

The kubeconfig loader's token refresh hook costs 45 µs-0.4 ms of CPU per call under the GIL;
these tests count its calls.
"""

from __future__ import annotations

import pytest
from kubernetes.client import Configuration

from gitsync.kube import client as client_module
from gitsync.kube.client import AUTH_REFRESH_SECONDS, KubeClient


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(client_module.time, "monotonic", fake)
    return fake


def token_client() -> tuple[KubeClient, list[str]]:
    """A client whose refresh hook hands out a new token on every call, and the calls."""
    calls: list[str] = []
    cfg = Configuration()
    cfg.host = "https://127.0.0.1:1"
    cfg.api_key_prefix = {"BearerToken": "Bearer"}

    def refresh(c: Configuration) -> None:
        calls.append("refresh")
        c.api_key = {"BearerToken": f"token-{len(calls)}"}

    cfg.refresh_api_key_hook = refresh
    return KubeClient(cfg), calls


def test_the_hook_runs_once_per_second_not_once_per_request(clock: Clock) -> None:
    kube, calls = token_client()
    headers = [kube._headers("application/json") for _ in range(200)]
    assert len(calls) == 1
    assert {h["Authorization"] for h in headers} == {"Bearer token-1"}
    assert headers[0]["Content-Type"] == "application/json"
    clock.now += AUTH_REFRESH_SECONDS + 0.01
    assert kube._headers(None)["Authorization"] == "Bearer token-2"
    assert len(calls) == 2
    assert "Content-Type" not in kube._headers(None)


def test_a_401_makes_the_next_request_ask_afresh(clock: Clock) -> None:
    kube, calls = token_client()
    kube._headers(None)
    kube._forget_auth()  # what a 401 answer does
    assert kube._headers(None)["Authorization"] == "Bearer token-2"
    assert len(calls) == 2


def test_basic_auth_without_a_token() -> None:
    cfg = Configuration()
    cfg.host = "https://127.0.0.1:1"
    cfg.username, cfg.password = "admin", "s3cret"
    headers = {k.lower(): v for k, v in KubeClient(cfg)._headers(None).items()}
    assert headers["authorization"].startswith("Basic ")
