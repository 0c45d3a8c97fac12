"""JSON pointers (RFC 6901): parsing, formatting and copy-on-write removal.

Pointers are how users name fields to ignore (``ignoreDifferences``) and how the diff reports the
paths that changed, so both directions must agree on escaping (``~0`` is ``~``, ``~1`` is ``/``).
Removal never mutates its input: it copies only the maps and lists along the pointer's path and
shares every other sub-tree, which keeps normalizing thousands of objects cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The unescaped reference tokens of ``pointer``; ``""`` (the whole document) gives ``()``."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer must be empty or start with '/': {pointer!r}")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def escape_token(token: str) -> str:
    """Escape one reference token (``~`` before ``/``, as RFC 6901 requires)."""
    return token.replace("~", "~0").replace("/", "~1")


def format_pointer(tokens: Iterable[str]) -> str:
    """The pointer for ``tokens``; ``()`` gives ``""``, the whole document."""
    return "".join("/" + escape_token(token) for token in tokens)


def list_index(token: str, length: int) -> int | None:
    """The list index ``token`` names, or None if it is not a valid, in-range RFC 6901 index."""
    if not (token.isascii() and token.isdigit()) or (len(token) > 1 and token[0] == "0"):
        return None
    index = int(token)
    return index if index < length else None


def value_at(doc: Any, tokens: Iterable[str]) -> Any:
    """The value at ``tokens``; raises ``KeyError`` if the path does not exist."""
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            node = node[token]
        elif isinstance(node, list):
            index = list_index(token, len(node))
            if index is None:
                raise KeyError(token)
            node = node[index]
        else:
            raise KeyError(token)
    return node


def without(doc: Any, tokens: tuple[str, ...]) -> Any:
    """``doc`` without the value at ``tokens``; ``doc`` itself when the path does not exist.

    Only the containers along the path are copied. The empty path is left alone: removing the
    whole document is not a meaningful "ignore".
    """
    if not tokens:
        return doc
    return _without(doc, tokens, 0)


def _without(node: Any, tokens: tuple[str, ...], i: int) -> Any:
    token = tokens[i]
    last = i == len(tokens) - 1
    if isinstance(node, dict):
        if token not in node:
            return node
        if last:
            copy = dict(node)
            del copy[token]
            return copy
        child = node[token]
        new_child = _without(child, tokens, i + 1)
        if new_child is child:
            return node
        copy = dict(node)
        copy[token] = new_child
        return copy
    if isinstance(node, list):
        index = list_index(token, len(node))
        if index is None:
            return node
        if last:
            return node[:index] + node[index + 1 :]
        child = node[index]
        new_child = _without(child, tokens, i + 1)
        if new_child is child:
            return node
        copied = list(node)
        copied[index] = new_child
        return copied
    return node


def with_value(doc: Any, tokens: tuple[str, ...], value: Any) -> Any:
    """``doc`` with ``value`` at ``tokens`` (missing objects on the way are created); ``doc``
    itself when the path runs through a scalar or past the end of a list. Only the containers
    along the path are copied."""
    if not tokens:
        return value
    token, rest = tokens[0], tokens[1:]
    if isinstance(doc, dict):
        copy = dict(doc)
        copy[token] = with_value(doc.get(token, {}) if rest else None, rest, value)
        return copy
    if isinstance(doc, list):
        index = list_index(token, len(doc))
        if index is None:
            return doc
        items = list(doc)
        items[index] = with_value(doc[index], rest, value)
        return items
    return doc
