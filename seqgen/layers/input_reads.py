"""Layers that read another input of the model beside their own: what each such keyword takes
(`lstm H lengths=NAME`, `transformerencoderlayer ... key_padding_mask=NAME`), the torch dtypes
of the inputs, and valid samples of such inputs for the checks that run a layer for real.

A kind declares its keywords in `Op.reads`; the parser moves a keyword whose value names an
input into `LayerSpec.reads`, and the trace checks it against the declaration here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# `input ... dtype=X` as the spec names it -> the torch dtype of the tensor
TORCH_DTYPES = {"float": torch.float32, "long": torch.int64, "bool": torch.bool}


@dataclass(frozen=True)
class InputRead:
    """A keyword whose value names an input the layer reads in forward.

    `role` says what a valid sample of that input is: "lengths", (N,) int64 lengths of the
    layer's sequence, each in [1, L]; "padding_mask", (N, L) bool, True at the padded steps,
    with at least one False per row. `argument` is the forward keyword it is passed by (None:
    the second positional argument).
    """

    role: str
    dtype: str  # as the spec writes it: "long", "bool"
    argument: str | None = None

    @property
    def shape(self) -> str:
        """The input's shape, as a message shows it."""
        return "(N,)" if self.role == "lengths" else "(N, L), L the layer's sequence length"


LENGTHS = InputRead("lengths", "long")
PADDING_MASK = InputRead("padding_mask", "bool", argument="src_key_padding_mask")


def sample_lengths(batch: int, length: int, device: Any = None) -> torch.Tensor:
    """Lengths every packing accepts, varied: length, length - 1, ..., 1, length, ..."""
    return length - torch.arange(batch, device=device) % length


def sample_for(read: InputRead, x: torch.Tensor) -> torch.Tensor:
    """A valid sample of the input `read` names, for a layer whose input is `x` (N, L, E)."""
    lengths = sample_lengths(x.shape[0], x.shape[1], x.device)
    if read.role == "lengths":
        return lengths
    return torch.arange(x.shape[1], device=x.device) >= lengths[:, None]


def call_reading(
    reads: Mapping[str, InputRead],
    module: nn.Module,
    x: torch.Tensor,
    tensors: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """Run a layer that reads other inputs: `module(x, lengths)`, or by keyword
    (`module(x, src_key_padding_mask=mask)`); `tensors` by the spec's keyword."""
    args = [tensors[k] for k, read in reads.items() if k in tensors and read.argument is None]
    kwargs = {
        read.argument: tensors[k]
        for k, read in reads.items()
        if k in tensors and read.argument is not None
    }
    y: torch.Tensor = module(x, *args, **kwargs)
    return y
