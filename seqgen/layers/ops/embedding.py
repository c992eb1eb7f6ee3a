"""`embedding NUM DIM`: nn.Embedding, which turns integer token ids into vectors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sympy
import torch
from torch import nn

from seqgen.layers.formulas import (
    Checks,
    Count,
    Outcome,
    RankError,
    RuleError,
    Size,
    as_count,
    as_expr,
    is_int,
)
from seqgen.layers.kind import CallSite, Op, OpResult

INDEX_DTYPES = (torch.int64, torch.int32)  # what torch's embedding accepts as indices


def embedding(
    num_embeddings: Size,
    embedding_dim: Size,
    shape: Sequence[Size],
    *,
    padding_idx: Size | None = None,
    dtype: torch.dtype = torch.int64,
) -> Outcome:
    """nn.Embedding on indices of `shape` (any rank, batch first): `shape + (embedding_dim,)`.

    torch builds an Embedding with 0 rows, but no index fits it; seqgen wants at least one.
    The indices must be int64 (`input ... dtype=long`) or int32.
    """
    if dtype not in INDEX_DTYPES:
        raise RuleError(
            f"an embedding looks up whole-number indices, but its input is {dtype}; "
            "write `dtype=long` on the input"
        )
    if len(shape) < 1:
        raise RankError(1)
    checks = Checks()
    checks.at_least(num_embeddings, 1, "num_embeddings")
    checks.at_least(embedding_dim, 0, "embedding_dim")
    if padding_idx is not None:
        if not is_int(padding_idx):
            raise RuleError(f"padding_idx must be a whole number or None, got {padding_idx!r}")
        n, p = as_expr(num_embeddings), as_expr(padding_idx)
        if isinstance(padding_idx, int):  # one bound: 0 needs n >= 1, 5 needs 6, -2 needs 2
            low = padding_idx + 1 if padding_idx >= 0 else -padding_idx
            if low > 1:
                checks.need(
                    sympy.Ge(n, low),
                    f"num_embeddings ({{}}) must be at least {low} to "
                    f"hold padding_idx {padding_idx}",
                    num_embeddings,
                    subject=f"num_embeddings, to hold padding_idx {padding_idx}",
                )
            return Outcome((*shape, embedding_dim), tuple(checks.items))
        checks.need(
            sympy.And(sympy.Ge(p, -n), sympy.Lt(p, n)),
            "padding_idx ({}) must be within num_embeddings ({}): from -{} to {} - 1",
            padding_idx,
            num_embeddings,
            num_embeddings,
            num_embeddings,
            subject="padding_idx",
        )
    return Outcome((*shape, embedding_dim), tuple(checks.items))


def embedding_params(num_embeddings: Size, embedding_dim: Size) -> Count:
    """nn.Embedding's weight: num_embeddings * embedding_dim (padding_idx changes nothing)."""
    return as_count(as_expr(num_embeddings) * as_expr(embedding_dim))


class Embedding(Op):
    """nn.Embedding on token ids of any rank: one vector per id."""

    name = "embedding"
    positional = ("num_embeddings", "embedding_dim")
    keywords = ("padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse")
    required = ("num_embeddings", "embedding_dim")
    torch_class = "Embedding"
    usage = "e.g. `embedding vocab 128` (num_embeddings, embedding_dim)"
    reads_token_ids = True
    sequence = True

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        out = embedding(
            v["num_embeddings"],
            v["embedding_dim"],
            shape,
            padding_idx=v.get("padding_idx"),
            dtype=dtype,
        )
        n = embedding_params(v["num_embeddings"], v["embedding_dim"])
        return OpResult(out, n, n)

    def out_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return torch.float32

    def call(self, site: CallSite) -> str:
        sizes = ("num_embeddings", "embedding_dim")
        return f"nn.Embedding({', '.join([*(site.source[k] for k in sizes), *site.kwargs(sizes)])})"

    def build(self, v: Mapping[str, Any], in_shape: tuple[int, ...]) -> nn.Module:
        return nn.Embedding(**v)
