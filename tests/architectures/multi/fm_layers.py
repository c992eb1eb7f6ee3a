"""Two small modules of pytorch-fm's (rixwew/pytorch-fm, torchfm/layer.py) that deepfm.seq uses
as layers of its own (`use fm_layers:...`): the per-field offsets into one shared embedding
table, and FeaturesLinear's lone bias."""

from __future__ import annotations

import torch
from torch import nn


class FeaturesOffsets(nn.Module):
    """x + offsets: field i's ids start after the ids of fields 0..i-1 in one table (pytorch-fm
    keeps them as a numpy array, outside the state_dict: a non-persistent buffer here)."""

    def __init__(self, field_dims: tuple[int, ...]) -> None:
        super().__init__()
        starts = [0]
        for size in field_dims[:-1]:
            starts.append(starts[-1] + size)
        self.register_buffer("offsets", torch.tensor(starts, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offsets


class Bias(nn.Module):
    """FeaturesLinear's `+ self.bias`, a learned (1,) bias added to its (N, 1) sum."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros((1,)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias
