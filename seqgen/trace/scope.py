"""A tracing scope (trace stage): the symbols, printed sizes and conditions of one stack.

The model's own stack is one scope, and each block's body is another, traced once with symbols
of its own (its input sizes and int parameters). A scope turns sympy sizes into checked Python
source, keeps the conditions its layers need, and knows which sizes are already >= 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import sympy

from seqgen.errors import (
    Diagnostic,
    InternalError,
    Location,
    SeqgenError,
    SizeTooSmallError,
    TraceError,
)
from seqgen.ir import (
    BATCH,
    SAMPLE_BATCH,
    Dim,
    Expr,
    LayerSpec,
    ModelSpec,
    Param,
    TracedBlock,
    TracedNode,
)
from seqgen.layers.formulas import Check
from seqgen.layers.torch_nn import Values
from seqgen.safe_eval import evaluate_source
from seqgen.trace import symbolic as S
from seqgen.trace.constraints import Condition, Printer, holds
from seqgen.trace.merge_shapes import merge_hint
from seqgen.trace.torch_errors import shape_text
from seqgen.trace.wording import Site, argument_reason, at_defaults, empty_output

MAX_SIZE = 2**40  # larger sizes overflow torch's int64 element counts


@dataclass
class DimInfo:
    expr: sympy.Expr
    code: str  # how it reads in generated code (a flatten's product stays a product)


@dataclass(frozen=True)
class BlockArgs:
    """A use's arguments, by block parameter: the spec value and what it evaluates to."""

    nodes: Mapping[str, Expr]
    values: Mapping[str, Any]  # SymInt or int for int parameters, else the literal


@dataclass(frozen=True)
class BlockInfo:
    """A traced block in sympy terms, ready to be substituted at each use."""

    traced: TracedBlock
    rank: int
    first_line: int
    input_symbols: tuple[sympy.Symbol, ...]  # dims 1.. of its input
    param_symbols: Mapping[str, sympy.Symbol]  # its int parameters
    defaults: Mapping[str, Any]
    out_exprs: tuple[sympy.Expr, ...]
    params: sympy.Expr
    trainable: sympy.Expr
    macs: sympy.Expr
    conditions: tuple[Condition, ...]  # in the block's symbols
    size_args: tuple[int, ...]  # the input dims its constructor takes, in order
    names: Mapping[sympy.Symbol, str]

    def mapping(self, dims: Sequence[sympy.Expr], args: BlockArgs) -> dict[sympy.Symbol, Any]:
        """Block symbol -> the caller's expression, for one use."""
        out: dict[sympy.Symbol, Any] = dict(zip(self.input_symbols, dims[1:]))
        for name, sym in self.param_symbols.items():
            value = args.values.get(name, self.defaults.get(name))
            out[sym] = S.expr_of(value)
        return out

    def bound_symbols(self) -> list[tuple[str, sympy.Symbol]]:
        """(name, symbol) of every input size and int parameter."""
        return [(self.names[s], s) for s in (*self.input_symbols, *self.param_symbols.values())]


@dataclass
class Shared:
    """What every scope of one trace shares: the symbols, the spec, the blocks traced so far."""

    session: S.AnySession
    spec: ModelSpec
    batch: Any  # the batch's SymInt
    batch_sym: sympy.Symbol
    blocks: dict[str, BlockInfo] = field(default_factory=dict)  # by name, in first-use order
    warnings: list[Diagnostic] = field(default_factory=list)
    errors: list[SeqgenError] = field(default_factory=list)  # each once, found so far
    flags: dict[str, sympy.Symbol] = field(default_factory=dict)  # bool parameters, as 0/1


@dataclass(frozen=True)
class Step:
    traced: TracedNode
    params_expr: sympy.Expr
    trainable_expr: sympy.Expr
    macs_expr: sympy.Expr


@dataclass(frozen=True)
class NodeResult:
    """A traced node: the fake output tensor that flows on, its dims, and the node's step."""

    x: Any  # torch.Tensor (fake)
    dims: list[DimInfo]
    step: Step


@dataclass(frozen=True)
class StackResult:
    """A traced stack: the output tensor and dims after its last node, and each node's step."""

    x: Any  # torch.Tensor (fake)
    dims: list[DimInfo]
    steps: list[Step]


class Scope:
    """Symbols, printing and conditions of one stack (see Tracer for the nodes)."""

    def __init__(
        self,
        shared: Shared,
        env: dict[str, Any],
        hints: Mapping[sympy.Symbol, int],
        concrete: Values,
        params: Mapping[str, Param],
        block: str | None = None,
    ) -> None:
        self.shared = shared
        self.spec = shared.spec
        self.session = shared.session
        self.names = self.session.names
        self.batch = shared.batch
        self.batch_sym = shared.batch_sym
        self.hints: dict[sympy.Symbol, int] = {**hints, shared.batch_sym: SAMPLE_BATCH}
        self.values = Values(env)
        self.concrete = concrete
        self.params = params
        self.block = block  # the block this scope traces, None for the model
        self.warnings = shared.warnings
        self.conditions: list[Condition] = []
        self.points = probe_points(self.hints)
        self.positive: list[sympy.Expr] = []  # sizes already required to be >= 1
        self.previous: tuple[str, bool] | None = None  # the last layer's class, and in-place?
        self.shared_input = False  # the stack's input is read by other branches too

    def code(self, expr: sympy.Basic, loc: Location | None) -> str:
        expr = S.simplify(self.session, expr)
        try:
            text = S.to_python(expr, self.names)
        except S.Unprintable as e:
            raise TraceError(
                f"cannot write the size {expr} as Python arithmetic ({e})", location=loc
            ) from e
        self.check_printed(expr, text, loc)
        return text

    def negated_code(self, cond: sympy.Basic) -> str:
        """The test that refuses a condition, as generated code writes it (`a != b`)."""
        cond = S.simplify(self.session, cond)
        try:
            text = S.to_python_negated(cond, self.names)
        except S.Unprintable as e:
            raise TraceError(f"cannot write the condition {cond} as Python ({e})") from e
        self.check_printed(cond, text, None, negated=True)
        return text

    @property
    def printer(self) -> Printer:
        """How this scope's conditions read in generated code."""
        return Printer(lambda e: self.code(e, None), self.negated_code)

    def check_printed(
        self, expr: sympy.Basic, text: str, loc: Location | None, negated: bool = False
    ) -> None:
        """The printed text must compute what the expression does (or, `negated`, its opposite),
        here and at other values."""
        for point in self.points:
            by_name = {self.names[s]: v for s, v in point.items()}
            try:
                want = S.evaluate(expr, point)
                if negated:
                    want = not want
            except ZeroDivisionError:
                want = ZeroDivisionError
            try:
                got = evaluate_source(text, by_name)
            except ZeroDivisionError:
                got = ZeroDivisionError
            if got != want:
                raise InternalError(
                    f"internal error: seqgen printed {text!r} for {expr}, which "
                    f"gives {got} instead of {want} at {by_name}",
                    location=loc,
                )

    def implied_by_sizes(self, cond: sympy.Basic) -> bool:
        """`e >= 1` for an `e` known >= 1 already; otherwise `e` is now known (and kept)."""
        if isinstance(cond, sympy.Ge) and cond.rhs == 1:
            if self.implied_positive(cond.lhs):
                return True
            self.positive.append(cond.lhs)
        return False

    def implied_positive(self, expr: sympy.Expr) -> bool:
        """A size already known >= 1, or a positive multiple of such sizes (a flatten)."""
        if expr in self.positive:
            return True
        # only recent sizes over the same names: a redundant check is harmless, a slow trace not
        free = S.free_symbols(expr)
        recent = [k for k in self.positive[-16:] if S.free_symbols(k) <= free]
        rest = sympy.factor_terms(expr)
        for known in sorted(recent, key=sympy.count_ops, reverse=True) + [self.batch_sym]:
            while True:
                quotient = sympy.cancel(rest / known)
                if sympy.fraction(quotient)[1] != 1:
                    break
                rest = quotient
        return bool(rest.is_number and rest > 0)

    def value(self, expr: sympy.Expr) -> int:
        return cast(int, S.evaluate(S.simplify(self.session, expr), self.hints))  # a size: an int

    def dim(self, info: DimInfo) -> Dim:
        return self.as_dim(info.expr, info.code)

    def as_dim(self, expr: sympy.Expr, code: str | None = None) -> Dim:
        expr = S.simplify(self.session, expr)
        return Dim(
            code if code is not None else self.code(expr, None),
            self.value(expr),
            bool(S.free_symbols(expr)),
        )

    def show(self, expr: sympy.Expr) -> str:
        """A value inside a message: its expression when it has names, else the number."""
        expr = S.simplify(self.session, expr)
        return self.code(expr, None) if S.free_symbols(expr) else str(self.value(expr))

    def require(
        self,
        checks: Sequence[Check],
        index: int,
        where: Site,
        name: str,
        loc: Location,
        before_failing: Callable[[], object] | None = None,
    ) -> None:
        """A rule's checks: each must hold at the defaults, may not involve the batch, and
        becomes a condition of __init__ unless the sizes already imply it. `before_failing`
        runs first when one fails at the defaults (torch's own refusal may say it better)."""
        for check in checks:
            free = S.free_symbols(check.condition)
            if self.batch_sym in free:
                raise TraceError(
                    f"{name}: {check.message(self.show)} depends on the batch size", location=loc
                )
            if not holds(check.condition, self.hints):
                if before_failing is not None:
                    before_failing()
                raise TraceError(
                    f"{name}: {check.message(lambda e: str(self.value(e)))}"
                    f"{at_defaults(check.condition, self.names, self.hints)}",
                    location=loc,
                )
            if self.implied_by_sizes(check.condition):
                continue
            rule = check.message(self.show)
            shown = tuple(self.show(v) for v in check.values)
            self.conditions.append(
                Condition(
                    check.condition,
                    index,
                    f"{where}: {rule}",
                    reason=argument_reason(where.name, check.subject, shown, rule),
                    detail=f"{where.name}: {rule}",
                    source=where.comment(check.subject),
                )
            )

    def need(self, c: Condition, loc: Location) -> None:
        """A condition on the parameters: it must hold at the defaults, and becomes a check."""
        cond, message, free = c.condition, c.message, S.free_symbols(c.condition)
        if self.batch_sym in free:
            raise TraceError(f"{message} depends on the batch size", location=loc)
        if not holds(cond, self.hints):
            self.merge_failure(c, loc)
            raise TraceError(f"{message}{at_defaults(cond, self.names, self.hints)}", location=loc)
        if free:
            self.conditions.append(c)

    def merge_failure(self, c: Condition, loc: Location) -> None:
        """A merge's condition broken at a block's use: every branch's shape there, and the
        hint of a top-level merge (a shortcut, the divisibility rule)."""
        if c.merge is not None and (found := c.merge.mismatch(self.value, self.show, self.hints)):
            hint = merge_hint(found, [c.condition for c in self.conditions], self.hints, self.names)
            raise TraceError(str(found), location=loc, hint=hint)

    def check_sizes(
        self,
        out_dims: Sequence[DimInfo],
        index: int,
        where: Site,
        loc: Location,
        dims: Sequence[DimInfo],
    ) -> None:
        """Every output size stays >= 1: at the defaults now, for other values in __init__."""
        for d in out_dims[1:]:
            free = S.free_symbols(d.expr)
            if (not free and int(d.expr) < 1) or (free and self.value(d.expr) < 1):
                raise SizeTooSmallError(
                    f"{where.name} gets input {shape_text(dims)} and its output "
                    f"{shape_text(out_dims)} collapses to zero",
                    location=loc,
                    hint="use a larger `input`, a smaller kernel or stride, or padding",
                )
            if (
                free
                and self.batch_sym not in free
                and not self.implied_by_sizes(sympy.Ge(d.expr, 1))
            ):
                self.conditions.append(
                    Condition(
                        sympy.Ge(d.expr, 1),
                        index,
                        f"{where} would output nothing",
                        reason=empty_output(where.name),
                        source=where.comment("output size"),
                    )
                )

    def symbolic_sizes(self, dims: Sequence[DimInfo]) -> list[Any]:
        """The SymInts (or ints) of traced dims, for a fake tensor or a shape rule."""
        return [symint(self, d) for d in dims]

    def check_specialized(self, before: Mapping[str, str], layer: LayerSpec) -> None:
        after = self.session.specialized()
        for name, became in after.items():
            if name == BATCH and name not in before:
                raise TraceError(
                    f"torch's kernel for {layer.name} fixes the batch size (it assumed "
                    f"N == {became}), so the model would only work at that batch size",
                    location=layer.loc,
                    hint="use another layer; seqgen keeps the batch symbolic",
                )
            if name not in before:
                raise TraceError(
                    f"torch's kernel for {layer.name} needs a fixed value of {name!r} "
                    f"(it assumed {name} == {became})",
                    location=layer.loc,
                    hint=f"write this argument as a number instead of {name}",
                )


def confirm_shape(want: tuple[int, ...], got: Sequence[int], what: str, loc: Location) -> None:
    """torch ran the layer at the sample values: its shape must be the one seqgen computed."""
    if tuple(int(s) for s in got) != want:
        raise InternalError(
            f"internal error: seqgen computes {want} for {what} but torch gives "
            f"{tuple(int(s) for s in got)}",
            location=loc,
        )


def probe_points(hints: Mapping[sympy.Symbol, int]) -> list[dict[sympy.Symbol, int]]:
    """Values at which printed expressions are checked: the defaults, and others around them."""
    points = [dict(hints)]
    shifts: tuple[Callable[[int], int], ...] = (
        lambda v: v + 1,
        lambda v: 2 * v + 3,
        lambda v: 3 * v + 7,
        lambda v: v - 1,
    )
    for shift in shifts:
        points.append({s: shift(v) for s, v in hints.items()})
    for i, s in enumerate(sorted(hints, key=str)):
        points.append({**hints, s: hints[s] + 1 + 2 * (i % 3)})
    return points


def symint(tracer: Scope, d: DimInfo) -> Any:
    """The SymInt (or int) for a dim expression."""
    if d.expr.is_number:
        return int(d.expr)
    return tracer.session.size(d.expr, tracer.value(d.expr))
