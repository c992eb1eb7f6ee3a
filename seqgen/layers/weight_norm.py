"""`weight_norm=True` on a linear or conv layer: torch's weight_norm parametrization around it.

torch.nn.utils.parametrizations.weight_norm(module) (dim=0) replaces `weight` by weight_v (the
same shape) and adds weight_g, one entry per index of the weight's dim 0. A layer's parameter
count therefore grows by weight.shape[0]: out_features for Linear, out_channels for ConvNd, and
in_channels for ConvTransposeNd, whose weight is (in, out / groups, *kernel)
(docs/torch-facts-sequence-layers.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from torch import nn

from seqgen.errors import TraceError
from seqgen.ir import Const, Expr, LayerSpec
from seqgen.lang.values import expr_source

KEYWORD = "weight_norm"
_LEADS = {"Linear": "out", "Conv1d": "out", "Conv2d": "out", "Conv3d": "out"} | {
    f"ConvTranspose{n}d": "in" for n in (1, 2, 3)
}
D = TypeVar("D")


def split(layer: LayerSpec) -> tuple[LayerSpec, Expr | None]:
    """The line without its `weight_norm=...`, and that value (None when not written)."""
    value = next((kw.value for kw in layer.kwargs if kw.name == KEYWORD), None)
    if value is None:
        return layer, None
    return replace(layer, kwargs=tuple(kw for kw in layer.kwargs if kw.name != KEYWORD)), value


def enabled(value: Expr) -> bool:
    """`weight_norm=True` or `=False`; anything else is an error."""
    if not (isinstance(value, Const) and isinstance(value.value, bool)):
        raise TraceError(
            f"weight_norm must be True or False, got {expr_source(value)}",
            location=value.loc,
            hint="write weight_norm=True",
        )
    return value.value


def added_params(class_name: str, in_shape: Sequence[D], out_shape: Sequence[D]) -> D | None:
    """How many parameters weight_norm adds to a `class_name` layer with these input and output
    shapes (batch first): weight.shape[0]. None: weight_norm=True does not take this layer."""
    lead = _LEADS.get(class_name)
    if lead is None:
        return None
    if lead == "in":
        return in_shape[1]
    return out_shape[-1] if class_name == "Linear" else out_shape[1]


def refuse(class_name: str, value: Expr) -> TraceError:
    """The error for a layer weight_norm cannot wrap."""
    return TraceError(
        f"weight_norm=True works on linear and conv layers, not {class_name}",
        location=value.loc,
        hint="torch's weight_norm reparametrises a layer's `weight`",
    )


def wrap(module: nn.Module) -> nn.Module:
    """The module with torch's weight_norm parametrization (dim=0)."""
    wrapped: nn.Module = nn.utils.parametrizations.weight_norm(module)
    return wrapped


def call(inner: str) -> str:
    """The generated code around a layer's own call."""
    return f"nn.utils.parametrizations.weight_norm({inner})"
