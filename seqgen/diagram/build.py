"""From a traced model to its diagram (no torch, nothing run): one function per node kind.

Runs of repeated nodes are collapsed: consecutive uses of a block with the same written
arguments, consecutive identical layers, and what a literal `repeat N:` unrolled (the same
spec lines again). A run whose members are all alike is one box, `Basic(32) x 2`; one whose
members differ (the inferred input sizes of an unrolled `repeat`) is a frame `x 3` around its
last repetition, whose output is the run's. Blocks are drawn once, beside the flow, unless
`expand` opens each use into a frame of its own layers, sized for that use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from seqgen.diagram.graph import Box, Diagram, Fork, Group, Head, Item, Stack, edges
from seqgen.diagram.scope import Scope, at_scope
from seqgen.ir import (
    Dim,
    TracedBlock,
    TracedBlockUse,
    TracedLayer,
    TracedMerge,
    TracedModel,
    TracedNode,
)
from seqgen.report.rows import head_label

_SIGN = {
    "residual": " (+)",
    "add": " (+)",
    "multiply": " (*)",
    "subtract": " (-)",
    "bmm": " (@)",
    "reparameterize": "",  # mu + eps * std in training, mu in eval
}  # how branches combine


@dataclass
class _Ids:
    """Hands out box and group ids in drawing order, so the output never depends on id()."""

    boxes: int = 0
    groups: int = 0

    def box(self) -> str:
        self.boxes += 1
        return f"n{self.boxes - 1}"

    def group(self) -> str:
        self.groups += 1
        return f"g{self.groups - 1}"


@dataclass(frozen=True)
class _Context:
    """Where a stack is drawn: what its names stand for, and the model's blocks."""

    blocks: dict[str, TracedBlock]
    expand: bool
    ids: _Ids
    scope: Scope = field(default_factory=Scope)
    inputs: Mapping[str, tuple[Dim, ...]] = field(default_factory=dict)  # several, by name
    boxes: dict[int, str] = field(default_factory=dict)  # id(node) -> its box (or merge's join)


@dataclass(frozen=True)
class Run:
    """`count` repetitions of the `period` units from `start` (count 1: not repeated)."""

    start: int
    period: int
    count: int


def build(traced: TracedModel, at: Sequence[str] = (), expand: bool = False) -> Diagram:
    """The diagram of a traced model; `at` binds sizes (`num_classes=100`), `expand` opens
    block uses."""
    ctx = _Context({b.class_name: b for b in traced.blocks}, expand, _Ids(), at_scope(traced, at))
    first = "input" if not traced.inputs else f"input {traced.inputs[0].name}"
    start = Box(ctx.ids.box(), first, ctx.scope.shape(traced.input_shape), "input")
    ctx = replace(ctx, inputs={i.name: i.shape for i in traced.inputs})
    flow, heads = _trunk_and_heads(traced, start, ctx)
    if expand:
        return Diagram(traced.spec.class_name, flow, heads=heads)
    inside = replace(ctx, scope=Scope())
    return Diagram(
        traced.spec.class_name,
        flow,
        tuple(_definition(b, inside) for b in traced.blocks),
        heads,
    )


def _trunk_and_heads(
    traced: TracedModel, start: Box, ctx: _Context
) -> tuple[Stack, tuple[Head, ...]]:
    """The flow, drawn in pieces that end where heads branch off (no collapsed run hides a
    point), and each head as a frame fed from its point's box."""
    ends = sorted({traced.head_start(h) for h in traced.heads} - {len(traced.layers) - 1})
    flow: list[Item] = [start]
    exits: dict[tuple[int, int | None], str | None] = {}  # (node, branch): its last box
    first = 0
    for end in [*ends, len(traced.layers) - 1]:
        flow += _stack(traced.layers[first : end + 1], ctx)
        exits[end, None] = edges(tuple(flow))[1]
        if isinstance(fork := flow[-1], Fork):  # a head may read one of its branches
            entry = edges(tuple(flow[:-1]))[1]
            for j, branch in enumerate(fork.branches):
                exits[end, j] = edges(branch, entry)[1]
        first = end + 1
    heads = []
    for head in traced.heads:
        entry = exits[traced.head_start(head), traced.head_branch(head)]
        if head.spec.inner:  # `from=p3.down.p4`: the box of the node it reads
            entry = ctx.boxes.get(id(traced.head_node(head)), entry)
        body = tuple(_stack(head.layers, ctx)) or (  # a head without a stack: what it reads
            Box(ctx.ids.box(), "returned as is", ctx.scope.shape(head.out_shape), "layer"),
        )
        frame = Group(ctx.ids.group(), head_label(head), body, "head")
        heads.append(Head(entry or start.id, frame))
    return tuple(flow), tuple(heads)


def _definition(block: TracedBlock, ctx: _Context) -> Group:
    """A block's class, in its own names, with the input it is traced from."""
    group = ctx.ids.group()
    sig = ", ".join(
        a.name if a.default is None else f"{a.name}={a.default}"
        for a in block.args
        if not a.input_size
    )
    head = Box(ctx.ids.box(), "input", ctx.scope.shape(block.input_shape), "input")
    body = (head, *_stack(block.layers, ctx))
    return Group(group, f"block {block.class_name}({sig})", body, "block")


def units(nodes: Sequence[TracedNode]) -> list[tuple[TracedNode, ...]]:
    """The stack cut where a node does not repeat the one before it (`_same`)."""
    found: list[list[TracedNode]] = []
    for node in nodes:
        if found and _same(found[-1][-1], node):
            found[-1].append(node)
        else:
            found.append([node])
    return [tuple(u) for u in found]


def runs(units: Sequence[tuple[TracedNode, ...]]) -> list[Run]:
    """The units cut into runs of a repeated sequence of units, left to right; at each place
    the run that saves the most units (the shortest period on a tie). Units repeat each other
    when their first nodes do and their lengths are equal, so `DenseLayer x 6, Transition`
    does not repeat as `DenseLayer x 12, Transition`."""

    def same(a: tuple[TracedNode, ...], b: tuple[TracedNode, ...]) -> bool:
        return len(a) == len(b) and _same(a[0], b[0])

    found: list[Run] = []
    i = 0
    while i < len(units):
        best = Run(i, 1, 1)
        for period in range(1, (len(units) - i) // 2 + 1):
            count = 1
            while i + (count + 1) * period <= len(units) and all(
                same(units[i + j], units[i + count * period + j]) for j in range(period)
            ):
                count += 1
            if period * (count - 1) > best.period * (best.count - 1):
                best = Run(i, period, count)
        found.append(best)
        i += best.period * best.count
    return found


def _same(a: TracedNode, b: TracedNode) -> bool:
    """Whether `b` repeats `a`: the same spec line(s) unrolled, the same block with the same
    written arguments, or the same layer call with the same output."""
    if type(a) is not type(b):
        return False
    if isinstance(a, TracedLayer) and isinstance(b, TracedLayer) and (a.reads or b.reads):
        return False  # a layer that reads an input is a join of it: drawn on its own
    if a.spec == b.spec:  # locations included: a literal `repeat` unrolled
        return True
    if isinstance(a, TracedBlockUse) and isinstance(b, TracedBlockUse):
        return a.spec.name == b.spec.name and _written(a, Scope()) == _written(b, Scope())
    if isinstance(a, TracedLayer) and isinstance(b, TracedLayer):
        return a.repeat is None and a.call == b.call and a.out_shape == b.out_shape
    return False


def _stack(nodes: Sequence[TracedNode], ctx: _Context) -> list[Item]:
    cut = units(nodes)
    items: list[Item] = []
    for run in runs(cut):
        if run.count == 1:
            items.append(_unit(cut[run.start], ctx))
            continue
        group = ctx.ids.group()
        reps = [
            [n for u in cut[start : start + run.period] for n in u]
            for start in range(run.start, run.start + run.count * run.period, run.period)
        ]
        last = cut[run.start + (run.count - 1) * run.period : run.start + run.count * run.period]
        body = tuple(_unit(u, ctx) for u in last)
        title = f"x {run.count}" + _last_shown(reps)
        items.append(Group(group, title, body, "repeat"))
    return items


def _unit(unit: tuple[TracedNode, ...], ctx: _Context) -> Item:
    """One node, or a run of nodes that repeat it: one box when they are alike, else a frame
    around the last of them."""
    node = unit[-1]
    if len(unit) == 1:
        item = _node(node, ctx)
        if isinstance(item, Box | Fork):  # where a head inside a branch reads (`p3.down.p4`)
            ctx.boxes[id(node)] = item.id if isinstance(item, Box) else item.join.id
        return item
    if _alike(unit, ctx):
        label = None
        if isinstance(node, TracedBlockUse) and any(m.call != node.call for m in unit):
            label = _written(node, ctx.scope)  # uses that differ in their input sizes
        box = _node(node, ctx, label)
        assert isinstance(box, Box)
        return replace(box, label=f"{box.label} x {len(unit)}")
    group = ctx.ids.group()
    shown = _last_shown([[m] for m in unit])
    if isinstance(node, TracedBlockUse):  # expanded uses
        title = f"{_written(node, ctx.scope)} x {len(unit)}{shown}"
        return Group(group, title, _use_body(node, ctx), "use")
    return Group(group, f"x {len(unit)}{shown}", (_node(node, ctx),), "repeat")


def _last_shown(repetitions: Sequence[Sequence[TracedNode]]) -> str:
    """What a frame around the last repetition adds to its title when the others differ (in
    the input sizes seqgen infers)."""
    last = repetitions[-1]
    alike = all(
        len(r) == len(last)
        and all(a.call == b.call and a.out_shape == b.out_shape for a, b in zip(r, last))
        for r in repetitions
    )
    return "" if alike else ", last shown"


def _alike(members: Sequence[TracedNode], ctx: _Context) -> bool:
    """Whether a run is drawn as one box: uses of a block (not expanded), or one layer call."""
    first = members[0]
    if isinstance(first, TracedBlockUse):
        return not ctx.expand
    return (
        isinstance(first, TracedLayer)
        and first.repeat is None
        and all(isinstance(m, TracedLayer) and m.call == first.call for m in members)
    )


def _node(node: TracedNode, ctx: _Context, label: str | None = None) -> Item:
    scope = ctx.scope
    if isinstance(node, TracedLayer) and node.repeat is not None:
        group = ctx.ids.group()
        body = tuple(_stack(node.body, ctx))
        return Group(group, f"x {scope.text(node.repeat)}", body, "repeat")
    if isinstance(node, TracedLayer):
        # `lstm H lengths=NAME`: the layer joins the stream and a box of each input it reads
        read = tuple((box,) for _, name in node.reads for box in _input_box(name, ctx))
        box = Box(
            ctx.ids.box(), label or _call(node.call, scope), scope.shape(node.out_shape), "layer"
        )
        return Fork(((), *read), box) if read else box
    if isinstance(node, TracedMerge):
        sources = node.spec.branch_from or (None,) * len(node.branches)
        branches = tuple(
            (*_input_box(source, ctx), *_stack(b, ctx))
            for b, source in zip(node.branches, sources, strict=True)
        )
        if node.spec.kind == "residual" and len(branches) == 1:
            branches += ((),)  # the input itself is added
        join = node.class_name + (
            f"(dim={node.dim})" if node.dim is not None else _SIGN[node.spec.kind]
        )
        return Fork(branches, Box(ctx.ids.box(), join, scope.shape(node.out_shape), "merge"))
    if ctx.expand:
        group = ctx.ids.group()
        return Group(group, _call(node.call, scope), _use_body(node, ctx), "use")
    return Box(
        ctx.ids.box(), label or _call(node.call, scope), scope.shape(node.out_shape), "block"
    )


def _input_box(source: str | None, ctx: _Context) -> tuple[Box, ...]:
    """A `branch from=NAME:` starts from a box of input NAME (no edge into it)."""
    if source is None:
        return ()
    return (Box(ctx.ids.box(), f"input {source}", ctx.scope.shape(ctx.inputs[source]), "input"),)


def _use_body(use: TracedBlockUse, ctx: _Context) -> Stack:
    """A block use opened: the block's layers, sized for this use."""
    inner = replace(ctx, scope=ctx.scope.bind(use.bindings))
    return tuple(_stack(ctx.blocks[use.spec.name].layers, inner))


def _call(source: str, scope: Scope) -> str:
    """A constructor call as a label: `Conv2d(3, 16, kernel_size=3)`, without the `nn.`."""
    text = scope.text(source)
    return text.removeprefix("nn.")


def _written(use: TracedBlockUse, scope: Scope) -> str:
    """A block use as the spec writes it, without the input sizes seqgen passes: `Basic(32)`,
    `DenseLayer`."""
    inputs = len(use.call_args) - len(use.spec.args)  # the sizes come first
    args = [*use.call_args[inputs:], *(f"{k}={v}" for k, v in use.call_kwargs)]
    text = f"{use.spec.name}({', '.join(args)})"
    return scope.text(text) if args else use.spec.name
