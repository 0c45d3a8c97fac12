"""Reading an untrusted webhook body into typed values, or failing with one clean error.

Anyone who can reach the webhook endpoint can send any bytes, and when no secret is configured
those bytes reach the parser unauthenticated. So reading is defensive end to end, and every
failure is a ``WebhookPayloadError`` (never ``KeyError``, ``TypeError``, ``RecursionError``...):

* the size is checked before anything is decoded (the HTTP adapter also cuts the stream off);
* the text must be UTF-8;
* nesting depth is bounded *before* ``json.loads`` runs: CPython's decoder recurses per level,
  so 10,000 opening brackets would cost a ``RecursionError`` (and a deep C stack) - a linear scan
  over brackets outside strings refuses them first, and ``RecursionError`` is still mapped in case
  the limit is ever raised above what the interpreter allows;
* ``JsonNode`` walks the decoded value with a type check at every step, so a ``null`` where an
  object belongs, a string where a list belongs, or a number where a string belongs is reported
  by path (``repository.links.clone``) rather than blowing up somewhere later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs

from gitsync.source.revision import normalize_url
from gitsync.webhook.events import PayloadTooLargeError, WebhookPayloadError

DEFAULT_MAX_BYTES: Final = 1 << 20
MAX_DEPTH: Final = 64  # real payloads nest about 8 deep (Bitbucket Cloud); the rest is abuse
MAX_URL_LENGTH: Final = 2048
MAX_REF_LENGTH: Final = 1024
MAX_TEXT_LENGTH: Final = 1024  # branch or tag names, ref types

# One token per match: a string (its closing quote optional, so an unterminated string is consumed
# to the end in one go - the scan stays linear on hostile input) or a bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")


def load_json(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, form: bool = False) -> object:
    """The JSON value in ``body``; with ``form``, in the ``payload`` field of a form-encoded body
    (GitHub, Gitea and Gogs can deliver that way)."""
    if len(body) > max_bytes:
        raise PayloadTooLargeError(f"body is larger than {max_bytes} bytes")
    try:
        text = _form_payload(body) if form else body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookPayloadError("body is not valid UTF-8") from None
    check_depth(text, MAX_DEPTH)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise WebhookPayloadError("body nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and ints too long to convert
        raise WebhookPayloadError("body is not valid JSON") from exc


def check_depth(text: str, limit: int) -> None:
    """Refuse JSON text whose arrays and objects nest deeper than ``limit``.

    Brackets inside strings do not count. Linear in the text, and stops at the first level too
    many, so ``[[[[...`` of any length is refused after ``limit`` steps.
    """
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    for match in _TOKEN.finditer(text):
        char = text[match.start()]
        if char in "[{":
            depth += 1
            if depth > limit:
                raise WebhookPayloadError(f"body nests deeper than {limit} levels")
        elif char in "]}":
            depth -= 1


def _form_payload(body: bytes) -> str:
    try:
        fields = parse_qs(
            body.decode("ascii"), max_num_fields=32, encoding="utf-8", errors="strict"
        )
    except UnicodeDecodeError:
        raise  # a ValueError too; load_json reports it as not UTF-8
    except ValueError:
        raise WebhookPayloadError("form body has too many fields") from None
    values = fields.get("payload")
    if not values:
        raise WebhookPayloadError("form body has no payload field")
    return values[0]


def _reject_constant(name: str) -> object:
    raise WebhookPayloadError(f"body contains {name}, which is not JSON")


_JSON_TYPES: Final[Mapping[type, str]] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


@dataclass(frozen=True, slots=True)
class JsonNode:
    """A decoded JSON value and the path it was reached by, for checked access and messages."""

    value: object
    path: str = "body"

    def _fail(self, expected: str) -> WebhookPayloadError:
        got = _JSON_TYPES.get(type(self.value), "something else")
        return WebhookPayloadError(f"{self.path}: expected {expected}, got {got}")

    def _members(self) -> dict[str, object]:
        if not isinstance(self.value, dict):
            raise self._fail("an object")
        return self.value

    def __getitem__(self, key: str) -> JsonNode:
        """A member that must be there (it may still be null; the next step checks its type)."""
        members = self._members()
        if key not in members:
            raise WebhookPayloadError(f"{self.path}: missing {key!r}")
        return JsonNode(members[key], f"{self.path}.{key}")

    def get(self, key: str) -> JsonNode | None:
        """A member that may be absent or null."""
        value = self._members().get(key)
        return None if value is None else JsonNode(value, f"{self.path}.{key}")

    def is_null(self) -> bool:
        return self.value is None

    def items(self) -> list[JsonNode]:
        """The elements of a non-empty array."""
        if not isinstance(self.value, list):
            raise self._fail("an array")
        if not self.value:
            raise WebhookPayloadError(f"{self.path}: expected a non-empty array")
        return [JsonNode(v, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def text(self, *, max_length: int = MAX_TEXT_LENGTH) -> str:
        """A non-empty string of printable characters without spaces, at most ``max_length``."""
        if not isinstance(self.value, str):
            raise self._fail("a string")
        if not self.value:
            raise WebhookPayloadError(f"{self.path}: is empty")
        if len(self.value) > max_length:
            raise WebhookPayloadError(f"{self.path}: longer than {max_length} characters")
        if _UNSAFE_CHARS.search(self.value):
            raise WebhookPayloadError(f"{self.path}: contains spaces or control characters")
        return self.value

    def url(self) -> str:
        """A repository URL, normalized (``normalize_url``) so it compares with Applications'."""
        raw = self.text(max_length=MAX_URL_LENGTH)
        try:
            return normalize_url(raw)
        except ValueError:  # urlsplit refuses some malformed hosts
            raise WebhookPayloadError(f"{self.path}: is not a URL") from None

    def ref(self) -> str:
        """A full ref name (``refs/heads/main``)."""
        return check_ref(self.text(max_length=MAX_REF_LENGTH), self.path)

    def sha(self) -> str:
        """A commit id in hex, lowercased; ``""`` for the all-zero id forges send for a deleted
        ref."""
        raw = self.text(max_length=64)
        if not _SHA.fullmatch(raw):
            raise WebhookPayloadError(f"{self.path}: is not a commit id")
        return "" if raw.strip("0") == "" else raw.lower()


def check_ref(ref: str, path: str) -> str:
    """``ref`` if it is a full ref name of a sane length, else a ``WebhookPayloadError``."""
    if not ref.startswith("refs/") or len(ref) <= len("refs/"):
        raise WebhookPayloadError(f"{path}: is not a ref (refs/...)")
    if len(ref) > MAX_REF_LENGTH or _UNSAFE_CHARS.search(ref):
        raise WebhookPayloadError(f"{path}: is not a valid ref name")
    return ref
