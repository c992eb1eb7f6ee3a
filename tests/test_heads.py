"""Several outputs: `head NAME [from=POINT] [train_only=True]:` after the trunk.

The parser's located errors, the traced shapes and counts, the generated model against a
hand-written torch module with the same weights at several parameter values, train/eval
behaviour of a train-only head, and the summary's rows.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple
from xml.etree import ElementTree

import pytest
import torch
from conftest import generated_module, run_generated_tests
from torch import nn

from seqgen.diagram import build, draw
from seqgen.diagram.graph import all_boxes, all_edges
from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.report.summary import render_summary
from seqgen.trace.model import trace

SPEC = """\
model Multi(num_classes=10, width=16)
input 3x16x16

conv2d width k=3 p=1
batchnorm2d
relu
maxpool2d 2 name=mid
conv2d 32 k=3 p=1
relu
adaptiveavgpool2d 1
flatten

head logits:
    linear num_classes
head boxes:
    linear 8
    relu
    linear 4
head aux from=mid train_only=True:
    adaptiveavgpool2d 2
    flatten
    linear num_classes
"""


def _generate(tmp_path: Path, text: str, name: str) -> tuple[list[Path], ModuleType]:
    return generated_module(tmp_path, text, name, "heads")


# ------------------------------------------------------------------------------ parser


def test_parser_reads_heads_after_the_trunk() -> None:
    spec = parse(SPEC)
    assert [(h.name, h.point, h.train_only) for h in spec.heads] == [
        ("logits", None, False),
        ("boxes", None, False),
        ("aux", "mid", True),
    ]
    assert [len(h.layers) for h in spec.heads] == [1, 3, 3]
    assert len(spec.layers) == 8  # the trunk only
    assert parse("input 4\nlinear 2\n").heads == ()


TRUNK = "model M(n=3)\ninput 3x8x8\nconv2d 4 k=1 name=stem\nrelu\nflatten\n"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        (TRUNK + "head a:\n    linear 2\nrelu\n", "the trunk's lines come before the first", 8),
        (TRUNK + "head a:\n    linear 2\nhead a:\n    linear 3\n", "defined twice", 8),
        (TRUNK + "head class:\n    linear 2\n", "is a Python keyword", 6),
        (TRUNK + "head trunk:\n    linear 2\n", "is taken", 6),
        (TRUNK + "head train:\n    linear 2\n", "is taken", 6),
        (TRUNK + "head n:\n    linear 2\n", "one of its parameters", 6),
        (TRUNK + "head a from=nowhere:\n    linear 2\n", "no top-level trunk layer", 6),
        (TRUNK + "head a from=stem from=stem:\n    linear 2\n", "given twice", 6),
        (TRUNK + "head a train_only=1:\n    linear 2\n", "takes True or False", 6),
        (TRUNK + "head a depth=2:\n    linear 2\n", "takes `from=POINT`", 6),
        (TRUNK + "head a:\n", "needs an indented stack", 6),
        (TRUNK + "head:\n    linear 2\n", "expected a head's name", 6),
        (TRUNK + "head a from=stem\n    linear 2\n", "expected ':' after `head a`", 6),
        (TRUNK + "head a:\n    linear 2 name=fc\n", "not inside a head", 7),
        (TRUNK + "head a:\n    head b:\n        linear 2\n", "at the top level", 7),
        ("input 3x8x8\nhead a:\n    relu\n", "needs the trunk's layers above it", 2),
        (
            "model M(training=2)\ninput 3x8x8\nconv2d training k=1\nhead a:\n    relu\n",
            "is taken in a model with heads",
            1,
        ),
        (
            "model M\ninput 4\nlinear 3 name=MOutput\nrelu\nhead a from=MOutput:\n    relu\n",
            "the name of the output class",
            5,
        ),
        (
            "input 3x8x8\nconv2d 4 k=1 name=stem\nhead a from=stem:\n    relu\n",
            "the trunk's last layer",
            3,
        ),
    ],
)
def test_misuse_is_a_located_syntax_error(text: str, message: str, line: int) -> None:
    with pytest.raises(SeqgenError) as info:
        parse(text)
    rendered = info.value.render()
    assert message in rendered
    assert f"<spec>:{line}:" in rendered


def test_a_point_may_be_a_block_use_or_a_merge(tmp_path: Path) -> None:
    text = (
        "model P(n=3)\ninput 8\nblock B(w):\n    linear w\n    relu\n"
        "B 6 name=b\nadd name=m:\n    branch:\n        linear 6\n    branch:\n"
        "        identity\nlinear 4\n"
        "head x1 from=b:\n    linear n\nhead x2 from=m:\n    linear 2\nhead x3:\n    relu\n"
    )
    files, module = _generate(tmp_path, text, "points")
    source = files[0].read_text()
    assert "b: torch.Tensor = self.b(x)" in source and "m: torch.Tensor = self.m(b)" in source
    out = module.P(n=5).eval()(torch.randn(2, 8))
    assert [tuple(t.shape) for t in out] == [(2, 5), (2, 2), (2, 4)]


def test_a_block_named_head_is_still_a_block_use() -> None:
    spec = parse("input 4\nblock head(c):\n    linear c\nhead 3\n")
    assert spec.heads == () and len(spec.layers) == 1


# ------------------------------------------------------------------------------ trace


def test_each_head_is_traced_from_its_point_and_counted() -> None:
    traced = trace(parse(SPEC))
    heads = {h.name: h for h in traced.heads}
    assert [d.code for d in heads["logits"].out_shape] == ["N", "num_classes"]
    assert [d.code for d in heads["aux"].input_shape] == ["N", "width", "8", "8"]
    assert heads["aux"].params.code == "num_classes + 4 * num_classes * width"
    assert traced.total_params.value == sum(
        n.params.value for stack in traced.stacks for n in stack
    )
    # the heads' conditions join the model's: `linear num_classes` needs num_classes >= 1
    assert any(c.failed == "num_classes < 1" for c in traced.constraints)


def test_an_error_in_a_head_is_located_there() -> None:
    with pytest.raises(SeqgenError) as info:
        trace(parse(TRUNK + "head a:\n    conv2d 4 k=3\n"))
    assert "<spec>:7:" in info.value.render()


# ------------------------------------------------------------- differential, by hand


class _Out(NamedTuple):
    logits: torch.Tensor
    boxes: torch.Tensor
    aux: torch.Tensor | None


class _HandWritten(nn.Module):
    """SPEC, written by hand."""

    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.rest = nn.Sequential(
            nn.Conv2d(width, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.logits = nn.Linear(32, num_classes)
        self.boxes = nn.Sequential(nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 4))
        self.aux = nn.Sequential(
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, num_classes)
        )

    def forward(self, x: torch.Tensor) -> _Out:
        mid = self.stem(x)
        features = self.rest(mid)
        aux = self.aux(mid) if self.training else None
        return _Out(self.logits(features), self.boxes(features), aux)


@pytest.mark.parametrize(("num_classes", "width"), [(10, 16), (3, 5), (17, 1)])
def test_generated_model_equals_a_hand_written_one(
    tmp_path: Path, num_classes: int, width: int
) -> None:
    _, module = _generate(tmp_path, SPEC, f"multi_{num_classes}_{width}")
    torch.manual_seed(0)
    generated = module.Multi(num_classes=num_classes, width=width)
    reference = _HandWritten(num_classes, width)
    theirs = list(generated.state_dict().values())
    ours = reference.state_dict()
    assert [tuple(t.shape) for t in theirs] == [tuple(t.shape) for t in ours.values()]
    reference.load_state_dict(dict(zip(ours, theirs, strict=True)))
    assert sum(p.numel() for p in generated.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    x = torch.randn(4, 3, 16, 16)
    for mode in ("train", "eval"):
        got: Any = getattr(generated, mode)()(x)
        want = getattr(reference, mode)()(x)
        assert type(got).__name__ == "MultiOutput" and got._fields == want._fields
        for name in want._fields:
            a, b = getattr(got, name), getattr(want, name)
            assert (a is None) == (b is None) == (mode == "eval" and name == "aux")
            if a is not None:
                torch.testing.assert_close(a, b)


def test_generated_code_reads_like_hand_written(tmp_path: Path) -> None:
    files, _ = _generate(tmp_path, SPEC, "multi_code")
    source = files[0].read_text()
    assert "class MultiOutput(NamedTuple):" in source
    assert "aux: torch.Tensor | None" in source
    assert "    aux: (N, num_classes), in training mode only (None in eval mode)" in source
    assert "mid: torch.Tensor = self.mid(x)" in source
    assert "features: torch.Tensor = self.trunk(mid)" in source
    assert "aux=self.aux(mid) if self.training else None" in source
    assert "self.model" not in source


def test_one_segment_trunk_is_self_trunk(tmp_path: Path) -> None:
    text = "input 6\nlinear 8\nrelu\nhead a:\n    linear 2\nhead b:\n    linear 3\n"
    files, module = _generate(tmp_path, text, "two")
    source = files[0].read_text()
    assert "features: torch.Tensor = self.trunk(x)" in source
    assert "OrderedDict" not in source
    out = module.Two().eval()(torch.randn(5, 6))
    assert (tuple(out.a.shape), tuple(out.b.shape)) == ((5, 2), (5, 3))
    assert sorted(module.Two().state_dict()) == [
        "a.0.bias",
        "a.0.weight",
        "b.0.bias",
        "b.0.weight",
        "trunk.0.bias",
        "trunk.0.weight",
    ]


@pytest.mark.slow
def test_generated_tests_pass(tmp_path: Path) -> None:
    files, _ = _generate(tmp_path, SPEC, "multi_tests")
    text = files[1].read_text()
    assert "def test_train_only_heads_are_none_in_eval_mode" in text
    assert "def test_outputs_at_other_values" in text
    run_generated_tests(files[1])


def test_a_head_that_no_weight_reaches_passes_the_backward_test(tmp_path: Path) -> None:
    # `raw` returns the input's own (padded) values: no grad_fn, so the generated backward test
    # must leave it out (it raised "element 1 of tensors does not require grad"; found by
    # fuzz/differential.py --pytest, seed 107 spec 5, a head reading a parameter-free branch)
    text = (
        "model M\ninput (4,)\nconstantpad1d 1 0.0 name=p\nlinear 3\n"
        "head y:\n    relu\nhead raw from=p\n"
    )
    files, _ = _generate(tmp_path, text, "no_grad_head")
    assert "if t is not None and t.requires_grad]" in files[1].read_text()
    run_generated_tests(files[1])


# ------------------------------------------------------------------------------ report


def test_summary_shows_each_head_after_the_trunk() -> None:
    traced = trace(parse(SPEC))
    text = render_summary(traced)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "head logits" in line)
    assert "nn.Flatten()" in lines[at - 1]
    assert "head aux (from mid, train only)" in text
    rows = json.loads(render_summary(traced, fmt="json"))["layers"]
    heads = [r for r in rows if r["layer"].startswith("head ")]
    assert [(r["layer"], r["depth"], r["params"]) for r in heads] == [
        ("head logits", 0, 330),
        ("head boxes", 0, 300),
        ("head aux (from mid, train only)", 0, 650),
    ]
    assert rows[rows.index(heads[1]) + 1]["depth"] == 1


def test_diagram_draws_each_head_from_its_point() -> None:
    traced = trace(parse(SPEC))
    diagram = build(traced)
    labels = {b.id: b.label for b in all_boxes(diagram)}
    heads = {h.frame.title: labels[h.entry] for h in diagram.heads}
    assert heads == {
        "head logits": "Flatten()",
        "head boxes": "Flatten()",
        "head aux (from mid, train only)": "MaxPool2d(2)",
    }
    edges = {(labels[e.source], labels[e.target]) for e in all_edges(diagram)}
    assert ("MaxPool2d(2)", "AdaptiveAvgPool2d(2)") in edges  # aux, beside the trunk's own
    assert ("MaxPool2d(2)", "Conv2d(width, 32, kernel_size=3, padding=1)") in edges
    assert ("Flatten()", "Linear(8, 4)") not in edges  # boxes' second Linear reads its ReLU
    assert {e.target for e in all_edges(diagram)} == set(labels) - {diagram.flow[0].id}
    # SVG: every box is drawn, and one path per edge
    root = ElementTree.fromstring(draw(traced, "svg"))
    svg = "{http://www.w3.org/2000/svg}"
    assert len(list(root.iter(f"{svg}polyline"))) == len(all_edges(diagram))
    assert "head aux (from mid, train only)" in draw(traced, "dot")


# ------------------------------------------------- differential: heads = plain models
#
# A model with heads computes, for each head, what the plain (single-output) spec "trunk up to
# the head's point, then the head's layers" computes: the same sizes, parameter counts, the same
# `__init__` refusals, and the same outputs after copying weights. Random specs, random values.

TRUNK_MENU = [
    "conv2d c k=3 p=1",
    "conv2d 6 k=k",
    "batchnorm2d",
    "relu",
    "maxpool2d 2",
    "avgpool2d 2 s=1",
    "conv2d c k=1 s=2",
]
HEAD_MENU = [
    ["adaptiveavgpool2d 1", "flatten", "linear n"],
    ["conv2d n k=1", "relu"],
    ["flatten", "linear 5", "relu", "linear n"],
    ["identity"],
    ["conv2d 4 k=k", "adaptiveavgpool2d 2", "flatten"],
]


def _random_case(seed: int) -> tuple[str, list[tuple[str, int | None, list[str]]], int]:
    """A spec with heads, each head as (name, point index or None, lines), and the trunk's
    length."""
    rng = random.Random(seed)
    trunk = [rng.choice(TRUNK_MENU) for _ in range(rng.randint(2, 5))]
    point = rng.randrange(len(trunk) - 1)
    trunk[point] += " name=p"
    heads = []
    for i in range(rng.randint(1, 3)):
        at = point if rng.random() < 0.5 else None
        heads.append((f"h{i}", at, rng.choice(HEAD_MENU)))
    if all(at is not None for _, at, _ in heads):  # the point is never the trunk's last line:
        heads[-1] = (heads[-1][0], None, heads[-1][2])  # one head must read the trunk's end
    return "\n".join(trunk), heads, len(trunk)


def _spec_text(trunk: str, heads: list[tuple[str, int | None, list[str]]]) -> str:
    out = ["model M(c=4, k=3, n=2)", "input 3x12x12", trunk]
    for name, at, lines in heads:
        out.append(f"head {name}{' from=p' if at is not None else ''}:")
        out += [f"    {line}" for line in lines]
    return "\n".join(out) + "\n"


def _plain_text(trunk: str, point: int | None, lines: list[str]) -> str:
    kept = trunk.splitlines()[: None if point is None else point + 1]
    return "\n".join(["model M(c=4, k=3, n=2)", "input 3x12x12", *kept, *lines]) + "\n"


def _built(module: ModuleType, values: dict[str, int]) -> nn.Module | str:
    try:
        return module.M(**values)
    except ValueError as e:
        return f"refused: {e}"


FUZZ_SPECS = int(os.environ.get("SEQGEN_FUZZ_SPECS", "4"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(FUZZ_SPECS))
def test_heads_equal_their_plain_models(tmp_path: Path, seed: int) -> None:
    trunk, heads, _ = _random_case(seed)
    try:
        _, module = _generate(tmp_path, _spec_text(trunk, heads), f"fuzz_{seed}")
    except SeqgenError as e:  # refused: then some plain model is refused too
        refused = []
        for name, at, lines in heads:
            try:
                _generate(tmp_path, _plain_text(trunk, at, lines), f"fuzz_{seed}_{name}")
            except SeqgenError:
                refused.append(name)
        assert refused, f"the heads spec is refused, every plain model accepted: {e}"
        return
    plains = [
        _generate(tmp_path, _plain_text(trunk, at, lines), f"fuzz_{seed}_{name}")[1]
        for name, at, lines in heads
    ]
    rng = random.Random(seed)
    points = [{}] + [{"c": rng.randint(1, 7), "k": rng.randint(1, 5), "n": rng.randint(1, 6)}]
    points += [{"c": rng.randint(1, 7), "k": rng.randint(1, 5), "n": rng.randint(1, 6)}]
    for values in points:
        torch.manual_seed(seed)
        model = _built(module, values)
        refs = [_built(p, values) for p in plains]
        if isinstance(model, str):  # the same refusal: some plain model refuses these values
            assert any(isinstance(r, str) for r in refs), (values, model)
            continue
        assert not any(isinstance(r, str) for r in refs), (values, refs)
        state = model.state_dict()
        head_prefixes = tuple(f"{h}." for h, _, _ in heads)
        trunk_keys = [k for k in state if not k.startswith(head_prefixes)]
        x = torch.randn(2, 3, 12, 12)
        out = model.eval()(x)
        total = sum(
            v.numel() for k, v in model.named_parameters() if not k.startswith(head_prefixes)
        )
        for (name, at, _), ref in zip(heads, refs, strict=True):
            assert isinstance(ref, nn.Module)
            # the trunk up to the head's point (segment `p`; all of it from the trunk's end)
            mine = [k for k in trunk_keys if at is None or not k.startswith("trunk.")]
            mine += [k for k in state if k.startswith(f"{name}.")]
            theirs = ref.state_dict()
            assert [tuple(state[k].shape) for k in mine] == [
                tuple(v.shape) for v in theirs.values()
            ]
            ref.load_state_dict({t: state[k] for t, k in zip(theirs, mine, strict=True)})
            torch.testing.assert_close(getattr(out, name), ref.eval()(x))
            total += sum(v.numel() for k, v in model.named_parameters() if k.startswith(f"{name}."))
        assert sum(p.numel() for p in model.parameters()) == total
