"""The ops of a learned transform (PointNet's): `bmm:` and `add_identity` after `unflatten`.

`bmm:` is a merge of two branches multiplied as batches of matrices, a (N, n, m) by b (N, m, p):
the runtime class `Bmm` against torch.bmm itself, the parser's and the tracer's located errors,
the symbolic check of the inner sizes in `__init__`, the mult-adds (N * n * m * p), and a
generated model against a hand-written torch module with the same weights at several parameter
values and point counts, where torch.bmm refuses exactly what `__init__` refuses.
`add_identity` after `linear k * k` and `unflatten 1 (k, k)` (k a parameter) against
`.view(-1, k, k) + torch.eye(k)` (its rule against torch: tests/test_seqrules.py).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import run_generated_tests
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seqgen.api import generate, options_for
from seqgen.diagram import build
from seqgen.diagram.graph import all_boxes, all_edges
from seqgen.errors import SeqgenError
from seqgen.ir import TracedMerge
from seqgen.lang.parser import parse
from seqgen.project.write import write_files
from seqgen.report.summary import render_summary
from seqgen.runtime.merges import Bmm
from seqgen.trace.model import trace

# a learned (c, c) transform applied to the input's points, PointNet's input transform with
# sizes as parameters: `k` is the matrix's row count, which must equal the points' width c
SPEC = """\
model Tf(c=3, w=8, k=3)
input (c, n=12)
bmm name=tf:
    branch name=points:
        transpose 1 2
    branch name=matrix:
        conv1d w 1
        amax 2
        linear k * c
        unflatten 1 (k, c)
transpose 1 2
conv1d 5 1
"""


class _Given(nn.Module):
    """A branch whose output is fixed."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out


class _HandWritten(nn.Module):
    """SPEC written by hand with torch.bmm."""

    def __init__(self, c: int, w: int, k: int) -> None:
        super().__init__()
        self.k, self.c = k, c
        self.conv = nn.Conv1d(c, w, 1)
        self.linear = nn.Linear(w, k * c)
        self.out = nn.Conv1d(c, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        matrix = self.linear(self.conv(x).amax(2)).view(-1, self.k, self.c)
        return self.out(torch.bmm(x.transpose(1, 2), matrix).transpose(1, 2))


def _generate(tmp_path: Path, text: str, name: str) -> ModuleType:
    spec = tmp_path / f"{name}.seq"
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec), str(tmp_path)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(f"bmm_{name}", result.files[0].path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return _generate(tmp_path_factory.mktemp("bmm"), SPEC, "tf")


# ------------------------------------------------------------------------------ runtime


@pytest.mark.parametrize(
    ("batch", "n", "m", "p"), [(1, 1, 1, 1), (2, 5, 3, 3), (3, 7, 1, 4), (4, 2, 64, 64)]
)
def test_runtime_bmm_is_torch_bmm(batch: int, n: int, m: int, p: int) -> None:
    torch.manual_seed(batch * n + m * p)
    a, b = torch.randn(batch, n, m), torch.randn(batch, m, p)
    got = Bmm(_Given(a), _Given(b))(torch.empty(0))
    assert got.shape == (batch, n, p)
    assert torch.equal(got, torch.bmm(a, b))
    named = Bmm({"points": _Given(a), "matrix": _Given(b)})
    assert list(named.branches) == ["points", "matrix"]
    assert torch.equal(named(torch.empty(0)), torch.bmm(a, b))


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ((2, 3, 4), (2, 5, 6), r"\(2, 3, 4\), \(2, 5, 6\) .* must be \(N, n, m\) and \(N, m, p\)"),
        ((2, 3, 4), (3, 4, 6), r"must be \(N, n, m\) and \(N, m, p\)"),
        ((2, 12), (2, 3, 4), r"\(2, 12\), \(2, 3, 4\) .* must both have rank 3"),
    ],
)
def test_runtime_bmm_names_both_shapes(
    a: tuple[int, ...], b: tuple[int, ...], message: str
) -> None:
    module = Bmm(_Given(torch.randn(a)), _Given(torch.randn(b)))
    with pytest.raises(ValueError, match=message):
        module(torch.empty(2, 1))
    with pytest.raises(RuntimeError):  # torch.bmm refuses them too
        torch.bmm(torch.randn(a), torch.randn(b))


def test_runtime_bmm_takes_two_branches() -> None:
    with pytest.raises(ValueError, match="two branches, got 3"):
        Bmm(nn.Identity(), nn.Identity(), nn.Identity())


# ------------------------------------------------------------------------------ spec errors


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    branch:\n        identity\n", "`bmm:` takes exactly 2 `branch:` stacks, found 1"),
        (
            "    branch:\n        identity\n" * 3,
            "`bmm:` takes exactly 2 `branch:` stacks, found 3",
        ),
    ],
)
def test_bmm_takes_exactly_two_branches(body: str, message: str) -> None:
    with pytest.raises(SeqgenError) as info:
        parse(f"input (3, 4)\nbmm:\n{body}")
    rendered = info.value.render()
    assert message in rendered and "<spec>:2:1:" in rendered
    assert "(N, n, m), by branch 2, (N, m, p)" in rendered


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model M(c=3)\ninput (3, n=20)\nbmm:\n    branch:\n        conv1d 5 1\n"
            "        transpose 1 2\n    branch:\n        linear 9\n        unflatten 2 (c, c)\n",
            "bmm: branch 1 gives (N, n, 5), branch 2 gives (N, 3, c, c); bmm needs two rank-3 "
            "tensors",
        ),
        (
            "model M(c=3)\ninput (3, n=20)\nbmm:\n    branch:\n        conv1d 5 1\n"
            "        transpose 1 2\n    branch:\n        amax 2\n        linear c * c\n"
            "        unflatten 1 (c, c)\n",
            "bmm's inner sizes must agree: branch 1 ends with 5, branch 2 starts with c=3 "
            "(after the batch)",
        ),
        (
            "model M\ninput (3, 4)\nbmm:\n    branch:\n        identity\n    branch:\n"
            "        identity\n",
            "bmm's inner sizes must agree: branch 1 ends with 4, branch 2 starts with 3",
        ),
    ],
)
def test_a_bmm_that_cannot_multiply_is_a_located_error(text: str, message: str) -> None:
    with pytest.raises(SeqgenError) as info:
        trace(parse(text))
    rendered = info.value.render()
    assert message in rendered, rendered
    assert "<spec>:3:1:" in rendered


def test_the_inner_sizes_are_checked_in_init_where_they_are_symbolic(
    generated: ModuleType,
) -> None:
    with pytest.raises(ValueError, match=r"c must equal k \(bmm multiplies"):
        generated.Tf(c=3, k=4)
    generated.Tf(c=4, k=4)


# ------------------------------------------------------------------------------ counts


def test_mult_adds_count_n_m_p_per_sample() -> None:
    traced = trace(parse(SPEC))
    merge = traced.layers[0]
    assert isinstance(merge, TracedMerge) and merge.class_name == "Bmm"
    assert [d.code for d in merge.out_shape] == ["N", "n", "c"]
    # the branches' own, then the product itself: n * m * p = n * c * c
    branches = sum(node.macs.value for branch in merge.branches for node in branch)
    assert branches == (3 * 8 + 8) * 12 + (8 + 1) * 9  # conv1d c->w per point, linear w->k*c
    assert merge.macs.value == branches + 12 * 3 * 3
    assert "c * c * n" in merge.macs.code
    # what torch's flop counter counts for the product itself (flops / 2, per sample)
    a, b = torch.randn(2, 12, 3), torch.randn(2, 3, 3)
    with FlopCounterMode(display=False) as counter:
        Bmm(_Given(a), _Given(b))(torch.empty(0))
    assert counter.get_total_flops() // 2 // 2 == merge.macs.value - branches
    summary = render_summary(traced, batch=2)
    total = 2 * (merge.macs.value + (3 + 1) * 5 * 12)  # and the last conv1d c->5
    assert re.search(rf"^mult-adds \(batch 2\) +{total:,}$", summary, flags=re.MULTILINE)


def test_diagram_joins_both_branches_in_a_bmm_box() -> None:
    diagram = build(trace(parse(SPEC)))
    boxes = {b.label: b.id for b in all_boxes(diagram)}
    assert "Bmm (@)" in boxes
    into = [e.source for e in all_edges(diagram) if e.target == boxes["Bmm (@)"]]
    labels = {b.id: b.label for b in all_boxes(diagram)}
    assert sorted(labels[i] for i in into) == ["Transpose(1, 2)", "Unflatten(1, (k, c))"]


# ------------------------------------------------------------------------------ generated model


@pytest.mark.parametrize(
    ("c", "w", "k", "n"), [(3, 8, 3, 12), (1, 1, 1, 1), (5, 2, 5, 7), (2, 16, 2, 300)]
)
def test_generated_model_equals_torch_bmm_by_hand(
    generated: ModuleType, c: int, w: int, k: int, n: int
) -> None:
    torch.manual_seed(c + w + n)
    model = generated.Tf(c=c, w=w, k=k).eval()
    reference = _HandWritten(c, w, k).eval()
    ours = list(model.state_dict().values())
    assert [t.shape for t in ours] == [t.shape for t in reference.state_dict().values()]
    reference.load_state_dict(dict(zip(reference.state_dict(), ours, strict=True)))
    x = torch.randn(3, c, n)
    with torch.no_grad():
        got = model(x)
        assert got.shape == (3, 5, n)
        torch.testing.assert_close(got, reference(x))
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )


@pytest.mark.parametrize(("c", "k"), [(3, 4), (2, 1), (1, 5)])
def test_init_refuses_exactly_what_torch_bmm_refuses(generated: ModuleType, c: int, k: int) -> None:
    with pytest.raises(RuntimeError):
        _HandWritten(c, 4, k)(torch.randn(2, c, 6))
    with pytest.raises(ValueError, match="c must equal k"):
        generated.Tf(c=c, w=4, k=k)


# ------------------------------------------------------------------------------ add_identity

IDENTITY = """\
model Stn(k=3, w=4)
input (k, n=10)
conv1d w 1
amax 2
linear k * k
unflatten 1 (k, k)
add_identity
"""


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModuleType]:
    out = tmp_path_factory.mktemp("add_identity")
    return out, _generate(out, IDENTITY, "stn")


@pytest.mark.parametrize(("k", "w", "n"), [(3, 4, 10), (1, 1, 1), (5, 2, 7), (64, 3, 4)])
def test_add_identity_after_unflatten_is_view_plus_eye(
    identity: tuple[Path, ModuleType], k: int, w: int, n: int
) -> None:
    torch.manual_seed(k * w)
    model = identity[1].Stn(k=k, w=w).eval()
    conv, linear = nn.Conv1d(k, w, 1), nn.Linear(w, k * k)
    weights = list(model.state_dict().values())
    conv.load_state_dict(dict(zip(conv.state_dict(), weights[:2], strict=True)))
    linear.load_state_dict(dict(zip(linear.state_dict(), weights[2:], strict=True)))
    x = torch.randn(3, k, n)
    with torch.no_grad():
        got = model(x)
        want = linear(conv(x).amax(2)).view(-1, k, k) + torch.eye(k)
    assert got.shape == (3, k, k)
    torch.testing.assert_close(got, want)


def test_add_identity_of_unequal_parameters_is_checked_in_init(tmp_path: Path) -> None:
    text = "model M(a=3, b=3)\ninput (9,)\nlinear a * b\nunflatten 1 (a, b)\nadd_identity\n"
    module = _generate(tmp_path, text, "unequal")
    assert module.M(a=4, b=4)(torch.randn(2, 9)).shape == (2, 4, 4)
    with pytest.raises(ValueError, match=r"a must equal b \(AddIdentity: the last two dims"):
        module.M(a=4, b=3)


@pytest.mark.parametrize(
    ("body", "message", "where"),
    [
        ("linear 9\nadd_identity\n", "got a rank-2 input; `unflatten 1 (K, K)` turns", "4:1"),
        (
            "linear 6\nunflatten 1 (2, 3)\nadd_identity\n",
            "the last two dims (2 and 3) must be equal",
            "5:1",
        ),
        ("linear 9\nadd_identity 1\n", "add_identity takes 0 positional argument(s)", "4:14"),
    ],
)
def test_add_identity_misuse_is_a_located_error(body: str, message: str, where: str) -> None:
    with pytest.raises(SeqgenError) as info:
        trace(parse(f"model M\ninput (9,)\n{body}"))
    rendered = info.value.render()
    assert message in rendered and f"<spec>:{where}:" in rendered, rendered


def test_generated_tests_of_a_symbolic_transform_pass(identity: tuple[Path, ModuleType]) -> None:
    out, _ = identity
    run_generated_tests(out / "test_stn.py")
