"""The vocabulary of seqgen's exact layer formulas: sizes, conditions and the errors of a rule.

A rule sees sizes as ints or SymInts; plain Python arithmetic on them builds the expressions, and
`Check`s hold sympy conditions. Both the torch.nn family rules (torch_rules, spatial_rules) and
seqgen's own ops (layers/ops) are written with these.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sympy
from torch import nn

from seqgen.trace import symbolic as S

Size = Any  # int | torch.SymInt | seqgen's own sizes.Size


@dataclass(frozen=True)
class Check:
    """A condition a layer needs, and what it says when it fails (`kernel_size must be >= 1`)."""

    condition: sympy.Basic
    text: str  # a format string: each `{}` is one of `values`, shown as a number or expression
    values: tuple[sympy.Expr, ...] = ()
    subject: str = ""  # the argument(s) it is about, when it is one rule on them: "kernel_size"

    def message(self, show: Callable[[sympy.Expr], str]) -> str:
        """The text with each value shown by `show`."""
        return self.text.format(*(show(v) for v in self.values))


class RuleError(Exception):
    """The arguments cannot work whatever the parameter values (a literal out of range)."""


class RankError(Exception):
    """The input has the wrong rank for this layer; the tracer words the message."""

    def __init__(self, rank: int) -> None:
        super().__init__(rank)
        self.rank = rank


class NeedsLiteral(Exception):
    """An argument must be a literal for seqgen to know the output size."""

    def __init__(self, arg: str, why: str) -> None:
        super().__init__(arg)
        self.arg = arg
        self.why = why


@dataclass(frozen=True)
class Outcome:
    """What a rule computes: the output shape (batch first) and the conditions it needs."""

    shape: tuple[Size, ...]
    checks: tuple[Check, ...]


class Args:
    """A layer's argument values by name, with the constructor's defaults filled in."""

    def __init__(self, cls: type[nn.Module], values: dict[str, Any]) -> None:
        self.values = dict(values)
        sig = inspect.signature(cls.__init__)
        for p in list(sig.parameters.values())[1:]:
            if p.name not in self.values and p.default is not p.empty:
                self.values[p.name] = p.default

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)


def as_expr(v: Size) -> sympy.Expr:
    return v if isinstance(v, sympy.Basic) else S.expr_of(v)


def mod(a: Size, b: Size) -> sympy.Expr:
    """`a % b` for a divisibility check. The dividend is expanded first: sympy 1.14 folds
    `Mod(18*(a + 6)*(b + 6), 726)` to 0, while the expanded form is exact."""
    return sympy.Mod(sympy.expand(as_expr(a)), as_expr(b))


def is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or S.is_symbolic(v)


class Checks:
    """Collects conditions; a literal that fails is a RuleError at once."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def need(self, condition: Any, text: str, *values: Size, subject: str = "") -> None:
        cond = sympy.sympify(condition)
        if cond is sympy.true:
            return
        check = Check(cond, text, tuple(as_expr(v) for v in values), subject)
        if cond is sympy.false:
            raise RuleError(check.message(str))
        self.items.append(check)

    def at_least(self, v: Size, low: int, what: str) -> None:
        self.need(
            sympy.Ge(as_expr(v), low),
            f"{what} ({{}}) must be at least {low}",
            v,
            subject=what.split(" (")[0],
        )


def is_one(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v == 1


def literal_dim(v: Any, name: str) -> int:
    if S.is_symbolic(v):
        raise NeedsLiteral(name, "it picks which dimension, so seqgen must know it")
    if not is_int(v):
        raise RuleError(f"{name} must be a whole number, got {v!r}")
    return int(v)


def divides(checks: Checks, size: Size, what: str, by: Size, by_what: str) -> None:
    """`by` >= 1 (a group count, a stride) and `size` a multiple of it."""
    checks.at_least(by, 1, by_what)
    if not is_one(by):
        checks.need(
            sympy.Eq(mod(size, by), 0),
            f"{what} ({{}}) must be divisible by {by_what} ({{}})",
            size,
            by,
            subject=f"{what} and {by_what}",
        )


Count = Any  # int | sympy.Expr


def dim_index(dim: Any, rank: int, name: str = "dim") -> int:
    """A literal dim in [-rank, rank), as a non-negative index."""
    d = literal_dim(dim, name)
    if not -rank <= d < rank:
        raise RuleError(
            f"{name} {d} is out of range for a tensor of rank {rank} "
            f"(dims go from {-rank} to {rank - 1})"
        )
    return d % rank


def not_batch(d: int, what: str) -> None:
    if d == 0:
        raise RuleError(
            f"{what} dim 0, the batch; seqgen keeps the batch at dim 0 "
            "(count dims from 1, or from the end with -1)"
        )


def flag(value: Any, name: str) -> bool:
    if S.is_symbolic(value):
        raise NeedsLiteral(name, "it decides sizes or parameter counts")
    if not isinstance(value, bool):
        raise RuleError(f"{name} must be True or False, got {value!r}")
    return value


def probability(checks: Checks, value: Any, name: str) -> None:
    """torch refuses a dropout outside [0, 1] (and a bool) when it builds the layer."""
    if isinstance(value, bool) or not (isinstance(value, (int, float)) or S.is_symbolic(value)):
        raise RuleError(f"{name} must be a number between 0 and 1, got {value!r}")
    if isinstance(value, float):
        if not 0 <= value <= 1:
            raise RuleError(f"{name} must be between 0 and 1, got {value!r}")
        return
    checks.need(
        sympy.And(sympy.Ge(as_expr(value), 0), sympy.Le(as_expr(value), 1)),
        f"{name} ({{}}) must be between 0 and 1",
        value,
        subject=name,
    )


def as_count(value: Any) -> Count:
    """An int when the count has no symbols, else its sympy expression."""
    e = sympy.expand(as_expr(value) if not isinstance(value, sympy.Basic) else value)
    return int(e) if isinstance(e, sympy.Integer) else e


def require_rank(shape: Sequence[Size], rank: int) -> None:
    if len(shape) != rank:
        raise RankError(rank)
