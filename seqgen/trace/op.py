"""Tracing one of seqgen's own layer kinds (layers/ops): its rule, then torch on `meta`.

torch refuses SymInt sizes for RNNs, specialises the sequence length and cannot build a
transformer layer on a symbolic d_model (docs/torch-facts-sequence-layers.md), so an op's output
size and parameter count come from its exact rule, and torch itself builds and runs the op at
the sample values on `meta` (nothing allocated) to confirm the shape.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import sympy
import torch

from seqgen.check.realize import runs_short
from seqgen.errors import TraceError
from seqgen.ir import LayerSpec, TracedLayer
from seqgen.lang.values import expr_source
from seqgen.layers.formulas import NeedsLiteral, RankError, RuleError
from seqgen.layers.kind import CallSite, Nodes, Op, OpResult, evaluate
from seqgen.layers.torch_nn import first_line
from seqgen.trace import symbolic as S
from seqgen.trace.input_reads import read_keywords
from seqgen.trace.scope import DimInfo, NodeResult, Scope, Step, confirm_shape
from seqgen.trace.torch_errors import shape_text
from seqgen.trace.wording import Site


def trace_op(
    scope: Scope, op: Op, index: int, layer: LayerSpec, x: torch.Tensor, dims: list[DimInfo]
) -> NodeResult:
    """Trace one op line: bind, check the rule's conditions, confirm with torch, write the call."""
    nodes = _check_inferred(scope, op, op.bind(layer), dims)
    reads = read_keywords(op, layer, nodes)  # `lengths=NAME`: another input it reads
    if x.dtype != torch.float32 and not op.reads_token_ids:
        raise TraceError(
            f"{op.name} gets integer token ids (the input has dtype=long); only an "
            "embedding looks them up",
            location=layer.loc,
            hint="put `embedding VOCAB DIM` before it",
        )
    result = _rule(op, nodes, evaluate(nodes, scope.values), scope, dims, x.dtype, layer)
    where = Site(op.title, layer.loc.line, layer.loc.text)
    scope.require(result.outcome.checks, index, where, op.name, layer.loc)
    out_dims = []
    for size in result.outcome.shape:
        expr = S.simplify(scope.session, S.expr_of(size))
        same = next((d for d in dims if d.expr == expr), None)
        out_dims.append(same if same is not None else DimInfo(expr, scope.code(expr, layer.loc)))
    scope.check_sizes(out_dims, index, where, layer.loc, dims)
    # torch itself builds and runs the layer at the sample values (meta: nothing allocated;
    # op.run_for_shape keeps a recurrent layer to a few steps)
    hint_shape = tuple(scope.value(d.expr) for d in dims)
    want = tuple(scope.value(d.expr) for d in out_dims)
    count, macs = sympy.sympify(result.params), sympy.sympify(result.macs)
    params = scope.value(count)
    largest = max(math.prod(hint_shape), math.prod(want))
    work = params + math.prod(hint_shape) + math.prod(want)
    if not runs_short(op):
        work += scope.value(macs) * hint_shape[0]
    device = scope.session.concrete_device(work, params, largest)
    with S.real_tensors(), device or torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's dropout-with-one-layer note is lint W012
        try:
            module = op.build_reading(evaluate(nodes, scope.concrete), hint_shape, reads).eval()
            sample = torch.zeros if device is not None else torch.empty  # real: valid ids
            y = op.run_for_shape(module, sample(hint_shape, dtype=x.dtype))
        except Exception as e:
            raise TraceError(
                f"torch rejects {op.title} here: {first_line(e)}", location=layer.loc
            ) from e
    confirm_shape(want, y.shape, op.name, layer.loc)
    call = op.call(CallSite(_sources(nodes), nodes, [d.code for d in dims], reads))
    traced = TracedLayer(
        # the whole call as its one "argument": what reads the names a call uses sees them all
        index=index,
        spec=layer,
        class_name=op.title,
        call_args=(call,),
        call_kwargs=(),
        out_shape=tuple(scope.dim(d) for d in out_dims),
        params=scope.as_dim(count),
        trainable_params=scope.as_dim(count),
        macs=scope.as_dim(macs),
        code=call,
        helpers=op.helpers(reads),
        activations=_optional(scope, result.activations),
        hidden_params=_optional(scope, result.hidden_params),
        sequence=op.sequence,
    )
    y_fake = scope.session.tensor(scope.symbolic_sizes(out_dims), op.out_dtype(x.dtype))
    return NodeResult(y_fake, out_dims, Step(traced, count, count, macs))


def _optional(scope: Scope, count: Any) -> Any:
    return scope.as_dim(sympy.sympify(count)) if count is not None else None


def _sources(nodes: Nodes) -> dict[str, Any]:
    return {
        k: (tuple(expr_source(i) for i in v) if isinstance(v, tuple) else expr_source(v))
        for k, v in nodes.items()
    }


def _rule(
    op: Op,
    nodes: Nodes,
    values: Mapping[str, Any],
    scope: Scope,
    dims: Sequence[DimInfo],
    dtype: torch.dtype,
    layer: LayerSpec,
) -> OpResult:
    """The op's rule, its errors in the spec's words."""
    try:
        return op.rule(values, scope.symbolic_sizes(dims), dtype)
    except RankError as e:
        raise TraceError(
            f"{op.name} needs an input of rank {e.rank} but gets rank {len(dims)} "
            f"{shape_text(dims)}",
            location=layer.loc,
            hint=f"{op.name} works on {op.shape_hint}"
            + (
                "; `flatten 2` then `transpose 1 2` turns (N, C, H, W) into (N, H * W, C)"
                if len(dims) == 4
                else "; `unsqueeze 1` adds a dim"
                if len(dims) < 3
                else ""
            ),
        ) from e
    except NeedsLiteral as e:
        node = nodes.get(e.arg)
        raise TraceError(
            f"{op.name}'s {e.arg} must be a literal here: {e.why}",
            location=getattr(node, "loc", layer.loc),
        ) from e
    except RuleError as e:
        hint = None
        if "dtype=long" in str(e):
            hint = "write `input (...) dtype=long`: an embedding reads integer token ids"
        raise TraceError(f"{op.name}: {e}", location=layer.loc, hint=hint) from e


def _check_inferred(scope: Scope, op: Op, nodes: Nodes, dims: list[DimInfo]) -> Nodes:
    """A written input_size= / d_model= must be the last input dim; seqgen writes its own."""
    if op.inferred is None or op.inferred not in nodes:
        return nodes
    nodes = dict(nodes)
    given = nodes.pop(op.inferred)
    last = dims[-1]
    value = scope.values.eval(given)
    if (
        isinstance(value, bool)
        or not (isinstance(value, int) or S.is_symbolic(value))
        or scope.value(S.expr_of(value)) != scope.value(last.expr)
    ):
        got = str(scope.value(last.expr))
        shown = got if last.code == got else f"{got} ({last.code})"
        raise TraceError(
            f"{op.inferred}={expr_source(given)} disagrees with the traced input: {op.name} "
            f"receives {shown} features",
            location=given.loc,
            hint=f"remove {op.inferred}=...; seqgen infers it",
        )
    return nodes
