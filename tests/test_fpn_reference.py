"""A feature pyramid network: heads that read points inside nested merges (`from=p3.down.p4`).

tests/architectures/heads/fpn.seq is a small backbone (C3, C4, C5) with torchvision's
FeaturePyramidNetwork on it; tests/architectures/fpn.py is the same network written by hand as
torchvision writes it. Generated with seqgen's API at two input sizes (the spec's 32x32, and
64x48), it has the reference's parameter count at two widths, its outputs P3, P4, P5 in that
order, and with the reference's weights copied in (its state_dict, in the generated model's
order), the same outputs. The path syntax's located errors are checked here too. (slow) The
tests seqgen generates for it pass.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import generated_module, run_generated_tests
from test_readme import missing_runs, readme_block
from torch import nn

from seqgen.check.realize import verify_on_device
from seqgen.diagram import build
from seqgen.diagram.graph import all_boxes, all_edges
from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.report.summary import render_summary
from seqgen.trace.model import trace
from tests.architectures.fpn import BackboneWithFPN

SPEC = Path(__file__).resolve().parent / "architectures" / "heads" / "fpn.seq"
SIZES = {"32x32": (32, 32), "64x48": (64, 48)}
# the reference's modules in the order the generated model holds their weights: the stem, P3's
# lateral, C4's stage, P4's lateral, C5's stage and P5's lateral, then the 3x3 output convs
ORDER = [
    "body.stage3.0",
    "body.stage3.2",
    "fpn.inner_blocks.0",
    "body.stage4.0",
    "fpn.inner_blocks.1",
    "body.stage5.0",
    "fpn.inner_blocks.2",
    "fpn.layer_blocks.0",
    "fpn.layer_blocks.1",
    "fpn.layer_blocks.2",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[Path], ModuleType]]:
    out = {}
    for size in SIZES:
        folder = tmp_path_factory.mktemp(f"fpn_{size}")
        text = SPEC.read_text(encoding="utf-8").replace("input 3x32x32", f"input 3x{size}")
        assert f"input 3x{size}" in text
        out[size] = generated_module(folder, text, "fpn", f"fpn_{size}")
    return out


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("width", "out", "expected"), [(8, 16, 33_328), (4, 12, None)])
def test_parameter_count_equals_the_references(
    built: dict[str, tuple[list[Path], ModuleType]], width: int, out: int, expected: int | None
) -> None:
    reference = BackboneWithFPN(width, out)
    if expected is not None:
        assert _count(reference) == expected
    for _, module in built.values():
        assert _count(module.FPN(width=width, out=out)) == _count(reference)


def test_forward_is_plain_statements(built: dict[str, tuple[list[Path], ModuleType]]) -> None:
    module = built["32x32"][1]
    assert module.FPNOutput._fields == ("p3", "p4", "p5")
    model = module.FPN()
    assert [name for name, _ in model.named_children()] == [
        "trunk_0",
        "td3_lat",
        "td3_down_0",
        "td4_lat",
        "lat5",
        "td4_down",
        "td3_down_1",
        "p3",
        "p4",
        "p5",
    ]
    source = inspect.getsource(module.FPN.forward)
    for line in (
        "td3_down: torch.Tensor = self.td3_down_0(x)",
        "lat5: torch.Tensor = self.lat5(td3_down)",
        "td4: torch.Tensor = td4_lat + td4_down",
        "td3_down = self.td3_down_1(td4)",
        "features: torch.Tensor = td3_lat + td3_down",
        "return FPNOutput(p3=self.p3(features), p4=self.p4(td4), p5=self.p5(lat5))",
    ):
        assert line in source


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("width", "out"), [(8, 16), (4, 12)])
def test_same_outputs_as_the_reference_with_its_weights(
    built: dict[str, tuple[list[Path], ModuleType]], size: str, width: int, out: int
) -> None:
    torch.manual_seed(0)
    reference = BackboneWithFPN(width, out).eval()
    model = built[size][1].FPN(width=width, out=out).eval()
    ours, theirs = model.state_dict(), reference.state_dict()
    keys = [f"{m}.{w}" for m in ORDER for w in ("weight", "bias")]
    assert sorted(keys) == sorted(theirs) and len(ours) == len(keys)
    for (key, value), ref_key in zip(ours.items(), keys, strict=True):
        assert value.shape == theirs[ref_key].shape, (key, ref_key)
    model.load_state_dict({k: theirs[r] for k, r in zip(ours, keys, strict=True)})
    h, w = SIZES[size]
    x = torch.rand(3, 3, h, w)
    with torch.no_grad():
        got, expected = model(x), reference(x)
    shapes = [(3, out, h // 2, w // 2), (3, out, h // 4, w // 4), (3, out, h // 8, w // 8)]
    assert [tuple(t.shape) for t in got] == shapes
    for name, a, b in zip(got._fields, got, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    # not equal by accident: another model's P4 differs
    assert not torch.allclose(model(x).p4, BackboneWithFPN(width, out)(x)[1])


def test_readme_shows_the_spec_and_its_forward(
    built: dict[str, tuple[list[Path], ModuleType]],
) -> None:
    assert readme_block("fpn_seq") == SPEC.read_text(encoding="utf-8")
    generated = built["32x32"][0][0].read_text(encoding="utf-8")
    assert missing_runs(readme_block("fpn_forward"), generated) == []


def test_the_generated_model_scripts(built: dict[str, tuple[list[Path], ModuleType]]) -> None:
    model = built["64x48"][1].FPN(width=4, out=12).eval()
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        a, b = torch.jit.script(model)(x), model(x)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_trace_check_and_summary_see_each_point() -> None:
    traced = trace(parse(SPEC.read_text(encoding="utf-8"), str(SPEC)))
    shapes = {h.name: [d.code for d in h.input_shape] for h in traced.heads}
    assert shapes == {
        "p3": ["N", "out", "16", "16"],
        "p4": ["N", "out", "8", "8"],
        "p5": ["N", "out", "4", "4"],
    }
    assert [h.source for h in traced.heads] == [None, "td3.down.td4", "td3.down.td4.down.lat5"]
    verify_on_device(traced, "cpu")  # each head run again from what it reads
    text = render_summary(traced)
    assert "head p4 (from td3.down.td4)" in text and "(from td3.down.td4.down.lat5)" in text
    diagram = build(traced)
    boxes = {b.id: b for b in all_boxes(diagram)}
    edges = {(boxes[e.source].label, boxes[e.target].shape) for e in all_edges(diagram)}
    head = "Conv2d(out, out, kernel_size=3, padding=1)"
    # each head's 3x3 conv is fed from the box it reads: P5's lateral, P4's and P3's sums
    assert ("Conv2d(8 * width, out, kernel_size=1)", "(N, out, 4, 4)") in edges
    assert ("Add (+)", "(N, out, 8, 8)") in edges and ("Add (+)", "(N, out, 16, 16)") in edges
    fed = [boxes[e.source].label for e in all_edges(diagram) if boxes[e.target].label == head]
    assert fed == ["Add (+)", "Add (+)", "Conv2d(8 * width, out, kernel_size=1)"]


NESTED = """\
model Nested

input 8
linear 8
add name=a:
    branch name=x1:
        linear 8
    branch name=down:
        linear 8 name=mid
        concat name=b:
            branch name=left:
                linear 4
                relu
            branch name=right:
                linear 4 name=deep
        linear 8
head h from=a.down.b.left:
    linear 2
head g from=a.down.b.right.deep:
    linear 2
"""


@pytest.mark.parametrize(
    ("old", "new", "message", "hint"),
    [
        ("b.left", "bb.left", "branch 'down' of 'a' has no merge named 'bb'", "did you mean 'b'?"),
        ("b.left", "b.lefty", "merge 'b' has no branch named 'lefty'", "did you mean 'left'?"),
        ("a.down.b", "a.dow.b", "merge 'a' has no branch named 'dow'", "did you mean 'down'?"),
        ("b.left", "mid.left", "'mid' is no merge", "drop `.left`"),
        (
            "right.deep",
            "right.dep",
            "'right' of 'b' has no layer named 'dep'",
            "did you mean 'deep'?",
        ),
        ("b.left", "b.left.x", "branch 'left' of 'b' has no layer named 'x'", "add `name=x`"),
    ],
)
def test_a_bad_path_is_a_located_error(old: str, new: str, message: str, hint: str) -> None:
    text = NESTED.replace(old, new, 1)
    path = next(t for t in text.splitlines() if new in t).split("from=")[1].rstrip(":")
    with pytest.raises(SeqgenError) as info:
        parse(text)
    d = info.value.diagnostic
    assert message in d.message and d.location is not None, d.message
    assert hint in (d.hint or ""), d.hint
    line = text.splitlines()[d.location.line - 1]
    assert line.startswith("head ")
    assert line.index(path) < d.location.col <= line.index(path) + len(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "        residual:\n            linear 8 name=deep\n",
            "in a residual or an unnamed merge",
        ),
        ("        Blk\n", "has no layer named 'deep'"),
        (
            "        concat:\n            branch:\n                linear 8 name=deep\n"
            "            branch:\n                linear 8\n",
            "in a residual or an unnamed merge",
        ),
    ],
)
def test_a_point_inside_a_residual_block_or_unnamed_merge_is_refused(
    body: str, message: str
) -> None:
    text = (
        "block Blk:\n    linear 8 name=deep\n\ninput 8\nadd name=a:\n    branch name=l:\n"
        "        linear 8\n    branch name=r:\n" + body + "head h from=a.r.deep:\n    linear 2\n"
    )
    with pytest.raises(SeqgenError) as info:
        parse(text)
    d = info.value.diagnostic
    assert message in d.message + (d.hint or "") and d.location is not None
    assert d.location.line == text.count("\n") - 1  # the head's line, at its `from=`


def test_a_name_inside_a_loop_is_refused() -> None:
    """A node inside a `repeat` has no name a head could read (names are refused there)."""
    text = "input 8\nadd name=a:\n    branch name=l:\n        linear 8\n    branch name=r:\n"
    text += (
        "        repeat 2:\n            linear 8 name=deep\nhead h from=a.r.deep:\n    linear 2\n"
    )
    with pytest.raises(SeqgenError, match="inside a `repeat`"):
        parse(text)


# each head of NESTED as a plain stack: the layers on its path, then its own; and the submodules
# of the generated NESTED model that hold their weights, in that order
PLAIN = {
    "h": ("linear 8\nlinear 8\nlinear 4\nrelu\nlinear 2\n", ["trunk_0", "a_down_0", "b_left", "h"]),
    "g": ("linear 8\nlinear 8\nlinear 4\nlinear 2\n", ["trunk_0", "a_down_0", "deep", "g"]),
}


@pytest.mark.parametrize("head", PLAIN)
def test_nested_heads_equal_their_plain_paths(tmp_path: Path, head: str) -> None:
    """Each nested head computes what the single-output spec "the layers on its path, then the
    head's" computes, with the same weights."""
    _, module = generated_module(tmp_path, NESTED, "nested", f"fpn_nested_{head}")
    text, parts = PLAIN[head]
    _, plain_module = generated_module(tmp_path, f"model Plain\ninput 8\n{text}", "plain", head)
    torch.manual_seed(3)
    model, plain = module.Nested().eval(), plain_module.Plain().eval()
    weights = [t for part in parts for t in getattr(model, part).state_dict().values()]
    keys = list(plain.state_dict())
    assert len(keys) == len(weights)
    plain.load_state_dict(dict(zip(keys, weights, strict=True)))
    x = torch.rand(5, 8)
    with torch.no_grad():
        assert torch.equal(getattr(model(x), head), plain(x))


@pytest.mark.slow
def test_generated_tests_pass(built: dict[str, tuple[list[Path], ModuleType]]) -> None:
    for files, _ in built.values():
        run_generated_tests(*[f for f in files if f.name.startswith("test_")])


def test_a_path_into_a_shared_branch_is_refused() -> None:
    """A shared branch (siamese) runs the other branch's modules: reading inside it would
    write modules of its own, so the path must go through the branch that holds them."""
    text = (
        "input left 8\ninput right 8\nadd name=t:\n    branch name=left:\n"
        "        linear 8 name=deep\n        relu\n    branch name=right from=right shares=left:\n"
        "head h from=t.right.deep:\n    linear 2\n"
    )
    with pytest.raises(SeqgenError) as info:
        parse(text)
    d = info.value.diagnostic
    assert "branch 'right' of 't' runs the modules of branch 'left'" in d.message
    assert d.hint == "did you mean `from=t.left.deep`?"
    assert d.location is not None and (d.location.line, d.location.col) == (8, 15)
    parse(text.replace("t.right.deep", "t.left.deep"))


def test_an_in_place_layer_after_an_inner_point_is_refused() -> None:
    """The head reads `deep`'s output: a `relu inplace=True` after it would overwrite it."""
    text = (
        "input 8\nlinear 8\nadd name=a:\n    branch name=l:\n        linear 8\n"
        "    branch name=r:\n        linear 8 name=deep\n        relu inplace=True\n"
        "head h from=a.r.deep:\n    linear 2\n"
    )
    with pytest.raises(SeqgenError, match="inplace=True here overwrites"):
        trace(parse(text))
    trace(parse(text.replace("a.r.deep", "a.r")))  # reading the branch's end is fine
