"""`add:` and `multiply:` broadcast as torch does: the generated model accepts exactly the
parameter values at which its branches broadcast, and its shapes are torch's own.

Each spec is generated once, then built at many parameter values: where `__init__` accepts
them, the output must be what torch gives for the same layers built concretely; where it
refuses them, torch must fail to broadcast the branches (or a layer must be invalid there).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from seqgen.api import generate, options_for
from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.project.write import write_files
from seqgen.trace.model import trace


def _generate(tmp_path: Path, text: str) -> tuple[str, Any]:
    spec = tmp_path / "net.seq"
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(
        f"_bcast_{id(tmp_path)}", tmp_path / "net.py"
    )
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return result.files[0].text, getattr(module, result.traced.spec.class_name)


Concrete = Callable[[dict[str, int]], list[nn.Module]]


def _torch_shapes(
    concrete: Concrete, values: dict[str, int], x: torch.Tensor, op: Callable[[Any, Any], Any]
) -> tuple[list[tuple[int, ...]], tuple[int, ...]] | None:
    """The branches' shapes and what torch gives for `op` over them; None when torch refuses
    (or a branch is empty, which seqgen refuses)."""
    try:
        outs = [b(x) for b in concrete(values)]
        total = outs[0]
        for out in outs[1:]:
            total = op(total, out)
    except (RuntimeError, ValueError):
        return None
    if any(0 in out.shape for out in outs):
        return None
    return [tuple(out.shape) for out in outs], tuple(total.shape)


# (spec, its parameters, the concrete branches at given values, the op, the input shape (-1:
# cin)); each spec has a layer after the merge, which reads the merged size
CASES: list[tuple[str, str, Concrete, Callable[[Any, Any], Any], tuple[int, ...]]] = [
    (  # a literal against a parameter: `hid - 1` must be 3 or 1, and the merged size is 3
        "model Net(hid=4)\ninput (3, 8)\nmultiply:\n    branch:\n        linear hid - 1\n"
        "    branch:\n        linear 3\nlinear 5\n",
        "hid",
        lambda v: [nn.Linear(8, v["hid"] - 1), nn.Linear(8, 3)],
        torch.mul,
        (2, 3, 8),
    ),
    (  # an identity of `cin` channels against a conv's 2: cin is 1 or 2
        "model Net(cin=2)\ninput (cin, 6, 6)\nadd:\n    branch:\n        identity\n"
        "    branch:\n        conv2d 2 k=1\nconv2d 4 k=1\n",
        "cin",
        lambda v: [nn.Identity(), nn.Conv2d(v["cin"], 2, 1)],
        torch.add,
        (2, -1, 6, 6),
    ),
    (  # a gate of size 1 at the defaults
        "model Net(p=0)\ninput (20, 8)\nmultiply:\n    branch:\n        identity\n"
        "    branch:\n        linear 2 * p + 1\nlinear 3\n",
        "p",
        lambda v: [nn.Identity(), nn.Linear(8, 2 * v["p"] + 1)],
        torch.mul,
        (2, 20, 8),
    ),
    (  # two parameters: equal, or one of them 1; the next layer sees the larger
        "model Net(a=3, b=3)\ninput (2, 5, 5)\nadd:\n    branch:\n        conv2d a k=1\n"
        "    branch:\n        conv2d b k=1\nconv2d 4 k=1\n",
        "a,b",
        lambda v: [nn.Conv2d(2, v["a"], 1), nn.Conv2d(2, v["b"], 1)],
        torch.add,
        (2, 2, 5, 5),
    ),
]


@pytest.mark.parametrize(("text", "names", "concrete", "op", "shape"), CASES)
def test_broadcasting_merges_accept_what_torch_accepts(
    tmp_path: Path,
    text: str,
    names: str,
    concrete: Concrete,
    op: Callable[[Any, Any], Any],
    shape: tuple[int, ...],
) -> None:
    _, cls = _generate(tmp_path, text)
    keys = names.split(",")
    grid = [dict(zip(keys, vs)) for vs in _grid(len(keys))]
    broadcasts = 0
    for values in grid:
        size = tuple(values["cin"] if s == -1 else s for s in shape)
        found = _torch_shapes(concrete, values, torch.zeros(size), op) if min(size) > 0 else None
        if found is None:
            with pytest.raises(ValueError):
                cls(**values)
            continue
        branches, want = found
        model = cls(**values)
        x = torch.zeros(size)
        assert tuple(model.model[0](x).shape) == want, values
        model(x)  # the layer after the merge reads the merged size
        broadcasts += len(set(branches)) > 1
    assert broadcasts >= 1


def _grid(n: int) -> list[tuple[int, ...]]:
    values = (0, 1, 2, 3, 4, 5)
    if n == 1:
        return [(v,) for v in values]
    return [(a, b) for a in values for b in values]


def test_add_needs_equal_ranks() -> None:
    # (N, 4) + (N, 1, 4) broadcasts in torch, to (N, N, 4): the batch meets a feature dim
    text = (
        "model Net\ninput (1, 4)\nadd:\n    branch:\n        flatten\n"
        "    branch:\n        identity\n"
    )
    with pytest.raises(SeqgenError, match="the ranks differ"):
        _trace_text(text)


def test_a_residual_stays_strict() -> None:
    text = "model Net\ninput (1, 8)\nresidual:\n    linear 3\n"
    with pytest.raises(SeqgenError, match="adding needs equal shapes"):
        _trace_text(text)


def _trace_text(text: str) -> None:
    trace(parse(text, "net.seq"))
