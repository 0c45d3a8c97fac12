"""Issue 13: ``/metrics`` behind a token on its own address, and the login limiter behind a
trusted proxy - through a real ``gitsync serve`` and real HTTP."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

import pytest

from gitsync.localenv.processes import free_port

pytestmark = pytest.mark.integration

METRICS_TOKEN = "metrics-token-5d1c9a7e20"
API_TOKEN = "api-token-0f3e8b6a91c2"


def get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_metrics_on_their_own_address_need_the_token(serve: Any, tmp_path: Path) -> None:
    tokens = tmp_path / "metrics-tokens"
    tokens.write_text(METRICS_TOKEN + "\n")
    port = free_port()
    ctl = serve(f"--metrics-listen=127.0.0.1:{port}", f"--metrics-token-file={tokens}")

    assert get(ctl.port, "/metrics") == 404  # not on the main listener any more
    assert get(port, "/metrics") == 401
    assert get(port, "/metrics", {"Authorization": "Bearer guessed"}) == 401
    assert get(port, "/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"}) == 200
    assert get(port, "/api/v1/applications") == 404  # only /metrics there
    assert METRICS_TOKEN not in ctl.log(400)


def bad_bearer(port: int, forwarded: str) -> int:
    headers = {"Authorization": "Bearer wrong-token-000000", "X-Forwarded-For": forwarded}
    return get(port, "/api/v1/applications", headers)


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted-proxy", "no-trusted-proxy"])
def test_behind_a_trusted_proxy_one_client_cannot_lock_out_another(
    serve: Any, tmp_path: Path, trusted: bool
) -> None:
    api_tokens = tmp_path / "api-tokens"
    api_tokens.write_text(API_TOKEN + "\n")
    extra = ["--trusted-proxy=127.0.0.0/8"] if trusted else []
    ctl = serve(f"--api-token-file={api_tokens}", *extra)

    attacker = [bad_bearer(ctl.port, "203.0.113.7") for _ in range(6)]
    other = bad_bearer(ctl.port, "203.0.113.8")

    assert attacker[:5] == [401] * 5 and attacker[5] == 429
    # Trusted: the proxy's clients have their own buckets. Not trusted: the header is ignored,
    # so made-up addresses cannot buy an attacker more guesses - everyone is the proxy.
    assert other == (401 if trusted else 429)
