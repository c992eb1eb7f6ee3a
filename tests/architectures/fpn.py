"""A feature pyramid network, written by hand as torchvision.ops.FeaturePyramidNetwork is
(its `inner_blocks`, 1x1 lateral convs, and `layer_blocks`, 3x3 output convs, and its forward:
the coarsest lateral, then at each finer level the lateral plus the level above upsampled to its
size by nearest interpolation), without norm layers or extra blocks, on a small backbone whose
stages give C3, C4 and C5. tests/architectures/heads/fpn.seq is the same network as a spec."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class Backbone(nn.Module):
    """Three stages, each halving the size: C3 (2 * width), C4 (4 * width), C5 (8 * width)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.stage3 = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.stage4 = nn.Sequential(
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.ReLU()
        )
        self.stage5 = nn.Sequential(
            nn.Conv2d(4 * width, 8 * width, 3, stride=2, padding=1), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        c3 = self.stage3(x)
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        return OrderedDict([("c3", c3), ("c4", c4), ("c5", c5)])


class FeaturePyramidNetwork(nn.Module):
    """torchvision.ops.FeaturePyramidNetwork(in_channels_list, out_channels), no norm layer,
    no extra block: its modules and forward."""

    def __init__(self, in_channels_list: list[int], out_channels: int) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels_list
        )

    def forward(self, x: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        names = list(x.keys())
        feats = list(x.values())
        last_inner = self.inner_blocks[-1](feats[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(feats) - 2, -1, -1):
            inner_lateral = self.inner_blocks[idx](feats[idx])
            feat_shape = inner_lateral.shape[-2:]
            inner_top_down = F.interpolate(last_inner, size=feat_shape, mode="nearest")
            last_inner = inner_lateral + inner_top_down
            results.insert(0, self.layer_blocks[idx](last_inner))
        return OrderedDict(zip(names, results, strict=True))


class BackboneWithFPN(nn.Module):
    """The backbone and the pyramid on its C3, C4, C5: returns P3, P4, P5."""

    def __init__(self, width: int = 8, out: int = 16) -> None:
        super().__init__()
        self.body = Backbone(width)
        self.fpn = FeaturePyramidNetwork([2 * width, 4 * width, 8 * width], out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3, p4, p5 = self.fpn(self.body(x)).values()
        return p3, p4, p5
