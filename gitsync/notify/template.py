"""The message template language: ``{{ field }}`` and nothing else.

A NotificationRule's author is a tenant, and the text is rendered inside the controller, which
holds every tenant's Secrets and the cluster's credentials. So the language has no expression,
no attribute access, no filters, no loops and no includes: a placeholder names one field of the
event (``FIELDS``), checked when the rule is parsed, so ``{{ secret.token }}``,
``{{ ''.__class__ }}`` or ``{% for %}`` are spec errors naming the placeholder, and the only
values a template can reach are the event's own. Size is bounded twice: the source
(``MAX_SOURCE``, refused) and the output (``MAX_OUTPUT``, cut with a note saying so), so
repeating a long field cannot build a huge message.

Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SOURCE = 4096
MAX_OUTPUT = 16384
CUT_NOTE = f" [message cut at {MAX_OUTPUT} characters]"

FIELDS = (
    "event",
    "app",
    "namespace",
    "revision",
    "shortRevision",
    "commitMessage",
    "author",
    "url",
    "reason",
    "health",
    "sync",
)
"""What a placeholder may name (``gitsync.notify.events.NotificationEvent``, camelCase)."""

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = re.compile(r"\s*([A-Za-z]+)\s*")


class TemplateError(ValueError):
    """A template that cannot be rendered safely; the message names the placeholder."""


@dataclass(frozen=True)
class Rendered:
    text: str
    cut: bool  # the output exceeded MAX_OUTPUT and was cut (the text says so too)


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and field names, alternating."""

    parts: tuple[str, ...]  # even index: literal; odd index: a field name

    @classmethod
    def parse(cls, source: str) -> Template:
        if len(source) > MAX_SOURCE:
            raise TemplateError(f"longer than {MAX_SOURCE} characters ({len(source)})")
        if "{%" in source or "{#" in source:
            raise TemplateError("only {{ field }} placeholders are allowed (no statements)")
        parts: list[str] = []
        last = 0
        for match in _PLACEHOLDER.finditer(source):
            parts.append(source[last : match.start()])
            name = _NAME.fullmatch(match.group(1))
            if name is None or name.group(1) not in FIELDS:
                shown = match.group(1).strip()[:64]
                raise TemplateError(
                    f"{{{{ {shown} }}}}: not a field of the event (fields: {', '.join(FIELDS)})"
                )
            parts.append(name.group(1))
            last = match.end()
        tail = source[last:]
        if "{{" in tail or "}}" in tail:
            raise TemplateError("unbalanced {{ or }}")
        parts.append(tail)
        return cls(tuple(parts))

    def render(self, values: dict[str, str], *, limit: int = MAX_OUTPUT) -> Rendered:
        """The text with each placeholder replaced by ``values[field]``; stops building once
        past ``limit`` (so the work is bounded too) and ends the cut text with a note."""
        out: list[str] = []
        size = 0
        for i, part in enumerate(self.parts):
            piece = part if i % 2 == 0 else values.get(part, "")
            out.append(piece)
            size += len(piece)
            if size > limit:
                return Rendered("".join(out)[:limit] + CUT_NOTE, True)
        return Rendered("".join(out), False)
