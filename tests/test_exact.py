"""Exactness of the symbolic machinery: the printer, the safe evaluator, bounds and rules.

The printer is checked against sympy's own value on random expression trees; the bounds that
become `if x < m` checks against a brute-force scan; the layer rules against torch on the CPU.
"""

from __future__ import annotations

import itertools
import random

import pytest
import sympy
import torch
from conftest import max_examples
from torch import nn
from torch.utils._sympy import functions as symfn

from seqgen.layers.formulas import RuleError
from seqgen.layers.torch_rules import apply
from seqgen.safe_eval import NotArithmetic, evaluate_source
from seqgen.trace import symbolic as S
from seqgen.trace.constraints import Condition, Printer, derive, holds, monotone
from seqgen.trace.intervals import Interval, implied, interval

H, K, W = sympy.symbols("s0 s1 s2", integer=True)
NAMES = {H: "h", K: "k", W: "w"}


def _random_expr(rng: random.Random, depth: int = 0) -> sympy.Expr:
    leaves = [H, K, W, sympy.Integer(rng.randint(-3, 9))]
    if depth > 3 or rng.random() < 0.25:
        return rng.choice(leaves)
    a, b = _random_expr(rng, depth + 1), _random_expr(rng, depth + 1)
    op = rng.choice(["add", "sub", "mul", "floordiv", "mod", "min", "max", "neg"])
    if op in ("floordiv", "mod"):
        b = sympy.Integer(rng.randint(1, 5)) if rng.random() < 0.6 else b
        return (symfn.FloorDiv if op == "floordiv" else symfn.PythonMod)(a, b)
    return {
        "add": lambda: a + b,
        "sub": lambda: a - b,
        "mul": lambda: a * b,
        "min": lambda: sympy.Min(a, b),
        "max": lambda: sympy.Max(a, b),
        "neg": lambda: -a,
    }[op]()


def test_printed_python_computes_what_sympy_computes() -> None:
    """Random expressions: 1500 under the ci hypothesis profile, fewer under dev (conftest)."""
    rng = random.Random(0)
    checked = 0
    draws = max_examples(1500)
    for _ in range(draws):
        try:
            expr = _random_expr(rng)
        except ZeroDivisionError:  # sympy folds a literal `x // 0` as it builds it
            continue
        try:
            text = S.to_python(expr, NAMES)
        except S.Unprintable:
            continue
        for values in ({H: 18, K: 3, W: 7}, {H: -5, K: 2, W: 11}, {H: 9, K: -4, W: 1}):
            by_name = {NAMES[s]: v for s, v in values.items()}
            try:
                want = S.evaluate(expr, values)
            except ZeroDivisionError:
                with pytest.raises(ZeroDivisionError):
                    evaluate_source(text, by_name)
                continue
            assert evaluate_source(text, by_name) == want, (expr, text, values)
            checked += 1
    assert checked > draws * 4 // 3


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        (2 * symfn.FloorDiv(H - 3, 2) + 2, "2 * ((h - 3) // 2) + 2"),
        (-symfn.FloorDiv(H, 2) + 5, "5 - h // 2"),
        (-symfn.FloorDiv(H, 2) - K, "-(h // 2) - k"),
        (symfn.FloorDiv(2 * H, 3), "(2 * h) // 3"),
        (symfn.FloorDiv(symfn.FloorDiv(H, 2) + K, 2), "(h // 2 + k) // 2"),
        (H * symfn.PythonMod(K, 3), "h * (k % 3)"),
        (sympy.Ge(16 - K, 1), "16 - k >= 1"),
    ],
)
def test_known_precedence_traps(expr: sympy.Expr, text: str) -> None:
    assert S.to_python(expr, NAMES) == text


@pytest.mark.parametrize(
    ("cond", "text"),
    [
        (sympy.Eq(H, K), "h != k"),
        (sympy.Ne(H, 2), "h == 2"),
        (sympy.Ge(16 - K, 1), "16 - k < 1"),
        (sympy.Gt(H, K + 1), "h <= k + 1"),
        (sympy.Le(H, 2 * K), "h > 2 * k"),
        (sympy.Lt(H, K), "h >= k"),
        (sympy.Eq(symfn.PythonMod(H, K), 0), "h % k != 0"),
        # the parts in the condition's order (`h < k and h >= -k`): the same reads, in turn
        (sympy.And(sympy.Ge(H, -K), sympy.Lt(H, K)), "h >= k or h < -k"),
        (sympy.Or(sympy.Eq(H, 1), sympy.Eq(H, K)), "h != 1 and h != k"),
        (
            sympy.Or(sympy.And(sympy.Ge(H, 0), sympy.Le(H, 1)), sympy.Eq(K, 2)),
            "(h > 1 or h < 0) and k != 2",
        ),
        (sympy.Not(sympy.Eq(H, K)), "h == k"),
    ],
)
def test_refusing_tests_are_the_simplest_python(cond: sympy.Basic, text: str) -> None:
    assert S.to_python_negated(cond, NAMES) == text
    for h, k in itertools.product(range(-3, 4), range(1, 4)):
        by_name = {"h": h, "k": k}
        want = evaluate_source(S.to_python(cond, NAMES), by_name)
        assert evaluate_source(text, by_name) is (not want), (cond, h, k)


def test_term_order_does_not_depend_on_internal_symbol_names() -> None:
    a, b = sympy.symbols("s99 s1", integer=True)
    first = S.to_python(a * 3 + b - 2, {a: "alpha", b: "beta"})
    second = S.to_python(a * 3 + b - 2, {a: "beta", b: "alpha"})
    assert first == "3 * alpha + beta - 2"
    assert second == "alpha + 3 * beta - 2"


def test_safe_evaluator_refuses_anything_but_arithmetic() -> None:
    for text in ("__import__('os')", "h.real", "[h]", "h if h else k", "h ** 2", "lambda: 1"):
        with pytest.raises(NotArithmetic):
            evaluate_source(text, {"h": 1, "k": 2})


@pytest.mark.parametrize(
    ("expr", "direction"),
    [
        (H - 3, 1),
        (3 - H, -1),
        (symfn.FloorDiv(H + 1, 2), 1),
        (-2 * symfn.FloorDiv(H, 3), -1),
        (sympy.Min(H, 2 * H), 1),
        (H * H, None),
        (symfn.FloorDiv(16, H), None),
        (sympy.Integer(4), 0),
        (symfn.PythonMod(H, 2), None),
    ],
)
def test_monotone(expr: sympy.Expr, direction: int | None) -> None:
    assert monotone(expr, H) == direction


def _brute_valid(cond: sympy.Basic) -> list[int]:
    return [v for v in range(-60, 61) if holds(cond, {H: v})]


@pytest.mark.parametrize(
    "cond",
    [
        sympy.Ge(2 * H + 1, 1),  # ch * 2 + 1 >= 1: ch = 0 works
        sympy.Ge(17 - H, 1),  # a kernel on a length-16 input: at most 16
        sympy.Ge(symfn.FloorDiv(H - 3, 2) + 1, 1),
        sympy.Ge(sympy.Min(symfn.FloorDiv(H + 1, 2), symfn.FloorDiv(H, 2)) + 1, 1),
        sympy.Eq(symfn.PythonMod(H, 4), 0),
        sympy.Ge(symfn.FloorDiv(16 - H, H) + 1, 1),
    ],
)
def test_derived_checks_accept_exactly_the_valid_values(cond: sympy.Basic) -> None:
    hint = next(v for v in (9, 8, 4, 3) if holds(cond, {H: v}))
    checks = derive(
        [Condition(cond, 0, "msg")],
        {H: hint},
        {H: "h"},
        Printer(lambda e: S.to_python(e, NAMES), lambda e: S.to_python_negated(e, NAMES)),
    )
    for v in range(-60, 61):
        accepted = True
        for c in checks:
            if c.minimum is not None:
                accepted &= v >= c.minimum
            elif c.maximum is not None:
                accepted &= v <= c.maximum
            else:  # what the generated `if` refuses
                try:
                    refused = bool(evaluate_source(c.failed, {"h": v}))
                except ZeroDivisionError:
                    refused = True
                accepted &= not refused
        assert accepted == (v in _brute_valid(cond)), (cond, v, checks)


def _random_box(rng: random.Random) -> dict[sympy.Symbol, Interval]:
    box: dict[sympy.Symbol, Interval] = {}
    for s in (H, K, W):
        lo = rng.choice([None, rng.randint(-4, 4)])
        hi = rng.choice([None, (lo if lo is not None else -4) + rng.randint(0, 8)])
        box[s] = (lo, hi)
    return box


def _points_in(
    box: dict[sympy.Symbol, Interval], rng: random.Random
) -> list[dict[sympy.Symbol, int]]:
    """Integer points of the box, its corners often (bounds near the edges are what matter)."""

    def one(lo: int | None, hi: int | None) -> int:
        low = lo if lo is not None else (hi if hi is not None else 0) - 30
        high = hi if hi is not None else low + 30
        return rng.choice([low, high, rng.randint(low, high)])

    return [{s: one(*b) for s, b in box.items()} for _ in range(24)]


def test_intervals_hold_every_value_and_implied_conditions_hold_everywhere() -> None:
    """Random expressions and boxes: the value at each point of the box is inside the computed
    interval, and a condition called implied holds (without dividing by zero) at every point."""
    rng = random.Random(1)
    draws, bounded, dropped = max_examples(3000), 0, 0
    for _ in range(draws):
        try:
            expr = _random_expr(rng)
            cond = rng.choice([sympy.Ge, sympy.Gt, sympy.Le, sympy.Lt, sympy.Eq, sympy.Ne])(
                expr, rng.randint(-3, 3)
            )
        except ZeroDivisionError:
            continue
        box = _random_box(rng)
        lo, hi = interval(expr, box)
        bounded += lo is not None or hi is not None
        is_implied = implied(cond, box)
        dropped += is_implied
        for point in _points_in(box, rng):
            if is_implied:
                assert holds(cond, point), (cond, box, point)
            try:
                v = S.evaluate(expr, point)
            except ZeroDivisionError:
                continue
            assert (lo is None or v >= lo) and (hi is None or v <= hi), (expr, box, point, v)
    assert bounded > draws // 4 and dropped > draws // 20, (bounded, dropped)


@pytest.mark.parametrize(
    ("cond", "box", "expected"),
    [
        (sympy.Ge(H + K + W, 1), {H: (1, None), K: (1, None), W: (1, None)}, True),
        (sympy.Ge(H + K + W, 4), {H: (1, None), K: (1, None), W: (1, None)}, False),
        (sympy.Ge(H * K, 1), {H: (1, None), K: (1, None)}, True),
        (sympy.Ge(H - K, 0), {H: (1, None), K: (1, None)}, False),  # not implied: not dropped
        (sympy.Ge(symfn.FloorDiv(H, 2), 1), {H: (2, None)}, True),
        (sympy.Ge(symfn.FloorDiv(H, K), 1), {H: (4, None), K: (1, 4)}, True),
        (sympy.Ge(symfn.FloorDiv(H, K), 1), {H: (4, None), K: (0, 4)}, False),  # K may be 0
        (sympy.Ge(sympy.Max(symfn.FloorDiv(H, K), 3), 1), {H: (0, 9)}, False),  # nor here
        (sympy.Le(H + 2, 18), {H: (1, 16)}, True),
        (sympy.Ge(H, 1), {}, False),  # a size with no bound: a block's input size
    ],
)
def test_implied_conditions(
    cond: sympy.Basic, box: dict[sympy.Symbol, Interval], expected: bool
) -> None:
    assert implied(cond, box) is expected


# ---------------------------------------------------------------- rules against torch on the CPU


def _torch_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        with torch.no_grad():
            return tuple(module(torch.zeros(shape)).shape)
    except RuntimeError:
        return None


POOLS = [(nn.MaxPool1d, "max"), (nn.AvgPool1d, "avg")]


@pytest.mark.parametrize(("cls", "kind"), POOLS)
def test_pooling_formula_matches_torch_with_ceil_mode(cls: type[nn.Module], kind: str) -> None:
    for length, k, s, p, ceil in itertools.product(
        range(1, 12), range(1, 5), range(1, 4), range(0, 3), (False, True)
    ):
        if 2 * p > k:
            continue
        args = {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": ceil}
        module = cls(**args)
        got = _torch_shape(module, (2, 3, length))
        try:
            outcome = apply(cls, args, (2, 3, length))
        except RuleError:
            assert got is None, (args, length, got)
            continue
        ok = all(bool(c.condition) for c in outcome.checks) and outcome.shape[-1] >= 1
        if got is None:
            assert not ok, (args, length)
        else:
            assert ok and outcome.shape == got, (args, length, outcome.shape, got)


def test_conv_transpose_formula_matches_torch() -> None:
    for length, k, s, p, op, d in itertools.product(
        range(1, 6), range(1, 4), range(1, 4), range(0, 3), range(0, 3), range(1, 3)
    ):
        args = {
            "out_channels": 2,
            "kernel_size": k,
            "stride": s,
            "padding": p,
            "output_padding": op,
            "dilation": d,
        }
        try:
            module = nn.ConvTranspose1d(3, **args)
        except (ValueError, RuntimeError):
            module = None
        got = _torch_shape(module, (2, 3, length)) if module is not None else None
        try:
            outcome = apply(nn.ConvTranspose1d, {**args, "in_channels": 3}, (2, 3, length))
        except RuleError:
            assert got is None, (args, length, got)
            continue
        ok = all(bool(c.condition) for c in outcome.checks) and outcome.shape[-1] >= 1
        assert ok == (got is not None and got[-1] >= 1), (args, length, got, outcome)
        if ok:
            assert outcome.shape == got


def test_divisibility_check_of_a_product_is_not_folded_away() -> None:
    # sympy 1.14: Mod(18*(a + 6)*(b + 6), 726) == 0, wrongly; rules expand the dividend first
    from seqgen.layers.formulas import mod as _mod

    mod = _mod(18 * (H + 6) * (K + 6), 726)
    assert mod != 0
    for h, k in ((5, 5), (11, 11), (16, 5)):
        assert S.evaluate(mod, {H: h, K: k}) == (18 * (h + 6) * (k + 6)) % 726
