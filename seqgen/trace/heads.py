"""Tracing a model's heads (`head NAME [from=POINT]:`): each head's stack is traced from the
trunk's output, or from its point's (or a branch's of the merge it names: `from=z.mu`, or a
node's inside that branch, traced with it: `from=p3.down.p4`), in the
model's own scope, as a merge's branch is traced from the merge's input. Their conditions join
the model's, so `__init__` checks them too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sympy

from seqgen.errors import InternalError, TraceError
from seqgen.ir import (
    HeadSpec,
    MergeSpec,
    Node,
    TracedHead,
    branch_index,
    head_route,
    point_index,
)
from seqgen.trace.scope import DimInfo, NodeResult, Scope, Step


class NodeTracer(Protocol):
    """What tracing a head needs of the tracer: its scope, what the trunk's nodes gave
    (`outputs[i]`: node i's output; `branch_outputs[i][j]`: branch j's of the top-level merge
    i, for `from=MERGE.BRANCH`), and one node with its recovery."""

    scope: Scope
    outputs: list[tuple[Any, list[DimInfo]]]
    branch_outputs: dict[int, list[tuple[Any, list[DimInfo]]]]
    inner: dict[int, Any]  # inside merges, by id(node): (its output, its branches' if a merge)

    def node(self, index: int, node: Node, x: Any, dims: list[DimInfo]) -> NodeResult: ...

    def recover(
        self, index: int, node: Node, x: Any, dims: list[DimInfo], error: TraceError
    ) -> NodeResult: ...


@dataclass(frozen=True)
class HeadResult:
    """A traced head and its counts as expressions (the model's totals add them)."""

    traced: TracedHead
    params: sympy.Expr
    trainable: sympy.Expr


def _inner(
    traced: dict[int, Any], trunk: Sequence[Node], head: HeadSpec
) -> tuple[Any, list[DimInfo]] | None:
    """What `from=p3.down.p4` (or `p3.down.p4.down`) reads, from the nodes traced in merges;
    None where that was not traced (an error there, already recorded)."""
    route = head_route(trunk, head)
    top, j = trunk[route[0][0]], route[0][1]
    if not isinstance(top, MergeSpec) or j is None:
        return None
    stack = top.branches[j]
    for k, (i, j) in enumerate(route[1:], 2):
        node = stack[i]
        if id(node) not in traced:
            return None
        output, branches = traced[id(node)]
        if j is None:
            return output  # type: ignore[no-any-return]
        if not isinstance(node, MergeSpec) or j >= len(branches):
            return None
        if k == len(route):
            return branches[j]  # type: ignore[no-any-return]
        stack = node.branches[j]
    return None


def trace_heads(
    tracer: NodeTracer,
    heads: Sequence[HeadSpec],
    trunk: Sequence[Node],
) -> list[HeadResult]:
    """Trace every head from its point's output (or its branch's). Each head's errors are
    recorded and the next head is traced, so one run reports them all."""
    scope, outputs, branches = tracer.scope, tracer.outputs, tracer.branch_outputs
    results: list[HeadResult] = []
    failed: TraceError | None = None
    index = len(trunk)  # head nodes are numbered after the trunk's (the order of conditions)
    for head in heads:
        at = len(trunk) - 1 if head.point is None else point_index(trunk, head.point)
        if at is None or at >= len(outputs):
            raise InternalError(f"head {head.name!r}: point {head.point!r} was not resolved")
        j = branch_index(trunk, head)
        x, dims = outputs[at] if j is None else branches[at][j]
        if head.inner:  # `from=p3.down.p4`: a node (or a branch's end) inside that branch
            found = _inner(tracer.inner, trunk, head)
            if found is None:  # not traced: an error inside the merge, already recorded
                failed = failed or TraceError(f"head {head.name!r}: `from=` was not traced")
                continue
            x, dims = found
        in_dims = dims
        # the trunk's output is read by the other heads too: no in-place layer may change it
        scope.previous, scope.shared_input = None, True
        steps: list[Step] = []
        try:
            for node in head.layers:
                try:
                    result = tracer.node(index, node, x, dims)
                except TraceError as e:
                    result = tracer.recover(index, node, x, dims, e)
                x, dims = result.x, result.dims
                steps.append(result.step)
                index += 1
        except TraceError as e:
            failed = failed or e
            continue
        params = sum((st.params_expr for st in steps), sympy.Integer(0))
        trainable = sum((st.trainable_expr for st in steps), sympy.Integer(0))
        macs = sum((st.macs_expr for st in steps), sympy.Integer(0))
        traced = TracedHead(
            spec=head,
            layers=tuple(st.traced for st in steps),
            input_shape=tuple(scope.dim(d) for d in in_dims),
            out_shape=tuple(scope.dim(d) for d in dims),
            params=scope.as_dim(params),
            trainable_params=scope.as_dim(trainable),
            macs=scope.as_dim(macs),
        )
        results.append(HeadResult(traced, params, trainable))
    scope.previous, scope.shared_input = None, False
    if failed is not None:
        raise failed
    return results
