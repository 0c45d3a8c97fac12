"""The notification core without a cluster: events derived from a status, the specs of
NotificationProvider and NotificationRule, the template language, each provider type's request
and the dedupe plan."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from gitsync.application_status import (
    ApplicationStatus,
    HealthSummary,
    HookStatus,
    OperationState,
    ResourceResult,
    ResourceStatus,
    SourceRevision,
    SyncSummary,
)
from gitsync.notify.events import AppFacts, EventName, NotificationEvent, events_of
from gitsync.notify.payloads import (
    Credentials,
    PayloadError,
    build_email,
    build_request,
    commit_status_url,
    forge_project,
)
from gitsync.notify.plan import SENT_LIMIT, dedupe_key, due, record
from gitsync.notify.spec import (
    NotificationSpecError,
    ProviderType,
    parse_provider,
    parse_rule,
)
from gitsync.notify.template import CUT_NOTE, MAX_OUTPUT, Template, TemplateError

SHA = "a" * 40
OLD = "b" * 40
APP = AppFacts(
    "team-a",
    "shop",
    {"tier": "web"},
    "https://github.com/acme/shop.git",
    True,
    "https://gitsync.example.com",
)
SOURCE = SourceRevision(SHA, "main", "add the cart", "Ada <ada@example.com>", "", "")


def status(**kw: Any) -> ApplicationStatus:
    base: dict[str, Any] = {
        "sync": SyncSummary("Synced", SHA),
        "health": HealthSummary("Healthy"),
        "source_revision": SOURCE,
        "last_applied_revision": SHA,
        "operation_state": OperationState(id="op1", phase="Succeeded", revision=SHA),
    }
    base.update(kw)
    return ApplicationStatus(**base)


def names(st: ApplicationStatus, app: AppFacts = APP) -> list[str]:
    return [str(e.name) for e in events_of(app, st)]


# -- events ----------------------------------------------------------------------------------


def test_a_live_and_healthy_revision_is_deployed_and_its_sync_succeeded() -> None:
    events = events_of(APP, status())
    assert [str(e.name) for e in events] == ["sync-succeeded", "deployed"]
    deployed = events[1]
    assert (deployed.revision, deployed.commit_message, deployed.author) == (
        SHA,
        "add the cart",
        "Ada <ada@example.com>",
    )
    assert deployed.url == "https://gitsync.example.com/applications/team-a/shop"


def test_not_deployed_until_healthy_nor_while_a_sync_runs_nor_before_it_was_applied() -> None:
    assert "deployed" not in names(status(health=HealthSummary("Progressing")))
    running = OperationState(id="op2", phase="Running", revision=SHA)
    assert names(status(operation_state=running)) == ["sync-running"]
    assert "deployed" not in names(status(last_applied_revision=OLD))


def test_a_failed_sync_names_the_objects_that_failed() -> None:
    op = OperationState(
        id="op3",
        phase="Failed",
        revision=SHA,
        message="one or more objects failed",
        resources=(
            ResourceResult("", "ConfigMap", "shop", "ok", "Synced", "configured"),
            ResourceResult("apps", "Deployment", "shop", "web", "SyncFailed", "field is immutable"),
        ),
    )
    (event,) = [e for e in events_of(APP, status(operation_state=op)) if e.name == "sync-failed"]
    assert event.reason == "Deployment/web: field is immutable"


def test_degraded_out_of_sync_hooks_and_rollouts() -> None:
    st = status(
        health=HealthSummary("Degraded", "web: CrashLoopBackOff"),
        sync=SyncSummary("OutOfSync", SHA),
        operation_state=OperationState(
            id="op4",
            phase="Failed",
            revision=SHA,
            hooks=(HookStatus("batch", "Job", "shop", "migrate", "PreSync", "Failed", "exit 1"),),
        ),
        resources=(
            ResourceStatus(
                "gitsync.dev",
                "Rollout",
                "shop",
                "web",
                "Synced",
                HealthSummary("Suspended", "paused at step 2"),
            ),
        ),
    )
    manual = AppFacts("team-a", "shop", automated=False)
    got = names(st, manual)
    assert got == ["sync-failed", "hook-failed", "health-degraded", "out-of-sync", "rollout-paused"]
    assert "out-of-sync" not in names(st)  # automated: it syncs by itself, nobody to tell
    paused = next(e for e in events_of(manual, st) if e.name == "rollout-paused")
    assert "waiting for promotion" in paused.reason


def test_a_deletion_operation_is_no_sync_event() -> None:
    op = OperationState(id="d", phase="Running", revision=SHA, deletion_step="PreDelete")
    assert "sync-running" not in names(status(operation_state=op))


# -- specs -----------------------------------------------------------------------------------


def provider_doc(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "chat", "namespace": "team-a"}, "spec": spec}


def rule_doc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"providerRefs": [{"name": "chat"}], "events": ["deployed"]}
    base.update(spec)
    return {"metadata": {"name": "deploys", "namespace": "team-a"}, "spec": base}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"type": "slack", "address": "https://hooks.example.com/x", "chanel": "#d"},
            "spec.chanel",
        ),
        ({"type": "pager", "address": "https://x"}, "spec.type"),
        ({"type": "slack"}, "spec.address"),
        ({"type": "webhook", "address": "ftp://x"}, "spec.address"),
        ({"type": "github"}, "spec.secretRef"),
        (
            {"type": "github", "secretRef": {"name": "t", "namespace": "other"}},
            "spec.secretRef.namespace",
        ),
        ({"type": "teams", "address": "https://x", "channel": "#c"}, "spec.channel"),
        ({"type": "webhook", "address": "https://x", "timeout": 600}, "spec.timeout"),
        ({"type": "smtp", "address": "mail.example.com:587"}, "spec.to"),
        ({"type": "smtp", "address": "https://mail", "to": ["ops@example.com"]}, "spec.address"),
        (
            {"type": "smtp", "address": "mail:25", "to": ["ops@example.com\nBcc: x@y"]},
            r"spec.to\[0\]",
        ),
        ({"type": "webhook", "address": "https://x", "to": ["ops@example.com"]}, "spec.to"),
    ],
)
def test_a_bad_provider_is_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(NotificationSpecError, match=field.replace(".", r"\.")):
        parse_provider(provider_doc(**spec))


def test_an_email_carries_names_in_its_subject_and_the_template_in_its_body() -> None:
    p = provider("smtp", address="mail.example.com:587", to=["ops@example.com", "dev@example.com"])
    email = build_email(p, FAILED, template=Template.parse("{{reason}}"))
    assert email.message["Subject"] == f"[gitsync] team-a/shop: sync-failed at {SHA[:12]}"
    assert email.message["To"] == "ops@example.com, dev@example.com"
    assert email.recipients == ("ops@example.com", "dev@example.com")
    assert email.message.get_content().strip() == "Deployment/web: field is immutable"
    assert p.start_tls and p.sender == "gitsync@localhost"


def test_providers_parse() -> None:
    p = parse_provider(provider_doc(type="github", secretRef={"name": "forge-token"}))
    assert (p.type, p.secret_name, p.namespace, p.timeout) == (
        ProviderType.GITHUB,
        "forge-token",
        "team-a",
        10.0,
    )
    assert parse_provider(provider_doc(type="slack", secretRef={"name": "hook"})).address == ""


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"event": ["deployed"]}, "spec.event"),
        ({"events": ["deployed", "rollout-promotd"]}, r"spec.events\[1\]"),
        ({"events": []}, "spec.events"),
        ({"providerRefs": []}, "spec.providerRefs"),
        (
            {"providerRefs": [{"name": "chat", "namespace": "other"}]},
            r"spec.providerRefs\[0\].namespace",
        ),
        ({"applications": {"matchName": ["x"]}}, "spec.applications.matchName"),
        ({"applications": {"namespaces": ["*"]}}, "spec.applications.namespaces"),
        ({"template": "{{ secret.token }}"}, "spec.template"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(NotificationSpecError, match=field):
        parse_rule(rule_doc(**spec))


def test_rules_select_by_name_globs_and_labels() -> None:
    rule = parse_rule(
        rule_doc(applications={"matchNames": ["shop*"], "matchLabels": {"tier": "web"}})
    )
    assert rule.selects("shop", {"tier": "web"})
    assert rule.selects("shop-eu", {"tier": "web", "x": "y"})
    assert not rule.selects("shop", {"tier": "db"})
    assert not rule.selects("cart", {"tier": "web"})
    assert parse_rule(rule_doc()).selects("anything", {})


# -- templates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ secret.token }}",  # reading a Secret: there is no such field
        "{{ token }}",  # a plain name, but not one of the event's fields
        "{{ ''.__class__.__mro__ }}",  # attribute access, code
        "{{ app | upper }}",  # filters
        "{% for x in range(10**9) %}x{% endfor %}",  # statements, loops
        "{{ lookup('v1', 'Secret') }}",
        "{{ app",
        "x" * 5000,  # too long a source
    ],
)
def test_templates_that_try_more_than_fields_are_refused(source: str) -> None:
    with pytest.raises(TemplateError):
        Template.parse(source)


def test_a_template_expanding_beyond_the_limit_is_cut_and_says_so() -> None:
    template = Template.parse("{{reason}}" * 400)  # 4000 characters of source
    rendered = template.render({"reason": "x" * 1024})  # would be 400 KiB
    assert rendered.cut
    assert len(rendered.text) == MAX_OUTPUT + len(CUT_NOTE)
    assert rendered.text.endswith(CUT_NOTE)


def test_fields_render_and_an_unknown_one_is_named() -> None:
    with pytest.raises(TemplateError, match="nothingHere"):
        Template.parse("{{nothingHere}}")
    assert (
        Template.parse("{{ app }} at {{shortRevision}}")
        .render({"app": "shop", "shortRevision": "abc"})
        .text
        == "shop at abc"
    )


# -- payloads --------------------------------------------------------------------------------

EVENT = NotificationEvent(
    EventName.DEPLOYED, "team-a", "shop", SHA, "", "add <!channel> the cart", "Ada", "https://ui/x"
)
FAILED = NotificationEvent(
    EventName.SYNC_FAILED, "team-a", "shop", SHA, "Deployment/web: field is immutable"
)
SECRET = Credentials(token="s3cr3t-token-value", password="hunter2-password")


def provider(ptype: str, **spec: Any) -> Any:
    return parse_provider(provider_doc(type=ptype, **spec))


def test_the_generic_webhook_body_and_its_hmac_signature() -> None:
    req = build_request(provider("webhook", address="https://hooks.example.com/in"), EVENT, SECRET)
    body = json.loads(req.body)
    assert body["event"] == "deployed"
    assert body["application"] == {"namespace": "team-a", "name": "shop"}
    assert (body["revision"], body["url"]) == (SHA, "https://ui/x")
    assert body["message"] == f"team-a/shop: deployed at {SHA[:12]}"
    expected = hmac.new(b"s3cr3t-token-value", req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Signature"] == f"sha256={expected}"
    assert req.url == "https://hooks.example.com/in"


def test_slack_and_teams_messages() -> None:
    slack = build_request(
        provider("slack", address="https://hooks.slack.com/services/T/B/X", channel="#deploys"),
        EVENT,
        Credentials(),
    )
    doc = json.loads(slack.body)
    assert doc["channel"] == "#deploys"
    assert doc["attachments"][0]["color"] == "good"
    assert doc["attachments"][0]["title_link"] == "https://ui/x"
    assert "<!channel>" not in slack.body.decode()  # a commit message cannot ping the channel
    teams = json.loads(
        build_request(
            provider("teams", address="https://x.webhook.office.com/y"), FAILED, Credentials()
        ).body
    )
    assert teams["@type"] == "MessageCard"
    assert teams["themeColor"] == "E81123"
    assert {"name": "Reason", "value": "Deployment/web: field is immutable"} in teams["sections"][
        0
    ]["facts"]


@pytest.mark.parametrize(
    ("ptype", "address", "url", "auth_header", "state_key"),
    [
        (
            "github",
            "",
            f"https://api.github.com/repos/acme/shop/statuses/{SHA}",
            "Authorization",
            "context",
        ),
        (
            "github",
            "https://ghe.corp.example/acme/shop",
            f"https://ghe.corp.example/api/v3/repos/acme/shop/statuses/{SHA}",
            "Authorization",
            "context",
        ),
        (
            "gitlab",
            "https://gitlab.example.com/group/sub/shop",
            f"https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fshop/statuses/{SHA}",
            "PRIVATE-TOKEN",
            "name",
        ),
        (
            "gitea",
            "http://127.0.0.1:3000/acme/shop.git",
            f"http://127.0.0.1:3000/api/v1/repos/acme/shop/statuses/{SHA}",
            "Authorization",
            "context",
        ),
    ],
)
def test_commit_statuses_take_each_forges_shape(
    ptype: str, address: str, url: str, auth_header: str, state_key: str
) -> None:
    p = provider(ptype, secretRef={"name": "token"}, **({"address": address} if address else {}))
    req = build_request(p, FAILED, SECRET, repo_url="git@github.com:acme/shop.git")
    assert req.url == url
    body = json.loads(req.body)
    assert body[state_key] == "gitsync/team-a/shop"
    assert body["state"] == ("failed" if ptype == "gitlab" else "failure")
    assert "Deployment/web" in body["description"]
    assert "s3cr3t-token-value" in req.headers[auth_header]
    ok = json.loads(build_request(p, EVENT, SECRET, repo_url="https://github.com/acme/shop").body)
    assert ok["state"] == "success"


def test_a_commit_status_needs_a_commit_and_a_project() -> None:
    p = provider("github", secretRef={"name": "t"})
    chart = NotificationEvent(EventName.DEPLOYED, "team-a", "shop", "web@1.2.3")
    with pytest.raises(PayloadError, match="not a Git commit"):
        build_request(p, chart, SECRET, repo_url="https://github.com/acme/shop")
    with pytest.raises(PayloadError, match="repoURL"):
        build_request(p, EVENT, SECRET, repo_url="file:///srv/git/shop")
    with pytest.raises(PayloadError, match="owner/repository"):
        forge_project("https://github.com/acme", "spec.address")
    assert commit_status_url(
        ProviderType.GITEA, forge_project("ssh://git@h:2222/o/r", "x"), SHA
    ) == (f"https://h/api/v1/repos/o/r/statuses/{SHA}")


@pytest.mark.parametrize("ptype", ["webhook", "slack", "teams", "github", "gitlab", "gitea"])
def test_no_secret_value_reaches_a_body(ptype: str) -> None:
    p = provider(ptype, address="https://git.example.com/acme/shop", secretRef={"name": "s"})
    req = build_request(p, FAILED, SECRET)
    for value in SECRET.values():
        assert value.encode() not in req.body
    assert "s3cr3t" not in repr(SECRET) and "s3cr3t" not in repr(req)


# -- the plan --------------------------------------------------------------------------------


def test_one_delivery_per_rule_provider_event_and_revision() -> None:
    rule = parse_rule(
        rule_doc(
            events=["deployed", "sync-succeeded"],
            providerRefs=[{"name": "chat"}, {"name": "forge"}],
        )
    )
    providers = {
        "chat": provider("slack", address="https://hooks.example.com/x"),
        "forge": parse_provider(
            {
                "metadata": {"name": "forge", "namespace": "team-a"},
                "spec": {"type": "github", "secretRef": {"name": "t"}},
            }
        ),
    }
    events = events_of(APP, status())
    first = due(APP, events, [rule], providers, ())
    # the forge shows deployed (success) but has no commit state for sync-succeeded
    assert sorted((d.provider, str(d.event.name)) for d in first) == [
        ("chat", "deployed"),
        ("chat", "sync-succeeded"),
        ("forge", "deployed"),
    ]
    sent = record((), (d.key for d in first))
    assert due(APP, events, [rule], providers, sent) == []
    newer = events_of(APP, status(sync=SyncSummary("Synced", OLD), last_applied_revision=OLD))
    again = due(APP, newer, [rule], providers, sent)  # the op's sync-succeeded was sent
    assert sorted((d.provider, str(d.event.name), d.event.revision) for d in again) == [
        ("chat", "deployed", OLD),
        ("forge", "deployed", OLD),
    ]


def test_rules_and_providers_of_another_namespace_are_never_used() -> None:
    foreign = parse_rule({**rule_doc(), "metadata": {"name": "r", "namespace": "team-b"}})
    assert due(APP, events_of(APP, status()), [foreign], {}, ()) == []
    rule = parse_rule(rule_doc())
    other = parse_provider(
        {
            "metadata": {"name": "chat", "namespace": "team-b"},
            "spec": {"type": "slack", "address": "https://x"},
        }
    )
    assert due(APP, events_of(APP, status()), [rule], {"chat": other}, ()) == []


def test_the_record_is_bounded_and_keeps_the_newest() -> None:
    keys = [dedupe_key("r", "p", "deployed", str(i)) for i in range(SENT_LIMIT + 10)]
    sent = record((), keys)
    assert len(sent) == SENT_LIMIT and sent[-1] == keys[-1] and keys[0] not in sent
    assert record(sent, [keys[-1]]) == sent
