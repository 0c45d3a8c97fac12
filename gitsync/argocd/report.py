"""The importer's report: what became of every field of every Argo CD document read.

A migration that quietly loses a field is worse than one that refuses: the team believes the app
is protected (``Prune=false``), waits for a notification that never comes, or deploys without the
name prefix Argo CD added. So each field path of the input gets exactly one ``Outcome``, and a
final walk over the whole input (``FieldDecisions.cover``) gives every path no translator decided
the outcome ``NOT_CARRIED`` - a field nobody wrote a rule for is reported, never dropped.

Paths are tuples (``("spec", "sources", 0, "helm")``) so keys with dots (annotations) and list
indices stay unambiguous; ``format_path`` spells them the way gitsync's spec errors do
(``spec.sources[0].helm``, ``metadata.annotations["argocd.argoproj.io/refresh"]``). Pure: no I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PATH_PART = re.compile(r'([^.\[\]"]+)|\[(\d+)\]|\["([^"]*)"\]')


class Outcome(enum.StrEnum):
    """What became of one input field."""

    CARRIED = "carried"
    """In the output as it was written (gitsync reads Argo CD's spelling)."""
    TRANSLATED = "translated"
    """In the output under another name or value; the note says old -> new."""
    NOT_CARRIED = "not carried"
    """Not in the output; the note says why. The import is incomplete."""
    IGNORED = "ignored"
    """State a server or controller wrote (``status``, ``metadata.uid``): not desired state, so
    leaving it out loses nothing. Does not make the import incomplete."""


def format_path(path: Path) -> str:
    """``("spec", "sources", 0, "helm")`` -> ``spec.sources[0].helm``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


def generic_path(path: Path) -> str:
    """``spec.sources[].name``: the spelling of a field in any entry of a list."""
    return "".join(
        "[]" if isinstance(p, int) else (p if i == 0 else f".{p}") for i, p in enumerate(path)
    )


def parse_path(text: str) -> Path:
    """The inverse of ``format_path`` for the paths gitsync's spec errors name."""
    parts: list[str | int] = []
    for match in _PATH_PART.finditer(text):
        key, index, quoted = match.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(key if key is not None else quoted)
    return tuple(parts)


@dataclass(frozen=True)
class FieldReport:
    """The outcome of one input field; ``target`` is where it went in the output (carried,
    translated), ``note`` says old -> new or why it was not carried."""

    path: Path
    outcome: Outcome
    target: Path | None = None
    note: str = ""
    essential: bool = False
    """Without this field the document means something else (its source, its destination): when
    gitsync refuses it, the whole document is not written rather than written without it."""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": format_path(self.path), "outcome": str(self.outcome)}
        if self.target is not None:
            data["target"] = format_path(self.target)
        if self.note:
            data["note"] = self.note
        return data


class FieldDecisions:
    """The outcomes decided so far for one document, by input path (one per path)."""

    def __init__(self) -> None:
        self._by_path: dict[Path, FieldReport] = {}

    def carry(self, path: Path, *, essential: bool = False, note: str = "") -> None:
        self._by_path[path] = FieldReport(path, Outcome.CARRIED, path, note, essential)

    def translate(
        self, path: Path, target: Path | None, note: str, *, essential: bool = False
    ) -> None:
        """``target`` None: nothing in the output stands for it, and the note says why that
        loses nothing (a default gitsync always has, a request it does not need)."""
        self._by_path[path] = FieldReport(path, Outcome.TRANSLATED, target, note, essential)

    def drop(self, path: Path, reason: str) -> None:
        self._by_path[path] = FieldReport(path, Outcome.NOT_CARRIED, None, reason)

    def drop_subtree(self, path: Path, reason: str) -> None:
        """``path`` and every decision below it: not carried (gitsync refused ``path``)."""
        for below in [p for p in self._by_path if p[: len(path)] == path and p != path]:
            del self._by_path[below]
        self.drop(path, reason)

    def ignore(self, path: Path, reason: str) -> None:
        self._by_path[path] = FieldReport(path, Outcome.IGNORED, None, reason)

    def owner_of(self, target: Path) -> FieldReport | None:
        """The carried or translated field whose output path is the longest prefix of
        ``target``: the one an error gitsync's parser raised at ``target`` is about."""
        best: FieldReport | None = None
        for report in self._by_path.values():
            t = report.target
            if t is None or len(t) > len(target) or target[: len(t)] != t:
                continue
            if best is None or best.target is None or len(t) > len(best.target):
                best = report
        return best

    def cover(self, document: Mapping[str, Any]) -> None:
        """Give every field of ``document`` that no decision covers the outcome NOT_CARRIED:
        the shallowest such path is reported once (an unknown ``spec.foo`` with ten fields
        under it is one entry). Iterative, so a deep document cannot exhaust the stack."""
        decided = set(self._by_path)
        below = {path[:i] for path in decided for i in range(len(path))}
        stack: list[tuple[Path, Any]] = [((), document)]
        while stack:
            path, value = stack.pop()
            if path in decided:
                continue
            if path and path not in below:
                self.drop(path, "gitsync has no rule for this field")
                continue
            children: Iterator[tuple[str | int, Any]]
            if isinstance(value, Mapping):
                children = ((str(k), v) for k, v in value.items())
            elif isinstance(value, list):
                children = enumerate(value)
            else:
                continue
            stack.extend(((*path, key), child) for key, child in children)

    def reports(self) -> list[FieldReport]:
        """Every decision by path, but a carried object whose fields have outcomes of their
        own is left to them (``spec.syncPolicy`` is its fields)."""
        parents = {path[:i] for path in self._by_path for i in range(len(path))}
        return sorted(
            (
                r
                for r in self._by_path.values()
                if not (r.outcome == Outcome.CARRIED and r.path in parents)
            ),
            key=lambda r: format_path(r.path),
        )


@dataclass
class DocumentReport:
    """What became of one input document: its fields, and whether it was written at all."""

    source: str
    """Where it was read: ``FILE`` or ``FILE#N`` for the N-th document of a stream."""
    kind: str
    name: str
    namespace: str = ""
    written: bool = True
    problem: str = ""
    """Why the document was not written (``written`` False)."""
    output: str = ""
    """What it became (``Application gitsync/guestbook``, ``projects.team-a``)."""
    fields: list[FieldReport] = field(default_factory=list)

    @property
    def not_carried(self) -> list[FieldReport]:
        return [f for f in self.fields if f.outcome == Outcome.NOT_CARRIED]

    @property
    def complete(self) -> bool:
        return self.written and not self.not_carried

    @property
    def title(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where or '(unnamed)'} ({self.source})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "written": self.written,
            "problem": self.problem,
            "output": self.output,
            "fields": [f.as_dict() for f in self.fields],
        }


@dataclass
class ImportReport:
    documents: list[DocumentReport] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every document written and every field carried, translated or ignored."""
        return all(d.complete for d in self.documents)

    @property
    def all_written(self) -> bool:
        return all(d.written for d in self.documents)

    def counts(self) -> dict[str, int]:
        counts = {str(o): 0 for o in Outcome}
        for doc in self.documents:
            for f in doc.fields:
                counts[str(f.outcome)] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "counts": self.counts(),
            "documents": [d.as_dict() for d in self.documents],
        }

    def as_text(self) -> str:
        lines: list[str] = []
        for doc in self.documents:
            head = doc.title + (f" -> {doc.output}" if doc.output and doc.written else "")
            lines.append(head)
            if not doc.written:
                lines.append(f"  NOT WRITTEN  {doc.problem}")
            for f in doc.fields:
                text = f"  {f.outcome:<12} {format_path(f.path) or '(document)'}"
                if f.outcome == Outcome.TRANSLATED and f.target not in (None, f.path):
                    text += f" -> {format_path(f.target)}"
                if f.note:
                    text += f": {f.note}"
                lines.append(text)
        counts = self.counts()
        written = sum(d.written for d in self.documents)
        lines.append(
            f"{len(self.documents)} documents, {written} written; fields: "
            + ", ".join(f"{n} {o}" for o, n in counts.items())
        )
        return "\n".join(lines) + "\n"
