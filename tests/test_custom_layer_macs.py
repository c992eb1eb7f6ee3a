"""A class of the user's own counts its mult-adds as torch's FlopCounterMode does (flops / 2,
per sample) while it runs in the trace (README, "Your own layers"): an expression of the
model's parameters and free sizes where it was traced symbolically, checked against the real
module at the defaults and at other values; the count at the sample values where it was
traced concretely (W015) or its count is not N times a count per sample."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from conftest import EXAMPLES
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seqgen import api
from seqgen.cli import main
from seqgen.ir import TracedLayer, TracedModel
from seqgen.report.summary import own_classes, render_summary, totals
from seqgen.safe_eval import evaluate_source

LAYERS = '''
import torch
from torch import nn


class Gate(nn.Module):
    """A 1x1 convolution to twice the channels, one half gating the other."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, 2 * out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.proj(x).chunk(2, dim=1)
        return a * torch.sigmoid(b)


class SeparableConv(nn.Module):
    """A depthwise 3x3 (groups=channels, strided) then a pointwise convolution."""

    def __init__(self, channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels)
        self.pointwise = nn.Conv2d(channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(torch.relu(self.depthwise(x)))


class SelfAttention(nn.Module):
    """One head of attention written with matmuls, then an MLP: linear layers on (N, L, E)
    and two products whose count grows as L squared."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        x = x + weights @ v
        return x + self.fc2(torch.relu(self.fc1(x)))


class CheckedLinear(nn.Module):
    """Reads a value of its input: traced at the sample values (W015)."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * float(x.abs().max().item() >= 0)


class BatchMix(nn.Module):
    """Mixes the samples of a batch: its count grows as the batch squared, so no count per
    sample is exact."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((x @ x.t()) @ x)
'''


@pytest.fixture
def layers(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """A project folder with the module of layers (allowed), and the module itself."""
    name = f"macs_layers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(LAYERS)
    (tmp_path / "pyproject.toml").write_text(f'[tool.seqgen]\nallow-imports = ["{name}"]\n')
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path, __import__(name)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def _trace(folder: Path, module: Any, text: str) -> TracedModel:
    path = folder / "net.seq"
    name = module.__name__
    path.write_text(textwrap.dedent(text).lstrip().format(m=name))
    return api.traced_spec(str(path))[1]


def flop_macs(module: nn.Module, x: torch.Tensor) -> int:
    """FlopCounterMode's count on the real module, halved, per sample."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    flops = counter.get_total_flops()
    assert flops % (2 * x.shape[0]) == 0
    return int(flops) // (2 * x.shape[0])


def _own(traced: TracedModel) -> list[TracedLayer]:
    return [n for n in traced.layers if isinstance(n, TracedLayer) and n.spec.use is not None]


CONV_SPEC = """
    use {m}:Gate infers in_channels=1
    use {m}:SeparableConv as sep infers channels=1
    model Net(width=8, out=6, s=2)
    input (3, h=16, w=12)
    gate width
    sep out stride=s
    """


@pytest.mark.parametrize(
    "at",
    [
        {"width": 8, "out": 6, "s": 2, "h": 16, "w": 12},  # the defaults
        {"width": 5, "out": 9, "s": 1, "h": 7, "w": 10},
        {"width": 12, "out": 3, "s": 3, "h": 20, "w": 9},
    ],
)
def test_conv_classes_count_as_flop_counter(layers: tuple[Path, Any], at: dict[str, int]) -> None:
    """Symbolic counts (channels, groups, a stride's floor division, the free sizes h and w)
    against FlopCounterMode on the real modules, at batch 1 and 3."""
    folder, module = layers
    traced = _trace(folder, module, CONV_SPEC)
    gate, sep = _own(traced)
    assert not gate.macs_at_sample and not sep.macs_at_sample
    assert {"width", "h", "w"} <= set(gate.macs.code.replace("*", " ").split())
    real_gate = module.Gate(3, at["width"])
    real_sep = module.SeparableConv(at["width"], at["out"], at["s"])
    for batch in (1, 3):
        x = torch.randn(batch, 3, at["h"], at["w"])
        assert evaluate_source(gate.macs.code, at) == flop_macs(real_gate, x) > 0
        y = real_gate(x)
        assert evaluate_source(sep.macs.code, at) == flop_macs(real_sep, y) > 0


@pytest.mark.parametrize(
    "at",
    [
        {"dim": 16, "hidden": 24, "seq_len": 10},  # the defaults
        {"dim": 7, "hidden": 40, "seq_len": 3},
        {"dim": 32, "hidden": 5, "seq_len": 33},
    ],
)
def test_a_linear_class_counts_as_flop_counter(
    layers: tuple[Path, Any], at: dict[str, int]
) -> None:
    """Linear layers on (N, L, E) and matmuls of L x L: the count is an expression of the
    width, the hidden size and the free sequence length."""
    folder, module = layers
    text = """
        use {m}:SelfAttention as attn infers dim=-1
        model Net(dim=16, hidden=24)
        input (seq_len=10, 4)
        linear dim
        attn hidden
        """
    (attn,) = _own(_trace(folder, module, text))
    assert not attn.macs_at_sample and "seq_len" in attn.macs.code
    real = module.SelfAttention(at["dim"], at["hidden"])
    x = torch.randn(1, at["seq_len"], at["dim"])
    assert evaluate_source(attn.macs.code, at) == flop_macs(real, x) > 0


@pytest.mark.parametrize(("dim", "out"), [(6, 5), (9, 2), (1, 12)])
def test_a_class_traced_concretely_counts_at_the_sample(
    layers: tuple[Path, Any], dim: int, out: int
) -> None:
    """W015: the count is FlopCounterMode's at the sample values (several samples here, each
    traced), and the summary says it holds there."""
    folder, module = layers
    text = f"""
        use {{m}}:CheckedLinear infers dim=-1
        input {dim}
        checkedlinear {out}
        """
    traced = _trace(folder, module, text)
    assert [w.code for w in traced.warnings] == ["W015 traced-concretely"]
    (layer,) = _own(traced)
    real = module.CheckedLinear(dim, out)
    assert layer.macs_at_sample and layer.macs.code == str(layer.macs.value)
    assert layer.macs.value == flop_macs(real, torch.randn(1, dim)) == dim * out
    path = f"{module.__name__}:CheckedLinear"
    assert own_classes(traced) == [(path, "at the sample values (W015), mult-adds at the sample")]


def test_a_count_not_linear_in_the_batch_is_the_samples(layers: tuple[Path, Any]) -> None:
    """Traced symbolically, but the count is no multiple of N: the count per sample at the
    sample batch, and the summary says so."""
    folder, module = layers
    traced = _trace(folder, module, "use {m}:BatchMix infers dim=-1\ninput 8\nbatchmix\n")
    (layer,) = _own(traced)
    assert traced.warnings == () and layer.macs_at_sample
    real = module.BatchMix(8)
    assert layer.macs.value == flop_macs(real, torch.randn(2, 8))  # the trace's batch, 2
    path = f"{module.__name__}:BatchMix"
    assert own_classes(traced) == [(path, "symbolically, mult-adds at the sample")]


def test_the_summary_total_includes_the_class(layers: tuple[Path, Any]) -> None:
    folder, module = layers
    text = """
        use {m}:Gate infers in_channels=1
        input 3x8x8
        conv2d 4 3 p=1
        gate 6
        """
    _trace(folder, module, text)
    out = CliRunner().invoke(
        main, ["summary", "--format", "json", "--batch", "3", str(folder / "net.seq")]
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    conv = 4 * 3 * 9 * 64 + 4 * 64  # torchinfo's: weight and bias once per output position
    gate = flop_macs(module.Gate(4, 6), torch.randn(1, 4, 8, 8))
    assert gate == 64 * 4 * 12
    assert summary["totals"]["macs"] == 3 * (conv + gate)
    assert [r["macs"] for r in summary["layers"]] == [3 * conv, 3 * gate]
    path = f"{module.__name__}:Gate"
    assert summary["own_classes"] == {path: "symbolically, mult-adds exact"}


def test_the_example_counts_its_squeeze_excite() -> None:
    """generated_examples/custom_layer.seq: each SqueezeExcite counts FlopCounterMode's
    mult-adds (its two 1x1 convolutions on the channel means), in the rows and the total."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        _, traced = api.traced_spec(str(EXAMPLES / "custom_layer.seq"))
        from custom_layers import SqueezeExcite  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES))
    se = _own(traced)
    want = [
        flop_macs(SqueezeExcite(16, 4), torch.randn(1, 16, 32, 32)),
        flop_macs(SqueezeExcite(32), torch.randn(1, 32, 16, 16)),
    ]
    assert [n.macs.value for n in se] == want == [2 * 16 * 4, 2 * 32 * 8]
    assert se[0].macs.code == "2 * width * (width // 4)"
    assert totals(traced).macs == sum(n.macs.value for n in traced.layers)
    text = render_summary(traced)
    assert (
        text.splitlines()[-1] == "custom_layers:SqueezeExcite: traced symbolically, mult-adds exact"
    )
    assert "mult-adds (batch 1)                   1,631,210" in text
