"""GoogLeNet with its two auxiliary classifiers, written with heads (issue 19's first reference).

tests/architectures/heads/googlenet_aux.seq is generated with seqgen's API and compared with
torchvision's own `googlenet(aux_logits=True, init_weights=False)` (the copy in
tests/architectures/torchvision_models/): the same parameter count at 10 and 1000 classes, the
same heads in the same order as torchvision's GoogLeNetOutputs, and, with the reference's weights
copied in, the same logits in eval mode and the same (logits, aux2, aux1) in training mode with
dropout off, at 224x224 (slow) and, with the input sizes made free, at 15x15, the smallest
input both accept; and (slow) the tests seqgen generates for it pass. (The spec lives in a
subfolder: tests/architectures/*.seq are the single-output specs that
tests/architectures/reference.py pairs one to one.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import run_generated_tests
from torch import nn

from seqgen.api import generate, options_for
from seqgen.project.write import write_files
from tests.architectures.torchvision_models.googlenet import googlenet

SPEC = Path(__file__).resolve().parent / "architectures" / "heads" / "googlenet_aux.seq"
HEADS = ("logits", "aux2", "aux1")


def _build(out: Path, text: str) -> tuple[list[Path], ModuleType]:
    spec = out / SPEC.name
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec), str(out)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(f"gen_{out.name}", result.files[0].path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return [Path(f.path) for f in result.files], module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], ModuleType]:
    """The spec as committed (input 3x224x224): its files and its imported model module."""
    return _build(tmp_path_factory.mktemp("googlenet_aux"), SPEC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def generated(built: tuple[list[Path], ModuleType]) -> ModuleType:
    return built[1]


@pytest.fixture(scope="module")
def any_size(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The same spec with free input sizes, `input (3, h=224, w=224)`: it takes any h, w from
    15 up, as torchvision does, so the weight-copied comparison runs fast at 15x15. (The
    committed spec keeps torchvision's 3x224x224; tests/test_export_dims.py checks the generated
    export test of a ceil_mode model with free sizes.)"""
    text = SPEC.read_text(encoding="utf-8")
    assert "\ninput 3x224x224\n" in text
    text = text.replace("\ninput 3x224x224\n", "\ninput (3, h=224, w=224)\n")
    return _build(tmp_path_factory.mktemp("googlenet_aux_any_size"), text)[1]


def _reference(num_classes: int) -> nn.Module:
    return googlenet(num_classes=num_classes, aux_logits=True, init_weights=False)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _copy_weights(reference: nn.Module, model: nn.Module) -> None:
    """Copy the reference's parameters and buffers into the generated model.

    Both register the trunk's layers in the same order; torchvision then registers aux1, aux2,
    fc, the generated model logits (the fc), aux2, aux1 (head order). So the reference's entries
    are put in that order and paired with the generated ones one to one, shapes checked."""
    ref = reference.state_dict()

    def group(key: str) -> int:
        head = key.split(".", 1)[0]
        return {"fc": 1, "aux2": 2, "aux1": 3}.get(head, 0)

    ref_keys = sorted(ref, key=group)  # sorted is stable: the order inside each group is kept
    ours = model.state_dict()
    assert len(ref_keys) == len(ours)
    mapped = {}
    for ref_key, (key, value) in zip(ref_keys, ours.items(), strict=True):
        assert ref[ref_key].shape == value.shape, (ref_key, key)
        mapped[key] = ref[ref_key]
    model.load_state_dict(mapped)


def _dropout_off(model: nn.Module) -> nn.Module:
    """Training mode (BatchNorm on batch statistics, aux heads on), every Dropout off."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


@pytest.mark.parametrize("num_classes, expected", [(10, 9_960_638), (1000, 13_004_888), (37, None)])
def test_parameter_count_equals_torchvisions(
    generated: ModuleType, num_classes: int, expected: int | None
) -> None:
    reference = _reference(num_classes)
    if expected is not None:  # torchvision's documented 13,004,888 at 1000 classes
        assert _count(reference) == expected
    assert _count(generated.GoogLeNetAux(num_classes=num_classes)) == _count(reference)


def test_heads_are_torchvisions_outputs_in_order(generated: ModuleType) -> None:
    from tests.architectures.torchvision_models.googlenet import GoogLeNetOutputs

    assert generated.GoogLeNetAuxOutput._fields == HEADS
    assert GoogLeNetOutputs._fields == ("logits", "aux_logits2", "aux_logits1")
    model = generated.GoogLeNetAux(num_classes=10)
    assert [name for name, _ in model.named_children()] == [
        "inception4a",
        "inception4d",
        "trunk",
        *HEADS,
    ]
    # the dropout rates, which the weight-copied comparison (dropout off) cannot see
    reference = _reference(10)
    theirs = {"logits": reference.dropout, "aux2": reference.aux2.dropout}
    theirs["aux1"] = reference.aux1.dropout
    for head, dropout in theirs.items():
        ours = [m.p for m in getattr(model, head).modules() if isinstance(m, nn.Dropout)]
        assert ours == [dropout.p], head
    assert not any(isinstance(m, nn.Dropout) for m in model.trunk.modules())


@pytest.mark.parametrize(
    "which, size",
    [
        pytest.param("generated", 224, marks=pytest.mark.slow),
        ("any_size", 15),
        ("any_size", (15, 40)),
    ],
)
def test_output_shapes_in_train_and_eval_mode(
    request: pytest.FixtureRequest, which: str, size: int | tuple[int, int]
) -> None:
    generated = request.getfixturevalue(which)
    torch.manual_seed(0)
    model = generated.GoogLeNetAux(num_classes=10)
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        train = model.train()(x)
        evaluated = model.eval()(x)
    assert [tuple(t.shape) for t in train] == [(2, 10)] * 3
    assert tuple(evaluated.logits.shape) == (2, 10)
    assert evaluated.aux2 is None and evaluated.aux1 is None


def test_both_refuse_an_input_below_15(any_size: ModuleType) -> None:
    x = torch.randn(2, 3, 14, 14)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        _reference(10).eval()(x)
    with pytest.raises(ValueError, match=r"h \(dim 2\) must be at least 15"):
        any_size.GoogLeNetAux(num_classes=10).eval()(x)


@pytest.mark.parametrize(
    "which, num_classes, size",
    [
        pytest.param("generated", 10, 224, marks=pytest.mark.slow),
        pytest.param("generated", 1000, 224, marks=pytest.mark.slow),
        ("any_size", 10, 15),
        ("any_size", 1000, 32),
    ],
)
def test_same_outputs_as_torchvision_with_its_weights(
    request: pytest.FixtureRequest, which: str, num_classes: int, size: int
) -> None:
    generated = request.getfixturevalue(which)
    torch.manual_seed(0)
    reference = _reference(num_classes)
    # init_weights=False leaves BatchNorm at weight 1, bias 0, running stats 0 / 1: make them
    # differ per channel so that a BatchNorm copied to the wrong place shows.
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model = generated.GoogLeNetAux(num_classes=num_classes)
    _copy_weights(reference, model)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference.eval()(x)
        got = model.eval()(x)
        assert isinstance(expected, torch.Tensor)  # torchvision: logits only in eval mode
        assert got.aux2 is None and got.aux1 is None
        assert torch.allclose(got.logits, expected, atol=1e-5)

        expected_train = _dropout_off(reference)(x)
        got_train = _dropout_off(model)(x)
    assert len(expected_train) == len(got_train) == 3
    for name, ours, theirs in zip(HEADS, got_train, expected_train, strict=True):
        assert ours.shape == theirs.shape == (2, num_classes), name
        assert torch.allclose(ours, theirs, atol=1e-5), name


@pytest.mark.slow
def test_generated_tests_pass(built: tuple[list[Path], ModuleType]) -> None:
    files, _ = built
    run_generated_tests(*[f for f in files if f.name.startswith("test_")])
