"""`repeat depth:` loops against the same layers unrolled by hand in torch: a first pass that
changes the shape is built apart, a body that keeps the shape only for some values gets a check
of `__init__`, and loops sit beside named layers. Each generated model is built at several
depths and sizes; its state_dict is loaded into the hand-built model and both run on one input.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_generated_tests
from torch import nn

from seqgen.api import generate, load, options_for, trace_spec
from seqgen.errors import SeqgenError
from seqgen.project.write import write_files
from seqgen.report.rows import rows


def _generate(tmp_path: Path, text: str, name: str) -> tuple[Any, Any]:
    spec = tmp_path / f"{name}.seq"
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(
        f"_loops_{name}_{id(tmp_path)}", tmp_path / f"{name}.py"
    )
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return result, getattr(module, result.traced.spec.class_name)


def _same_as(model: nn.Module, reference: nn.Sequential, x: torch.Tensor) -> None:
    """The generated model is the hand-built one: the same state_dict keys and shapes (loaded
    strictly), the same parameter count, and the same output."""
    reference.load_state_dict(
        {k.removeprefix("model."): v for k, v in model.state_dict().items()}, strict=True
    )
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x))


FIRST_PASS = """model Widen(depth=2)
input 3x32
repeat depth:
    conv1d 11 1
    relu
flatten
linear 10
"""


def test_a_first_pass_that_changes_the_shape_is_built_apart(tmp_path: Path) -> None:
    result, Widen = _generate(tmp_path, FIRST_PASS, "widen")
    source = (tmp_path / "widen.py").read_text(encoding="utf-8")
    assert "for _ in range(depth - 1)" in source and "nn.Conv1d(3, 11, 1)" in source
    for depth in (1, 2, 5):
        passes = [nn.Sequential(nn.Conv1d(3, 11, 1), nn.ReLU())]
        passes += [nn.Sequential(nn.Conv1d(11, 11, 1), nn.ReLU()) for _ in range(depth - 1)]
        reference = nn.Sequential(*passes, nn.Flatten(), nn.Linear(11 * 32, 10))
        _same_as(Widen(depth=depth), reference, torch.randn(2, 3, 32))
    with pytest.raises(ValueError, match=r"^depth must be at least 1 \(the loop's first pass"):
        Widen(depth=0)
    # the summary's rows: the first pass, then the body once per later pass
    labels = [r.label for r in rows(result.traced) if r.depth == 1]
    assert labels == ["nn.Conv1d(3, 11, 1)", "nn.ReLU()", "nn.Conv1d(11, 11, 1)", "nn.ReLU()"]
    run_generated_tests(tmp_path / "test_widen.py")


WIDTH = """model Wide(h=16, depth=2)
input 3x8x8
repeat depth:
    conv2d h 3 p=1
flatten
linear 10
"""


@pytest.mark.parametrize(("h", "depth"), [(3, 1), (3, 3), (5, 2), (16, 1), (7, 4)])
def test_a_body_that_keeps_the_shape_only_at_some_widths(
    tmp_path: Path, h: int, depth: int
) -> None:
    """3 -> h, then h -> h: right at every h, h == 3 (the input's channels) included."""
    _, Wide = _generate(tmp_path, WIDTH, "wide")
    passes = [nn.Sequential(nn.Conv2d(3, h, 3, padding=1))]
    passes += [nn.Sequential(nn.Conv2d(h, h, 3, padding=1)) for _ in range(depth - 1)]
    reference = nn.Sequential(*passes, nn.Flatten(), nn.Linear(h * 64, 10))
    _same_as(Wide(h=h, depth=depth), reference, torch.randn(2, 3, 8, 8))


IN_A_BLOCK = """model Stages(depth=2)
input 3x8x8
block Stage(h, n=2):
    repeat n:
        conv2d h 3 p=1
        relu
Stage 16 n=depth
Stage 16 n=3
Stage 32
"""


def test_a_loop_in_a_block_traced_with_symbolic_in_channels(tmp_path: Path) -> None:
    """The block's input size is a symbol: the first pass (in_channels -> h) is built apart,
    so one class serves a use on 3 channels and one on h channels alike."""
    _, Stages = _generate(tmp_path, IN_A_BLOCK, "stages")

    def stage(cin: int, h: int, n: int) -> nn.Sequential:
        passes = [nn.Sequential(nn.Conv2d(cin, h, 3, padding=1), nn.ReLU())]
        passes += [nn.Sequential(nn.Conv2d(h, h, 3, padding=1), nn.ReLU()) for _ in range(n - 1)]
        return nn.Sequential(*passes)

    for depth in (1, 4):
        reference = nn.Sequential(stage(3, 16, depth), stage(16, 16, 3), stage(16, 32, 2))
        _same_as(Stages(depth=depth), reference, torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"^depth must be at least 1"):
        Stages(depth=0)


KERNEL = """model Kernel(depth=2, k=1)
input 11x32
repeat depth:
    conv1d 11 k
flatten
linear 4
"""


def test_later_passes_that_keep_the_shape_only_for_some_values_get_a_check(
    tmp_path: Path,
) -> None:
    """Length 32 -> 33 - k on the first pass, 34 - 2k on the second: a loop only at k == 1,
    and any k with one pass. The check says so, and refuses nothing that works."""
    _, Kernel = _generate(tmp_path, KERNEL, "kernel")
    source = (tmp_path / "kernel.py").read_text(encoding="utf-8")
    assert "if depth >= 2 and k != 1:" in source
    for depth, k in ((1, 1), (3, 1), (1, 2), (1, 7)):
        passes = [nn.Sequential(nn.Conv1d(11, 11, k))]
        passes += [nn.Sequential(nn.Conv1d(11, 11, k)) for _ in range(depth - 1)]
        reference = nn.Sequential(*passes, nn.Flatten(), nn.Linear(11 * (33 - k), 4))
        _same_as(Kernel(depth=depth, k=k), reference, torch.randn(2, 11, 32))
    with pytest.raises(ValueError, match=r"k must equal 1 \(the loop's later passes"):
        Kernel(depth=2, k=2)


NAMED = """model Named(depth=2)
input 3x8x8
conv2d 8 1 name=stem
repeat depth:
    conv2d 8 3 p=1
    relu
flatten
linear 10 name=head
"""


def test_names_on_top_level_layers_beside_a_loop(tmp_path: Path) -> None:
    """The loop is one entry of the OrderedDict, under its index: the keys after it do not move
    with depth."""
    _, Named = _generate(tmp_path, NAMED, "named")
    for depth in (1, 3):
        model = Named(depth=depth)
        keys = list(model.state_dict())
        assert keys[:2] == ["model.stem.weight", "model.stem.bias"]
        assert keys[-2:] == ["model.head.weight", "model.head.bias"]
        assert f"model.1.{depth - 1}.0.weight" in keys and f"model.1.{depth}.0.weight" not in keys
        assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    run_generated_tests(tmp_path / "test_named.py")


NAMED_ELSEWHERE = """model Elsewhere(depth=2)
input 8x8x8
block B(n=2):
    repeat n:
        conv2d 8 3 p=1
conv2d 8 1 name=stem
B n=depth
residual:
    repeat depth:
        conv2d 8 3 p=1
    relu
flatten
linear 3 name=head
"""


def test_names_beside_loops_in_a_block_and_a_merge(tmp_path: Path) -> None:
    _, Elsewhere = _generate(tmp_path, NAMED_ELSEWHERE, "elsewhere")
    for depth in (1, 4):
        model = Elsewhere(depth=depth)
        keys = list(model.state_dict())
        assert keys[0] == "model.stem.weight" and keys[-1] == "model.head.bias"
        conv = 8 * 8 * 9 + 8
        assert sum(p.numel() for p in model.parameters()) == 72 + 2 * depth * conv + 512 * 3 + 3
        assert model(torch.randn(2, 8, 8, 8)).shape == (2, 3)


def test_a_loop_alone_in_a_merge_branch_is_one_module(tmp_path: Path) -> None:
    """`residual:` around a lone loop: the branch is an nn.Sequential of the passes (not the
    passes spread over Residual's arguments)."""
    text = "model Res(depth=3)\ninput 8x4x4\nresidual:\n    repeat depth:\n        conv2d 8 3 p=1\n"
    _, Res = _generate(tmp_path, text, "res")
    model = Res(depth=3).eval()
    body = nn.Sequential(*[nn.Sequential(nn.Conv2d(8, 8, 3, padding=1)) for _ in range(3)])
    body.load_state_dict(
        {k.removeprefix("model.0.body."): v for k, v in model.state_dict().items()}
    )
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        assert torch.equal(model(x), body(x) + x)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (  # 3 -> 8 channels and 32 -> 16, then 16 -> 8: no loop
            "model M(depth=2)\ninput 3x32x32\nrepeat depth:\n    conv2d 8 3 p=1\n    maxpool2d 2\n",
            r"turns \(N, 3, 32, 32\) into \(N, 8, 16, 16\) on its first pass, then "
            r"\(N, 8, 16, 16\) into \(N, 8, 8, 8\)",
        ),
        (  # one pass works; the second, on 8 x 2, cannot: said where it is
            "model M(depth=1)\ninput 3x4\nrepeat depth:\n    conv1d 8 3\n",
            r"Conv1d gets input \(N, 8, 2\)",
        ),
    ],
)
def test_loops_that_cannot_be_written(tmp_path: Path, text: str, message: str) -> None:
    spec = tmp_path / "bad.seq"
    spec.write_text(text, encoding="utf-8")
    with pytest.raises(SeqgenError, match=message) as info:
        trace_spec(load(str(spec))[1])
    if "conv1d 8 3" in text:
        assert "on the second pass of `repeat depth:`" in str(info.value.diagnostic.hint)
