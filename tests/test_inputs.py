"""A generated forward checks its input before any layer runs (issue #16, item 5): the rank, each
fixed size, a size a constructor argument sets, and the rules of the named sizes that only
forward sees, each refused with a ValueError that names the dim, the rule and the value."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import EXAMPLES, isolated_imports

from seqgen.api import generate, options_for
from seqgen.project.write import write_files


def _module(tmp_path: Path, text: str, name: str = "model") -> ModuleType:
    spec = tmp_path / f"{name}.seq"
    spec.write_text(text)
    result = generate(str(spec), options_for(str(spec), str(tmp_path)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(f"inputs_{name}", result.files[0].path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_a_vit_refuses_an_image_of_the_wrong_size_before_any_layer() -> None:
    """The issue's example: 64x64 into a ViT for 32x32 was `The size of tensor a (257) must
    match the size of tensor b (65)` from inside torch."""
    with isolated_imports(EXAMPLES, first_on_path=EXAMPLES):
        from tiny_vit import TinyViT

        model = TinyViT().eval()
        with pytest.raises(ValueError, match=r"^input dim 2 must be 32, got 64$"):
            model(torch.randn(1, 3, 64, 64))
        with pytest.raises(
            ValueError, match=r"expected a 4-d input \(N, 3, 32, 32\), got \[3, 32, 32\]"
        ):
            model(torch.randn(3, 32, 32))
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_named_sizes_are_checked_against_their_rules() -> None:
    with isolated_imports(EXAMPLES, first_on_path=EXAMPLES):
        from unet_small import UNetSmall

        model = UNetSmall().eval()
        with pytest.raises(ValueError, match=r"^h \(dim 2\) must be a multiple of 4 .*got h=62$"):
            model(torch.randn(1, 3, 62, 64))
        with pytest.raises(ValueError, match=r"^w \(dim 3\) must be a multiple of 4 .*got w=2$"):
            model(torch.randn(1, 3, 64, 2))
        assert model(torch.randn(1, 3, 8, 12)).shape == (1, 2, 8, 12)


def test_a_size_set_by_an_argument_is_checked_against_the_stored_argument() -> None:
    with isolated_imports(EXAMPLES, first_on_path=EXAMPLES):
        from variable_input import VariableInputNetwork

        model = VariableInputNetwork(seq_len=40).eval()
        assert model.seq_len == 40
        with pytest.raises(
            ValueError, match=r"input dim 2 must be seq_len, got 28 while seq_len=40"
        ):
            model(torch.randn(1, 1, 28))
        assert model(torch.randn(1, 1, 40)).shape == (1, 10)


def test_an_argument_named_like_a_module_attribute_is_stored_under_another_name(
    tmp_path: Path,
) -> None:
    module = _module(tmp_path, "model M\ninput (training=8)\nlinear 4\n")
    model = module.M(training=6)
    assert model.training is True and model.training_size == 6
    with pytest.raises(ValueError, match="input dim 1 must be training, got 8 while training=6"):
        model(torch.randn(2, 8))
    assert model.eval()(torch.randn(2, 6)).shape == (2, 4)


def test_a_block_class_is_not_checked_but_the_model_is(tmp_path: Path) -> None:
    text = "input 3x8x8\nblock B(out):\n    conv2d out k=3 p=1\nB 4\n"
    module = _module(tmp_path, text, "blocky")
    source = Path(module.__file__).read_text()
    block_class = source.split("class B(")[1].split("class Blocky")[0]
    assert block_class.startswith("nn.Sequential)") and "def forward" not in block_class
    with pytest.raises(ValueError, match="input dim 1 must be 3, got 5"):
        module.Blocky()(torch.randn(1, 5, 8, 8))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_the_checks_keep_a_scriptable_model_scriptable() -> None:
    """`list(x.shape)`, not `tuple(...)`, in the rank message: TorchScript cannot size a tuple
    built from a list. A scripted model raises torch.jit.Error carrying the ValueError."""
    with isolated_imports(EXAMPLES, first_on_path=EXAMPLES):
        from cnn import CNN

        scripted = torch.jit.script(CNN().eval())
        with pytest.raises(torch.jit.Error, match="ValueError: input dim 2 must be 32, got 64"):
            scripted(torch.randn(1, 3, 64, 64))
        with pytest.raises(torch.jit.Error, match=r"got \[3, 32, 32\]"):
            scripted(torch.randn(3, 32, 32))


def test_the_checks_do_not_stop_torch_export() -> None:
    """With a dynamic batch the checks read only static sizes, so export specialises them away
    (the exported program's own input guards then refuse a wrong size)."""
    with isolated_imports(EXAMPLES, first_on_path=EXAMPLES):
        from unet_small import UNetSmall

        model = UNetSmall().eval()
        batch = torch.export.Dim("batch", min=1, max=8)
        x = torch.randn(2, 3, 16, 16)
        program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
        assert program.module()(torch.randn(3, 3, 16, 16)).shape == (3, 2, 16, 16)
