"""`repeat depth:` loops (trace stage): a body repeated by an int parameter, as a loop in the
generated model.

The body is traced on the loop's input. When it gives back the shape it gets, every pass is the
same: one loop of `depth` passes. When its first pass changes the shape (`conv1d 11 1` on 3
channels), that pass is written apart and the body is traced again on its output: the later
passes must give back the shape they get, and loop `depth - 1` times. As in a merge, a size
that agrees only for some parameter values becomes a check of `__init__`; it, and every
condition of the second trace, is needed only when depth > 1, so each check says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy
import torch

from seqgen.errors import SeqgenError, TraceError
from seqgen.ir import LayerSpec, Node, RepeatSpec, TracedLayer
from seqgen.trace import symbolic as S
from seqgen.trace.constraints import Condition
from seqgen.trace.merge_shapes import same
from seqgen.trace.scope import DimInfo, NodeResult, Scope, StackResult, Step
from seqgen.trace.torch_errors import shape_text
from seqgen.trace.wording import Site

# Traces a stack of nodes in the loop's scope (the tracer's own method, handed in)
StackTracer = Callable[[Sequence[Node], torch.Tensor, list[DimInfo]], StackResult]


def trace_loop(
    scope: Scope,
    index: int,
    item: RepeatSpec,
    x: torch.Tensor,
    dims: list[DimInfo],
    trace_stack: StackTracer,
) -> NodeResult:
    """`repeat depth:`: one loop when the body keeps its input's shape, else its first pass
    apart and a loop of `depth - 1` passes that keep the first pass's output shape."""
    count = S.expr_of(scope.values.eval(item.count))
    site = Site("repeat", item.loc.line)
    at_least = len(scope.conditions)
    why, source = "a repeated block runs at least once", site.comment("count")
    runs = f"{site} runs at least once"
    scope.conditions.append(Condition(sympy.Ge(count, 1), index, runs, why, source=source))
    first = trace_stack(item.layers, x, dims)
    if _same_shape(first.dims, dims):
        return _result(scope, index, item, first.x, dims, (), first.steps, count)
    # the first pass changes the shape: it is written apart, so the loop runs at least once
    why = (
        f"the loop's first pass turns {shape_text(dims)} into {shape_text(first.dims)}, "
        "so it is built apart from the others and always runs"
    )
    scope.conditions[at_least] = Condition(
        sympy.Ge(count, 1), index, f"{runs}: its first pass changes the shape", why, source=source
    )
    conditions, positive, warnings = (
        len(scope.conditions),
        len(scope.positive),
        len(scope.warnings),
    )
    try:
        rest = trace_stack(item.layers, first.x, first.dims)
    except SeqgenError as e:  # say which pass it was
        note = (
            f"on the second pass of `repeat {item.count.id}:`, whose input is the first "
            f"pass's output {shape_text(first.dims)}; for one pass, write its layers without "
            "`repeat`"
        )
        hint = f"{e.diagnostic.hint}; {note}" if e.diagnostic.hint else note
        noted = type(e)(e.diagnostic.message, location=e.location, hint=hint)
        recorded = scope.shared.errors  # the trace reports what it recorded: this one, noted
        recorded[:] = [noted if r is e else r for r in recorded]
        raise noted from e
    agree = _agreement(scope, item, dims, first.dims, rest.dims)
    # what the second trace needs holds only when it runs: depth > 1
    earlier = {c.condition for c in scope.conditions[:conditions]}
    later = [c for c in scope.conditions[conditions:] if c.condition not in earlier]
    del scope.conditions[conditions:]
    del scope.positive[positive:]  # sizes known >= 1 only when depth > 1
    seen = {(w.code, w.location) for w in scope.warnings[:warnings]}
    scope.warnings[warnings:] = [
        w for w in scope.warnings[warnings:] if (w.code, w.location) not in seen
    ]
    # a later pass's own condition that its shape agreement implies (k == 1) says nothing new
    solved = {
        c.condition.lhs: c.condition.rhs
        for c, _ in agree
        if isinstance(c.condition, sympy.Eq) and isinstance(c.condition.lhs, sympy.Symbol)
    }
    later = [c for c in later if not solved or c.condition.xreplace(solved) is not sympy.true]
    once = sympy.Lt(count, 2)
    for c, what in [*((c, "") for c in later), *agree]:
        message = f"{site}: {what}" if what else c.message
        reason = "the loop's later passes must give back the shape they get" if what else c.reason
        scope.conditions.append(
            Condition(
                sympy.Or(once, c.condition),
                index,
                f"{message} (when {item.count.id} > 1)",
                reason=reason,
                detail=c.detail,
                source=c.source or site.comment("later passes"),
            )
        )
    return _result(scope, index, item, first.x, first.dims, first.steps, rest.steps, count)


def _same_shape(a: Sequence[DimInfo], b: Sequence[DimInfo]) -> bool:
    return len(a) == len(b) and all(same(p.expr, q.expr) for p, q in zip(a, b))


def _agreement(
    scope: Scope,
    item: RepeatSpec,
    dims: Sequence[DimInfo],
    out: Sequence[DimInfo],
    again: Sequence[DimInfo],
) -> list[tuple[Condition, str]]:
    """The conditions under which a second pass gives back the first pass's output `out`
    (`again`); an error when it does not at the defaults."""
    if len(again) == len(out) and all(
        same(a.expr, b.expr) or scope.value(a.expr) == scope.value(b.expr)
        for a, b in zip(again[1:], out[1:])
    ):
        return [
            (
                Condition(_equal(a.expr, b.expr), -1, ""),
                f"a later pass must give back dim {i} ({scope.show(b.expr)}), "
                f"got {scope.show(a.expr)}",
            )
            for i, (a, b) in enumerate(zip(again, out))
            if i and not same(a.expr, b.expr)
        ]
    raise TraceError(
        f"the block under `repeat {item.count.id}:` turns {shape_text(dims)} into "
        f"{shape_text(out)} on its first pass, then {shape_text(out)} into "
        f"{shape_text(again)}; a loop needs its passes after the first to give back the "
        "shape they get",
        location=item.loc,
        hint="write a number of times (`repeat 3:`) to unroll it, "
        "or keep the sizes the same inside the block",
    )


def _equal(a: sympy.Expr, b: sympy.Expr) -> sympy.Basic:
    """`a == b`, solved for its one parameter when it is linear in it (`k == 1`, not
    `34 - 2 * k == 33 - k`)."""
    diff = sympy.expand(a - b)
    free = S.free_symbols(diff)
    if len(free) == 1:
        (sym,) = free
        slope = diff.coeff(sym)
        rest = sympy.expand(diff - slope * sym)
        if slope.is_Integer and slope != 0 and rest.is_Integer and (-rest / slope).is_Integer:
            return sympy.Eq(sym, -rest / slope)
    return sympy.Eq(a, b)


def _result(
    scope: Scope,
    index: int,
    item: RepeatSpec,
    y: torch.Tensor,
    dims: list[DimInfo],
    first: Sequence[Step],
    body: Sequence[Step],
    count: sympy.Expr,
) -> NodeResult:
    """The loop as one node: `first` (if any) once, `body` for the remaining passes."""
    passes = count - 1 if first else count

    def total(kind: str) -> sympy.Expr:
        def of(steps: Sequence[Step]) -> sympy.Expr:
            return sum((getattr(st, kind) for st in steps), sympy.Integer(0))

        return of(first) + passes * of(body)

    params, train, macs = total("params_expr"), total("trainable_expr"), total("macs_expr")
    traced = TracedLayer(
        index=index,
        spec=LayerSpec("repeat", (item.count,), (), item.loc),
        class_name="Sequential",
        call_args=(),
        call_kwargs=(),
        out_shape=tuple(scope.dim(d) for d in dims),
        params=scope.as_dim(params),
        trainable_params=scope.as_dim(train),
        macs=scope.as_dim(macs),
        body=tuple(st.traced for st in body),
        repeat=item.count.id,
        first=tuple(st.traced for st in first),
    )
    return NodeResult(y, dims, Step(traced, params, train, macs))
