"""`seqgen import` on torchvision's own model code (tests/architectures/torchvision_models/, copied
from pytorch/vision because torchvision cannot be installed here).

Each model round-trips: import -> spec -> generate -> the parameter count torchvision documents
(at num_classes=1000, counted on the original module), the same count and output shape for the
generated model, the original's weights loaded through the key mapping (strict), and the same
outputs in eval mode.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import ROOT
from test_import import _generated, _randomize

from seqgen.api import Imported, import_model
from seqgen.cli import main
from seqgen.importer import ImportRefused, remap

PACKAGE = "tests.architectures.torchvision_models"
GOOGLENET = {"aux_logits": False, "init_weights": False}


def _build(module: str, factory: str, **kwargs: object) -> torch.nn.Module:
    model: torch.nn.Module = getattr(importlib.import_module(f"{PACKAGE}.{module}"), factory)(
        **kwargs
    )
    return model


def round_trip(
    module: str, factory: str, shape: tuple[int, ...], tmp_path: Path, **kwargs: object
) -> Imported:
    """Import PACKAGE.module:factory with `kwargs` as `--arg`s, generate its spec, load the
    original's weights through the mapping and compare outputs in eval mode."""
    pairs = tuple(f"{k}={v!r}" for k, v in kwargs.items())
    spec = tmp_path / f"{factory}.seq"
    result = import_model(
        f"{PACKAGE}.{module}:{factory}", "x".join(map(str, shape)), str(spec), pairs
    )
    generated = _generated(result.spec_text, tmp_path, factory)
    torch.manual_seed(0)
    original = _build(module, factory, **kwargs)
    count = sum(p.numel() for p in original.parameters())
    assert sum(p.numel() for p in generated.parameters()) == count == result.total_params
    _randomize(original)
    keys = tmp_path / f"{factory}.keys.json"
    keys.write_text(result.keys_text, encoding="utf-8")
    generated.load_state_dict(remap(original.state_dict(), keys))  # strict: every key
    original.eval(), generated.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        want, got = original(x), generated(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    return result


# torchvision's documented parameter counts (the `num_params` of each model's weights enum)
DOCUMENTED = [
    ("resnet", "resnet18", {}, 11_689_512),
    ("resnet", "resnet50", {}, 25_557_032),
    ("vgg", "vgg11", {}, 132_863_336),
    ("mobilenetv2", "mobilenet_v2", {}, 3_504_872),
    ("densenet", "densenet121", {}, 7_978_856),
    ("squeezenet", "squeezenet1_1", {}, 1_235_496),
    ("googlenet", "googlenet", GOOGLENET, 6_624_904),
    ("efficientnet", "efficientnet_b0", {}, 5_288_548),
]


@pytest.mark.parametrize(
    "module, factory, kwargs, count", DOCUMENTED, ids=[d[1] for d in DOCUMENTED]
)
def test_copies_have_torchvisions_documented_parameter_counts(
    module: str, factory: str, kwargs: dict[str, object], count: int
) -> None:
    """The copies are torchvision's models: at 1000 classes, torchvision's documented counts."""
    model = _build(module, factory, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == count


# (module, factory, --arg keywords, input, spec lines, blocks, slow): line counts are the report's
ROUND_TRIPS = [
    ("squeezenet", "squeezenet1_1", {"num_classes": 10}, (3, 64, 64), 33, 1, False),
    ("resnet", "resnet18", {"num_classes": 10}, (3, 32, 32), 37, 2, True),
    ("resnet", "resnet50", {"num_classes": 10}, (3, 32, 32), 50, 2, True),
    ("vgg", "vgg11", {"num_classes": 10}, (3, 32, 32), 26, 0, True),
    ("mobilenetv2", "mobilenet_v2", {"num_classes": 10}, (3, 32, 32), 46, 3, True),
    ("densenet", "densenet121", {"num_classes": 10}, (3, 32, 32), 54, 2, True),
    ("googlenet", "googlenet", {"num_classes": 10, **GOOGLENET}, (3, 32, 32), 43, 2, True),
    ("efficientnet", "efficientnet_b0", {"num_classes": 10}, (3, 32, 32), 60, 5, True),
]


@pytest.mark.parametrize(
    "module, factory, kwargs, shape, lines, blocks",
    [
        pytest.param(m, f, k, s, n, b, id=f, marks=[pytest.mark.slow] if slow else [])
        for m, f, k, s, n, b, slow in ROUND_TRIPS
    ],
)
def test_torchvision_models_round_trip(
    module: str,
    factory: str,
    kwargs: dict[str, object],
    shape: tuple[int, ...],
    lines: int,
    blocks: int,
    tmp_path: Path,
) -> None:
    result = round_trip(module, factory, shape, tmp_path, **kwargs)
    assert (len(result.spec_text.splitlines()), result.blocks) == (lines, blocks)


def tiny_dense() -> torch.nn.Module:
    """torchvision's own _DenseBlock and _Transition at small sizes, with dropout in the layers."""
    from tests.architectures.torchvision_models.densenet import _DenseBlock, _Transition

    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
        _DenseBlock(3, 8, bn_size=2, growth_rate=4, drop_rate=0.1),
        _Transition(20, 10),
        _DenseBlock(2, 10, bn_size=2, growth_rate=4, drop_rate=0.1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(18, 5),
    )


def test_dense_layers_called_with_a_list_become_concat_chains(tmp_path: Path) -> None:
    """_DenseBlock calls each _DenseLayer on the list of all features so far, which the layer
    concatenates: the spec writes [x, layer(x)] once per layer, the layers as one block."""
    result = import_model(
        "tests.test_import_torchvision:tiny_dense", "3x8x8", str(tmp_path / "d.seq")
    )
    text = result.spec_text
    assert "\nblock DenseLayer:\n" in text and "DenseLayer2" not in text
    assert text.count("    concat:\n        branch:\n            identity\n        branch:\n") == 2
    assert "repeat 3:" in text and "repeat 2:" in text
    assert "dropout 0.1" in text  # F.dropout(..., training=self.training) in training mode
    generated = _generated(text, tmp_path, "d")
    torch.manual_seed(0)
    original = tiny_dense()
    _randomize(original)
    keys = tmp_path / "d.keys.json"
    keys.write_text(result.keys_text, encoding="utf-8")
    generated.load_state_dict(remap(original.state_dict(), keys))
    original.eval(), generated.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(generated(x), original(x), atol=1e-5)


class _FirstOfList(torch.nn.Module):
    """Takes a list of tensors but does not concatenate it: no spec equivalent."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(xs[0])


class _ListCaller(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.inner = _FirstOfList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.inner([y, x])


def test_a_list_argument_not_concatenated_is_refused_where_it_is_read(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused) as refused:
        import_model("tests.test_import_torchvision:_ListCaller", "3x4x4", str(tmp_path / "l.seq"))
    message = refused.value.diagnostic.message
    assert "test_import_torchvision.py:" in message and "_ListCaller" in message, message
    assert "`inner` is called with a list of tensors" in message


class _Depth(torch.nn.Module):
    """A residual with torchvision's StochasticDepth at p (training mode: rows dropped)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        from tests.architectures.torchvision_models.ops import StochasticDepth

        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.depth = StochasticDepth(p, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.depth(self.conv(x))


def test_stochastic_depth_that_keeps_every_row_is_the_identity(tmp_path: Path) -> None:
    """p=0: the identity in training mode too, read with torch.fx alone; p>0: read in eval mode,
    where it is the identity, and the spec's header says so."""
    off = import_model("tests.test_import_torchvision:_Depth", "3x4x4", str(tmp_path / "a.seq"))
    assert off.how == "torch.fx"
    assert off.spec_text.endswith("\nresidual:\n    conv2d 3 k=3 p=1 name=conv\n")
    on = import_model(
        "tests.test_import_torchvision:_Depth", "3x4x4", str(tmp_path / "b.seq"), ("p=0.2",)
    )
    assert "in eval mode" in on.spec_text.splitlines()[0]
    assert "`depth` read with torch.fx in eval mode" in on.how
    assert "`stochastic_depth` (call_function) has no spec equivalent" in on.how


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_table_is_the_round_trips() -> None:
    """Each row of the README's torchvision table has the line and block counts tested above."""
    rows = re.findall(r"^\| `(\w+):(\w+)`[^|]*\| (\d+) \| (\d+) \|$", _readme(), re.MULTILINE)
    assert sorted(rows) == sorted((m, f, str(n), str(b)) for m, f, _, _, n, b, _ in ROUND_TRIPS)


@pytest.mark.slow
def test_the_readme_densenet_example_is_what_import_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    match = re.search(r"<!-- tested: import_torchvision -->\n```\w*\n(.*?)```", _readme(), re.S)
    assert match is not None
    command, printed = match.group(1).split("\n", 1)
    args = shlex.split(command)[2:]  # after `$ seqgen`
    monkeypatch.chdir(ROOT)
    out = args.index("-o") + 1
    args[out] = str(tmp_path / args[out])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.replace(f"{tmp_path}/", "") == printed


@pytest.mark.parametrize(
    "module, factory, kwargs, count",
    [
        pytest.param(m, f, k, c, id=f, marks=[] if f == "squeezenet1_1" else [pytest.mark.slow])
        for m, f, k, c in DOCUMENTED
        if f != "vgg11"  # 133M parameters: its count is checked on the module above
    ],
)
def test_imports_at_1000_classes_have_torchvisions_documented_counts(
    module: str, factory: str, kwargs: dict[str, object], count: int, tmp_path: Path
) -> None:
    """The whole round trip at torchvision's defaults: the generated model has the documented
    parameter count, and computes the same outputs with the original's weights."""
    shape = (3, 64, 64) if factory == "squeezenet1_1" else (3, 32, 32)
    result = round_trip(module, factory, shape, tmp_path, **kwargs)
    assert result.total_params == count
    assert "model " in result.spec_text and "(num_classes=1000)" in result.spec_text


@pytest.mark.slow
def test_googlenet_with_its_auxiliary_heads_is_refused_at_the_head(tmp_path: Path) -> None:
    """GoogLeNet's default aux_logits=True builds heads its eval forward never runs: they have
    no place in a spec, and the refusal names the head and its class's source line."""
    with pytest.raises(ImportRefused) as refused:
        import_model(
            f"{PACKAGE}.googlenet:googlenet",
            "3x32x32",
            str(tmp_path / "g.seq"),
            ("num_classes=10", "init_weights=False"),
        )
    message = refused.value.diagnostic.message
    assert re.match(
        r".*googlenet\.py:\d+: InceptionAux \(`aux1`\): the original's `aux1\.", message
    )
