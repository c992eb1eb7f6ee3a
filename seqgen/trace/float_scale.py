"""A float model parameter as an upsampling scale factor (trace stage).

`model U(sf=2.0)` with `upsample scale_factor=sf`: the output size is what torch's
`interpolate` computes, the input size times the scale in double precision, truncated
(`int(h * sf)`; the floor, since the scale must be > 0). The parameter is a real sympy symbol,
and each size it decides is a `ScaledSize(h, sf)`, which the printer writes as `int(h * sf)`.
Only seqgen's own sizes (sizes.py) carry such a size; a model that needs torch's ShapeEnv (a
layer without a size rule) cannot take one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy

from seqgen.errors import TraceError
from seqgen.ir import Name, TupleExpr, expr_names
from seqgen.layers.torch_nn import Bound
from seqgen.trace.expressions import ScaledSize
from seqgen.trace.scope import Scope
from seqgen.trace.sizes import LightSession, Size

# The arguments a float model parameter may stand for, by name.
SCALE_ARGS = frozenset({"scale_factor"})


@dataclass(frozen=True)
class FloatScale:
    """A scale factor that is a float model parameter: its symbol and its default."""

    symbol: sympy.Symbol
    value: float
    session: LightSession

    def times(self, size: Any) -> Any:
        """`int(size * scale)` for an int or a seqgen Size."""
        if isinstance(size, Size):
            hint = int(size.hint * self.value)
            return Size(ScaledSize(size.expr, self.symbol), hint, size.session)
        if isinstance(size, int):
            return Size(
                ScaledSize(sympy.Integer(size), self.symbol), int(size * self.value), self.session
            )
        raise TypeError(f"a size of type {type(size).__name__} times a float scale")


def float_symbol(session: Any, name: str) -> sympy.Symbol:
    """The symbol of the float model parameter `name` (real, of no sign: `__init__` checks
    it), known to the session's printer."""
    sym = sympy.Symbol(f"float_{name}", real=True)
    session.names[sym] = name
    return sym


def _model_float(scope: Scope, name: str) -> sympy.Symbol | None:
    """The symbol of `name` where it is a float parameter of the model (not of a block)."""
    sym = sympy.Symbol(f"float_{name}", real=True)
    return sym if scope.block is None and sym in scope.session.names else None


def _items(node: Any) -> tuple[Any, ...]:
    """A value's elements: a tuple's items (`scale_factor=(sf, 2.0)`), or the value itself."""
    return tuple(node.items) if isinstance(node, TupleExpr) else (node,)


def with_scales(scope: Scope, values: dict[str, Any], bound: Bound) -> dict[str, Any]:
    """A layer's argument values with each float model parameter that stands for a scale
    factor (or for one of a tuple's) as its FloatScale."""
    out = dict(values)
    if not isinstance(scope.session, LightSession):
        return out
    for pname, node in bound.args.items():
        if pname not in SCALE_ARGS:
            continue
        items = _items(node)
        given = values[pname] if isinstance(node, TupleExpr) else (values[pname],)
        scales = [
            FloatScale(sym, float(v), scope.session)
            if isinstance(e, Name) and (sym := _model_float(scope, e.id)) is not None
            else v
            for e, v in zip(items, given, strict=True)
        ]
        out[pname] = tuple(scales) if isinstance(node, TupleExpr) else scales[0]
    return out


def stands_for_scale(scope: Scope, pname: str, node: Any) -> bool:
    """Whether `node` is a float model parameter given as a scale factor (or a tuple of such
    and literals) that seqgen computes exactly; one in a model traced on torch's ShapeEnv is
    an error."""
    if pname not in SCALE_ARGS:
        return False
    items = _items(node)
    floats = [e for e in items if isinstance(e, Name) and _model_float(scope, e.id) is not None]
    other = [
        ref
        for e in items
        if e not in floats
        for ref in expr_names(e)
        if ref.id in scope.params and scope.params[ref.id].type_name != "int"
    ]
    if not floats or other:
        return False
    if not isinstance(scope.session, LightSession):
        raise TraceError(
            f"the float parameter {floats[0].id!r} as {pname} works only in a model whose "
            "layers all have seqgen size rules (one here has none)",
            location=floats[0].loc,
            hint=f"write the value itself ({pname}={scope.concrete.eval(node)!r})",
        )
    return True
