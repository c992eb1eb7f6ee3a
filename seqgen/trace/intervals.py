"""What bounds on the parameters imply (trace stage): interval arithmetic over the integers.

The generated `__init__` checks its bounds (`c1 >= 1`, `k <= 16`) before any condition written
as is, so a written condition that holds at every integer point inside the bounds can never
refuse anything: `c1 + c3 + c5 + pool_proj >= 1` after each term is checked >= 1. Each size gets
an interval (None: unbounded on that side) from the structure of its expression, and only what
is certain counts: an expression this module cannot bound is unbounded, so a condition is
dropped only when it is implied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import sympy

from seqgen.trace import symbolic as S

Bound = int | None
Interval = tuple[Bound, Bound]  # (lowest, highest); None: no bound on that side
UNKNOWN: Interval = (None, None)


def implied(cond: sympy.Basic, box: Mapping[sympy.Symbol, Interval]) -> bool:
    """Whether `cond` holds, without dividing by zero, at every integer point of `box`."""
    for node in sympy.preorder_traversal(cond):
        if isinstance(node, (*S.FLOOR_DIVISIONS, *S.MODS)):
            lo, hi = interval(node.args[1], box)
            if not ((lo is not None and lo >= 1) or (hi is not None and hi <= -1)):
                return False  # the check may divide by zero, and so refuse
    return _holds_in(cond, box)


def _holds_in(cond: sympy.Basic, box: Mapping[sympy.Symbol, Interval]) -> bool:
    if isinstance(cond, sympy.And):
        return all(_holds_in(a, box) for a in cond.args)
    if isinstance(cond, sympy.Or):
        return any(_holds_in(a, box) for a in cond.args)
    if not isinstance(cond, (sympy.Ge, sympy.Gt, sympy.Le, sympy.Lt, sympy.Eq, sympy.Ne)):
        return False
    lo, hi = interval(cond.lhs - cond.rhs, box)
    if isinstance(cond, (sympy.Ge, sympy.Gt)):
        return lo is not None and lo >= (0 if isinstance(cond, sympy.Ge) else 1)
    if isinstance(cond, (sympy.Le, sympy.Lt)):
        return hi is not None and hi <= (0 if isinstance(cond, sympy.Le) else -1)
    if isinstance(cond, sympy.Eq):
        return lo == 0 and hi == 0
    return (lo is not None and lo > 0) or (hi is not None and hi < 0)


def interval(e: sympy.Basic, box: Mapping[sympy.Symbol, Interval]) -> Interval:
    """The values `e` takes at the integer points of `box` lie in the interval returned."""
    if isinstance(e, sympy.Integer):
        return int(e), int(e)
    if isinstance(e, sympy.Symbol):
        return box.get(e, UNKNOWN)
    if isinstance(e, sympy.Add):
        parts = [interval(a, box) for a in e.args]
        return _sum(p[0] for p in parts), _sum(p[1] for p in parts)
    if isinstance(e, sympy.Mul):
        coeff, rest = e.as_coeff_Mul()
        if not isinstance(coeff, sympy.Integer):
            return UNKNOWN
        lo, hi = _product([interval(f, box) for f in sympy.Mul.make_args(rest)])
        return _scale(int(coeff), lo, hi)
    if isinstance(e, S.FLOOR_DIVISIONS):
        return _division(e, box)
    if isinstance(e, S.MODS):
        divisor = e.args[1]
        if divisor.is_Integer and int(divisor) > 0:
            return 0, int(divisor) - 1  # Python's % with a positive divisor
        return UNKNOWN
    if isinstance(e, S.MIN_MAX):
        parts = [interval(a, box) for a in e.args]
        los, his = [p[0] for p in parts], [p[1] for p in parts]
        if isinstance(e, S.MAXES):  # at least any one part's low
            return _known(max, los), (None if None in his else _known(max, his))
        return (None if None in los else _known(min, los)), _known(min, his)
    return UNKNOWN


def _sum(bounds: Iterable[Bound]) -> Bound:
    total = 0
    for b in bounds:
        if b is None:
            return None
        total += b
    return total


def _known(pick: Callable[[list[int]], int], bounds: list[Bound]) -> Bound:
    """`pick` of the bounds that are known; None when none is."""
    known = [b for b in bounds if b is not None]
    return pick(known) if known else None


def _scale(c: int, lo: Bound, hi: Bound) -> Interval:
    if c >= 0:
        return (None if lo is None else c * lo), (None if hi is None else c * hi)
    return (None if hi is None else c * hi), (None if lo is None else c * lo)


def _product(factors: list[Interval]) -> Interval:
    """Non-negative factors only (sizes): the product of the lows, and of the highs."""
    los = [lo for lo, _ in factors if lo is not None and lo >= 0]
    if len(los) < len(factors):
        return UNKNOWN
    his = [hi for _, hi in factors if hi is not None]
    return math.prod(los), (math.prod(his) if len(his) == len(factors) else None)


def _division(e: sympy.Basic, box: Mapping[sympy.Symbol, Interval]) -> Interval:
    """`a // b` and `-(-a // b)`: by a positive number, or a non-negative `a` by a `b` >= 1."""
    (alo, ahi), (blo, bhi) = interval(e.args[0], box), interval(e.args[1], box)
    ceil = isinstance(e, S.CEIL_DIV)

    def div(a: int, b: int) -> int:
        return -(-a // b) if ceil else a // b

    if blo is not None and blo == bhi and blo > 0:
        return (None if alo is None else div(alo, blo)), (None if ahi is None else div(ahi, blo))
    if alo is None or alo < 0 or blo is None or blo < 1:
        return UNKNOWN
    return (0 if bhi is None else div(alo, bhi)), (None if ahi is None else div(ahi, blo))
