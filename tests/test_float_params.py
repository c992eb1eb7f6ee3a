"""A float model parameter as an upsampling scale factor (`upsample scale_factor=sf`): sizes
`int(h * sf)` as torch computes them, checked against torch at several scales, the generated
`__init__` refusing the scales that give no output, and the generated tests passing."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import sympy
import torch
from conftest import run_generated_tests

from seqgen.api import generate, options_for, trace_spec, traced_spec
from seqgen.errors import TraceError
from seqgen.lang.parser import parse
from seqgen.project.write import write_files
from seqgen.safe_eval import evaluate_source
from seqgen.trace.expressions import ScaledSize, evaluate, to_python

SCALES = (0.5, 1.5, 2.0, 2.5, 3.0, 1.7, 0.1, 1 / 3)


def _generate(tmp_path: Path, text: str, name: str = "net.seq"):
    spec = tmp_path / name
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(
        f"_gen_{spec.stem}_{id(tmp_path)}", tmp_path / f"{spec.stem}.py"
    )
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return result, getattr(module, result.traced.spec.class_name)


def test_the_size_is_what_torch_computes_where_rounding_matters() -> None:
    """torch's interpolate multiplies in double precision and truncates: 0.1 * 30 is
    3.0000000000000004 (3), 1.7 * 10 is 17.0, 0.3 * 10 is 3.0000000000000004; the printed
    `int(h * sf)`, seqgen's own evaluation and torch agree on every pair."""
    h, sf = sympy.Symbol("h", integer=True), sympy.Symbol("sf", real=True)
    expr = ScaledSize(h, sf)
    text = to_python(expr, {h: "h", sf: "sf"})
    assert text == "int(h * sf)"
    for size in range(1, 41):
        for scale in (*SCALES, 0.3, 0.7, 1.1, 1.3, 2.2, 0.9, 1.9, 0.25):
            want = math.floor(size * scale)
            if want < 1:
                continue
            for mode in ("nearest", "bilinear"):
                up = torch.nn.Upsample(scale_factor=scale, mode=mode)
                got = up(torch.zeros(1, 1, size, size)).shape[-1]
                assert got == want, (size, scale, mode)
            assert evaluate(expr, {h: size, sf: scale}) == want
            assert evaluate_source(text, {"h": size, "sf": scale}) == want


NET = """\
model Net(c=3, sf=1.5)
input (c, h=10, w=12)
upsample scale_factor=sf mode='bilinear'
conv2d 8 3 p=1
maxpool2d 2
upsamplingnearest2d scale_factor=sf
flatten
linear 10
"""


def test_shapes_and_counts_match_torch_at_several_scales(tmp_path: Path) -> None:
    """The generated model at sf in 0.5 .. 3.0 (and c, h, w moved): every layer's shape and
    the parameter count equal torch's plain nn.Sequential of the same layers."""
    result, cls = _generate(tmp_path, NET)
    layers = result.traced.layers
    assert layers[0].out_shape[2].code == "int(h * sf)"
    assert layers[3].out_shape[3].code == "int((int(w * sf) // 2) * sf)"
    compared = 0
    for sf in (0.5, 1.5, 2.0, 2.5, 3.0):
        for c, h, w in ((3, 10, 12), (1, 7, 9), (4, 13, 6)):
            up = math.floor(math.floor(h * sf) // 2 * sf), math.floor(math.floor(w * sf) // 2 * sf)
            if min(math.floor(h * sf) // 2, math.floor(w * sf) // 2, *up) < 1:
                with pytest.raises(ValueError, match="must be at least 1"):
                    cls(c=c, h=h, w=w, sf=sf)
                continue
            reference = torch.nn.Sequential(
                torch.nn.Upsample(scale_factor=sf, mode="bilinear"),
                torch.nn.Conv2d(c, 8, 3, padding=1),
                torch.nn.MaxPool2d(2),
                torch.nn.UpsamplingNearest2d(scale_factor=sf),
                torch.nn.Flatten(),
                torch.nn.Linear(8 * up[0] * up[1], 10),
            )
            model = cls(c=c, h=h, w=w, sf=sf)
            x = torch.zeros(2, c, h, w)
            want, got = x, x
            values = {"c": c, "h": h, "w": w, "sf": sf, "N": 2}
            for mine, theirs, traced in zip(model.model, reference, layers, strict=True):
                want, got = theirs(want), mine(got)
                assert got.shape == want.shape, (sf, c, h, w, traced.class_name)
                printed = tuple(evaluate_source(d.code, values) for d in traced.out_shape)
                assert printed == tuple(want.shape)
            count = sum(p.numel() for p in reference.parameters())
            assert sum(p.numel() for p in model.parameters()) == count
            assert evaluate_source(result.traced.total_params.code, values) == count
            compared += 1
    assert compared >= 12  # sf=0.5 on 7x9 and 13x6 gives no output; the rest compare


def test_scales_that_give_no_output_are_refused(tmp_path: Path) -> None:
    _, cls = _generate(
        tmp_path, "model U(sf=2.0)\ninput 3x8x8\nupsample scale_factor=sf\nconv2d 4 3\n"
    )
    assert tuple(cls()(torch.zeros(1, 3, 8, 8)).shape) == (1, 4, 14, 14)
    assert tuple(cls(sf=0.4)(torch.zeros(1, 3, 8, 8)).shape) == (1, 4, 1, 1)  # int(3.2) - 2
    for sf in (0.0, -1.5):
        with pytest.raises(ValueError, match="sf must be greater than 0"):
            cls(sf=sf)
    for sf in (0.1, 0.3):  # int(0.8) is 0; int(2.4) - 2 is 0
        with pytest.raises(ValueError, match="must be at least 1"):
            cls(sf=sf)


def test_generated_tests_take_the_float_and_pass(tmp_path: Path) -> None:
    _generate(tmp_path, NET)
    source = (tmp_path / "test_net.py").read_text(encoding="utf-8")
    assert "sf: float = 1.5" in source and "int(h * sf)" in source
    run = run_generated_tests(tmp_path / "test_net.py")
    assert run.passed > 0


def test_a_tuple_of_a_float_scale_and_a_literal() -> None:
    t = trace_spec(
        parse("model M(sf=2.0)\ninput 3x8x8\nupsample scale_factor=(sf, 1.5)\n", "t.seq")
    )
    assert [d.code for d in t.layers[0].out_shape] == ["N", "3", "int(8 * sf)", "12"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the defaults give no output
        ("model M(sf=0.1)\ninput 3x8x8\nupsample scale_factor=sf\n", "at least 1"),
        # a float parameter of a block, or an expression of one, is still a literal's place
        (
            "input 3x8x8\nblock B(s=2.0):\n    upsample scale_factor=s\nB\n",
            "cannot be the float parameter 's'",
        ),
        (
            "model M(sf=2.0)\ninput 3x8x8\nupsample scale_factor=(sf, sf * 2)\n",
            "cannot be the float parameter 'sf'",
        ),
        # a layer without a seqgen size rule: torch's ShapeEnv cannot hold `int(h * sf)`
        (
            "model M(sf=2.0)\ninput 4x8x8\nupsample scale_factor=sf\n"
            "fractionalmaxpool2d 2 output_size=4\n",
            "works only in a model whose layers all have seqgen size rules",
        ),
        # a float anywhere else that decides sizes
        ("model M(p=2.0)\ninput 3x8x8\nupsample size=p\n", "size takes an int"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        trace_spec(parse(text, "t.seq"))


def test_a_float_read_elsewhere_too_is_not_varied_by_the_self_check(tmp_path: Path) -> None:
    # `p=sf` is range-checked by torch: the self-check would build dropout at p=1.5
    spec = tmp_path / "m.seq"
    spec.write_text("model U(sf=0.5)\ninput 3x8x8\nupsample scale_factor=sf\ndropout p=sf\n")
    _, traced = traced_spec(str(spec))
    assert [d.code for d in traced.out_shape] == ["N", "3", "int(8 * sf)", "int(8 * sf)"]
