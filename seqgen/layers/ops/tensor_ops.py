"""seqgen's tensor ops: `permute`, `transpose`, `unsqueeze`, `squeeze`, `mean`, `sum`, `amax`,
`select`, `narrow`, `scale`, `abs`, `add_identity`, each a small module of
seqgen/runtime/sequence.py in the generated code.

seqgen keeps the batch: an op that would move, reduce, select, squeeze or insert before the
batch dim 0 is a RuleError, even where torch would run it. Dims are numbered as torch numbers
them (negative ones count from the end) and must be literals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sympy
import torch
from torch import nn

from seqgen.layers.formulas import (
    Checks,
    Outcome,
    RuleError,
    Size,
    as_expr,
    dim_index,
    flag,
    is_int,
    not_batch,
)
from seqgen.layers.kind import CallSite, Op, OpResult
from seqgen.runtime import sequence as runtime


def permute(dims: Sequence[Any], shape: Sequence[Size]) -> Outcome:
    """`x.permute(*dims)`: dims a permutation of the dims, the batch first (dims[0] is 0)."""
    rank = len(shape)
    if len(dims) != rank:
        raise RuleError(f"permute needs {rank} dims for a tensor of rank {rank}, got {len(dims)}")
    order = [dim_index(d, rank) for d in dims]
    if sorted(order) != list(range(rank)):
        raise RuleError(f"permute's dims {tuple(dims)} must name each dim once")
    if order[0] != 0:
        raise RuleError("permute must keep the batch first: its first dim must be 0")
    return Outcome(tuple(shape[d] for d in order), ())


def transpose(dim0: Any, dim1: Any, shape: Sequence[Size]) -> Outcome:
    """`x.transpose(dim0, dim1)`, neither of them the batch dim 0 (unless both are)."""
    rank = len(shape)
    a, b = dim_index(dim0, rank, "dim0"), dim_index(dim1, rank, "dim1")
    if a != b:
        not_batch(a, "transpose moves")
        not_batch(b, "transpose moves")
    out = list(shape)
    out[a], out[b] = out[b], out[a]
    return Outcome(tuple(out), ())


def unsqueeze(dim: Any, shape: Sequence[Size]) -> Outcome:
    """`x.unsqueeze(dim)`, dim in [-rank - 1, rank] and not before the batch."""
    d = dim_index(dim, len(shape) + 1)
    not_batch(d, "unsqueeze would insert a dim before the batch at")
    return Outcome((*shape[:d], 1, *shape[d:]), ())


def squeeze(dim: Any, shape: Sequence[Size]) -> Outcome:
    """`x.squeeze(dim)`, which must remove the dim: its size must be 1.

    torch returns the tensor unchanged when the size is not 1: a different model, silently.
    """
    d = dim_index(dim, len(shape))
    not_batch(d, "squeeze would remove")
    checks = Checks()
    checks.need(
        sympy.Eq(as_expr(shape[d]), 1), f"squeeze {dim} removes a dim of size 1, not {{}}", shape[d]
    )
    return Outcome((*shape[:d], *shape[d + 1 :]), tuple(checks.items))


def reduce(dim: Any, shape: Sequence[Size], *, keepdim: bool = False) -> Outcome:
    """`x.mean(dim)`, `x.sum(dim)`, `x.amax(dim)` (`keepdim` keeps the dim as size 1).

    dim is one dim or a tuple of distinct ones, never the batch dim 0.
    """
    rank = len(shape)
    many = isinstance(dim, (tuple, list))
    if many and not dim:
        raise RuleError("give the dims to reduce: none would reduce them all, the batch too")
    dims = [dim_index(d, rank) for d in (dim if many else (dim,))]
    if len(set(dims)) != len(dims):
        raise RuleError(f"each dim may be reduced once, got {tuple(dim)}")
    for d in dims:
        not_batch(d, "the reduction would remove")
    keep = flag(keepdim, "keepdim")
    out = [1 if i in dims else s for i, s in enumerate(shape) if keep or i not in dims]
    return Outcome(tuple(out), ())


def select(dim: Any, index: Size, shape: Sequence[Size]) -> Outcome:
    """`x.select(dim, index)`: index in [-size, size) (a Check when either is symbolic)."""
    d = dim_index(dim, len(shape))
    not_batch(d, "select would remove")
    if not is_int(index):
        raise RuleError(f"index must be a whole number, got {index!r}")
    checks = Checks()
    size, i = shape[d], as_expr(index)
    if isinstance(index, int):  # `select 1 5` needs a size >= 6, `select 1 -2` one >= 2
        low = index + 1 if index >= 0 else -index
        checks.need(
            sympy.Ge(as_expr(size), low),
            f"select {dim} {index} needs a size of at least {low}, not {{}}",
            size,
        )
    else:
        checks.need(
            sympy.And(sympy.Ge(i, -as_expr(size)), sympy.Lt(i, as_expr(size))),
            "the index ({}) must be within the size ({}) of the dim it selects from",
            index,
            size,
        )
    return Outcome((*shape[:d], *shape[d + 1 :]), tuple(checks.items))


def narrow(dim: Any, start: Size, length: Size, shape: Sequence[Size]) -> Outcome:
    """`x.narrow(dim, start, length)`: `length` entries from `start` along a dim that is not
    the batch. start >= 0 (stricter than torch, which counts a negative one from the end),
    length >= 1, start + length within the size: Checks where any is symbolic."""
    d = dim_index(dim, len(shape))
    not_batch(d, "narrow would slice")
    for what, value in (("start", start), ("length", length)):
        if not is_int(value):
            raise RuleError(f"narrow's {what} must be a whole number, got {value!r}")
    checks = Checks()
    checks.need(sympy.Ge(as_expr(start), 0), "narrow's start ({}) must be at least 0", start)
    checks.need(sympy.Ge(as_expr(length), 1), "narrow's length ({}) must be at least 1", length)
    checks.need(
        sympy.Le(as_expr(start) + as_expr(length), as_expr(shape[d])),
        "narrow's start + length ({} + {}) must be at most the size ({}) of dim " + str(dim),
        start,
        length,
        shape[d],
    )
    return Outcome((*shape[:d], length, *shape[d + 1 :]), tuple(checks.items))


def scale(value: Any, shape: Sequence[Size]) -> Outcome:
    """`x * value` for a number (or a parameter expression): the shape is unchanged."""
    if isinstance(value, bool) or not (
        isinstance(value, (int, float, torch.SymFloat)) or is_int(value)
    ):
        raise RuleError(f"scale multiplies by a number, got {value!r}")
    return Outcome(tuple(shape), ())


def add_identity(shape: Sequence[Size]) -> Outcome:
    """`x + torch.eye(K)` on (N, ..., K, K): the last two dims must be equal (a Check when
    either is symbolic)."""
    if len(shape) < 3:
        raise RuleError(
            "it adds an identity matrix to the last two dims, which needs (N, ..., K, K), got "
            f"a rank-{len(shape)} input; `unflatten 1 (K, K)` turns (N, K * K) into (N, K, K)"
        )
    checks = Checks()
    checks.need(
        sympy.Eq(as_expr(shape[-2]), as_expr(shape[-1])),
        "the last two dims ({} and {}) must be equal, square matrices for the identity",
        shape[-2],
        shape[-1],
    )
    return Outcome(tuple(shape), tuple(checks.items))


class TensorOp(Op):
    """An op that reshapes or reduces: no parameters; accepts token ids where it only moves them."""

    reads_token_ids = True


class Permute(TensorOp):
    name = "permute"
    var_positional = "dims"
    helper = "Permute"
    sequence = True
    usage = "e.g. `permute 0 2 1` (dim 0 is the batch and stays first)"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(permute(v["dims"], shape))

    def call(self, site: CallSite) -> str:
        return f"Permute({', '.join(site.source['dims'])})"

    def build(self, v: Mapping[str, Any], in_shape: tuple[int, ...]) -> nn.Module:
        return runtime.Permute(*v["dims"])


class Transpose(TensorOp):
    name = "transpose"
    positional = ("dim0", "dim1")
    required = ("dim0", "dim1")
    helper = "Transpose"
    sequence = True
    usage = "e.g. `transpose 1 2`"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(transpose(v["dim0"], v["dim1"], shape))


class Unsqueeze(TensorOp):
    name = "unsqueeze"
    positional = ("dim",)
    required = ("dim",)
    helper = "Unsqueeze"
    usage = "e.g. `unsqueeze 1`"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(unsqueeze(v["dim"], shape))


class Squeeze(TensorOp):
    name = "squeeze"
    positional = ("dim",)
    required = ("dim",)
    helper = "Squeeze"
    usage = "e.g. `squeeze 3`"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(squeeze(v["dim"], shape))


class Reduction(Op):
    """`mean`, `sum`, `amax` over one dim or a tuple of them."""

    positional = ("dim",)
    keywords = ("keepdim",)
    required = ("dim",)

    @property
    def usage(self) -> str:  # type: ignore[override]
        return f"e.g. `{self.name} 1`"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(reduce(v["dim"], shape, keepdim=v.get("keepdim", False)))


class Mean(Reduction):
    name = "mean"
    helper = "Mean"


class Sum(Reduction):
    name = "sum"
    helper = "Sum"


class Amax(Reduction):
    name = "amax"
    helper = "Amax"


class Select(TensorOp):
    name = "select"
    positional = ("dim", "index")
    required = ("dim", "index")
    helper = "Select"
    usage = "e.g. `select 1 0` (dim, index)"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(select(v["dim"], v["index"], shape))


class Narrow(TensorOp):
    name = "narrow"
    positional = ("dim", "start", "length")
    required = ("dim", "start", "length")
    helper = "Narrow"
    usage = "e.g. `narrow 1 0 8` (dim, start, length)"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(narrow(v["dim"], v["start"], v["length"], shape))


class Scale(Op):
    name = "scale"
    positional = ("value",)
    required = ("value",)
    helper = "Scale"
    usage = "e.g. `scale 16.0`"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(scale(v["value"], shape))


class Abs(Op):
    name = "abs"
    helper = "Abs"
    usage = "e.g. `abs` after a `subtract:` (an L1 distance)"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(Outcome(tuple(shape), ()))  # elementwise: no parameters, no mult-adds


class AddIdentity(Op):
    name = "add_identity"
    helper = "AddIdentity"
    usage = "e.g. `add_identity` after `unflatten 1 (3, 3)`"

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(add_identity(shape))  # no parameters; an elementwise add: no mult-adds
