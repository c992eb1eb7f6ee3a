"""The spec IR: what the parser makes of a spec's text (values, layers, merges, blocks)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from seqgen.errors import Location

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
class UseSpec:
    """`use mypkg.layers:Gate [as gate] [infers in_channels=1]`: a class of the user's own, which
    layer lines then name like a torch.nn class (imported at the trace, where the project allows
    it; never by the parser)."""

    module: str  # `mypkg.layers`: dotted, every part a checked identifier
    class_name: str  # `Gate`: a checked identifier
    name: str  # the word layer lines use (the alias, else the class name)
    inferred: tuple[tuple[str, int], ...]  # (constructor argument, dim of the input) seqgen fills
    loc: Location  # the import path on the `use` line

    @property
    def import_path(self) -> str:
        """`mypkg.layers:Gate`, as the spec writes it."""
        return f"{self.module}:{self.class_name}"


@dataclass(frozen=True)
class LayerSpec:
    """One layer line: a torch.nn class name with its arguments."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    loc: Location
    key: str | None = None  # `name=stem`: the module's key in the nn.Sequential (default: index)
    call_syntax: bool = False  # written as a Python call, `Linear(784, 10)`: refused, with a hint
    use: UseSpec | None = None  # the `use` line that declares the class this line names
    # `lstm 64 lengths=lengths`: the keywords whose value names another input of the model,
    # which the layer reads beside its input (taken out of `kwargs`; the trace checks the kind)
    reads: tuple[Keyword, ...] = ()


@dataclass(frozen=True)
class RepeatSpec:
    """`repeat depth:` with an int parameter: a block repeated `depth` times by a loop in the
    generated model (a literal `repeat 3:` is unrolled by the parser instead)."""

    count: Name
    layers: tuple[Node, ...]
    loc: Location


# The merge kinds of the language, and the runtime class (seqgen/runtime/merges.py) that each
# becomes in generated code: the parser's keywords, the renderer and the self-check read this.
MERGE_CLASSES = {
    "residual": "Residual",
    "concat": "Concat",
    "add": "Add",
    "multiply": "Multiply",
    "bmm": "Bmm",
    "reparameterize": "Reparameterize",
    "subtract": "Subtract",
}
# The merges that take exactly N `branch:` stacks (others two or more), for the parser's error.
MERGE_ARITY = {
    "bmm": (2, "bmm multiplies branch 1, (N, n, m), by branch 2, (N, m, p)"),
    "reparameterize": (2, "the mean's branch first, then the log-variance's"),
    "subtract": (2, "it gives branch 1 minus branch 2"),
}


@dataclass(frozen=True)
class MergeSpec:
    """A merge (`kind`: the MERGE_CLASSES key; MERGE_ARITY says which take exactly two).

    Each branch is a stack of nodes that reads the merge's input. A residual has its body as the
    first branch and its shortcut, when written, as the second; without one the input itself is
    added. A reparameterize has the mean, then the log-variance; a subtract a minus b.
    """

    kind: str  # residual | concat | add | multiply | subtract | bmm | reparameterize
    branches: tuple[tuple[Node, ...], ...]
    loc: Location
    dim: Expr | None = None  # concat's dim, when written
    key: str | None = None  # `concat name=skip:`: its key in the enclosing nn.Sequential
    # `branch name=left:`: each branch's key in the merge (None: its index); () when none is named
    branch_keys: tuple[str | None, ...] = ()
    # `branch from=meta:`: the input each branch reads (None: the merge's); () when none does
    branch_from: tuple[str | None, ...] = ()
    # `branch from=b shares=left:`: the branch whose modules (and weights) a branch reuses, its
    # stack a copy of that branch's; () when none does
    branch_shares: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class BlockUse:
    """A layer line that names a block defined above it: `Basic 128 stride=2`."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    loc: Location
    key: str | None = None  # `Basic 64 name=layer1`: its key in the enclosing nn.Sequential


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


def node_key(node: Node) -> str | None:
    """A node's `name=`: its key in the nn.Sequential that holds it (None: its index)."""
    return None if isinstance(node, RepeatSpec) else node.key


def walk(nodes: Sequence[Node]) -> Iterator[Node]:
    """Every node of a stack, depth first: the stack's own, then those inside each."""
    for item in nodes:
        yield item
        if isinstance(item, RepeatSpec):
            yield from walk(item.layers)
        elif isinstance(item, MergeSpec):
            for branch in item.branches:
                yield from walk(branch)


def children(e: Expr) -> tuple[Expr, ...]:
    """The values directly inside a spec value: a sign's operand, an operator's two sides, a
    tuple's items; none inside a literal or a name."""
    match e:
        case Neg():
            return (e.operand,)
        case BinOp():
            return (e.left, e.right)
        case TupleExpr():
            return e.items
        case Num() | Str() | Const() | Name():
            return ()


def walk_expr(e: Expr) -> Iterator[Expr]:
    """A spec value and every value inside it, depth first, left to right."""
    yield e
    for child in children(e):
        yield from walk_expr(child)


def expr_names(e: Expr) -> Iterator[Name]:
    """Every parameter reference inside a spec value."""
    return (n for n in walk_expr(e) if isinstance(n, Name))


def node_values(node: Node) -> tuple[Expr, ...]:
    """The values on a node's own line: a layer's or block use's arguments, concat's dim, the
    count of a `repeat depth:` loop."""
    match node:
        case LayerSpec() | BlockUse():
            return (*node.args, *(kw.value for kw in node.kwargs))
        case MergeSpec():
            return () if node.dim is None else (node.dim,)
        case RepeatSpec():
            return (node.count,)


def flat_layers(layers: Sequence[Node]) -> Iterator[LayerSpec]:
    """Every layer line of a stack, those inside `repeat` and merges too (not block bodies)."""
    for item in walk(layers):
        if isinstance(item, LayerSpec):
            yield item


@dataclass(frozen=True)
class HeadSpec:
    """`head NAME [from=POINT] [train_only=True]:` and its stack: one output of the model,
    traced from the trunk's output, or from the output of the trunk's node named POINT."""

    name: str
    layers: tuple[Node, ...]
    loc: Location  # the head's name
    point: str | None = None  # `from=POINT`: the name of a top-level trunk node
    point_loc: Location | None = None
    train_only: bool = False  # returned in training mode only, None in eval mode
    # `from=MERGE.BRANCH`: the named branch of the merge `point` whose output the head reads
    branch: str | None = None
    # `from=p3.down.p4`: the rest of the path in that branch (a node's name, a branch's, ...)
    inner: tuple[str, ...] = ()

    @property
    def source(self) -> str | None:
        """What `from=` names, as written: `mid`, `z.mu`, `p3.down.p4`; None: the trunk's end."""
        if self.point is None:
            return None
        return ".".join([self.point, *([self.branch] if self.branch else []), *self.inner])


@dataclass(frozen=True)
class InputSpec:
    """`input NAME SHAPE [dtype=long]`: one of a model's several inputs (batch excluded)."""

    name: str
    shape: tuple[Expr, ...]
    loc: Location
    dtype: str = "float"


def point_index(layers: Sequence[Node], name: str) -> int | None:
    """The index of the top-level node called `name` among `layers` (a head's `from=` point),
    if any: a layer, a block use or a merge with `name=`."""
    return next((i for i, node in enumerate(layers) if node_key(node) == name), None)


def head_route(layers: Sequence[Node], head: HeadSpec) -> tuple[tuple[int, int | None], ...]:
    """Where a head reads, a step per stack from the top: (node index, branch index in that
    merge or None: the node's output). `from=p3.down.p4`: ((i, j), (k, None)); () without
    `from=`. It stops at a name that does not resolve (lang/heads.py refuses those)."""
    names = [] if head.source is None else head.source.split(".")
    route: list[tuple[int, int | None]] = []
    stack = layers
    for k in range(0, len(names), 2):
        i = point_index(stack, names[k])
        if i is None:
            break
        node = stack[i]
        if k + 1 == len(names) or not isinstance(node, MergeSpec):
            route.append((i, None))
            break
        keys = node.branch_keys
        j = keys.index(names[k + 1]) if names[k + 1] in keys else None
        route.append((i, j))
        if j is None:
            break
        stack = node.branches[j]
    return tuple(route)


def branch_index(layers: Sequence[Node], head: HeadSpec) -> int | None:
    """For a head that reads a merge's branch (`from=z.mu`, `from=p3.down.p4`), that branch's
    index in the top-level merge among `layers`; None for any other head."""
    route = head_route(layers, head)
    return route[0][1] if route and head.branch is not None else None


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
    heads: tuple[HeadSpec, ...] = ()  # several outputs; none: `forward` returns the trunk's
    input_name: str | None = None  # `input image 3x32x32`: the first input's name, when named
    extra_inputs: tuple[InputSpec, ...] = ()  # the inputs after the first (lang/inputs.py)
    uses: tuple[UseSpec, ...] = ()  # `use` lines: the user's own classes

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        """Every named input, the first (the trunk's) first; () for a single unnamed input."""
        if self.input_name is None:
            return ()
        loc = self.input_loc if self.input_loc is not None else Location(self.path, 1, 1, "")
        return (
            InputSpec(self.input_name, self.input_shape, loc, self.input_dtype),
            *self.extra_inputs,
        )

    @property
    def head_nodes(self) -> tuple[Node, ...]:
        """The nodes of every head's stack, in order (the trunk's are `layers`)."""
        return tuple(node for head in self.heads for node in head.layers)

    def block(self, name: str) -> BlockDef | None:
        """The block called `name`, if any."""
        return next((b for b in self.blocks if b.name == name), None)

    def param(self, name: str) -> Param | None:
        """The parameter called `name`, if any."""
        return next((p for p in self.params if p.name == name), None)


def spec_names(nodes: Sequence[Node]) -> set[str]:
    """The parameter names a stack's values read (repeat counts, arguments, concat dims)."""
    return {n.id for node in walk(nodes) for value in node_values(node) for n in expr_names(value)}
