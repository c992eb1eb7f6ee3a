"""A torch.nn layer's arguments during the trace: bound spec values, their symbolic values,
the generated call's source, and the layer built from them (on fake tensors, or concretely at
the defaults for torch to check)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from seqgen.errors import SeqgenError, TraceError
from seqgen.ir import LayerSpec, TupleExpr
from seqgen.lang.values import expr_source
from seqgen.layers.arg_checks import check_arguments
from seqgen.layers.torch_nn import Bound
from seqgen.trace import symbolic as S
from seqgen.trace.scope import DimInfo, Scope, symint
from seqgen.trace.torch_errors import rank_error, rejected


def construct_concrete(
    scope: Scope, cls: type[nn.Module], layer: LayerSpec, bound: Bound, in_shape: tuple[int, ...]
) -> nn.Module:
    """The layer at the default values, for torch to check (inside the fake mode)."""
    kwargs: dict[str, Any] = {k: scope.concrete.eval(e) for k, e in bound.args.items()}
    kwargs.update({k: scope.concrete.eval(e) for k, e in bound.extra_kwargs.items()})
    for pname in bound.sig.inferred:
        if pname not in kwargs:
            size = in_shape[bound.sig.dim_of(pname)]
            kwargs[pname] = (size,) if pname == "normalized_shape" else size
    try:
        module = S.construct(cls, tuple(scope.concrete.eval(e) for e in bound.extra_args), kwargs)
    except Exception as e:
        raise rejected(cls, layer, e, kwargs) from e
    module.eval()
    return module


def arguments(
    scope: Scope, cls: type[nn.Module], layer: LayerSpec, x: torch.Tensor, dims: Sequence[DimInfo]
) -> Arguments:
    """The layer's arguments: symbolic values by name, and as source for the generated call."""
    bound = check_arguments(cls, layer, scope.concrete, tuple(scope.value(d.expr) for d in dims))
    sig = bound.sig
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for pname in sig.inferred:
        if pname == "normalized_shape" and pname in bound.args:
            continue  # LayerNorm's shape is inferred only when not given
        pos = sig.dim_of(pname)
        if x.dim() < 2 or not -x.dim() <= pos < x.dim():  # a `use` line's dim may be any
            raise rank_error(layer, cls, dims, max(2, pos + 1 if pos >= 0 else -pos))
        info = dims[pos]
        if info.expr == scope.batch_sym:
            raise rank_error(layer, cls, dims, 2)
        values[pname] = symint(scope, info)
        sources[pname] = info.code
        given = bound.args.get(pname)
        if given is not None:
            got = S.expr_of(scope.values.eval(given)) if not isinstance(given, TupleExpr) else None
            if got is None or scope.value(got) != scope.value(info.expr):
                shown = scope.value(got) if got is not None else expr_source(given)
                raise TraceError(
                    f"{pname}={expr_source(given)} disagrees with the traced input: "
                    f"{layer.name} receives {scope.value(info.expr)} ({info.code}), "
                    f"the spec says {shown}",
                    location=given.loc,
                    hint=f"remove {pname}=...; seqgen infers it",
                )
            sources[pname] = expr_source(given)
    for pname, node in bound.args.items():
        if pname in values:
            continue
        values[pname] = scope.values.eval(node)
        sources[pname] = expr_source(node)
    # Positional in the generated call: inferred sizes plus what the user gave by position,
    # as long as they run contiguously from the constructor's first parameter.
    given_pos = set(sig.positional[: len(layer.args)])
    out = Arguments(bound, values)
    positional_run = True
    for pname in sig.order:
        if pname not in sources:
            positional_run = False
            continue
        value = values[pname]
        if pname == "normalized_shape" and pname not in bound.args:
            value = (value,)  # nn.LayerNorm calls tuple() on a size that is no int
        if positional_run and (pname in sig.inferred or pname in given_pos):
            out.call_args.append(sources[pname])
            out.pos_values.append(value)
        else:
            positional_run = False
            out.call_kwargs.append((pname, sources[pname]))
            out.kw_values[pname] = value
    for e in bound.extra_args:
        out.call_args.append(expr_source(e))
        out.pos_values.append(scope.values.eval(e))
    for k, e in bound.extra_kwargs.items():
        out.call_kwargs.append((k, expr_source(e)))
        out.kw_values[k] = scope.values.eval(e)
    return out


def construct(scope: Scope, cls: type[nn.Module], layer: LayerSpec, args: Arguments) -> nn.Module:
    """The layer with symbolic arguments, on fake tensors (its parameter counts are exprs)."""
    try:
        module = S.construct(cls, tuple(args.pos_values), args.kw_values)
    except SeqgenError:
        raise
    except Exception as e:
        sample = {
            k: scope.value(S.expr_of(v)) if S.is_symbolic(v) else v for k, v in args.values.items()
        }
        raise rejected(cls, layer, e, sample) from e
    module.eval()  # shape checks at any batch size (BatchNorm refuses batch 1 in training)
    return module


@dataclass
class Arguments:
    """A layer's arguments: bound spec nodes, symbolic values, and the generated call."""

    bound: Bound
    values: dict[str, Any]
    call_args: list[str] = field(default_factory=list)
    call_kwargs: list[tuple[str, str]] = field(default_factory=list)
    pos_values: list[Any] = field(default_factory=list)
    kw_values: dict[str, Any] = field(default_factory=dict)
