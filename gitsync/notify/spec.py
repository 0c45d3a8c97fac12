"""NotificationProvider and NotificationRule: their specs, parsed strictly, and rule matching.

Shaped like Flux's Provider and Alert (``type``, ``address``, ``channel``, ``secretRef``;
``providerRefs``, ``events``, a selection of Applications) with Argo CD's event vocabulary. Both
kinds are tenant objects: a rule selects Applications of its own namespace only and names
providers of its own namespace only, and a provider's ``secretRef`` names a Secret of its own
namespace - there is no field that could say otherwise. An unknown field is an error naming it,
so a typo never turns into a rule that silently matches nothing.

Pure: plain dicts in, frozen dataclasses out.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from gitsync.notify.events import EventName
from gitsync.notify.template import Template, TemplateError

MAX_PROVIDER_REFS = 16
MAX_MATCH_NAMES = 64
MAX_ADDRESS = 2048
DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
EMAIL = re.compile(r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}")
HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")
MAX_RECIPIENTS = 20


class NotificationSpecError(ValueError):
    """A NotificationProvider or NotificationRule that cannot work; the message names the
    field (never a Secret's value)."""


class ProviderType(enum.StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    TEAMS = "teams"
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"
    SMTP = "smtp"

    @property
    def commit_status(self) -> bool:
        return self in (ProviderType.GITHUB, ProviderType.GITLAB, ProviderType.GITEA)


SECRET_KEYS = frozenset(("token", "address", "username", "password"))
"""Keys a provider's Secret may hold (Flux's names): ``token`` is the forge token, the
generic webhook's HMAC key or a bearer token; ``address`` replaces ``spec.address`` (a Slack or
Teams webhook URL is itself a credential); ``username``/``password``: basic auth."""


@dataclass(frozen=True)
class ProviderSpec:
    namespace: str
    name: str
    type: ProviderType
    address: str = ""
    channel: str = ""
    secret_name: str = ""
    timeout: float = 10.0
    to: tuple[str, ...] = ()  # smtp: the recipients
    sender: str = ""  # smtp: spec.from
    start_tls: bool = True  # smtp: STARTTLS before anything else (and before any password)


@dataclass(frozen=True)
class RuleSpec:
    namespace: str
    name: str
    provider_refs: tuple[str, ...]
    events: frozenset[EventName]
    match_names: tuple[str, ...] = ()
    match_labels: Mapping[str, str] = field(default_factory=dict)
    template: Template | None = None

    def selects(self, app_name: str, labels: Mapping[str, str]) -> bool:
        """Whether the rule applies to the Application ``app_name`` (of its own namespace):
        every ``matchLabels`` entry holds and, when ``matchNames`` is given, a glob matches.
        A rule with neither selects every Application of its namespace."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return not self.match_names or any(fnmatchcase(app_name, g) for g in self.match_names)


def _meta(obj: Mapping[str, Any], kind: str) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str) or not name or not namespace:
        raise NotificationSpecError(f"{kind}: metadata.name and metadata.namespace are required")
    return namespace, name


def _fields(doc: object, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise NotificationSpecError(f"{where}: must be an object")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise NotificationSpecError(f"{where}.{unknown[0]}: unknown field")
    return doc


def _string(doc: Mapping[str, Any], key: str, where: str, *, limit: int = 253) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise NotificationSpecError(f"{where}.{key}: must be a string")
    if len(value) > limit:
        raise NotificationSpecError(f"{where}.{key}: longer than {limit} characters")
    return value


def _name_ref(doc: object, where: str) -> str:
    ref = _fields(doc, where, {"name"})
    name = _string(ref, "name", where)
    if not DNS_NAME.fullmatch(name):
        raise NotificationSpecError(f"{where}.name: must be the name of an object")
    return name


PROVIDER_FIELDS = {"type", "address", "channel", "secretRef", "timeout", "to", "from", "startTLS"}
SMTP_FIELDS = {"to", "from", "startTLS"}


def parse_provider(obj: Mapping[str, Any]) -> ProviderSpec:
    namespace, name = _meta(obj, "NotificationProvider")
    spec = _fields(obj.get("spec"), "spec", PROVIDER_FIELDS)
    raw_type = _string(spec, "type", "spec")
    try:
        ptype = ProviderType(raw_type)
    except ValueError:
        known = ", ".join(t.value for t in ProviderType)
        raise NotificationSpecError(f"spec.type: {raw_type!r} is not one of {known}") from None
    address = _string(spec, "address", "spec", limit=MAX_ADDRESS)
    for key in sorted(SMTP_FIELDS & set(spec)):
        if ptype != ProviderType.SMTP:
            raise NotificationSpecError(f"spec.{key}: only an smtp provider has it")
    if ptype == ProviderType.SMTP:
        if address and not HOST_PORT.fullmatch(address):
            raise NotificationSpecError("spec.address: host:port of the SMTP server")
    elif address and not address.startswith(("https://", "http://")):
        raise NotificationSpecError("spec.address: must be an http:// or https:// URL")
    secret = _name_ref(spec["secretRef"], "spec.secretRef") if "secretRef" in spec else ""
    if ptype in (ProviderType.SLACK, ProviderType.TEAMS, ProviderType.WEBHOOK, ProviderType.SMTP):
        if not address and not secret:
            raise NotificationSpecError(
                f"spec.address: a {ptype} provider needs an address (or secretRef with address)"
            )
    elif not secret:
        raise NotificationSpecError(f"spec.secretRef: a {ptype} provider needs a token")
    channel = _string(spec, "channel", "spec")
    if channel and ptype != ProviderType.SLACK:
        raise NotificationSpecError("spec.channel: only a slack provider has a channel")
    timeout = spec.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 60:
        raise NotificationSpecError("spec.timeout: seconds between 1 and 60")
    to, sender, start_tls = _smtp_fields(spec) if ptype == ProviderType.SMTP else ((), "", True)
    return ProviderSpec(
        namespace, name, ptype, address, channel, secret, float(timeout), to, sender, start_tls
    )


def _smtp_fields(spec: Mapping[str, Any]) -> tuple[tuple[str, ...], str, bool]:
    to = spec.get("to")
    if not isinstance(to, list) or not to or len(to) > MAX_RECIPIENTS:
        raise NotificationSpecError(f"spec.to: 1 to {MAX_RECIPIENTS} email addresses")
    for i, address in enumerate(to):
        if not isinstance(address, str) or not EMAIL.fullmatch(address):
            raise NotificationSpecError(f"spec.to[{i}]: not an email address")
    sender = _string(spec, "from", "spec") or "gitsync@localhost"
    if not EMAIL.fullmatch(sender):
        raise NotificationSpecError("spec.from: not an email address")
    start_tls = spec.get("startTLS", True)
    if not isinstance(start_tls, bool):
        raise NotificationSpecError("spec.startTLS: true or false")
    return tuple(to), sender, start_tls


RULE_FIELDS = {"providerRefs", "events", "applications", "template"}


def parse_rule(obj: Mapping[str, Any]) -> RuleSpec:
    namespace, name = _meta(obj, "NotificationRule")
    spec = _fields(obj.get("spec"), "spec", RULE_FIELDS)
    refs = spec.get("providerRefs")
    if not isinstance(refs, list) or not refs:
        raise NotificationSpecError("spec.providerRefs: at least one provider is required")
    if len(refs) > MAX_PROVIDER_REFS:
        raise NotificationSpecError(f"spec.providerRefs: at most {MAX_PROVIDER_REFS}")
    providers = tuple(_name_ref(r, f"spec.providerRefs[{i}]") for i, r in enumerate(refs))
    raw_events = spec.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise NotificationSpecError("spec.events: at least one event is required")
    events: set[EventName] = set()
    for i, raw in enumerate(raw_events):
        try:
            events.add(EventName(raw))
        except ValueError:
            known = ", ".join(e.value for e in EventName)
            raise NotificationSpecError(
                f"spec.events[{i}]: {raw!r} is not one of {known}"
            ) from None
    selection = _fields(
        spec.get("applications"), "spec.applications", {"matchNames", "matchLabels"}
    )
    names = selection.get("matchNames", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise NotificationSpecError("spec.applications.matchNames: a list of name globs")
    if len(names) > MAX_MATCH_NAMES:
        raise NotificationSpecError(f"spec.applications.matchNames: at most {MAX_MATCH_NAMES}")
    labels = selection.get("matchLabels", {})
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise NotificationSpecError("spec.applications.matchLabels: a map of strings")
    template = None
    if "template" in spec:
        source = spec["template"]
        if not isinstance(source, str):
            raise NotificationSpecError("spec.template: must be a string")
        try:
            template = Template.parse(source)
        except TemplateError as exc:
            raise NotificationSpecError(f"spec.template: {exc}") from None
    return RuleSpec(
        namespace,
        name,
        providers,
        frozenset(events),
        tuple(names),
        dict(labels),
        template,
    )
