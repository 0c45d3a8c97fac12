"""Label selectors for the Application list (``?label=tier=front,!legacy``): the equality subset
of Kubernetes' selector syntax that ``kubectl get -l`` accepts - ``key=value``, ``key==value``,
``key!=value``, ``key`` (has the label) and ``!key`` (has not) - joined by commas, all must hold.

Set-based terms (``key in (a,b)``) are refused with an error that says so rather than read as
something else: a filter that silently matched the wrong apps would be worse than none. Keys and
values are checked against the label syntax the API server enforces, so a typo is an error
naming the term instead of a filter that matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

MAX_TERMS = 16
MAX_SELECTOR = 1024

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"({_PREFIX}/)?{_NAME}")
_VALUE = re.compile(rf"({_NAME})?")
_TERM = re.compile(r"^(?P<neg>!)?(?P<key>[^=!]+)(?:(?P<op>==|=|!=)(?P<value>.*))?$")


class LabelOperator(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    NOT_EXISTS = "!exists"


@dataclass(frozen=True)
class LabelRequirement:
    """One term of a selector."""

    key: str
    operator: LabelOperator
    value: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator is LabelOperator.EXISTS:
            return self.key in labels
        if self.operator is LabelOperator.NOT_EXISTS:
            return self.key not in labels
        if self.operator is LabelOperator.EQUALS:
            return labels.get(self.key) == self.value
        return labels.get(self.key) != self.value  # like kubectl: a missing label matches !=

    def __str__(self) -> str:
        if self.operator is LabelOperator.EXISTS:
            return self.key
        if self.operator is LabelOperator.NOT_EXISTS:
            return "!" + self.key
        return f"{self.key}{self.operator}{self.value}"


class SelectorError(ValueError):
    """A selector that does not parse; the message names the term and the accepted forms."""


def _valid_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return bool(_KEY.fullmatch(key)) and len(prefix) <= 253 and len(name) <= 63


def parse_selector(text: str) -> tuple[LabelRequirement, ...]:
    """``tier=front,!legacy`` as requirements; "" is no requirement. Raises ``SelectorError``."""
    if len(text) > MAX_SELECTOR:
        raise SelectorError(f"label selector is longer than {MAX_SELECTOR} characters")
    terms = [t.strip() for t in text.split(",")] if text.strip() else []
    if len(terms) > MAX_TERMS:
        raise SelectorError(f"label selector has more than {MAX_TERMS} terms")
    out = []
    for term in terms:
        found = _TERM.match(term)
        if not term or found is None or (found["neg"] and found["op"]):
            raise SelectorError(
                f"label selector term {term[:80]!r} is not one of key=value, key!=value, "
                "key or !key"
            )
        key, op, value = found["key"].strip(), found["op"], (found["value"] or "").strip()
        if not _valid_key(key):
            raise SelectorError(
                f"label selector term {term[:80]!r}: {key[:80]!r} is not a label key"
            )
        if op and not _VALUE.fullmatch(value):
            raise SelectorError(
                f"label selector term {term[:80]!r}: {value[:80]!r} is not a label value"
            )
        if found["neg"]:
            out.append(LabelRequirement(key, LabelOperator.NOT_EXISTS))
        elif op is None:
            out.append(LabelRequirement(key, LabelOperator.EXISTS))
        elif op == "!=":
            out.append(LabelRequirement(key, LabelOperator.NOT_EQUALS, value))
        else:
            out.append(LabelRequirement(key, LabelOperator.EQUALS, value))
    return tuple(out)


def format_selector(requirements: tuple[LabelRequirement, ...]) -> str:
    """The requirements as one selector, the form ``parse_selector`` reads back."""
    return ",".join(str(r) for r in requirements)
