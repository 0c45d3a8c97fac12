"""What each provider type is sent: the HTTP request for one event, built from plain data.

* ``webhook`` - gitsync's generic JSON (``event``, ``application.{namespace,name}``,
  ``revision``, ``message``, ``url``, ...), signed as Flux's ``generic-hmac`` provider signs:
  ``X-Signature: sha256=<hex HMAC-SHA256 of the body>`` under the Secret's ``token``.
* ``slack`` - an incoming-webhook message (``text`` plus an attachment with colour and fields).
* ``teams`` - an Office 365 connector ``MessageCard``.
* ``smtp`` - a plain-text email (``build_email``): subject ``[gitsync] <ns>/<app>: <event> at
  <revision>``, the rendered text as the body.
* ``github`` / ``gitlab`` / ``gitea`` - each forge's commit-status API, context
  ``gitsync/<namespace>/<name>``: ``pending`` when a sync of the commit starts, ``success`` when it
  is live and healthy, ``failure`` with the reason. The forge's project comes from
  ``spec.address`` (the repository's web URL, as in Flux) or else the Application's repoURL.

Message text comes from the rule's template or the type's default (``DEFAULT_TEMPLATES``).
Credentials go only into headers of the request to the provider's own address; a payload
carries the event's fields and the rendered text, nothing read from a Secret.

Pure: returns ``OutboundRequest`` values; ``gitsync.notify.delivery`` sends them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from email.message import EmailMessage

from gitsync.notify.events import EventName, NotificationEvent, Severity
from gitsync.notify.spec import ProviderSpec, ProviderType
from gitsync.notify.template import Rendered, Template

SIGNATURE_HEADER = "X-Signature"
GITHUB_DESCRIPTION_LIMIT = 140

DEFAULT_TEMPLATES = {
    ProviderType.WEBHOOK: Template.parse("{{namespace}}/{{app}}: {{event}} at {{shortRevision}}"),
    ProviderType.SLACK: Template.parse(
        "*{{namespace}}/{{app}}*: {{event}} at `{{shortRevision}}` {{reason}}"
    ),
    ProviderType.TEAMS: Template.parse("{{namespace}}/{{app}}: {{event}} at {{shortRevision}}"),
    ProviderType.GITHUB: Template.parse("{{event}}: {{reason}}"),
    ProviderType.GITLAB: Template.parse("{{event}}: {{reason}}"),
    ProviderType.GITEA: Template.parse("{{event}}: {{reason}}"),
    ProviderType.SMTP: Template.parse(
        "{{namespace}}/{{app}}: {{event}} at revision {{revision}}\n\n"
        "{{reason}}\n\nCommit: {{commitMessage}}\nAuthor: {{author}}\nHealth: {{health}}\n"
        "Sync: {{sync}}\n\n{{url}}\n"
    ),
}

_COLOURS = {Severity.INFO: "#439FE0", Severity.SUCCESS: "good", Severity.FAILURE: "danger"}
_TEAMS_COLOURS = {Severity.INFO: "0078D7", Severity.SUCCESS: "2EB886", Severity.FAILURE: "E81123"}

COMMIT_STATES = {
    EventName.SYNC_RUNNING: "pending",
    EventName.DEPLOYED: "success",
    EventName.SYNC_FAILED: "failure",
    EventName.HOOK_FAILED: "failure",
    EventName.HEALTH_DEGRADED: "failure",
}
"""The events a commit status reports, and the state each sets (GitHub's and Gitea's names;
GitLab calls failure ``failed``)."""


class PayloadError(ValueError):
    """The request cannot be built (no forge project, an event a forge cannot show); the
    message names the field, never a credential."""


@dataclass(frozen=True)
class Credentials:
    """A provider's Secret, read at delivery time. ``repr`` shows which keys are set only."""

    token: str = field(default="", repr=False)
    address: str = field(default="", repr=False)
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    def values(self) -> tuple[str, ...]:
        """Every value, for the check that none reached a payload or a message."""
        return tuple(v for v in (self.token, self.address, self.username, self.password) if v)


@dataclass(frozen=True)
class OutboundRequest:
    url: str
    body: bytes
    headers: dict[str, str] = field(repr=False)
    cut: bool = False  # the template's output was cut at its limit


def template_values(event: NotificationEvent, *, escape_slack: bool = False) -> dict[str, str]:
    values = {
        "event": str(event.name),
        "app": event.app,
        "namespace": event.namespace,
        "revision": event.revision,
        "shortRevision": event.short_revision,
        "commitMessage": event.commit_message,
        "author": event.author,
        "url": event.url,
        "reason": event.reason,
        "health": event.health,
        "sync": event.sync,
    }
    if escape_slack:  # Slack's control characters in mrkdwn: a commit message cannot ping
        values = {
            k: v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            for k, v in values.items()
        }
    return values


def build_request(
    provider: ProviderSpec,
    event: NotificationEvent,
    credentials: Credentials,
    *,
    template: Template | None = None,
    repo_url: str = "",
) -> OutboundRequest:
    """The request ``provider`` gets for ``event``. Raises ``PayloadError``."""
    ptype = provider.type
    rendered = (template or DEFAULT_TEMPLATES[ptype]).render(
        template_values(event, escape_slack=ptype == ProviderType.SLACK)
    )
    address = credentials.address or provider.address
    headers = {"Content-Type": "application/json", "User-Agent": "gitsync-notifications"}
    if ptype == ProviderType.SMTP:
        raise PayloadError("an smtp provider sends email, not an HTTP request (build_email)")
    if ptype.commit_status:
        return _commit_status(provider, event, credentials, rendered, repo_url)
    if not address:
        raise PayloadError("spec.address: no address (and the Secret has no address key)")
    if ptype == ProviderType.SLACK:
        body = _slack(provider, event, rendered)
    elif ptype == ProviderType.TEAMS:
        body = _teams(event, rendered)
    else:
        body = _webhook(event, rendered)
        if credentials.token:
            digest = hmac.new(credentials.token.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
    if credentials.username or credentials.password:
        basic = f"{credentials.username}:{credentials.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(basic).decode()
    return OutboundRequest(address, body, headers, rendered.cut)


def _json(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _webhook(event: NotificationEvent, rendered: Rendered) -> bytes:
    return _json(
        {
            "event": str(event.name),
            "application": {"namespace": event.namespace, "name": event.app},
            "revision": event.revision,
            "message": rendered.text,
            "url": event.url,
            "severity": str(event.severity),
            "reason": event.reason,
            "commit": {"message": event.commit_message, "author": event.author},
            "health": event.health,
            "sync": event.sync,
        }
    )


def _slack(provider: ProviderSpec, event: NotificationEvent, rendered: Rendered) -> bytes:
    values = template_values(event, escape_slack=True)
    fields = [{"title": "Revision", "value": values["shortRevision"], "short": True}]
    if event.author:
        fields.append({"title": "Author", "value": values["author"], "short": True})
    if event.commit_message:
        fields.append({"title": "Commit", "value": values["commitMessage"], "short": False})
    attachment: dict[str, object] = {
        "color": _COLOURS[event.severity],
        "title": f"{event.namespace}/{event.app}",
        "text": rendered.text,
        "fields": fields,
        "mrkdwn_in": ["text"],
    }
    if event.url:
        attachment["title_link"] = event.url
    doc: dict[str, object] = {
        "username": "gitsync",
        "text": rendered.text,
        "attachments": [attachment],
    }
    if provider.channel:
        doc["channel"] = provider.channel
    return _json(doc)


def _teams(event: NotificationEvent, rendered: Rendered) -> bytes:
    facts = [{"name": "Revision", "value": event.short_revision}]
    if event.author:
        facts.append({"name": "Author", "value": event.author})
    if event.commit_message:
        facts.append({"name": "Commit", "value": event.commit_message})
    if event.reason:
        facts.append({"name": "Reason", "value": event.reason})
    card: dict[str, object] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": _TEAMS_COLOURS[event.severity],
        "summary": rendered.text[:256],
        "title": f"{event.namespace}/{event.app}: {event.name}",
        "text": rendered.text,
        "sections": [{"facts": facts}],
    }
    if event.url:
        card["potentialAction"] = [
            {
                "@type": "OpenUri",
                "name": "Open in gitsync",
                "targets": [{"os": "default", "uri": event.url}],
            }
        ]
    return _json(card)


# -- commit statuses --------------------------------------------------------------------------

_SCP = re.compile(r"(?P<user>[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)")


@dataclass(frozen=True)
class ForgeProject:
    """A repository on a forge: where its web pages live and its project path."""

    scheme: str
    host: str  # with the port when not the default
    path: str  # ``owner/repo`` (GitLab: ``group/subgroup/repo``)


def forge_project(url: str, where: str) -> ForgeProject:
    """The forge project of a repository URL (https, http, ssh:// or scp-like ``git@host:o/r``);
    ``PayloadError`` naming ``where`` when it names none."""
    scp = _SCP.fullmatch(url) if "://" not in url else None
    if scp is not None:
        scheme, host, path = "https", scp.group("host"), scp.group("path")
    else:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http", "ssh") or not parts.hostname:
            raise PayloadError(f"{where}: cannot tell the forge project from {parts.scheme}:// URL")
        scheme = "https" if parts.scheme == "ssh" else parts.scheme
        host = parts.hostname
        if parts.port and parts.scheme != "ssh":
            host = f"{host}:{parts.port}"
        path = parts.path
    path = path.strip("/").removesuffix(".git")
    if path.count("/") < 1 or ".." in path.split("/"):
        raise PayloadError(f"{where}: the URL names no owner/repository")
    return ForgeProject(scheme, host.lower(), path)


def commit_status_url(ptype: ProviderType, project: ForgeProject, sha: str) -> str:
    base = f"{project.scheme}://{project.host}"
    if ptype == ProviderType.GITHUB:
        api = "https://api.github.com" if project.host == "github.com" else f"{base}/api/v3"
        return f"{api}/repos/{project.path}/statuses/{sha}"
    if ptype == ProviderType.GITLAB:
        encoded = urllib.parse.quote(project.path, safe="")
        return f"{base}/api/v4/projects/{encoded}/statuses/{sha}"
    return f"{base}/api/v1/repos/{project.path}/statuses/{sha}"


def commit_context(event: NotificationEvent) -> str:
    return f"gitsync/{event.namespace}/{event.app}"


def _commit_status(
    provider: ProviderSpec,
    event: NotificationEvent,
    credentials: Credentials,
    rendered: Rendered,
    repo_url: str,
) -> OutboundRequest:
    state = COMMIT_STATES.get(event.name)
    if state is None:
        raise PayloadError(f"spec.events: a commit status cannot show {event.name}")
    if not event.is_commit:
        raise PayloadError(f"revision {event.revision} is not a Git commit")
    address = credentials.address or provider.address
    where = "spec.address" if address else "spec.source.repoURL of the Application"
    project = forge_project(address or repo_url, where)
    url = commit_status_url(provider.type, project, event.revision)
    description = rendered.text[:GITHUB_DESCRIPTION_LIMIT]
    headers = {"Content-Type": "application/json", "User-Agent": "gitsync-notifications"}
    context = commit_context(event)
    doc: dict[str, str] = {"state": state, "description": description}
    if event.url:
        doc["target_url"] = event.url
    if provider.type == ProviderType.GITLAB:
        doc["state"] = "failed" if state == "failure" else state
        doc["name"] = context
        headers["PRIVATE-TOKEN"] = credentials.token
    elif provider.type == ProviderType.GITHUB:
        doc["context"] = context
        headers["Authorization"] = f"Bearer {credentials.token}"
        headers["Accept"] = "application/vnd.github+json"
    else:
        doc["context"] = context
        headers["Authorization"] = f"token {credentials.token}"
    return OutboundRequest(url, _json(doc), headers, rendered.cut)


# -- email ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Email:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage
    cut: bool = False


def build_email(
    provider: ProviderSpec, event: NotificationEvent, *, template: Template | None = None
) -> Email:
    """The email an ``smtp`` provider sends for ``event``. The subject is built from names
    and the revision only (no template text), so nothing a tenant writes reaches a header."""
    rendered = (template or DEFAULT_TEMPLATES[ProviderType.SMTP]).render(template_values(event))
    message = EmailMessage()
    message["Subject"] = (
        f"[gitsync] {event.namespace}/{event.app}: {event.name} at {event.short_revision}"
    )
    message["From"] = provider.sender
    message["To"] = ", ".join(provider.to)
    message.set_content(rendered.text)
    return Email(provider.sender, provider.to, message, rendered.cut)
