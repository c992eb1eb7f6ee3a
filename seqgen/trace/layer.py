"""Tracing one torch.nn layer (trace stage): its arguments, output and counts.

A layer with a rule (torch_rules.py) gets its output size and parameter shapes from seqgen's
exact formulas, and torch runs it at the defaults; any other layer runs on fake tensors with
symbolic sizes (which only torch's ShapeEnv session can do: a light trace asks for one). Either
way the layer's conditions join its scope's, and its parameter count is an expression.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import sympy
import torch
from torch import nn

from seqgen.check.realize import confirm_on_cpu
from seqgen.errors import InternalError, TraceError
from seqgen.ir import LayerSpec, Name, TracedLayer, expr_names
from seqgen.layers import torch_rules as rules
from seqgen.layers import weight_norm
from seqgen.layers.formulas import NeedsLiteral, RankError, RuleError
from seqgen.layers.kind import Op
from seqgen.layers.registry import TorchModule, UserModule, WeightNormed, kind_for
from seqgen.layers.torch_nn import Bound
from seqgen.trace import symbolic as S
from seqgen.trace.arguments import Arguments, arguments, construct, construct_concrete
from seqgen.trace.counts import apply_flagged, counts_for_flags, flag_of, macs_of
from seqgen.trace.float_scale import stands_for_scale, with_scales
from seqgen.trace.input_reads import read_keywords
from seqgen.trace.op import trace_op
from seqgen.trace.scope import DimInfo, NodeResult, Scope, Step, confirm_shape
from seqgen.trace.torch_errors import (
    layer_failure,
    located_warnings,
    not_one_tensor,
    rank_error,
)
from seqgen.trace.user import trace_user_layer
from seqgen.trace.user_macs import Run
from seqgen.trace.wording import Site, token_ids_refused

# Layers that may hand their input on as is (eval-mode dropout, views): an in-place layer after
# them still writes into the stack's input.
PASS_THROUGH = frozenset(
    {
        "Identity",
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "FeatureAlphaDropout",
        "Flatten",
        "Unflatten",
    }
)
# Layers whose backward reads their own output (measured with torch: an in-place layer right
# after them fails backward), always or when they ran in place themselves.
_SAVES_OUTPUT = frozenset({"ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softmin"})
_SAVES_OUTPUT_INPLACE = frozenset(
    {"ELU", "CELU", "SELU", "LeakyReLU", "Hardtanh", "ReLU6", "RReLU", "Threshold"}
)


def trace_layer(
    scope: Scope, index: int, layer: LayerSpec, x: torch.Tensor, dims: list[DimInfo]
) -> NodeResult:
    """Trace one layer line, by kind: one of seqgen's own ops, or a torch.nn class (with
    `weight_norm=` around it or not)."""
    kind = kind_for(layer)
    if isinstance(kind, Op):
        return trace_op(scope, kind, index, layer, x, dims)
    read_keywords(None, layer, {})  # no torch.nn class reads another input
    if x.dtype != torch.float32 and not layer.name.lower().startswith(("dropout", "identity")):
        own = kind.use.import_path if isinstance(kind, UserModule) else None
        raise token_ids_refused(layer.name, layer.loc, own)
    match kind:
        case WeightNormed():
            return _trace_weight_norm(scope, index, layer, kind, x, dims)
        case TorchModule():
            return trace_torch_layer(scope, index, kind, x, dims)
        case UserModule():
            return trace_user_layer(scope, index, kind, x, dims, _trace_torch_layer)


def _trace_weight_norm(
    scope: Scope,
    index: int,
    layer: LayerSpec,
    kind: WeightNormed,
    x: torch.Tensor,
    dims: list[DimInfo],
) -> NodeResult:
    """A torch.nn layer with `weight_norm=`: traced as itself, then wrapped and recounted."""
    norm, plain = kind.value, kind.inner.layer
    on = weight_norm.enabled(norm)
    inner = trace_torch_layer(scope, index, kind.inner, x, dims)
    step = inner.step
    traced = step.traced
    if not isinstance(traced, TracedLayer):
        raise InternalError(f"{plain.name} traced to {type(traced).__name__}, not one layer")
    if not on:
        return replace(inner, step=replace(step, traced=replace(traced, spec=layer)))
    added = weight_norm.added_params(
        traced.class_name, [d.expr for d in dims], [d.expr for d in inner.dims]
    )
    if added is None:
        raise weight_norm.refuse(traced.class_name, norm)
    params = step.params_expr + added
    trainable = step.trainable_expr + added
    zero = sympy.Integer(0)
    # torchinfo: the wrapped layer has child modules (its parametrizations), so it is no leaf:
    # no mult-adds and no kept output are counted for it
    wrapped = replace(
        traced,
        spec=layer,
        params=scope.as_dim(params),
        trainable_params=scope.as_dim(trainable),
        macs=scope.as_dim(zero),
        code=weight_norm.call(traced.call),
        activations=scope.as_dim(zero),
        hidden_params=scope.as_dim(params),
    )
    return NodeResult(inner.x, inner.dims, Step(wrapped, params, trainable, zero))


def trace_torch_layer(
    scope: Scope, index: int, kind: TorchModule, x: torch.Tensor, dims: list[DimInfo]
) -> NodeResult:
    """Trace one torch.nn layer: its output, its conditions, and how the generated code
    builds it."""
    with located_warnings(kind.layer, scope.warnings):
        return _trace_torch_layer(scope, index, kind, x, dims, nn.Module.__call__)


def _trace_torch_layer(
    scope: Scope, index: int, kind: TorchModule, x: torch.Tensor, dims: list[DimInfo], run: Run
) -> NodeResult:
    cls, layer = kind.cls, kind.layer
    before = scope.session.specialized()
    args = arguments(scope, cls, layer, x, dims)
    _refuse_inplace_after_output_saver(scope, cls, layer, args)
    flags = _refuse_non_int_shape_args(scope, cls, layer, args.bound)
    if flags:  # the layer is built at each value of its bool parameters: torch's symbolic sizes
        scope.session.require_shape_env("a bool model parameter decides its sizes or counts")
    if rules.has_rule(cls):
        module, out_shape, numels = _apply_rule(scope, index, cls, layer, args, dims, flags)
        y = scope.session.tensor(out_shape)
    else:
        scope.session.require_shape_env(f"{cls.__name__} has no size rule")
        module = construct(scope, cls, layer, args)
        try:
            y = run(module, x)
        except Exception as e:  # torch's own error, rewritten into words about the spec
            raise layer_failure(layer, cls, dims, e) from e
        if not isinstance(y, torch.Tensor):
            raise not_one_tensor(cls, y, layer)
        out_shape = tuple(y.shape)
        numels = _numels(module)
    scope.check_specialized(before, layer)
    out_dims = _out_dims(scope, module, out_shape, dims, layer)
    scope.check_sizes(
        out_dims, index, Site(cls.__name__, layer.loc.line, layer.loc.text), layer.loc, dims
    )
    with S.real_tensors():
        confirm_on_cpu(
            cls,
            args.bound,
            scope.concrete,
            tuple(scope.value(d.expr) for d in dims),
            tuple(scope.value(d.expr) for d in out_dims),
            layer,
        )
    if flags:  # `bias=b`: the layer built at each value of its bool parameters
        n_params, n_train, macs = counts_for_flags(scope, cls, layer, args, y, flags)
    else:
        n_params = sum(numels.values(), sympy.Integer(0))
        frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
        n_train = sum((n for name, n in numels.items() if name not in frozen), sympy.Integer(0))
        macs = macs_of(cls, numels, [S.expr_of(s) for s in out_shape])
    traced = TracedLayer(
        index=index,
        spec=layer,
        class_name=cls.__name__,
        call_args=tuple(args.call_args),
        call_kwargs=tuple(args.call_kwargs),
        out_shape=tuple(scope.dim(d) for d in out_dims),
        params=scope.as_dim(n_params),
        trainable_params=scope.as_dim(n_train),
        macs=scope.as_dim(macs),
    )
    return NodeResult(y, out_dims, Step(traced, n_params, n_train, macs))


def _apply_rule(
    scope: Scope,
    index: int,
    cls: type[nn.Module],
    layer: LayerSpec,
    args: Arguments,
    dims: Sequence[DimInfo],
    flags: dict[str, sympy.Symbol],
) -> tuple[nn.Module, tuple[Any, ...], dict[str, sympy.Expr]]:
    """Output size and parameter counts from seqgen's own formulas; torch checks the layer at
    the defaults (the layer it built there comes back, with the output's sizes)."""
    shape = scope.symbolic_sizes(dims)
    args = replace(args, values=with_scales(scope, args.values, args.bound))
    try:
        outcome = apply_flagged(scope, cls, args, shape, flags)
    except RankError as e:
        raise rank_error(layer, cls, dims, e.rank) from e
    except RuleError as e:
        # torch's constructor may refuse first: its refusal, in the spec's words, names
        # the values that would work
        construct_concrete(scope, cls, layer, args.bound, tuple(scope.value(d.expr) for d in dims))
        raise TraceError(f"{cls.__name__}: {e}", location=layer.loc) from e
    except NeedsLiteral as e:
        node = args.bound.args.get(e.arg)
        raise TraceError(
            f"{cls.__name__}'s {e.arg} must be a literal number here: {e.why}",
            location=node.loc if node is not None else layer.loc,
        ) from e
    where = Site(cls.__name__, layer.loc.line, layer.loc.text)
    hint_shape = tuple(scope.value(d.expr) for d in dims)
    scope.require(
        outcome.checks,
        index,
        where,
        cls.__name__,
        layer.loc,
        # torch's refusal, in the spec's words, names the values that would work
        before_failing=lambda: construct_concrete(scope, cls, layer, args.bound, hint_shape),
    )
    # torch itself runs the layer at the defaults: on fake tensors or `meta` (nothing is
    # allocated), or for real on the CPU when that is cheap (sizes.py)
    want = tuple(scope.value(S.expr_of(v)) for v in outcome.shape)
    concrete = construct_concrete(scope, cls, layer, args.bound, hint_shape)
    numels = _rule_params(scope, cls, layer, args, dims, concrete)
    macs = scope.value(macs_of(cls, numels, [S.expr_of(v) for v in outcome.shape]))
    params = sum(scope.value(n) for n in numels.values())
    tensors = math.prod(hint_shape) + math.prod(want)
    work = params + tensors + macs * hint_shape[0]
    device = scope.session.concrete_device(
        work, params, max(math.prod(hint_shape), math.prod(want))
    )
    with device if device is not None else contextlib.nullcontext():
        if device is not None:  # for real: zeros, never uninitialised memory (denormals)
            concrete = construct_concrete(scope, cls, layer, args.bound, hint_shape)
            with torch.no_grad():
                for t in concrete.parameters():
                    t.zero_()
        try:
            y_hint = concrete(torch.zeros(hint_shape) if device else torch.empty(hint_shape))
        except Exception as e:
            raise layer_failure(layer, cls, dims, e) from e
    if not isinstance(y_hint, torch.Tensor):
        raise not_one_tensor(cls, y_hint, layer)
    confirm_shape(want, y_hint.shape, cls.__name__, layer.loc)
    return concrete, outcome.shape, numels


def _rule_params(
    scope: Scope,
    cls: type[nn.Module],
    layer: LayerSpec,
    args: Arguments,
    dims: Sequence[DimInfo],
    concrete: nn.Module,
) -> dict[str, sympy.Expr]:
    """Each parameter's element count, from seqgen's formula (checked against the layer torch
    built at the defaults); torch builds a layer without a formula on symbolic sizes."""
    if not any(True for _ in concrete.parameters()):
        return {}
    shapes = rules.param_shapes(cls, args.values, scope.symbolic_sizes(dims))
    if shapes is None:
        scope.session.require_shape_env(f"seqgen has no parameter formula for {cls.__name__}")
        return _numels(construct(scope, cls, layer, args))
    want = [(n, tuple(scope.value(S.expr_of(v)) for v in shape)) for n, shape in shapes.items()]
    got = [(n, tuple(int(v) for v in p.shape)) for n, p in concrete.named_parameters()]
    if want != got:
        raise InternalError(
            f"internal error: seqgen's parameter shapes for {cls.__name__} are {want}, "
            f"torch's {got}",
            location=layer.loc,
        )
    return {n: sympy.Mul(*(S.expr_of(v) for v in shape)) for n, shape in shapes.items()}


def _numels(module: nn.Module) -> dict[str, sympy.Expr]:
    """Each parameter's element count, read from a layer built on symbolic sizes."""
    return {n: S.expr_of(p.numel()) for n, p in module.named_parameters()}


def _refuse_inplace_after_output_saver(
    scope: Scope, cls: type[nn.Module], layer: LayerSpec, args: Arguments
) -> None:
    """`relu` then `relu inplace=True`: the first one's backward needs the output that the
    second overwrites, so training fails ("modified by an inplace operation")."""
    inplace = (
        bool(scope.concrete.eval(args.bound.args["inplace"]))
        if "inplace" in args.bound.args
        else False
    )
    if inplace and scope.shared_input:
        raise TraceError(
            f"{cls.__name__} with inplace=True here overwrites the input that the merge's "
            "other branches (or its residual sum, or another head) read as well",
            location=args.bound.args["inplace"].loc,
            hint="drop inplace=True here; in place is safe after a layer that makes a new tensor",
        )
    previous, scope.previous = scope.previous, (cls.__name__, inplace)
    if not inplace or previous is None:
        return
    name, was_inplace = previous
    if name in _SAVES_OUTPUT or (was_inplace and name in _SAVES_OUTPUT_INPLACE):
        raise TraceError(
            f"{cls.__name__} with inplace=True right after {name} breaks training: {name}'s "
            "backward needs its output, which this layer overwrites",
            location=args.bound.args["inplace"].loc,
            hint="drop inplace=True here",
        )


def _refuse_non_int_shape_args(
    scope: Scope, cls: type[nn.Module], layer: LayerSpec, bound: Bound
) -> dict[str, sympy.Symbol]:
    """A float, bool or str parameter cannot stand for an argument that decides sizes or
    parameter counts: seqgen's expressions would hold at its default only. The exception, by
    argument name: a bool model parameter as an argument that decides counts only
    (`bias=use_bias`), whose count is written for both values."""
    flags: dict[str, sympy.Symbol] = {}
    for pname, node in bound.args.items():
        if pname not in rules.SHAPE_ARGS:
            continue
        flag = flag_of(scope, node.id) if isinstance(node, Name) else None
        if pname in rules.COUNT_FLAGS | rules.SIZE_FLAGS and flag is not None:
            flags[pname] = flag
            continue
        if stands_for_scale(scope, pname, node):  # `scale_factor=sf`: `int(h * sf)`
            continue
        for ref in expr_names(node):
            param = scope.params.get(ref.id)
            if param is not None and param.type_name != "int":
                shown = scope.concrete.eval(ref)
                raise TraceError(
                    f"{cls.__name__}'s {pname} decides sizes or parameter counts, so it "
                    "cannot be the "
                    f"{param.type_name} parameter {ref.id!r}: seqgen's sizes would only hold "
                    f"for {ref.id}={shown!r}",
                    location=ref.loc,
                    hint=f"write the value itself ({pname}={shown!r})",
                )
    return flags


def _out_dims(
    scope: Scope,
    module: nn.Module,
    shape: Sequence[Any],
    dims: Sequence[DimInfo],
    layer: LayerSpec,
) -> list[DimInfo]:
    exprs = [S.simplify(scope.session, S.expr_of(s)) for s in shape]
    if isinstance(module, nn.Flatten) and len(exprs) < len(dims):
        start = module.start_dim % len(dims)
        end = module.end_dim % len(dims)
        merged = [d for d in dims[start : end + 1] if not (d.expr.is_number and int(d.expr) == 1)]
        # one factor stays as written: `(c + 8)` alone would be a redundant parenthesis (UP034)
        product = (
            merged[0].code if len(merged) == 1 else " * ".join(_factor(d.code) for d in merged)
        ) or "1"
        scope.check_printed(exprs[start], product, layer.loc)  # hand-built: check it too
        return list(dims[:start]) + [DimInfo(exprs[start], product)] + list(dims[end + 1 :])
    out = []
    for i, e in enumerate(exprs):
        if len(exprs) == len(dims) and e == dims[i].expr:  # unchanged: keep how it was written
            out.append(dims[i])
        else:
            out.append(DimInfo(e, scope.code(e, layer.loc)))
    return out


def _factor(code: str) -> str:
    """A dim's code as a factor of a product: `seq_len - 2` needs parentheses, `2 * w` and
    `2 * (h - 1)` do not (an operator inside parentheses does not count)."""
    top_level = code
    while (outer := re.sub(r"\([^()]*\)", "", top_level)) != top_level:
        top_level = outer  # drop the innermost parentheses until none are left
    return f"({code})" if re.search(r" (\+|-|//|%) ", top_level) else code
