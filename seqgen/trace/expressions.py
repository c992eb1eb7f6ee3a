"""Size expressions (sympy) as Python source, and evaluated exactly at integer values.

Both traces (torch's ShapeEnv in symbolic.py, seqgen's own sizes in sizes.py) build the same
sympy expressions: sums, products, torch's `FloorDiv`, `CeilDiv`, `Mod`/`PythonMod`, `Min` and
`Max`, and relations between them.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import sympy
from torch.utils._sympy import functions as symfn

# Python's binding strength, loosest first: `or`, `and`, `not`, comparisons, `+ -`, `* // %`,
# unary minus, atoms (names, numbers, calls, parenthesised text).
_PREC_OR, _PREC_AND, _PREC_NOT, _PREC_CMP, _PREC_ADD, _PREC_MUL, _PREC_UNARY, _PREC_ATOM = range(8)
_RELATIONS = {  # each relation's operator, and its negation's
    sympy.Ge: (">=", "<"),
    sympy.Gt: (">", "<="),
    sympy.Le: ("<=", ">"),
    sympy.Lt: ("<", ">="),
    sympy.Eq: ("==", "!="),
    sympy.Ne: ("!=", "=="),
}


MAXES = (sympy.Max, symfn.Max)
MIN_MAX = (*MAXES, sympy.Min, symfn.Min)
CEIL_DIV = symfn.CeilDiv  # -(-a // b)
FLOOR_DIVISIONS = (symfn.FloorDiv, CEIL_DIV)  # a // b and -(-a // b)
MODS = (symfn.Mod, symfn.PythonMod, sympy.Mod)  # a % b


class ScaledSize(sympy.Function):  # type: ignore[misc]
    """`int(size * scale)`: the size a float scale factor gives (torch's interpolate computes
    the product in double precision and truncates it; the scale is checked > 0 first, so it is
    the floor). The scale is a float model parameter, the size an int expression."""

    is_integer = True

    @classmethod
    def eval(cls, size: sympy.Expr, scale: sympy.Expr) -> sympy.Expr | None:
        if size.is_Number and scale.is_Number:
            return sympy.Integer(int(float(size) * float(scale)))
        return None


class Unprintable(Exception):
    """A size expression that plain Python arithmetic cannot express."""


def to_python(expr: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> str:
    """Render a size expression (or a condition on sizes) as Python source over the names.

    Every operand of `//` and `%` that is not atomic is parenthesised, and so is every `//` or
    `%` inside a product: `2 * (h // 2)`, never `2 * h // 2`. Terms and factors are ordered by
    their rendered text, so the output never depends on torch's internal symbol names.
    """
    return _emit(sympy.sympify(expr), names)[0]


def to_python_negated(cond: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> str:
    """The simplest Python that is true exactly when `cond` is false (`a != b` for `a == b`).
    Parts of `and`/`or` keep `to_python`'s order: the same sizes are read in the same order."""
    return _emit_negated(sympy.sympify(cond), names)[0]


def _emit_negated(e: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> tuple[str, int]:
    if type(e) in _RELATIONS:
        return _emit_relation(e, names, _RELATIONS[type(e)][1])
    if isinstance(e, sympy.Not):
        return _emit(e.args[0], names)
    if isinstance(e, (sympy.And, sympy.Or)):  # not (a and b) is (not a) or (not b)
        own = _PREC_AND if isinstance(e, sympy.And) else _PREC_OR
        op, prec = ("or", _PREC_OR) if own == _PREC_AND else ("and", _PREC_AND)
        parts = sorted(e.args, key=lambda a: _wrap(_emit(a, names), own + 1))
        return f" {op} ".join(_wrap(_emit_negated(a, names), prec + 1) for a in parts), prec
    return f"not {_wrap(_emit(e, names), _PREC_NOT)}", _PREC_NOT


def _wrap(text_prec: tuple[str, int], min_prec: int) -> str:
    text, prec = text_prec
    return f"({text})" if prec < min_prec else text


def _atom(e: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> str:
    """`e` as an atom: parenthesised unless it is a name, a non-negative number or a call."""
    return _wrap(_emit(e, names), _PREC_ATOM)


def _emit(e: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> tuple[str, int]:
    if e is sympy.true or e is sympy.false:
        return ("True" if e is sympy.true else "False"), _PREC_ATOM
    if isinstance(e, sympy.Integer):
        v = int(e)
        return (str(v), _PREC_ATOM) if v >= 0 else (str(v), _PREC_UNARY)
    if isinstance(e, sympy.Symbol):
        if e not in names:
            raise Unprintable(f"unknown symbol {e}")
        return names[e], _PREC_ATOM
    if isinstance(e, sympy.Add):
        return _emit_sum(e, names)
    if isinstance(e, sympy.Mul):
        coeff, rest = e.as_coeff_Mul()
        if coeff == -1:
            return f"-{_wrap(_emit(rest, names), _PREC_UNARY)}", _PREC_UNARY
        if not isinstance(coeff, sympy.Integer):
            raise Unprintable(f"non-integer coefficient in {e}")
        factors = sorted(
            (_emit_factor(f, names) for f in sympy.Mul.make_args(rest)),
            key=lambda text: (text.lstrip("("), text),
        )
        if coeff != 1:
            factors.insert(0, str(int(coeff)))
        return " * ".join(factors), _PREC_MUL
    if isinstance(e, (sympy.Pow, symfn.PowByNatural)):
        base, exp = e.args
        if not (isinstance(exp, sympy.Integer) and int(exp) > 0):
            raise Unprintable(f"power {e}")
        return " * ".join([_emit_factor(base, names)] * int(exp)), _PREC_MUL
    if isinstance(e, symfn.FloorDiv):
        a, b = e.args
        return f"{_atom(a, names)} // {_atom(b, names)}", _PREC_MUL
    if isinstance(e, symfn.CeilDiv):
        a, b = e.args
        return f"-(-{_atom(a, names)} // {_atom(b, names)})", _PREC_UNARY
    if isinstance(e, (symfn.Mod, symfn.PythonMod, sympy.Mod)):
        a, b = e.args
        return f"{_atom(a, names)} % {_atom(b, names)}", _PREC_MUL
    if isinstance(e, (sympy.Max, symfn.Max, sympy.Min, symfn.Min)):
        fn = "max" if isinstance(e, (sympy.Max, symfn.Max)) else "min"
        args = sorted(_emit(a, names)[0] for a in e.args)
        return f"{fn}({', '.join(args)})", _PREC_ATOM
    if isinstance(e, ScaledSize):
        size, scale = e.args
        return f"int({_emit_factor(size, names)} * {_atom(scale, names)})", _PREC_ATOM
    if type(e) in _RELATIONS:
        return _emit_relation(e, names, _RELATIONS[type(e)][0])
    if isinstance(e, sympy.Not):
        return f"not {_wrap(_emit(e.args[0], names), _PREC_NOT)}", _PREC_NOT
    if isinstance(e, (sympy.And, sympy.Or)):
        op, prec = ("and", _PREC_AND) if isinstance(e, sympy.And) else ("or", _PREC_OR)
        parts = sorted(_wrap(_emit(a, names), prec + 1) for a in e.args)
        return f" {op} ".join(parts), prec
    raise Unprintable(f"{type(e).__name__}: {e}")


def _emit_relation(e: sympy.Basic, names: Mapping[sympy.Symbol, str], op: str) -> tuple[str, int]:
    lhs, rhs = (_wrap(_emit(a, names), _PREC_ADD) for a in e.args)
    return f"{lhs} {op} {rhs}", _PREC_CMP


def _emit_factor(f: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> str:
    """A factor of a product: a sum, `//`, `%` or negative number inside it is parenthesised."""
    text, prec = _emit(f, names)
    return (
        text if prec == _PREC_ATOM or (prec == _PREC_MUL and not _has_division(f)) else f"({text})"
    )


def _has_division(f: sympy.Basic) -> bool:
    return isinstance(f, (symfn.FloorDiv, symfn.Mod, symfn.PythonMod, sympy.Mod))


def _emit_sum(e: sympy.Add, names: Mapping[sympy.Symbol, str]) -> tuple[str, int]:
    """`16 * n - k + 2`: positive symbolic terms first, then negative ones, the constant last."""
    rendered = []
    for term in e.args:
        coeff, rest = term.as_coeff_Mul()
        negative = coeff < 0
        text = _wrap(_emit(-term if negative else term, names), _PREC_ADD + 1)
        key = _emit(rest, names)[0].lstrip("(") if not term.is_number else ""
        rendered.append((2 if term.is_number else (1 if negative else 0), key, text, negative))
    rendered.sort()
    if rendered[0][3] and rendered[-1][0] == 2 and not rendered[-1][3]:
        rendered.insert(0, rendered.pop())  # `16 - k`, not `-k + 16`
    out = ""
    for i, (_, _, text, negative) in enumerate(rendered):
        if i == 0 and negative:
            # `-(h // 2)`: Python reads `-h // 2` as `(-h) // 2`
            out = f"-({text})" if " // " in text or " % " in text else f"-{text}"
        elif i == 0:
            out = text
        else:
            out += f" - {text}" if negative else f" + {text}"
    return out, _PREC_ADD


_COMPARE = {
    sympy.Ge: operator.ge,
    sympy.Gt: operator.gt,
    sympy.Le: operator.le,
    sympy.Lt: operator.lt,
    sympy.Eq: operator.eq,
    sympy.Ne: operator.ne,
}


def evaluate(expr: sympy.Basic, values: Mapping[sympy.Symbol, int]) -> Any:
    """Evaluate a size expression (int) or condition (bool) at integer values (a float
    parameter's at its float), exactly."""
    e = sympy.sympify(expr)
    if e is sympy.true or e is sympy.false:
        return e is sympy.true
    if isinstance(e, sympy.Integer):
        return int(e)
    if isinstance(e, sympy.Symbol):
        value = values[e]
        return value if isinstance(value, float) else int(value)  # a float parameter: a scale
    args = [evaluate(a, values) for a in e.args]
    if isinstance(e, sympy.Add):
        return sum(args)
    if isinstance(e, sympy.Mul):
        out = 1
        for a in args:
            out *= a
        return out
    if isinstance(e, (sympy.Pow, symfn.PowByNatural)):
        return args[0] ** args[1]
    if isinstance(e, symfn.FloorDiv):
        return args[0] // args[1]
    if isinstance(e, symfn.CeilDiv):
        return -(-args[0] // args[1])
    if isinstance(e, (symfn.Mod, symfn.PythonMod, sympy.Mod)):
        return args[0] % args[1]
    if type(e) in _RELATIONS:
        return _COMPARE[type(e)](args[0], args[1])
    if isinstance(e, sympy.Not):
        return not args[0]
    if isinstance(e, sympy.And):
        return all(args)
    if isinstance(e, sympy.Or):
        return any(args)
    if isinstance(e, ScaledSize):
        return int(args[0] * args[1])  # as torch and the generated code compute it
    if isinstance(e, (sympy.Max, symfn.Max)):
        return max(args)
    if isinstance(e, (sympy.Min, symfn.Min)):
        return min(args)
    raise Unprintable(f"{type(e).__name__}: {e}")


def free_symbols(expr: sympy.Expr) -> frozenset[sympy.Symbol]:
    """The symbols an expression depends on."""
    return frozenset(s for s in sympy.sympify(expr).free_symbols if isinstance(s, sympy.Symbol))
