"""Issue 13: the login limiter behind a trusted proxy, and ``/metrics`` behind a token or on its
own address - the address choice as a table, then through the Flask app."""

from __future__ import annotations

import ipaddress

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_web_support import ADMIN_PASSWORD, FakeController, login_form_token

from gitsync.web import AuthConfigError, AuthSettings, LoginLimits, create_app
from gitsync.web.app import create_metrics_app
from gitsync.web.auth import client_address, parse_proxy_network

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
METRICS_TOKEN = "metrics-token-3b9f0c2e71"


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        pytest.param("198.51.100.9", [], "198.51.100.9", id="no-header"),
        pytest.param("198.51.100.9", ["1.2.3.4"], "198.51.100.9", id="untrusted-peer-ignored"),
        pytest.param("10.1.2.3", [], "10.1.2.3", id="trusted-peer-no-header"),
        pytest.param("10.1.2.3", ["203.0.113.7"], "203.0.113.7", id="one-hop"),
        pytest.param(
            "10.1.2.3", ["1.1.1.1, 2.2.2.2, 203.0.113.7"], "203.0.113.7", id="spoofed-left-ignored"
        ),
        pytest.param("10.1.2.3", ["203.0.113.7, 10.9.9.9"], "203.0.113.7", id="two-trusted-hops"),
        pytest.param("10.1.2.3", ["203.0.113.7", "10.9.9.9"], "203.0.113.7", id="two-lines"),
        pytest.param("10.1.2.3", ["10.8.0.1, 10.9.9.9"], "10.8.0.1", id="all-trusted"),
        pytest.param("10.1.2.3", ["1.1.1.1, not-an-ip"], "10.1.2.3", id="garbage-stops"),
        pytest.param("10.1.2.3", ["1.1.1.1, garbage, 10.2.2.2"], "10.2.2.2", id="garbage-mid"),
        pytest.param("fd00::1", ["2001:db8::7"], "2001:db8::7", id="ipv6"),
        pytest.param(None, ["203.0.113.7"], "unknown", id="no-peer"),
    ],
)
def test_the_client_is_the_right_most_address_no_trusted_proxy_wrote(
    peer: str | None, forwarded: list[str], expected: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("10.1.2.3", ["203.0.113.7"], []) == "10.1.2.3"


def test_a_bad_trusted_proxy_names_the_flag() -> None:
    with pytest.raises(AuthConfigError, match="--trusted-proxy: 'ten-dot' is not an IP"):
        parse_proxy_network("ten-dot")
    assert parse_proxy_network("10.0.0.1") == ipaddress.ip_network("10.0.0.1/32")


def app_with(*, proxies: tuple[str, ...] = (), metrics_tokens: tuple[str, ...] = ()) -> Flask:
    settings = AuthSettings.build(
        admin_password=ADMIN_PASSWORD,
        login_limits=LoginLimits(per_client_burst=3, global_burst=1000),
        trusted_proxies=[parse_proxy_network(p) for p in proxies],
        metrics_tokens=metrics_tokens,
    )
    app = create_app(
        FakeController(),
        metrics_exposition=lambda: b"gitsync_up 1\n",
        webhook_secrets=lambda provider: [],
        auth=settings,
        clock=lambda: 0.0,
    )
    app.testing = True
    return app


def attempt(client: FlaskClient, peer: str, forwarded: str | None = None) -> int:
    token = login_form_token(client)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = client.post(
        "/login",
        data={"csrf_token": token, "password": "guess"},
        headers=headers,
        environ_base={"REMOTE_ADDR": peer},
    )
    return response.status_code


def test_behind_a_trusted_proxy_each_client_has_its_own_login_bucket() -> None:
    client = app_with(proxies=("10.0.0.0/8",)).test_client()

    alice = [attempt(client, "10.0.0.5", "203.0.113.7") for _ in range(4)]
    bob = attempt(client, "10.0.0.5", "203.0.113.8")
    spoofed = attempt(client, "10.0.0.5", "1.1.1.1, 203.0.113.7")  # still alice

    assert alice == [401, 401, 401, 429]
    assert bob == 401  # the proxy's address is not one bucket for everyone
    assert spoofed == 429


def test_a_client_that_is_not_a_trusted_proxy_cannot_pick_its_address() -> None:
    client = app_with(proxies=("10.0.0.0/8",)).test_client()

    codes = [attempt(client, "198.51.100.9", f"203.0.113.{n}") for n in range(4)]

    assert codes == [401, 401, 401, 429]


def test_metrics_need_the_token_when_one_is_configured() -> None:
    client = app_with(metrics_tokens=(METRICS_TOKEN,)).test_client()

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    good = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert (good.status_code, good.data) == (200, b"gitsync_up 1\n")
    assert app_with().test_client().get("/metrics").status_code == 200  # none configured


def test_metrics_on_their_own_address_are_not_on_the_main_one() -> None:
    settings = AuthSettings.build(metrics_tokens=(METRICS_TOKEN,))
    main = create_app(
        FakeController(),
        metrics_exposition=lambda: b"gitsync_up 1\n",
        webhook_secrets=lambda provider: [],
        serve_metrics=False,
        auth=settings,
    ).test_client()
    metrics = create_metrics_app(lambda: b"gitsync_up 1\n", settings).test_client()

    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert main.get("/metrics", headers=bearer).status_code != 200
    assert metrics.get("/metrics").status_code == 401
    assert metrics.get("/metrics", headers=bearer).status_code == 200
    assert metrics.get("/login").status_code == 404
