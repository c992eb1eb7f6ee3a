"""The mult-adds of a class of the user's own: what torch.utils.flop_counter.FlopCounterMode
counts while the class runs in the trace, halved (flops / 2, as a transformer layer's count is
made), per sample.

seqgen has no formula for a class it does not know, so torch counts it: on fake tensors with
symbolic sizes the count is an expression of the model's parameters (exact), and where that
fails, or the class ran at the sample values (W015), it is the count at those values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seqgen.errors import TraceError
from seqgen.ir import Dim
from seqgen.trace import symbolic as S
from seqgen.trace.scope import Scope

# how the trace runs a layer built on fake tensors: `module(x)`, or counted (FlopCount.run)
Run = Callable[[nn.Module, torch.Tensor], Any]


@dataclass
class FlopCount:
    """Runs a built layer under FlopCounterMode (`run` is what the trace calls it with) and
    keeps the count: an int, or a SymInt on symbolic sizes."""

    flops: Any = None

    def run(self, module: nn.Module, x: torch.Tensor) -> Any:
        """`module(x)`, counted."""
        with FlopCounterMode(display=False) as counter:
            y = module(x)
        self.flops = counter.get_total_flops()
        return y


@dataclass(frozen=True)
class Macs:
    """A class's mult-adds for one sample, and whether they hold at the sample values only."""

    expr: sympy.Expr
    dim: Dim
    at_sample: bool


def symbolic_macs(scope: Scope, flops: Any) -> Macs:
    """Per sample from a count made on the batch-N trace: `flops / 2 / N` as an expression of
    the model's parameters where it is one (the count is N times a count free of N, and can be
    written as Python); else its value at the sample values, per sample."""
    total = S.simplify(scope.session, S.expr_of(flops))
    batch = scope.batch_sym
    one = sympy.factor_terms(total.xreplace({batch: 1}) / 2)
    whole = all(c.is_Integer for c in sympy.expand(one).as_coefficients_dict().values())
    if whole and batch not in one.free_symbols and sympy.expand(total - 2 * batch * one) == 0:
        try:
            return Macs(one, scope.as_dim(one), at_sample=False)
        except TraceError:  # not writable as Python arithmetic: the value at the sample
            pass
    return sample_macs(scope, scope.value(total), scope.value(batch))


def sample_macs(scope: Scope, flops: int, batch: int) -> Macs:
    """Per sample from the flops of `batch` samples at the sample values."""
    one = sympy.Integer(flops // (2 * batch))
    return Macs(one, scope.as_dim(one), at_sample=True)
