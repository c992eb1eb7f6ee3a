"""`seqgen import` on torchvision's own model code (tests/architectures/torchvision_models/, copied
from pytorch/vision because torchvision cannot be installed here).

Each model round-trips: import -> spec -> generate -> the parameter count torchvision documents
(at num_classes=1000, counted on the original module), the same count and output shape for the
generated model, the original's weights loaded through the key mapping (strict), and the same
outputs in eval mode.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from test_import import _generated, _randomize

from seqgen.api import import_model
from seqgen.importer import remap

PACKAGE = "tests.architectures.torchvision_models"
GOOGLENET = {"aux_logits": False, "init_weights": False}


def _build(module: str, factory: str, **kwargs: object) -> torch.nn.Module:
    model: torch.nn.Module = getattr(importlib.import_module(f"{PACKAGE}.{module}"), factory)(
        **kwargs
    )
    return model


def round_trip(
    module: str, factory: str, shape: tuple[int, ...], tmp_path: Path, **kwargs: object
) -> tuple[object, torch.nn.Module]:
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
    return result, generated


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
    ("mobilenetv2", "mobilenet_v2", {"num_classes": 10}, (3, 32, 32), 55, 2, True),
    ("densenet", "densenet121", {"num_classes": 10}, (3, 32, 32), 57, 1, True),
    ("googlenet", "googlenet", {"num_classes": 10, **GOOGLENET}, (3, 32, 32), 43, 2, True),
    ("efficientnet", "efficientnet_b0", {"num_classes": 10}, (3, 32, 32), 68, 3, True),
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
    result, _ = round_trip(module, factory, shape, tmp_path, **kwargs)
    assert (len(result.spec_text.splitlines()), result.blocks) == (lines, blocks)  # type: ignore[attr-defined]
