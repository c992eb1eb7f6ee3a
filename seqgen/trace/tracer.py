"""Stage 2: ModelSpec -> TracedModel, by running the layers on fake tensors with symbolic sizes.

torch is imported here and in the trace-stage modules only. Parameters of type int and named
input dims become symbols, so every inferred size is an expression over them; no weight or
activation is ever allocated (FakeTensorMode), and weight initialisers are skipped. This module
walks the spec's tree, one method per node kind (layer, `repeat depth:`, merge, block use);
scope.py holds what a stack's tracing shares, layertrace.py one layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
import torch

from seqgen.errors import Diagnostic, InternalError, TraceError
from seqgen.ir import (
    BATCH,
    BlockUse,
    Constraint,
    LayerSpec,
    MergeSpec,
    ModelSpec,
    Node,
    RepeatSpec,
    TracedBlockUse,
    TracedLayer,
    TracedMerge,
    TracedModel,
    TracedNode,
    called_names,
    expr_names,
    flat_layers,
    spec_names,
)
from seqgen.lang.values import expr_source
from seqgen.layers.arg_checks import huge_layer_warning
from seqgen.report.lint import UNUSED_PARAMETER
from seqgen.trace import symbolic as S
from seqgen.trace.blocks import bind_use, conditions_at_use, trace_block
from seqgen.trace.constraints import Condition, derive, holds
from seqgen.trace.layer import PASS_THROUGH, trace_layer
from seqgen.trace.merge_shapes import MergeMismatch, combine, concat_dim
from seqgen.trace.scope import (
    MAX_SIZE,
    DimInfo,
    NodeResult,
    Scope,
    StackResult,
    Step,
)
from seqgen.trace.torch_errors import shape_text
from seqgen.trace.wording import Site, merge_reason


class Tracer:
    """Traces the nodes of one scope: the model's stack, or a block's body with its own symbols."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.input_dim_names: set[str] = set()

    def input_dims(self) -> list[DimInfo]:
        dims = [DimInfo(self.scope.batch_sym, BATCH)]
        for e in self.scope.spec.input_shape:
            v = self.scope.values.eval(e)
            if isinstance(v, bool) or not (isinstance(v, int) or S.is_symbolic(v)):
                raise TraceError(f"input sizes must be whole numbers, got {v!r}", location=e.loc)
            expr = S.expr_of(v)
            size = self.scope.value(expr)
            if size < 1:
                raise TraceError(f"input size must be positive, got {size}", location=e.loc)
            if size > MAX_SIZE:
                raise TraceError(
                    "input size is too large for a tensor",
                    location=e.loc,
                    hint=f"sizes go up to {MAX_SIZE:,}",
                )
            dims.append(DimInfo(expr, self.scope.code(expr, e.loc)))
            if S.free_symbols(expr):
                self.scope.positive.append(expr)
                empty, where = "the input would have an empty dimension", Site("input", e.loc.line)
                cond = Condition(sympy.Ge(expr, 1), -1, empty, empty, source=where.comment("size"))
                self.scope.conditions.append(cond)
        return dims

    def run(self) -> TracedModel:
        """Trace the model's stack (this is the model's scope)."""
        spec = self.scope.spec
        loop = next((r for r in spec.layers if isinstance(r, RepeatSpec)), None)
        named = next((layer for layer in flat_layers(spec.layers) if layer.key is not None), None)
        if loop is not None and named is not None:
            raise TraceError(
                "layer names and `repeat` with a parameter count cannot be combined: "
                "the loop's layers have no fixed place to name",
                location=named.loc,
                hint="drop name=..., or write a number of times (`repeat 3:`)",
            )
        dims = self.input_dims()
        self.input_dim_names = {
            self.scope.names[s]
            for d in dims[1:]
            for s in S.free_symbols(d.expr)
            if s in self.scope.names
        }
        input_shape = tuple(self.scope.dim(d) for d in dims)
        with self.scope.session.active():
            x = self.scope.session.tensor(self.scope.symbolic_sizes(dims), input_dtype(spec))
            steps = self.stack(spec.layers, x, dims).steps
        total = sum((st.params_expr for st in steps), sympy.Integer(0))
        trainable = sum((st.trainable_expr for st in steps), sympy.Integer(0))
        traced = [st.traced for st in steps]
        constraints = tuple(
            derive(
                self.scope.conditions,
                self.scope.hints,
                self.scope.names,
                self.scope.printer,
            )
        )
        self.warn_unused_params()
        blocks = tuple(info.traced for info in self.scope.shared.blocks.values())
        return TracedModel(
            spec=spec,
            input_shape=input_shape,
            layers=tuple(traced),
            total_params=self.scope.as_dim(total),
            trainable_params=self.scope.as_dim(trainable),
            constraints=constraints,
            dim_params=tuple(sorted(self.input_dim_names)),
            dim_sizes=tuple(self.test_sizes(constraints)),
            warnings=tuple(self.scope.warnings),
            free_dims=free_dims(spec, traced),
            blocks=tuple(sorted(blocks, key=lambda b: spec.blocks.index(b.spec))),
        )

    def warn_unused_params(self) -> None:
        """A model parameter that no layer and no input size reads does nothing."""
        used = {n.id for e in self.scope.spec.input_shape for n in expr_names(e)}
        used |= spec_names(self.scope.spec.layers)
        for p in self.scope.spec.params:
            if p.name not in used:
                self.scope.warnings.append(
                    Diagnostic(
                        "warning",
                        f"model parameter {p.name!r} is not used: no layer or input size reads it",
                        p.loc,
                        f"remove {p.name}, or use it in a layer's arguments",
                        UNUSED_PARAMETER,
                    )
                )

    # ---------------------------------------------------------------- nodes

    def test_sizes(
        self, constraints: Sequence[Constraint]
    ) -> list[tuple[str, tuple[int, ...], int]]:
        """For each named input dim: sizes its generated test builds, and one it must refuse."""
        minima = {
            c.symbol: c.minimum
            for c in constraints
            if c.symbol is not None and c.minimum is not None
        }
        out = []
        for sym, name in sorted(self.scope.names.items(), key=lambda kv: kv[1]):
            if name not in self.input_dim_names:
                continue
            hint = self.scope.hints[sym]
            minimum = minima.get(name, 1)
            sizes = []
            for size in sorted({minimum, hint, 2 * hint}):
                values = {**self.scope.hints, sym: size}
                if all(holds(c.condition, values) for c in self.scope.conditions):
                    sizes.append(size)
            out.append((name, tuple(sizes), minimum - 1))
        return out

    def stack(
        self, nodes: Sequence[Node], x: torch.Tensor, dims: list[DimInfo], index: int | None = None
    ) -> StackResult:
        """Trace a stack of nodes in order; `index` is the top-level node they sit in."""
        steps: list[Step] = []
        for i, node in enumerate(nodes):
            result = self.node(i if index is None else index, node, x, dims)
            x, dims = result.x, result.dims
            steps.append(result.step)
        return StackResult(x, dims, steps)

    def node(self, index: int, node: Node, x: torch.Tensor, dims: list[DimInfo]) -> NodeResult:
        """Trace one node, by kind."""
        if isinstance(node, LayerSpec):
            result = trace_layer(self.scope, index, node, x, dims)
            traced = result.step.traced
            if not isinstance(traced, TracedLayer):
                raise InternalError(f"layer line {node.name!r} traced to {type(traced).__name__}")
            if (warning := huge_layer_warning(traced)) is not None:
                self.scope.warnings.append(warning)
            if traced.class_name not in PASS_THROUGH:
                self.scope.shared_input = False
            return result
        if isinstance(node, RepeatSpec):
            return self.repeat(index, node, x, dims)
        if isinstance(node, MergeSpec):
            return self.merge(index, node, x, dims)
        return self.block_use(index, node, x, dims)

    def repeat(
        self, index: int, item: RepeatSpec, x: torch.Tensor, dims: list[DimInfo]
    ) -> NodeResult:
        """`repeat depth:`: the block is traced once; it must give back the shape it gets."""
        count = S.expr_of(self.scope.values.eval(item.count))
        site = Site("repeat", item.loc.line)
        runs = f"{site} runs at least once"
        why, source = "a repeated block runs at least once", site.comment("count")
        self.scope.conditions.append(Condition(sympy.Ge(count, 1), index, runs, why, source=source))
        body = self.stack(item.layers, x, dims, index)
        y, out_dims, steps = body.x, body.dims, body.steps
        if [d.expr for d in out_dims] != [d.expr for d in dims]:
            raise TraceError(
                f"the block under `repeat {item.count.id}:` turns {shape_text(dims)} into "
                f"{shape_text(out_dims)}; a loop needs the same shape in and out",
                location=item.loc,
                hint="write a number of times (`repeat 3:`) to unroll it, "
                "or keep the sizes the same inside the block",
            )
        params = count * sum((st.params_expr for st in steps), sympy.Integer(0))
        train = count * sum((st.trainable_expr for st in steps), sympy.Integer(0))
        macs = count * sum((st.macs_expr for st in steps), sympy.Integer(0))
        traced = TracedLayer(
            index=index,
            spec=LayerSpec("repeat", (item.count,), (), item.loc),
            class_name="Sequential",
            call_args=(),
            call_kwargs=(),
            out_shape=tuple(self.scope.dim(d) for d in dims),
            params=self.scope.as_dim(params),
            trainable_params=self.scope.as_dim(train),
            macs=self.scope.as_dim(macs),
            body=tuple(st.traced for st in steps),
            repeat=item.count.id,
        )
        return NodeResult(y, dims, Step(traced, params, train, macs))

    def merge(
        self, index: int, merge: MergeSpec, x: torch.Tensor, dims: list[DimInfo]
    ) -> NodeResult:
        """Trace each branch from the merge's input, then combine their shapes exactly."""
        outs: list[tuple[list[DimInfo], list[Step]]] = []
        for branch in merge.branches:
            self.scope.previous, self.scope.shared_input = None, True
            out = self.stack(branch, x, dims, index)
            outs.append((out.dims, out.steps))
        self.scope.previous, self.scope.shared_input = (
            None,
            False,
        )  # a merge's output is a new tensor
        shapes = [[d.expr for d in bd] for bd, _ in outs]
        if merge.kind == "residual":
            labels = ["the body", "the shortcut"] if len(outs) == 2 else ["the body", "the input"]
            if len(outs) == 1:
                shapes.append([d.expr for d in dims])
        else:
            labels = [f"branch {i}" for i in range(1, len(outs) + 1)]
        dim = concat_dim(merge, len(dims), self.scope.concrete)
        try:
            merged = combine(
                merge.kind,
                shapes,
                dim,
                self.scope.value,
                lambda sh: shape_text([DimInfo(e, self.scope.show(e)) for e in sh]),
                labels,
            )
        except MergeMismatch as mismatch:
            raise TraceError(str(mismatch), location=merge.loc, hint=mismatch.hint) from mismatch
        site = Site(merge.kind, merge.loc.line)
        reason = merge_reason(merge.kind, len(outs))
        for cond, what in merged.conditions:
            self.scope.need(
                Condition(
                    cond,
                    index,
                    f"{site}: {what}",
                    reason=reason,
                    detail=f"{merge.kind}: {what}",
                    source=site.comment(),
                ),
                merge.loc,
            )
        known = [d for bd, _ in outs for d in bd] + list(dims)
        out_dims = []
        for e in merged.shape:
            e = S.simplify(self.scope.session, e)
            same = next((d for d in known if d.expr == e), None)
            out_dims.append(same if same is not None else DimInfo(e, self.scope.code(e, merge.loc)))
        steps = [st for _, sts in outs for st in sts]
        params = sum((st.params_expr for st in steps), sympy.Integer(0))
        train = sum((st.trainable_expr for st in steps), sympy.Integer(0))
        macs = sum((st.macs_expr for st in steps), sympy.Integer(0))
        self.scope.check_sizes(out_dims, index, site, merge.loc, dims)
        traced = TracedMerge(
            index=index,
            spec=merge,
            branches=tuple(tuple(st.traced for st in sts) for _, sts in outs),
            out_shape=tuple(self.scope.dim(d) for d in out_dims),
            params=self.scope.as_dim(params),
            trainable_params=self.scope.as_dim(train),
            macs=self.scope.as_dim(macs),
            dim=(dim % len(dims)) if merge.kind == "concat" else None,
        )
        y = self.scope.session.tensor(self.scope.symbolic_sizes(out_dims))
        return NodeResult(y, out_dims, Step(traced, params, train, macs))

    def block_use(
        self, index: int, use: BlockUse, x: torch.Tensor, dims: list[DimInfo]
    ) -> NodeResult:
        """A block's class, traced at its first use; each use substitutes its own sizes."""
        block = self.scope.spec.block(use.name)
        if block is None:
            raise InternalError(f"block {use.name!r} was not resolved by the parser")
        args = bind_use(block, use, self.scope.values)
        info = self.scope.shared.blocks.get(use.name)
        if info is None:
            info = trace_block(self.scope, block, dims, args, use, _stack_in)
            self.scope.shared.blocks[use.name] = info
        elif info.rank != len(dims):
            raise TraceError(
                f"block {use.name!r} gets a rank-{len(dims)} input {shape_text(dims)} here, but "
                f"its class was traced for rank {info.rank} (line {info.first_line})",
                location=use.loc,
                hint="a block's class takes one input rank",
            )
        mapping = info.mapping([d.expr for d in dims], args)
        for c in conditions_at_use(info, use, mapping, index):
            self.scope.need(c, use.loc)
        out_dims = []
        for i, e in enumerate(info.out_exprs):
            e = S.simplify(self.scope.session, e.xreplace(mapping))
            if i < len(dims) and dims[i].expr == e:
                out_dims.append(dims[i])
            else:
                out_dims.append(DimInfo(e, self.scope.code(e, use.loc)))
        params, train, macs = (
            S.simplify(self.scope.session, e.xreplace(mapping))
            for e in (info.params, info.trainable, info.macs)
        )
        bindings = tuple(
            (name, self.scope.code(sym.xreplace(mapping), use.loc))
            for name, sym in info.bound_symbols()
        )
        call_args = [dims[i].code for i in info.size_args]
        call_args += [expr_source(a) for a in use.args]
        call_kwargs = [(kw.name, expr_source(kw.value)) for kw in use.kwargs]
        self.scope.previous, self.scope.shared_input = None, False
        traced = TracedBlockUse(
            index=index,
            spec=use,
            call_args=tuple(call_args),
            call_kwargs=tuple(call_kwargs),
            out_shape=tuple(self.scope.dim(d) for d in out_dims),
            params=self.scope.as_dim(params),
            trainable_params=self.scope.as_dim(train),
            macs=self.scope.as_dim(macs),
            bindings=bindings,
        )
        return NodeResult(
            self.scope.session.tensor(self.scope.symbolic_sizes(out_dims)),
            out_dims,
            Step(traced, params, train, macs),
        )


def _stack_in(
    scope: Scope, nodes: Sequence[Node], x: torch.Tensor, dims: list[DimInfo]
) -> StackResult:
    """Trace a stack in a scope of its own (a block's body)."""
    return Tracer(scope).stack(nodes, x, dims)


def free_dims(spec: ModelSpec, layers: Sequence[TracedNode]) -> tuple[str, ...]:
    """Named input dims that no layer's constructor reads: the model works at any size of them,
    so they are no constructor arguments (`input (1, length=16000)` before adaptive pooling)."""
    called = called_names(layers)
    return tuple(p.name for p in spec.params if p.from_input and p.name not in called)


def input_dtype(spec: ModelSpec) -> torch.dtype:
    """The sample input's dtype: float, or int64 token ids (`input ... dtype=long`)."""
    return torch.int64 if spec.input_dtype == "long" else torch.float32
