"""The webhook endpoint as a forge sees it: status codes, what reaches the controller, what is
counted - through Flask's test client, one app per test."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient

from gitsync.webhook import PushEvent
from gitsync.webhook.http import webhook_blueprint
from gitsync.webhook.replay import DeliveryLog

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhook"
SECRET = "0c6f1b5a-webhook-secret"
LIMIT = 1 << 20
GITHUB = {"X-GitHub-Event": "push", "Content-Type": "application/json"}


def github_push() -> bytes:
    return (FIXTURES / "github-push.json").read_bytes()


def github_signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {**GITHUB, "X-Hub-Signature-256": f"sha256={digest}"}


@dataclass
class Controller:
    """Stands in for the controller: records pushes and results, refreshes a fixed count."""

    refreshed: int = 3
    fail_with: Exception | None = None
    pushes: list[PushEvent] = field(default_factory=list)
    results: list[tuple[str, str]] = field(default_factory=list)

    def on_push(self, event: PushEvent) -> int:
        self.pushes.append(event)
        if self.fail_with is not None:
            raise self.fail_with
        return self.refreshed

    def on_result(self, provider: str, result: str) -> None:
        self.results.append((provider, result))


@pytest.fixture
def controller() -> Controller:
    return Controller()


MakeClient = Callable[..., FlaskClient]


@pytest.fixture
def make_client(controller: Controller) -> MakeClient:
    def make(
        secrets: dict[str, Sequence[str]] | None = None,
        max_bytes: int = LIMIT,
        *,
        allow_unsigned: bool = False,
        deliveries: DeliveryLog | None = None,
    ) -> FlaskClient:
        configured = {"github": [SECRET]} if secrets is None else secrets
        app = flask.Flask(__name__)
        app.register_blueprint(
            webhook_blueprint(
                controller.on_push,
                lambda provider: configured.get(provider, []),
                max_bytes=max_bytes,
                on_result=controller.on_result,
                allow_unsigned=allow_unsigned,
                deliveries=deliveries,
            )
        )
        return app.test_client()

    return make


def test_push_is_handed_to_the_controller_and_answered_202(
    make_client: MakeClient, controller: Controller
) -> None:
    body = github_push()

    response = make_client().post("/api/webhook", data=body, headers=github_signed(body))

    assert response.status_code == 202
    assert response.get_json() == {"refreshed": 3}
    assert [(e.provider, e.ref, e.after) for e in controller.pushes] == [
        ("github", "refs/heads/main", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c")
    ]
    assert "ssh://git@github.com/Acme-Corp/deploy-config" in controller.pushes[0].repo_urls
    assert controller.results == [("github", "accepted")]


@pytest.mark.parametrize(
    ("fixture", "headers", "provider"),
    [
        ("gitlab-push.json", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}, "gitlab"),
        ("gitea-push.json", {"X-Gitea-Event": "push", "X-GitHub-Event": "push"}, "gitea"),
        ("gogs-push.json", {"X-Gogs-Event": "push"}, "gogs"),
        ("bitbucket-push.json", {"X-Event-Key": "repo:push", "X-Hook-UUID": "u"}, "bitbucket"),
        ("bitbucket-server-push.json", {"X-Event-Key": "repo:refs_changed"}, "bitbucket-server"),
        ("generic-push.json", {"X-Gitsync-Event": "push"}, "generic"),
    ],
)
def test_every_provider_reaches_the_controller(
    make_client: MakeClient,
    controller: Controller,
    fixture: str,
    headers: dict[str, str],
    provider: str,
) -> None:
    client = make_client({"gitlab": [SECRET]}, allow_unsigned=True)

    response = client.post("/api/webhook", data=(FIXTURES / fixture).read_bytes(), headers=headers)

    assert response.status_code == 202
    assert [e.provider for e in controller.pushes] == [provider]
    assert controller.results == [(provider, "accepted")]


@pytest.mark.parametrize(
    ("fixture", "headers", "provider"),
    [
        ("gitea-push.json", {"X-Gitea-Event": "push", "X-GitHub-Event": "push"}, "gitea"),
        ("gogs-push.json", {"X-Gogs-Event": "push"}, "gogs"),
        ("gitlab-push.json", {"X-Gitlab-Event": "Push Hook"}, "gitlab"),
        ("bitbucket-push.json", {"X-Event-Key": "repo:push", "X-Hook-UUID": "u"}, "bitbucket"),
        ("bitbucket-server-push.json", {"X-Event-Key": "repo:refs_changed"}, "bitbucket-server"),
        ("generic-push.json", {"X-Gitsync-Event": "push"}, "generic"),
    ],
)
def test_a_secret_for_one_provider_leaves_no_other_provider_open(
    make_client: MakeClient,
    controller: Controller,
    fixture: str,
    headers: dict[str, str],
    provider: str,
) -> None:
    client = make_client({"github": [SECRET]})

    response = client.post("/api/webhook", data=(FIXTURES / fixture).read_bytes(), headers=headers)

    assert response.status_code == 401
    assert response.get_json() == {"error": f"no webhook secret is configured for {provider}"}
    assert controller.pushes == []
    assert controller.results == [(provider, "unauthorized")]


def test_a_signed_delivery_sent_again_is_409_and_the_controller_is_called_once(
    make_client: MakeClient, controller: Controller
) -> None:
    client = make_client()
    body = github_push()
    headers = {**github_signed(body), "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}

    first = client.post("/api/webhook", data=body, headers=headers)
    again = client.post("/api/webhook", data=body, headers=headers)
    new_id = client.post(
        "/api/webhook", data=body, headers={**headers, "X-GitHub-Delivery": "another-id"}
    )
    no_id = client.post("/api/webhook", data=body, headers=github_signed(body))

    assert first.status_code == 202
    assert [again.status_code, new_id.status_code, no_id.status_code] == [409, 409, 409]
    assert again.get_json() == {"error": "delivery already received"}
    assert len(controller.pushes) == 1
    assert [r for _, r in controller.results] == ["accepted", "replayed", "replayed", "replayed"]


def test_a_redelivery_with_the_same_id_is_refused_even_if_the_body_differs(
    make_client: MakeClient, controller: Controller
) -> None:
    client = make_client()
    body = github_push()
    reserialized = body.rstrip() + b"\n\n"
    delivery = {"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}

    first = client.post("/api/webhook", data=body, headers={**github_signed(body), **delivery})
    again = client.post(
        "/api/webhook", data=reserialized, headers={**github_signed(reserialized), **delivery}
    )

    assert (first.status_code, again.status_code) == (202, 409)
    assert len(controller.pushes) == 1


def test_a_bad_signature_is_not_remembered_as_a_delivery(
    make_client: MakeClient, controller: Controller
) -> None:
    client = make_client()
    body = github_push()

    forged = client.post("/api/webhook", data=body, headers=github_signed(body, "wrong"))
    real = client.post("/api/webhook", data=body, headers=github_signed(body))

    assert (forged.status_code, real.status_code) == (401, 202)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(github_signed(github_push(), "wrong-secret"), id="wrong-secret"),
        pytest.param(GITHUB, id="missing"),
        pytest.param({**GITHUB, "X-Hub-Signature-256": "sha256=nothex"}, id="garbage"),
    ],
)
def test_bad_signature_is_401_and_the_controller_is_not_called(
    make_client: MakeClient, controller: Controller, headers: dict[str, str]
) -> None:
    response = make_client().post("/api/webhook", data=github_push(), headers=headers)

    assert response.status_code == 401
    assert controller.pushes == []
    assert controller.results == [("github", "unauthorized")]


def test_signature_is_checked_before_the_body_is_parsed(
    make_client: MakeClient, controller: Controller
) -> None:
    response = make_client().post("/api/webhook", data=b"[" * 10_000, headers=GITHUB)

    assert response.status_code == 401
    assert controller.results == [("github", "unauthorized")]


def test_rotated_secrets_both_verify(make_client: MakeClient, controller: Controller) -> None:
    client = make_client({"github": ["old-secret", "new-secret"]})
    body = github_push()

    for n, secret in enumerate(("old-secret", "new-secret", "unknown-secret")):
        padded = body + b" " * n  # another delivery each time, not a replay
        client.post("/api/webhook", data=padded, headers=github_signed(padded, secret))

    assert [r for _, r in controller.results] == ["accepted", "accepted", "unauthorized"]


def test_unsigned_delivery_is_accepted_only_when_allowed(
    make_client: MakeClient, controller: Controller
) -> None:
    refused = make_client({}).post("/api/webhook", data=github_push(), headers=GITHUB)
    allowed = make_client({}, allow_unsigned=True).post(
        "/api/webhook", data=github_push(), headers=GITHUB
    )

    assert (refused.status_code, allowed.status_code) == (401, 202)
    assert len(controller.pushes) == 1


def test_body_over_the_limit_is_413(make_client: MakeClient, controller: Controller) -> None:
    body = b" " * (2 << 20)

    response = make_client().post("/api/webhook", data=body, headers=github_signed(body))

    assert response.status_code == 413
    assert controller.pushes == []
    assert controller.results == [("github", "too_large")]


def test_body_exactly_at_the_limit_is_read(make_client: MakeClient, controller: Controller) -> None:
    body = github_push()
    padded = body.rstrip() + b" " * 100

    response = make_client(max_bytes=len(padded)).post(
        "/api/webhook", data=padded, headers=github_signed(padded)
    )

    assert response.status_code == 202


class EndlessBody(io.RawIOBase):
    """An upload that does not end (``prefix`` then spaces); counts what the server read of it.

    It does stop at 64 MiB, so code that buffers the whole body fails an assertion instead of
    hanging the test run.
    """

    STOP = 64 << 20

    def __init__(self, prefix: bytes = b"") -> None:
        self.prefix = prefix
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self.STOP - self.read_bytes)
        head = self.prefix[self.read_bytes : self.read_bytes + size]
        buffer[:size] = head + b" " * (size - len(head))
        self.read_bytes += size
        return size


def chunked(stream: io.RawIOBase | io.BytesIO) -> dict[str, Any]:
    """The environ a WSGI server that de-chunks (waitress, gunicorn) gives: no CONTENT_LENGTH."""
    return {
        "wsgi.input": stream,
        "wsgi.input_terminated": True,
        "HTTP_TRANSFER_ENCODING": "chunked",
    }


def test_chunked_body_without_content_length_is_cut_off_at_the_limit(
    make_client: MakeClient, controller: Controller
) -> None:
    stream = EndlessBody(b'{"ref": "refs/heads/main", ')

    response = make_client({}, allow_unsigned=True).post(
        "/api/webhook", headers=GITHUB, environ_overrides=chunked(stream)
    )

    assert response.status_code == 413
    assert "CONTENT_LENGTH" not in response.request.environ
    assert LIMIT < stream.read_bytes <= LIMIT + 64 * 1024
    assert controller.pushes == []
    assert controller.results == [("github", "too_large")]


def test_small_chunked_body_is_read_to_its_end(
    make_client: MakeClient, controller: Controller
) -> None:
    body = github_push()

    response = make_client().post(
        "/api/webhook",
        headers=github_signed(body),
        environ_overrides=chunked(io.BytesIO(body)),
    )

    assert "CONTENT_LENGTH" not in response.request.environ
    assert response.status_code == 202
    assert len(controller.pushes) == 1


def test_declared_content_length_over_the_limit_is_refused_without_reading(
    make_client: MakeClient, controller: Controller
) -> None:
    stream = EndlessBody()

    response = make_client().post(
        "/api/webhook",
        headers=GITHUB,
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(2 << 30)},
    )

    assert response.status_code == 413
    assert stream.read_bytes == 0
    assert controller.results == [("github", "too_large")]


def test_content_length_shorter_than_the_body_limits_what_is_read(
    make_client: MakeClient, controller: Controller
) -> None:
    stream = EndlessBody(b"[]")

    response = make_client({}, allow_unsigned=True).post(
        "/api/webhook",
        headers=GITHUB,
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": "2"},
    )

    assert response.status_code == 400
    assert stream.read_bytes <= 64 * 1024
    assert controller.results == [("github", "malformed")]


def test_unknown_provider_is_400(make_client: MakeClient, controller: Controller) -> None:
    response = make_client().post(
        "/api/webhook", data=b"{}", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert "error" in response.get_json()
    assert controller.results == [("unknown", "unknown_provider")]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"repository": null, "ref": "refs/heads/main"}', id="null-repository"),
        pytest.param(
            json.dumps(
                {"repository": {"clone_url": 7}, "ref": "refs/heads/main", "after": "a" * 40}
            ).encode(),
            id="number-for-url",
        ),
        pytest.param(b"[]", id="top-level-list"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="deep-nesting"),
        pytest.param(b'{"ref": "\xff"}', id="non-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"repository": {"clone_url": "https://h/r"}, "ref": "main"}', id="bad-ref"),
    ],
)
def test_malformed_payload_is_400_with_an_error(
    make_client: MakeClient, controller: Controller, body: bytes
) -> None:
    response = make_client({}, allow_unsigned=True).post("/api/webhook", data=body, headers=GITHUB)

    assert response.status_code == 400
    assert set(response.get_json()) == {"error"}
    assert controller.pushes == []
    assert controller.results == [("github", "malformed")]


def test_bitbucket_server_clone_links_as_a_string_is_400(
    make_client: MakeClient, controller: Controller
) -> None:
    doc = json.loads((FIXTURES / "bitbucket-server-push.json").read_bytes())
    doc["repository"]["links"]["clone"] = "ssh://git@h/r.git"

    response = make_client({}, allow_unsigned=True).post(
        "/api/webhook", json=doc, headers={"X-Event-Key": "repo:refs_changed"}
    )

    assert response.status_code == 400
    assert "repository.links.clone" in response.get_json()["error"]
    assert controller.results == [("bitbucket-server", "malformed")]


def test_ping_is_200_and_refreshes_nothing(make_client: MakeClient, controller: Controller) -> None:
    body = (FIXTURES / "github-ping.json").read_bytes()
    headers = {**github_signed(body), "X-GitHub-Event": "ping"}

    response = make_client().post("/api/webhook", data=body, headers=headers)

    assert response.status_code == 200
    assert controller.pushes == []
    assert controller.results == [("github", "ignored")]


def test_controller_failure_is_500_without_details(
    make_client: MakeClient, controller: Controller
) -> None:
    controller.fail_with = RuntimeError("queue /var/run/secret-path is full")
    body = github_push()

    response = make_client().post("/api/webhook", data=body, headers=github_signed(body))

    assert response.status_code == 500
    assert "secret-path" not in response.get_data(as_text=True)
    assert controller.results == [("github", "error")]


def test_only_post_is_served(make_client: MakeClient) -> None:
    assert make_client().get("/api/webhook").status_code == 405


def test_on_result_is_optional(controller: Controller) -> None:
    app = flask.Flask(__name__)
    app.register_blueprint(webhook_blueprint(controller.on_push, lambda _: [], allow_unsigned=True))

    response = app.test_client().post("/api/webhook", data=github_push(), headers=GITHUB)

    assert response.status_code == 202
