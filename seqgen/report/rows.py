"""The rows of a traced model, nested like torchinfo's `depth` (no torch).

A merge's branches and a block use's layers come right after it, one level deeper. Inside a
block use, sizes are the block's expressions evaluated at that use (its `bindings`), so each use
shows its own numbers; everything else shows the traced shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from seqgen.ir import (
    Dim,
    TracedBlock,
    TracedBlockUse,
    TracedHead,
    TracedLayer,
    TracedMerge,
    TracedModel,
    TracedNode,
)
from seqgen.safe_eval import evaluate_source


@dataclass(frozen=True)
class Row:
    """One node of the model as a table row; numbers are per sample (batch 1)."""

    depth: int
    line: int
    label: str
    shape: str  # as shown: symbolic dims by name with their sample size, or numbers
    sizes: tuple[int, ...]  # batch excluded
    params: int
    trainable: int
    macs: int
    leaf: bool  # a module with no child modules (what torchinfo totals over)
    # output elements torchinfo keeps for the backward pass (leaves with parameters), per sample
    activations: int = 0
    hidden_params: int = 0  # of these parameters, those torchinfo's "params size" leaves out


def shape_text(dims: tuple[Dim, ...], sizes: bool = False) -> str:
    """`(N, 16, 32, 32)`: symbolic dims by name, the rest as numbers; with `sizes`, a symbolic
    dim also shows its size at the sample input and defaults: `(N, 16, seq_len - 2 [26])`."""

    def one(d: Dim) -> str:
        if sizes and d.symbolic and d.code != "N":  # the batch is whatever --batch says
            return f"{d.code} [{d.value}]"
        return d.shown

    return "(" + ", ".join(one(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def rows(traced: TracedModel) -> list[Row]:
    """Every node, depth first: the model's own at depth 0, nested ones deeper."""
    blocks = {b.class_name: b for b in traced.blocks}
    # ints, and bools as 0 or 1 (a bool may decide a parameter count: `bias=b`)
    defaults: dict[str, int | float] = {  # a float may be a scale: `int(h * sf)`
        p.name: p.default if type(p.default) is float else int(p.default)
        for p in traced.spec.params
        if isinstance(p.default, (int, float))
    }
    out = list(_walk(traced.layers, defaults, 0, blocks, nested=False))
    for head in traced.heads:  # after the trunk: a row for the head, then its layers
        out.append(_head_row(head, defaults))
        out += _walk(head.layers, defaults, 1, blocks, nested=False)
    return out


def head_label(head: TracedHead) -> str:
    """`head aux (from mid, train only)`: a head's row in the tables."""
    notes = ([f"from {head.source}"] if head.source else []) + (
        ["train only"] if head.train_only else []
    )
    return f"head {head.name}" + (f" ({', '.join(notes)})" if notes else "")


def _head_row(head: TracedHead, env: Mapping[str, float]) -> Row:
    at = {**env, "N": 1}
    return Row(
        0,
        head.spec.loc.line,
        head_label(head),
        shape_text(head.out_shape, sizes=True),
        tuple(evaluate_source(d.code, at) for d in head.out_shape[1:]),
        evaluate_source(head.params.code, at),
        evaluate_source(head.trainable_params.code, at),
        evaluate_source(head.macs.code, at),
        leaf=False,
    )


def _walk(
    nodes: Sequence[TracedNode],
    env: Mapping[str, float],
    depth: int,
    blocks: Mapping[str, TracedBlock],
    nested: bool,
) -> Iterator[Row]:
    for node in nodes:
        at = {**env, "N": 1}
        sizes = tuple(evaluate_source(d.code, at) for d in node.out_shape[1:])
        shape = (
            ("(N, " + ", ".join(map(str, sizes)) + ")")
            if nested
            else shape_text(node.out_shape, sizes=True)
        )
        leaf = isinstance(node, TracedLayer) and node.repeat is None
        params = evaluate_source(node.params.code, at)
        if isinstance(node, TracedLayer) and node.activations is not None:
            kept = evaluate_source(node.activations.code, at)  # its leaves' outputs
        else:
            kept = math.prod(sizes) if leaf and params else 0
        hidden = node.hidden_params if isinstance(node, TracedLayer) else None
        key = getattr(node.spec, "key", None)  # `name=enc1`: the row says `enc1: DoubleConv(...)`
        yield Row(
            depth,
            node.line,
            f"{key}: {node.call}" if key else node.call,
            shape,
            sizes,
            params,
            evaluate_source(node.trainable_params.code, at),
            evaluate_source(node.macs.code, at),
            leaf,
            kept,
            evaluate_source(hidden.code, at) if hidden is not None else 0,
        )
        if isinstance(node, TracedMerge):
            sources = node.spec.branch_from or (None,) * len(node.branches)
            shares = node.spec.branch_shares or (None,) * len(node.branches)
            keys = node.spec.branch_keys or (None,) * len(node.branches)
            for branch, source, share, name in zip(
                node.branches, sources, shares, keys, strict=True
            ):
                if source is not None or name is not None:  # `branch NAME from INPUT` row
                    yield _branch_row(node, branch, name, source, share, depth + 1, at)
                if share is None:  # a shared branch's layers are listed once, under their own
                    yield from _walk(branch, env, depth + 1, blocks, nested)
        elif isinstance(node, TracedBlockUse):
            block = blocks[node.spec.name]
            inner = {name: evaluate_source(code, at) for name, code in node.bindings}
            yield from _walk(
                block.layers,
                inner,
                depth + 1,
                blocks,
                nested=True,
            )
        elif isinstance(node, TracedLayer) and node.repeat is not None:
            passes = int(env[node.repeat])
            if node.first:  # the first pass apart, then the body for the others
                yield from _walk(node.first, env, depth + 1, blocks, nested)
                passes -= 1
            for _ in range(passes):
                yield from _walk(node.body, env, depth + 1, blocks, nested)


def _branch_row(
    merge: TracedMerge,
    branch: Sequence[TracedNode],
    name: str | None,
    source: str | None,
    share: str | None,
    depth: int,
    at: Mapping[str, float],
) -> Row:
    """`branch down` (its `name=`), `branch meta from meta` or `branch right from right, shares
    left` above a branch's layers: no module of its own; a shared branch's row carries its
    output shape and its multiply-adds (it runs again)."""
    label = " ".join(["branch", *([name] if name else []), *([f"from {source}"] if source else [])])
    label += f", shares {share}" if share else ""
    out = branch[-1].out_shape if branch and share else ()
    return Row(
        depth,
        merge.line,
        label,
        shape_text(out, sizes=True) if out else "",
        tuple(evaluate_source(d.code, at) for d in out[1:]),
        0,
        0,
        sum(evaluate_source(n.macs.code, at) for n in branch) if share else 0,
        leaf=False,
    )
