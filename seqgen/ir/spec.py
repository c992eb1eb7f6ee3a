"""Frozen dataclasses passed between pipeline stages.

DSL text --dsl--> ModelSpec --trace--> TracedModel --render--> source --write--> files.
Nothing here imports torch: the trace stage copies what it learns into plain values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from seqgen.errors import Diagnostic, Location

# ------------------------------------------------------- spec values (parsed, never evaluated)


@dataclass(frozen=True)
class Num:
    """An int or float literal."""

    value: int | float
    loc: Location


@dataclass(frozen=True)
class Str:
    """A quoted string literal."""

    value: str
    loc: Location


@dataclass(frozen=True)
class Const:
    """True, False or None."""

    value: bool | None
    loc: Location


@dataclass(frozen=True)
class Name:
    """A reference to a model parameter."""

    id: str
    loc: Location


@dataclass(frozen=True)
class Neg:
    """Unary minus."""

    operand: Expr
    loc: Location


@dataclass(frozen=True)
class BinOp:
    """Arithmetic: op is one of + - * //."""

    op: str
    left: Expr
    right: Expr
    loc: Location


@dataclass(frozen=True)
class TupleExpr:
    """A parenthesised tuple of values."""

    items: tuple[Expr, ...]
    loc: Location


Expr = Num | Str | Const | Name | Neg | BinOp | TupleExpr
Literal = int | float | bool | str | None


@dataclass(frozen=True)
class Param:
    """A constructor parameter of the generated class (`model CNN(num_classes=10)`), or of a
    block's class (`block Basic(out, stride=1)`, where a default may be missing)."""

    name: str
    default: int | float | bool | str | None  # None: required (block parameters only)
    loc: Location
    from_input: bool = False  # declared in the `input` line (`input (8, seq_len=50)`)
    annotation: str | None = None  # `out: int`

    @property
    def type_name(self) -> str:
        if self.annotation is not None:
            return self.annotation
        return type(self.default).__name__ if self.default is not None else "int"

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Keyword:
    """A `KEY=VALUE` layer argument, with the key already resolved from its alias."""

    name: str
    value: Expr
    loc: Location
    written: str  # the key as written (`k` for kernel_size)


@dataclass(frozen=True)
class LayerSpec:
    """One layer line: a torch.nn class name with its arguments."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    loc: Location
    key: str | None = None  # `name=stem`: the module's key in the nn.Sequential (default: index)
    call_syntax: bool = False  # written as a Python call, `Linear(784, 10)`: refused, with a hint


@dataclass(frozen=True)
class RepeatSpec:
    """`repeat depth:` with an int parameter: a block repeated `depth` times by a loop in the
    generated model (a literal `repeat 3:` is unrolled by the parser instead)."""

    count: Name
    layers: tuple[Node, ...]
    loc: Location


@dataclass(frozen=True)
class MergeSpec:
    """`residual:` (with an optional `shortcut:`), `concat [dim=D]:`, `add:` or `multiply:`.

    Each branch is a stack of nodes that reads the merge's input. A residual has its body as the
    first branch and its shortcut, when written, as the second; without one the input itself is
    added.
    """

    kind: str  # residual | concat | add | multiply
    branches: tuple[tuple[Node, ...], ...]
    loc: Location
    dim: Expr | None = None  # concat's dim, when written


@dataclass(frozen=True)
class BlockUse:
    """A layer line that names a block defined above it: `Basic 128 stride=2`."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    loc: Location


@dataclass(frozen=True)
class BlockDef:
    """`block NAME(p, q=default):` and its body: one nn.Module class in the generated file."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Node, ...]
    loc: Location

    def param(self, name: str) -> Param | None:
        """The parameter called `name`, if any."""
        return next((p for p in self.params if p.name == name), None)


Node = LayerSpec | RepeatSpec | MergeSpec | BlockUse


def walk(nodes: Sequence[Node]) -> Iterator[Node]:
    """Every node of a stack, depth first: the stack's own, then those inside each."""
    for item in nodes:
        yield item
        if isinstance(item, RepeatSpec):
            yield from walk(item.layers)
        elif isinstance(item, MergeSpec):
            for branch in item.branches:
                yield from walk(branch)


def expr_names(e: Expr) -> Iterator[Name]:
    """Every parameter reference inside a spec value."""
    if isinstance(e, Name):
        yield e
    elif isinstance(e, Neg):
        yield from expr_names(e.operand)
    elif isinstance(e, BinOp):
        yield from expr_names(e.left)
        yield from expr_names(e.right)
    elif isinstance(e, TupleExpr):
        for item in e.items:
            yield from expr_names(item)


def flat_layers(layers: Sequence[Node]) -> Iterator[LayerSpec]:
    """Every layer line of a stack, those inside `repeat` and merges too (not block bodies)."""
    for item in walk(layers):
        if isinstance(item, LayerSpec):
            yield item


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: class name, parameters, sample input and the layers, literal repeats
    unrolled."""

    path: str
    class_name: str
    params: tuple[Param, ...]
    input_shape: tuple[Expr, ...]
    layers: tuple[Node, ...]
    input_loc: Location | None = None
    # `# seqgen: ignore[W001]` comments: (where, codes); no codes ignores every warning on the line
    ignores: tuple[tuple[Location, tuple[str, ...]], ...] = ()
    blocks: tuple[BlockDef, ...] = ()  # in definition order
    input_dtype: str = "float"  # `input ... dtype=long`: "long" (token ids) or "float"

    def block(self, name: str) -> BlockDef | None:
        """The block called `name`, if any."""
        return next((b for b in self.blocks if b.name == name), None)

    def param(self, name: str) -> Param | None:
        """The parameter called `name`, if any."""
        return next((p for p in self.params if p.name == name), None)


# ---------------------------------------------------------------- traced model (plain values only


@dataclass(frozen=True)
class Dim:
    """One dimension of a traced shape.

    `code` is a Python expression over the model's parameters (the batch is `N`), as written in
    generated code; `value` is its size at the sample input and default parameters.
    """

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
    macs: Dim  # multiply-accumulates for one sample, counted as torchinfo counts them
    body: tuple[TracedNode, ...] = ()  # the nodes of a `repeat depth:` block
    repeat: str | None = None  # its count: the int parameter's name
    # seqgen's own layers (seqlayers.py): the whole constructor call, when it is not
    # `nn.{class_name}(...)` (`RecurrentOutput(nn.LSTM(...), take="last")`), and the helper
    # classes of seqgen/runtime it needs
    code: str | None = None
    helpers: tuple[str, ...] = ()
    # per sample, the output elements torchinfo keeps for the backward pass, when they are not
    # this layer's own output (a layer with child modules: the leaves' outputs); None: as usual
    activations: Dim | None = None
    # parameters torchinfo's "params size" leaves out: those of modules that have children (a
    # transformer layer's attention, a weight_norm'd layer); None: none
    hidden_params: Dim | None = None

    @property
    def line(self) -> int:
        return self.spec.loc.line

    @property
    def call(self) -> str:
        """`nn.Conv2d(3, 16, kernel_size=3)` as it appears in generated code."""
        if self.repeat is not None:
            inner = ", ".join(b.call for b in self.body)
            return f"*[nn.Sequential({inner}) for _ in range({self.repeat})]"
        if self.code is not None:
            return self.code
        parts = [*self.call_args, *(f"{k}={v}" for k, v in self.call_kwargs)]
        return f"nn.{self.class_name}({', '.join(parts)})"


MERGE_CLASSES = {"residual": "Residual", "concat": "Concat", "add": "Add", "multiply": "Multiply"}


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
    layer_index: int
    message: str  # what goes wrong otherwise
    maximum: int | None = None  # that parameter's largest valid value
    names: tuple[str, ...] = ()  # the parameters the condition reads


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

    @property
    def init_params(self) -> tuple[Param, ...]:
        """The parameters the generated `__init__` takes."""
        return tuple(p for p in self.spec.params if p.name not in self.free_dims)

    @property
    def out_shape(self) -> tuple[Dim, ...]:
        return self.layers[-1].out_shape if self.layers else self.input_shape


@dataclass(frozen=True)
class GeneratedFile:
    """One rendered output: where it goes and its full text."""

    path: str
    text: str
    source: str = ""  # the absolute path of the spec it is generated from (checked, not written)


def spec_names(nodes: Sequence[Node]) -> set[str]:
    """The parameter names a stack's values read (repeat counts, arguments, concat dims)."""
    used: set[str] = set()
    for node in walk(nodes):
        if isinstance(node, RepeatSpec):
            used.add(node.count.id)
        elif isinstance(node, (LayerSpec, BlockUse)):
            for e in (*node.args, *(kw.value for kw in node.kwargs)):
                used.update(n.id for n in expr_names(e))
        elif isinstance(node, MergeSpec) and node.dim is not None:
            used.update(n.id for n in expr_names(node.dim))
    return used


def called_names(layers: Sequence[TracedNode]) -> set[str]:
    """The names the generated constructor calls of a stack read."""
    called: set[str] = set()
    for node in layers:
        if isinstance(node, TracedMerge):
            for branch in node.branches:
                called |= called_names(branch)
            continue
        if isinstance(node, TracedLayer) and node.repeat is not None:
            called.add(node.repeat)
            called |= called_names(node.body)
            continue
        for source in (*node.call_args, *(v for _, v in node.call_kwargs)):
            called |= _identifiers(source)
    return called


def _identifiers(source: str) -> set[str]:
    import ast

    return {n.id for n in ast.walk(ast.parse(source, mode="eval")) if isinstance(n, ast.Name)}
