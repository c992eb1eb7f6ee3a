"""Tracing a class of the user's own (`use mypkg.layers:Gate`): like a torch.nn class, on fake
tensors with symbolic sizes, and where torch cannot trace it so, concretely at the sample values
(warning W015 says so: its shape and count then hold at those values, which the self-check at
other values tests). Its mult-adds are what torch's FlopCounterMode counts while it runs
(user_macs.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace

import sympy
import torch
from torch import nn

from seqgen.check.realize import real_module
from seqgen.errors import Diagnostic, SeqgenError, TraceError
from seqgen.ir import TracedLayer
from seqgen.layers.registry import TorchModule, UserModule
from seqgen.layers.torch_nn import bind, first_line
from seqgen.report.lint import TRACED_CONCRETELY
from seqgen.trace import symbolic as S
from seqgen.trace.arguments import arguments
from seqgen.trace.scope import DimInfo, NodeResult, Scope, Step
from seqgen.trace.symbolic_state import checkpoint
from seqgen.trace.torch_errors import located_warnings
from seqgen.trace.user_macs import FlopCount, Macs, Run, sample_macs, symbolic_macs

_INITIALISERS = ("reset_parameters", "_reset_parameters")
# how the trace traces a torch.nn class without a size rule, running it as `run(module, x)`
TraceTorch = Callable[[Scope, int, TorchModule, torch.Tensor, list[DimInfo], Run], NodeResult]


@contextlib.contextmanager
def torch_layers_uninitialised() -> Iterator[None]:
    """Within the block, torch.nn's layers skip their initialisers: a user's class builds its
    layers itself (seqgen builds a torch.nn class without its initialiser directly), and an
    initialiser's `math.sqrt(fan_in)` would fix a symbolic size to its sample value."""
    saved = {
        (base, name): vars(base)[name]
        for c in vars(nn).values()
        if isinstance(c, type) and issubclass(c, nn.Module)
        for base in c.__mro__
        for name in _INITIALISERS
        if name in vars(base)
    }
    for base, name in saved:
        setattr(base, name, _skip)
    try:
        yield
    finally:
        for (base, name), method in saved.items():
            setattr(base, name, method)


def _skip(self: nn.Module) -> None:
    """An initialiser that does nothing (the trace needs shapes, not values)."""


def trace_user_layer(
    scope: Scope,
    index: int,
    kind: UserModule,
    x: torch.Tensor,
    dims: list[DimInfo],
    trace: TraceTorch,
) -> NodeResult:
    """A user's class traced as `trace` traces a torch.nn class, its run counted by
    FlopCounterMode; where the class itself fails on fake tensors (torch's or its own
    exception) or fixes a size to its sample value, traced again at the sample values, with
    what the first try decided undone."""
    if not isinstance(scope.session, S.Session):  # no size rule: torch's ShapeEnv traces it
        raise S.NeedsShapeEnv(f"{kind.use.import_path} is a class of the user's own")
    restore = checkpoint(scope.session)
    before = scope.session.specialized()
    counter = FlopCount()
    try:
        with torch_layers_uninitialised(), located_warnings(kind.layer, scope.warnings):
            result = trace(scope, index, kind.as_torch, x, dims, counter.run)
        # None: a class named like a torch.nn class that has a size rule, counted by the rule
        macs = None if counter.flops is None else symbolic_macs(scope, counter.flops)
    except TraceError as e:
        fixed = sorted(scope.session.specialized().keys() - before.keys())
        cause = e.__cause__
        if not fixed and (cause is None or isinstance(cause, SeqgenError)):
            raise  # the spec's own mistake (a binding, a size), not the class's
        restore()
        why = f"{type(cause).__name__}: {first_line(cause)}" if cause and not fixed else ""
        why = why or f"its code fixes {', '.join(fixed)} to the sample value"
        result, macs = _trace_concretely(scope, index, kind, x, dims, why)
    return _with_own_call(result, kind, macs)


def _with_own_call(result: NodeResult, kind: UserModule, macs: Macs | None) -> NodeResult:
    """The traced layer, called by its class's own name (imported), not as `nn.NAME`, with
    the mult-adds FlopCounterMode counted."""
    traced, step = result.step.traced, result.step
    if not isinstance(traced, TracedLayer):  # pragma: no cover - one class is one layer
        raise TypeError(traced)
    parts = [*traced.call_args, *(f"{k}={v}" for k, v in traced.call_kwargs)]
    traced = replace(traced, code=f"{kind.cls.__name__}({', '.join(parts)})")
    if macs is not None:
        traced = replace(traced, macs=macs.dim, macs_at_sample=macs.at_sample)
        step = replace(step, macs_expr=macs.expr)
    return replace(result, step=replace(step, traced=traced))


def _trace_concretely(
    scope: Scope,
    index: int,
    kind: UserModule,
    x: torch.Tensor,
    dims: list[DimInfo],
    why: str,
) -> tuple[NodeResult, Macs]:
    """Build the class at the sample values and run it on a real tensor of the sample shape
    (its mult-adds counted there)."""
    cls, layer = kind.cls, kind.layer
    args = arguments(scope, cls, layer, x, dims)
    sample = tuple(scope.value(d.expr) for d in dims)
    symbolic = [k for k, v in args.values.items() if isinstance(v, torch.SymInt)]
    if symbolic:  # its count and sizes would hold at the defaults only
        raise TraceError(
            f"{kind.use.import_path} cannot be traced with symbolic sizes ({why}), and its "
            f"{', '.join(symbolic)} depend on the model's parameters",
            location=layer.loc,
            hint="write those arguments as numbers, or make the class's code size-generic "
            "(no int() or Python branch on a size)",
        )
    with S.real_tensors():
        try:
            module = real_module(cls, bind(cls, layer), scope.concrete, sample).eval()
            counter = FlopCount()
            y = counter.run(module, torch.zeros(sample))
        except Exception as e:  # the user's code failed: what failed, where, and whose
            raise TraceError(
                f"{kind.use.import_path} cannot be traced: {type(e).__name__}: {first_line(e)}",
                location=layer.loc,
                hint=f"it failed at the sample input {sample}; traced symbolically: {why}",
            ) from e
        if not isinstance(y, torch.Tensor):
            raise TraceError(
                f"{kind.use.import_path} returned {type(y).__name__}, not one tensor",
                location=layer.loc,
                hint="a layer line's class takes one tensor and returns one",
            )
        shape = tuple(int(s) for s in y.shape)
        n_params = sum(p.numel() for p in module.parameters())
        n_train = sum(p.numel() for p in module.parameters() if p.requires_grad)
    # a size equal to the input's at the same place is taken to be it (the self-check at other
    # values tests that); any other is the literal the sample gave
    out_dims = [
        dims[i] if i < len(dims) and sample[i] == size else DimInfo(sympy.Integer(size), str(size))
        for i, size in enumerate(shape)
    ]
    found = Diagnostic(
        "warning",
        f"{cls.__name__} ({kind.use.import_path}) was traced at the sample values only: torch "
        f"could not trace it symbolically ({why})",
        layer.loc,
        "its output shape and parameter count are checked at the sample values and at the "
        "self-check's other values only",
        TRACED_CONCRETELY,
    )
    if found not in scope.warnings:
        scope.warnings.append(found)
    params, trainable, zero = sympy.Integer(n_params), sympy.Integer(n_train), sympy.Integer(0)
    traced = TracedLayer(
        index=index,
        spec=layer,
        class_name=cls.__name__,
        call_args=tuple(args.call_args),
        call_kwargs=tuple(args.call_kwargs),
        out_shape=tuple(scope.dim(d) for d in out_dims),
        params=scope.as_dim(params),
        trainable_params=scope.as_dim(trainable),
        macs=scope.as_dim(zero),  # replaced by the count (_with_own_call)
    )
    y_fake = scope.session.tensor(scope.symbolic_sizes(out_dims))
    macs = sample_macs(scope, int(counter.flops), sample[0])
    return NodeResult(y_fake, out_dims, Step(traced, params, trainable, zero)), macs
