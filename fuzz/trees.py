#!/usr/bin/env python
"""Differential fuzzing of spec language v2 (blocks and merges) against torch.

Draws random tree specs (tests/test_fuzz.py's `tree_specs`: blocks, residuals, concat/add/
multiply/bmm, nested, sizes often symbolic, sometimes heads and a second input), and for each
one that seqgen generates, imports the generated module, builds it at the defaults and at
parameter values the generated `__init__` accepts, runs a real forward, and compares every
top-level node's output shape and parameter count with the expressions seqgen wrote (with
heads or several inputs: each output's shape in eval and train mode, and the total count).
Refusals are counted, not judged: there is no independent torch oracle for trees here
(fuzz/differential.py has one for flat stacks, and fuzz/graphs.py for heads and inputs).

    python fuzz/trees.py --examples 300 --seed 1
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from seqgen.api import generate, options_for  # noqa: E402
from seqgen.check.other_values import accepts  # noqa: E402
from seqgen.errors import InternalError, SeqgenError  # noqa: E402
from seqgen.project.write import write_files  # noqa: E402
from seqgen.safe_eval import evaluate_source  # noqa: E402


def points(defaults: dict[str, int], rng: random.Random) -> list[dict[str, int]]:
    """The defaults, then other values near and far from them."""
    out = [dict(defaults)]
    for _ in range(4):
        out.append(
            {n: max(1, v + rng.choice([-1, 1, 2, 3, v, 2 * v + 1])) for n, v in defaults.items()}
        )
    return out


def check(text: str, workdir: Path, rng: random.Random) -> str:
    """One spec: 'refused', or 'checked N points'; raise AssertionError on a discrepancy."""
    spec = workdir / "tree.seq"
    spec.write_text(text)
    try:
        result = generate(str(spec), options_for(str(spec), str(workdir)))
    except InternalError:
        raise  # a seqgen bug, never a refusal
    except SeqgenError:
        return "refused"
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(
        f"tree_{rng.random()}", result.files[0].path
    )
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    traced = result.traced
    cls = getattr(module, traced.spec.class_name)
    defaults = {p.name: p.default for p in traced.spec.params if type(p.default) is int}
    # the rules of input dims that are no constructor arguments: documented, not checked
    input_rules = tuple(c for c in traced.constraints if set(c.names) & set(traced.free_dims))
    checked = 0
    for point in points(defaults, rng):
        ctor = {k: v for k, v in point.items() if k not in traced.free_dims}
        try:
            model = cls(**ctor).eval()
        except ValueError:
            if point == defaults:
                raise AssertionError("the generated __init__ refuses its own defaults") from None
            continue
        if not accepts(input_rules, point):  # an input the class docstring rules out
            continue
        values = {**point, "N": 2}
        if traced.heads or traced.inputs:
            check_outputs(model, traced, values, point)
            checked += 1
            continue
        x = torch.randn([evaluate_source(d.code, values) for d in traced.input_shape])
        with torch.no_grad():
            for layer, node in zip(model.model, traced.layers):
                try:
                    x = layer(x)
                except Exception as e:
                    raise AssertionError(
                        f"at {point}, torch fails in {node.call} (line "
                        f"{node.line}) although __init__ accepted: {e}"
                    ) from e
                want = tuple(evaluate_source(d.code, values) for d in node.out_shape)
                assert tuple(x.shape) == want, (
                    f"at {point}, line {node.line}: torch gives "
                    f"{tuple(x.shape)}, seqgen wrote {want}"
                )
                got = sum(p.numel() for p in layer.parameters())
                assert got == evaluate_source(node.params.code, values), (
                    f"at {point}, line {node.line}: {got} parameters, seqgen wrote "
                    f"{node.params.code}"
                )
        checked += 1
    return f"checked {checked} points"


def check_outputs(model: Any, traced: Any, values: dict[str, int], point: dict) -> None:
    """A model with heads or several inputs: each output's shape in eval and train mode (a
    train-only head None in eval), and the parameter count, against what seqgen wrote."""
    shapes = [(i.name, i.shape) for i in traced.inputs] or [("x", traced.input_shape)]
    inputs = {
        name: torch.randn([evaluate_source(d.code, values) for d in shape])
        for name, shape in shapes
    }
    heads = [(h.name, h.out_shape, h.spec.train_only) for h in traced.heads]
    with torch.no_grad():
        for training in (False, True):
            out = model.train(training)(**inputs)
            fields = out._asdict() if heads else {"": out}
            for name, shape, train_only in heads or [("", traced.out_shape, False)]:
                got = fields[name]
                if train_only and not training:
                    assert got is None, f"at {point}: train-only head {name} is not None in eval"
                    continue
                want = tuple(evaluate_source(d.code, values) for d in shape)
                assert tuple(got.shape) == want, (
                    f"at {point}, {'train' if training else 'eval'}: output {name or 'x'} is "
                    f"{tuple(got.shape)}, seqgen wrote {want}"
                )
    got = sum(p.numel() for p in model.parameters())
    assert got == evaluate_source(traced.total_params.code, values), (
        f"at {point}: {got} parameters, seqgen wrote {traced.total_params.code}"
    )


def main() -> int:
    from hypothesis import HealthCheck, given, seed, settings
    from test_fuzz import tree_specs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @seed(args.seed)  # the specs drawn, as well as the points: a run can be repeated
    @given(tree_specs(clean=True))
    def run(text: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                outcome = check(text, Path(tmp), rng)
            except AssertionError as e:
                failures.append((text, str(e)))
                outcome = "DISCREPANCY"
        outcomes[outcome.split(" ")[0]] += 1
        if outcome.startswith("checked"):
            outcomes["points"] += int(outcome.split()[1])

    run()
    print(dict(outcomes))
    for text, why in failures:
        print("=" * 60, "\n" + text, "\n->", why)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
