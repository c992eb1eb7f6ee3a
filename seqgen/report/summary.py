"""`seqgen summary`: per-layer shapes, parameters and multiply-accumulates, counted as torchinfo
counts them (but a transformer layer's mult-adds, its matmuls, and a class of the user's own,
FlopCounterMode's: README "seqgen summary"), computed from the symbolic trace (nothing is
allocated). No torch here."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from seqgen.ir import Dim, TracedLayer, TracedModel, flat_layers, walk_traced
from seqgen.report.lint import TRACED_CONCRETELY
from seqgen.report.rows import rows, shape_text
from seqgen.report.table import table

BYTES_PER_ELEMENT = 4  # float32


@dataclass(frozen=True)
class Totals:
    """Whole-model numbers for one batch size."""

    batch: int
    params: int
    trainable: int
    # torchinfo's "Total mult-adds", plus the transformer layers' attention matmuls, and the
    # user's own classes counted by FlopCounterMode
    macs: int
    input_bytes: int
    forward_backward_bytes: int  # torchinfo's "Forward/backward pass size"
    param_bytes: int


def totals(traced: TracedModel, batch: int = 1) -> Totals:
    """Totals at `batch`; activation memory counts the outputs of leaf modules with parameters,
    x2, as torchinfo does."""
    all_rows = rows(traced)
    out_elems = batch * sum(r.activations for r in all_rows)
    return Totals(
        batch=batch,
        params=traced.total_params.value,
        trainable=traced.trainable_params.value,
        macs=batch * sum(n.macs.value for nodes in traced.stacks for n in nodes),
        input_bytes=batch
        * sum(math.prod(d.value for d in shape[1:]) for shape in _input_shapes(traced).values())
        * BYTES_PER_ELEMENT,
        forward_backward_bytes=2 * out_elems * BYTES_PER_ELEMENT,
        # torchinfo sums the parameter bytes of leaf modules only
        param_bytes=(traced.total_params.value - sum(r.hidden_params for r in all_rows))
        * BYTES_PER_ELEMENT,
    )


def _input_shapes(traced: TracedModel) -> dict[str, tuple[Dim, ...]]:
    """Each input's shape by name; one unnamed input is "input"."""
    return {i.name: i.shape for i in traced.inputs} or {"input": traced.input_shape}


def _inputs_title(traced: TracedModel) -> str:
    """`input (N, 3, 32, 32)`, or `inputs image (N, 3, 32, 32), meta (N, n_meta [16])`."""
    if not traced.inputs:
        return f"input {shape_text(traced.input_shape, sizes=True)}"
    shapes = _input_shapes(traced).items()
    return "inputs " + ", ".join(f"{k} {shape_text(v, sizes=True)}" for k, v in shapes)


def _rows(traced: TracedModel, batch: int) -> list[dict[str, object]]:
    return [
        {
            "line": r.line,
            "depth": r.depth,
            "layer": r.label,
            "output_shape": r.shape,
            "output_size": [batch, *r.sizes],
            "params": r.params,
            "trainable": r.trainable,
            "macs": batch * r.macs,
        }
        for r in rows(traced)
    ]


def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f} MB"


def render_summary(traced: TracedModel, fmt: str = "table", batch: int = 1) -> str:
    """The summary as a text table, a markdown table, or JSON."""
    t = totals(traced, batch)
    rows = _rows(traced, batch)
    if fmt == "json":
        return json.dumps(
            {
                "model": traced.spec.class_name,
                "input_shape": shape_text(traced.input_shape, sizes=True),
                **(
                    {
                        "inputs": {
                            k: shape_text(v, sizes=True) for k, v in _input_shapes(traced).items()
                        }
                    }
                    if traced.inputs
                    else {}
                ),
                "layers": rows,
                "totals": t.__dict__,
                "params_expression": traced.total_params.code,
                "own_classes": dict(own_classes(traced)),
            },
            indent=2,
        )
    head = ["line", "layer", "output shape", "params", "trainable", "mult-adds"]
    cells = [
        [
            str(r["line"]),
            "  " * int(r["depth"]) + str(r["layer"]),  # type: ignore[call-overload]
            str(r["output_shape"]),
            f"{r['params']:,}",
            f"{r['trainable']:,}",
            f"{r['macs']:,}",
        ]
        for r in rows
    ]
    foot = [
        (
            "total params",
            f"{t.params:,}"
            + (f" ({traced.total_params.code})" if traced.total_params.symbolic else ""),
        ),
        ("trainable params", f"{t.trainable:,}"),
        ("non-trainable params", f"{t.params - t.trainable:,}"),
        (f"mult-adds (batch {batch})", f"{t.macs:,}"),
        (f"input size (batch {batch})", _mb(t.input_bytes)),
        (f"forward/backward pass size (batch {batch})", _mb(t.forward_backward_bytes)),
        ("params size", _mb(t.param_bytes)),
        ("estimated total size", _mb(t.input_bytes + t.forward_backward_bytes + t.param_bytes)),
    ]
    title = f"{traced.spec.class_name}: {_inputs_title(traced)}"
    if fmt == "markdown":

        def md(row: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

        lines = [
            f"**{title}**",
            "",
            md(head),
            md(["---"] * 3 + ["---:"] * 3),
            *(md([c if i != 1 else f"`{c}`" for i, c in enumerate(r)]) for r in cells),
            "",
            md(["total", "value"]),
            md(["---", "---:"]),
            *(md([k, v]) for k, v in foot),
            *(f"\n`{path}`: traced {how}" for path, how in own_classes(traced)),
        ]
        return "\n".join(lines)
    width = max(len(k) for k, _ in foot)
    return "\n".join(
        [
            title,
            table(cells, head, right={0, 3, 4, 5}),
            "",
            *(f"{k.ljust(width)}  {v}" for k, v in foot),
            *(f"{path}: traced {how}" for path, how in own_classes(traced)),
        ]
    )


def own_classes(traced: TracedModel) -> list[tuple[str, str]]:
    """Each class of the user's own (`use`) that a layer line uses, how it was traced
    ("symbolically", or "at the sample values" with warning W015), and whether its mult-adds
    (FlopCounterMode's) are exact or hold at the sample values only."""
    spec = traced.spec
    sample = {
        w.location.line for w in traced.warnings if w.code == TRACED_CONCRETELY and w.location
    }
    lines: dict[str, set[int]] = {}
    for nodes in (spec.layers, spec.head_nodes, *(b.body for b in spec.blocks)):
        for layer in flat_layers(nodes):
            if layer.use is not None:
                lines.setdefault(layer.use.import_path, set()).add(layer.loc.line)
    counted_at_sample = {
        node.spec.use.import_path
        for stack in (*traced.stacks, *(b.layers for b in traced.blocks))
        for node in walk_traced(stack)
        if isinstance(node, TracedLayer) and node.spec.use is not None and node.macs_at_sample
    }
    return [
        (
            path,
            ("at the sample values (W015)" if at & sample else "symbolically")
            + (", mult-adds at the sample" if path in counted_at_sample else ", mult-adds exact"),
        )
        for path, at in sorted(lines.items())
    ]
