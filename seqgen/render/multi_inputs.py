"""How a model with several inputs is written: named submodules and a `forward` of plain
statements, one argument per input.

The trunk is split at each top-level merge that has a `branch from=INPUT:` and at each layer
that reads another input by a keyword (`lstm 64 lengths=lengths`): the layers between two such
nodes are one nn.Sequential (`self.trunk_0`, `self.trunk_1`, ...; none where no layer sits
between), each branch of such a merge is an nn.Sequential of its own named `<merge>_<branch>`
(the merge's `name=` or `merge_<k>`, the branch's `name=` or its index), and such a layer is a
submodule of its own (its `name=`, else its kind, `lstm`, with its index when the kind repeats:
`x = self.lstm(x, lengths)`). A branch that a head reads inside (`from=p3.down.p4`) is cut
further, recursively, by render/nested.py. A `repeat depth:` loop whose body reads an input is an
nn.ModuleList, `self.layers`, and a `for` in forward (`for layer in self.layers: x = layer(x,
src_key_padding_mask=mask)`). forward then reads like a hand-written one:

    x: torch.Tensor = self.trunk_0(image)
    x = torch.cat([self.fuse_image(x), self.fuse_meta(meta)], dim=1)
    x = self.trunk_1(x)
    return x
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from seqgen.errors import RenderError
from seqgen.ir import Dim, TracedLayer, TracedMerge, TracedModel, TracedNode
from seqgen.render.heads import FEATURES, TRUNK, with_heads
from seqgen.render.layers import layer_items, loop_list_item, named, shape_text
from seqgen.render.nested import Out, combined, deeper_reads, nested_parts, write_branch

STREAM = "x"  # the local that carries the trunk's tensor (lang/inputs.py reserves it)


def _reader(attribute: str, node: TracedLayer) -> Any:
    """The submodule of a layer that reads another input: itself, not in an nn.Sequential."""
    comment = shape_text(node.out_shape)
    return {
        "attribute": attribute,
        "single": node.call,
        "comment": comment,
        "layers": [],
        "list": None,
    }


def _arguments(node: TracedNode, source: str) -> str:
    """A call's arguments: its input, and each input it reads (`x, src_key_padding_mask=mask`)."""
    reads = node.reads if isinstance(node, TracedLayer) else ()
    return ", ".join([source, *(f"{key}={name}" if key else name for key, name in reads)])


def _loop_attribute(index: int, loops: int) -> str:
    """A loop's nn.ModuleList: `layers` (`layers_K`, K its index, beside others)."""
    return "layers" if loops == 1 else f"layers_{index}"


def _loop_module(attribute: str, node: TracedLayer, shape: tuple[Dim, ...]) -> Any:
    """A `repeat depth:` loop whose body reads another input: an nn.ModuleList, one entry per
    pass (render/layers.py `loop_list_item`)."""
    item = loop_list_item(node, shape)
    return {"attribute": attribute, "list": item, "single": None, "layers": [item]}


def _loop_statements(attribute: str, node: TracedLayer, local: str, taken: set[str]) -> list[str]:
    """forward's loop over the passes: each pass one call, or a statement per layer of its
    nn.ModuleList (TorchScript refines no isinstance check on a module: an ignore instead)."""
    each = "layer" if len(node.body) == 1 else "block"
    while each in taken:
        each += "_"
    if len(node.body) == 1:
        call = f"{each}({_arguments(node.body[0], local)})"
        return [f"for {each} in self.{attribute}:", f"    {local} = {call}"]
    lines = [f"for {each} in self.{attribute}:"]
    for i, inner in enumerate(node.body):  # ModuleList iterates as nn.Module: untyped [i]
        lines.append(
            f"    {local} = {each}[{i}]({_arguments(inner, local)})  # type: ignore[index]"
        )
    return lines


def _sequential(attribute: str, nodes: tuple[TracedNode, ...], shape: tuple[Dim, ...]) -> Any:
    layers = layer_items(nodes, shape)
    return {
        "attribute": attribute,
        "named": named(nodes),
        "layers": layers,
        "single": None,
        "list": None,
    }


def inputs_model(traced: TracedModel) -> dict[str, Any]:
    """The submodules of a model with named inputs, or with a head that reads a merge's branch
    (`from=z.mu`), and its forward's statements (with heads, the trunk is also cut after each
    head's point, as render/heads.py cuts it)."""
    modules: list[dict[str, Any]] = []
    statements: list[str] = []
    shapes = {i.name: i.shape for i in traced.inputs}
    points = {
        traced.head_start(h): h.spec.point
        for h in traced.heads
        if h.spec.point and h.spec.branch is None
    }
    read = {traced.head_start(h) for h in traced.heads if h.spec.branch is not None}
    split = traced.split_merges()
    last = len(traced.layers) - 1
    source, shape = STREAM, traced.input_shape
    if traced.inputs:
        source, shape = traced.inputs[0].name, traced.inputs[0].shape
    declared = {source}  # forward's argument: not annotated again
    locals_at: dict[tuple[int, int | None], str] = {}
    segment: list[TracedNode] = []
    counts = {"trunk": 0, "merge": 0}
    deeper = deeper_reads(traced)
    out = Out(modules, statements, declared)
    readers = Counter(
        n.spec.name.lower() for n in traced.layers if isinstance(n, TracedLayer) and n.reads
    )
    loops = {i for i in traced.reading_layers() if getattr(traced.layers[i], "repeat", None)}

    def local_at(index: int) -> str:
        """Where node `index`'s output goes: its point's name, `features` at the trunk's end
        of a model with heads, else the stream `x`."""
        if index in points:
            return str(points[index])
        return FEATURES if traced.heads and index == last else STREAM

    def assign(index: int, value: str) -> None:
        nonlocal source, shape
        local = local_at(index)
        typed = local if local in declared else f"{local}: torch.Tensor"
        declared.add(local)
        statements.append(f"{typed} = {value}")
        locals_at[index, None] = source = local
        shape = traced.layers[index].out_shape

    def flush(index: int) -> None:
        """Write the segment that ends at trunk node `index`, if any."""
        if not segment:
            return
        local = local_at(index)
        attribute = local if local in (*points.values(), FEATURES) else None
        if attribute == FEATURES:
            attribute = TRUNK
        if attribute is None:
            attribute = f"trunk_{counts['trunk']}"
            counts["trunk"] += 1
        modules.append(_sequential(attribute, tuple(segment), shape))
        segment.clear()
        assign(index, f"self.{attribute}({source})")

    for index, node in enumerate(traced.layers):
        if isinstance(node, TracedLayer) and node.repeat is not None and index in loops:
            flush(index - 1)  # `for layer in self.layers: x = layer(x, mask)`
            attribute = _loop_attribute(index, len(loops))
            modules.append(_loop_module(attribute, node, shape))
            local = local_at(index)
            if source != local:
                assign(index, source)
            declared.add(local)
            statements.extend(_loop_statements(attribute, node, local, {*shapes, *points.values()}))
            locals_at[index, None] = source = local
            shape = node.out_shape
            continue
        if isinstance(node, TracedLayer) and node.reads:  # `x = self.lstm(x, lengths)`
            flush(index - 1)
            kind = node.spec.name.lower()
            attribute = node.spec.key or f"{kind}_{index}" if readers[kind] > 1 else kind
            modules.append(_reader(attribute, node))
            assign(index, f"self.{attribute}({_arguments(node, source)})")
            continue
        if not isinstance(node, TracedMerge) or index not in split:
            segment.append(node)
            if index in points or index == last:
                flush(index)
            continue
        flush(index - 1)
        name = node.spec.key or f"merge_{counts['merge']}"
        counts["merge"] += 1
        calls = []
        shares = node.spec.branch_shares or (None,) * len(node.branches)
        sources = node.spec.branch_from or (None,) * len(node.branches)
        for j, (branch, src) in enumerate(zip(node.branches, sources, strict=True)):
            key = node.spec.branch_keys[j] if node.spec.branch_keys else None
            attribute = f"{name}_{key if key is not None else j}"
            if (index, j) in deeper:  # a head reads inside it: statements (render/nested.py)
                src_local = source if src is None else src
                local = write_branch(out, branch, src_local, shape, attribute, deeper[index, j])
                locals_at[index, j] = local
                calls.append(local)
                continue
            if shares[j] is not None:  # runs the modules of the branch it shares (siamese)
                attribute = f"{name}_{shares[j]}"
            else:
                modules.append(
                    _sequential(attribute, branch, shape if src is None else shapes[src])
                )
            call = f"self.{attribute}({source if src is None else src})"
            # a head reads a branch of this merge, or the merge reads an output twice (mu):
            # each branch's output a local
            if index in read or node.spec.kind == "reparameterize":
                local = f"{name}_{key if key is not None else j}"
                statements.append(f"{local}: torch.Tensor = {call}")
                locals_at[index, j] = call = local
            calls.append(call)
        assign(index, combined(node, calls))
    attributes = [m["attribute"] for m in modules] + [h.name for h in traced.heads]
    if len(set(attributes)) != len(attributes) or set(attributes) & set(shapes):
        first = traced.layers[min(split | traced.reading_layers())]
        raise RenderError(
            f"two submodules of {traced.spec.class_name} would share a name among "
            f"{', '.join(attributes)}",
            location=first.spec.loc,
            hint="rename a merge or a branch that reads an input (name=)",
        )
    branch_locals = {v for k, v in locals_at.items() if k[1] is not None} | set(out.found.values())
    clash = branch_locals & {*points.values(), STREAM, FEATURES, *shapes}
    if clash:
        raise RenderError(
            f"a branch's output and another local of forward would both be {min(clash)!r}",
            location=traced.layers[min(split | traced.reading_layers())].spec.loc,
            hint="rename the merge or its branch (name=)",
        )
    if traced.heads:
        return with_heads(traced, modules, statements, locals_at, out.found)
    statements.append(f"return {source}")
    return {"modules": modules, "statements": statements}


def module_stacks(traced: TracedModel) -> list[tuple[TracedNode, ...]]:
    """The stacks the model's nn.Sequentials hold: a merge that reads a named input, or whose
    branch a head reads, is no module, its branches are (its `name=` keys nothing)."""
    split, readers = traced.split_merges(), traced.reading_layers()
    if not split and not readers:
        return list(traced.stacks)
    # a layer that reads an input is a submodule of its own, in no nn.Sequential
    out = [tuple(n for i, n in enumerate(traced.layers) if i not in split | readers)]
    loops = [n for i, n in enumerate(traced.layers) if i in readers and isinstance(n, TracedLayer)]
    out += [s for n in loops for s in (n.first, n.body)]
    deeper = deeper_reads(traced)
    for i, node in enumerate(traced.layers):
        if isinstance(node, TracedMerge) and i in split:
            out += [b for j, b in enumerate(node.branches) if (i, j) not in deeper]
    return out + nested_parts(traced).stacks + [h.layers for h in traced.heads]


def forward_arguments(traced: TracedModel) -> str:
    """forward's arguments after self: `x: torch.Tensor`, or one per named input."""
    names = [i.name for i in traced.inputs] or ["x"]
    return ", ".join(f"{name}: torch.Tensor" for name in names)


def inputs_text(traced: TracedModel) -> str:
    """`(N, 3, 32, 32)`, or `image (N, 3, 32, 32) and meta (N, 16)`: what forward takes."""
    if not traced.inputs:
        return shape_text(traced.input_shape)
    parts = [f"{i.name} {shape_text(i.shape)}" for i in traced.inputs]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
