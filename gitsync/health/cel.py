"""CEL for health checks: compile an expression with limits, evaluate it under a budget. Pure.

The adapter to ``cel-python`` (``celpy``) for custom health checks. Unlike a Rollout's
``successCondition`` (``gitsync.rollout.expressions``, a subset bounded by construction), a health
check needs the whole language over a live object: field selection, ``has()``, strings, and the
macros ``exists``/``all``/``map``/``filter`` over ``status.conditions``. Macros over lists are
loops, and nested ones multiply: ``l.all(a, l.all(b, l.all(c, ...)))`` over a list of a thousand
runs for hours in an interpreter that Python cannot interrupt from outside. So evaluation is
bounded from the inside, the way cel-go's runtime cost tracking bounds Kubernetes' CEL:

* **a cost budget** (``MAX_COST`` units per expression), charged as it runs: one unit per node
  evaluated - so every iteration of a macro body pays for itself - plus, before an operator or
  function runs, the size of what it is given (string length / 64, the number of elements in a
  list or map counted to any depth). The work any single step does is proportional to what it is
  charged, so a comparison of two huge lists cannot hide inside one "step". The deep count stops
  at the remaining budget, so counting is bounded too;
* **a deadline** (``MAX_SECONDS``, wall clock), checked at every node, for anything the cost model
  prices too low;
* **size limits** on what evaluation builds (``+``, ``*``, literals, functions and macros; the
  object's own values are not limited): a string longer than ``MAX_STRING_CHARS`` or a list or map
  longer than ``MAX_ITEMS`` is an error the moment it is made, so ``s + s`` doubling in a macro
  chain stops after a few steps.

At compile time: at most ``MAX_EXPRESSION_CHARS`` characters and a parse tree at most
``MAX_DEPTH`` deep (which also bounds the evaluator's recursion). ``matches()`` is allowed:
cel-python runs it with RE2, in time linear in the text (no backtracking), and the text is charged
like any operand.

Every failure is a ``CelError`` whose message names what was exceeded; nothing here raises
anything else for any expression or object.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_EXPRESSION_CHARS = 2048
MAX_DEPTH = 160
"""Parse-tree depth. Each level of CEL nesting (a parenthesis, a macro body, a selection) adds a
few tree levels; the bundled checks are under 40. The evaluator takes about three Python frames
per level, well inside the default recursion limit of 1000."""
MAX_COST = 50_000
"""About a second of cel-python on an idle core: ``exists`` over 10 conditions costs about 400, over
500 conditions about 18,000."""
MAX_SECONDS = 2.0
"""The backstop for what the cost model prices too low; above MAX_COST's second so that a busy
machine does not turn a legitimate check Unknown."""
MAX_STRING_CHARS = 256 * 1024
MAX_ITEMS = 10_000
# Nodes that hand values to a function or operator (charged by their size) and make new values
# (sized). A binary node with one child only passes its operand's value through.
_CALL_NODES = frozenset({"member_dot_arg", "ident_arg", "member_index", "list_lit", "map_lit"})
_BINARY_NODES = frozenset({"relation", "addition", "multiplication"})
_STRING_CHARS_PER_UNIT = 64


def _operation(tree: Any) -> bool:
    return tree.data in _CALL_NODES or (tree.data in _BINARY_NODES and len(tree.children) == 2)


class CelError(ValueError):
    """An expression that does not compile, or whose evaluation failed or ran out of budget."""


class BudgetExceeded(CelError):
    """Evaluation stopped: cost, time or size limit reached."""


@dataclass(frozen=True)
class Expression:
    """A compiled expression; ``evaluate`` may be called from any thread."""

    text: str
    _tree: Any = field(repr=False)

    def evaluate(
        self,
        variables: Mapping[str, object],
        *,
        max_cost: int = MAX_COST,
        max_seconds: float = MAX_SECONDS,
    ) -> bool:
        """The expression's verdict with ``variables`` (JSON values) bound by name.

        ``CelError`` when it does not give a boolean (a missing field, a type mismatch), or
        ``BudgetExceeded`` when it ran past ``max_cost`` units or ``max_seconds``.
        """
        import celpy
        from celpy.evaluation import Activation, CELEvalError

        budget = _Budget(max_cost, time.monotonic() + max_seconds, seconds=max_seconds)
        try:
            bound = {name: _to_cel(value) for name, value in variables.items()}
        except RecursionError:
            raise CelError("the object is nested too deeply to evaluate") from None
        activation = Activation(annotations=_environment().annotations, package=None)
        evaluator = _evaluator_class()(self._tree, activation, budget)
        try:
            verdict = evaluator.evaluate(bound)
        except BudgetExceeded:
            raise BudgetExceeded(budget.exceeded) from None
        except CELEvalError as exc:
            if budget.exceeded:
                raise BudgetExceeded(budget.exceeded) from None
            raise CelError(_eval_problem(exc)) from None
        except RecursionError:
            raise CelError("evaluation nested too deeply") from None
        except (ArithmeticError, TypeError, ValueError, KeyError, IndexError) as exc:
            raise CelError(f"cannot evaluate: {str(exc)[:200]}") from None
        if budget.exceeded:
            raise BudgetExceeded(budget.exceeded)
        if isinstance(verdict, CELEvalError):
            raise CelError(_eval_problem(verdict))
        if not isinstance(verdict, celpy.celtypes.BoolType):
            kind = type(verdict).__name__.removesuffix("Type").lower()
            raise CelError(f"gave {kind}, not a bool")
        return bool(verdict)


@dataclass
class _Budget:
    remaining: int
    deadline: float
    seconds: float = 0.0
    limit: int = 0
    exceeded: str = ""  # kept: a macro that swallows errors must not turn it into a verdict

    def __post_init__(self) -> None:
        self.limit = self.remaining

    def charge(self, units: int) -> None:
        self.remaining -= units
        if self.remaining < 0:
            self.exceeded = (
                f"exceeded its evaluation budget of {self.limit} units (nested macros over large "
                "lists, or large values compared or built)"
            )
        elif time.monotonic() > self.deadline:
            self.exceeded = f"exceeded its evaluation time limit ({self.seconds:g}s)"
        if self.exceeded:
            raise BudgetExceeded(self.exceeded)

    def over(self, what: str) -> None:
        self.exceeded = what
        raise BudgetExceeded(what)


def _weight(value: object, cap: int) -> int:
    """What an operator given ``value`` may have to walk: string length / 64, or the number of
    elements to any depth; counting stops once it passes ``cap``."""
    if isinstance(value, str | bytes):
        return len(value) // _STRING_CHARS_PER_UNIT
    total = 0
    stack = [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) // _STRING_CHARS_PER_UNIT
        elif isinstance(item, Mapping):
            total += len(item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += len(item)
            stack.extend(item)
    return total


def _check_size(value: object, budget: _Budget) -> None:
    if isinstance(value, str | bytes) and len(value) > MAX_STRING_CHARS:
        budget.over(f"built a string longer than {MAX_STRING_CHARS} characters")
    if isinstance(value, Mapping | list) and len(value) > MAX_ITEMS:
        budget.over(f"built a list or map of more than {MAX_ITEMS} items")


@functools.cache
def _evaluator_class() -> type[Any]:
    """celpy's tree-walking ``Evaluator``, metered: every node visit and every operand charged
    to the one ``_Budget`` shared with the sub-evaluators that run macro bodies."""
    import lark
    from celpy.evaluation import Evaluator

    class MeteredEvaluator(Evaluator):
        def __init__(self, ast: lark.Tree[Any], activation: Any, budget: _Budget) -> None:
            super().__init__(ast, activation=activation)
            self.budget = budget

        def sub_evaluator(self, ast: lark.Tree[Any]) -> Any:
            return MeteredEvaluator(ast, self.activation, self.budget)

        # lark's Interpreter funnels both ``visit`` and ``visit_children`` through
        # ``_visit_tree``: the one place that sees every node evaluated
        def _visit_tree(self, tree: lark.Tree[Any]) -> Any:
            self.budget.charge(1)
            value = super()._visit_tree(tree)
            if _operation(tree):
                _check_size(value, self.budget)
            return value

        def visit_children(self, tree: lark.Tree[Any]) -> list[Any]:
            values = super().visit_children(tree)
            if _operation(tree):
                cap = max(self.budget.remaining, 0) + 1
                self.budget.charge(sum(_weight(v, cap) for v in values))
            return list(values)

    return MeteredEvaluator


def _to_cel(value: object) -> Any:
    from celpy.adapter import json_to_cel

    return json_to_cel(value)  # type: ignore[arg-type]


_LOCK = threading.Lock()


@functools.cache
def _environment() -> Any:
    import celpy

    # Environment() raises the process's recursion limit to 2500 as a side effect; MAX_DEPTH
    # makes that unnecessary, and a library does not get to change it for the process.
    limit = sys.getrecursionlimit()
    try:
        return celpy.Environment()
    finally:
        sys.setrecursionlimit(limit)


def _eval_problem(exc: BaseException) -> str:
    """celpy's message, without its dump of the activation and its Python class names."""
    args = getattr(exc, "args", ())
    text = (str(args[0]) if args else str(exc)).split(" (in activation", 1)[0]
    text = re.sub(r"Token\('RULE', '(\w+)'\)", r"\1", text)
    text = re.sub(r"<class 'celpy\.celtypes\.(\w+?)(?:Type)?'>", lambda m: m[1].lower(), text)
    return text[:300]


@functools.lru_cache(maxsize=1024)
def compile_expression(text: str) -> Expression:
    """Parse and check ``text``; ``CelError`` says what is wrong (see the module doc)."""
    import lark
    from celpy.celparser import CELParseError

    if not text.strip():
        raise CelError("is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CelError(f"is longer than {MAX_EXPRESSION_CHARS} characters")
    with _LOCK:  # the parser is shared
        try:
            tree = _environment().compile(text)
        except CELParseError as exc:
            raise CelError(f"not a CEL expression: {str(exc).splitlines()[0][:200]}") from None
        except RecursionError:
            raise CelError(f"nested deeper than {MAX_DEPTH} levels") from None
    stack: list[tuple[lark.Tree[Any], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise CelError(f"nested deeper than {MAX_DEPTH} levels")
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))
    return Expression(text, tree)
