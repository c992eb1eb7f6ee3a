"""Heads that read a named branch of a named top-level merge (`head mu from=z.mu:`), and heads
without a stack (`head mu from=z.mu`: what the point gives, returned as is).

The parser's located errors (with "did you mean"), the traced shapes (a branch's, not the
merge's), the generated forward (the merge split into one nn.Sequential per branch, each
branch's output a local the head reads) against a hand-written torch module with the same
weights at two parameter values, with and without a second input, and the summary, check and
diagram rows; (slow) random specs against their single-output models (`SEQGEN_FUZZ_SPECS`
sizes the draw).
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
from seqgen.report.summary import render_summary
from seqgen.trace.model import trace

SPEC = """\
model Two(latent=4, hidden=16)
input 8

linear hidden
relu
concat name=z:
    branch name=mu:
        linear latent
    branch name=logvar:
        linear latent
        tanh
linear hidden
head out:
    linear 3
head mu from=z.mu:
    relu
head logvar from=z.logvar:
    identity
"""


def _generate(tmp_path: Path, text: str, name: str) -> tuple[list[Path], ModuleType]:
    return generated_module(tmp_path, text, name, "branches")


def test_parser_reads_a_merges_branch_as_the_point() -> None:
    spec = parse(SPEC)
    assert [(h.name, h.point, h.branch, h.source) for h in spec.heads] == [
        ("out", None, None, None),
        ("mu", "z", "mu", "z.mu"),
        ("logvar", "z", "logvar", "z.logvar"),
    ]
    loc = spec.heads[1].point_loc
    assert loc is not None and (loc.col, loc.width) == (14, 4)  # `z.mu`, underlined whole


@pytest.mark.parametrize(
    ("old", "new", "message", "col", "hint"),
    [
        (
            "from=z.mu:",
            "from=z.mux:",
            "`from=z.mux`: merge 'z' has no branch named 'mux'",
            16,
            "did you mean 'mu'?",
        ),
        (
            "from=z.mu:",
            "from=zz.mu:",
            "`from=zz.mu`: no top-level merge is named 'zz'",
            14,
            "did you mean 'z'?",
        ),
        (
            "from=z.mu:",
            "from=q.mu:",
            "`from=q.mu`: no top-level merge is named 'q'",
            14,
            "add `name=q` to the merge",
        ),
        (
            "from=z.mu:",
            "from=first.mu:",
            "'first' is no merge: a head reads a branch of a `concat:`",
            14,
            "drop `.mu`",
        ),
        (
            "from=z.mu:",
            "from=zz:",
            "`from=zz`: no top-level trunk layer is named 'zz'",
            14,
            "did you mean 'z'?",
        ),
        (
            "    branch name=mu:\n",
            "    branch:\n",
            "`from=z.mu`: merge 'z' has no branch named 'mu'",
            16,
            "name the branch the head reads: `branch name=mu:` in 'z'",
        ),
    ],
)
def test_a_bad_branch_point_is_a_located_error(
    old: str, new: str, message: str, col: int, hint: str
) -> None:
    text = SPEC.replace("linear hidden\nrelu\n", "linear hidden name=first\nrelu\n", 1)
    text = text.replace(old, new, 1)
    with pytest.raises(SeqgenError) as info:
        parse(text)
    d = info.value.diagnostic
    assert message in d.message and d.location is not None
    lines = text.splitlines()
    line = next(i for i, t in enumerate(lines, start=1) if t.startswith("head mu "))
    assert (d.location.line, d.location.col) == (line, col)
    assert hint in (d.hint or "")


def test_a_point_inside_a_merge_says_so() -> None:
    """FPN's P4 is named inside the merge that builds P3: the error said "no top-level trunk
    layer is named 'p4'" and hinted `name=p4`, which the spec already has."""
    text = (
        "input 8\nadd name=outer:\n    branch:\n        linear 8 name=inner\n    branch:\n"
        "        identity\nlinear 4\nhead h from=inner:\n    relu\n"
    )
    with pytest.raises(SeqgenError) as info:
        parse(text)
    d = info.value.diagnostic
    assert d.message.startswith("`from=inner`: 'inner' (line 4) is inside a merge: a head reads it")
    assert d.location is not None and (d.location.line, d.location.col) == (8, 13)
    assert "name the merges and branches around it" in (d.hint or "")  # its branch is unnamed
    named = text.replace(
        "    branch:\n        linear 8 name=inner",
        "    branch name=b:\n        linear 8 name=inner",
    )
    with pytest.raises(SeqgenError) as named_info:
        parse(named)
    assert named_info.value.diagnostic.hint == "did you mean `from=outer.b.inner`?"
    fixed = named.replace("from=inner:", "from=outer.b.inner:") + "head out\n"
    assert [h.point for h in parse(fixed).heads] == ["outer", None]  # the path it spells works


def test_a_residuals_branches_cannot_be_read() -> None:
    text = "input 8\nresidual name=r:\n    linear 8\nlinear 4\nhead h from=r.body:\n    relu\n"
    with pytest.raises(SeqgenError, match="'r' is a residual: a head reads a branch"):
        parse(text)


def test_a_dot_elsewhere_is_still_an_error() -> None:
    with pytest.raises(SeqgenError, match="unexpected character '.'"):
        parse("input 8\nlinear 4 name=a.b\n")
    with pytest.raises(SeqgenError, match="unexpected character '.'"):
        parse("input 8\nlinear 4 name=z\nhead h from= z .mu:\n    relu\n")


def test_a_head_is_traced_from_its_branchs_output() -> None:
    traced = trace(parse(SPEC))
    shapes = {h.name: [d.code for d in h.input_shape] for h in traced.heads}
    # the merge gives (N, 2 * latent); its branches (N, latent)
    assert [d.code for d in traced.layers[2].out_shape] == ["N", "2 * latent"]
    assert shapes == {"out": ["N", "hidden"], "mu": ["N", "latent"], "logvar": ["N", "latent"]}


def test_check_runs_each_head_from_its_branch() -> None:
    """`seqgen check --device cpu` builds the model for real and runs each head from what it
    reads (the branch run again from the merge's input): a head fed the merge's (N, 2 * latent)
    output instead would give a shape the trace does not say. (trace() itself already ran
    the same at other parameter values.)"""
    verify_on_device(trace(parse(SPEC)), "cpu")
    verify_on_device(trace(parse(INPUTS)), "cpu")


class _TwoOut(NamedTuple):
    out: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class _Two(nn.Module):
    """SPEC written by hand, as an expert would."""

    def __init__(self, latent: int, hidden: int) -> None:
        super().__init__()
        self.trunk_0 = nn.Sequential(nn.Linear(8, hidden), nn.ReLU())
        self.z_mu = nn.Sequential(nn.Linear(hidden, latent))
        self.z_logvar = nn.Sequential(nn.Linear(hidden, latent), nn.Tanh())
        self.trunk = nn.Sequential(nn.Linear(2 * latent, hidden))
        self.out = nn.Sequential(nn.Linear(hidden, 3))
        self.mu = nn.Sequential(nn.ReLU())
        self.logvar = nn.Sequential(nn.Identity())

    def forward(self, x: torch.Tensor) -> _TwoOut:
        x = self.trunk_0(x)
        mu, logvar = self.z_mu(x), self.z_logvar(x)
        features = self.trunk(torch.cat([mu, logvar], dim=1))
        return _TwoOut(self.out(features), self.mu(mu), self.logvar(logvar))


@pytest.mark.parametrize(("latent", "hidden"), [(4, 16), (3, 7)])
def test_generated_model_equals_a_hand_written_one(
    tmp_path: Path, latent: int, hidden: int
) -> None:
    files, module = _generate(tmp_path, SPEC, f"two_{latent}_{hidden}")
    source = files[0].read_text()
    for line in (
        "x = self.trunk_0(x)",
        "z_mu: torch.Tensor = self.z_mu(x)",
        "z_logvar: torch.Tensor = self.z_logvar(x)",
        "x = torch.cat([z_mu, z_logvar], dim=1)",
        "features: torch.Tensor = self.trunk(x)",
    ):
        assert f"        {line}\n" in source, line
    assert "class Concat" not in source  # the merge is a statement, not a module
    torch.manual_seed(0)
    generated = module.Two(latent=latent, hidden=hidden)
    reference = _Two(latent, hidden)
    assert list(generated.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(generated.state_dict())
    x = torch.randn(5, 8)
    got, want = generated(x), reference(x)
    assert got._fields == want._fields
    for name, ours, theirs in zip(got._fields, got, want, strict=True):
        assert ours.shape == theirs.shape and torch.equal(ours, theirs), name


INPUTS = """\
model Meta(latent=4)
input image 8
input meta 3

linear 16
add name=z:
    branch name=mu:
        linear latent
    branch name=side from=meta:
        linear latent
head out:
    linear 2
head side from=z.side:
    identity
"""


def test_a_branch_that_reads_another_input_can_be_a_heads_point(tmp_path: Path) -> None:
    files, module = _generate(tmp_path, INPUTS, "meta")
    source = files[0].read_text()
    assert "z_side: torch.Tensor = self.z_side(meta)" in source
    torch.manual_seed(0)
    model = module.Meta(latent=5).eval()
    image, meta = torch.randn(2, 8), torch.randn(2, 3)
    out = model(image=image, meta=meta)
    assert torch.equal(out.side, model.z_side(meta))
    assert tuple(out.out.shape) == (2, 2)


def test_summary_and_diagram_show_where_a_head_reads() -> None:
    traced = trace(parse(SPEC))
    text = render_summary(traced)
    assert "head mu (from z.mu)" in text and "head logvar (from z.logvar)" in text
    diagram = build(traced)
    boxes = {b.id: b.label for b in all_boxes(diagram)}
    edges = {(boxes[e.source], boxes[e.target]) for e in all_edges(diagram)}
    assert ("Linear(hidden, latent)", "ReLU()") in edges  # head mu reads branch mu's Linear
    assert ("Tanh()", "Identity()") in edges  # head logvar reads branch logvar's last layer


STACKLESS = """\
model Bare(latent=4)
input 8

linear 16 name=mid
relu
add name=z:
    branch name=mu:
        linear latent
    branch name=logvar:
        linear latent
linear 16
head out
head early from=mid train_only=True
head mu from=z.mu
head logvar from=z.logvar:
    relu
"""


def test_a_head_without_colon_has_no_stack() -> None:
    spec = parse(STACKLESS)
    assert [(h.name, len(h.layers)) for h in spec.heads] == [
        ("out", 0),
        ("early", 0),
        ("mu", 0),
        ("logvar", 1),
    ]
    traced = trace(spec)
    assert [[d.code for d in h.out_shape] for h in traced.heads] == [
        ["N", "16"],
        ["N", "16"],
        ["N", "latent"],
        ["N", "latent"],
    ]
    assert "head mu (from z.mu)" in render_summary(traced)
    diagram = build(traced)
    boxes = {b.id: b for b in all_boxes(diagram)}
    fed = [
        (boxes[e.source].label, boxes[e.target].shape)
        for e in all_edges(diagram)
        if boxes[e.target].label == "returned as is"
    ]
    assert fed == [
        ("Linear(latent, 16)", "(N, 16)"),
        ("Linear(8, 16)", "(N, 16)"),
        ("Linear(16, latent)", "(N, latent)"),
    ]


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("head a from=stem\n    linear 2\n", "expected ':' after `head a`", None),
        ("head a:\n", "needs an indented stack", "has no ':' (`head a`)"),
        ("head a from=stem train_only=True:\n", "needs an indented stack", "has no ':'"),
    ],
)
def test_a_colon_and_a_stack_go_together(text: str, message: str, hint: str | None) -> None:
    with pytest.raises(SeqgenError) as info:
        parse("input 3x8x8\nconv2d 4 k=1 name=stem\nrelu\n" + text)
    d = info.value.diagnostic
    assert message in d.message and d.location is not None and d.location.line == 4
    assert hint is None or hint in (d.hint or "")


def test_a_stackless_head_returns_its_points_output(tmp_path: Path) -> None:
    files, module = _generate(tmp_path, STACKLESS, "bare")
    source = files[0].read_text()
    assert "out=features," in source and "mu=z_mu," in source
    assert "early=mid if self.training else None," in source
    assert "lv=" not in source and "logvar=self.logvar(z_logvar)" in source
    torch.manual_seed(0)
    model = module.Bare(latent=3)
    assert [name for name, _ in model.named_children()] == [
        "mid",
        "trunk_0",
        "z_mu",
        "z_logvar",
        "trunk",
        "logvar",
    ]
    x = torch.randn(4, 8)
    with torch.no_grad():
        out = model.train()(x)
        mid = model.mid(x)
        inner = model.trunk_0(mid)
        mu, logvar = model.z_mu(inner), model.z_logvar(inner)
        assert torch.equal(out.early, mid) and torch.equal(out.mu, mu)
        assert torch.equal(out.logvar, torch.relu(logvar))
        assert torch.equal(out.out, model.trunk(mu + logvar))
        assert model.eval()(x).early is None


@pytest.mark.slow
@pytest.mark.parametrize("text", [SPEC, STACKLESS], ids=["branches", "stackless"])
def test_generated_tests_pass(tmp_path: Path, text: str) -> None:
    files, _ = _generate(tmp_path, text, "gen_tests")
    run_generated_tests(*[f for f in files if f.name.startswith("test_")])


# ------------------------------------------------------------------ random specs, plain models

BRANCH_MENU = [["linear c"], ["linear 6", "relu", "linear c"], ["linear c", "tanh"]]
HEAD_LINES = [[], ["relu"], ["linear n"]]
FUZZ_SPECS = int(os.environ.get("SEQGEN_FUZZ_SPECS", "4"))


Head = tuple[str, int | None, list[str]]
Case = tuple[list[str], str, list[list[str]], list[str], list[Head]]


def _random_branch_case(seed: int) -> Case:
    """(trunk before the merge, merge kind, its branches, trunk after it, heads): each head
    (name, branch index or None for the trunk's end, lines; no lines: no stack)."""
    rng = random.Random(seed)
    before = rng.choice([[], ["linear 8", "relu"], ["linear c"]])
    kind = rng.choice(["concat", "add", "multiply", "reparameterize"])
    count = 2 if kind == "reparameterize" else rng.randint(2, 3)
    branches = [rng.choice(BRANCH_MENU) for _ in range(count)]
    after = rng.choice([[], ["linear 5"], ["relu", "linear n"]])
    heads: list[Head] = [
        (f"h{i}", rng.choice([None, *range(count)]), rng.choice(HEAD_LINES)) for i in range(3)
    ]
    if after and all(at is not None for _, at, _ in heads):  # else `after` would feed nothing,
        heads[-1] = (heads[-1][0], None, heads[-1][2])  # a spec error (lang/heads.py)
    return before, kind, branches, after, heads


def _branch_spec(case: Case) -> str:
    before, kind, branches, after, heads = case
    out = ["model M(c=4, n=3)", "input 12", *before, f"{kind} name=z:"]
    for j, lines in enumerate(branches):
        out += [f"    branch name=b{j}:", *(f"        {line}" for line in lines)]
    out += after
    for name, at, lines in heads:
        source = "" if at is None else f" from=z.b{at}"
        out += [f"head {name}{source}" + (":" if lines else ""), *(f"    {x}" for x in lines)]
    return "\n".join(out) + "\n"


def _branch_plain(case: Case, head: int) -> str:
    """The single-output spec that computes head `head`: the trunk up to the merge, the
    branch's layers, the head's (from the trunk's end: the whole trunk, then the head's)."""
    before, kind, branches, after, heads = case
    _, at, lines = heads[head]
    spec = _branch_spec((before, kind, branches, after, [])).splitlines()
    if at is not None:
        spec = ["model M(c=4, n=3)", "input 12", *before, *branches[at]]
    return "\n".join([*spec, *lines]) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(FUZZ_SPECS))
def test_branch_heads_equal_their_plain_models(tmp_path: Path, seed: int) -> None:
    """Each head of a random spec (any merge kind, heads from branches or the trunk's end, with
    or without a stack) computes what its single-output spec computes, with the same weights,
    in eval mode, at the defaults and at other values."""
    case = _random_branch_case(seed)
    _, module = _generate(tmp_path, _branch_spec(case), f"fuzz_{seed}")
    plains = [
        _generate(tmp_path, _branch_plain(case, i), f"fuzz_{seed}_{i}")[1]
        for i in range(len(case[4]))
    ]
    rng = random.Random(seed)
    for values in [{}, {"c": rng.randint(1, 6), "n": rng.randint(1, 6)}]:
        torch.manual_seed(seed)
        model = module.M(**values).eval()
        state = model.state_dict()
        x = torch.randn(3, 12)
        out = model(x)
        for i, ((name, at, _), plain) in enumerate(zip(case[4], plains, strict=True)):
            ref = plain.M(**values).eval()
            trunk_keys = [k for k in state if k.startswith(("trunk_0.", "z_", "trunk."))]
            mine = [k for k in trunk_keys if at is None or k.startswith(("trunk_0.", f"z_b{at}."))]
            mine += [k for k in state if k.startswith(f"{name}.")]
            theirs = ref.state_dict()
            assert [tuple(state[k].shape) for k in mine] == [
                tuple(v.shape) for v in theirs.values()
            ], (i, _branch_plain(case, i))
            ref.load_state_dict({t: state[k] for t, k in zip(theirs, mine, strict=True)})
            torch.testing.assert_close(getattr(out, name), ref(x))
