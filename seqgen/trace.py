"""Stage 2: ModelSpec -> TracedModel, by running the layers on fake tensors with symbolic sizes.

torch is imported here and in _symbolic.py only. Parameters of type int and named input dims
become symbols, so every inferred size is an expression over them; no weight or activation is
ever allocated (FakeTensorMode), and weight initialisers are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sympy
import torch
from torch import nn

from . import _symbolic as S
from . import rules, seqlayers
from .argcheck import check_arguments, huge_layer_warning
from .confirm import confirm_on_cpu
from .constraints import Condition, derive, holds
from .errors import Diagnostic, Location, SeqgenError, SizeTooSmallError, TraceError
from .exprs import expr_source
from .failures import layer_failure, not_one_tensor, rank_error, rejected, shape_text
from .pysource import evaluate_source
from .verify import verify_at_other_values
from .lint import UNUSED_PARAMETER
from .layers import (  # noqa: F401 - INFERRED and layer_names are part of this stage's API
    INFERRED,
    Bound,
    Values,
    concrete_values,
    layer_names,
    resolve_layer,
)
from .preflight import check_layers, quiet_torch_warnings
from .blocks import BlockInfo, bind_use, trace_block
from .merges import MergeMismatch, combine
from .spec import (
    BlockUse,
    Constraint,
    Dim,
    Expr,
    LayerSpec,
    MergeSpec,
    ModelSpec,
    Name,
    Node,
    Param,
    RepeatSpec,
    Num,
    TracedBlockUse,
    TracedLayer,
    TracedMerge,
    TracedModel,
    TracedNode,
    TupleExpr,
    expr_names,
    flat_layers,
    walk,
)

BATCH = "N"
BATCH_HINT = 2  # a sample batch of 2 keeps the batch dim symbolic (1 would broadcast)
MAX_SIZE = 2**40  # larger sizes overflow torch's int64 element counts

# ------------------------------------------------------------------------------- tracing


@dataclass
class DimInfo:
    expr: sympy.Expr
    code: str  # how it reads in generated code (a flatten's product stays a product)


@dataclass
class Shared:
    """What every scope of one trace shares: the symbols, the spec, the blocks traced so far."""

    session: S.Session
    spec: ModelSpec
    batch: Any  # the batch's SymInt
    batch_sym: sympy.Symbol
    blocks: dict[str, BlockInfo] = field(default_factory=dict)  # by name, in first-use order
    warnings: list[Diagnostic] = field(default_factory=list)


def model_scope(spec: ModelSpec) -> Tracer:
    """The tracer of a model's own stack: its int parameters are symbols."""
    session = S.Session()
    env: dict[str, Any] = {}
    hints: dict[sympy.Symbol, int] = {}
    for p in spec.params:
        if type(p.default) is int and abs(p.default) > MAX_SIZE:
            raise TraceError(f"{p.name}={p.default} is too large for a tensor size",
                             location=p.loc, hint=f"sizes go up to {MAX_SIZE:,}")
        if type(p.default) is int:
            # no sign is assumed: __init__ receives any int, and must refuse the bad ones
            sym = session.symbol(p.name, p.default, size=False)
            env[p.name] = sym
            hints[S.expr_of(sym)] = p.default
        else:
            env[p.name] = p.default
    batch = session.symbol(BATCH, BATCH_HINT)
    shared = Shared(session, spec, batch, S.expr_of(batch))
    return Tracer(shared, env, hints, concrete_values(spec), {p.name: p for p in spec.params})


class Tracer:
    """Traces the nodes of one scope: the model's stack, or a block's body with its own symbols."""

    def __init__(self, shared: Shared, env: dict[str, Any], hints: Mapping[sympy.Symbol, int],
                 concrete: Values, params: Mapping[str, Param],
                 block: str | None = None) -> None:
        self.shared = shared
        self.spec = shared.spec
        self.session = shared.session
        self.names = self.session.names
        self.batch = shared.batch
        self.batch_sym = shared.batch_sym
        self.hints: dict[sympy.Symbol, int] = {**hints, shared.batch_sym: BATCH_HINT}
        self.values = Values(env)
        self.concrete = concrete
        self.params = params
        self.block = block  # the block this scope traces, None for the model
        self.warnings = shared.warnings
        self.conditions: list[Condition] = []
        self.points = _probe_points(self.hints)
        self.positive: list[sympy.Expr] = []  # sizes already required to be >= 1
        self.previous: tuple[str, bool] | None = None  # the last layer's class, and in-place?
        self.shared_input = False  # the stack's input is read by other branches too

    def code(self, expr: sympy.Basic, loc: Location | None) -> str:
        expr = S.simplify(self.session, expr)
        try:
            text = S.to_python(expr, self.names)
        except S.Unprintable as e:
            raise TraceError(f"cannot write the size {expr} as Python arithmetic ({e})",
                             location=loc) from e
        self.check_printed(expr, text, loc)
        return text

    def check_printed(self, expr: sympy.Basic, text: str, loc: Location | None) -> None:
        """The printed text must compute what the expression does, here and at other values."""
        for point in self.points:
            by_name = {self.names[s]: v for s, v in point.items()}
            try:
                want = S.evaluate(expr, point)
            except ZeroDivisionError:
                want = ZeroDivisionError
            try:
                got = evaluate_source(text, by_name)
            except ZeroDivisionError:
                got = ZeroDivisionError
            if got != want:
                raise TraceError(f"internal error: seqgen printed {text!r} for {expr}, which "
                                 f"gives {got} instead of {want} at {by_name}", location=loc,
                                 hint="please report this as a seqgen bug")

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
        return rest.is_number and rest > 0

    def value(self, expr: sympy.Expr) -> int:
        return S.evaluate(S.simplify(self.session, expr), self.hints)

    def dim(self, info: DimInfo) -> Dim:
        return self.as_dim(info.expr, info.code)

    def as_dim(self, expr: sympy.Expr, code: str | None = None) -> Dim:
        expr = S.simplify(self.session, expr)
        return Dim(code if code is not None else self.code(expr, None), self.value(expr),
                   bool(S.free_symbols(expr)))

    def show(self, expr: sympy.Expr) -> str:
        """A value inside a message: its expression when it has names, else the number."""
        expr = S.simplify(self.session, expr)
        return self.code(expr, None) if S.free_symbols(expr) else str(self.value(expr))

    def input_dims(self) -> list[DimInfo]:
        dims = [DimInfo(self.batch_sym, BATCH)]
        for e in self.spec.input_shape:
            v = self.values.eval(e)
            if isinstance(v, bool) or not isinstance(v, (int, torch.SymInt)):
                raise TraceError(f"input sizes must be whole numbers, got {v!r}", location=e.loc)
            expr = S.expr_of(v)
            size = self.value(expr)
            if size < 1:
                raise TraceError(f"input size must be positive, got {size}", location=e.loc)
            if size > MAX_SIZE:
                raise TraceError("input size is too large for a tensor", location=e.loc,
                                 hint=f"sizes go up to {MAX_SIZE:,}")
            dims.append(DimInfo(expr, self.code(expr, e.loc)))
            if S.free_symbols(expr):
                self.positive.append(expr)
                self.conditions.append(Condition(
                    sympy.Ge(expr, 1), -1, "the input would have an empty dimension"))
        return dims

    def run(self) -> TracedModel:
        """Trace the model's stack (this is the model's scope)."""
        spec = self.spec
        loop = next((r for r in spec.layers if isinstance(r, RepeatSpec)), None)
        named = next((layer for layer in flat_layers(spec.layers) if layer.key is not None), None)
        if loop is not None and named is not None:
            raise TraceError("layer names and `repeat` with a parameter count cannot be combined: "
                             "the loop's layers have no fixed place to name", location=named.loc,
                             hint="drop name=..., or write a number of times (`repeat 3:`)")
        dims = self.input_dims()
        self.input_dim_names = {self.names[s] for d in dims[1:] for s in S.free_symbols(d.expr)
                                if s in self.names}
        input_shape = tuple(self.dim(d) for d in dims)
        with self.session.active():
            x = torch.empty(self._sizes(dims), dtype=input_dtype(spec))
            _, _, steps = self.stack(spec.layers, x, dims)
        total = sum((st.params_expr for st in steps), sympy.Integer(0))
        trainable = sum((st.trainable_expr for st in steps), sympy.Integer(0))
        traced = [st.traced for st in steps]
        constraints = tuple(derive(self.conditions, self.hints, self.names,
                                   lambda e: self.code(e, None)))
        self.warn_unused_params()
        blocks = tuple(info.traced for info in self.shared.blocks.values())
        return TracedModel(
            spec=spec,
            input_shape=input_shape,
            layers=tuple(traced),
            total_params=self.as_dim(total),
            trainable_params=self.as_dim(trainable),
            constraints=constraints,
            dim_params=tuple(sorted(self.input_dim_names)),
            dim_sizes=tuple(self.test_sizes(constraints)),
            warnings=tuple(self.warnings),
            free_dims=free_dims(spec, traced),
            blocks=tuple(sorted(blocks, key=lambda b: spec.blocks.index(b.spec))),
        )

    def warn_unused_params(self) -> None:
        """A model parameter that no layer and no input size reads does nothing."""
        used = {n.id for e in self.spec.input_shape for n in expr_names(e)}
        used |= spec_names(self.spec.layers)
        for p in self.spec.params:
            if p.name not in used:
                self.warnings.append(Diagnostic(
                    "warning", f"model parameter {p.name!r} is not used: no layer or input size "
                    "reads it", p.loc, f"remove {p.name}, or use it in a layer's arguments",
                    UNUSED_PARAMETER))

    # ---------------------------------------------------------------- nodes

    def stack(self, nodes: Sequence[Node], x: torch.Tensor, dims: list[DimInfo],
              index: int | None = None) -> tuple[torch.Tensor, list[DimInfo], list[_Step]]:
        """Trace a stack of nodes in order; `index` is the top-level node they sit in."""
        steps: list[_Step] = []
        for i, node in enumerate(nodes):
            x, dims, step = self.node(i if index is None else index, node, x, dims)
            steps.append(step)
        return x, dims, steps

    def node(self, index: int, node: Node, x: torch.Tensor, dims: list[DimInfo]
             ) -> tuple[torch.Tensor, list[DimInfo], _Step]:
        """Trace one node, by kind."""
        if isinstance(node, LayerSpec):
            x, dims, step = self.layer(index, node, x, dims)
            if (warning := huge_layer_warning(step.traced)) is not None:  # type: ignore[arg-type]
                self.warnings.append(warning)
            if step.traced.class_name not in _PASS_THROUGH:  # type: ignore[union-attr]
                self.shared_input = False
            return x, dims, step
        if isinstance(node, RepeatSpec):
            return self.repeat(index, node, x, dims)
        if isinstance(node, MergeSpec):
            return self.merge(index, node, x, dims)
        return self.block_use(index, node, x, dims)

    def repeat(self, index: int, item: RepeatSpec, x: torch.Tensor, dims: list[DimInfo]
               ) -> tuple[torch.Tensor, list[DimInfo], _Step]:
        """`repeat depth:`: the block is traced once; it must give back the shape it gets."""
        count = S.expr_of(self.values.eval(item.count))
        self.conditions.append(Condition(sympy.Ge(count, 1), index,
                                         f"repeat (spec line {item.loc.line}) runs at least once"))
        y, out_dims, steps = self.stack(item.layers, x, dims, index)
        if [d.expr for d in out_dims] != [d.expr for d in dims]:
            raise TraceError(
                f"the block under `repeat {item.count.id}:` turns {shape_text(dims)} into "
                f"{shape_text(out_dims)}; a loop needs the same shape in and out",
                location=item.loc, hint="write a number of times (`repeat 3:`) to unroll it, "
                                        "or keep the sizes the same inside the block")
        params = count * sum((st.params_expr for st in steps), sympy.Integer(0))
        train = count * sum((st.trainable_expr for st in steps), sympy.Integer(0))
        macs = count * sum((st.macs_expr for st in steps), sympy.Integer(0))
        traced = TracedLayer(
            index=index, spec=LayerSpec("repeat", (item.count,), (), item.loc),
            class_name="Sequential", call_args=(), call_kwargs=(),
            out_shape=tuple(self.dim(d) for d in dims), params=self.as_dim(params),
            trainable_params=self.as_dim(train), macs=self.as_dim(macs),
            body=tuple(st.traced for st in steps), repeat=item.count.id)
        return y, dims, _Step(traced, params, train, macs)

    def merge(self, index: int, merge: MergeSpec, x: torch.Tensor, dims: list[DimInfo]
              ) -> tuple[torch.Tensor, list[DimInfo], _Step]:
        """Trace each branch from the merge's input, then combine their shapes exactly."""
        outs: list[tuple[list[DimInfo], list[_Step]]] = []
        for branch in merge.branches:
            self.previous, self.shared_input = None, True
            _, branch_dims, steps = self.stack(branch, x, dims, index)
            outs.append((branch_dims, steps))
        self.previous, self.shared_input = None, False  # a merge's output is a new tensor
        shapes = [[d.expr for d in bd] for bd, _ in outs]
        if merge.kind == "residual":
            labels = ["the body", "the shortcut"] if len(outs) == 2 else ["the body", "the input"]
            if len(outs) == 1:
                shapes.append([d.expr for d in dims])
        else:
            labels = [f"branch {i}" for i in range(1, len(outs) + 1)]
        dim = self.concat_dim(merge, len(dims))
        try:
            merged = combine(merge.kind, shapes, dim, self.value,
                             lambda sh: shape_text([DimInfo(e, self.show(e)) for e in sh]), labels)
        except MergeMismatch as e:
            raise TraceError(str(e), location=merge.loc, hint=e.hint) from e
        for cond, what in merged.conditions:
            self.need(cond, index,
                      f"{merge.kind} (spec line {merge.loc.line}): {what}", merge.loc)
        known = [d for bd, _ in outs for d in bd] + list(dims)
        out_dims = []
        for e in merged.shape:
            e = S.simplify(self.session, e)
            same = next((d for d in known if d.expr == e), None)
            out_dims.append(same if same is not None else DimInfo(e, self.code(e, merge.loc)))
        steps = [st for _, sts in outs for st in sts]
        params = sum((st.params_expr for st in steps), sympy.Integer(0))
        train = sum((st.trainable_expr for st in steps), sympy.Integer(0))
        macs = sum((st.macs_expr for st in steps), sympy.Integer(0))
        self.check_sizes(out_dims, index, f"{merge.kind} (spec line {merge.loc.line})",
                         merge.loc, dims)
        traced = TracedMerge(
            index=index, spec=merge,
            branches=tuple(tuple(st.traced for st in sts) for _, sts in outs),
            out_shape=tuple(self.dim(d) for d in out_dims), params=self.as_dim(params),
            trainable_params=self.as_dim(train), macs=self.as_dim(macs),
            dim=(dim % len(dims)) if merge.kind == "concat" else None)
        y = torch.empty(self._sizes(out_dims))
        return y, out_dims, _Step(traced, params, train, macs)

    def concat_dim(self, merge: MergeSpec, rank: int) -> int:
        """`concat dim=D`: a literal int (default 1), not the batch dim."""
        if merge.dim is None:
            return 1
        value = self.concrete.eval(merge.dim) if not isinstance(merge.dim, Name) else None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TraceError("concat's dim must be a whole number", location=merge.dim.loc,
                             hint="e.g. `concat dim=1:` (channels)")
        if not -rank < value < rank or value % rank == 0:
            raise TraceError(f"concat dim={value} is outside dims 1..{rank - 1} of its rank-{rank} "
                             "input (dim 0 is the batch)", location=merge.dim.loc)
        return value

    def need(self, cond: sympy.Basic, index: int, message: str, loc: Location) -> None:
        """A condition on the parameters: it must hold at the defaults, and becomes a check."""
        if not S.free_symbols(cond):
            if not holds(cond, {}):
                raise TraceError(message, location=loc)
            return
        if S.free_symbols(cond) & {self.batch_sym}:
            raise TraceError(f"{message} depends on the batch size", location=loc)
        if not holds(cond, self.hints):
            raise TraceError(message, location=loc, hint="with the defaults")
        self.conditions.append(Condition(cond, index, message))

    def check_sizes(self, out_dims: Sequence[DimInfo], index: int, where: str, loc: Location,
                    dims: Sequence[DimInfo]) -> None:
        """Every output size stays >= 1: at the defaults now, for other values in __init__."""
        for d in out_dims[1:]:
            free = S.free_symbols(d.expr)
            if not free and int(d.expr) < 1 or free and self.value(d.expr) < 1:
                raise SizeTooSmallError(
                    f"{where.split(' (')[0]} gets input {shape_text(dims)} and its output "
                    f"{shape_text(out_dims)} collapses to zero", location=loc,
                    hint="use a larger `input`, a smaller kernel or stride, or padding")
            if free and self.batch_sym not in free and not self.implied_by_sizes(
                    sympy.Ge(d.expr, 1)):
                self.conditions.append(Condition(sympy.Ge(d.expr, 1), index,
                                                 f"{where} would output nothing"))

    def block_use(self, index: int, use: BlockUse, x: torch.Tensor, dims: list[DimInfo]
                  ) -> tuple[torch.Tensor, list[DimInfo], _Step]:
        """A block's class, traced at its first use; each use substitutes its own sizes."""
        block = self.spec.block(use.name)
        assert block is not None  # the parser resolved it
        args = bind_use(block, use, self.values)
        info = self.shared.blocks.get(use.name)
        if info is None:
            info = trace_block(self, block, dims, args, use)
            self.shared.blocks[use.name] = info
        elif info.rank != len(dims):
            raise TraceError(
                f"block {use.name!r} gets a rank-{len(dims)} input {shape_text(dims)} here, but "
                f"its class was traced for rank {info.rank} (line {info.first_line})",
                location=use.loc, hint="a block's class takes one input rank")
        mapping = info.mapping([d.expr for d in dims], args)
        where = f"block {use.name} (used on line {use.loc.line})"
        for cond, message in info.conditions:
            self.need(cond.xreplace(mapping), index, f"{where}: {message}", use.loc)
        out_dims = []
        for i, e in enumerate(info.out_exprs):
            e = S.simplify(self.session, e.xreplace(mapping))
            if i < len(dims) and dims[i].expr == e:
                out_dims.append(dims[i])
            else:
                out_dims.append(DimInfo(e, self.code(e, use.loc)))
        params, train, macs = (S.simplify(self.session, e.xreplace(mapping))
                               for e in (info.params, info.trainable, info.macs))
        bindings = tuple((name, self.code(sym.xreplace(mapping), use.loc))
                         for name, sym in info.bound_symbols())
        call_args = [dims[i].code for i in info.size_args]
        call_args += [expr_source(a) for a in use.args]
        call_kwargs = [(kw.name, expr_source(kw.value)) for kw in use.kwargs]
        self.previous, self.shared_input = None, False
        traced = TracedBlockUse(
            index=index, spec=use, call_args=tuple(call_args), call_kwargs=tuple(call_kwargs),
            out_shape=tuple(self.dim(d) for d in out_dims), params=self.as_dim(params),
            trainable_params=self.as_dim(train), macs=self.as_dim(macs), bindings=bindings)
        return torch.empty(self._sizes(out_dims)), out_dims, _Step(traced, params, train, macs)

    def layer(self, index: int, layer: LayerSpec, x: torch.Tensor, dims: list[DimInfo]
              ) -> tuple[torch.Tensor, list[DimInfo], _Step]:
        """Trace one layer: its output, its conditions, and how the generated code builds it."""
        if (own := seqlayers.trace_hook(self, index, layer, x, dims)) is not None:
            y, out_dims, traced, counts = own  # seqgen's own layers, and weight_norm=
            return y, out_dims, _Step(traced, *counts)
        cls = resolve_layer(layer)
        before = self.session.specialized()
        args = self.arguments(cls, layer, x, dims)
        self.refuse_inplace_after_output_saver(cls, layer, args)
        self.refuse_non_int_shape_args(cls, layer, args.bound)
        if rules.has_rule(cls):
            module, y = self.apply_rule(index, cls, layer, args, dims)
        else:
            module = self.construct(cls, layer, args)
            try:
                y = module(x)
            except Exception as e:  # torch's own error, rewritten into words about the spec
                raise layer_failure(layer, cls, dims, e) from e
            if not isinstance(y, torch.Tensor):
                raise not_one_tensor(cls, y, layer)
        self._check_specialized(before, layer)
        out_dims = self.out_dims(module, x, y, dims, layer)
        self.check_sizes(out_dims, index, f"{cls.__name__} (spec line {layer.loc.line})",
                         layer.loc, dims)
        with S.real_tensors():
            confirm_on_cpu(cls, args.bound, self.concrete,
                           tuple(self.value(d.expr) for d in dims),
                           tuple(self.value(d.expr) for d in out_dims), layer)
        n_params = sympy.Integer(0)
        n_train = sympy.Integer(0)
        for p in module.parameters():
            n = S.expr_of(p.numel())
            n_params += n
            if p.requires_grad:
                n_train += n
        macs = _macs(module, y)
        traced = TracedLayer(
            index=index, spec=layer, class_name=cls.__name__,
            call_args=tuple(args.call_args), call_kwargs=tuple(args.call_kwargs),
            out_shape=tuple(self.dim(d) for d in out_dims),
            params=self.as_dim(n_params),
            trainable_params=self.as_dim(n_train),
            macs=self.as_dim(macs),
        )
        return y, out_dims, _Step(traced, n_params, n_train, macs)

    def apply_rule(self, index: int, cls: type[nn.Module], layer: LayerSpec, args: _Arguments,
                   dims: Sequence[DimInfo]) -> tuple[nn.Module, torch.Tensor]:
        """Output size from seqgen's own formula; torch checks the layer at the defaults."""
        shape = self._sizes(dims)
        try:
            outcome = rules.apply(cls, args.values, shape)
        except rules.RankError as e:
            raise rank_error(layer, cls, dims, e.rank) from e
        except rules.RuleError as e:
            # torch's constructor may refuse first: its refusal, in the spec's words, names
            # the values that would work
            self.construct_concrete(cls, layer, args.bound, tuple(self.value(d.expr) for d in dims))
            raise TraceError(f"{cls.__name__}: {e}", location=layer.loc) from e
        except rules.NeedsLiteral as e:
            node = args.bound.args.get(e.arg)
            raise TraceError(f"{cls.__name__}'s {e.arg} must be a literal number here: {e.why}",
                             location=node.loc if node is not None else layer.loc) from e
        where = f"{cls.__name__} (spec line {layer.loc.line})"
        hint_shape = tuple(self.value(d.expr) for d in dims)
        for check in outcome.checks:
            if S.free_symbols(check.condition) & {self.batch_sym}:
                raise TraceError(f"{cls.__name__}: {check.message(self.show)} depends on the "
                                 "batch size", location=layer.loc)
            if not holds(check.condition, self.hints):
                self.construct_concrete(cls, layer, args.bound, hint_shape)  # as above
                raise TraceError(f"{cls.__name__}: {check.message(lambda e: str(self.value(e)))}",
                                 location=layer.loc,
                                 hint="with the defaults" if S.free_symbols(check.condition)
                                 else None)
            if self.implied_by_sizes(check.condition):
                continue
            self.conditions.append(Condition(check.condition, index,
                                             f"{where}: {check.message(self.show)}"))
        # torch itself runs the layer at the defaults (fake tensors: nothing is allocated)
        want = tuple(self.value(S.expr_of(v)) for v in outcome.shape)
        concrete = self.construct_concrete(cls, layer, args.bound, hint_shape)
        try:
            y_hint = concrete(torch.empty(hint_shape))
        except Exception as e:
            raise layer_failure(layer, cls, dims, e) from e
        if not isinstance(y_hint, torch.Tensor):
            raise not_one_tensor(cls, y_hint, layer)
        if tuple(int(s) for s in y_hint.shape) != want:
            raise TraceError(f"internal error: seqgen computes {want} for {cls.__name__} but torch "
                             f"gives {tuple(y_hint.shape)}", location=layer.loc,
                             hint="please report this as a seqgen bug")
        module = self.construct(cls, layer, args) if any(True for _ in concrete.parameters()) \
            else concrete
        return module, torch.empty(list(outcome.shape))

    def refuse_inplace_after_output_saver(self, cls: type[nn.Module], layer: LayerSpec,
                                          args: _Arguments) -> None:
        """`relu` then `relu inplace=True`: the first one's backward needs the output that the
        second overwrites, so training fails ("modified by an inplace operation")."""
        inplace = bool(self.concrete.eval(args.bound.args["inplace"])) \
            if "inplace" in args.bound.args else False
        if inplace and self.shared_input:
            raise TraceError(
                f"{cls.__name__} with inplace=True here overwrites the input that the merge's "
                "other branches (or its residual sum) read as well", location=args.bound.args[
                    "inplace"].loc,
                hint="drop inplace=True here; in place is safe after a layer that makes a new "
                     "tensor")
        previous, self.previous = self.previous, (cls.__name__, inplace)
        if not inplace or previous is None:
            return
        name, was_inplace = previous
        if name in _SAVES_OUTPUT or (was_inplace and name in _SAVES_OUTPUT_INPLACE):
            raise TraceError(
                f"{cls.__name__} with inplace=True right after {name} breaks training: {name}'s "
                "backward needs its output, which this layer overwrites",
                location=args.bound.args["inplace"].loc, hint="drop inplace=True here")

    def refuse_non_int_shape_args(self, cls: type[nn.Module], layer: LayerSpec,
                                  bound: Bound) -> None:
        """A float, bool or str parameter cannot stand for an argument that decides sizes or
        parameter counts (`bias=use_bias`): seqgen's expressions would hold at its default only."""
        for pname, node in bound.args.items():
            if pname not in rules.SHAPE_ARGS:
                continue
            for ref in expr_names(node):
                param = self.params.get(ref.id)
                if param is not None and param.type_name != "int":
                    shown = self.concrete.eval(ref)
                    raise TraceError(
                        f"{cls.__name__}'s {pname} decides sizes or parameter counts, so it "
                        "cannot be the "
                        f"{param.type_name} parameter {ref.id!r}: seqgen's sizes would only hold "
                        f"for {ref.id}={shown!r}", location=ref.loc,
                        hint=f"write the value itself ({pname}={shown!r})")

    def construct_concrete(self, cls: type[nn.Module], layer: LayerSpec, bound: Bound,
                           in_shape: tuple[int, ...]) -> nn.Module:
        """The layer at the default values, for torch to check (inside the fake mode)."""
        kwargs: dict[str, Any] = {k: self.concrete.eval(e) for k, e in bound.args.items()}
        kwargs.update({k: self.concrete.eval(e) for k, e in bound.extra_kwargs.items()})
        for pname in bound.sig.inferred:
            if pname not in kwargs:
                size = in_shape[INFERRED[pname]]
                kwargs[pname] = (size,) if pname == "normalized_shape" else size
        try:
            module = S.construct(cls, tuple(self.concrete.eval(e) for e in bound.extra_args),
                                 kwargs)
        except Exception as e:
            raise rejected(cls, layer, e, kwargs) from e
        module.eval()
        return module

    def _sizes(self, dims: Sequence[DimInfo]) -> list[Any]:
        return [_symint(self, d) for d in dims]

    def symbolic_sizes(self, dims: Sequence[DimInfo]) -> list[Any]:
        """The SymInts (or ints) of traced dims, for a fake tensor or a shape rule."""
        return self._sizes(dims)

    def _check_specialized(self, before: Mapping[str, str], layer: LayerSpec) -> None:
        after = self.session.specialized()
        for name, became in after.items():
            if name == BATCH and name not in before:
                raise TraceError(
                    f"torch's kernel for {layer.name} fixes the batch size (it assumed "
                    f"N == {became}), so the model would only work at that batch size",
                    location=layer.loc, hint="use another layer; seqgen keeps the batch symbolic")
            if name not in before:
                raise TraceError(
                    f"torch's kernel for {layer.name} needs a fixed value of {name!r} "
                    f"(it assumed {name} == {became})", location=layer.loc,
                    hint=f"write this argument as a number instead of {name}")

    def arguments(self, cls: type[nn.Module], layer: LayerSpec, x: torch.Tensor,
                  dims: Sequence[DimInfo]) -> _Arguments:
        """The layer's arguments: symbolic values by name, and as source for the generated call."""
        bound = check_arguments(cls, layer, self.concrete, tuple(self.value(d.expr) for d in dims))
        sig = bound.sig
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for pname in sig.inferred:
            if pname == "normalized_shape" and pname in bound.args:
                continue  # LayerNorm's shape is inferred only when not given
            pos = INFERRED[pname]
            if x.dim() < 2:
                raise rank_error(layer, cls, dims, 2)
            info = dims[pos]
            if info.expr == self.batch_sym:
                raise rank_error(layer, cls, dims, 2)
            values[pname] = _symint(self, info)
            sources[pname] = info.code
            given = bound.args.get(pname)
            if given is not None:
                got = S.expr_of(self.values.eval(given)) if not isinstance(given, TupleExpr) else None
                if got is None or self.value(got) != self.value(info.expr):
                    shown = self.value(got) if got is not None else expr_source(given)
                    raise TraceError(
                        f"{pname}={expr_source(given)} disagrees with the traced input: "
                        f"{layer.name} receives {self.value(info.expr)} ({info.code}), "
                        f"the spec says {shown}", location=given.loc,
                        hint=f"remove {pname}=...; seqgen infers it")
                sources[pname] = expr_source(given)
        for pname, node in bound.args.items():
            if pname in values:
                continue
            values[pname] = self.values.eval(node)
            sources[pname] = expr_source(node)
        # Positional in the generated call: inferred sizes plus what the user gave by position,
        # as long as they run contiguously from the constructor's first parameter.
        given_pos = set(sig.positional[: len(layer.args)])
        out = _Arguments(bound, values)
        positional_run = True
        for pname in sig.order:
            if pname not in sources:
                positional_run = False
                continue
            value = values[pname]
            if pname == "normalized_shape" and pname not in bound.args:
                value = (value,)  # nn.LayerNorm calls tuple() on a size that is no int
            if positional_run and (pname in sig.inferred or pname in given_pos):
                out.call_args.append(sources[pname])
                out.pos_values.append(value)
            else:
                positional_run = False
                out.call_kwargs.append((pname, sources[pname]))
                out.kw_values[pname] = value
        for e in bound.extra_args:
            out.call_args.append(expr_source(e))
            out.pos_values.append(self.values.eval(e))
        for k, e in bound.extra_kwargs.items():
            out.call_kwargs.append((k, expr_source(e)))
            out.kw_values[k] = self.values.eval(e)
        return out

    def construct(self, cls: type[nn.Module], layer: LayerSpec, args: _Arguments) -> nn.Module:
        """The layer with symbolic arguments, on fake tensors (its parameter counts are exprs)."""
        try:
            module = S.construct(cls, tuple(args.pos_values), args.kw_values)
        except TraceError:
            raise
        except Exception as e:
            sample = {k: self.value(S.expr_of(v)) if isinstance(v, torch.SymInt) else v
                      for k, v in args.values.items()}
            raise rejected(cls, layer, e, sample) from e
        module.eval()  # shape checks at any batch size (BatchNorm refuses batch 1 in training)
        return module

    def out_dims(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 dims: Sequence[DimInfo], layer: LayerSpec) -> list[DimInfo]:
        exprs = [S.simplify(self.session, S.expr_of(s)) for s in y.shape]
        if isinstance(module, nn.Flatten) and y.dim() < x.dim():
            start = module.start_dim % x.dim()
            end = module.end_dim % x.dim()
            merged = [d for d in dims[start:end + 1] if not (d.expr.is_number and int(d.expr) == 1)]
            product = " * ".join(_factor(d.code) for d in merged) or "1"
            self.check_printed(exprs[start], product, layer.loc)  # hand-built: check it too
            return list(dims[:start]) + [DimInfo(exprs[start], product)] + list(dims[end + 1:])
        out = []
        for i, e in enumerate(exprs):
            if y.dim() == x.dim() and e == dims[i].expr:  # unchanged: keep how it was written
                out.append(dims[i])
            else:
                out.append(DimInfo(e, self.code(e, layer.loc)))
        return out

    def test_sizes(self, constraints: Sequence[Constraint]
                   ) -> list[tuple[str, tuple[int, ...], int]]:
        """For each named input dim: sizes its generated test builds, and one it must refuse."""
        minima = {c.symbol: c.minimum for c in constraints
                  if c.symbol is not None and c.minimum is not None}
        out = []
        for sym, name in sorted(self.names.items(), key=lambda kv: kv[1]):
            if name not in self.input_dim_names:
                continue
            hint = self.hints[sym]
            minimum = minima.get(name, 1)
            sizes = []
            for size in sorted({minimum, hint, 2 * hint}):
                values = {**self.hints, sym: size}
                if all(holds(c.condition, values) for c in self.conditions):
                    sizes.append(size)
            out.append((name, tuple(sizes), minimum - 1))
        return out


# Layers that may hand their input on as is (eval-mode dropout, views): an in-place layer after
# them still writes into the stack's input.
_PASS_THROUGH = frozenset({"Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
                           "AlphaDropout", "FeatureAlphaDropout", "Flatten", "Unflatten"})
# Layers whose backward reads their own output (measured with torch: an in-place layer right
# after them fails backward), always or when they ran in place themselves.
_SAVES_OUTPUT = frozenset({"ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softmin"})
_SAVES_OUTPUT_INPLACE = frozenset({"ELU", "CELU", "SELU", "LeakyReLU", "Hardtanh", "ReLU6",
                                   "RReLU", "Threshold"})


@dataclass
class _Arguments:
    """A layer's arguments: bound spec nodes, symbolic values, and the generated call."""

    bound: Bound
    values: dict[str, Any]
    call_args: list[str] = field(default_factory=list)
    call_kwargs: list[tuple[str, str]] = field(default_factory=list)
    pos_values: list[Any] = field(default_factory=list)
    kw_values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Step:
    traced: TracedLayer
    params_expr: sympy.Expr
    trainable_expr: sympy.Expr
    macs_expr: sympy.Expr


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


def free_dims(spec: ModelSpec, layers: Sequence[TracedNode]) -> tuple[str, ...]:
    """Named input dims that no layer's constructor reads: the model works at any size of them,
    so they are no constructor arguments (`input (1, length=16000)` before adaptive pooling)."""
    called = called_names(layers)
    return tuple(p.name for p in spec.params if p.from_input and p.name not in called)


def _identifiers(source: str) -> set[str]:
    import ast

    return {n.id for n in ast.walk(ast.parse(source, mode="eval")) if isinstance(n, ast.Name)}


def _probe_points(hints: Mapping[sympy.Symbol, int]) -> list[dict[sympy.Symbol, int]]:
    """Values at which printed expressions are checked: the defaults, and others around them."""
    points = [dict(hints)]
    for shift in (lambda v: v + 1, lambda v: 2 * v + 3, lambda v: 3 * v + 7, lambda v: v - 1):
        points.append({s: shift(v) for s, v in hints.items()})
    for i, s in enumerate(sorted(hints, key=str)):
        points.append({**hints, s: hints[s] + 1 + 2 * (i % 3)})
    return points


def _factor(code: str) -> str:
    """A dim's code as a factor of a product: `seq_len - 2` needs parentheses, `2 * w` does not."""
    return f"({code})" if re.search(r" (\+|-|//|%) ", code) else code


def _symint(tracer: Tracer, d: DimInfo) -> Any:
    """The SymInt (or int) for a dim expression."""
    if d.expr.is_number:
        return int(d.expr)
    return tracer.session.env.create_symintnode(d.expr, hint=tracer.value(d.expr))


def _macs(module: nn.Module, y: torch.Tensor) -> sympy.Expr:
    """Multiply-accumulates for one sample, counted as torchinfo counts them."""
    total = sympy.Integer(0)
    conv = "Conv" in type(module).__name__
    out = [S.expr_of(s) for s in y.shape]
    for name, p in module.named_parameters(recurse=False):
        if name not in ("weight", "bias"):
            continue
        n = S.expr_of(p.numel())
        if conv:
            spatial = sympy.Integer(1)
            for s in out[2:]:
                spatial *= s
            total += n * spatial
        else:
            total += n
    return total


def input_dtype(spec: ModelSpec) -> torch.dtype:
    """The sample input's dtype: float, or int64 token ids (`input ... dtype=long`)."""
    return torch.int64 if spec.input_dtype == "long" else torch.float32


def trace(spec: ModelSpec) -> TracedModel:
    """Trace a parsed spec symbolically on fake tensors (every layer's binding checked first)."""
    check_layers(spec)
    try:
        with quiet_torch_warnings():
            traced = model_scope(spec).run()
            verify_at_other_values(traced)
        return traced
    except SizeTooSmallError as e:
        smallest = smallest_input(spec)
        if smallest is None:
            raise
        hint = f"the smallest input that works is `input {smallest}`"
        if e.diagnostic.hint:
            hint += f"; or {e.diagnostic.hint[0].lower()}{e.diagnostic.hint[1:]}"
        raise SizeTooSmallError(e.diagnostic.message, location=e.location, hint=hint) from e


def smallest_input(spec: ModelSpec, limit: int = 1 << 16) -> str | None:
    """The smallest square/cubic input (spatial dims raised to one size) that traces, if any.

    Spatial dims are all but the first (channel) one, or the only one of a rank-1 input; only
    literal sizes are raised. Each probe is a full symbolic trace, so this runs on errors only.
    """
    dims = spec.input_shape
    spatial = range(1, len(dims)) if len(dims) > 1 else range(1)
    if not all(isinstance(dims[i], Num) for i in spatial):
        return None
    current = max(int(dims[i].value) for i in spatial)  # type: ignore[union-attr]

    def shape(size: int) -> tuple[Expr, ...]:
        return tuple(Num(max(int(d.value), size), d.loc) if i in spatial else d  # type: ignore[union-attr]
                     for i, d in enumerate(dims))

    def works(size: int) -> bool:
        try:
            model_scope(replace(spec, input_shape=shape(size))).run()
        except SeqgenError:
            return False
        return True

    lo, hi = current, current * 2
    while not works(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if works(mid) else (mid, hi)
    return "x".join(expr_source(d) for d in shape(hi))


