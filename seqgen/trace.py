"""Stage 2: ModelSpec -> TracedModel, by running the layers on fake tensors with symbolic sizes.

torch is imported here and in _symbolic.py only. Parameters of type int and named input dims
become symbols, so every inferred size is an expression over them; no weight or activation is
ever allocated (FakeTensorMode), and weight initialisers are skipped.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy
import torch
from torch import nn

from . import _symbolic as S
from .errors import Diagnostic, Location, TraceError
from .exprs import expr_source
from .spec import (
    BinOp,
    Const,
    Constraint,
    Dim,
    Expr,
    Keyword,
    LayerSpec,
    ModelSpec,
    Name,
    Neg,
    Num,
    Str,
    TracedLayer,
    TracedModel,
    TupleExpr,
)

BATCH = "N"
BATCH_HINT = 2  # a sample batch of 2 keeps the batch dim symbolic (1 would broadcast)

# Size parameters seqgen infers from the incoming tensor: name -> which dim of it.
INFERRED: dict[str, int] = {
    "in_features": -1,
    "in_channels": 1,
    "num_features": 1,
    "num_channels": 1,
    "normalized_shape": -1,
}
# Classes that cannot sit in nn.Sequential: why, and what to do instead.
REFUSED: dict[str, str] = {
    "RNN": "returns a tuple (output, h_n), which cannot flow through nn.Sequential",
    "LSTM": "returns a tuple (output, (h_n, c_n)), which cannot flow through nn.Sequential",
    "GRU": "returns a tuple (output, h_n), which cannot flow through nn.Sequential",
    "LSTMCell": "returns a tuple (h, c), which cannot flow through nn.Sequential",
    "RNNBase": "is a base class; its subclasses return tuples",
    "RNNCellBase": "is a base class",
    "MultiheadAttention": "takes query, key and value and returns a tuple (output, weights)",
    "Transformer": "takes two tensors (src, tgt)",
    "TransformerEncoder": "needs a layer module as its argument",
    "TransformerDecoder": "takes two tensors (tgt, memory)",
    "TransformerEncoderLayer": "is not supported by seqgen yet (attention over a symbolic length)",
    "TransformerDecoderLayer": "takes two tensors (tgt, memory)",
    "Bilinear": "takes two tensors",
    "CosineSimilarity": "takes two tensors",
    "PairwiseDistance": "takes two tensors",
    "MaxUnpool1d": "needs the indices of a MaxPool1d as a second input",
    "MaxUnpool2d": "needs the indices of a MaxPool2d as a second input",
    "MaxUnpool3d": "needs the indices of a MaxPool3d as a second input",
    "AdaptiveLogSoftmaxWithLoss": "takes inputs and targets and returns a named tuple",
    "Embedding": "expects integer indices, and seqgen's sample input is a float tensor",
    "EmbeddingBag": "expects integer indices, and seqgen's sample input is a float tensor",
    "Module": "is the base class of all layers",
    "Container": "is a container",
    "Sequential": "is a container: list its layers directly",
    "ModuleList": "is a container",
    "ModuleDict": "is a container",
    "ParameterList": "is a container",
    "ParameterDict": "is a container",
    "DataParallel": "wraps a module",
    "SyncBatchNorm": "needs a distributed process group; use batchnorm1d/2d/3d",
}
NOT_ARGS = frozenset({"device", "dtype"})


def _layer_registry() -> dict[str, type[nn.Module]]:
    reg = {}
    for name in dir(nn):
        obj = getattr(nn, name)
        if isinstance(obj, type) and issubclass(obj, nn.Module) and not name.startswith("_"):
            reg[name.lower()] = obj
    return reg


_REGISTRY = _layer_registry()


def layer_names() -> list[str]:
    """Every torch.nn class name a spec may use."""
    return sorted(c.__name__ for c in _REGISTRY.values() if c.__name__ not in REFUSED)


def resolve_layer(layer: LayerSpec) -> type[nn.Module]:
    """The torch.nn.Module subclass a layer line names (case-insensitive)."""
    cls = _REGISTRY.get(layer.name.lower())
    if cls is None:
        close = difflib.get_close_matches(layer.name.lower(), list(_REGISTRY), n=3, cutoff=0.6)
        hint = (f"did you mean {' or '.join(repr(_REGISTRY[c].__name__.lower()) for c in close)}?"
                if close else "layer names are torch.nn class names, e.g. conv2d, relu, linear")
        raise TraceError(f"unknown layer {layer.name!r}", location=layer.loc, hint=hint)
    name = cls.__name__
    if name in REFUSED:
        raise TraceError(f"{name} {REFUSED[name]}", location=layer.loc,
                         hint="seqgen builds nn.Sequential stacks of one-tensor-in, "
                              "one-tensor-out layers")
    if name.endswith("Loss") or name == "NLLLoss2d":
        raise TraceError(f"{name} is a loss function: it takes predictions and targets",
                         location=layer.loc, hint="apply the loss in your training loop")
    if name.startswith("Lazy"):
        plain = name[4:].lower()
        raise TraceError(f"{name} infers its size at the first call; seqgen infers it for you",
                         location=layer.loc, hint=f"use `{plain}` without its input size")
    return cls


# ------------------------------------------------------------------------------- values


@dataclass
class _Values:
    """How spec values evaluate during the trace: parameters are symbols or plain defaults."""

    env: dict[str, Any]

    def eval(self, e: Expr) -> Any:
        if isinstance(e, (Num, Str, Const)):
            return e.value
        if isinstance(e, Name):
            return self.env[e.id]
        if isinstance(e, Neg):
            return -self._number(e.operand)
        if isinstance(e, TupleExpr):
            return tuple(self.eval(i) for i in e.items)
        if isinstance(e, BinOp):
            left, right = self._number(e.left), self._number(e.right)
            if e.op == "+":
                return left + right
            if e.op == "-":
                return left - right
            if e.op == "*":
                return left * right
            if right == 0:
                raise TraceError("division by zero", location=e.loc)
            return left // right
        raise TypeError(e)

    def _number(self, e: Expr) -> Any:
        v = self.eval(e)
        if isinstance(v, bool) or not isinstance(v, (int, float, torch.SymInt)):
            raise TraceError(f"arithmetic needs numbers, got {v!r}", location=e.loc)
        return v


# ------------------------------------------------------------------------------- binding


@dataclass(frozen=True)
class _Signature:
    positional: tuple[str, ...]  # constructor parameters a positional spec arg may fill, in order
    inferred: tuple[str, ...]  # size parameters seqgen fills, in constructor order
    order: tuple[str, ...]  # all named parameters in constructor order
    required: tuple[str, ...]
    var_args: bool
    var_kwargs: bool


def _signature(cls: type[nn.Module]) -> _Signature:
    init = cls.__init__
    if init is nn.Module.__init__:
        return _Signature((), (), (), (), False, False)
    params = list(inspect.signature(init).parameters.values())[1:]
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.name not in NOT_ARGS]
    inferred = tuple(p.name for p in named if p.name in INFERRED)
    positional = tuple(p.name for p in named if p.kind == p.POSITIONAL_OR_KEYWORD
                       and p.name not in INFERRED)
    required = tuple(p.name for p in named if p.default is p.empty and p.name not in INFERRED)
    return _Signature(positional, inferred, tuple(p.name for p in named), required,
                      any(p.kind == p.VAR_POSITIONAL for p in params),
                      any(p.kind == p.VAR_KEYWORD for p in params))


@dataclass(frozen=True)
class _Bound:
    """A layer's arguments by constructor parameter: the spec node (None when inferred)."""

    args: dict[str, Expr]  # parameter name -> spec value
    extra_args: tuple[Expr, ...]  # beyond the named parameters (*args)
    extra_kwargs: dict[str, Expr]  # beyond the named parameters (**kwargs)
    sig: _Signature


def _bind(cls: type[nn.Module], layer: LayerSpec) -> _Bound:
    sig = _signature(cls)
    name = cls.__name__.lower()
    args: dict[str, Expr] = {}
    extra: list[Expr] = []
    for i, value in enumerate(layer.args):
        if i < len(sig.positional):
            args[sig.positional[i]] = value
        elif sig.var_args:
            extra.append(value)
        else:
            want = ", ".join(sig.positional) or "no positional arguments"
            raise TraceError(
                f"{name} takes {len(sig.positional)} positional argument(s) after the inferred "
                f"size, got {len(layer.args)}", location=value.loc,
                hint=f"{name} takes: {want}" + (f" (seqgen infers {', '.join(sig.inferred)})"
                                               if sig.inferred else ""))
    extra_kwargs: dict[str, Expr] = {}
    for kw in layer.kwargs:
        if kw.written in sig.order and kw.written != kw.name:
            # an alias (`p` = padding) never hides the class's own parameter (Dropout's `p`)
            kw = Keyword(kw.written, kw.value, kw.loc, kw.written)
        if kw.name in NOT_ARGS:
            raise TraceError(f"{kw.name!r} cannot be set in a spec", location=kw.loc,
                             hint="seqgen chooses device and dtype; use --device to check a device")
        if kw.name in sig.order:
            if kw.name in args:
                raise TraceError(f"{name} got {kw.name!r} both by position and by keyword",
                                 location=kw.loc)
            args[kw.name] = kw.value
        elif sig.var_kwargs:
            from .dsl import check_identifier

            check_identifier(kw.name, "argument name", kw.loc)
            extra_kwargs[kw.name] = kw.value
        else:
            choices = list(sig.order)
            close = difflib.get_close_matches(kw.name, choices, n=1, cutoff=0.6)
            hint = (f"did you mean {close[0]!r}?" if close else
                    f"{name} takes: {', '.join(choices)}" if choices else f"{name} takes no arguments")
            raise TraceError(f"{name} has no argument {kw.written!r}", location=kw.loc, hint=hint)
    missing = [p for p in sig.required if p not in args]
    if missing:
        raise TraceError(f"{name} needs {', '.join(repr(m) for m in missing)}", location=layer.loc,
                         hint=f"write `{layer.name} {' '.join(m.upper() for m in missing)}`")
    return _Bound(args, tuple(extra), extra_kwargs, sig)


# ------------------------------------------------------------------------------- tracing


@dataclass
class _DimInfo:
    expr: sympy.Expr
    code: str  # how it reads in generated code (a flatten's product stays a product)


class _Tracer:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.session = S.Session()
        self.names = self.session.names
        self.hints: dict[sympy.Symbol, int] = {}
        env: dict[str, Any] = {}
        for p in spec.params:
            if type(p.default) is int:
                sym = self.session.symbol(p.name, p.default)
                env[p.name] = sym
                self.hints[S.expr_of(sym)] = p.default
            else:
                env[p.name] = p.default
        self.values = _Values(env)
        batch = self.session.symbol(BATCH, BATCH_HINT)
        self.batch_sym = S.expr_of(batch)
        self.hints[self.batch_sym] = BATCH_HINT
        self.batch = batch
        self.warnings: list[Diagnostic] = []

    def code(self, expr: sympy.Expr, loc: Location | None) -> str:
        try:
            return S.to_python(S.simplify(self.session, expr), self.names)
        except S.Unprintable as e:
            raise TraceError(f"cannot write the size {expr} as Python arithmetic ({e})",
                             location=loc) from e

    def value(self, expr: sympy.Expr) -> int:
        return S.evaluate(S.simplify(self.session, expr), self.hints)

    def dim(self, info: _DimInfo) -> Dim:
        return self.as_dim(info.expr, info.code)

    def as_dim(self, expr: sympy.Expr, code: str | None = None) -> Dim:
        expr = S.simplify(self.session, expr)
        return Dim(code if code is not None else self.code(expr, None), self.value(expr),
                   bool(S.free_symbols(expr)))

    def input_dims(self) -> list[_DimInfo]:
        dims = [_DimInfo(self.batch_sym, BATCH)]
        for e in self.spec.input_shape:
            v = self.values.eval(e)
            if isinstance(v, bool) or not isinstance(v, (int, torch.SymInt)):
                raise TraceError(f"input sizes must be whole numbers, got {v!r}", location=e.loc)
            expr = S.expr_of(v)
            if self.value(expr) < 1:
                raise TraceError(f"input size must be positive, got {self.value(expr)}", location=e.loc)
            dims.append(_DimInfo(expr, self.code(expr, e.loc)))
        return dims

    def run(self) -> TracedModel:
        spec = self.spec
        dims = self.input_dims()
        input_shape_dims = dims[1:]
        input_shape = tuple(self.dim(d) for d in dims)
        traced: list[TracedLayer] = []
        # every size that depends on a parameter must stay >= 1: the input's (layer -1) too
        constraints_raw: list[tuple[sympy.Expr, int]] = [
            (d.expr, -1) for d in dims[1:] if S.free_symbols(d.expr)]
        with self.session.active():
            x = torch.empty(self._sizes(dims))
            total = sympy.Integer(0)
            trainable = sympy.Integer(0)
            for index, layer in enumerate(spec.layers):
                cls = resolve_layer(layer)
                before = self.session.specialized()
                module, call_args, call_kwargs = self.build(cls, layer, x, dims)
                try:
                    y = module(x)
                except Exception as e:  # torch's own error, rewritten into words about the spec
                    raise _layer_failure(layer, cls, dims, e) from e
                if not isinstance(y, torch.Tensor):
                    raise TraceError(f"{cls.__name__} returned {type(y).__name__}, not one tensor",
                                     location=layer.loc,
                                     hint="nn.Sequential passes exactly one tensor between layers")
                self._check_specialized(before, layer)
                out_dims = self.out_dims(module, x, y, dims, layer)
                n_params = sympy.Integer(0)
                n_train = sympy.Integer(0)
                for p in module.parameters():
                    n = S.expr_of(p.numel())
                    n_params += n
                    if p.requires_grad:
                        n_train += n
                total += n_params
                trainable += n_train
                macs = _macs(module, y)
                traced.append(TracedLayer(
                    index=index, spec=layer, class_name=cls.__name__,
                    call_args=tuple(call_args), call_kwargs=tuple(call_kwargs),
                    out_shape=tuple(self.dim(d) for d in out_dims),
                    params=self.as_dim(n_params),
                    trainable_params=self.as_dim(n_train),
                    macs=self.as_dim(macs),
                ))
                for d in out_dims:
                    if S.free_symbols(d.expr) - {self.batch_sym}:
                        constraints_raw.append((d.expr, index))
                x, dims = y, out_dims
        return TracedModel(
            spec=spec,
            input_shape=input_shape,
            layers=tuple(traced),
            total_params=self.as_dim(total),
            trainable_params=self.as_dim(trainable),
            constraints=tuple(self.constraints(constraints_raw, traced)),
            dim_params=tuple(sorted({self.names[s] for d in input_shape_dims
                                     for s in S.free_symbols(d.expr) if s in self.names})),
            warnings=tuple(self.warnings),
        )

    def _sizes(self, dims: Sequence[_DimInfo]) -> list[Any]:
        return [_symint(self, d) for d in dims]

    def _check_specialized(self, before: Mapping[str, str], layer: LayerSpec) -> None:
        after = self.session.specialized()
        for name, became in after.items():
            if name not in before and name != BATCH:
                raise TraceError(
                    f"torch's kernel for {layer.name} needs a fixed value of {name!r} "
                    f"(it assumed {name} == {became})", location=layer.loc,
                    hint=f"a sample value of 0 or 1 looks like broadcasting to torch: give {name} "
                         "a default of 2 or more, or write this size as a literal")

    def build(self, cls: type[nn.Module], layer: LayerSpec, x: torch.Tensor,
              dims: Sequence[_DimInfo]) -> tuple[nn.Module, list[str], list[tuple[str, str]]]:
        """Construct the layer on fake tensors; return it with its call arguments as source."""
        bound = _bind(cls, layer)
        sig = bound.sig
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for pname in sig.inferred:
            if pname == "normalized_shape" and pname in bound.args:
                continue  # LayerNorm's shape is inferred only when not given
            pos = INFERRED[pname]
            if x.dim() < 2:
                raise _rank_error(layer, cls, dims, 2)
            info = dims[pos]
            if info.expr == self.batch_sym:
                raise _rank_error(layer, cls, dims, 2)
            values[pname] = _symint(self, info)
            sources[pname] = info.code
            given = bound.args.get(pname)
            if given is not None:
                got = S.expr_of(self.values.eval(given)) if not isinstance(given, TupleExpr) else None
                if got is None or self.value(got) != self.value(info.expr):
                    shown = self.value(got) if got is not None else expr_source(given)
                    raise TraceError(
                        f"{pname}={expr_source(given)} disagrees with the traced input: "
                        f"{layer.name} receives {self.value(info.expr)} ({info.code}), "
                        f"the spec says {shown}", location=given.loc,
                        hint=f"remove {pname}=...; seqgen infers it")
                sources[pname] = expr_source(given)
        for pname, node in bound.args.items():
            if pname in values:
                continue
            values[pname] = self.values.eval(node)
            sources[pname] = expr_source(node)
        extra_values = [self.values.eval(e) for e in bound.extra_args]
        extra_kw_values = {k: self.values.eval(e) for k, e in bound.extra_kwargs.items()}
        # Positional in the generated call: inferred sizes plus what the user gave by position,
        # as long as they run contiguously from the constructor's first parameter.
        given_pos = set(sig.positional[: len(layer.args)])
        call_args: list[str] = []
        call_kwargs: list[tuple[str, str]] = []
        positional_run = True
        pos_values: list[Any] = []
        kw_values: dict[str, Any] = {}
        for pname in sig.order:
            if pname not in sources:
                positional_run = False
                continue
            if positional_run and (pname in sig.inferred or pname in given_pos):
                call_args.append(sources[pname])
                pos_values.append(values[pname])
            else:
                positional_run = False
                call_kwargs.append((pname, sources[pname]))
                kw_values[pname] = values[pname]
        if extra_values:
            call_args.extend(expr_source(e) for e in bound.extra_args)
            pos_values.extend(extra_values)
        for k, e in bound.extra_kwargs.items():
            call_kwargs.append((k, expr_source(e)))
            kw_values[k] = extra_kw_values[k]
        try:
            module = S.construct(cls, tuple(pos_values), kw_values)
        except TraceError:
            raise
        except Exception as e:
            raise TraceError(
                f"torch rejected the arguments of {cls.__name__}: {_first_line(e)}",
                location=layer.loc, hint=_value_hint(e)) from e
        module.eval()  # shape checks at any batch size (BatchNorm refuses batch 1 in training)
        return module, call_args, call_kwargs

    def out_dims(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 dims: Sequence[_DimInfo], layer: LayerSpec) -> list[_DimInfo]:
        exprs = [S.simplify(self.session, S.expr_of(s)) for s in y.shape]
        if isinstance(module, nn.Flatten) and y.dim() < x.dim():
            start = module.start_dim % x.dim()
            end = module.end_dim % x.dim()
            merged = dims[start:end + 1]
            product = " * ".join(_factor(d.code) for d in merged)
            return list(dims[:start]) + [_DimInfo(exprs[start], product)] + list(dims[end + 1:])
        out = []
        for i, e in enumerate(exprs):
            if y.dim() == x.dim() and e == dims[i].expr:  # unchanged: keep how it was written
                out.append(dims[i])
            else:
                out.append(_DimInfo(e, self.code(e, layer.loc)))
        return out

    def constraints(self, raw: list[tuple[sympy.Expr, int]],
                    layers: Sequence[TracedLayer]) -> list[Constraint]:
        """Every size that depends on a parameter must stay >= 1; find each parameter's minimum."""
        per_symbol: dict[sympy.Symbol, tuple[int, int]] = {}  # symbol -> (minimum, layer index)
        multi: list[Constraint] = []
        seen: set[tuple[str, int]] = set()
        for expr, index in raw:
            free = sorted(S.free_symbols(expr) - {self.batch_sym}, key=str)
            if len(free) == 1:
                sym = free[0]
                minimum = self._minimum(expr, sym)
                if sym not in per_symbol or minimum > per_symbol[sym][0]:
                    per_symbol[sym] = (minimum, index)
            else:
                code = self.code(expr, None)
                if (code, index) in seen:
                    continue
                seen.add((code, index))
                multi.append(Constraint(
                    condition=f"{code} >= 1", symbol=None, minimum=None, layer_index=index,
                    message=f"{code} must be at least 1: {_needs(layers, index)}"))
        out = []
        for sym in sorted(per_symbol, key=lambda s: self.names[s]):
            minimum, index = per_symbol[sym]
            name = self.names[sym]
            out.append(Constraint(
                condition=f"{name} >= {minimum}", symbol=name, minimum=minimum, layer_index=index,
                message=f"{name} must be at least {minimum}: {_needs(layers, index)}"))
        return out + multi

    def _minimum(self, expr: sympy.Expr, sym: sympy.Symbol) -> int:
        """Smallest value of `sym` >= 1 keeping `expr` >= 1 (sizes grow with their inputs)."""
        hint = self.hints[sym]
        values = dict(self.hints)

        def ok(v: int) -> bool:
            values[sym] = v
            return S.evaluate(expr, values) >= 1

        lo, hi = 1, hint
        if ok(lo):
            return 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
        return hi


def _needs(layers: Sequence[TracedLayer], index: int) -> str:
    if index < 0:
        return "the input would have an empty dimension"
    layer = layers[index]
    return f"{layer.class_name} (spec line {layer.line}) would output nothing"


def _factor(code: str) -> str:
    """A dim's code as a factor of a product: `seq_len - 2` needs parentheses, `2 * w` does not."""
    return f"({code})" if re.search(r" (\+|-|//|%) ", code) else code


def _symint(tracer: _Tracer, d: _DimInfo) -> Any:
    """The SymInt (or int) for a dim expression."""
    if d.expr.is_number:
        return int(d.expr)
    return tracer.session.env.create_symintnode(d.expr, hint=tracer.value(d.expr))


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


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _value_hint(e: BaseException) -> str | None:
    msg = str(e)
    if "negative" in msg or "non-positive" in msg or "must be positive" in msg:
        return "sizes must be positive whole numbers"
    return None


_RANK = {"1d": 3, "2d": 4, "3d": 5}


def expected_rank(cls: type[nn.Module]) -> int | None:
    """Rank (batch included) a `...1d/2d/3d` layer needs."""
    m = re.search(r"([123]d)$", cls.__name__, re.IGNORECASE)
    return _RANK[m.group(1).lower()] if m else None


def _shape_text(dims: Sequence[_DimInfo]) -> str:
    return "(" + ", ".join(str(int(d.expr)) if d.expr.is_number else d.code for d in dims) + ")"


def _rank_error(layer: LayerSpec, cls: type[nn.Module], dims: Sequence[_DimInfo], need: int) -> TraceError:
    rank = expected_rank(cls) or need
    hint = None
    if len(dims) > rank and cls is nn.Linear:
        hint = "add `flatten` before it"
    elif len(dims) < rank:
        hint = (f"{cls.__name__} works on (N, C, ...) tensors of rank {rank}; check `input` "
                "or an earlier flatten")
    return TraceError(
        f"{cls.__name__} needs an input of rank {rank} but gets rank {len(dims)} "
        f"{_shape_text(dims)}", location=layer.loc, hint=hint)


def _layer_failure(layer: LayerSpec, cls: type[nn.Module], dims: Sequence[_DimInfo],
                   e: BaseException) -> TraceError:
    rank = expected_rank(cls)
    msg = _first_line(e)
    # rank - 1 is an unbatched input, which torch accepts: blame the rank only when torch does
    if rank is not None and len(dims) != rank and (
            len(dims) != rank - 1 or ("Expected" in msg and "input" in msg)):
        return _rank_error(layer, cls, dims, rank)
    if any(t in msg for t in ("too small", "larger than", "greater than actual input size",
                              "non-positive")):
        return TraceError(
            f"{cls.__name__} gets input {_shape_text(dims)}, too small for it: "
            f"the output would be empty ({msg})", location=layer.loc,
            hint="use a larger `input`, a smaller kernel, or padding")
    return TraceError(f"{cls.__name__} cannot take input {_shape_text(dims)}: {msg}",
                      location=layer.loc)


def trace(spec: ModelSpec) -> TracedModel:
    """Trace a parsed spec symbolically on fake tensors."""
    return _Tracer(spec).run()


def verify_on_device(traced: TracedModel, device: str) -> None:
    """Build the model for real on `device`, run a random sample, and compare every shape.

    The default device is never changed: modules and the sample are placed explicitly.
    """
    try:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise TraceError("--device cuda: no CUDA device is available here",
                             hint="use --device cpu or meta")
    except RuntimeError as e:
        raise TraceError(f"unknown device {device!r}: {_first_line(e)}",
                         hint="use meta, cpu or cuda") from e
    spec = traced.spec
    values = _Values({p.name: p.default for p in spec.params})
    shape = [BATCH_HINT] + [int(values.eval(e)) for e in spec.input_shape]
    x = torch.randn(shape, device=dev)
    with torch.no_grad():
        for layer in traced.layers:
            cls = resolve_layer(layer.spec)
            bound = _bind(cls, layer.spec)
            kwargs = {k: values.eval(e) for k, e in bound.args.items()}
            kwargs.update({k: values.eval(e) for k, e in bound.extra_kwargs.items()})
            for pname in bound.sig.inferred:
                if pname not in kwargs:
                    kwargs[pname] = x.shape[INFERRED[pname]]
            extra = [values.eval(e) for e in bound.extra_args]
            try:
                module = cls(*extra, **kwargs)
                module = module.to(dev).eval()
                x = module(x)
            except Exception as e:
                raise TraceError(f"on {dev.type}, {layer.class_name} failed: {_first_line(e)}",
                                 location=layer.spec.loc) from e
            want = tuple(d.value for d in layer.out_shape)
            if tuple(x.shape) != want:
                raise TraceError(
                    f"on {dev.type}, {layer.class_name} gives {tuple(x.shape)}, "
                    f"the symbolic trace said {want}", location=layer.spec.loc,
                    hint="please report this as a seqgen bug")
