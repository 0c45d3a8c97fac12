"""The ApplicationSet template language: parameters into strings, and nothing else.

Argo CD renders an ApplicationSet's template with fasttemplate (``{{path.basename}}``) or, with
``goTemplate: true``, with Go's text/template and the Sprig library - a language with loops,
variables, ``define``/``template``/``include`` and functions that read the environment. A tenant
writes the template and the generators' parameters come from the tenant's repository, so here
the language is deliberately small and written out in full:

* **fasttemplate** (``goTemplate: false``): ``{{key}}`` (spaces inside allowed) is replaced by
  the flattened parameter ``key`` (``path.basename``, ``metadata.labels.env``, ``path[0]``); a tag
  naming no parameter stays as written, as in Argo CD.
* **Go-template spellings** (``goTemplate: true``): an action ``{{ pipeline }}`` whose commands
  are a field lookup (``.path.basename``, ``.``), a string or number literal, or a call of one of
  ``FUNCTIONS``, joined by ``|``; ``{{-``/``-}}`` trim spaces and ``{{/* */}}`` is a comment.
  Anything else - ``if``, ``range``, ``with``, ``define``, ``template``, ``block``, variables,
  an unknown function (``include``, ``env``, ``exec`` ...) - is a ``TemplateError`` naming it.
  A missing key prints ``<no value>`` as Go does, or is an error with ``missingkey=error``.

No recursion, by construction: a template is parsed once and a parameter's value is inserted as
text, never parsed again, so a value holding ``{{`` stays literal. Output is bounded: every
rendered string is checked against ``max_string_bytes`` while it is being built, so a template
repeating a large parameter 10,000 times stops at the limit instead of at the memory limit.
Pure: no I/O, no gitsync adapters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gitsync.errors import TerminalError

MISSING: Final = "<no value>"  # what Go's text/template prints for a missing key by default
MAX_TEMPLATE_ACTIONS: Final = 10_000
"""Actions one template string may hold (a bound on parse work, not on the output)."""


class TemplateError(TerminalError):
    """The template cannot be rendered with these parameters (bad syntax, an unsupported
    construct or function, a missing key under ``missingkey=error``, output over the limit)."""


@dataclass(frozen=True)
class TemplateOptions:
    """How strings are rendered: the language, the missing-key rule and the output bound."""

    go_template: bool = False
    missing_key_error: bool = False
    max_string_bytes: int = 64 * 1024


# -- functions -------------------------------------------------------------------------------

_NORMALIZE_DROP = re.compile(r"[^a-z0-9.-]+")


def normalize(value: str) -> str:
    """Argo CD's ``normalize``: lower case, accents dropped, anything outside ``[a-z0-9.-]``
    replaced by ``-``, at most 253 characters - a usable object name."""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
    text = _NORMALIZE_DROP.sub("-", text)
    return text[:253].strip("-.")


def _text(value: object, function: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{function}: expected a string, got a {type(value).__name__}")


def _int(value: object, function: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TemplateError(f"{function}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise TemplateError(f"{function}: expected an integer, got {value!r}") from None


def _default(default: object, value: object = None) -> object:
    """Sprig's ``default``: ``value`` unless it is empty (missing, "", 0, false, empty list)."""
    return value if value not in (None, "", 0, False, [], {}) and value != MISSING else default


def _trunc(length: object, value: object) -> str:
    n, text = _int(length, "trunc"), _text(value, "trunc")
    return text[:n] if n >= 0 else text[n:]


def _index(collection: object, *keys: object) -> object:
    current = collection
    for key in keys:
        if isinstance(current, list) and not isinstance(key, bool) and isinstance(key, int):
            if not -len(current) <= key < len(current):
                raise TemplateError(f"index: {key} is out of range (length {len(current)})")
            current = current[key]
        elif isinstance(current, Mapping) and isinstance(key, str):
            current = current.get(key)
        else:
            raise TemplateError(f"index: cannot index a {type(current).__name__} with {key!r}")
    return current


def _join(separator: object, values: object) -> str:
    if not isinstance(values, list):
        raise TemplateError(f"join: expected a list, got a {type(values).__name__}")
    return _text(separator, "join").join(_text(v, "join") for v in values)


def _replace(old: object, new: object, value: object) -> str:
    return _text(value, "replace").replace(_text(old, "replace"), _text(new, "replace"))


FUNCTIONS: Final[Mapping[str, Callable[..., object]]] = {
    "default": _default,
    "index": _index,
    "join": _join,
    "lower": lambda v: _text(v, "lower").lower(),
    "normalize": lambda v: normalize(_text(v, "normalize")),
    "quote": lambda v: '"' + _text(v, "quote").replace("\\", "\\\\").replace('"', '\\"') + '"',
    "replace": _replace,
    "squote": lambda v: "'" + _text(v, "squote") + "'",
    "toString": lambda v: _text(v, "toString"),
    "trimPrefix": lambda p, v: _text(v, "trimPrefix").removeprefix(_text(p, "trimPrefix")),
    "trimSuffix": lambda s, v: _text(v, "trimSuffix").removesuffix(_text(s, "trimSuffix")),
    "trunc": _trunc,
    "upper": lambda v: _text(v, "upper").upper(),
}
"""The functions a Go-style template may call (Sprig's spellings and argument order; the piped
value comes last). Anything else is refused by name."""

_KEYWORDS: Final = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)

# -- parsing ---------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<number>-?\d+)
      | (?P<field>\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?)
      | (?P<pipe>\|)
      | (?P<open>\()
      | (?P<close>\))
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<other>\S+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Literal:
    value: object


@dataclass(frozen=True)
class _Field:
    path: tuple[str, ...]  # () is "." (the whole parameter set)


@dataclass(frozen=True)
class _Call:
    function: str
    args: tuple[_Node, ...]


_Node = _Literal | _Field | _Call
_Command = _Node  # the piped value is appended to a call's arguments


def _tokens(action: str) -> list[tuple[str, str]]:
    out = []
    for match in _TOKEN.finditer(action):
        kind = match.lastgroup
        if kind is None:
            continue
        out.append((kind, match.group(kind)))
    return out


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text[1:-1]
    )


class _Parser:
    """Recursive descent over one action's tokens; parentheses nest at most 16 deep."""

    def __init__(self, tokens: list[tuple[str, str]], where: str):
        self.tokens = tokens
        self.pos = 0
        self.where = where
        self.depth = 0

    def fail(self, problem: str) -> TemplateError:
        return TemplateError(f"{self.where}: {problem}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def pipeline(self) -> list[_Command]:
        commands = [self.command()]
        while (token := self.peek()) is not None and token[0] == "pipe":
            self.pos += 1
            commands.append(self.command())
        return commands

    def command(self) -> _Command:
        token = self.peek()
        if token is None:
            raise self.fail("an empty command")
        kind, text = token
        if kind == "word" and text not in ("true", "false", "nil"):
            self.pos += 1
            if text in _KEYWORDS:
                raise self.fail(f"{text!r} is not supported (no control structures or includes)")
            if text not in FUNCTIONS:
                supported = ", ".join(sorted(FUNCTIONS))
                raise self.fail(f"function {text!r} is not supported (supported: {supported})")
            args: list[_Node] = []
            while (nxt := self.peek()) is not None and nxt[0] not in ("pipe", "close"):
                args.append(self.operand())
            return _Call(text, tuple(args))
        return self.operand()

    def operand(self) -> _Node:
        token = self.peek()
        if token is None:
            raise self.fail("a missing operand")
        kind, text = token
        self.pos += 1
        if kind == "string":
            return _Literal(_unquote(text))
        if kind == "number":
            return _Literal(int(text))
        if kind == "field":
            return _Field(tuple(p for p in text.split(".") if p))
        if kind == "word" and text in ("true", "false"):
            return _Literal(text == "true")
        if kind == "word" and text == "nil":
            return _Literal(None)
        if kind == "open":
            self.depth += 1
            if self.depth > 16:
                raise self.fail("parentheses nested deeper than 16")
            commands = self.pipeline()
            closing = self.peek()
            if closing is None or closing[0] != "close":
                raise self.fail("a '(' without its ')'")
            self.pos += 1
            self.depth -= 1
            return _pipeline_node(commands, self.where)
        if kind == "word" and text in FUNCTIONS:
            return _Call(text, ())  # a function named without arguments, e.g. "(lower)"
        if kind == "word":
            raise self.fail(f"{text!r} is not supported here")
        if text.startswith("$"):
            raise self.fail(f"variables ({text}) are not supported")
        raise self.fail(f"cannot read {text!r}")


def _pipeline_node(commands: list[_Command], where: str) -> _Node:
    node = commands[0]
    for command in commands[1:]:
        if not isinstance(command, _Call):
            raise TemplateError(f"{where}: only a function can follow '|'")
        node = _Call(command.function, (*command.args, node))
    return node


@dataclass(frozen=True)
class _Piece:
    text: str | None = None  # literal text, or
    node: _Node | None = None  # an action's pipeline, or
    flat_key: str | None = None  # a fasttemplate tag (``raw`` is what to print when unknown)
    raw: str = ""


def parse(template: str, *, go_template: bool, where: str = "template") -> list[_Piece]:
    """The pieces of ``template``; raises ``TemplateError`` naming ``where``."""
    if not go_template:
        return _parse_flat(template, where)
    pieces: list[_Piece] = []
    pos = 0
    for count, match in enumerate(_ACTION.finditer(template), start=1):
        if count > MAX_TEMPLATE_ACTIONS:
            raise TemplateError(f"{where}: more than {MAX_TEMPLATE_ACTIONS} actions")
        before = template[pos : match.start()]
        if match.group(1):
            before = before.rstrip()
        if before:
            pieces.append(_Piece(text=before))
        pos = match.end()
        if match.group(3):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
        body = match.group(2).strip()
        if body.startswith("/*") and body.endswith("*/"):
            continue
        tokens = _tokens(body)
        if not tokens:
            raise TemplateError(f"{where}: an empty action {{{{}}}}")
        parser = _Parser(tokens, where)
        node = _pipeline_node(parser.pipeline(), where)
        if parser.pos != len(tokens):
            raise TemplateError(f"{where}: unexpected {tokens[parser.pos][1]!r} in {body!r}")
        pieces.append(_Piece(node=node))
    tail = template[pos:]
    if "{{" in tail:
        raise TemplateError(f"{where}: an unclosed action '{{{{'")
    if tail:
        pieces.append(_Piece(text=tail))
    return pieces


def _parse_flat(template: str, where: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    pos = 0
    while (start := template.find("{{", pos)) >= 0:
        end = template.find("}}", start + 2)
        if end < 0:
            break  # fasttemplate leaves an unclosed tag as text
        if len(pieces) > 2 * MAX_TEMPLATE_ACTIONS:
            raise TemplateError(f"{where}: more than {MAX_TEMPLATE_ACTIONS} tags")
        if start > pos:
            pieces.append(_Piece(text=template[pos:start]))
        raw = template[start : end + 2]
        pieces.append(_Piece(flat_key=template[start + 2 : end].strip(), raw=raw))
        pos = end + 2
    if pos < len(template):
        pieces.append(_Piece(text=template[pos:]))
    return pieces


# -- rendering -------------------------------------------------------------------------------


def _lookup(params: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, object]:
    current: object = params
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _evaluate(node: _Node, params: Mapping[str, Any], options: TemplateOptions, where: str) -> Any:
    if isinstance(node, _Literal):
        return node.value
    if isinstance(node, _Field):
        found, value = _lookup(params, node.path)
        if not found:
            if options.missing_key_error:
                raise TemplateError(
                    f"{where}: no parameter .{'.'.join(node.path)} (missingkey=error)"
                )
            return MISSING
        return value
    args = [_evaluate(arg, params, options, where) for arg in node.args]
    try:
        return FUNCTIONS[node.function](*args)
    except TemplateError as exc:
        raise TemplateError(f"{where}: {exc}") from None
    except TypeError:
        raise TemplateError(
            f"{where}: {node.function} called with {len(args)} argument(s)"
        ) from None


def _printed(value: Any, where: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, list | Mapping):
        raise TemplateError(
            f"{where}: a {type(value).__name__} cannot be printed into a string (use index or join)"
        )
    return _text(value, "print")


def render_string(
    template: str, params: Mapping[str, Any], options: TemplateOptions, *, where: str = "template"
) -> str:
    """``template`` with ``params`` (nested for Go templates, flat for fasttemplate); raises
    ``TemplateError`` naming ``where``. A string without ``{{`` is returned as it is."""
    if "{{" not in template:
        return template
    out: list[str] = []
    size = 0
    for piece in parse(template, go_template=options.go_template, where=where):
        if piece.text is not None:
            chunk = piece.text
        elif piece.node is not None:
            chunk = _printed(_evaluate(piece.node, params, options, where), where)
        else:
            value = params.get(piece.flat_key or "")
            chunk = piece.raw if value is None else _printed(value, where)
        size += len(chunk.encode())
        if size > options.max_string_bytes:
            raise TemplateError(
                f"{where}: the rendered string exceeds {options.max_string_bytes} bytes"
            )
        out.append(chunk)
    return "".join(out)


MAX_TEMPLATE_DEPTH: Final = 64


def render_value(
    value: Any, params: Mapping[str, Any], options: TemplateOptions, *, where: str, depth: int = 0
) -> Any:
    """``value`` (a JSON-shaped template) with every string, keys included, rendered; the
    shape and every non-string value are kept. ``where`` is the dotted path of ``value``."""
    if depth > MAX_TEMPLATE_DEPTH:
        raise TemplateError(f"{where}: nested deeper than {MAX_TEMPLATE_DEPTH}")
    if isinstance(value, str):
        return render_string(value, params, options, where=where)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = render_string(str(key), params, options, where=f"{where}.{key}")
            out[name] = render_value(item, params, options, where=f"{where}.{key}", depth=depth + 1)
        return out
    if isinstance(value, list):
        return [
            render_value(item, params, options, where=f"{where}[{i}]", depth=depth + 1)
            for i, item in enumerate(value)
        ]
    return value
