"""Tracing a model's several inputs (`input NAME SHAPE` lines): each is a fake tensor of its own
dims, sharing the batch symbol, and a `branch from=NAME:` starts from it instead of the merge's
input. The shapes then combine by the merge's exact rules, as any branches do."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from seqgen.errors import InternalError, TraceError
from seqgen.ir import MergeSpec, ModelSpec, TracedInput
from seqgen.layers.input_reads import TORCH_DTYPES
from seqgen.safe_eval import evaluate_source
from seqgen.trace.input_reads import Role
from seqgen.trace.scope import DimInfo, Scope, Step

Traced = tuple[Any, list[DimInfo]]  # a fake tensor and its dims


def model_inputs(
    scope: Scope, spec: ModelSpec, first: Traced, extra: Sequence[list[DimInfo]]
) -> dict[str, Traced]:
    """Every named input's fake tensor and dims, by name (empty for one unnamed input)."""
    if spec.input_name is None:
        return {}
    out = {spec.input_name: first}
    for inp, dims in zip(spec.extra_inputs, extra, strict=True):
        dtype = TORCH_DTYPES[inp.dtype]
        out[inp.name] = (scope.session.tensor(scope.symbolic_sizes(dims), dtype), dims)
    return out


def branch_inputs(
    merge: MergeSpec, x: Any, dims: list[DimInfo], inputs: Mapping[str, Traced]
) -> Iterator[Traced]:
    """What each branch of `merge` reads: the merge's input, or a model input (`from=`)."""
    sources = merge.branch_from or (None,) * len(merge.branches)
    for source in sources:
        if source is None:
            yield x, dims
        elif source in inputs:
            yield inputs[source]
        else:  # the parser refuses an unknown name
            raise InternalError(f"branch from={source!r}: no such input")


def traced_inputs(
    scope: Scope, spec: ModelSpec, inputs: Mapping[str, Traced], roles: Mapping[str, Role]
) -> tuple[TracedInput, ...]:
    """The named inputs for the renderer, in the spec's order, with their shapes as Dims (and
    what a valid sample is, for an input a layer reads by a keyword)."""
    out = []
    for i in spec.inputs:
        shape = tuple(scope.dim(d) for d in inputs[i.name][1])
        role = roles.get(i.name)
        if role is None:
            out.append(TracedInput(i.name, shape, i.dtype))
        else:
            out.append(TracedInput(i.name, shape, i.dtype, role.role, role.length_of))
    return tuple(out)


def reads_first_input(spec: ModelSpec) -> bool:
    """Whether a `branch from=` reads the trunk's own input (which the trunk reads first)."""
    return spec.input_name is not None and any(
        spec.input_name in node.branch_from for node in spec.layers if isinstance(node, MergeSpec)
    )


def own_steps(merge: MergeSpec, branches: Sequence[Sequence[Step]]) -> list[Step]:
    """The steps whose weights the merge owns: a `shares=` branch runs another branch's modules,
    which it must build alike (same calls) for its own input."""
    if not merge.branch_shares:
        return [st for steps in branches for st in steps]
    keys = list(merge.branch_keys)
    out: list[Step] = []
    for j, (steps, share) in enumerate(zip(branches, merge.branch_shares, strict=True)):
        if share is None:
            out += steps
            continue
        mine = [st.traced.call for st in steps]
        theirs = [st.traced.call for st in branches[keys.index(share)]]
        if [_folded(c) for c in mine] != [_folded(c) for c in theirs]:
            diff = next(
                (a, b) for a, b in zip(mine, theirs, strict=True) if _folded(a) != _folded(b)
            )
            raise TraceError(
                f"branch {j + 1} shares the layers of branch {share!r}, but its input would "
                f"build them otherwise: {diff[0]} where {share!r} has {diff[1]}",
                location=merge.loc,
                hint="shared layers need inputs of the same sizes",
            )
    return out


class _FoldConstants(ast.NodeTransformer):
    """`2 * 3` -> `6`: arithmetic on int literals only."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if all(
            isinstance(side, ast.Constant) and type(side.value) is int
            for side in (node.left, node.right)
        ):
            try:
                return ast.Constant(evaluate_source(ast.unparse(node), {}))
            except Exception:
                return node
        return node


def _folded(call: str) -> str:
    """A constructor call with its constant arithmetic done: a shared branch's `nn.BatchNorm1d(6)`
    is its branch's `nn.BatchNorm1d(2 * 3)` (a flattened size printed as a product)."""
    try:
        return ast.unparse(_FoldConstants().visit(ast.parse(call, mode="eval")))
    except SyntaxError:
        return call
