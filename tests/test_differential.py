"""Differential tests: generated models against the same layers built concretely in torch.

The engine is fuzz/differential.py (its docstring explains the oracle and the counts). Here:
- regression cases from tests/differential_cases/*.seq, each a spec plus the value points to
  check (`# point: a=1` lines; the defaults are always checked), which must show no discrepancy;
- a bounded run of generated specs (fixed seed) that must show no discrepancy: SEQGEN_FUZZ_SPECS
  specs (default 40, what CI runs);
- a few checks of the fuzzer itself (determinism, printing and re-reading specs, the oracle).

The long harness: `python fuzz/differential.py --specs 300 --seed 1 --jobs 2`.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

import differential as D  # noqa: E402

CASES = sorted((Path(__file__).resolve().parent / "differential_cases").glob("*.seq"))
CI_SEED = 20240601
CI_SPECS = int(os.environ.get("SEQGEN_FUZZ_SPECS", "40"))
CI_POINTS = 24  # value points per spec at most


def _explain(outcome: D.SpecOutcome, limit: int = 12) -> str:
    lines = [outcome.text.rstrip()]
    for f in outcome.findings[:limit]:
        lines.append(f"  {f.kind} [{f.family}] at {f.point}: {f.detail}")
    if len(outcome.findings) > limit:
        lines.append(f"  ... and {len(outcome.findings) - limit} more")
    return "\n".join(lines)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_regression_case(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    outcome = D.check_case(text)
    # a case is generated and checked, unless it says seqgen must refuse it
    allowed = ("ok", "refused") if "# expect: refused" in text else ("ok",)
    assert outcome.status in allowed, f"{outcome.status}: {outcome.message}"
    assert not outcome.findings, _explain(outcome)


@pytest.mark.slow
def test_bounded_differential_run() -> None:
    t0 = time.monotonic()
    # two worker processes, unless pytest-xdist's workers share the cores already
    jobs = 2 if (os.cpu_count() or 1) >= 2 and "PYTEST_XDIST_WORKER" not in os.environ else 1
    totals, kept = D.run_many(CI_SEED, CI_SPECS, jobs=jobs, max_points=CI_POINTS)
    assert totals.specs == CI_SPECS
    assert totals.errors == 0, [o.message for o in kept if o.status == "error"]
    assert totals.points >= CI_SPECS, totals.line()  # the run really checked something
    examples = "\n".join(_explain(o, 4) for o in kept[:6])
    assert totals.discrepancies() == 0, (
        f"{totals.report()}\nfirst specs with a discrepancy "
        f"(seed {CI_SEED}; replay one with `python "
        f"fuzz/differential.py --seed {CI_SEED} --index I -v`):"
        f"\n{examples}\n({time.monotonic() - t0:.0f} s)"
    )


def test_generator_is_deterministic_and_specs_read_back() -> None:
    for i in range(40):
        spec = D.generate_spec(7, i)
        assert D.generate_spec(7, i).text() == spec.text()
        again = D.parse_spec(spec.text())
        assert again.text() == spec.text()
        assert again.defaults() == spec.defaults()


def _features(spec: object) -> set[str]:
    """What a drawn spec exercises of issue 19 (heads, inputs, the ops of contracts19)."""
    import graphs as G

    if not isinstance(spec, G.GraphSpec):
        return set()
    text = spec.text()
    merges = [n for n in spec.trunk if isinstance(n, G.MergeIR)]
    found = {m.kind for m in merges}
    found |= {k for k in ("add_identity", "lengths=", "key_padding_mask=") if k in text}
    checks = {
        "heads": bool(spec.heads),
        "from": any(h.point for h in spec.heads),
        "from=MERGE.BRANCH": any(h.point and "." in h.point for h in spec.heads),
        "stackless": any(not h.layers for h in spec.heads),
        "train_only": any(h.train_only for h in spec.heads),
        "inputs": len(spec.inputs) > 1,
        "shares": any(b.shares for m in merges for b in m.branches),
    }
    return found | {k for k, v in checks.items() if v}


def test_some_specs_have_heads_and_several_inputs_over_an_unchanged_trunk() -> None:
    """fuzz/graphs.py decorates some flat specs; every other index draws the flat spec as before,
    and a decorated one keeps the flat spec's layers as its trunk's top-level layers."""
    import graphs as G

    decorated = 0
    for i in range(20):
        spec = D.generate_spec(CI_SEED, i)
        flat = D.Gen(random.Random(f"seqgen-differential:{CI_SEED}:{i}")).spec()
        if not isinstance(spec, G.GraphSpec):
            assert spec.text() == flat.text()
            continue
        decorated += 1
        trunk = [D.layer_line(n) for n in spec.trunk if isinstance(n, D.LayerIR)]
        flat_lines = [D.layer_line(layer) for layer in flat.layers]
        assert [line for line in trunk if line in flat_lines] == flat_lines
    assert 3 <= decorated <= 14


@pytest.mark.slow
def test_the_draw_covers_heads_inputs_and_the_new_ops() -> None:
    seen: set[str] = set()
    for i in range(120):
        seen |= _features(D.generate_spec(CI_SEED, i))
    want = {"heads", "from", "from=MERGE.BRANCH", "stackless", "train_only", "inputs", "shares"}
    want |= {"concat", "add", "multiply", "bmm", "reparameterize", "add_identity"}
    want |= {"lengths=", "key_padding_mask="}
    assert want <= seen, want - seen


GRAPH_CASE = """\
model M(c=4, n=3)
input image (3, h=10, w=10)
input other (3, h, w)
input meta (5,)
concat dim=1 name=pair:
    branch name=a:
        conv2d c k=3 p=1
    branch name=b from=other shares=a:
relu name=mid
adaptiveavgpool2d 1
flatten
add:
    branch:
        linear n
    branch from=meta:
        linear 1
head y:
    linear 2
head aux from=mid train_only=True:
    flatten
    linear n
"""


def test_graph_oracle_and_checks() -> None:
    import graphs as G

    spec = D.parse_spec(GRAPH_CASE)
    assert isinstance(spec, G.GraphSpec) and spec.text() == GRAPH_CASE
    res = G.graph_oracle(spec, {"c": 4, "n": 3, "h": 10, "w": 10})
    assert res.valid, res.reason
    assert res.shapes == {"y": (2, 2), "aux": (2, 3)}
    assert res.input_shapes == {"image": (2, 3, 10, 10), "other": (2, 3, 10, 10), "meta": (2, 5)}
    # the shared conv 3->4 counted once, linear 8->3, 5->1, 3->2, 800->3
    assert res.total == 112 + 27 + 6 + 8 + 2403
    assert not G.graph_oracle(spec, {"c": 4, "n": 0, "h": 10, "w": 10}).valid
    assert not G.graph_oracle(spec, {"c": 4, "n": 3, "h": 0, "w": 10}).valid
    outcome = D.check_case("# point: c=3\n# point: n=1, h=7\n" + GRAPH_CASE)
    assert outcome.status == "ok" and outcome.points == 3, outcome.message
    assert not outcome.findings, _explain(outcome)


def test_graph_checks_can_fail() -> None:
    """A wrong oracle (one parameter too many, outputs off by 1e-3) is caught."""
    import graphs as G

    spec = D.parse_spec(GRAPH_CASE)
    total, forward = G.GraphRun.total, G.GraphRun.forward
    try:
        G.GraphRun.total = lambda self: total(self) + 1  # type: ignore[method-assign]
        kinds = {f.kind for f in D.check_spec(spec, points=[spec.defaults()]).findings}
        assert kinds == {"wrong_count"}
        G.GraphRun.total = total  # type: ignore[method-assign]
        G.GraphRun.forward = lambda self, inputs, training: {  # type: ignore[method-assign]
            k: v + 1e-3 for k, v in forward(self, inputs, training).items()
        }
        kinds = {f.kind for f in D.check_spec(spec, points=[spec.defaults()]).findings}
        assert kinds == {"wrong_value"}
    finally:
        G.GraphRun.total, G.GraphRun.forward = total, forward  # type: ignore[method-assign]


def test_printed_expressions_keep_their_meaning() -> None:
    rng = random.Random(3)
    names = {"a": 7, "b": 3}

    def draw(depth: int) -> D.Expr:
        if depth > 3 or rng.random() < 0.3:
            return rng.choice([D.Var("a"), D.Var("b"), D.Lit(rng.randint(1, 9))])
        return D.Bin(
            rng.choice(["+", "-", "*", "//"]),
            draw(depth + 1),
            draw(depth + 1),
            paren=rng.random() < 0.2,
        )

    for _ in range(300):
        e = draw(0)
        text = "linear " + D.show(e)
        back = D.parse_spec("model M\ninput (4,)\n" + text).layers[0].pos
        assert len(back) == 1, text
        try:
            want = D.ev(e, names)
        except ZeroDivisionError:
            continue
        assert D.ev(back[0], names) == want, text


def test_oracle_rules() -> None:
    spec = D.parse_spec(
        "model M(k=3)\ninput (3, l=16)\nconv1d 4 kernel_size=k\nflatten\nlinear 2\n"
    )
    ok = D.oracle(spec, {"k": 3, "l": 16})
    assert ok.valid and ok.shapes == [(2, 4, 14), (2, 56), (2, 2)]
    assert ok.total == 4 * 3 * 3 + 4 + 56 * 2 + 2
    assert not D.oracle(spec, {"k": 17, "l": 16}).valid  # kernel larger than the input
    assert not D.oracle(spec, {"k": 3, "l": 0}).valid  # an input size < 1
    assert not D.oracle(spec, {"k": -1, "l": 16}).valid
    zero = D.parse_spec("model M(n=2)\ninput (4,)\nlinear n - 2\n")
    res = D.oracle(zero, {"n": 2})
    assert not res.valid and res.fail_layer == 0  # a zero-size output is invalid


def test_case_headers_are_read() -> None:
    case = D.read_case(
        "# point: a=1, b=0\n# point: a=5\nmodel M(a=2, b=3)\ninput (a + 1,)\nlinear b\n"
    )
    assert case.points == [{"a": 2, "b": 3}, {"a": 1, "b": 0}, {"a": 5, "b": 3}]
    with pytest.raises(D.CaseSyntaxError):
        D.read_case("# point: c=1\nmodel M(a=2)\ninput (a,)\nlinear 2\n")
