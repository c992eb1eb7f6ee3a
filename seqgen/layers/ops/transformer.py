"""`transformerencoderlayer`: nn.TransformerEncoderLayer, batch first, d_model inferred."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import sympy
import torch
from torch import nn

from seqgen.ir import LayerSpec
from seqgen.layers.formulas import (
    Checks,
    Count,
    Outcome,
    RuleError,
    Size,
    as_count,
    as_expr,
    flag,
    mod,
    probability,
    require_rank,
)
from seqgen.layers.input_reads import PADDING_MASK, InputRead
from seqgen.layers.kind import (
    SEQ3,
    CallSite,
    Nodes,
    Op,
    OpResult,
    batch_first_call,
    batch_first_only,
)


def transformer_encoder_layer(
    nhead: Size,
    shape: Sequence[Size],
    *,
    dim_feedforward: Size = 2048,
    dropout: Any = 0.1,
    activation: Any = "relu",
    batch_first: bool = True,
    norm_first: bool = False,
    bias: bool = True,
) -> Outcome:
    """nn.TransformerEncoderLayer on (N, L, E), d_model = E: the output has the input's shape.

    torch runs a dim_feedforward of 0 (the block adds only its bias); seqgen wants >= 1.
    """
    if batch_first is not True:
        raise RuleError(
            "seqgen's tensors are batch first and it writes batch_first=True itself; "
            f"batch_first={batch_first!r} is not allowed"
        )
    require_rank(shape, 3)
    flag(norm_first, "norm_first")
    flag(bias, "bias")
    if isinstance(activation, str) and activation not in ("relu", "gelu"):
        raise RuleError(f"activation must be 'relu' or 'gelu', got {activation!r}")
    checks = Checks()
    probability(checks, dropout, "dropout")
    d_model = shape[2]
    checks.at_least(shape[1], 1, "the sequence length")
    checks.at_least(d_model, 1, "d_model (the last input dim)")
    checks.at_least(nhead, 1, "nhead")
    if not (isinstance(nhead, int) and nhead == 1):
        checks.need(
            sympy.Eq(mod(d_model, nhead), 0),
            "d_model ({}) must be divisible by nhead ({})",
            d_model,
            nhead,
            subject="d_model and nhead",
        )
    checks.at_least(dim_feedforward, 1, "dim_feedforward")
    return Outcome(tuple(shape), tuple(checks.items))


def transformer_encoder_layer_params(
    d_model: Size, *, dim_feedforward: Size = 2048, bias: bool = True
) -> Count:
    """nn.TransformerEncoderLayer: 4 E^2 + 2 E F + 2 E, plus 7 E + F with bias (norm_first and
    nhead change nothing).

    Attention in_proj 3E x E (+3E), out_proj E x E (+E); linear1 F x E (+F); linear2 E x F
    (+E); two LayerNorms, E weights each (+E biases each).
    """
    e, f = as_expr(d_model), as_expr(dim_feedforward)
    total = 4 * e * e + 2 * e * f + 2 * e
    if flag(bias, "bias"):
        total += 7 * e + f
    return as_count(total)


def transformer_encoder_layer_macs(seq_len: Size, d_model: Size, dim_feedforward: Size) -> Count:
    """nn.TransformerEncoderLayer's multiply-accumulates for one sample: the mult-adds of its
    matmuls, as torch.utils.flop_counter counts them (flops / 2).

    Per token: the in-projection 3 E^2 (q, k and v), the out-projection E^2, linear1 and linear2
    E F each. Per pair of tokens: q k^T and the attention weights times v, E each (nhead heads of
    E / nhead), so nhead drops out. L (4 E^2 + 2 E F) + 2 L^2 E in all; bias adds, LayerNorms,
    softmax and the activation are no matmuls, and bias and norm_first change nothing.
    """
    n, e, f = as_expr(seq_len), as_expr(d_model), as_expr(dim_feedforward)
    return as_count(n * (4 * e * e + 2 * e * f) + 2 * n * n * e)


class TransformerEncoderLayer(Op):
    """nn.TransformerEncoderLayer on (N, L, E), d_model = E."""

    name = "transformerencoderlayer"
    positional = ("nhead",)
    keywords = (
        "dim_feedforward",
        "dropout",
        "activation",
        "layer_norm_eps",
        "batch_first",
        "norm_first",
        "bias",
        "d_model",
        "key_padding_mask",
    )
    required = ("nhead",)
    torch_class = "TransformerEncoderLayer"
    rank = 3
    shape_hint = SEQ3
    usage = "e.g. `transformerencoderlayer nhead=8 dim_feedforward=2048`"
    inferred = "d_model"
    sequence = True
    # `key_padding_mask=NAME`: an (N, L) bool input, True at padded steps (src_key_padding_mask)
    reads: ClassVar[Mapping[str, InputRead]] = {"key_padding_mask": PADDING_MASK}

    def check_bound(self, layer: LayerSpec, args: Nodes) -> None:
        batch_first_only(self.name, args)

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        given = ("dim_feedforward", "dropout", "activation", "norm_first", "bias")
        out = transformer_encoder_layer(v["nhead"], shape, **{k: v[k] for k in given if k in v})
        d, f = as_expr(shape[2]), as_expr(v.get("dim_feedforward", 2048))
        bias = v.get("bias", True)
        n = transformer_encoder_layer_params(
            shape[2], dim_feedforward=v.get("dim_feedforward", 2048), bias=bias
        )
        # its matmuls, attention's included: torchinfo counts only the leaves' parameters once
        # per sample (linear1, linear2, norm1, norm2: 2 E F + F + 5 E), about L times too few
        macs = transformer_encoder_layer_macs(shape[1], shape[2], f)
        # the attention's weights sit in a module with a child (out_proj): not a leaf
        attention = 4 * d * d + (4 * d if bias else 0)
        return OpResult(out, n, macs, as_expr(shape[1]) * (f + 3 * d), attention)

    def call(self, site: CallSite) -> str:
        return batch_first_call("TransformerEncoderLayer", "nhead", site, ())

    def build(self, v: Mapping[str, Any], in_shape: tuple[int, ...]) -> nn.Module:
        v = dict(v)
        v.pop("batch_first", None)
        return nn.TransformerEncoderLayer(in_shape[-1], batch_first=True, **v)
