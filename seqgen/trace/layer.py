"""Tracing one torch.nn layer (trace stage): its arguments, output and counts.

A layer whose output size depends on its arguments gets seqgen's exact formula (rules.py), and
torch runs it at the defaults; any other layer runs on fake tensors with symbolic sizes. Either
way the layer's conditions join its scope's, and its parameter count is an expression.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy
import torch
from torch import nn

from seqgen.check.realize import confirm_on_cpu
from seqgen.errors import TraceError
from seqgen.ir import LayerSpec, TracedLayer, TupleExpr, expr_names
from seqgen.lang.values import expr_source
from seqgen.layers import sequence_ops as seqlayers
from seqgen.layers import torch_rules as rules
from seqgen.layers.arg_types import check_arguments
from seqgen.layers.formulas import NeedsLiteral, RankError, RuleError
from seqgen.layers.torch_nn import INFERRED, Bound, resolve_layer
from seqgen.trace import symbolic as S
from seqgen.trace.constraints import Condition, holds
from seqgen.trace.scope import DimInfo, Scope, Step, symint
from seqgen.trace.torch_errors import layer_failure, not_one_tensor, rank_error, rejected

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


class LayerTracer(Scope):
    """A scope that traces torch.nn layers (Tracer adds merges, blocks and the model)."""

    def layer(
        self, index: int, layer: LayerSpec, x: torch.Tensor, dims: list[DimInfo]
    ) -> tuple[torch.Tensor, list[DimInfo], Step]:
        """Trace one layer: its output, its conditions, and how the generated code builds it."""
        if (own := seqlayers.trace_hook(self, index, layer, x, dims)) is not None:
            y, out_dims, traced, counts = own  # seqgen's own layers, and weight_norm=
            return y, out_dims, Step(traced, *counts)
        cls = resolve_layer(layer)
        before = self.session.specialized()
        args = self.arguments(cls, layer, x, dims)
        self.refuse_inplace_after_output_saver(cls, layer, args)
        self.refuse_non_int_shape_args(cls, layer, args.bound)
        if rules.has_rule(cls):
            module, y = self.apply_rule(index, cls, layer, args, dims)
        else:
            module = self.construct(cls, layer, args)
            try:
                y = module(x)
            except Exception as e:  # torch's own error, rewritten into words about the spec
                raise layer_failure(layer, cls, dims, e) from e
            if not isinstance(y, torch.Tensor):
                raise not_one_tensor(cls, y, layer)
        self._check_specialized(before, layer)
        out_dims = self.out_dims(module, x, y, dims, layer)
        self.check_sizes(
            out_dims, index, f"{cls.__name__} (spec line {layer.loc.line})", layer.loc, dims
        )
        with S.real_tensors():
            confirm_on_cpu(
                cls,
                args.bound,
                self.concrete,
                tuple(self.value(d.expr) for d in dims),
                tuple(self.value(d.expr) for d in out_dims),
                layer,
            )
        n_params = sympy.Integer(0)
        n_train = sympy.Integer(0)
        for p in module.parameters():
            n = S.expr_of(p.numel())
            n_params += n
            if p.requires_grad:
                n_train += n
        macs = _macs(module, y)
        traced = TracedLayer(
            index=index,
            spec=layer,
            class_name=cls.__name__,
            call_args=tuple(args.call_args),
            call_kwargs=tuple(args.call_kwargs),
            out_shape=tuple(self.dim(d) for d in out_dims),
            params=self.as_dim(n_params),
            trainable_params=self.as_dim(n_train),
            macs=self.as_dim(macs),
        )
        return y, out_dims, Step(traced, n_params, n_train, macs)

    def apply_rule(
        self,
        index: int,
        cls: type[nn.Module],
        layer: LayerSpec,
        args: _Arguments,
        dims: Sequence[DimInfo],
    ) -> tuple[nn.Module, torch.Tensor]:
        """Output size from seqgen's own formula; torch checks the layer at the defaults."""
        shape = self.symbolic_sizes(dims)
        try:
            outcome = rules.apply(cls, args.values, shape)
        except RankError as e:
            raise rank_error(layer, cls, dims, e.rank) from e
        except RuleError as e:
            # torch's constructor may refuse first: its refusal, in the spec's words, names
            # the values that would work
            self.construct_concrete(cls, layer, args.bound, tuple(self.value(d.expr) for d in dims))
            raise TraceError(f"{cls.__name__}: {e}", location=layer.loc) from e
        except NeedsLiteral as e:
            node = args.bound.args.get(e.arg)
            raise TraceError(
                f"{cls.__name__}'s {e.arg} must be a literal number here: {e.why}",
                location=node.loc if node is not None else layer.loc,
            ) from e
        where = f"{cls.__name__} (spec line {layer.loc.line})"
        hint_shape = tuple(self.value(d.expr) for d in dims)
        for check in outcome.checks:
            if S.free_symbols(check.condition) & {self.batch_sym}:
                raise TraceError(
                    f"{cls.__name__}: {check.message(self.show)} depends on the batch size",
                    location=layer.loc,
                )
            if not holds(check.condition, self.hints):
                self.construct_concrete(cls, layer, args.bound, hint_shape)  # as above
                raise TraceError(
                    f"{cls.__name__}: {check.message(lambda e: str(self.value(e)))}",
                    location=layer.loc,
                    hint="with the defaults" if S.free_symbols(check.condition) else None,
                )
            if self.implied_by_sizes(check.condition):
                continue
            self.conditions.append(
                Condition(check.condition, index, f"{where}: {check.message(self.show)}")
            )
        # torch itself runs the layer at the defaults (fake tensors: nothing is allocated)
        want = tuple(self.value(S.expr_of(v)) for v in outcome.shape)
        concrete = self.construct_concrete(cls, layer, args.bound, hint_shape)
        try:
            y_hint = concrete(torch.empty(hint_shape))
        except Exception as e:
            raise layer_failure(layer, cls, dims, e) from e
        if not isinstance(y_hint, torch.Tensor):
            raise not_one_tensor(cls, y_hint, layer)
        if tuple(int(s) for s in y_hint.shape) != want:
            raise TraceError(
                f"internal error: seqgen computes {want} for {cls.__name__} but torch "
                f"gives {tuple(y_hint.shape)}",
                location=layer.loc,
                hint="please report this as a seqgen bug",
            )
        module = (
            self.construct(cls, layer, args)
            if any(True for _ in concrete.parameters())
            else concrete
        )
        return module, torch.empty(list(outcome.shape))

    def refuse_inplace_after_output_saver(
        self, cls: type[nn.Module], layer: LayerSpec, args: _Arguments
    ) -> None:
        """`relu` then `relu inplace=True`: the first one's backward needs the output that the
        second overwrites, so training fails ("modified by an inplace operation")."""
        inplace = (
            bool(self.concrete.eval(args.bound.args["inplace"]))
            if "inplace" in args.bound.args
            else False
        )
        if inplace and self.shared_input:
            raise TraceError(
                f"{cls.__name__} with inplace=True here overwrites the input that the merge's "
                "other branches (or its residual sum) read as well",
                location=args.bound.args["inplace"].loc,
                hint="drop inplace=True here; in place is safe after a layer that makes a new "
                "tensor",
            )
        previous, self.previous = self.previous, (cls.__name__, inplace)
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

    def refuse_non_int_shape_args(
        self, cls: type[nn.Module], layer: LayerSpec, bound: Bound
    ) -> None:
        """A float, bool or str parameter cannot stand for an argument that decides sizes or
        parameter counts (`bias=use_bias`): seqgen's expressions would hold at its default only."""
        for pname, node in bound.args.items():
            if pname not in rules.SHAPE_ARGS:
                continue
            for ref in expr_names(node):
                param = self.params.get(ref.id)
                if param is not None and param.type_name != "int":
                    shown = self.concrete.eval(ref)
                    raise TraceError(
                        f"{cls.__name__}'s {pname} decides sizes or parameter counts, so it "
                        "cannot be the "
                        f"{param.type_name} parameter {ref.id!r}: seqgen's sizes would only hold "
                        f"for {ref.id}={shown!r}",
                        location=ref.loc,
                        hint=f"write the value itself ({pname}={shown!r})",
                    )

    def construct_concrete(
        self, cls: type[nn.Module], layer: LayerSpec, bound: Bound, in_shape: tuple[int, ...]
    ) -> nn.Module:
        """The layer at the default values, for torch to check (inside the fake mode)."""
        kwargs: dict[str, Any] = {k: self.concrete.eval(e) for k, e in bound.args.items()}
        kwargs.update({k: self.concrete.eval(e) for k, e in bound.extra_kwargs.items()})
        for pname in bound.sig.inferred:
            if pname not in kwargs:
                size = in_shape[INFERRED[pname]]
                kwargs[pname] = (size,) if pname == "normalized_shape" else size
        try:
            module = S.construct(
                cls, tuple(self.concrete.eval(e) for e in bound.extra_args), kwargs
            )
        except Exception as e:
            raise rejected(cls, layer, e, kwargs) from e
        module.eval()
        return module

    def arguments(
        self, cls: type[nn.Module], layer: LayerSpec, x: torch.Tensor, dims: Sequence[DimInfo]
    ) -> _Arguments:
        """The layer's arguments: symbolic values by name, and as source for the generated call."""
        bound = check_arguments(cls, layer, self.concrete, tuple(self.value(d.expr) for d in dims))
        sig = bound.sig
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for pname in sig.inferred:
            if pname == "normalized_shape" and pname in bound.args:
                continue  # LayerNorm's shape is inferred only when not given
            pos = INFERRED[pname]
            if x.dim() < 2:
                raise rank_error(layer, cls, dims, 2)
            info = dims[pos]
            if info.expr == self.batch_sym:
                raise rank_error(layer, cls, dims, 2)
            values[pname] = symint(self, info)
            sources[pname] = info.code
            given = bound.args.get(pname)
            if given is not None:
                got = (
                    S.expr_of(self.values.eval(given)) if not isinstance(given, TupleExpr) else None
                )
                if got is None or self.value(got) != self.value(info.expr):
                    shown = self.value(got) if got is not None else expr_source(given)
                    raise TraceError(
                        f"{pname}={expr_source(given)} disagrees with the traced input: "
                        f"{layer.name} receives {self.value(info.expr)} ({info.code}), "
                        f"the spec says {shown}",
                        location=given.loc,
                        hint=f"remove {pname}=...; seqgen infers it",
                    )
                sources[pname] = expr_source(given)
        for pname, node in bound.args.items():
            if pname in values:
                continue
            values[pname] = self.values.eval(node)
            sources[pname] = expr_source(node)
        # Positional in the generated call: inferred sizes plus what the user gave by position,
        # as long as they run contiguously from the constructor's first parameter.
        given_pos = set(sig.positional[: len(layer.args)])
        out = _Arguments(bound, values)
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
            out.pos_values.append(self.values.eval(e))
        for k, e in bound.extra_kwargs.items():
            out.call_kwargs.append((k, expr_source(e)))
            out.kw_values[k] = self.values.eval(e)
        return out

    def construct(self, cls: type[nn.Module], layer: LayerSpec, args: _Arguments) -> nn.Module:
        """The layer with symbolic arguments, on fake tensors (its parameter counts are exprs)."""
        try:
            module = S.construct(cls, tuple(args.pos_values), args.kw_values)
        except TraceError:
            raise
        except Exception as e:
            sample = {
                k: self.value(S.expr_of(v)) if isinstance(v, torch.SymInt) else v
                for k, v in args.values.items()
            }
            raise rejected(cls, layer, e, sample) from e
        module.eval()  # shape checks at any batch size (BatchNorm refuses batch 1 in training)
        return module

    def out_dims(
        self,
        module: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        dims: Sequence[DimInfo],
        layer: LayerSpec,
    ) -> list[DimInfo]:
        exprs = [S.simplify(self.session, S.expr_of(s)) for s in y.shape]
        if isinstance(module, nn.Flatten) and y.dim() < x.dim():
            start = module.start_dim % x.dim()
            end = module.end_dim % x.dim()
            merged = [
                d for d in dims[start : end + 1] if not (d.expr.is_number and int(d.expr) == 1)
            ]
            product = " * ".join(_factor(d.code) for d in merged) or "1"
            self.check_printed(exprs[start], product, layer.loc)  # hand-built: check it too
            return list(dims[:start]) + [DimInfo(exprs[start], product)] + list(dims[end + 1 :])
        out = []
        for i, e in enumerate(exprs):
            if y.dim() == x.dim() and e == dims[i].expr:  # unchanged: keep how it was written
                out.append(dims[i])
            else:
                out.append(DimInfo(e, self.code(e, layer.loc)))
        return out


@dataclass
class _Arguments:
    """A layer's arguments: bound spec nodes, symbolic values, and the generated call."""

    bound: Bound
    values: dict[str, Any]
    call_args: list[str] = field(default_factory=list)
    call_kwargs: list[tuple[str, str]] = field(default_factory=list)
    pos_values: list[Any] = field(default_factory=list)
    kw_values: dict[str, Any] = field(default_factory=dict)


def _factor(code: str) -> str:
    """A dim's code as a factor of a product: `seq_len - 2` needs parentheses, `2 * w` does not."""
    return f"({code})" if re.search(r" (\+|-|//|%) ", code) else code


def _macs(module: nn.Module, y: torch.Tensor) -> sympy.Expr:
    """Multiply-accumulates for one sample, counted as torchinfo counts them."""
    total = sympy.Integer(0)
    conv = "Conv" in type(module).__name__
    out = [S.expr_of(s) for s in y.shape]
    for name, p in module.named_parameters(recurse=False):
        if name not in ("weight", "bias"):
            continue
        n = S.expr_of(p.numel())
        if conv:
            spatial = sympy.Integer(1)
            for s in out[2:]:
                spatial *= s
            total += n * spatial
        else:
            total += n
    return total
