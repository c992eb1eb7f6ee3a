"""`seqgen summary` numbers equal torchinfo's on the same models, computed without allocating.

This is the one place torchinfo is compared with (blocks and merges: the inception and
resnet_block examples); each spec is generated once, at batch 1 and 4. All but `cnn` are slow.
One difference is on purpose: a transformer layer's mult-adds are its matmuls (torchinfo counts
its leaves' parameters once per sample, the attention not at all); they are compared with
torch's own FlopCounterMode instead.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torchinfo  # a hard import: CI must fail, not skip, when the [dev] extra is incomplete
from click.testing import CliRunner
from conftest import EXAMPLES

from seqgen.api import generate, options_for
from seqgen.cli import main
from seqgen.layers.ops.transformer import transformer_encoder_layer_macs
from seqgen.report.summary import totals

GOLDEN = Path(__file__).resolve().parent / "golden"
SPECS = {
    "cnn": EXAMPLES / "cnn.seq",
    "inception": EXAMPLES / "inception.seq",  # blocks, concat
    "resnet_block": EXAMPLES / "resnet_block.seq",  # blocks, residual with a shortcut
    "simple_classifier": EXAMPLES / "simple_classifier.seq",
    "variable_input": EXAMPLES / "variable_input.seq",
    "vgg_block": GOLDEN / "vgg_block" / "vgg_block.seq",
    "norms": None,
    "text_lstm": EXAMPLES / "text_lstm.seq",
    "tiny_vit": EXAMPLES / "tiny_vit.seq",
    "text_cnn": EXAMPLES / "text_cnn.seq",
    "time_series": EXAMPLES / "time_series.seq",
    "sequence_ops": None,
}
NORMS = (
    "input 3x16x16\nconv2d 8 3 p=1 bias=False\nbatchnorm2d\ngroupnorm 2\nconvtranspose2d 4 2 s=2\n"
    "layernorm\nflatten\nlinear 6\nprelu\n"
)

# weight_norm'd convs in a residual (a TCN), a GRU, the position layers and the tensor ops
SEQUENCE_OPS = (
    "model Ops(c=8)\ninput (3, steps=20)\nconv1d c 3 p=1 weight_norm=True\nrelu\n"
    "residual:\n    conv1d c 3 p=2 d=2 weight_norm=True\n    relu\ntranspose 1 2\n"
    "cls_token\npos_embedding\npos_encoding max_len=64\nscale 2.0\n"
    "gru 6 bidirectional=True take=last\nunsqueeze 1\nsum 1\n"
    "linear 2 weight_norm=True\n"
)
INLINE = {"norms": NORMS, "sequence_ops": SEQUENCE_OPS}
# where seqgen's mult-adds differ from torchinfo's on purpose: the transformer layers of a spec,
# as (how many, L, E, F) at its sample input and defaults
TRANSFORMERS = {"tiny_vit": (3, 65, 64, 128)}


def _torchinfo_transformer(d: int, f: int) -> int:
    """torchinfo's mult-adds for nn.TransformerEncoderLayer (with bias), per sample: its leaves'
    parameters once (linear1, linear2, norm1, norm2); attention's weights sit in a module with a
    child, and the sequence length is not counted."""
    return 2 * d * f + f + 5 * d


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"summary_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize(
    "name", [n if n == "cnn" else pytest.param(n, marks=pytest.mark.slow) for n in sorted(SPECS)]
)
def test_totals_match_torchinfo(name: str, tmp_path: Path) -> None:
    spec = SPECS[name]
    if spec is None:
        spec = tmp_path / f"{name}.seq"
        spec.write_text(INLINE[name])
    result = generate(str(spec), options_for(str(spec), str(tmp_path)))
    from seqgen.project.write import write_files

    write_files(list(result.files))
    traced = result.traced
    model_cls = getattr(_module(Path(result.files[0].path)), traced.spec.class_name)
    tokens = {"dtypes": [torch.long]} if traced.spec.input_dtype == "long" else {}
    for batch in (1, 4):
        shape = (batch, *(d.value for d in traced.input_shape[1:]))
        info = torchinfo.summary(model_cls(), input_size=shape, verbose=0, device="cpu", **tokens)
        ours = totals(traced, batch)
        assert ours.params == info.total_params, batch
        assert ours.trainable == info.trainable_params, batch
        extra = 0
        if name in TRANSFORMERS:
            layers, length, d, f = TRANSFORMERS[name]
            extra = layers * (
                transformer_encoder_layer_macs(length, d, f) - _torchinfo_transformer(d, f)
            )
        assert ours.macs == info.total_mult_adds + batch * extra, batch
        assert ours.forward_backward_bytes == info.total_output_bytes, batch
        assert ours.param_bytes == info.total_param_bytes, batch


@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_summary_formats(fmt: str) -> None:
    result = CliRunner().invoke(
        main, ["summary", str(EXAMPLES / "cnn.seq"), "--format", fmt, "--batch", "2"]
    )
    assert result.exit_code == 0, result.output
    if fmt == "json":
        data = json.loads(result.output)
        assert data["totals"]["params"] == 268650 and data["totals"]["macs"] == 3820308
        assert data["layers"][7]["layer"] == "nn.Linear(32 * 8 * 8, 128)"
    else:
        assert "3,820,308" in result.output and "nn.Linear(32 * 8 * 8, 128)" in result.output


def test_summary_shows_sample_sizes_beside_symbolic_dims() -> None:
    result = CliRunner().invoke(main, ["summary", str(EXAMPLES / "variable_input.seq")])
    assert result.exit_code == 0, result.output
    assert "input (N, 1, seq_len [28])" in result.output
    assert "(N, 16, seq_len - 2 [26])" in result.output
    data = json.loads(
        CliRunner()
        .invoke(
            main,
            ["summary", str(EXAMPLES / "variable_input.seq"), "--format", "json", "--batch", "3"],
        )
        .output
    )
    assert data["layers"][0]["output_size"] == [3, 16, 26]


@pytest.mark.parametrize(
    ("length", "d", "heads", "f", "options"),
    [
        (5, 16, 4, 32, ""),
        (7, 24, 3, 40, " bias=False norm_first=True activation='gelu'"),
        (1, 8, 1, 8, ""),
    ],
)
def test_transformer_mult_adds_are_its_matmuls(
    length: int, d: int, heads: int, f: int, options: str, tmp_path: Path
) -> None:
    """A transformer layer's mult-adds equal torch's FlopCounterMode (flops / 2) on the real
    layer: L (4 E^2 + 2 E F) + 2 L^2 E, here at a symbolic sequence length too. (torch's fused
    CPU attention kernel is not counted by FlopCounterMode, so its math kernel runs.)"""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from seqgen.api import load, trace_spec
    from seqgen.safe_eval import evaluate_source

    spec = tmp_path / "t.seq"
    spec.write_text(
        f"input (seq_len={length}, {d})\n"
        f"transformerencoderlayer nhead={heads} dim_feedforward={f} dropout=0.0{options}\n",
        encoding="utf-8",
    )
    layer_macs = trace_spec(load(str(spec))[1]).layers[0].macs
    bias, norm_first = "bias=False" not in options, "norm_first=True" in options
    activation = "gelu" if "gelu" in options else "relu"
    for n in (length, length + 1, 3 * length + 2):
        layer = torch.nn.TransformerEncoderLayer(
            d, heads, f, 0.0, activation, batch_first=True, norm_first=norm_first, bias=bias
        ).train()
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            layer(torch.randn(1, n, d))
        flops = counter.get_total_flops()
        assert evaluate_source(layer_macs.code, {"seq_len": n}) * 2 == flops, n
        assert transformer_encoder_layer_macs(n, d, f) * 2 == flops
