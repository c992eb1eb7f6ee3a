"""Evaluate the Python arithmetic seqgen writes, without eval(): a tiny interpreter over `ast`.

seqgen checks every size expression it prints against the symbolic value it came from, at the
defaults and at other values. Printed text only ever holds names, integers, `+ - * // %`, unary
minus, `max`/`min`, `int(...)` (a size times a float parameter), comparisons and
`not`/`and`/`or`; anything else is refused.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.GtE: operator.ge,
    ast.Gt: operator.gt,
    ast.LtE: operator.le,
    ast.Lt: operator.lt,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_CALLS: dict[str, Callable[..., Any]] = {"max": max, "min": min}


class NotArithmetic(ValueError):
    """The text holds something other than seqgen's size arithmetic."""


def evaluate_source(source: str, values: Mapping[str, float]) -> Any:
    """The value of `source` (an expression seqgen printed) with names bound to `values`."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as e:
        raise NotArithmetic(f"not an expression: {source!r}") from e
    return _eval(tree.body, values)


def _eval(node: ast.AST, values: Mapping[str, float]) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, bool):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in values:
            raise NotArithmetic(f"unknown name {node.id!r}")
        return values[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, values)
    if isinstance(node, ast.BoolOp):
        parts = (_eval(v, values) for v in node.values)
        return all(parts) if isinstance(node.op, ast.And) else any(parts)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        return _COMPARE[type(node.ops[0])](
            _eval(node.left, values), _eval(node.comparators[0], values)
        )
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _CALLS
        and not node.keywords
        and len(node.args) >= 2
    ):
        return _CALLS[node.func.id](*(_eval(a, values) for a in node.args))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "int"
        and not node.keywords
        and len(node.args) == 1
    ):  # `int(h * sf)`: the size a float scale factor gives
        return int(_eval(node.args[0], values))
    raise NotArithmetic(f"unexpected {type(node).__name__} in seqgen arithmetic")
