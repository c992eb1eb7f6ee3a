"""The reference models behind tests/architectures/*.seq build, run, and have the parameter count
and output shape their spec's header documents. (The comparison with the generated models is in
tests/test_architectures.py.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
SPECS = sorted(HERE.glob("*.seq"))


def _reference():
    """tests/architectures/reference.py, imported once under one name (test_architectures.py
    loads it the same way)."""
    name = "seqgen_architecture_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "reference.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


reference = _reference()


def test_every_spec_has_a_reference_and_every_reference_a_spec() -> None:
    assert sorted(p.name for p in SPECS) == sorted(reference.REFERENCES)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_reference_matches_the_spec_header(spec: Path) -> None:
    doc = reference.documented(spec)
    factory, input_shape = reference.REFERENCES[spec.name]
    assert factory.__name__ == doc.factory
    torch.manual_seed(0)
    model = factory().eval()
    assert sum(p.numel() for p in model.parameters()) == doc.params
    with torch.no_grad():
        out = model(torch.randn(2, *input_shape))
    assert tuple(out.shape) == doc.output_shape(2)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_spec_input_line_matches_the_reference_input(spec: Path) -> None:
    """The `input` line gives the sizes the reference runs at (checked on the spec's text)."""
    _, input_shape = reference.REFERENCES[spec.name]
    line = next(s for s in spec.read_text(encoding="utf-8").splitlines() if s.startswith("input "))
    text = line.split("#", 1)[0][len("input ") :].strip()
    if text.startswith("("):
        sizes = tuple(int(d.split("=")[-1]) for d in text.strip("()").split(","))
    else:
        sizes = tuple(int(d) for d in text.split("x"))
    assert sizes == input_shape


@pytest.mark.parametrize(
    "name, count",
    [
        # torchvision's documented counts at 1000 classes, less (1000 - 10) * (features + 1)
        ("resnet18", 11_689_512 - 990 * 513),
        ("resnet50", 25_557_032 - 990 * 2049),
        ("mobilenet_v2", 3_504_872 - 990 * 1281),
        ("densenet121", 7_978_856 - 990 * 1025),
        ("googlenet", 6_624_904 - 990 * 1025),
        ("squeezenet1_1", 1_235_496 - 990 * 513),
        ("efficientnet_b0", 5_288_548 - 990 * 1281),
    ],
)
def test_torchvision_equivalents_have_torchvision_parameter_counts(name: str, count: int) -> None:
    model = getattr(reference, name)()
    assert sum(p.numel() for p in model.parameters()) == count
