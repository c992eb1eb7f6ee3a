"""Stage 2's entry: ModelSpec -> TracedModel, and the smallest input that traces."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sympy

from seqgen.check.other_values import verify_at_other_values
from seqgen.errors import (
    InternalError,
    SeqgenError,
    SizeTooSmallError,
    SpecErrors,
    TraceError,
    raise_all,
)
from seqgen.ir import BATCH, SAMPLE_BATCH, Expr, ModelSpec, Node, Num, TracedModel, walk
from seqgen.lang.values import expr_source
from seqgen.layers.preflight import layer_errors, quiet_torch_warnings
from seqgen.layers.torch_nn import concrete_values
from seqgen.trace import symbolic as S
from seqgen.trace.float_scale import float_symbol
from seqgen.trace.scope import MAX_SIZE, Scope, Shared
from seqgen.trace.tracer import Tracer


def model_scope(spec: ModelSpec, session: S.AnySession) -> Tracer:
    """The tracer of a model's own stack: its int parameters are symbols of `session`."""
    env: dict[str, Any] = {}
    hints: dict[sympy.Symbol, int] = {}
    flags: dict[str, sympy.Symbol] = {}
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
        if type(p.default) is float:  # a scale factor's (`upsample scale_factor=sf`)
            hints[float_symbol(session, p.name)] = p.default  # type: ignore[assignment]
        if type(p.default) is bool:  # 0 or 1 in the counts and sizes it decides (`bias=b`)
            flags[p.name] = S.expr_of(session.symbol(p.name, int(p.default), size=False))
            hints[flags[p.name]] = int(p.default)
    batch = session.symbol(BATCH, SAMPLE_BATCH)
    shared = Shared(session, spec, batch, S.expr_of(batch), flags=flags)
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
    errors = layer_errors((*spec.layers, *spec.head_nodes), spec.blocks)
    if errors:  # with the shape errors of the layers above the first line that does not bind
        first = min((e.location.line for e in errors if e.location is not None), default=0)
        raise_all(errors + errors_before(spec, first))
    try:
        with quiet_torch_warnings(), S.one_thread():
            traced = run_trace(spec)
            verify_at_other_values(traced)
        return traced
    except SizeTooSmallError as e:
        raise _with_smallest_input(spec, e) from e
    except SpecErrors as e:  # several errors: the one about size gets the same hint
        raise_all(
            [
                _with_smallest_input(spec, f) if isinstance(f, SizeTooSmallError) else f
                for f in e.errors
            ]
        )
        raise


def _with_smallest_input(spec: ModelSpec, e: SizeTooSmallError) -> SizeTooSmallError:
    """The error, with the smallest input that traces in its hint when there is one."""
    smallest = smallest_input(spec)
    if smallest is None:
        return e
    hint = f"the smallest input that works is `input {smallest}`"
    if e.diagnostic.hint:
        hint += f"; or {e.diagnostic.hint[0].lower()}{e.diagnostic.hint[1:]}"
    return SizeTooSmallError(e.diagnostic.message, location=e.location, hint=hint)


def errors_before(spec: ModelSpec, line: int) -> list[SeqgenError]:
    """The trace errors of the layers that end before `line` (the first line with a syntax
    error), found with the parse errors so that one run reports them together: the lines after
    it cannot be traced, since the broken line's output is unknown. Binding errors are the
    preflight's to report; this adds what needs the incoming shape (`conv2d 3 16 3`)."""
    prefix: list[Node] = []
    for node in spec.layers:
        if max(n.loc.line for n in walk([node])) >= line:
            break
        prefix.append(node)
    if not prefix:
        return []
    try:
        with quiet_torch_warnings():
            run_trace(replace(spec, layers=tuple(prefix), heads=()))
    except SpecErrors as e:
        return list(e.errors)
    except InternalError:
        raise
    except SeqgenError as e:
        return [e]
    return []


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
