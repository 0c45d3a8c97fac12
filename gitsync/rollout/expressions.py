"""The two small languages of a Rollout metric: ``successCondition`` and ``jsonPath``. Pure.

``successCondition`` is CEL (the Common Expression Language), parsed and evaluated by
``cel-python`` - never Python ``eval`` - and accepted only within a subset whose evaluation is
bounded by construction. CEL itself cannot loop forever, but its macros can: a 500-character
``[1,...].map(a, [1,...].map(b, ...))`` multiplies list sizes and runs for minutes, and neither CEL
library can be interrupted. So the parse tree is checked against a whitelist before anything
runs: the one variable ``result``; number and boolean literals; ``+ - * /``, unary ``-`` and
``!``; ``< <= > >= == !=``; ``&& ||``; ``?:``; parentheses - and nothing else (no calls, macros,
fields, indexes, lists, maps, strings). Each allowed node is evaluated once in constant time, so
with the text at most ``MAX_CONDITION_LENGTH`` characters and the tree at most ``MAX_DEPTH``
deep (which also bounds the evaluator's recursion) evaluation is bounded without a watchdog.

Every number in a condition is a double, like ``result``: CEL has no ``1 == 1.0`` across int and
double, and a Prometheus value is always a double, so ``result == 0`` and ``result * 100 >= 95``
mean what they say. The condition must give a boolean.

``jsonPath`` (the web provider) is the subset ``$``, ``.name``, ``['name']`` and ``[0]``: a path
from the document's root to one value, no filters or wildcards.

A leaf module (no imports from the rest of gitsync) so the spec parser can reject a bad condition
or path with the field's name, and the analysis can evaluate it.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import lark

MAX_CONDITION_LENGTH = 1024
MAX_DEPTH = 64
"""Parse-tree depth: ``result >= 0.95`` is 12 deep, each pair of parentheses adds 10, each link of
an ``&&``/``||``/``+`` chain 1 - so five nested parentheses or a chain of 50. The deepest tree
accepted takes about 330 Python frames to evaluate, well inside the default limit of 1000."""
MAX_JSON_PATH_LENGTH = 256
MAX_JSON_PATH_SEGMENTS = 32
VARIABLE = "result"

_ALLOWED_NODES = frozenset(
    {
        "expr",  # also the ternary a ? b : c
        "conditionalor",
        "conditionaland",
        "relation",
        "relation_lt",
        "relation_le",
        "relation_gt",
        "relation_ge",
        "relation_eq",
        "relation_ne",
        "addition",
        "addition_add",
        "addition_sub",
        "multiplication",
        "multiplication_mul",
        "multiplication_div",
        "unary",
        "unary_not",
        "unary_neg",
        "member",
        "primary",
        "paren_expr",
        "ident",
        "literal",
    }
)
_REFUSED = {
    "relation_in": "the 'in' operator",
    "multiplication_mod": "'%' (numbers are doubles, CEL has no double modulo)",
    "member_dot": "field selection ('.')",
    "member_dot_arg": "method calls",
    "member_index": "indexing ('[...]'): result is already one value",
    "member_object": "message construction",
    "ident_arg": "function calls",
    "dot_ident": "qualified names",
    "dot_ident_arg": "function calls",
    "list_lit": "lists",
    "map_lit": "maps",
}
_NUMBER_TOKENS = frozenset({"INT_LIT", "FLOAT_LIT"})
_REFUSED_LITERALS = {
    "NULL_LIT": "null",
    "UINT_LIT": "unsigned numbers (write 1, not 1u)",
    "STRING_LIT": "strings",
    "MLSTRING_LIT": "strings",
    "BYTES_LIT": "bytes",
}


class ConditionError(ValueError):
    """A condition that is not accepted, or that failed to evaluate to a boolean."""


@dataclass(frozen=True)
class Condition:
    """A compiled ``successCondition``; ``evaluate`` is safe to call from any thread."""

    text: str
    _tree: Any

    def evaluate(self, result: float | bool) -> bool:
        """The condition's verdict on ``result``; ``ConditionError`` when it has none (a type
        mismatch such as ``result > 0.5`` on a boolean, a division by zero)."""
        import celpy
        from celpy.evaluation import CELEvalError

        value: Any = (
            celpy.celtypes.BoolType(result)
            if isinstance(result, bool)
            else celpy.celtypes.DoubleType(result)
        )
        with _LOCK:  # Environment.program keeps the runner on the environment
            try:
                verdict = _environment().program(self._tree).evaluate({VARIABLE: value})
            except CELEvalError as exc:
                raise ConditionError(_eval_problem(exc)) from None
            except (RecursionError, ArithmeticError, TypeError, ValueError) as exc:
                raise ConditionError(f"cannot evaluate: {exc}") from None
        if isinstance(verdict, CELEvalError):
            raise ConditionError(_eval_problem(verdict))
        if not isinstance(verdict, celpy.celtypes.BoolType):
            raise ConditionError(f"gave {_cel_text(verdict)}, not true or false")
        return bool(verdict)


_LOCK = threading.Lock()


@functools.cache
def _environment() -> Any:
    import celpy

    # Environment() raises the process's recursion limit to 2500 as a side effect; the depth
    # bound makes that unnecessary, and a library does not get to change it for the process.
    limit = sys.getrecursionlimit()
    try:
        return celpy.Environment(runner_class=celpy.InterpretedRunner)
    finally:
        sys.setrecursionlimit(limit)


def _eval_problem(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    first = str(args[0]) if args else str(exc)
    if "no matching overload" in first:
        return "type mismatch (e.g. comparing a boolean result with a number)"
    return first[:200]


def _cel_text(value: object) -> str:
    return f"{type(value).__name__.removesuffix('Type').lower()} {value}"


@functools.lru_cache(maxsize=256)
def compile_condition(text: str) -> Condition:
    """Parse and check ``text``; ``ConditionError`` says what is wrong (see the module doc)."""
    import lark
    from celpy.celparser import CELParseError

    text = text.strip()
    if not text:
        raise ConditionError("is empty")
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"is longer than {MAX_CONDITION_LENGTH} characters")
    with _LOCK:
        try:
            tree = _environment().compile(text)
        except CELParseError as exc:
            raise ConditionError(f"not a CEL expression: {str(exc).splitlines()[0]}") from None
        except RecursionError:
            raise ConditionError(f"nested deeper than {MAX_DEPTH} levels") from None
    uses_result = False
    stack: list[tuple[lark.Tree[Any], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConditionError(
                f"nested deeper than {MAX_DEPTH} levels (fewer parentheses or a shorter chain)"
            )
        kind = str(node.data)
        if kind not in _ALLOWED_NODES:
            raise ConditionError(
                f"not supported: {_REFUSED.get(kind, kind)}; a condition uses {VARIABLE}, numbers, "
                "true/false, + - * /, comparisons, !, &&, ||, ?: and parentheses"
            )
        for i, child in enumerate(node.children):
            if isinstance(child, lark.Tree):
                stack.append((child, depth + 1))
            elif isinstance(child, lark.Token):
                node.children[i] = _checked_token(kind, child)
                uses_result = uses_result or (kind == "ident" and child.value == VARIABLE)
    if not uses_result:
        raise ConditionError(f"never looks at {VARIABLE} (e.g. '{VARIABLE} >= 0.95')")
    return Condition(text, tree)


def _checked_token(kind: str, token: lark.Token) -> lark.Token:
    """The token, if allowed; integer literals become doubles (see the module doc)."""
    import lark

    if kind == "ident":
        if token.value != VARIABLE:
            raise ConditionError(f"unknown name {token.value!r}: the only variable is {VARIABLE}")
        return token
    if kind == "literal" and token.type == "BOOL_LIT":
        return token
    if kind == "literal" and token.type in _NUMBER_TOKENS:
        try:
            number = float(int(token.value, 0)) if token.type == "INT_LIT" else float(token.value)
        except (ValueError, OverflowError):
            raise ConditionError(f"number out of range: {token.value[:40]}") from None
        if not math.isfinite(number):
            raise ConditionError(f"number out of range: {token.value[:40]}")
        return lark.Token("FLOAT_LIT", repr(number), token.start_pos, token.line, token.column)
    if kind == "literal":
        what = _REFUSED_LITERALS.get(token.type, token.type)
        raise ConditionError(
            f"not supported: {what}; compare {VARIABLE} with numbers or true/false"
        )
    raise ConditionError(f"unexpected {token.type} {token.value!r}")


# -- jsonPath ------------------------------------------------------------------------------------

_SEGMENT = re.compile(
    r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)"""
    r"""|\[(?P<index>0|[1-9][0-9]{0,8})\]"""
    r"""|\['(?P<single>[^']*)'\]"""
    r"""|\["(?P<double>[^"]*)"\]"""
)

JsonPath = tuple[str | int, ...]
_MISSING = object()


def compile_json_path(text: str) -> JsonPath:
    """``$.a.b[0]['c d']`` as keys and indexes; ``ValueError`` naming what is not supported."""
    if len(text) > MAX_JSON_PATH_LENGTH:
        raise ValueError(f"is longer than {MAX_JSON_PATH_LENGTH} characters")
    if not text.startswith("$"):
        raise ValueError(f"must start with '$', got {text!r}")
    keys: list[str | int] = []
    pos = 1
    while pos < len(text):
        match = _SEGMENT.match(text, pos)
        if match is None:
            raise ValueError(
                f"unsupported at {text[pos:][:20]!r}: use $.name, $['name'] and $.name[0]"
            )
        index = match.group("index")
        if index is not None:
            keys.append(int(index))
        else:
            key = match.group("name") or match.group("single") or match.group("double")
            keys.append(key or "")
        pos = match.end()
    if len(keys) > MAX_JSON_PATH_SEGMENTS:
        raise ValueError(f"has more than {MAX_JSON_PATH_SEGMENTS} segments")
    return tuple(keys)


def select(document: object, path: JsonPath) -> object:
    """The value ``path`` leads to in ``document``, or None when it leads nowhere."""
    node: object = document
    for key in path:
        if isinstance(key, int) and isinstance(node, list):
            node = node[key] if key < len(node) else _MISSING
        elif isinstance(key, str) and isinstance(node, Mapping):
            node = node.get(key, _MISSING)
        else:
            node = _MISSING
        if node is _MISSING:
            return None
    return node
