"""`subtract:` (exactly two branches, the first's output minus the second's, broadcasting as
`add:` does) and `abs`: together an L1 distance, as Koch et al.'s siamese network compares its
two embeddings (tests/test_multi_corpus.py has that network against a hand-written reference).

The runtime class against torch, the parser's arity error, the broadcasting rule's located
error, and generated models, the merge nested (the `Subtract` helper) and split (a branch that
reads another input, shared weights), against torch by hand at other parameter values.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import generated_module
from torch import nn

from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.runtime.merges import Subtract
from seqgen.runtime.sequence import Abs
from seqgen.trace.model import trace


def _generate(tmp_path: Path, text: str, name: str) -> tuple[str, ModuleType]:
    files, module = generated_module(tmp_path, text, name, "subtract")
    return files[0].read_text(), module


def test_runtime_subtract_and_abs_are_torchs() -> None:
    a, b = nn.Linear(3, 4), nn.Linear(3, 1)  # (N, 4) - (N, 1) broadcasts
    x = torch.randn(5, 3)
    with torch.no_grad():
        assert torch.equal(Subtract(a, b)(x), a(x) - b(x))
        assert torch.equal(Subtract({"left": a, "right": b})(x), a(x) - b(x))
        assert torch.equal(Abs()(x), x.abs())
    with pytest.raises(ValueError, match="Subtract takes two branches, got 3"):
        Subtract(a, b, a)


@pytest.mark.parametrize("branches", [1, 3])
def test_subtract_takes_exactly_two_branches(branches: int) -> None:
    body = "".join("    branch:\n        linear 4\n" for _ in range(branches))
    with pytest.raises(SeqgenError) as info:
        parse(f"input (3,)\nsubtract:\n{body}")
    rendered = info.value.render()
    assert f"`subtract:` takes exactly 2 `branch:` stacks, found {branches}" in rendered
    assert "it gives branch 1 minus branch 2" in rendered


def test_branches_that_do_not_broadcast_are_a_located_error() -> None:
    text = "input (3,)\nsubtract:\n    branch:\n        linear 4\n    branch:\n        linear 2\n"
    with pytest.raises(SeqgenError) as info:
        trace(parse(text))
    rendered = info.value.render()
    assert "<spec>:2:" in rendered and "subtract" in rendered
    assert "(N, 4)" in rendered and "(N, 2)" in rendered


def test_a_nested_subtract_is_the_helper_and_equals_torch(tmp_path: Path) -> None:
    text = (
        "model D(c=4)\ninput (6,)\nresidual:\n    subtract:\n        branch:\n"
        "            linear c\n            linear 6\n        branch:\n            identity\n"
        "    abs\nlinear 2\n"
    )
    code, module = _generate(tmp_path, text, "nested")
    assert "Subtract(" in code and "Abs()" in code
    x = torch.randn(3, 6)
    for c in (4, 1, 9):
        model = module.D(c=c).eval()
        (residual, head) = model.model
        body = residual.body if hasattr(residual, "body") else residual.branches["0"]
        sub, _ = body
        first = sub.branches["0"]
        with torch.no_grad():
            expected = head((first(x) - x).abs() + x)
            torch.testing.assert_close(model(x), expected)


def test_a_siamese_l1_distance_splits_into_one_subtraction(tmp_path: Path) -> None:
    text = (
        "model S(dim=8)\ninput left (5,)\ninput right (5,)\nsubtract name=towers:\n"
        "    branch name=left:\n        linear dim\n        relu\n"
        "    branch name=right from=right shares=left:\nabs\nlinear 1\n"
    )
    code, module = _generate(tmp_path, text, "siamese")
    assert "x: torch.Tensor = self.towers_left(left) - self.towers_left(right)" in code
    left, right = torch.randn(4, 5), torch.randn(4, 5)
    for dim in (8, 3):
        model = module.S(dim=dim).eval()
        assert sum(p.numel() for p in model.parameters()) == 6 * dim + dim + 1
        with torch.no_grad():
            tower = model.towers_left
            expected = model.trunk_0((tower(left) - tower(right)).abs())
            torch.testing.assert_close(model(left, right), expected)
            # the distance is symmetric: swapping the inputs changes nothing
            torch.testing.assert_close(model(right, left), expected)
