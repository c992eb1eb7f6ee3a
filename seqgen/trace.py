"""Stage 2: ModelSpec -> TracedModel, by running the layers on fake tensors with symbolic sizes.

torch is imported here and in _symbolic.py only. Parameters of type int and named input dims
become symbols, so every inferred size is an expression over them; no weight or activation is
ever allocated (FakeTensorMode), and weight initialisers are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sympy
import torch
from torch import nn

from . import _symbolic as S
from .confirm import confirm_on_cpu
from .errors import Diagnostic, Location, SeqgenError, SizeTooSmallError, TraceError
from .exprs import expr_source
from .hints import rejection
from .layers import (  # noqa: F401 - INFERRED and layer_names are part of this stage's API
    INFERRED,
    _Bound,
    _bind,
    _first_line,
    _value_hint,
    _Values,
    concrete_values,
    layer_names,
    resolve_layer,
)
from .preflight import check_layers, quiet_torch_warnings
from .spec import (
    Constraint,
    Dim,
    Expr,
    LayerSpec,
    ModelSpec,
    Name,
    Num,
    TracedLayer,
    TracedModel,
    TupleExpr,
)

BATCH = "N"
BATCH_HINT = 2  # a sample batch of 2 keeps the batch dim symbolic (1 would broadcast)
MAX_SIZE = 2**40  # larger sizes overflow torch's int64 element counts

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
        self.constants: set[str] = set()  # int parameters traced as their default
        for p in spec.params:
            if type(p.default) is int and abs(p.default) > MAX_SIZE:
                raise TraceError(f"{p.name}={p.default} is too large for a tensor size",
                                 location=p.loc, hint=f"sizes go up to {MAX_SIZE:,}")
            if type(p.default) is int and p.default < 2:
                # torch reads a size of 0 or 1 as broadcasting and fixes it, and a negative
                # value is no size: such a parameter is traced as the constant it defaults to.
                env[p.name] = p.default
                self.constants.add(p.name)
            elif type(p.default) is int:
                sym = self.session.symbol(p.name, p.default)
                env[p.name] = sym
                self.hints[S.expr_of(sym)] = p.default
            else:
                env[p.name] = p.default
        self.values = _Values(env)
        self.concrete = concrete_values(spec)
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
            size = self.value(expr)
            if size < 1:
                raise TraceError(f"input size must be positive, got {size}", location=e.loc)
            if size > MAX_SIZE:
                raise TraceError("input size is too large for a tensor", location=e.loc,
                                 hint=f"sizes go up to {MAX_SIZE:,}")
            dims.append(_DimInfo(expr, self.code(expr, e.loc)))
        return dims

    def run(self) -> TracedModel:
        spec = self.spec
        dims = self.input_dims()
        self.input_dim_names = {self.names[s] for d in dims[1:] for s in S.free_symbols(d.expr)
                                if s in self.names}
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
                module, bound, call_args, call_kwargs = self.build(cls, layer, x, dims)
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
                if any(d.expr.is_number and int(d.expr) < 1 for d in out_dims):
                    raise SizeTooSmallError(
                        f"{cls.__name__} gets input {_shape_text(dims)} and its output "
                        f"{_shape_text(out_dims)} collapses to zero", location=layer.loc,
                        hint="use a larger `input`, a smaller kernel or stride, or padding")
                with S.real_tensors():
                    confirm_on_cpu(cls, bound, self.concrete,
                                   tuple(self.value(d.expr) for d in dims),
                                   tuple(self.value(d.expr) for d in out_dims), layer)
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
        constraints = tuple(self.constraints(constraints_raw, traced))
        self.warn_constants()
        return TracedModel(
            spec=spec,
            input_shape=input_shape,
            layers=tuple(traced),
            total_params=self.as_dim(total),
            trainable_params=self.as_dim(trainable),
            constraints=constraints,
            dim_params=tuple(sorted(self.input_dim_names)),
            dim_sizes=tuple(self.test_sizes(constraints_raw, constraints)),
            warnings=tuple(self.warnings),
        )

    def _sizes(self, dims: Sequence[_DimInfo]) -> list[Any]:
        return [_symint(self, d) for d in dims]

    def warn_constants(self) -> None:
        """Say where an int parameter traced as a constant sizes something."""
        def names(e: Expr) -> Iterator[Name]:
            if isinstance(e, Name):
                yield e
            for child in (getattr(e, "operand", None), getattr(e, "left", None),
                          getattr(e, "right", None), *getattr(e, "items", ())):
                if child is not None:
                    yield from names(child)

        used = [n for e in self.spec.input_shape for n in names(e)]
        used += [n for layer in self.spec.layers for a in layer.args for n in names(a)]
        warned = set()
        for n in used:
            if n.id in self.constants and n.id not in warned:
                warned.add(n.id)
                self.warnings.append(Diagnostic(
                    "warning", f"{n.id} defaults to {self.spec.param(n.id).default}, so seqgen "
                    "traces it as a constant: sizes that follow from it are written as numbers",
                    n.loc, f"give {n.id} a default of 2 or more to keep it symbolic"))

    def _check_specialized(self, before: Mapping[str, str], layer: LayerSpec) -> None:
        after = self.session.specialized()
        for name, became in after.items():
            if name == BATCH and name not in before:
                raise TraceError(
                    f"torch's kernel for {layer.name} fixes the batch size (it assumed "
                    f"N == {became}), so the model would only work at that batch size",
                    location=layer.loc, hint="use another layer; seqgen keeps the batch symbolic")
            if name not in before:
                raise TraceError(
                    f"torch's kernel for {layer.name} needs a fixed value of {name!r} "
                    f"(it assumed {name} == {became})", location=layer.loc,
                    hint=f"a sample value of 0 or 1 looks like broadcasting to torch: give {name} "
                         "a default of 2 or more, or write this size as a literal")

    def build(self, cls: type[nn.Module], layer: LayerSpec, x: torch.Tensor,
              dims: Sequence[_DimInfo]
              ) -> tuple[nn.Module, _Bound, list[str], list[tuple[str, str]]]:
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
            sample = {k: self.value(S.expr_of(v)) if isinstance(v, torch.SymInt) else v
                      for k, v in values.items()}
            message, hint = rejection(cls.__name__, _first_line(e), sample) or (
                f"torch rejected the arguments of {cls.__name__}: {_first_line(e)}", _value_hint(e))
            raise TraceError(message, location=layer.loc, hint=hint) from e
        module.eval()  # shape checks at any batch size (BatchNorm refuses batch 1 in training)
        return module, bound, call_args, call_kwargs

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
        """Every size that depends on a parameter must stay >= 1; find each parameter's minimum.

        A size of one parameter that grows with it (checked at the sample and beyond) becomes a
        minimum, `seq_len >= 3`; any other becomes a condition checked as written.
        """
        per_symbol: dict[sympy.Symbol, tuple[int, int]] = {}  # symbol -> (minimum, layer index)
        conditions: list[Constraint] = []
        seen: set[tuple[str, int]] = set()
        for expr, index in raw:
            free = sorted(S.free_symbols(expr) - {self.batch_sym}, key=str)
            minimum = self._minimum(expr, free[0]) if len(free) == 1 else None
            if minimum is not None:
                sym = free[0]
                if sym not in per_symbol or minimum > per_symbol[sym][0]:
                    per_symbol[sym] = (minimum, index)
                continue
            code = self.code(expr, None)
            if (code, index) not in seen:
                seen.add((code, index))
                conditions.append(Constraint(
                    condition=f"{code} >= 1", symbol=None, minimum=None, layer_index=index,
                    message=f"{code} must be at least 1: {_needs(layers, index)}"))
        out = []
        for sym in sorted(per_symbol, key=lambda s: self.names[s]):
            minimum, index = per_symbol[sym]
            name = self.names[sym]
            out.append(Constraint(
                condition=f"{name} >= {minimum}", symbol=name, minimum=minimum, layer_index=index,
                message=f"{name} must be at least {minimum}: {_needs(layers, index)}"))
        return out + conditions

    def _holds(self, exprs: Sequence[sympy.Expr], values: Mapping[sympy.Symbol, int]) -> bool:
        """Every size in `exprs` is >= 1 at `values` (a division by zero is no size at all)."""
        try:
            return all(S.evaluate(e, values) >= 1 for e in exprs)
        except ZeroDivisionError:
            return False

    def _minimum(self, expr: sympy.Expr, sym: sympy.Symbol) -> int | None:
        """Smallest value of `sym` >= 1 keeping `expr` >= 1, if `expr` holds from there on."""
        hint = self.hints[sym]
        values = dict(self.hints)

        def ok(v: int) -> bool:
            values[sym] = v
            return self._holds([expr], values)

        lo, hi = 1, hint
        if ok(lo):
            hi = 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
        # a binary search assumes the size grows with `sym`: check it where the tests will look
        if not all(ok(v) for v in {hi, hint, 2 * hint, 4 * hint}):
            return None
        return hi

    def test_sizes(self, raw: list[tuple[sympy.Expr, int]],
                   constraints: Sequence[Constraint]) -> list[tuple[str, tuple[int, ...], int]]:
        """For each named input dim: sizes its generated test builds, and one it must refuse."""
        exprs = [e for e, _ in raw]
        minima = {c.symbol: c.minimum for c in constraints if c.symbol is not None}
        out = []
        for sym, name in sorted(self.names.items(), key=lambda kv: kv[1]):
            if name not in self.input_dim_names:
                continue
            hint = self.hints[sym]
            minimum = minima.get(name) or 1
            sizes = []
            for size in sorted({minimum, hint, 2 * hint}):
                values = {**self.hints, sym: size}
                if self._holds(exprs, values):
                    sizes.append(size)
            out.append((name, tuple(sizes), minimum - 1))
        return out


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
        return SizeTooSmallError(
            f"{cls.__name__} gets input {_shape_text(dims)}, too small for it: "
            f"the output would be empty ({msg})", location=layer.loc,
            hint="use a larger `input`, a smaller kernel, or padding")
    return TraceError(f"{cls.__name__} cannot take input {_shape_text(dims)}: {msg}",
                      location=layer.loc)


def trace(spec: ModelSpec) -> TracedModel:
    """Trace a parsed spec symbolically on fake tensors (every layer's binding checked first)."""
    check_layers(spec)
    try:
        with quiet_torch_warnings():
            return _Tracer(spec).run()
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
    if not all(isinstance(dims[i], Num) for i in spatial):
        return None
    current = max(int(dims[i].value) for i in spatial)  # type: ignore[union-attr]

    def shape(size: int) -> tuple[Expr, ...]:
        return tuple(Num(max(int(d.value), size), d.loc) if i in spatial else d  # type: ignore[union-attr]
                     for i, d in enumerate(dims))

    def works(size: int) -> bool:
        try:
            _Tracer(replace(spec, input_shape=shape(size))).run()
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


