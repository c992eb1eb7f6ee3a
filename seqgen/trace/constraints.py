"""Conditions on the constructor arguments -> the checks of the generated `__init__` (trace stage).

The tracer collects, layer by layer, every condition the model needs: each layer's argument
rules (kernel_size >= 1, output_padding < stride, divisibility, ...) and "every size stays >= 1".
This module turns them into `Constraint`s that are exact, never approximate:

- a condition on one parameter that provably grows (or shrinks) with it becomes a bound,
  `seq_len >= 3` or `k <= 16`, found by an exact search over the integers;
- every other condition is checked as written, `h - k + 1 >= 1`.

Bounds come first, argument by argument in the constructor's order, then the written
conditions in layer order, a layer's argument rules before its sizes: a condition that divides
by a stride is only reached once that stride is known >= 1.
A written condition that the bounds imply is left out (intervals.py): `c1 + c3 >= 1` after
`c1 >= 1` and `c3 >= 1` can never refuse anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import product

import sympy

from seqgen.ir import Constraint
from seqgen.trace import symbolic as S
from seqgen.trace.intervals import implied
from seqgen.trace.merge_shapes import MergeFacts
from seqgen.trace.residues import holds as holds  # re-exported: "a condition at values"
from seqgen.trace.residues import periodic
from seqgen.trace.wording import rule, with_reason

LOWEST = -(2**40)  # where the search for a lower bound starts (sizes go up to 2**40)
HIGHEST = 2**40


@dataclass(frozen=True)
class Condition:
    """Something that must hold, with the layer that needs it and what to say otherwise.

    `message` says it in the spec's terms, for an error at the defaults. The generated check says
    it in Python's (wording.py): the rule over the constructor's arguments with `reason` when the
    rule is this condition itself, with `detail` (the layer's own rule, in Python names) when the
    rule is derived from it (`k >= 3` from `kernel_size (k - 2) must be at least 1`); `source`
    is the comment beside the check.
    """

    condition: sympy.Basic
    layer_index: int
    message: str
    reason: str = ""
    detail: str = ""
    source: str = ""
    merge: MergeFacts | None = None  # a merge's condition: its branches' shapes

    @property
    def why(self) -> str:
        """Why a rule derived from this condition holds."""
        return self.detail or self.reason


@dataclass(frozen=True)
class Printer:
    """How a condition reads in generated code: as written, and as the test that refuses it."""

    code: Callable[[sympy.Basic], str]
    negated: Callable[[sympy.Basic], str]


def derive(
    conditions: Sequence[Condition],
    hints: Mapping[sympy.Symbol, int],
    names: Mapping[sympy.Symbol, str],
    printer: Printer,
    order: Sequence[str] = (),
    flags: Collection[sympy.Symbol] = (),
) -> list[Constraint]:
    """Exact checks for the generated `__init__`, from the conditions the trace collected: the
    checks on one argument first, argument by argument in `order` (the constructor's), then
    the conditions on several, in layer order. `flags` are bool parameters (0 or 1): a
    condition on them alone that holds at both values is left out, and none becomes a bound
    (`cm >= -3` would mean nothing to a bool)."""
    lower: dict[sympy.Symbol, tuple[int, Condition]] = {}
    upper: dict[sympy.Symbol, tuple[int, Condition]] = {}
    written: list[tuple[Condition, str, list[str]]] = []  # with its text and names
    seen: set[str] = set()
    periods: dict[sympy.Symbol, list[tuple[int, frozenset[int], Condition]]] = {}
    for c in guard_divisions(conditions, printer):
        free = sorted(S.free_symbols(c.condition), key=lambda s: names[s])
        if not free:
            continue  # a literal: checked at the defaults already
        if set(free) <= set(flags):
            if all(
                holds(c.condition, dict(zip(free, v))) for v in product((0, 1), repeat=len(free))
            ):
                continue
        elif len(free) == 1 and free[0].is_integer:  # a float scale's condition stays as is
            bound = _bound(c.condition, free[0], hints)
            if bound is not None:
                kind, value = bound
                table = lower if kind == "min" else upper
                better = (
                    (value > table[free[0]][0] if kind == "min" else value < table[free[0]][0])
                    if free[0] in table
                    else True
                )
                if better:
                    table[free[0]] = (value, c)
                continue
            if bound is None and _vacuous(c.condition, free[0], hints):
                continue
            residues = periodic(c.condition, free[0])
            if residues is not None:
                period, ok = residues
                if len(ok) == period:
                    continue  # holds for every value
                periods.setdefault(free[0], []).append((period, ok, c))
                continue
        text = printer.code(c.condition)
        if text in seen:
            continue
        seen.add(text)
        written.append((c, text, [names[s] for s in free]))
    out: list[Constraint] = []
    place = {name: i for i, name in enumerate(order)}

    def signature_order(sym: sympy.Symbol) -> tuple[int, str]:
        return place.get(names[sym], len(place)), names[sym]

    for sym in sorted({*periods, *lower, *upper}, key=signature_order):
        name = names[sym]
        if sym in periods:
            out.extend(_residue_constraints(sym, name, periods[sym], printer))
        if sym in lower:
            value, c = lower[sym]
            out.append(
                Constraint(
                    condition=f"{name} >= {value}",
                    symbol=name,
                    minimum=value,
                    failed=f"{name} < {value}",
                    layer_index=c.layer_index,
                    message=_bound_message(c, sym, name, "at least", value),
                    names=(name,),
                    comment=c.source,
                )
            )
        if sym in upper:
            value, c = upper[sym]
            out.append(
                Constraint(
                    condition=f"{name} <= {value}",
                    symbol=name,
                    minimum=None,
                    failed=f"{name} > {value}",
                    maximum=value,
                    layer_index=c.layer_index,
                    message=_bound_message(c, sym, name, "at most", value),
                    names=(name,),
                    comment=c.source,
                )
            )
    # the bounds are checked first: a condition they imply can never refuse anything
    box = {
        s: (lower[s][0] if s in lower else None, upper[s][0] if s in upper else None)
        for s in {*lower, *upper}
    }
    return out + [
        _as_written(c, printer, text, free)
        for c, text, free in written
        if not implied(c.condition, box)
    ]


def guard_divisions(conditions: Sequence[Condition], printer: Printer) -> list[Condition]:
    """`conditions`, each preceded by `divisor != 0` for every division or modulo by a parameter
    in it that no earlier condition guards: a check that divides by zero would raise
    ZeroDivisionError instead of saying which argument is wrong."""
    out: list[Condition] = []
    guarded: set[sympy.Basic] = set()
    for c in conditions:
        for node in sympy.preorder_traversal(c.condition):
            if not isinstance(node, (*S.FLOOR_DIVISIONS, *S.MODS)):
                continue
            divisor = node.args[1]
            if not S.free_symbols(divisor) or divisor in guarded:
                continue
            guarded.add(divisor)
            reason = f"{printer.code(node)} divides by it"
            out.append(
                Condition(
                    sympy.Ne(divisor, 0),
                    c.layer_index,
                    f"{c.message}: it divides by zero",
                    reason=reason,
                    detail=reason,
                    source=c.source,
                )
            )
        out.append(c)
    return out


def _bound_message(c: Condition, sym: sympy.Symbol, name: str, side: str, value: int) -> str:
    """`k must be at least 3`, with the condition's reason when the bound is that condition
    itself (`k >= 3`), else with the rule it comes from."""
    itself = sympy.Ge(sym, value) if side == "at least" else sympy.Le(sym, value)
    why = c.reason if c.condition == itself else c.why
    return with_reason(f"{name} must be {side} {value}", why)


def _as_written(c: Condition, printer: Printer, text: str, names: Sequence[str]) -> Constraint:
    """A condition checked as written: its rule in words, the names in the order it reads them."""
    words = re.findall(r"[A-Za-z_]\w*", text)
    return Constraint(
        condition=text,
        symbol=None,
        minimum=None,
        failed=printer.negated(c.condition),
        layer_index=c.layer_index,
        message=with_reason(rule(c.condition, printer.code), c.reason),
        names=tuple(sorted(names, key=lambda n: words.index(n) if n in words else len(words))),
        comment=c.source,
    )


def _residue_constraints(
    sym: sympy.Symbol,
    name: str,
    found: list[tuple[int, frozenset[int], Condition]],
    printer: Printer,
) -> list[Constraint]:
    """One check per parameter for its periodic conditions: `h % 16 == 0` when together they
    mean a multiple; otherwise each condition as written."""
    period = 1
    for p, _, _ in found:
        period = period * p // math.gcd(period, p)
    ok = [r for r in range(period) if all(r % p in rs for p, rs, _ in found)]
    first = min(found, key=lambda f: f[2].layer_index)[2]
    why = "; ".join(dict.fromkeys(c.why for _, _, c in found if c.why))
    comment = "; ".join(dict.fromkeys(c.source for _, _, c in found if c.source))
    multiple = next(
        (m for m in range(1, period + 1) if period % m == 0 and ok == list(range(0, period, m))),
        None,
    )
    if multiple is not None:
        return [
            Constraint(
                condition=f"{name} % {multiple} == 0",
                symbol=None,
                minimum=None,
                failed=f"{name} % {multiple} != 0",
                layer_index=first.layer_index,
                message=with_reason(f"{name} must be a multiple of {multiple}", why),
                names=(name,),
                comment=comment,
            )
        ]
    return [_as_written(c, printer, printer.code(c.condition), [name]) for _, _, c in found]


def _bound(
    cond: sympy.Basic, sym: sympy.Symbol, hints: Mapping[sympy.Symbol, int]
) -> tuple[str, int] | None:
    """("min", m) when `cond` holds exactly for sym >= m; ("max", m) for sym <= m; else None."""
    slack = _slack(cond)
    if slack is None:
        return None
    direction = monotone(slack, sym)
    if direction not in (1, -1):
        return None
    values = dict(hints)

    def ok(v: int) -> bool:
        values[sym] = v
        return holds(cond, values)

    hint = hints[sym]
    if not ok(hint):
        return None  # the caller reports conditions that fail at the defaults
    end = LOWEST if direction == 1 else HIGHEST
    if ok(end):
        return None
    good, bad = hint, end  # the boundary lies between them: bisect
    while abs(good - bad) > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if ok(mid) else (good, mid)
    return ("min" if direction == 1 else "max"), good


def _vacuous(cond: sympy.Basic, sym: sympy.Symbol, hints: Mapping[sympy.Symbol, int]) -> bool:
    """A monotone condition that holds at both ends of the range holds everywhere."""
    slack = _slack(cond)
    if slack is None or monotone(slack, sym) not in (1, -1, 0):
        return False
    return all(holds(cond, {**hints, sym: v}) for v in (LOWEST, HIGHEST))


def _slack(cond: sympy.Basic) -> sympy.Expr | None:
    """For `a >= b`, `a > b`, `a <= b`, `a < b`: an expression that must be >= 0 (or > 0)."""
    if isinstance(cond, (sympy.Ge, sympy.Gt)):
        return cond.lhs - cond.rhs
    if isinstance(cond, (sympy.Le, sympy.Lt)):
        return cond.rhs - cond.lhs
    return None


def monotone(e: sympy.Basic, sym: sympy.Symbol) -> int | None:
    """+1 if `e` never decreases as `sym` grows, -1 if it never increases, 0 if constant,
    None when that cannot be shown from the expression's structure."""
    if sym not in e.free_symbols:
        return 0
    if e == sym:
        return 1
    if isinstance(e, (sympy.Add, *S.MIN_MAX)):
        return _combine([monotone(a, sym) for a in e.args])
    if isinstance(e, sympy.Mul):
        coeff, rest = e.as_coeff_Mul()
        factors = sympy.Mul.make_args(rest)
        varying = [f for f in factors if sym in f.free_symbols]
        constant = sympy.Mul(coeff, *(f for f in factors if sym not in f.free_symbols))
        if len(varying) != 1 or not constant.is_number:
            return None
        inner = monotone(varying[0], sym)
        if inner is None or constant == 0:
            return None if inner is None else 0
        return inner if constant > 0 else -inner
    if isinstance(e, S.FLOOR_DIVISIONS):
        a, b = e.args
        if b.is_number and b > 0:
            return monotone(a, sym)
        return None
    return None


def _combine(directions: list[int | None]) -> int | None:
    if any(d is None for d in directions):
        return None
    moving = {d for d in directions if d != 0}
    if not moving:
        return 0
    return moving.pop() if len(moving) == 1 else None
