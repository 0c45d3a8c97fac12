"""Push webhooks: each forge's payload read into the same PushEvent, signatures checked the way
each forge signs, and hostile bodies refused with WebhookPayloadError and nothing else."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitsync.source.revision import normalize_url
from gitsync.webhook import (
    PayloadTooLargeError,
    Provider,
    PushEvent,
    UnknownProviderError,
    WebhookPayloadError,
    detect_provider,
    parse_push,
    verify,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhook"
SECRET = "0c6f1b5a-webhook-secret"
OTHER_SECRET = "rotated-in-secret-7f3e"

# The headers each forge sends with a push (signature headers are added by ``signed``).
PUSH_HEADERS: dict[str, dict[str, str]] = {
    "github": {"X-GitHub-Event": "push", "Content-Type": "application/json"},
    "gitlab": {"X-Gitlab-Event": "Push Hook", "Content-Type": "application/json"},
    # Gitea sends Gogs' and GitHub's event headers too, for compatibility.
    "gitea": {"X-Gitea-Event": "push", "X-Gogs-Event": "push", "X-GitHub-Event": "push"},
    "gogs": {"X-Gogs-Event": "push", "Content-Type": "application/json"},
    "bitbucket": {
        "X-Event-Key": "repo:push",
        "X-Hook-UUID": "9f2c7a4e-3b1d-4c5e-8f6a-7b9c0d1e2f3a",
        "X-Request-UUID": "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6",
    },
    "bitbucket-server": {
        "X-Event-Key": "repo:refs_changed",
        "X-Request-Id": "5a0c3e92-1f4b-4d7e-9a61-8b2f0c7d4e13",
    },
    "generic": {"X-Gitsync-Event": "push", "Content-Type": "application/json"},
}
PUSH_FIXTURE = {
    "github": "github-push.json",
    "gitlab": "gitlab-push.json",
    "gitea": "gitea-push.json",
    "gogs": "gogs-push.json",
    "bitbucket": "bitbucket-push.json",
    "bitbucket-server": "bitbucket-server-push.json",
    "generic": "generic-push.json",
}
PROVIDERS = sorted(PUSH_HEADERS)
DELETE = object()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_doc(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def signature_headers(provider: str, body: bytes, secret: str) -> dict[str, str]:
    """What the forge adds when a secret is configured (from the forges' documentation)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "github": {"X-Hub-Signature-256": f"sha256={digest}"},
        "gitlab": {"X-Gitlab-Token": secret},
        "gitea": {
            "X-Gitea-Signature": digest,
            "X-Gogs-Signature": digest,
            "X-Hub-Signature-256": f"sha256={digest}",
        },
        "gogs": {"X-Gogs-Signature": digest},
        "bitbucket": {"X-Hub-Signature": f"sha256={digest}"},
        "bitbucket-server": {"X-Hub-Signature": f"sha256={digest}"},
        "generic": {"X-Signature": f"sha256={digest}"},
    }[provider]


def signed(provider: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {**PUSH_HEADERS[provider], **signature_headers(provider, body, secret)}


# --- parsing each provider's push ---------------------------------------------------------------

GITHUB_URLS = (
    "https://github.com/Acme-Corp/deploy-config",
    "ssh://git@github.com/Acme-Corp/deploy-config",
)
GITLAB_URLS = (
    "https://gitlab.example.com/infra/platform-config",
    "ssh://git@gitlab.example.com/infra/platform-config",
)
BITBUCKET_URLS = (
    "https://bitbucket.org/acme/k8s-config",
    "ssh://git@bitbucket.org/acme/k8s-config",
)


@pytest.mark.parametrize(
    ("fixture", "headers", "expected"),
    [
        pytest.param(
            "github-push.json",
            PUSH_HEADERS["github"],
            PushEvent(
                "github",
                GITHUB_URLS,
                "refs/heads/main",
                "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
                ("apps/guestbook/deployment.yaml",),
            ),
            id="github-branch",
        ),
        pytest.param(
            "github-tag-delete.json",
            PUSH_HEADERS["github"],
            PushEvent("github", GITHUB_URLS, "refs/tags/v1.3.0", "", ()),
            id="github-tag-deleted-zero-sha",
        ),
        pytest.param(
            "gitlab-push.json",
            PUSH_HEADERS["gitlab"],
            PushEvent(
                "gitlab",
                GITLAB_URLS,
                "refs/heads/release/2024.04",
                "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
                ("apps/api/values.yaml",),
            ),
            id="gitlab-branch-web-url-host-case-folded",
        ),
        pytest.param(
            "gitlab-tag-push.json",
            {"X-Gitlab-Event": "Tag Push Hook"},
            PushEvent(
                "gitlab",
                GITLAB_URLS,
                "refs/tags/v2.1.0",
                "5937ac0a7beb003549fc5fd26fc247adbce4a52e",
                (),
            ),
            id="gitlab-annotated-tag-reports-the-commit",
        ),
        pytest.param(
            "gitea-push.json",
            PUSH_HEADERS["gitea"],
            PushEvent(
                "gitea",
                (
                    "https://gitea.example.com/ops/manifests",
                    "ssh://git@gitea.example.com:2222/ops/manifests",
                ),
                "refs/heads/main",
                "bffeb74224043ba2feb48d137756c8a9331c449a",
                ("apps/redis/statefulset.yaml",),
            ),
            id="gitea-ssh-port-kept",
        ),
        pytest.param(
            "gogs-push.json",
            PUSH_HEADERS["gogs"],
            PushEvent(
                "gogs",
                (
                    "http://gogs.internal:3000/team/cluster-state",
                    "ssh://git@gogs.internal/team/cluster-state",
                ),
                "refs/heads/master",
                "e3b3c36b2a1f0b17a5eef16c8e4ce4fe7a0e0a2c",
                ("ingress.yaml",),
            ),
            id="gogs-sha-lowercased",
        ),
        pytest.param(
            "bitbucket-push.json",
            PUSH_HEADERS["bitbucket"],
            PushEvent(
                "bitbucket",
                BITBUCKET_URLS,
                "refs/heads/main",
                "10a5c3f2af0c2daf86d429c22f6a8c34d8a6ab91",
            ),
            id="bitbucket-cloud-ssh-derived",
        ),
        pytest.param(
            "bitbucket-tag-delete.json",
            PUSH_HEADERS["bitbucket"],
            PushEvent("bitbucket", BITBUCKET_URLS, "refs/tags/v0.9.0", ""),
            id="bitbucket-cloud-tag-deleted",
        ),
        pytest.param(
            "bitbucket-server-push.json",
            PUSH_HEADERS["bitbucket-server"],
            PushEvent(
                "bitbucket-server",
                (
                    "ssh://git@bitbucket.example.com:7999/plat/gitops",
                    "https://bitbucket.example.com/scm/plat/gitops",
                ),
                "refs/heads/main",
                "178864a7d521b6f5e720b386b2c2b0ef8563e0dc",
            ),
            id="bitbucket-server-update-preferred-over-delete-userinfo-dropped",
        ),
        pytest.param(
            "generic-push.json",
            PUSH_HEADERS["generic"],
            PushEvent(
                "generic",
                ("https://git.example.com/team/apps",),
                "refs/heads/main",
                "3f786850e387550fdab836ed7e6dc881de23001b",
            ),
            id="generic",
        ),
    ],
)
def test_parse_push_reads_each_provider(
    fixture: str, headers: dict[str, str], expected: PushEvent
) -> None:
    assert parse_push(headers, fixture_bytes(fixture)) == expected


@pytest.mark.parametrize(
    "application_url",
    [
        "https://github.com/Acme-Corp/deploy-config.git",
        "https://github.com/Acme-Corp/deploy-config",
        "git@github.com:Acme-Corp/deploy-config.git",
        "ssh://git@github.com/Acme-Corp/deploy-config",
        "https://token:x-oauth@GitHub.com/Acme-Corp/deploy-config.git/",
    ],
)
def test_push_matches_every_spelling_an_application_may_use(application_url: str) -> None:
    event = parse_push(PUSH_HEADERS["github"], fixture_bytes("github-push.json"))

    assert event is not None
    assert normalize_url(application_url) in event.repo_urls


def test_bitbucket_server_deletion_only_push_reports_the_deleted_ref() -> None:
    doc = fixture_doc("bitbucket-server-push.json")
    doc["changes"] = doc["changes"][:1]

    event = parse_push(PUSH_HEADERS["bitbucket-server"], json.dumps(doc).encode())

    assert event is not None
    assert (event.ref, event.after) == ("refs/heads/feature/old-idea", "")


# --- changed files: a hint for ordering, read leniently from forges ---------------------------

COMMIT_FILE_PROVIDERS = ["github", "gitea", "gogs", "gitlab"]


def with_commits(provider: str, commits: object) -> bytes:
    return mutated(fixture_doc(PUSH_FIXTURE[provider]), ("commits",), commits)


@pytest.mark.parametrize("provider", COMMIT_FILE_PROVIDERS)
def test_changed_paths_gather_every_commit_in_order_without_repeats(provider: str) -> None:
    commits = [
        {"id": "1" * 40, "added": ["apps/a/new.yaml"], "modified": ["apps/b/x.yaml"]},
        {"id": "2" * 40, "added": [], "modified": ["apps/b/x.yaml"], "removed": ["apps/c/y.yaml"]},
        {"id": "3" * 40, "added": None},  # a forge leaving a list out is not an error
    ]

    event = parse_push(PUSH_HEADERS[provider], with_commits(provider, commits))

    assert event is not None
    assert event.changed_paths == ("apps/a/new.yaml", "apps/b/x.yaml", "apps/c/y.yaml")


@pytest.mark.parametrize("provider", COMMIT_FILE_PROVIDERS)
@pytest.mark.parametrize(
    "commits",
    [
        pytest.param(DELETE, id="no-commits"),
        pytest.param("apps/a/x.yaml", id="commits-string"),
        pytest.param({"added": ["a"]}, id="commits-object"),
        pytest.param([None], id="commit-null"),
        pytest.param(["apps/a/x.yaml"], id="commit-string"),
        pytest.param([{"modified": "apps/a/x.yaml"}], id="modified-string"),
        pytest.param([{"modified": {"path": "a"}}], id="modified-object"),
        pytest.param([{"modified": [7]}], id="path-number"),
        pytest.param([{"modified": [["a"]]}], id="path-array"),
        pytest.param([{"modified": [""]}], id="path-empty"),
        pytest.param([{"modified": ["a\x00b"]}], id="path-nul"),
        pytest.param([{"modified": ["a/" * 3000]}], id="path-too-long"),
        pytest.param([{"modified": [f"f{i}" for i in range(10_001)]}], id="too-many-paths"),
        pytest.param(
            [{"added": [f"f{i}" for i in range(6000)], "removed": [f"g{i}" for i in range(6000)]}],
            id="too-many-over-lists",
        ),
    ],
)
def test_malformed_or_huge_file_lists_are_unknown_not_an_error(
    provider: str, commits: object
) -> None:
    event = parse_push(PUSH_HEADERS[provider], with_commits(provider, commits))

    assert event is not None
    assert event.changed_paths is None
    assert event.repo_urls  # the push itself still counts


@pytest.mark.parametrize("provider", ["bitbucket", "bitbucket-server"])
def test_bitbucket_payloads_do_not_say_which_files_changed(provider: str) -> None:
    event = parse_push(PUSH_HEADERS[provider], fixture_bytes(PUSH_FIXTURE[provider]))

    assert event is not None
    assert event.changed_paths is None


GENERIC_BODY = {
    "repository": {"url": "https://git.example.com/team/apps"},
    "ref": "refs/heads/main",
}


def test_generic_paths_are_the_changed_files() -> None:
    body = json.dumps({**GENERIC_BODY, "paths": ["apps/a/x.yaml", "apps/a/x.yaml", "b"]}).encode()

    event = parse_push(PUSH_HEADERS["generic"], body)

    assert event is not None
    assert event.changed_paths == ("apps/a/x.yaml", "b")


def test_generic_paths_over_the_limit_are_unknown() -> None:
    body = json.dumps({**GENERIC_BODY, "paths": [f"f{i}" for i in range(10_001)]}).encode()

    event = parse_push(PUSH_HEADERS["generic"], body)

    assert event is not None
    assert event.changed_paths is None


@pytest.mark.parametrize(
    "paths", ["apps/a/x.yaml", {"a": 1}, [1], [""], [None], ["a" * 5000]], ids=repr
)
def test_generic_paths_of_another_shape_are_refused(paths: object) -> None:
    body = json.dumps({**GENERIC_BODY, "paths": paths}).encode()

    with pytest.raises(WebhookPayloadError, match=r"body\.paths") as caught:
        parse_push(PUSH_HEADERS["generic"], body)

    assert type(caught.value) is WebhookPayloadError
    assert "aaaa" not in str(caught.value)


def test_generic_after_is_optional() -> None:
    body = b'{"repository": {"url": "git@git.example.com:team/apps.git"}, "ref": "refs/tags/v3"}'

    event = parse_push(PUSH_HEADERS["generic"], body)

    assert event == PushEvent(
        "generic", ("ssh://git@git.example.com/team/apps",), "refs/tags/v3", ""
    )


@pytest.mark.parametrize("provider", ["github", "gitea", "gogs", "generic"])
def test_form_encoded_delivery_reads_the_payload_field(provider: str) -> None:
    raw = fixture_bytes(PUSH_FIXTURE[provider])
    body = urlencode({"payload": raw.decode()}).encode()
    headers = {**PUSH_HEADERS[provider], "Content-Type": "application/x-www-form-urlencoded"}

    assert parse_push(headers, body) == parse_push(PUSH_HEADERS[provider], raw)


@pytest.mark.parametrize(
    "body",
    [b"zen=hello", b"payload=%FF%FE", b"payload=" + b"&x=1" * 100, "payload=é".encode()],
    ids=["no-payload-field", "payload-not-utf8", "too-many-fields", "body-not-ascii"],
)
def test_bad_form_bodies_are_refused(body: bytes) -> None:
    headers = {**PUSH_HEADERS["github"], "Content-Type": "application/x-www-form-urlencoded"}

    with pytest.raises(WebhookPayloadError):
        parse_push(headers, body)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    doc = fixture_doc("github-push.json")
    doc["head_commit"]["message"] = "[{" * 5000 + ' "quoted \\" [' + "}]" * 5000

    event = parse_push(PUSH_HEADERS["github"], json.dumps(doc).encode())

    assert event is not None
    assert event.ref == "refs/heads/main"


@pytest.mark.parametrize(
    ("ref", "branch", "tag"),
    [
        ("refs/heads/main", "main", None),
        ("refs/heads/release/2024.04", "release/2024.04", None),
        ("refs/tags/v1", None, "v1"),
        ("refs/pull/12/head", None, None),
    ],
)
def test_branch_and_tag_names(ref: str, branch: str | None, tag: str | None) -> None:
    event = PushEvent("generic", ("https://h/r",), ref, "")

    assert (event.branch, event.tag) == (branch, tag)


# --- events that move no ref --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param(
            {"X-GitHub-Event": "ping"}, fixture_bytes("github-ping.json"), id="github-ping"
        ),
        pytest.param({"X-GitHub-Event": "pull_request"}, b"{}", id="github-pr"),
        pytest.param({"X-Gitlab-Event": "Merge Request Hook"}, b"{}", id="gitlab-mr"),
        pytest.param({"X-Gitea-Event": "create", "X-GitHub-Event": "create"}, b"{}", id="gitea"),
        pytest.param({"X-Gogs-Event": "issues"}, b"{}", id="gogs-issues"),
        pytest.param(
            {"X-Event-Key": "pullrequest:created", "X-Hook-UUID": "u"}, b"{}", id="bitbucket-pr"
        ),
        pytest.param(
            {"X-Event-Key": "diagnostics:ping"},
            fixture_bytes("bitbucket-server-ping.json"),
            id="bitbucket-server-test-connection",
        ),
        pytest.param({"X-Gitsync-Event": "ping"}, b"", id="generic-ping"),
    ],
)
def test_events_that_move_no_ref_are_none(headers: dict[str, str], body: bytes) -> None:
    assert parse_push(headers, body) is None


# --- provider detection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "provider"),
    [
        ({"X-GitHub-Event": "push"}, "github"),
        ({"x-github-event": "push"}, "github"),
        ({"X-GITLAB-EVENT": "Push Hook"}, "gitlab"),
        (PUSH_HEADERS["gitea"], "gitea"),
        ({"X-Gogs-Event": "push", "X-GitHub-Event": "push"}, "gogs"),
        ({"X-Event-Key": "repo:push"}, "bitbucket"),
        ({"X-Event-Key": "pullrequest:created", "X-Hook-UUID": "u"}, "bitbucket"),
        ({"X-Event-Key": "repo:refs_changed"}, "bitbucket-server"),
        ({"X-Event-Key": "pr:opened", "X-Request-Id": "r"}, "bitbucket-server"),
        ({"X-Gitsync-Event": "push"}, "generic"),
        ({"X-Signature": "sha256=00"}, "generic"),
        ({"Content-Type": "application/json", "User-Agent": "curl/8.5"}, None),
        ({}, None),
    ],
)
def test_detect_provider(headers: dict[str, str], provider: str | None) -> None:
    assert detect_provider(headers) == provider


def test_unknown_provider_is_a_payload_error() -> None:
    with pytest.raises(UnknownProviderError) as caught:
        parse_push({"User-Agent": "curl/8.5"}, b"{}")

    assert isinstance(caught.value, WebhookPayloadError)


def test_provider_names_are_the_plain_strings() -> None:
    assert sorted(p.value for p in Provider) == PROVIDERS


# --- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_good_signature_is_accepted(provider: str) -> None:
    body = fixture_bytes(PUSH_FIXTURE[provider])

    assert verify(provider, signed(provider, body), body, [SECRET])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_signature_with_another_secret_is_rejected(provider: str) -> None:
    body = fixture_bytes(PUSH_FIXTURE[provider])

    assert not verify(provider, signed(provider, body, "guessed"), body, [SECRET])


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "gitlab"])
def test_signature_of_another_body_is_rejected(provider: str) -> None:
    body = fixture_bytes(PUSH_FIXTURE[provider])
    tampered = body + b" "  # still valid JSON, one byte different

    assert not verify(provider, signed(provider, body), tampered, [SECRET])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_missing_signature_is_rejected_when_a_secret_is_configured(provider: str) -> None:
    body = fixture_bytes(PUSH_FIXTURE[provider])

    assert not verify(provider, PUSH_HEADERS[provider], body, [SECRET])


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("secrets", [[], [""]], ids=["none", "empty-string"])
def test_unsigned_is_refused_without_a_secret_unless_allowed(
    provider: str, secrets: list[str]
) -> None:
    body = fixture_bytes(PUSH_FIXTURE[provider])

    assert not verify(provider, PUSH_HEADERS[provider], body, secrets)
    assert verify(provider, PUSH_HEADERS[provider], body, secrets, allow_unsigned=True)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_allowing_unsigned_does_not_let_a_bad_signature_through(provider: str) -> None:
    body = fixture_bytes(PUSH_FIXTURE[provider])

    headers = signed(provider, body, "guessed")
    assert not verify(provider, headers, body, [SECRET], allow_unsigned=True)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_any_configured_secret_verifies_during_rotation(provider: str) -> None:
    body = fixture_bytes(PUSH_FIXTURE[provider])
    secrets = [SECRET, OTHER_SECRET]

    assert verify(provider, signed(provider, body, SECRET), body, secrets)
    assert verify(provider, signed(provider, body, OTHER_SECRET), body, secrets)
    assert not verify(provider, signed(provider, body, "retired"), body, secrets)


def test_signature_header_name_is_case_insensitive() -> None:
    body = fixture_bytes("github-push.json")
    headers = {k.lower(): v for k, v in signed("github", body).items()}

    assert verify("github", headers, body, [SECRET])


@pytest.mark.parametrize(
    ("provider", "header", "value"),
    [
        ("github", "X-Hub-Signature-256", ""),
        ("github", "X-Hub-Signature-256", "sha256="),
        ("github", "X-Hub-Signature-256", "sha256=zz"),
        ("github", "X-Hub-Signature-256", "sha1=" + "0" * 40),
        ("github", "X-Hub-Signature-256", "sha256=" + "é" * 64),
        ("gitea", "X-Gitea-Signature", "sha256=" + "0" * 64),
        ("bitbucket-server", "X-Hub-Signature", "0" * 64),
        ("gitlab", "X-Gitlab-Token", "\ud800"),
        ("gitlab", "X-Gitlab-Token", SECRET[:-1]),
        ("generic", "X-Signature", "sha256=" + "0" * 65),
    ],
)
def test_malformed_signature_headers_are_rejected(provider: str, header: str, value: str) -> None:
    body = fixture_bytes(PUSH_FIXTURE[provider])
    headers = {**PUSH_HEADERS[provider], header: value}

    assert not verify(provider, headers, body, [SECRET])


def test_github_legacy_sha1_header_alone_is_not_enough() -> None:
    body = fixture_bytes("github-push.json")
    sha1 = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    headers = {**PUSH_HEADERS["github"], "X-Hub-Signature": f"sha1={sha1}"}

    assert not verify("github", headers, body, [SECRET])


def test_unknown_provider_never_verifies_when_a_secret_is_configured() -> None:
    assert not verify("sourcehut", {"X-Signature": "sha256=00"}, b"{}", [SECRET])


# --- hostile and malformed bodies ---------------------------------------------------------------


def mutated(doc: Any, path: tuple[str | int, ...], value: object) -> bytes:
    doc = copy.deepcopy(doc)
    target = doc
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc).encode()


# Mutations that every provider's payload must survive as a WebhookPayloadError.
COMMON_MUTATIONS: list[tuple[str, tuple[str | int, ...], object]] = [
    ("null-repository", ("repository",), None),
    ("repository-missing", ("repository",), DELETE),
    ("repository-empty-array", ("repository",), []),
    ("repository-string", ("repository",), "https://github.com/a/b"),
    ("repository-number", ("repository",), 7),
]
GITHUB_LIKE_MUTATIONS: list[tuple[str, tuple[str | int, ...], object]] = [
    ("ref-number", ("ref",), 42),
    ("ref-null", ("ref",), None),
    ("ref-missing", ("ref",), DELETE),
    ("ref-short-name", ("ref",), "main"),
    ("ref-bare-prefix", ("ref",), "refs/"),
    ("ref-with-newline", ("ref",), "refs/heads/main\nX-Injected: 1"),
    ("ref-too-long", ("ref",), "refs/heads/" + "a" * 2000),
    ("after-number", ("after",), 1234567),
    ("after-missing", ("after",), DELETE),
    ("after-not-hex", ("after",), "HEAD~1"),
    ("clone-url-number", ("repository", "clone_url"), 443),
    ("clone-url-empty", ("repository", "clone_url"), ""),
    ("clone-url-array", ("repository", "clone_url"), ["https://github.com/a/b"]),
    ("clone-url-too-long", ("repository", "clone_url"), "https://h/" + "a" * 2100),
    ("ssh-url-object", ("repository", "ssh_url"), {"href": "git@h:a/b"}),
]
PROVIDER_MUTATIONS: dict[str, list[tuple[str, tuple[str | int, ...], object]]] = {
    "github": GITHUB_LIKE_MUTATIONS,
    "gitea": GITHUB_LIKE_MUTATIONS,
    "gogs": GITHUB_LIKE_MUTATIONS,
    "gitlab": [
        ("project-null", ("project",), None),
        ("project-missing", ("project",), DELETE),
        ("project-array", ("project",), []),
        ("git-http-url-number", ("project", "git_http_url"), 8080),
        ("git-ssh-url-bool", ("project", "git_ssh_url"), True),
        ("ref-number", ("ref",), 1),
        ("ref-tag-name", ("ref",), "v1.0"),
        ("checkout-sha-number", ("checkout_sha",), 5),
        ("checkout-sha-array", ("checkout_sha",), []),
    ],
    "bitbucket": [
        ("links-null", ("repository", "links"), None),
        ("links-html-string", ("repository", "links", "html"), "https://bitbucket.org/a/b"),
        ("links-html-href-number", ("repository", "links", "html", "href"), 1),
        ("links-html-href-missing", ("repository", "links", "html", "href"), DELETE),
        ("push-null", ("push",), None),
        ("changes-empty", ("push", "changes"), []),
        ("changes-string", ("push", "changes"), "main"),
        ("change-null", ("push", "changes", 0), None),
        ("change-number", ("push", "changes", 0), 3),
        ("new-type-unknown", ("push", "changes", 0, "new", "type"), "named_branch"),
        ("new-type-number", ("push", "changes", 0, "new", "type"), 1),
        ("new-name-number", ("push", "changes", 0, "new", "name"), 12),
        ("new-name-empty", ("push", "changes", 0, "new", "name"), ""),
        ("new-name-space", ("push", "changes", 0, "new", "name"), "main branch"),
        ("new-target-null", ("push", "changes", 0, "new", "target"), None),
        ("new-target-hash-number", ("push", "changes", 0, "new", "target", "hash"), 10),
        ("new-array", ("push", "changes", 0, "new"), []),
        ("old-null-too", ("push", "changes", 0), {"new": None, "old": None}),
    ],
    "bitbucket-server": [
        ("links-null", ("repository", "links"), None),
        ("links-clone-string", ("repository", "links", "clone"), "ssh://git@h/p/r.git"),
        ("links-clone-empty", ("repository", "links", "clone"), []),
        ("links-clone-object", ("repository", "links", "clone"), {"href": "ssh://h/r"}),
        ("clone-entry-null", ("repository", "links", "clone", 0), None),
        ("clone-entry-string", ("repository", "links", "clone", 0), "ssh://h/r"),
        ("clone-href-number", ("repository", "links", "clone", 0, "href"), 7999),
        ("clone-href-missing", ("repository", "links", "clone", 1, "href"), DELETE),
        ("changes-empty", ("changes",), []),
        ("changes-string", ("changes",), "refs/heads/main"),
        ("changes-null", ("changes",), None),
        ("change-null", ("changes", 1), None),
        ("ref-id-number", ("changes", 1, "refId"), 1),
        ("ref-id-short", ("changes", 1, "refId"), "main"),
        ("ref-id-missing", ("changes", 1, "refId"), DELETE),
        ("to-hash-number", ("changes", 1, "toHash"), 0),
        ("to-hash-null", ("changes", 1, "toHash"), None),
        ("change-type-number", ("changes", 0, "type"), 2),
    ],
    "generic": [
        ("url-number", ("repository", "url"), 1),
        ("url-null", ("repository", "url"), None),
        ("url-missing", ("repository", "url"), DELETE),
        ("url-too-long", ("repository", "url"), "https://h/" + "a" * 2100),
        ("url-with-space", ("repository", "url"), "https://h/a b"),
        ("ref-missing", ("ref",), DELETE),
        ("ref-number", ("ref",), 3),
        ("after-number", ("after",), 3),
        ("after-too-long", ("after",), "a" * 65),
    ],
}

RAW_BODIES: list[tuple[str, bytes]] = [
    ("top-level-list", b"[]"),
    ("top-level-list-of-payload", b'[{"repository": {"url": "https://h/r"}}]'),
    ("top-level-string", b'"push"'),
    ("top-level-number", b"42"),
    ("top-level-null", b"null"),
    ("empty-body", b""),
    ("whitespace-body", b" \n"),
    ("truncated", b'{"repository": {"url": "https://h/r"'),
    ("deep-arrays-10000", b"[" * 10_000 + b"]" * 10_000),
    ("deep-objects-10000", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    ("deep-unclosed-500000", b"[" * 500_000),
    ("deep-under-repository", b'{"repository": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
    ("non-utf8", b'{"ref": "refs/heads/\xff\xfe"}'),
    ("latin1", '{"ref": "refs/heads/café"}'.encode("latin-1")),
    ("utf16", '{"ref": "refs/heads/main"}'.encode("utf-16")),
    ("nan", b'{"ref": NaN}'),
    ("huge-int", b'{"after": ' + b"9" * 10_000 + b"}"),
    ("unterminated-escaped-string", b'"' + b'\\"' * 100_000),
]


def malformed_cases() -> list[Any]:
    cases = []
    for provider in PROVIDERS:
        doc = fixture_doc(PUSH_FIXTURE[provider])
        mutations = COMMON_MUTATIONS + PROVIDER_MUTATIONS[provider]
        for name, path, value in mutations:
            cases.append(pytest.param(provider, mutated(doc, path, value), id=f"{provider}-{name}"))
        for name, body in RAW_BODIES:
            cases.append(pytest.param(provider, body, id=f"{provider}-{name}"))
    return cases


@pytest.mark.parametrize(("provider", "body"), malformed_cases())
def test_malformed_payloads_raise_webhook_payload_error(provider: str, body: bytes) -> None:
    with pytest.raises(WebhookPayloadError) as caught:
        parse_push(PUSH_HEADERS[provider], body)

    assert type(caught.value) is WebhookPayloadError
    assert len(str(caught.value)) < 200


def test_error_messages_name_the_field_not_the_value() -> None:
    doc = fixture_doc("bitbucket-server-push.json")
    body = mutated(doc, ("repository", "links", "clone"), "ssh://attacker-controlled")

    with pytest.raises(WebhookPayloadError, match=r"repository\.links\.clone") as caught:
        parse_push(PUSH_HEADERS["bitbucket-server"], body)

    assert "attacker" not in str(caught.value)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_body_over_the_limit_is_refused_before_parsing(provider: str) -> None:
    body = fixture_bytes(PUSH_FIXTURE[provider])

    with pytest.raises(PayloadTooLargeError):
        parse_push(PUSH_HEADERS[provider], body, max_bytes=len(body) - 1)
    assert parse_push(PUSH_HEADERS[provider], body, max_bytes=len(body)) is not None


def test_importing_the_core_does_not_import_flask() -> None:
    code = "import sys, gitsync.webhook; sys.exit('flask' in sys.modules)"

    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- fuzzing ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["refs/heads/main", "git@h:o/r.git", "https://h/o/r", "0" * 40, "ab" * 20]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def paths_of(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths_of(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths_of(child, (*prefix, index))
    return found


FIXTURE_PATHS = {p: paths_of(fixture_doc(PUSH_FIXTURE[p])) for p in PROVIDERS}
FUZZ = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


def parse_or_payload_error(provider: str, body: bytes) -> None:
    try:
        result = parse_push(PUSH_HEADERS[provider], body)
    except WebhookPayloadError:
        return
    assert result is None or isinstance(result, PushEvent)
    if result is not None:
        assert result.repo_urls
        assert all(isinstance(u, str) and len(u) <= 2048 for u in result.repo_urls)
        assert result.ref.startswith("refs/")
        if result.changed_paths is not None:
            assert len(result.changed_paths) <= 10_000
            assert all(isinstance(p, str) and 0 < len(p) <= 4096 for p in result.changed_paths)


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(body=st.binary(max_size=4096))
def test_fuzz_random_bytes(provider: str, body: bytes) -> None:
    parse_or_payload_error(provider, body)


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(value=json_values)
def test_fuzz_random_json(provider: str, value: object) -> None:
    parse_or_payload_error(provider, json.dumps(value).encode())


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(data=st.data())
def test_fuzz_real_payload_with_one_subtree_replaced(provider: str, data: st.DataObject) -> None:
    doc = fixture_doc(PUSH_FIXTURE[provider])
    path = data.draw(st.sampled_from(FIXTURE_PATHS[provider]), label="path")
    value = data.draw(st.one_of(st.just(DELETE), json_values), label="value")

    parse_or_payload_error(provider, mutated(doc, path, value))
