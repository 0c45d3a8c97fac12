"""The one YAML loader gitsync uses for anything that comes out of Git.

``yaml.SafeLoader`` (the libyaml-backed ``CSafeLoader`` when available) already refuses to build
arbitrary Python objects, but it happily builds the "billion laughs" document: nine nested levels
of nine aliases each describe 387 million nodes in a few hundred bytes. PyYAML shares the aliased
objects, so loading is cheap - the bill arrives later, when diff, hashing or ``json.dumps`` walk the
tree. So loading is two passes over the text:

1. an *event* pass (libyaml's parser is iterative, so nothing recurses) that tracks nesting depth
   and, for every anchor, how many nodes it expands to. Each alias adds its anchor's expanded size
   to a per-stream budget; crossing ``max_alias_expansion`` stops the pass at once. A recursive
   alias (an alias to an anchor still being defined) has no finite expansion and is refused. Memory
   is one integer per anchor and one stack entry per open collection.
2. the normal compose/construct pass, which only runs on text that passed the first one.

Values stay JSON-shaped: timestamps are kept as the strings they were written as (Kubernetes
tooling treats them as strings, and ``datetime`` objects would not survive ``json.dumps``), and
``!!binary`` stays as its base64 text. Any failure, whatever PyYAML or the int/float/base64
constructors raise, becomes a ``RenderError`` naming the source and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from gitsync.render.errors import LimitExceededError, RenderError
from gitsync.render.options import RenderLimits

_BaseLoader: type[yaml.SafeLoader]
try:
    _BaseLoader = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml is missing
    _BaseLoader = yaml.SafeLoader


class _ManifestLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader whose scalars stay JSON-compatible."""


def _construct_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


_ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_as_text)
_ManifestLoader.add_constructor("tag:yaml.org,2002:binary", _construct_as_text)

# What PyYAML raises on hostile input is not limited to YAMLError: ValueError for ints past
# Python's digit limit, IndexError for an empty ``!!int``, RecursionError for deeply nested
# mapping keys (constructed recursively). Callers are promised RenderError and nothing else, so
# any Exception from parsing or constructing is wrapped (fuzzed in the tests).
_LOAD_ERRORS = (Exception,)


def _mark_line(mark: object) -> int | None:
    line = getattr(mark, "line", None)
    return line + 1 if isinstance(line, int) else None


def _line_of(exc: BaseException) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return _mark_line(mark)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        if parts:
            return "invalid YAML: " + "; ".join(parts)
    if isinstance(exc, yaml.reader.ReaderError):
        return f"invalid YAML: {exc.reason} at byte {exc.position}"
    if isinstance(exc, RecursionError):
        return "invalid YAML: nesting too deep"
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"invalid YAML: {first_line[:200]}"


def _wrap(exc: BaseException, source: str) -> RenderError:
    return RenderError(_describe(exc), source=source, line=_line_of(exc))


def _check_expansion(text: str | bytes, *, source: str, limits: RenderLimits) -> None:
    """Pass 1: refuse too-deep nesting and alias expansion beyond the budget, without building."""
    budget = _ExpansionBudget(source=source, limits=limits)
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            budget.see(event)
    except RenderError:
        raise
    except _LOAD_ERRORS as exc:
        raise _wrap(exc, source) from exc


def check_yaml(text: str | bytes, *, source: str, limits: RenderLimits) -> None:
    """Size, nesting and alias expansion of YAML that another parser will read (kustomize reads
    the patches of an Application's overrides): the same bounds as ours, nothing built."""
    if len(text) > limits.max_bytes:
        raise LimitExceededError(
            f"{len(text)} bytes exceeds the limit of {limits.max_bytes} bytes", source=source
        )
    _check_expansion(text, source=source, limits=limits)


class _ExpansionBudget:
    """Counts, event by event, the nodes a stream would build: an alias costs the size of its
    anchor's node, so a "billion laughs" is refused before the composer builds anything."""

    def __init__(self, *, source: str, limits: RenderLimits) -> None:
        self.source = source
        self.limits = limits
        self.expanded = 0  # nodes added by aliases, whole stream
        self.count = 0  # nodes seen in the current document, aliases expanded
        self.sizes: dict[str, int] = {}  # anchor -> expanded size, for complete anchored nodes
        self.open_anchors: set[str] = set()
        self.stack: list[tuple[str | None, int]] = []

    def see(self, event: yaml.Event) -> None:
        """Account for one parser event; raises once the stream is over a limit."""
        if isinstance(event, yaml.DocumentStartEvent):
            self.count = 0
            self.sizes.clear()
            self.open_anchors.clear()
        elif isinstance(event, yaml.ScalarEvent):
            self.count += 1
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            self._open(event)
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = self.stack.pop()
            if anchor is not None:
                self.open_anchors.discard(anchor)
                self.sizes[anchor] = self.count - start + 1
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event)

    def _open(self, event: yaml.CollectionStartEvent) -> None:
        """A mapping or sequence starts: one level deeper, within ``max_depth``."""
        self.count += 1
        if len(self.stack) >= self.limits.max_depth:
            raise LimitExceededError(
                f"YAML nesting deeper than {self.limits.max_depth} levels",
                source=self.source,
                line=_mark_line(event.start_mark),
            )
        self.stack.append((event.anchor, self.count))
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)

    def _alias(self, event: yaml.AliasEvent) -> None:
        """An alias: its anchor's size counts again, within ``max_alias_expansion``; one that
        refers to a node still open would recurse."""
        line = _mark_line(event.start_mark)
        if event.anchor in self.open_anchors:
            raise RenderError(
                f"recursive YAML alias *{event.anchor}", source=self.source, line=line
            )
        size = self.sizes.get(event.anchor or "", 1)  # undefined: the composer reports it
        self.expanded += size
        self.count += size
        if self.expanded > self.limits.max_alias_expansion:
            raise LimitExceededError(
                f"YAML aliases expand to more than {self.limits.max_alias_expansion} nodes "
                "(alias bomb?)",
                source=self.source,
                line=line,
            )


def load_yaml_with_lines(
    text: str | bytes,
    *,
    source: str,
    limits: RenderLimits | None = None,
    lists_too: bool = False,
) -> list[tuple[int, int, Any]]:
    """Like ``load_yaml_documents`` but yields ``(document_index, line, mapping)``.

    ``document_index`` is 1-based over every document in the stream (empty ones included, so it
    matches what an editor shows); ``line`` is the 1-based line where the document starts.
    ``lists_too`` also accepts a document that is a list (an ApplicationSet parameter file).
    """
    limits = limits or RenderLimits()
    if len(text) > limits.max_bytes:
        raise LimitExceededError(
            f"{len(text)} bytes exceeds the limit of {limits.max_bytes} bytes", source=source
        )
    _check_expansion(text, source=source, limits=limits)
    docs: list[tuple[int, int, Any]] = []
    loader = _ManifestLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            index += 1
            line = _mark_line(node.start_mark) or 1
            data = loader.construct_document(node)
            if data is None:
                continue
            if not isinstance(data, dict) and not (lists_too and isinstance(data, list)):
                raise RenderError(
                    f"document {index} is a {_yaml_type(data)}, expected a mapping",
                    source=source,
                    line=line,
                )
            if len(docs) >= limits.max_documents:
                raise LimitExceededError(
                    f"more than {limits.max_documents} documents", source=source, line=line
                )
            docs.append((index, line, data))
    except RenderError:
        raise
    except _LOAD_ERRORS as exc:
        raise _wrap(exc, source) from exc
    finally:
        loader.dispose()
    return docs


def load_yaml_documents(
    text: str | bytes, *, source: str, limits: RenderLimits | None = None
) -> list[dict[str, Any]]:
    """Parse a (multi-document) YAML stream from Git into mappings; empty documents are skipped.

    Raises ``RenderError`` (never anything else) naming ``source`` and the line: for invalid YAML,
    unknown tags, a document that is not a mapping; ``LimitExceededError`` for text larger than
    ``limits.max_bytes``, more than ``max_documents`` documents, nesting deeper than ``max_depth``
    or aliases expanding past ``max_alias_expansion``.
    """
    return [doc for _, _, doc in load_yaml_with_lines(text, source=source, limits=limits)]


def check_depth(value: Any, *, source: str, max_depth: int, what: str) -> None:
    """Refuse ``what`` (e.g. "JSON", "values") nested deeper than ``max_depth``, iteratively:
    data that did not come through the YAML loader (JSON files, inline Helm values, ``--set``)
    would otherwise reach recursive code (``json.dumps``, merges) and raise ``RecursionError``."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth >= max_depth:
                raise LimitExceededError(
                    f"{what} nesting deeper than {max_depth} levels", source=source
                )
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)


def _yaml_type(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__
