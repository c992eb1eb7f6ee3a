"""What a trace derives about the model's inputs and parameters, apart from the layers: the
sizes its generated tests use, the named dims no constructor reads, the sample's dtype, and the
parameters nothing reads."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from seqgen.errors import Diagnostic
from seqgen.ir import Constraint, ModelSpec, TracedNode, called_names, expr_names, spec_names
from seqgen.report.lint import UNUSED_PARAMETER
from seqgen.trace.constraints import holds
from seqgen.trace.scope import Scope


def test_sizes(
    scope: Scope, input_dim_names: set[str], constraints: Sequence[Constraint]
) -> list[tuple[str, tuple[int, ...], int]]:
    """For each named input dim: sizes its generated test builds, and one it must refuse."""
    minima = {
        c.symbol: c.minimum for c in constraints if c.symbol is not None and c.minimum is not None
    }
    out = []
    for sym, name in sorted(scope.names.items(), key=lambda kv: kv[1]):
        if name not in input_dim_names or sym not in scope.hints:  # a block's own symbol
            continue
        hint = scope.hints[sym]
        minimum = minima.get(name, 1)
        sizes = []
        for size in sorted({minimum, hint, 2 * hint}):
            values = {**scope.hints, sym: size}
            if all(holds(c.condition, values) for c in scope.conditions):
                sizes.append(size)
        out.append((name, tuple(sizes), minimum - 1))
    return out


def unused_parameters(spec: ModelSpec) -> list[Diagnostic]:
    """A model parameter that no layer and no input size reads does nothing."""
    shapes = (spec.input_shape, *(i.shape for i in spec.extra_inputs))
    used = {n.id for shape in shapes for e in shape for n in expr_names(e)}
    used |= spec_names((*spec.layers, *spec.head_nodes))
    return [
        Diagnostic(
            "warning",
            f"model parameter {p.name!r} is not used: no layer or input size reads it",
            p.loc,
            f"remove {p.name}, or use it in a layer's arguments",
            UNUSED_PARAMETER,
        )
        for p in spec.params
        if p.name not in used
    ]


def free_dims(spec: ModelSpec, layers: Sequence[TracedNode]) -> tuple[str, ...]:
    """Named input dims that no layer's constructor reads: the model works at any size of them,
    so they are no constructor arguments (`input (1, length=16000)` before adaptive pooling)."""
    called = called_names(layers)
    return tuple(p.name for p in spec.params if p.from_input and p.name not in called)


def input_dtype(spec: ModelSpec) -> torch.dtype:
    """The sample input's dtype: float, or int64 token ids (`input ... dtype=long`)."""
    return torch.int64 if spec.input_dtype == "long" else torch.float32
