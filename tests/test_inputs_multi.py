"""Several inputs: `input NAME SHAPE` lines and `branch from=INPUT:` in a top-level merge.

The parser's located errors, the traced shapes and counts, the generated model against a
hand-written torch module with the same weights at several parameter values, its forward's
checks of each input, the generated tests, and check's rows. A single unnamed `input` is
unchanged (the golden files and generated_examples/ hold it byte for byte).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import pytest
import torch
from conftest import generated_module, run_generated_tests
from torch import nn

from seqgen.check.realize import verify_on_device
from seqgen.diagram import build
from seqgen.diagram.graph import all_boxes, all_edges
from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.report.lint import lint
from seqgen.report.rows import rows as rows_of
from seqgen.report.summary import render_summary
from seqgen.report.table import shape_table
from seqgen.trace.model import trace

SPEC = """\
model Fuse(num_classes=10, hidden=8)
input image 3x8x8
input meta (n_meta=5,)

conv2d 4 k=3 p=1
relu
adaptiveavgpool2d 1
flatten
concat dim=1 name=fuse:
    branch name=image:
        identity
    branch name=meta from=meta:
        linear hidden
        relu
linear num_classes
"""

HEADER = "model M(n=4)\ninput a 3x8x8\n"


def _generate(tmp_path: Path, text: str, name: str) -> tuple[list[Path], ModuleType]:
    return generated_module(tmp_path, text, name, "inputs")


# ------------------------------------------------------------------------------ parser


def test_parser_reads_named_inputs_and_branch_sources() -> None:
    spec = parse(SPEC)
    assert spec.input_name == "image"
    assert [(i.name, i.dtype) for i in spec.inputs] == [("image", "float"), ("meta", "float")]
    assert [p.name for p in spec.params if p.from_input] == ["n_meta"]
    merge = spec.layers[4]
    assert getattr(merge, "branch_from", None) == (None, "meta")


def test_one_unnamed_input_is_unchanged() -> None:
    spec = parse("input 3x8x8\nconv2d 4 k=3\n")
    assert spec.input_name is None and spec.inputs == () and spec.extra_inputs == ()


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("input 3x8x8\ninput b 4\nlinear 2\n", "the first has no name", 2),
        ("input a 3x8x8\ninput 4\nlinear 2\n", "a second `input` needs a name", 2),
        ("input a 4\ninput a 5\nlinear 2\n", "defined twice", 2),
        ("input a 4\ninput x 5\nlinear 2\n", "is reserved", 2),
        ("input a 4\ninput out 5\nlinear 2\n", "is taken", 2),
        (
            "model M(shapes=3)\ninput a 4\ninput b 5\nconcat:\n    branch:\n        linear shapes\n"
            "    branch from=b:\n        linear 2\n",
            "taken in a model with named inputs",
            1,
        ),
        ("input a 4\ninput b 5\nlinear 2\n", "input 'b' is not read", 2),
        (
            "input a 4\ninput b 5\nadd:\n    branch:\n        linear 3\n"
            "    branch from=c:\n        linear 3\n",
            "no input named 'c'",
            3,
        ),
        (
            "input 4\nadd:\n    branch:\n        linear 3\n    branch from=c:\n        linear 3\n",
            "no input named 'c'",
            2,
        ),
        (
            "input a 4\ninput b 5\nresidual:\n    add:\n        branch:\n            linear 4\n"
            "        branch from=b:\n            linear 4\n",
            "only supported in a merge of the trunk's top level",
            4,
        ),
        (
            "input a 4\ninput b 5\nadd:\n    branch from=b from=b:\n        linear 3\n"
            "    branch:\n        linear 3\n",
            "given twice",
            4,
        ),
        ("input a 4\nadd:\n    branch from=1:\n        linear 3\n", "not a valid Python", 3),
        (
            "input a 4\ninput b 5\nlinear 3 name=p\nadd:\n    branch:\n        relu\n"
            "    branch from=b:\n        linear 3\nhead b:\n    relu\nhead h from=p:\n    relu\n",
            "also a parameter, block, head",
            2,
        ),
        (
            "model M(b=2)\ninput a 4\ninput b 5\nadd:\n    branch:\n        linear b\n"
            "    branch from=b:\n        linear 2\n",
            "also a parameter",
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


# ------------------------------------------------------------------------------ trace


def test_each_branch_is_traced_from_its_input() -> None:
    traced = trace(parse(SPEC))
    assert [(i.name, [d.code for d in i.shape]) for i in traced.inputs] == [
        ("image", ["N", "3", "8", "8"]),
        ("meta", ["N", "n_meta"]),
    ]
    merge = traced.layers[4]
    assert [d.code for d in merge.out_shape] == ["N", "hidden + 4"]
    assert traced.total_params.code == (
        "hidden + hidden * n_meta + (hidden + 4) * num_classes + num_classes + 112"
    )


def test_shapes_must_agree_exactly_across_inputs() -> None:
    text = (
        "model M(w=6)\ninput a 4\ninput b (5,)\n"
        "add:\n    branch:\n        linear w\n    branch from=b:\n        linear 7\n"
    )
    with pytest.raises(SeqgenError) as info:
        trace(parse(text))
    assert "<spec>:4:" in info.value.render()


def test_an_in_place_layer_may_not_change_an_input_a_branch_reads_later() -> None:
    text = (
        "input a 4\nrelu inplace=True\nlinear 4\nadd:\n    branch:\n        identity\n"
        "    branch from=a:\n        identity\n"
    )
    with pytest.raises(SeqgenError) as info:
        trace(parse(text))
    assert "<spec>:2:" in info.value.render() and "inplace=True" in info.value.render()
    trace(parse(text.replace("from=a", "from=b").replace("input a 4", "input a 4\ninput b 4")))


def test_a_symbolic_agreement_is_checked_by_init(tmp_path: Path) -> None:
    text = (
        "model M(w=6, v=6)\ninput a 4\ninput b (5,)\n"
        "add:\n    branch:\n        linear w\n    branch from=b:\n        linear v\n"
    )
    _, module = _generate(tmp_path, text, "agree")
    assert tuple(module.M(w=3, v=3)(torch.randn(2, 4), torch.randn(2, 5)).shape) == (2, 3)
    with pytest.raises(ValueError, match="w"):
        module.M(w=3, v=4)


# ------------------------------------------------------------------------------ generated model


class _HandWritten(nn.Module):
    def __init__(self, num_classes: int, hidden: int, n_meta: int) -> None:
        super().__init__()
        self.trunk_0 = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.fuse_image = nn.Sequential(nn.Identity())
        self.fuse_meta = nn.Sequential(nn.Linear(n_meta, hidden), nn.ReLU())
        self.trunk_1 = nn.Sequential(nn.Linear(hidden + 4, num_classes))

    def forward(self, image: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        x = self.trunk_0(image)
        x = torch.cat([self.fuse_image(x), self.fuse_meta(meta)], dim=1)
        out: torch.Tensor = self.trunk_1(x)
        return out


@pytest.mark.parametrize(("num_classes", "hidden", "n_meta"), [(10, 8, 5), (3, 1, 1), (17, 12, 9)])
def test_generated_model_equals_a_hand_written_one(
    tmp_path: Path, num_classes: int, hidden: int, n_meta: int
) -> None:
    _, module = _generate(tmp_path, SPEC, f"fuse_{num_classes}_{hidden}_{n_meta}")
    torch.manual_seed(0)
    generated = module.Fuse(num_classes=num_classes, hidden=hidden, n_meta=n_meta).eval()
    reference = _HandWritten(num_classes, hidden, n_meta).eval()
    theirs = generated.state_dict()
    assert list(theirs) == list(reference.state_dict())
    reference.load_state_dict(theirs)
    image, meta = torch.randn(3, 3, 8, 8), torch.randn(3, n_meta)
    torch.testing.assert_close(generated(image, meta), reference(image, meta))
    assert generated(image=image, meta=meta).shape == (3, num_classes)


def test_forward_checks_each_input(tmp_path: Path) -> None:
    files, module = _generate(tmp_path, SPEC, "fuse_checks")
    source = files[0].read_text()
    assert "def forward(self, image: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:" in source
    assert "x = torch.cat([self.fuse_image(x), self.fuse_meta(meta)], dim=1)" in source
    assert "class Concat" not in source and "self.model" not in source
    model = module.Fuse()
    with pytest.raises(ValueError, match="expected a 2-d input meta"):
        model(torch.randn(2, 3, 8, 8), torch.randn(5))
    with pytest.raises(ValueError, match="input meta dim 1 must be n_meta, got 6"):
        model(torch.randn(2, 3, 8, 8), torch.randn(2, 6))
    with pytest.raises(ValueError, match="input image dim 2 must be 8"):
        model(torch.randn(2, 3, 9, 8), torch.randn(2, 5))


def test_a_merge_at_the_start_reads_the_first_input(tmp_path: Path) -> None:
    text = (
        "model T(d=4)\ninput u (6,)\ninput v (seq=3,) dtype=long\n"
        "multiply:\n    branch:\n        linear d\n    branch from=v:\n"
        "        embedding 10 d\n        flatten\n        linear d\n"
    )
    files, module = _generate(tmp_path, text, "towers")
    source = files[0].read_text()
    assert "x: torch.Tensor = self.merge_0_0(u) * self.merge_0_1(v)" in source
    assert "return x" in source
    out = module.T(d=5, seq=4)(torch.randn(2, 6), torch.randint(0, 10, (2, 4)))
    assert tuple(out.shape) == (2, 5)


@pytest.mark.slow
def test_generated_tests_pass(tmp_path: Path) -> None:
    files, _ = _generate(tmp_path, SPEC, "fuse_tests")
    text = files[1].read_text()
    assert '"meta": (batch, n_meta),' in text
    assert "def test_output_at_other_values" in text
    assert "dynamic_shapes=dynamic_shapes" in text
    run_generated_tests(files[1])


def test_free_named_sizes_of_each_input_are_exported_dynamic(tmp_path: Path) -> None:
    text = (
        "model S(d=4)\ninput a (2, la=6)\ninput b (2, lb=5)\n"
        "concat dim=2:\n    branch:\n        conv1d d 1\n    branch from=b:\n        conv1d d 1\n"
        "adaptiveavgpool1d 1\nflatten\n"
    )
    files, _ = _generate(tmp_path, text, "seqs")
    test = files[1].read_text()
    assert '"a": {0: batch, 2: la},' in test and '"b": {0: batch, 2: lb},' in test
    run_generated_tests(files[1])


# ------------------------------------------------------------------------------ report


def test_check_and_summary_show_every_input() -> None:
    traced = trace(parse(SPEC))
    table = shape_table(traced)
    assert "input image" in table and "input meta" in table
    summary = render_summary(traced)
    assert summary.splitlines()[0] == "Fuse: inputs image (N, 3, 8, 8), meta (N, n_meta [5])"
    bytes_in = (3 * 8 * 8 + 5) * 4
    assert f"{bytes_in / 1e6:,.2f} MB" in summary


def test_diagram_starts_a_from_branch_at_its_input() -> None:
    traced = trace(parse(SPEC))
    diagram = build(traced)
    boxes = {b.label: b.id for b in all_boxes(diagram)}
    assert "input image" in boxes and "input meta" in boxes
    edges = [(e.source, e.target) for e in all_edges(diagram)]
    assert not any(target == boxes["input meta"] for _, target in edges)
    linear = next(b.id for b in all_boxes(diagram) if b.label.startswith("Linear(n_meta"))
    assert (boxes["input meta"], linear) in edges


HEADS = """\
model Both(num_classes=5, hidden=8)
input image 3x8x8
input meta (n_meta=4,)

conv2d 4 k=3 p=1
relu
maxpool2d 2 name=mid
flatten
concat dim=1 name=fuse:
    branch:
        identity
    branch from=meta:
        linear hidden
linear 16
relu

head logits:
    linear num_classes
head aux from=mid train_only=True:
    adaptiveavgpool2d 1
    flatten
    linear num_classes
head side from=fuse:
    linear 2
"""


class _BothOut(NamedTuple):
    logits: torch.Tensor
    aux: torch.Tensor | None
    side: torch.Tensor


class _Both(nn.Module):
    def __init__(self, num_classes: int, hidden: int, n_meta: int) -> None:
        super().__init__()
        self.mid = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.trunk_0 = nn.Sequential(nn.Flatten())
        self.fuse_0 = nn.Sequential(nn.Identity())
        self.fuse_1 = nn.Sequential(nn.Linear(n_meta, hidden))
        self.trunk = nn.Sequential(nn.Linear(64 + hidden, 16), nn.ReLU())
        self.logits = nn.Sequential(nn.Linear(16, num_classes))
        self.aux = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))
        self.side = nn.Sequential(nn.Linear(64 + hidden, 2))

    def forward(self, image: torch.Tensor, meta: torch.Tensor) -> _BothOut:
        mid = self.mid(image)
        fuse = torch.cat([self.fuse_0(self.trunk_0(mid)), self.fuse_1(meta)], dim=1)
        features = self.trunk(fuse)
        aux = self.aux(mid) if self.training else None
        return _BothOut(self.logits(features), aux, self.side(fuse))


@pytest.mark.parametrize(("num_classes", "hidden", "n_meta"), [(5, 8, 4), (2, 3, 7)])
def test_heads_with_several_inputs_equal_a_hand_written_model(
    tmp_path: Path, num_classes: int, hidden: int, n_meta: int
) -> None:
    files, module = _generate(tmp_path, HEADS, f"both_{num_classes}_{hidden}_{n_meta}")
    source = files[0].read_text()
    assert "fuse: torch.Tensor = torch.cat([self.fuse_0(x), self.fuse_1(meta)], dim=1)" in source
    torch.manual_seed(0)
    generated = module.Both(num_classes=num_classes, hidden=hidden, n_meta=n_meta)
    reference = _Both(num_classes, hidden, n_meta)
    assert list(generated.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(generated.state_dict())
    image, meta = torch.randn(3, 3, 8, 8), torch.randn(3, n_meta)
    for mode in ("train", "eval"):
        got = getattr(generated, mode)()(image, meta)
        want = getattr(reference, mode)()(image, meta)
        for name in want._fields:
            a, b = getattr(got, name), getattr(want, name)
            assert (a is None) == (b is None) == (mode == "eval" and name == "aux")
            if a is not None:
                torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_generated_tests_of_heads_with_several_inputs_pass(tmp_path: Path) -> None:
    files, _ = _generate(tmp_path, HEADS, "both_tests")
    text = files[1].read_text()
    assert "def expected_output_shapes(" in text and "TRAIN_ONLY" in text
    run_generated_tests(files[1])


# ------------------------------------------------------------------------------ differential
# A random two-input spec `A; merge(branch: B1 | branch from=b: B2)` against its plain pieces:
# the single-input models `A; B1` (from input a) and `B2` (from input b), combined by torch as
# the merge does. Same sizes, counts, refusals, and outputs after copying weights.

STACK_MENU = ["linear c", "relu", "linear 6", "layernorm", "dropout 0.1", "linear c bias=False"]
MERGES = {
    "concat dim=1": torch.cat,
    "add": torch.add,
    "multiply": torch.mul,
    "subtract": torch.sub,
}


def _random_inputs_case(seed: int) -> tuple[str, list[str], list[str], list[str]]:
    rng = random.Random(seed)
    merge = rng.choice(sorted(MERGES))
    stacks = [[rng.choice(STACK_MENU) for _ in range(rng.randint(0, 3))] for _ in range(3)]
    if merge != "concat dim=1" or rng.random() < 0.5:  # widths agree: each branch ends `linear w`
        stacks[1].append("linear w")
        stacks[2].append("linear w")
    stacks[1] = stacks[1] or ["identity"]
    stacks[2] = stacks[2] or ["identity"]
    return merge, stacks[0], stacks[1], stacks[2]


def _combine(merge: str, one: torch.Tensor, two: torch.Tensor) -> torch.Tensor:
    return torch.cat([one, two], dim=1) if merge.startswith("concat") else MERGES[merge](one, two)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(int(os.environ.get("SEQGEN_FUZZ_SPECS", "4"))))
def test_two_inputs_equal_their_plain_pieces(tmp_path: Path, seed: int) -> None:
    merge, a, b1, b2 = _random_inputs_case(seed)
    header = "model M(c=4, w=3, nb=5)"
    text = "\n".join(
        [header, "input a (7,)", "input b (nb,)", *a, f"{merge}:", "    branch:"]
        + [f"        {line}" for line in b1]
        + ["    branch from=b:"]
        + [f"        {line}" for line in b2]
    )
    first = "\n".join([header, "input (7,)", *a, *b1, "linear nb", "linear 1"])
    second = "\n".join([header, "input (nb,)", *b2, "linear c", "linear w"])
    try:
        _, module = _generate(tmp_path, text + "\n", f"multi_{seed}")
    except SeqgenError as e:  # only a merge of differing widths may be refused
        assert "concat" not in merge and "w" not in b1[-1], e
        return
    # the plain pieces use every parameter (so they take the same arguments), then ignore it
    _, one = _generate(tmp_path, first + "\n", f"one_{seed}")
    _, two = _generate(tmp_path, second + "\n", f"two_{seed}")
    rng = random.Random(seed)
    for values in [{}, *({k: rng.randint(0, 6) for k in ("c", "w", "nb")} for _ in range(3))]:
        torch.manual_seed(seed)
        built = []
        for mod in (module, one, two):
            try:
                built.append(mod.M(**values))
            except ValueError:
                built.append(None)
        if built[0] is None:  # what the model refuses, one of its pieces refuses too
            assert None in built[1:], values
            continue
        if None in built:  # a piece's extra tail refuses a value the model never reads
            continue
        model, ref_one, ref_two = (m.eval() for m in built if m is not None)
        state = model.state_dict()
        keys_one = [k for k in state if not k.startswith("merge_0_1.")]
        keys_two = [k for k in state if k.startswith("merge_0_1.")]
        ref_one_keys = list(ref_one.state_dict())[: len(keys_one)]
        ref_two_keys = list(ref_two.state_dict())[: len(keys_two)]
        ref_one.load_state_dict(
            {**ref_one.state_dict(), **dict(zip(ref_one_keys, (state[k] for k in keys_one)))}
        )
        ref_two.load_state_dict(
            {**ref_two.state_dict(), **dict(zip(ref_two_keys, (state[k] for k in keys_two)))}
        )
        nb = values.get("nb", 5)
        x_a, x_b = torch.randn(3, 7), torch.randn(3, nb)
        upto = len(a) + len(b1)  # the pieces' layers before their extra tail
        want = _combine(merge, ref_one.model[:upto](x_a), ref_two.model[: len(b2)](x_b))
        torch.testing.assert_close(model(x_a, x_b), want)


# ------------------------------------------------------------------------------ shared branches

SIAMESE = """\
model Twin(dim=6)
input left (5,)
input right (5,)

add name=towers:
    branch name=left:
        linear dim
        relu
        linear 4
    branch from=right shares=left:
linear 1
"""


def test_a_shared_branch_reuses_the_modules_and_counts_them_once(tmp_path: Path) -> None:
    files, module = _generate(tmp_path, SIAMESE, "twin")
    source = files[0].read_text()
    assert "x: torch.Tensor = self.towers_left(left) + self.towers_left(right)" in source
    assert source.count("nn.Linear(5, dim)") == 1
    traced = trace(parse(SIAMESE))
    assert traced.total_params.code == "10 * dim + 9"  # one tower (5d + d + 4d + 4), one head
    for dim in (6, 1, 11):
        model = module.Twin(dim=dim).eval()
        tower = nn.Sequential(nn.Linear(5, dim), nn.ReLU(), nn.Linear(dim, 4))
        head = nn.Linear(4, 1)
        state = model.state_dict()
        tower.load_state_dict(
            {
                k.removeprefix("towers_left."): v
                for k, v in state.items()
                if k.startswith("towers_left.")
            }
        )
        head.load_state_dict(
            {k.removeprefix("trunk_0.0."): v for k, v in state.items() if k.startswith("trunk_0.")}
        )
        a, b = torch.randn(3, 5), torch.randn(3, 5)
        torch.testing.assert_close(model(a, b), head(tower(a) + tower(b)))
        assert sum(p.numel() for p in model.parameters()) == 5 * dim + dim + 4 * (dim + 1) + 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SIAMESE.replace("shares=left", "shares=other"), "no branch of this merge"),
        (SIAMESE.replace(" from=right shares=left", " shares=left"), "add `from=INPUT`"),
        (SIAMESE.replace("shares=left:", "shares=left:\n        relu"), "no stack of its own"),
        (SIAMESE.replace("shares=left:", "shares=left shares=left:"), "given twice"),
    ],
)
def test_a_misused_shares_is_a_syntax_error(text: str, message: str) -> None:
    with pytest.raises(SeqgenError) as info:
        parse(text)
    assert message in info.value.render()


def test_shared_layers_must_be_built_alike_for_both_inputs() -> None:
    text = SIAMESE.replace("input right (5,)", "input right (7,)")
    with pytest.raises(SeqgenError) as info:
        trace(parse(text))
    rendered = info.value.render()
    assert "would build them otherwise: nn.Linear(7, dim)" in rendered
    assert "<spec>:5:" in rendered


def test_shared_layers_built_from_equal_constant_sizes_are_alike(tmp_path: Path) -> None:
    # the branch reads a flattened (N, 2 * 3), its twin an input (N, 6): the same BatchNorm1d(6)
    # (found by fuzz/differential.py, seed 17; refused before as "nn.BatchNorm1d(6) where 'a'
    # has nn.BatchNorm1d(2 * 3)")
    text = (
        "model M\ninput first (1, 10, 15)\ninput in2 (6,)\nmaxpool2d 2\nmaxpool2d 3 ceil_mode=True"
        "\nflatten\nmultiply:\n    branch name=a:\n        batchnorm1d\n"
        "    branch name=b from=in2 shares=a:\nlinear 7\n"
    )
    files, module = _generate(tmp_path, text, "folded")
    assert "self.merge_0_a(x) * self.merge_0_a(in2)" in files[0].read_text()
    model = module.M().eval()
    state = model.state_dict()
    norm, head = nn.BatchNorm1d(6).eval(), nn.Linear(6, 7)
    norm.load_state_dict(
        {k.removeprefix("merge_0_a.0."): v for k, v in state.items() if "merge" in k}
    )
    head.load_state_dict(
        {k.removeprefix("trunk_1.0."): v for k, v in state.items() if "trunk_1" in k}
    )
    first, other = torch.randn(3, 1, 10, 15), torch.randn(3, 6)
    x = nn.functional.max_pool2d(nn.functional.max_pool2d(first, 2), 3, ceil_mode=True)
    torch.testing.assert_close(model(first, other), head(norm(x.flatten(1)) * norm(other)))
    assert sum(p.numel() for p in model.parameters()) == 12 + 7 * 6 + 7


def test_submodule_names_that_collide_are_an_error(tmp_path: Path) -> None:
    text = (
        "input a 4\ninput b 4\nlinear 4\nadd name=trunk:\n    branch:\n        relu\n"
        "    branch from=b:\n        relu\nlinear 2\n"
    )
    with pytest.raises(SeqgenError) as info:
        _generate(tmp_path, text, "collide")
    rendered = info.value.render()
    assert "would share a name among trunk_0, trunk_0, trunk_1, trunk_1" in rendered
    assert ":4:" in rendered and "rename a merge or a branch" in rendered


def test_device_check_feeds_each_input() -> None:
    wider = (
        "input a 4\ninput b 6\nconcat:\n    branch:\n        identity\n"
        "    branch from=b:\n        identity\n"
    )
    for text in (SPEC, HEADS, SIAMESE, wider):
        verify_on_device(trace(parse(text)), "cpu")  # raises on a shape that differs


def test_tables_mark_a_branch_that_reads_an_input() -> None:
    rows = [r.label for r in rows_of(trace(parse(SPEC)))]
    fuse = rows.index("fuse: Concat(2 branches, dim=1)")
    assert rows[fuse + 1 : fuse + 5] == [
        "branch image",
        "nn.Identity()",
        "branch meta from meta",
    ] + ["nn.Linear(n_meta, hidden)"]
    shared = rows_of(trace(parse(SIAMESE)))
    row = next(r for r in shared if r.label == "branch from right, shares left")
    assert (row.params, row.sizes) == (0, (4,)) and row.macs == (5 + 1) * 6 + (6 + 1) * 4
    assert sum(r.params for r in shared if r.depth == 1) == 5 * 6 + 6 + 6 * 4 + 4


def test_a_named_size_two_inputs_share_is_checked_and_exported_for_both(tmp_path: Path) -> None:
    text = (
        "model Al(d=4)\ninput a (seq=10, 3)\ninput b (seq, 5)\nconcat dim=2:\n    branch:\n"
        "        identity\n    branch from=b:\n        identity\nlinear d\n"
    )
    files, module = _generate(tmp_path, text, "aligned")
    model = module.Al()
    assert tuple(model(torch.randn(2, 7, 3), torch.randn(2, 7, 5)).shape) == (2, 7, 4)
    with pytest.raises(ValueError, match="input b dim 1 must be seq, got 6 while seq=7"):
        model(torch.randn(2, 7, 3), torch.randn(2, 6, 5))
    assert '"b": {0: batch, 1: seq},' in files[1].read_text()
    run_generated_tests(files[1])


def test_lint_reads_a_from_branch_at_its_own_input() -> None:
    text = (
        "input a 3x8x8\ninput b (5,)\nconv2d 4 k=1\nadd:\n    branch:\n        flatten\n"
        "        linear 6\n    branch from=b:\n        linear 6\n"
    )
    # the branch's linear reads b's (N, 5), not the conv's (N, 4, 8, 8): no W002
    assert [d.code for d in lint(trace(parse(text)))] == []


def test_a_literal_repeat_of_a_merge_that_reads_an_input_is_unrolled(tmp_path: Path) -> None:
    """`repeat 2:` at the top level is unrolled there: each pass's merge reads input b with its
    own branch modules, as the two merges written out do."""
    merge = "add:\n    branch:\n        linear 5\n    branch from=b:\n        linear w\n"
    head = "model M(w=5)\ninput a (5,)\ninput b (5,)\nlinear 5\n"
    looped = head + "repeat 2:\n" + "".join(f"    {line}\n" for line in merge.splitlines())
    _, module = _generate(tmp_path, looped + "linear 2\n", "looped")
    _, twin_module = _generate(tmp_path, head + merge * 2 + "linear 2\n", "written")
    model, twin = module.M(), twin_module.M()
    twin.load_state_dict(model.state_dict())
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(a, b), twin(a, b))
        x = model.trunk_0(a)
        x = model.merge_0_0(x) + model.merge_0_1(b)
        x = model.merge_1_0(x) + model.merge_1_1(b)
        torch.testing.assert_close(model(a, b), model.trunk_1(x))
    assert not torch.equal(model.merge_0_1[0].weight, model.merge_1_1[0].weight)
