"""A layer of the project's own, used by custom_layer.seq (`use custom_layers:SqueezeExcite`).

Hand-written, not generated: `seqgen new` imports it (the repository's pyproject.toml allows
`custom_layers` in [tool.seqgen] allow-imports) and the generated model imports it too.
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): each channel scaled by a gate computed from
    the channel means; `channels // reduction` channels in between."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(channels, channels // reduction, 1)
        self.excite = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = torch.sigmoid(self.excite(torch.relu(self.squeeze(scale))))
        return x * scale
