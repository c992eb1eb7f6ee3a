"""The traced IR: a model after tracing, as plain values (no torch objects), and rendered files."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from seqgen.errors import Diagnostic
from seqgen.ir.spec import (
    MERGE_CLASSES,
    BlockDef,
    BlockUse,
    HeadSpec,
    LayerSpec,
    MergeSpec,
    ModelSpec,
    Param,
    branch_index,
    head_route,
    point_index,
)

BATCH = "N"  # the batch dim, as generated code and messages name it
# The batch the trace and its checks run at: 1 would broadcast (torch specialises it), 2 stays
# symbolic.
SAMPLE_BATCH = 2


@dataclass(frozen=True)
class Dim:
    """One dimension of a traced shape: `code`, a Python expression over the model's
    parameters (the batch is `N`); `value`, its size at the sample input and defaults."""

    code: str
    value: int
    symbolic: bool = False  # depends on a model parameter or the batch

    @property
    def shown(self) -> str:
        """How a shape comment shows it: the number, or the expression when it has names."""
        return self.code if self.symbolic else str(self.value)


@dataclass(frozen=True)
class TracedLayer:
    """A layer after tracing: how to construct it and what comes out."""

    index: int
    spec: LayerSpec
    class_name: str  # torch.nn class name, e.g. "Conv2d"
    call_args: tuple[str, ...]  # Python source of each positional argument (`code`, if set)
    call_kwargs: tuple[tuple[str, str], ...]  # (name, Python source)
    out_shape: tuple[Dim, ...]
    params: Dim  # parameter count as an expression of the model's parameters
    trainable_params: Dim
    # multiply-accumulates for one sample: torchinfo's count (a transformer: its matmuls; a class
    # of the user's own: FlopCounterMode's flops / 2)
    macs: Dim
    body: tuple[TracedNode, ...] = ()  # the nodes of a `repeat depth:` block
    repeat: str | None = None  # its count: the int parameter's name
    # the nodes of its first pass, when that pass changes the shape: written apart, and `body`
    # (traced on its output) loops `repeat - 1` times; empty when every pass is `body`
    first: tuple[TracedNode, ...] = ()
    # seqgen's own layers (seqlayers.py): the whole constructor call, when it is not
    # `nn.{class_name}(...)` (`RecurrentOutput(nn.LSTM(...), take="last")`), and the helper
    # classes of seqgen/runtime it needs
    code: str | None = None
    helpers: tuple[str, ...] = ()
    # per sample, the output elements torchinfo keeps for the backward pass, when they are not
    # this layer's own output (a layer with child modules: the leaves' outputs); None: as usual
    activations: Dim | None = None
    # parameters torchinfo's "params size" leaves out (of modules with children); None: none
    hidden_params: Dim | None = None
    # its output is a sequence (N, L, E): the layer kind says so (layers/kind.py `Op.sequence`)
    sequence: bool = False
    # the inputs it reads in forward (`lengths=NAME`): (its keyword, "": 2nd positional; name)
    reads: tuple[tuple[str, str], ...] = ()
    # a class of the user's own whose mult-adds hold at the sample values only (W015, or no
    # symbolic expression)
    macs_at_sample: bool = False

    @property
    def line(self) -> int:
        return self.spec.loc.line

    @property
    def call(self) -> str:
        """`nn.Conv2d(3, 16, kernel_size=3)` as it appears in generated code."""
        if self.repeat is not None and any(getattr(b, "reads", ()) for b in self.body):
            return self._list_call()  # a loop that reads another input: an nn.ModuleList
        if self.repeat is not None:
            inner = ", ".join(b.call for b in self.body)
            if not self.first:
                return f"*[nn.Sequential({inner}) for _ in range({self.repeat})]"
            first = ", ".join(b.call for b in self.first)
            return (
                f"nn.Sequential({first}), "
                f"*[nn.Sequential({inner}) for _ in range({self.repeat} - 1)]"
            )
        if self.code is not None:
            return self.code
        parts = [*self.call_args, *(f"{k}={v}" for k, v in self.call_kwargs)]
        return f"nn.{self.class_name}({', '.join(parts)})"

    def _list_call(self) -> str:
        """`nn.ModuleList([... for _ in range(depth)])`, as render/layers.py writes it."""

        def one(nodes: tuple[TracedNode, ...]) -> str:
            calls = [b.call for b in nodes]
            return calls[0] if len(calls) == 1 else f"nn.ModuleList([{', '.join(calls)}])"

        if not self.first:
            return f"nn.ModuleList([{one(self.body)} for _ in range({self.repeat})])"
        rest = f"*[{one(self.body)} for _ in range({self.repeat} - 1)]"
        return f"nn.ModuleList([{one(self.first)}, {rest}])"


@dataclass(frozen=True)
class TracedMerge:
    """A merge after tracing: its branches, traced from the same input, and the merged shape."""

    index: int
    spec: MergeSpec
    branches: tuple[tuple[TracedNode, ...], ...]
    out_shape: tuple[Dim, ...]
    params: Dim
    trainable_params: Dim
    macs: Dim
    dim: int | None = None  # concat's dim (1 <= dim < rank)

    @property
    def line(self) -> int:
        return self.spec.loc.line

    @property
    def class_name(self) -> str:
        """The helper module that implements it in generated code (`Concat`)."""
        return MERGE_CLASSES[self.spec.kind]

    @property
    def call(self) -> str:
        """A one-line label: `Concat(2 branches, dim=1)`."""
        n = len(self.branches)
        if self.spec.kind == "residual":
            return "Residual(body, shortcut)" if n == 2 else "Residual(body)"
        return f"{self.class_name}({n} branches" + (
            f", dim={self.dim})" if self.dim is not None else ")"
        )


@dataclass(frozen=True)
class TracedBlockUse:
    """A use of a named block: the call that builds its class, and what comes out."""

    index: int
    spec: BlockUse
    call_args: tuple[str, ...]  # Python source: the input sizes it needs, then its arguments
    call_kwargs: tuple[tuple[str, str], ...]
    out_shape: tuple[Dim, ...]
    params: Dim
    trainable_params: Dim
    macs: Dim
    # the block's own names (input sizes, int parameters) -> their values at this use, as
    # Python source in the caller's names, to evaluate the block's inner shapes for this use
    bindings: tuple[tuple[str, str], ...] = ()

    @property
    def line(self) -> int:
        return self.spec.loc.line

    @property
    def class_name(self) -> str:
        return self.spec.name

    @property
    def call(self) -> str:
        parts = [*self.call_args, *(f"{k}={v}" for k, v in self.call_kwargs)]
        return f"{self.spec.name}({', '.join(parts)})"


TracedNode = TracedLayer | TracedMerge | TracedBlockUse


@dataclass(frozen=True)
class BlockArg:
    """A constructor parameter of a block's class: an input size, or a block parameter."""

    name: str
    type_name: str
    default: str | None  # Python source of the default; None when required
    input_size: bool = False  # an input size seqgen passes (`in_channels`)


@dataclass(frozen=True)
class TracedBlock:
    """A block traced once with its own symbols: its class, in the names of its arguments."""

    spec: BlockDef
    args: tuple[BlockArg, ...]
    input_shape: tuple[Dim, ...]  # in the block's names; values at its first use
    layers: tuple[TracedNode, ...]
    out_shape: tuple[Dim, ...]
    constraints: tuple[Constraint, ...]
    total_params: Dim
    # its first use, at the model's defaults: the arguments (name, Python source of the value)
    first_call: tuple[tuple[str, str], ...] = ()
    first_input: tuple[int, ...] = ()  # batch excluded
    first_output: tuple[int, ...] = ()

    @property
    def class_name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Constraint:
    """A condition the constructor arguments must meet, and the layer that needs it."""

    condition: str  # Python expression that must hold, e.g. "seq_len >= 3"
    symbol: str | None  # the one parameter it bounds, when it bounds exactly one
    minimum: int | None  # that parameter's smallest valid value
    failed: str  # the Python test that refuses the values, as simple as it gets: "seq_len < 3"
    layer_index: int
    # the rule in the parameters' names, and why: "stride must be at least 1 (for Conv2d)"
    message: str
    maximum: int | None = None  # that parameter's largest valid value
    names: tuple[str, ...] = ()  # the parameters the condition reads, in the order it reads them
    comment: str = ""  # where in the spec it comes from: "spec line 22: Conv2d stride"


@dataclass(frozen=True)
class TracedHead:
    """A head after tracing: its stack, traced from the trunk's output or its point's."""

    spec: HeadSpec
    layers: tuple[TracedNode, ...]
    input_shape: tuple[Dim, ...]  # the trunk's output, or its point's
    out_shape: tuple[Dim, ...]
    params: Dim
    trainable_params: Dim
    macs: Dim

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def point(self) -> str | None:
        """The trunk node it branches from (`from=POINT`); None: the trunk's end."""
        return self.spec.point

    @property
    def source(self) -> str | None:
        """What its `from=` names: `mid`, or a merge's branch `z.mu`; None: the trunk's end."""
        return self.spec.source

    @property
    def train_only(self) -> bool:
        return self.spec.train_only


@dataclass(frozen=True)
class TracedInput:
    """One of a model's several inputs after tracing: its name, shape (batch N first) and dtype."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float"
    # read by a layer's keyword: what a valid sample is ("lengths", "padding_mask"; see
    # layers/input_reads.py), and the input and dim whose size is that sequence's length
    role: str = ""
    length_of: tuple[str, int] | None = None


@dataclass(frozen=True)
class TracedModel:
    """Everything the renderer needs, as plain values."""

    spec: ModelSpec
    input_shape: tuple[Dim, ...]  # includes the batch dim N
    layers: tuple[TracedNode, ...]
    total_params: Dim
    trainable_params: Dim
    constraints: tuple[Constraint, ...]
    dim_params: tuple[str, ...]  # parameters that size the input (named input dims)
    # per named dim: (name, sizes its test builds, a size __init__ must refuse)
    dim_sizes: tuple[tuple[str, tuple[int, ...], int], ...] = field(default=())
    warnings: tuple[Diagnostic, ...] = field(default=())
    # named input dims that size no weight: not constructor arguments; their rules are documented
    free_dims: tuple[str, ...] = field(default=())
    blocks: tuple[TracedBlock, ...] = field(default=())  # in definition order, used ones only
    heads: tuple[TracedHead, ...] = field(default=())  # several outputs (the params count them)
    inputs: tuple[TracedInput, ...] = field(default=())  # several inputs, the first's first

    @property
    def stacks(self) -> tuple[tuple[TracedNode, ...], ...]:
        """The model's own stacks: the trunk's layers, then each head's."""
        return (self.layers, *(h.layers for h in self.heads))

    @property
    def init_params(self) -> tuple[Param, ...]:
        """The parameters the generated `__init__` takes."""
        return tuple(p for p in self.spec.params if p.name not in self.free_dims)

    def head_start(self, head: TracedHead) -> int:
        """The index of the trunk node `head` reads from (in): the last, without `from=`."""
        at = None if head.point is None else point_index(self.spec.layers, head.point)
        return len(self.layers) - 1 if at is None else at

    def head_branch(self, head: TracedHead) -> int | None:
        """The index of the branch of the merge at `head_start(head)` it reads in (`z.mu`)."""
        return branch_index(self.spec.layers, head.spec)

    def head_node(self, head: TracedHead) -> TracedNode:
        """The node whose output `head` reads: a trunk node, a branch's last (`from=z.mu`), or
        one inside a branch (`from=p3.down.p4`)."""
        route = head_route(self.spec.layers, head.spec) or ((len(self.layers) - 1, None),)
        stack: Sequence[TracedNode] = self.layers
        node = stack[route[0][0]]
        for i, j in route:
            node = stack[i]
            if j is not None and isinstance(node, TracedMerge):
                stack = node.branches[j]
                node = stack[-1]
        return node

    def split_merges(self) -> frozenset[int]:
        """The top-level merges forward writes as statements: those that read an input, those
        a head reads in."""
        read = {self.head_start(h) for h in self.heads if h.spec.branch is not None}
        return frozenset(
            i
            for i, node in enumerate(self.layers)
            if isinstance(node, TracedMerge) and (node.spec.branch_from or i in read)
        )

    def reading_layers(self) -> frozenset[int]:
        """The top-level layers (and loops) that read another input (`lengths=NAME`)."""
        return frozenset(
            i
            for i, n in enumerate(self.layers)
            if isinstance(n, TracedLayer)
            and (n.reads or any(getattr(b, "reads", ()) for b in n.body))
        )

    def plain_forward(self) -> bool:
        """Whether forward is plain statements (render/multi_inputs.py), not nn.Sequentials."""
        return bool(self.split_merges() or self.reading_layers())

    def shape_of(self, name: str) -> tuple[Dim, ...]:
        """The shape of the named input `name` (several inputs)."""
        return next(i.shape for i in self.inputs if i.name == name)

    @property
    def out_shape(self) -> tuple[Dim, ...]:
        """The trunk's output shape (with heads, each head has its own)."""
        return self.layers[-1].out_shape if self.layers else self.input_shape


@dataclass(frozen=True)
class GeneratedFile:
    """One rendered output: where it goes and its full text."""

    path: str
    text: str
    source: str = ""  # the absolute path of the spec it is generated from (checked, not written)


def walk_traced(nodes: Sequence[TracedNode]) -> Iterator[TracedNode]:
    """Every traced node of a stack, depth first: merge branches and loop bodies too (block
    classes are stacks of their own, in TracedModel.blocks)."""
    for node in nodes:
        yield node
        if isinstance(node, TracedMerge):
            for branch in node.branches:
                yield from walk_traced(branch)
        elif isinstance(node, TracedLayer) and node.body:
            yield from walk_traced(node.first)
            yield from walk_traced(node.body)


def called_names(layers: Sequence[TracedNode]) -> set[str]:
    """The names the generated constructor calls of a stack read."""
    called: set[str] = set()
    for node in walk_traced(layers):
        if isinstance(node, TracedMerge):
            continue  # its branches are walked; the merge itself takes no names
        if isinstance(node, TracedLayer) and node.repeat is not None:
            called.add(node.repeat)
            continue
        for source in (*node.call_args, *(v for _, v in node.call_kwargs)):
            called |= _identifiers(source)
    return called


def _identifiers(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source, mode="eval")) if isinstance(n, ast.Name)}
