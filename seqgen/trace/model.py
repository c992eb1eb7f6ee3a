"""Stage 2's entry: ModelSpec -> TracedModel, and the smallest input that traces."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sympy

from seqgen.check.other_values import verify_at_other_values
from seqgen.errors import InternalError, SeqgenError, SizeTooSmallError, TraceError
from seqgen.ir import BATCH, SAMPLE_BATCH, Expr, ModelSpec, Num, TracedModel
from seqgen.lang.values import expr_source
from seqgen.layers.preflight import check_layers, quiet_torch_warnings
from seqgen.layers.torch_nn import concrete_values
from seqgen.trace import symbolic as S
from seqgen.trace.scope import MAX_SIZE, Scope, Shared
from seqgen.trace.tracer import Tracer


def model_scope(spec: ModelSpec, session: S.AnySession) -> Tracer:
    """The tracer of a model's own stack: its int parameters are symbols of `session`."""
    env: dict[str, Any] = {}
    hints: dict[sympy.Symbol, int] = {}
    for p in spec.params:
        if type(p.default) is int and abs(p.default) > MAX_SIZE:
            raise TraceError(
                f"{p.name}={p.default} is too large for a tensor size",
                location=p.loc,
                hint=f"sizes go up to {MAX_SIZE:,}",
            )
        if type(p.default) is int:
            # no sign is assumed: __init__ receives any int, and must refuse the bad ones
            sym = session.symbol(p.name, p.default, size=False)
            env[p.name] = sym
            hints[S.expr_of(sym)] = p.default
        else:
            env[p.name] = p.default
    batch = session.symbol(BATCH, SAMPLE_BATCH)
    shared = Shared(session, spec, batch, S.expr_of(batch))
    return Tracer(
        Scope(shared, env, hints, concrete_values(spec), {p.name: p for p in spec.params})
    )


def run_trace(spec: ModelSpec) -> TracedModel:
    """Trace on seqgen's own sizes; where they cannot decide something exactly (a layer
    without a rule), trace again on torch's ShapeEnv, which imports torch._dynamo (sizes.py)."""
    try:
        return model_scope(spec, S.LightSession()).run()
    except S.NeedsShapeEnv:
        return model_scope(spec, S.Session()).run()


def trace(spec: ModelSpec) -> TracedModel:
    """Trace a parsed spec symbolically (every layer's binding checked first)."""
    check_layers(spec)
    try:
        with quiet_torch_warnings(), S.one_thread():
            traced = run_trace(spec)
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
    literal: dict[int, Num] = {}
    for i in spatial:
        node = dims[i]
        if not isinstance(node, Num):
            return None
        literal[i] = node
    current = max(int(n.value) for n in literal.values())

    def shape(size: int) -> tuple[Expr, ...]:
        return tuple(
            Num(max(int(literal[i].value), size), d.loc) if i in spatial else d
            for i, d in enumerate(dims)
        )

    def works(size: int) -> bool:
        try:
            run_trace(replace(spec, input_shape=shape(size)))
        except InternalError:
            raise  # a seqgen bug is no answer about the size
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
