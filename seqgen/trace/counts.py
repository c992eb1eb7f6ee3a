"""A built layer's counts, and what a bool model parameter decides (trace stage).

Parameters, trainable parameters and mult-adds come from the layer built on fake tensors. A
bool model parameter may stand for `bias`, `affine`, `elementwise_affine` or `ceil_mode`: it is
a symbol that is 0 or 1, and the counts and sizes are written for both of its values (the layer
built, or its rule applied, at each).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import sympy
import torch
from torch import nn

from seqgen.ir import LayerSpec
from seqgen.layers import torch_rules as rules
from seqgen.layers.formulas import Outcome
from seqgen.trace import symbolic as S
from seqgen.trace.arguments import Arguments, construct
from seqgen.trace.scope import DimInfo, Scope, symint


def flag_of(scope: Scope, name: str) -> sympy.Symbol | None:
    """The 0/1 symbol of `name` where it is a bool parameter of the scope's model or block."""
    return scope.shared.flags.get(name if scope.block is None else f"{scope.block}.{name}")


def apply_flagged(
    scope: Scope,
    cls: type[nn.Module],
    args: Arguments,
    shape: list[Any],
    flags: dict[str, sympy.Symbol],
) -> Outcome:
    """The rule's outcome; with `ceil_mode=cm` (a bool model parameter), both outcomes in one:
    each size `floor + cm * (ceil - floor)`, and the checks of both."""
    sized = sorted(set(flags) & rules.SIZE_FLAGS)
    if not sized:
        return rules.apply(cls, args.values, shape)
    (name,) = sized
    off, on = (rules.apply(cls, {**args.values, name: v}, shape) for v in (False, True))
    flag = flags[name]
    sizes = []
    for a, b in zip(off.shape, on.shape):
        # the flag is 0 or 1, earlier sizes may hold it too: `a` where it is 0, `b` where 1
        a0, b1 = S.expr_of(a).xreplace({flag: 0}), S.expr_of(b).xreplace({flag: 1})
        size = a0 if a0 == b1 else a0 + flag * (b1 - a0)
        sizes.append(int(size) if size.is_number else symint(scope, DimInfo(size, "")))
    checks = off.checks + tuple(c for c in on.checks if c not in off.checks)
    return Outcome(tuple(sizes), checks)


def counts(module: nn.Module, y: torch.Tensor) -> tuple[sympy.Expr, sympy.Expr, sympy.Expr]:
    """Parameters, trainable parameters and mult-adds of a built layer."""
    n_params = sympy.Integer(0)
    n_train = sympy.Integer(0)
    for p in module.parameters():
        n = S.expr_of(p.numel())
        n_params += n
        if p.requires_grad:
            n_train += n
    return n_params, n_train, macs(module, y)


def counts_for_flags(
    scope: Scope,
    cls: type[nn.Module],
    layer: LayerSpec,
    args: Arguments,
    y: torch.Tensor,
    flags: dict[str, sympy.Symbol],
) -> tuple[sympy.Expr, sympy.Expr, sympy.Expr]:
    """The counts of a layer whose `bias=b` (or `affine=a`) is a bool model parameter: built
    at every combination of the flags, each count weighted by the flags as 0/1 symbols
    (`8 * out + out * b` for a Linear's bias)."""
    totals = [sympy.Integer(0)] * 3
    names = sorted(flags)
    for combo in itertools.product((False, True), repeat=len(names)):
        chosen = dict(zip(names, combo))
        module = construct(scope, cls, layer, replace(args, kw_values={**args.kw_values, **chosen}))
        weight = sympy.Integer(1)
        for name, on in chosen.items():
            weight *= flags[name] if on else 1 - flags[name]
        totals = [t + weight * c for t, c in zip(totals, counts(module, y))]
    n_params, n_train, macs = (sympy.expand(t) for t in totals)
    return n_params, n_train, macs


def macs(module: nn.Module, y: torch.Tensor) -> sympy.Expr:
    """Multiply-accumulates for one sample of a built layer, counted as torchinfo counts them."""
    numels = {n: S.expr_of(p.numel()) for n, p in module.named_parameters(recurse=False)}
    return macs_of(type(module), numels, [S.expr_of(s) for s in y.shape])


def macs_of(
    cls: type[nn.Module], numels: dict[str, sympy.Expr], out: list[sympy.Expr]
) -> sympy.Expr:
    """Multiply-accumulates for one sample from each parameter's element count and the output's
    sizes, counted as torchinfo counts them: a weight or bias element once per output position
    of a convolution, once otherwise."""
    total = sympy.Integer(0)
    conv = "Conv" in cls.__name__
    for name, n in numels.items():
        if name not in ("weight", "bias"):
            continue
        if conv:
            spatial = sympy.Integer(1)
            for s in out[2:]:
                spatial *= s
            total += n * spatial
        else:
            total += n
    return total
