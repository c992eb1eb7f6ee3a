"""Learned and fixed positions for sequence models: `cls_token`, `pos_embedding`,
`pos_encoding` (ClsToken, PosEmbedding, PosEncoding in the generated code)."""

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
    Size,
    as_count,
    as_expr,
    require_rank,
)
from seqgen.layers.kind import SEQ3, CallSite, Op, OpResult
from seqgen.runtime import sequence as runtime


def cls_token(shape: Sequence[Size]) -> Outcome:
    """ClsToken on (N, L, E): (N, L + 1, E)."""
    require_rank(shape, 3)
    return Outcome((shape[0], shape[1] + 1, shape[2]), ())


def pos_embedding(shape: Sequence[Size]) -> Outcome:
    """PosEmbedding(L, E) on (N, L, E), its parameter sized from this shape: unchanged."""
    require_rank(shape, 3)
    return Outcome(tuple(shape), ())


def pos_encoding(shape: Sequence[Size], *, max_len: Size = 5000) -> Outcome:
    """PosEncoding(E, max_len) on (N, L, E): unchanged; L must be at most max_len.

    Past max_len torch fails to broadcast, except with max_len 1, where it silently adds row 0
    to every position.
    """
    require_rank(shape, 3)
    checks = Checks()
    checks.at_least(max_len, 1, "max_len")
    checks.need(
        sympy.Le(as_expr(shape[1]), as_expr(max_len)),
        "the sequence length ({}) must be at most max_len ({})",
        shape[1],
        max_len,
        subject="max_len",
    )
    return Outcome(tuple(shape), tuple(checks.items))


def cls_token_params(embed_dim: Size) -> Count:
    """ClsToken: one (1, 1, E) token."""
    return as_count(embed_dim)


def pos_embedding_params(length: Size, embed_dim: Size) -> Count:
    """PosEmbedding: one (1, L, E) table."""
    return as_count(as_expr(length) * as_expr(embed_dim))


def pos_encoding_params(embed_dim: Size, max_len: Size = 5000) -> Count:
    """PosEncoding: none (its table is a buffer)."""
    return 0


class ClsToken(Op):
    """Prepends one learned token to each sequence: (N, L, E) -> (N, L + 1, E)."""

    name = "cls_token"
    helper = "ClsToken"
    rank = 3
    shape_hint = SEQ3
    sequence = True

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(cls_token(shape), cls_token_params(shape[-1]))

    def call(self, site: CallSite) -> str:
        return f"ClsToken({site.dims[-1]})"

    def build(self, v: Mapping[str, Any], in_shape: tuple[int, ...]) -> nn.Module:
        return runtime.ClsToken(in_shape[-1])


class PosEmbedding(Op):
    """Adds a learned (L, E) position table, sized from its input."""

    name = "pos_embedding"
    helper = "PosEmbedding"
    rank = 3
    shape_hint = SEQ3
    sequence = True

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        n = pos_embedding_params(shape[1], shape[2])
        return OpResult(pos_embedding(shape), n, n)

    def call(self, site: CallSite) -> str:
        return f"PosEmbedding({site.dims[1]}, {site.dims[-1]})"

    def build(self, v: Mapping[str, Any], in_shape: tuple[int, ...]) -> nn.Module:
        return runtime.PosEmbedding(in_shape[1], in_shape[-1])


class PosEncoding(Op):
    """Adds the fixed sinusoidal encoding (a buffer: no parameters)."""

    name = "pos_encoding"
    keywords = ("max_len",)
    helper = "PosEncoding"
    rank = 3
    shape_hint = SEQ3
    sequence = True

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        return OpResult(pos_encoding(shape, max_len=v.get("max_len", 5000)))

    def call(self, site: CallSite) -> str:
        return f"PosEncoding({', '.join([site.dims[-1], *site.kwargs()])})"

    def build(self, v: Mapping[str, Any], in_shape: tuple[int, ...]) -> nn.Module:
        return runtime.PosEncoding(in_shape[-1], **v)
