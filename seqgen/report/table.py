"""Plain-text reports of a traced model: the shape table `new` and `check` print. No torch."""

from __future__ import annotations

import re

from seqgen.ir import SAMPLE_BATCH, TracedModel
from seqgen.report.rows import rows, shape_text


def table(cells: list[list[str]], header: list[str], right: set[int] | None = None) -> str:
    """Align columns; `right` holds the indexes of right-aligned (numeric) columns."""
    right = right or set()
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in cells)])


def shape_table(traced: TracedModel) -> str:
    """Per-layer table: spec line, layer as generated, output shape, parameters."""
    named = [(f"input {i.name}", i.shape) for i in traced.inputs]  # several inputs: each
    cells = [["", label, shape_text(shape), ""] for label, shape in named]
    cells = cells or [["", "input", shape_text(traced.input_shape), ""]]
    for r in rows(traced):
        shape = _plain(r.shape)
        cells.append([str(r.line), "  " * r.depth + r.label, shape, f"{r.params:,}"])
    body = table(cells, ["line", "layer", "output shape", "params"], right={0, 3})
    total = f"total parameters: {traced.total_params.value:,}"
    if traced.total_params.symbolic:
        total += f" at the defaults ({traced.total_params.code})"
    return f"{body}\n{total}"


def _plain(shape: str) -> str:
    """A summary shape without the bracketed sample sizes: `(N, 16, seq_len - 2)`."""
    return re.sub(r" \[\d+\]", "", shape)


def device_report(traced: TracedModel, device: str, batch: int = SAMPLE_BATCH) -> str:
    """One line for `--device`: what ran where, and that it agreed with the trace."""
    sample = (batch, *(d.value for d in traced.input_shape[1:]))
    layers = sum(len(stack) for stack in traced.stacks)  # the trunk's and every head's
    return (
        f"--device {device}: built {traced.spec.class_name} for real on {device} and ran a "
        f"{sample} sample: all {layers} layer output shapes agree with the trace"
    )
