"""Argument checks (part of the trace stage): no spec value is silently reinterpreted.

Every value, positional or keyword, is checked against the constructor parameter it binds to
(its type and range: arg_types.py). Values are evaluated at the parameter defaults, so an int
parameter and arithmetic over int parameters are ints. A size seqgen infers, written out of
PyTorch habit (`conv2d 3 16 3` on a 3-channel input), is named before anything else.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

from torch import nn

from seqgen.errors import Diagnostic, TraceError
from seqgen.ir import Expr, LayerSpec, Num, TracedLayer
from seqgen.lang.hints import layer_text, whole_line
from seqgen.layers.arg_types import (
    ANY_TYPE,
    broken_range,
    describe,
    fits,
    got_text,
    parameter_types,
    type_hint,
    value_span,
)
from seqgen.layers.torch_nn import Bound, Mismatch, Values, bind, reading, signature, word
from seqgen.report import lint

# A layer above this many parameters is most likely a typo in a size (`linear 1000000`).
HUGE_LAYER = 10**9


def mismatch(cls: type[nn.Module], values: Values) -> Mismatch:
    """A `describe` callback for bind: what `pname` takes when `node` does not fit it."""
    types_ = parameter_types(cls)

    def check(pname: str, node: Expr) -> str | None:
        t = types_.get(pname, ANY_TYPE)
        try:
            value = values.eval(node)
        except TraceError:
            return None
        return None if fits(value, t) else describe(t)

    return check


def check_values(cls: type[nn.Module], layer: LayerSpec, bound: Bound, values: Values) -> None:
    """Every bound value against its parameter's type and range; raise at the first misfit."""
    name = word(cls, layer)
    types_ = parameter_types(cls)
    for pname, node in bound.args.items():
        t = types_.get(pname, ANY_TYPE)
        value = values.eval(node)
        if not fits(value, t):
            raise TraceError(
                f"{name}'s {pname} takes {describe(t)}, got {got_text(node, value)}",
                location=value_span(node),
                hint=type_hint(pname, t, node, value),
            )
        r = broken_range(cls, pname, value)
        if r is not None:
            default = inspect.signature(cls.__init__).parameters[pname].default
            raise TraceError(
                f"{name}'s {pname} must be {r.rule}, got {got_text(node, value)}",
                location=value_span(node),
                hint=f"{r.why}; the default is {default!r}",
            )


def _binds_cleanly(cls: type[nn.Module], layer: LayerSpec, values: Values) -> bool:
    try:
        bound = bind(cls, layer)
        missing = [p for p in bound.sig.required if p not in bound.args]
        check_values(cls, layer, bound, values)
    except TraceError:
        return False
    return not missing


def _refuse_written_inferred_size(
    cls: type[nn.Module], layer: LayerSpec, values: Values, in_shape: tuple[int, ...]
) -> None:
    """`conv2d 3 16 3` on 3 channels: the first size is in_channels, which seqgen infers."""
    sig = signature(cls)
    if len(in_shape) < 2:
        return
    given = {kw.name for kw in layer.kwargs}
    for pname in sig.inferred:
        if pname in given:
            continue
        # where PyTorch's own call has it: after the positional parameters before it
        before = sig.order[: sig.order.index(pname)]
        slot = sum(1 for p in before if p in sig.positional)
        if slot >= len(layer.args) or slot > sig.by_position:
            continue
        node = layer.args[slot]
        size = in_shape[sig.dim_of(pname)]
        if not (isinstance(node, Num) and type(node.value) is int and node.value == size):
            continue
        dropped = replace(layer, args=layer.args[:slot] + layer.args[slot + 1 :])
        # else `conv2d 1 32 3 1` in PyTorch's order: stride=1 by keyword
        rest = dropped if _binds_cleanly(cls, dropped, values) else reading(cls, layer, True)
        if rest is not None and _binds_cleanly(cls, rest, values):
            written = layer_text(layer.name, layer.args, layer.kwargs, layer.key)
            fixed = layer_text(rest.name, rest.args, rest.kwargs, layer.key)
            raise TraceError(
                f"`{written}`: seqgen infers {pname} ({size} here)",
                location=node.loc,
                hint=f"did you mean `{fixed}`?",
                fix=whole_line(layer.loc, fixed),
            )


def check_arguments(
    cls: type[nn.Module], layer: LayerSpec, values: Values, in_shape: tuple[int, ...]
) -> Bound:
    """Bind a layer's arguments and check each value; `in_shape` is the incoming shape at the
    defaults (batch first), `values` evaluates spec values at the parameter defaults."""
    _refuse_written_inferred_size(cls, layer, values, in_shape)
    bound = bind(cls, layer, mismatch(cls, values))
    check_values(cls, layer, bound, values)
    return bound


def huge_layer_warning(layer: TracedLayer) -> Diagnostic | None:
    """A layer above a billion parameters: most likely a typo in one of its sizes."""
    n = layer.params.value
    if n <= HUGE_LAYER:
        return None
    return Diagnostic(
        "warning",
        f"{layer.spec.name} has {n:,} parameters "
        f"({n / 1e9:.1f} billion, {4 * n / 1e9:.1f} GB in fp32)",
        layer.spec.loc,
        "a layer this large is usually a typo in a size: check its arguments",
        lint.HUGE_LAYER,
    )
