"""How much memory a generated test file allocates, and whether it fits the budget (no torch)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from seqgen.ir import Dim, TracedModel
from seqgen.report.rows import rows
from seqgen.safe_eval import evaluate_source

BUDGET_BYTES = 2 * 10**9  # weights plus activations, fp32, at the largest test batch
BYTES_PER_VALUE = 4  # fp32
# The batches test_model.py.jinja runs at (its `input_shape(3)` and `input_shape(2, dim=...)`;
# tests/test_arguments.py checks that they agree): the largest at the default sizes, and the
# one of the tests that vary a named input dim
SAMPLE_BATCH = 3
DIM_BATCH = 2


def _numel(shape: Sequence[Dim], values: Mapping[str, float]) -> int:
    """Elements of a traced shape at these values (a size that evaluates below 0 counts 0)."""
    return math.prod(max(0, evaluate_source(d.code, values)) for d in shape)


def generated_tests_bytes(traced: TracedModel) -> int:
    """The most bytes one generated test allocates: weights plus every activation, fp32."""
    # ints, bools as 0 or 1 (a bool may decide a parameter count: `bias=b`), floats (a scale)
    defaults: dict[str, int | float] = {
        p.name: p.default if type(p.default) is float else int(p.default)
        for p in traced.spec.params
        if isinstance(p.default, (int, float))
    }
    points = [{**defaults, "N": SAMPLE_BATCH}] + [
        {**defaults, name: size, "N": DIM_BATCH}
        for name, sizes, _ in traced.dim_sizes
        for size in sizes
    ]
    worst = 0
    for values in points:
        params = evaluate_source(traced.total_params.code, values)
        shapes = [traced.input_shape, *(n.out_shape for nodes in traced.stacks for n in nodes)]
        activations = sum(_numel(shape, values) for shape in shapes)
        if values is points[0]:  # at the defaults, the nodes inside merges and blocks too
            activations += sum(
                int(values["N"]) * math.prod(r.sizes) for r in rows(traced) if r.depth > 0
            )
        worst = max(worst, params + activations)
    return BYTES_PER_VALUE * worst


def over_budget(traced: TracedModel) -> str | None:
    """Why the generated tests must not build the model for real, or None when they may."""
    need = generated_tests_bytes(traced)
    if need <= BUDGET_BYTES:
        return None
    return (
        f"{traced.spec.class_name} needs about {need / 1e9:.1f} GB "
        f"({traced.total_params.value:,} parameters plus activations, fp32), over the "
        f"{BUDGET_BYTES / 1e9:.0f} GB that seqgen's generated tests allocate"
    )
