"""Conditions on one parameter that repeat with a period (trace stage): `2 * (h // 2) == h`
holds exactly at the even h. `derive` turns them into `h % 4 == 0` checks; a merge whose sizes
disagree at the defaults says which multiple would make them agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import sympy

from seqgen.trace import symbolic as S


def holds(cond: sympy.Basic, values: Mapping[sympy.Symbol, int]) -> bool:
    """`cond` at `values`; a division by zero on the way means it does not hold."""
    try:
        return bool(S.evaluate(cond, values))
    except ZeroDivisionError:
        return False


MAX_PERIOD = 1 << 12


def multiple_rule(
    a: sympy.Expr,
    b: sympy.Expr,
    known: Sequence[sympy.Basic],
    hints: Mapping[sympy.Symbol, int],
    names: Mapping[sympy.Symbol, str],
) -> str | None:
    """When sizes a and b depend on one name and agree at its multiples of some m (`h // 4`
    and `2 * (h // 8)`: h a multiple of 8), a hint that says so: the smallest such m that keeps
    the conditions already `known` on that name too, and the nearest sizes that are."""
    free = S.free_symbols(a - b)
    if len(free) != 1:
        return None
    (sym,) = free
    if sym not in hints:
        return None
    found = [periodic(sympy.Eq(a, b), sym)]
    found += [periodic(c, sym) for c in known if S.free_symbols(c) == {sym}]
    rules = [f for f in found if f is not None]
    if found[0] is None or not found[0][1]:
        return None
    period = math.lcm(*(p for p, _ in rules))
    ok = {r for r in range(period) if all(r % p in rs for p, rs in rules)}
    m = next((m for m in range(2, period + 1) if set(range(0, period, m)) <= ok), None)
    if m is None:
        return None
    value = hints[sym]
    near = " or ".join(str(v) for v in sorted({max(m, value - value % m), value - value % m + m}))
    return (
        f"make {names[sym]} a multiple of {m}: these sizes agree then (it is {value}; "
        f"{near} would do)"
    )


def periodic(cond: sympy.Basic, sym: sympy.Symbol) -> tuple[int, frozenset[int]] | None:
    """(P, residues) when `cond` holds exactly for the values of `sym` whose remainder mod P is
    in residues; None when that cannot be shown.

    For floor-linear sizes (`2 * (h // 2) == h`): with P a multiple of every divisor, each side
    grows by a fixed amount when sym grows by P. When both sides grow by the same amount, the
    condition repeats with period P, so checking one period decides it for all integers.
    """
    if not isinstance(cond, (sympy.Eq, sympy.Ne, sympy.Ge, sympy.Gt, sympy.Le, sympy.Lt)):
        return None
    period = 1
    for node in sympy.preorder_traversal(cond):
        if isinstance(node, (*S.FLOOR_DIVISIONS, *S.MODS)):
            divisor = node.args[1]
            if not (divisor.is_Integer and int(divisor) > 0):
                return None
            period *= int(divisor)
            if period > MAX_PERIOD:
                return None
    if period == 1:
        return None
    diff = cond.lhs - cond.rhs
    try:
        steps = {
            S.evaluate(diff, {sym: v + period}) - S.evaluate(diff, {sym: v})
            for v in (-3 * period, -1, 0, 1, 7, period + 3, 5 * period)
        }
    except (ZeroDivisionError, S.Unprintable):
        return None
    if steps != {0}:
        return None
    ok = frozenset(r for r in range(period) if holds(cond, {sym: r + period}))
    return period, ok
