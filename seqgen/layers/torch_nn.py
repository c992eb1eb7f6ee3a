"""Layer lines -> torch.nn constructor arguments (part of the trace stage).

Binds positional and keyword spec arguments to a class's constructor parameters (the class
itself comes from torch_classes.py), and evaluates spec values without eval().
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from seqgen.errors import TraceError
from seqgen.ir import (
    BinOp,
    Const,
    Expr,
    Keyword,
    LayerSpec,
    ModelSpec,
    Name,
    Neg,
    Num,
    Str,
    TupleExpr,
)
from seqgen.lang.hints import layer_text, missing_hint, whole_line
from seqgen.lang.names import check_identifier
from seqgen.lang.values import expr_source
from seqgen.layers.arg_types import ANY_TYPE, broken_range, fits, parameter_types
from seqgen.trace import symbolic as S

# Size parameters seqgen infers from the incoming tensor: name -> which dim of it.
INFERRED: dict[str, int] = {
    "in_features": -1,
    "in_channels": 1,
    "num_features": 1,
    "num_channels": 1,
    "normalized_shape": -1,
}
NOT_ARGS = frozenset({"device", "dtype"})
# The user's own classes (layers/user.py): what their `use` line says seqgen infers.
_DECLARED: dict[type[nn.Module], tuple[tuple[str, int], ...]] = {}
# Why a spec value cannot be a parameter ("True or False"), or None when it fits.
Mismatch = Callable[[str, Expr], "str | None"]


# ------------------------------------------------------------------------------- values


@dataclass
class Values:
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
        if isinstance(v, bool) or not (isinstance(v, (int, float)) or S.is_symbolic(v)):
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
    by_position: int = 0  # how many of `positional` a spec may give by position (see below)
    dims: tuple[tuple[str, int], ...] = ()  # each inferred parameter's dim of the input

    def dim_of(self, pname: str) -> int:
        """The dim of the incoming tensor that an inferred parameter takes its size from."""
        return dict(self.dims)[pname]


def declare_inferred(cls: type[nn.Module], inferred: tuple[tuple[str, int], ...]) -> None:
    """A user's class: the arguments seqgen infers are the ones its `use` line names (none
    unless it says), not torch.nn's names."""
    _DECLARED[cls] = inferred


def signature(cls: type[nn.Module]) -> _Signature:
    """How a class's constructor takes a layer line's arguments."""
    key = (cls, _DECLARED.get(cls))
    if key not in _SIGNATURES:
        _SIGNATURES[key] = _signature(*key)
    return _SIGNATURES[key]


_SIGNATURES: dict[tuple[type[nn.Module], tuple[tuple[str, int], ...] | None], _Signature] = {}


def _signature(cls: type[nn.Module], declared: tuple[tuple[str, int], ...] | None) -> _Signature:
    dims = INFERRED if declared is None else dict(declared)
    init = cls.__init__
    if init is nn.Module.__init__:
        return _Signature((), (), (), (), False, False)
    params = list(inspect.signature(init).parameters.values())[1:]
    named = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in NOT_ARGS
    ]
    inferred = tuple(p.name for p in named if p.name in dims)
    positional = tuple(
        p.name for p in named if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in dims
    )
    required = tuple(p.name for p in named if p.default is p.empty and p.name not in dims)
    return _Signature(
        positional,
        inferred,
        tuple(p.name for p in named),
        required,
        any(p.kind == p.VAR_POSITIONAL for p in params),
        any(p.kind == p.VAR_KEYWORD for p in params),
        _by_position(positional, required, inferred),
        tuple((name, dims[name]) for name in inferred),
    )


def _by_position(
    positional: tuple[str, ...], required: tuple[str, ...], inferred: tuple[str, ...]
) -> int:
    """How many arguments a spec may give by position (README, "Arguments").

    A class whose sizes seqgen infers nothing of (pooling, dropout, activations, padding) takes
    torch's own signature order, exactly as in PyTorch: `maxpool2d 2 2` is MaxPool2d(2, 2).
    Where seqgen infers a size (conv, linear, norms), positional spec arguments fill only the
    required parameters after it (`conv2d 16 3`), and a class with nothing else required takes
    none (`batchnorm2d eps=1e-3`): there a number written out of PyTorch habit for the inferred
    size would otherwise shift into kernel_size, stride, bias or eps unnoticed.
    """
    if not inferred:
        return len(positional)
    count = 0
    for name in positional:
        if name not in required:
            break
        count += 1
    return count


@dataclass(frozen=True)
class Bound:
    """A layer's arguments by constructor parameter: the spec node (None when inferred)."""

    args: dict[str, Expr]  # parameter name -> spec value
    extra_args: tuple[Expr, ...]  # beyond the named parameters (*args)
    extra_kwargs: dict[str, Expr]  # beyond the named parameters (**kwargs)
    sig: _Signature


def word(cls: type[nn.Module], layer: LayerSpec) -> str:
    """The spec's word for a class in messages: `conv2d`, or the name a `use` line gives."""
    return layer.use.name if layer.use is not None else cls.__name__.lower()


def bind(cls: type[nn.Module], layer: LayerSpec, describe: Mismatch | None = None) -> Bound:
    """Spec arguments by constructor parameter; `describe` says why a value misfits a parameter."""
    sig = signature(cls)
    name = word(cls, layer)
    args: dict[str, Expr] = {}
    extra: list[Expr] = []
    for i, value in enumerate(layer.args):
        if i < sig.by_position:
            args[sig.positional[i]] = value
        elif i < len(sig.positional):
            raise _keyword_needed(cls, layer, i, describe)
        elif sig.var_args:
            extra.append(value)
        else:
            want = ", ".join(sig.positional[: sig.by_position]) or "no positional arguments"
            after = " after the inferred size" if sig.inferred else ""
            raise TraceError(
                f"{name} takes {sig.by_position} positional argument(s){after}, "
                f"got {len(layer.args)}",
                location=value.loc,
                hint=f"{name} takes: {want}"
                + (f" (seqgen infers {', '.join(sig.inferred)})" if sig.inferred else ""),
            )
    extra_kwargs: dict[str, Expr] = {}
    for kw in layer.kwargs:
        if kw.written in sig.order and kw.written != kw.name:
            # an alias (`p` = padding) never hides the class's own parameter (Dropout's `p`)
            kw = Keyword(kw.written, kw.value, kw.loc, kw.written)
        if kw.name in NOT_ARGS:
            raise TraceError(
                f"{kw.name!r} cannot be set in a spec",
                location=kw.loc,
                hint="seqgen chooses device and dtype; use --device to check a device",
            )
        if kw.name in sig.order:
            if kw.name in args:
                raise TraceError(
                    f"{name} got {kw.name!r} both by position and by keyword", location=kw.loc
                )
            args[kw.name] = kw.value
        elif sig.var_kwargs:
            check_identifier(kw.name, "argument name", kw.loc)
            extra_kwargs[kw.name] = kw.value
        else:
            choices = list(sig.order)
            close = difflib.get_close_matches(kw.name, choices, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"{name} takes: {', '.join(choices)}"
                if choices
                else f"{name} takes no arguments"
            )
            raise TraceError(f"{name} has no argument {kw.written!r}", location=kw.loc, hint=hint)
    missing = [p for p in sig.required if p not in args]
    if missing:
        raise TraceError(
            f"{name} needs {', '.join(repr(m) for m in missing)}",
            location=layer.loc,
            hint=missing_hint(layer, sig.positional, missing),
        )
    return Bound(args, tuple(extra), extra_kwargs, sig)


def reading(cls: type[nn.Module], layer: LayerSpec, pytorch: bool) -> LayerSpec | None:
    """The line as seqgen spells it when its positional values are read in torch's own order
    (`pytorch`, inferred sizes included: `conv2d 1 32 3 1` as Conv2d(1, 32, 3, 1) is
    `conv2d 32 3 stride=1`) or in seqgen's (after the inferred sizes); None when the values do
    not fit that order or the line it gives does not bind either."""
    sig = signature(cls)
    order = [p for p in sig.order if p in sig.positional or (pytorch and p in sig.inferred)]
    values = dict(zip(order, layer.args))
    if len(layer.args) > len(order) or values.keys() & {kw.name for kw in layer.kwargs}:
        return None
    kept = {p: v for p, v in values.items() if p not in sig.inferred}
    if any(_not_a_size(v) for p, v in values.items() if p in sig.inferred):
        return None  # `batchnorm2d 0.001` is no size written out of habit
    args: list[Expr] = []
    for p in sig.positional[: sig.by_position]:
        if p not in kept:
            break
        args.append(kept.pop(p))
    keywords = tuple(Keyword(p, v, v.loc, p) for p, v in kept.items())
    line = replace(layer, args=tuple(args), kwargs=keywords + layer.kwargs, call_syntax=False)
    try:
        bound = bind(cls, line)
    except TraceError:
        return None
    return line if _literals_fit(cls, bound) else None


def _not_a_size(node: Expr) -> bool:
    """A literal that no inferred size can be (a float, a string, 0)."""
    try:
        value = Values({}).eval(node)
    except (KeyError, TraceError):
        return False  # a parameter: a size, as far as the line can tell
    return type(value) is not int or value < 1


def _literals_fit(cls: type[nn.Module], bound: Bound) -> bool:
    """Every literal value of a bound line has its parameter's type and range (a hint never
    spells `linear 10 bias=20`); values over parameters are checked at the trace."""
    types_ = parameter_types(cls)
    for pname, node in bound.args.items():
        try:
            value = Values({}).eval(node)
        except (KeyError, TraceError):
            continue
        if not fits(value, types_.get(pname, ANY_TYPE)) or broken_range(cls, pname, value):
            return False
    return True


def _keyword_needed(
    cls: type[nn.Module], layer: LayerSpec, i: int, describe: Mismatch | None
) -> TraceError:
    """A positional argument beyond what the class takes by position (only a class whose size
    seqgen infers has such a limit): name the keyword to use, or the PyTorch habit it shows."""
    sig, name = signature(cls), word(cls, layer)
    pname, value = sig.positional[i], layer.args[i]
    taken = sig.positional[: sig.by_position]
    count = {0: "no arguments", 1: "1 argument"}.get(len(taken), f"{len(taken)} arguments")
    shown = f" ({', '.join(taken)})" if taken else ""
    inferred = ", ".join(sig.inferred)
    message = (
        f"{name} takes {count} by position{shown}; give {pname} by keyword (seqgen infers "
        f"{inferred}, and only the required arguments after an inferred size are positional)"
    )
    misfit = describe(pname, value) if describe is not None else None
    torch_line = reading(cls, layer, pytorch=True)
    line = reading(cls, layer, pytorch=False) if misfit is None else None
    habit = sizes = ""
    if torch_line is not None:  # `conv2d 1 32 3 1`: Conv2d(1, 32, 3, 1) in PyTorch's order
        order = [p for p in sig.order if p in sig.positional or p in sig.inferred]
        sizes = " and ".join(
            f"{expr_source(v)} {{}} {p}" for p, v in zip(order, layer.args) if p in sig.inferred
        )
        call = f"{cls.__name__}({', '.join(expr_source(a) for a in layer.args)})"
        habit = f" ({call} in PyTorch), which seqgen infers: write `{_spelled(torch_line)}`"
    # `batchnorm2d 32`: a whole number shifted into a float parameter (eps) is a size
    default = inspect.signature(cls.__init__).parameters[pname].default
    shifted = isinstance(value, Num) and type(value.value) is int and isinstance(default, float)
    if torch_line is not None and (
        line is None or len(layer.args) > sig.by_position + 1 or shifted
    ):
        fix = whole_line(layer.loc, _spelled(torch_line))
        hint = sizes.format("looks like") + habit
        if line is not None:  # `conv2d 16 3 1 1` may mean stride=1 padding=1 as well
            hint += f"; to set {pname} instead, write `{_spelled(line)}`"
        return TraceError(message, location=layer.args[0].loc, hint=hint, fix=fix)
    if misfit is not None:
        hint = f"seqgen infers {inferred}: don't write it; {pname} takes {misfit}"
        return TraceError(message, location=value.loc, hint=hint)
    hint = f"to set {pname}, write {pname}={expr_source(value)}"
    if line is None:
        return TraceError(message, location=value.loc, hint=hint)
    hint += f": `{_spelled(line)}`" + (f"; if {sizes.format('is')}{habit}" if habit else "")
    fix = whole_line(layer.loc, _spelled(line))
    return TraceError(message, location=value.loc, hint=hint, fix=fix)


def _spelled(layer: LayerSpec) -> str:
    return layer_text(layer.name, layer.args, layer.kwargs, layer.key)


def concrete_values(spec: ModelSpec) -> Values:
    """Values with every parameter at its default (for real, non-symbolic modules)."""
    return Values({p.name: p.default for p in spec.params})


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def value_hint(e: BaseException) -> str | None:
    msg = str(e)
    if "negative" in msg or "non-positive" in msg or "must be positive" in msg:
        return "sizes must be positive whole numbers"
    return None
