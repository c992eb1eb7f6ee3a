"""Stage 2: ModelSpec -> TracedModel, by running the layers on fake tensors with symbolic sizes.

torch is imported here and in the trace-stage modules only. Parameters of type int and named
input dims become symbols, so every inferred size is an expression over them; no weight or
activation is ever allocated (FakeTensorMode), and weight initialisers are skipped. This module
walks the spec's tree, one method per node kind (layer, `repeat depth:`, merge, block use);
scope.py holds what a stack's tracing shares, layertrace.py one layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy
import torch

from seqgen.errors import InternalError, TraceError, raise_all
from seqgen.ir import (
    BATCH,
    BlockUse,
    Expr,
    LayerSpec,
    MergeSpec,
    Name,
    Node,
    RepeatSpec,
    TracedBlockUse,
    TracedLayer,
    TracedMerge,
    TracedModel,
    node_key,
)
from seqgen.lang.values import expr_source
from seqgen.layers.arg_checks import huge_layer_warning
from seqgen.layers.kind import Op
from seqgen.layers.preflight import without_written_size
from seqgen.layers.registry import kind_for
from seqgen.trace import symbolic as S
from seqgen.trace.blocks import bind_use, conditions_at_use, trace_block
from seqgen.trace.constraints import Condition, derive
from seqgen.trace.counts import flag_of
from seqgen.trace.heads import trace_heads
from seqgen.trace.input_reads import Role, with_reads
from seqgen.trace.inputs import free_dims, input_dtype, test_sizes, unused_parameters
from seqgen.trace.inputs_multi import (
    branch_inputs,
    model_inputs,
    own_steps,
    reads_first_input,
    traced_inputs,
)
from seqgen.trace.layer import PASS_THROUGH, trace_layer
from seqgen.trace.loops import trace_loop
from seqgen.trace.merge_shapes import (
    Merged,
    MergeFacts,
    MergeMismatch,
    combine,
    concat_dim,
    meant_shape,
    merge_hint,
    merge_macs,
)
from seqgen.trace.scope import MAX_SIZE, DimInfo, NodeResult, Scope, StackResult, Step
from seqgen.trace.torch_errors import shape_text
from seqgen.trace.wording import Site, merge_reason


class Tracer:
    """Traces the nodes of one scope: the model's stack, or a block's body with its own symbols."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.input_dim_names: set[str] = set()
        # the output of each node of the top-level stack, for the heads that branch from it
        self.outputs: list[tuple[torch.Tensor, list[DimInfo]]] = []
        self.inputs: dict[str, tuple[torch.Tensor, list[DimInfo]]] = {}  # several, by name
        self.roles: dict[str, Role] = {}  # the inputs that layers read by a keyword (lengths=)
        self.points = {h.point for h in scope.spec.heads if h.point is not None}
        self.points |= {h.inner[-1] for h in scope.spec.heads if len(h.inner) % 2}
        # each branch's output of the last merge traced, and of each top-level merge, by index
        self.branches: list[tuple[torch.Tensor, list[DimInfo]]] = []
        self.branch_outputs: dict[int, list[tuple[torch.Tensor, list[DimInfo]]]] = {}
        # inside merges, by id(node): each node's output, each merge's branches' (`p3.down.p4`)
        self.inner: dict[int, Any] = {}

    def input_dims(self, shape: Sequence[Expr] | None = None) -> list[DimInfo]:
        """The dims of the model's (first) input, or of the input of that `shape`."""
        dims = [DimInfo(self.scope.batch_sym, BATCH)]
        for e in self.scope.spec.input_shape if shape is None else shape:
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
                empty, where = (
                    "the input would have an empty dimension",
                    Site("input", e.loc.line, e.loc.text),
                )
                cond = Condition(sympy.Ge(expr, 1), -1, empty, empty, source=where.comment("size"))
                self.scope.conditions.append(cond)
        return dims

    def run(self) -> TracedModel:
        """Trace the model's stack (this is the model's scope)."""
        spec = self.scope.spec
        dims = self.input_dims()
        extra = [self.input_dims(i.shape) for i in spec.extra_inputs]
        self.input_dim_names = {
            self.scope.names[s]
            for d in [*dims[1:], *(d for e in extra for d in e[1:])]
            for s in S.free_symbols(d.expr)
            if s in self.scope.names
        }
        input_shape = tuple(self.scope.dim(d) for d in dims)
        errors = self.scope.shared.errors
        with self.scope.session.active():
            x = self.scope.session.tensor(self.scope.symbolic_sizes(dims), input_dtype(spec))
            self.inputs = model_inputs(self.scope, spec, (x, dims), extra)
            # a `branch from=` reads the first input later: no in-place layer may change it
            self.scope.shared_input = reads_first_input(spec)
            try:
                steps = self.stack(spec.layers, x, dims).steps
                heads = trace_heads(self, spec.heads, spec.layers)
            except TraceError as e:
                raise_all(errors if any(e is found for found in errors) else [*errors, e])
                raise
        raise_all(errors)
        total = sum((st.params_expr for st in steps), sympy.Integer(0))
        total += sum((h.params for h in heads), sympy.Integer(0))
        trainable = sum((st.trainable_expr for st in steps), sympy.Integer(0))
        trainable += sum((h.trainable for h in heads), sympy.Integer(0))
        traced = [st.traced for st in steps]
        constraints = tuple(
            derive(
                self.scope.conditions,
                self.scope.hints,
                self.scope.names,
                self.scope.printer,
                [p.name for p in spec.params],
                self.scope.shared.flags.values(),
            )
        )
        self.scope.warnings.extend(unused_parameters(self.scope.spec))
        blocks = tuple(info.traced for info in self.scope.shared.blocks.values())
        return TracedModel(
            spec=spec,
            input_shape=input_shape,
            layers=tuple(traced),
            total_params=self.scope.as_dim(total),
            trainable_params=self.scope.as_dim(trainable),
            constraints=constraints,
            dim_params=tuple(sorted(self.input_dim_names)),
            dim_sizes=tuple(test_sizes(self.scope, self.input_dim_names, constraints)),
            warnings=tuple(self.scope.warnings),
            free_dims=free_dims(spec, [*traced, *(n for h in heads for n in h.traced.layers)]),
            blocks=tuple(sorted(blocks, key=lambda b: spec.blocks.index(b.spec))),
            heads=tuple(h.traced for h in heads),
            inputs=traced_inputs(self.scope, spec, self.inputs, self.roles),
        )

    # ---------------------------------------------------------------- nodes

    def stack(
        self, nodes: Sequence[Node], x: torch.Tensor, dims: list[DimInfo], index: int | None = None
    ) -> StackResult:
        """Trace a stack of nodes in order; `index` is the top-level node they sit in."""
        steps: list[Step] = []
        for i, node in enumerate(nodes):
            at = i if index is None else index
            try:
                result = self.node(at, node, x, dims)
            except TraceError as e:
                result = self.recover(at, node, x, dims, e)
            x, dims = result.x, result.dims
            steps.append(result.step)
            if index is None:
                self.outputs.append((x, dims))
                if isinstance(node, MergeSpec):  # a head may read a branch (`from=z.mu`)
                    self.branch_outputs[i] = self.branches
            else:
                self.inner[id(node)] = (x, dims), self.branches
            if node_key(node) in self.points:  # a head reads it too: no in-place change
                self.scope.previous, self.scope.shared_input = None, True
        return StackResult(x, dims, steps)

    def recover(
        self, index: int, node: Node, x: torch.Tensor, dims: list[DimInfo], error: TraceError
    ) -> NodeResult:
        """Record a node's error and continue with what the line meant, where that is clear
        (`linear 784 256` as `linear 256`), so one run reports every independent error; re-raise
        it where no shape to continue with exists (the trace then reports what it found)."""
        errors = self.scope.shared.errors
        if any(e is error for e in errors):
            raise error  # from a node inside this one, already recorded: nothing to continue with
        errors.append(error)
        meant = without_written_size(node) if isinstance(node, LayerSpec) else None
        if meant is None:
            raise error
        try:
            return self.node(index, meant, x, dims)
        except TraceError:
            raise error from None

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
            if node.reads and isinstance(op := kind_for(node), Op):  # `lengths=NAME`
                return with_reads(op, node, dims, result, self.inputs, self.roles)
            return result
        if isinstance(node, RepeatSpec):
            return self.repeat(index, node, x, dims)
        if isinstance(node, MergeSpec):
            return self.merge(index, node, x, dims)
        return self.block_use(index, node, x, dims)

    def repeat(
        self, index: int, item: RepeatSpec, x: torch.Tensor, dims: list[DimInfo]
    ) -> NodeResult:
        """`repeat depth:`: a loop (loops.py), its body traced in this scope."""
        return trace_loop(
            self.scope, index, item, x, dims, lambda n, x, d: self.stack(n, x, d, index)
        )

    def merge(
        self, index: int, merge: MergeSpec, x: torch.Tensor, dims: list[DimInfo]
    ) -> NodeResult:
        """Trace each branch from the merge's input, then combine their shapes exactly."""
        outs: list[tuple[list[DimInfo], list[Step]]] = []
        branches = []
        failed: TraceError | None = None
        for branch, (bx, bdims) in zip(merge.branches, branch_inputs(merge, x, dims, self.inputs)):
            self.scope.previous, self.scope.shared_input = None, True
            try:
                out = self.stack(branch, bx, bdims, index)
            except TraceError as err:  # recorded; the other branches may have errors of their own
                failed = failed or err
                continue
            outs.append((out.dims, out.steps))
            branches.append((out.x, out.dims))
        if failed is not None:
            raise failed
        self.branches = branches
        self.scope.previous, self.scope.shared_input = None, False  # its output: a new tensor
        shapes = [[d.expr for d in bd] for bd, _ in outs]
        if merge.kind == "residual":
            labels = ["the body", "the shortcut"] if len(outs) == 2 else ["the body", "the input"]
            if len(outs) == 1:
                shapes.append([d.expr for d in dims])
        else:
            labels = [f"branch {i}" for i in range(1, len(outs) + 1)]
        rank = len(shapes[0])  # the branches' outputs', which concat joins (not the merge input's)
        dim = concat_dim(merge, rank, self.scope.concrete)
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
            # reported, and the trace goes on with the shape the merge most likely meant
            known = [c.condition for c in self.scope.conditions]
            hint = merge_hint(mismatch, known, self.scope.hints, self.scope.names)
            error = TraceError(str(mismatch), location=merge.loc, hint=hint)
            self.scope.shared.errors.append(error)
            merged = Merged(meant_shape(merge.kind, shapes, dim), ())
        site = Site(merge.kind, merge.loc.line, merge.loc.text)
        reason = merge_reason(merge.kind, len(outs))
        facts = MergeFacts(merge.kind, str(site), tuple(labels), tuple(map(tuple, shapes)), dim)
        for cond, what in merged.conditions:
            self.scope.need(
                Condition(
                    cond,
                    index,
                    f"{site}: {what}",
                    reason=reason,
                    detail=f"{merge.kind}: {what}",
                    source=site.comment(),
                    merge=facts,
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
        owned = own_steps(merge, [sts for _, sts in outs])  # a shared branch owns no weights
        params = sum((st.params_expr for st in owned), sympy.Integer(0))
        train = sum((st.trainable_expr for st in owned), sympy.Integer(0))
        macs = sum((st.macs_expr for st in steps), merge_macs(merge.kind, shapes))
        self.scope.check_sizes(out_dims, index, site, merge.loc, dims)
        traced = TracedMerge(
            index=index,
            spec=merge,
            branches=tuple(tuple(st.traced for st in sts) for _, sts in outs),
            out_shape=tuple(self.scope.dim(d) for d in out_dims),
            params=self.scope.as_dim(params),
            trainable_params=self.scope.as_dim(train),
            macs=self.scope.as_dim(macs),
            dim=(dim % rank) if merge.kind == "concat" else None,
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
        for name, node in args.nodes.items():  # `B 4 bias=b`: the caller's own bool flag
            flag = flag_of(self.scope, node.id) if isinstance(node, Name) else None
            if flag is not None and name in info.param_symbols:
                mapping[info.param_symbols[name]] = flag
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
