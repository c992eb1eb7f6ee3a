"""Tracing a layer that reads another input beside its own (`lstm H lengths=NAME`,
`transformerencoderlayer ... key_padding_mask=NAME`): the keyword must be one its kind reads
(layers/input_reads.py), and the input it names of the dtype and shape that kind needs.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from seqgen.errors import TraceError
from seqgen.ir import LayerSpec, TracedLayer, expr_names
from seqgen.lang.values import expr_source
from seqgen.layers.input_reads import TORCH_DTYPES
from seqgen.layers.kind import Nodes, Op
from seqgen.layers.registry import input_readers
from seqgen.trace.scope import DimInfo, NodeResult
from seqgen.trace.torch_errors import shape_text

Traced = tuple[Any, list[DimInfo]]  # an input's fake tensor and its dims


@dataclass(frozen=True)
class Role:
    """What a layer's keyword makes of an input: a sample's kind and where its length is."""

    role: str
    length_of: tuple[str, int]
    line: int  # the first layer line that reads it so


def read_keywords(op: Op | None, layer: LayerSpec, nodes: Nodes) -> tuple[str, ...]:
    """The keywords by which the line reads other inputs; a located error for a keyword its
    kind does not read an input by, or a reading keyword that names no input."""
    reads = op.reads if op is not None else {}
    for kw in layer.reads:
        if kw.name not in reads:
            name = next(expr_names(kw.value)).id
            raise TraceError(
                f"{layer.name}'s {kw.written}= cannot take input {name!r}: no argument of "
                f"{layer.name} reads another input",
                location=kw.value.loc,
                hint=f"an input is read by {input_readers()}",
            )
    for key, read in reads.items():
        if key in nodes:
            value = nodes[key]
            raise TraceError(
                f"{layer.name}'s {key}= names an input of the model, {read.shape}, "
                f"dtype={read.dtype}; {expr_source(value)} is not an input",
                location=value.loc,
                hint=f"declare the input after the first, e.g. `input {key} "
                f"{'()' if read.role == 'lengths' else '(seq_len,)'} dtype={read.dtype}`, "
                f"and write `{key}={key}`",
            )
    return tuple(kw.name for kw in layer.reads)


def with_reads(
    op: Op,
    layer: LayerSpec,
    dims: Sequence[DimInfo],
    result: NodeResult,
    inputs: Mapping[str, Traced],
    roles: MutableMapping[str, Role],
) -> NodeResult:
    """The traced layer with the inputs it reads, each checked against what its keyword needs:
    its dtype, and its shape against the layer's input `dims` (N, L, E)."""
    reads: list[tuple[str, str]] = []
    for kw in layer.reads:
        read, name = op.reads[kw.name], next(expr_names(kw.value)).id
        tensor, got = inputs[name]
        where = f"{layer.name}'s {kw.written}={name}"
        if tensor.dtype != TORCH_DTYPES[read.dtype]:
            raise TraceError(
                f"{where}: input {name!r} must be dtype={read.dtype}, "
                f"it is {str(tensor.dtype).removeprefix('torch.')}",
                location=kw.value.loc,
                hint=f"write `dtype={read.dtype}` on its `input` line",
            )
        if read.role == "lengths":
            if len(got) != 1:
                raise TraceError(
                    f"{where}: input {name!r} holds one length per sequence, shape (N,); "
                    f"it is {shape_text(got)}",
                    location=kw.value.loc,
                    hint=f"declare it `input {name} () dtype=long`",
                )
            found = _length_source(inputs, dims[1])
            if found is None:
                raise TraceError(
                    f"{where}: the sequence {layer.name} packs has length {dims[1].code}, "
                    "which is no input's size: lengths count the steps of the sequence the "
                    "layer reads, and the generated tests draw them up to an input's size",
                    location=kw.value.loc,
                    hint="pack the sequence where its length is still an input's (right "
                    "after the embedding)",
                )
        else:
            if len(got) != 2 or got[1].expr != dims[1].expr:
                raise TraceError(
                    f"{where}: the mask must be (N, {dims[1].code}), one flag per step of the "
                    f"sequence {layer.name} reads; input {name!r} is {shape_text(got)}",
                    location=kw.value.loc,
                    hint=f"declare it with the sequence's named size, e.g. `input {name} "
                    f"({dims[1].code},) dtype=bool`",
                )
            found = (name, 1)
        role = Role(read.role, found, layer.loc.line)
        before = roles.setdefault(name, role)
        if (before.role, before.length_of) != (role.role, role.length_of):
            raise TraceError(
                f"{where}: line {before.line} reads input {name!r} as another kind of input "
                "or for a sequence of another length",
                location=kw.value.loc,
            )
        reads.append((read.argument or "", name))
    traced = result.step.traced
    if not isinstance(traced, TracedLayer):
        return result
    step = replace(result.step, traced=replace(traced, reads=tuple(reads)))
    return replace(result, step=step)


def _length_source(inputs: Mapping[str, Traced], length: DimInfo) -> tuple[str, int] | None:
    """The first input dim (input name, index) whose size is `length`."""
    for name, (_, dims) in inputs.items():
        for index, dim in enumerate(dims):
            if index and dim.expr == length.expr:
                return name, index
    return None
