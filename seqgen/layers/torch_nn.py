"""Layer lines -> torch.nn classes and constructor arguments (part of the trace stage).

Resolves a layer name to a torch.nn.Module subclass (nothing else), binds positional and keyword
spec arguments to constructor parameters, and evaluates spec values without eval().
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from seqgen._typing import class_cache
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
from seqgen.lang.hints import missing_hint
from seqgen.lang.names import check_identifier
from seqgen.lang.values import expr_source
from seqgen.trace import symbolic as S

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
    "LSTMCell": "returns a tuple (h, c), which cannot flow through nn.Sequential",
    "RNNBase": "is a base class; its subclasses return tuples",
    "RNNCellBase": "is a base class",
    "MultiheadAttention": "takes query, key and value and returns a tuple (output, weights)",
    "Transformer": "takes two tensors (src, tgt)",
    "TransformerEncoder": "needs a layer module as its argument",
    "TransformerDecoder": "takes two tensors (tgt, memory)",
    "TransformerDecoderLayer": "takes two tensors (tgt, memory)",
    "Bilinear": "takes two tensors",
    "CosineSimilarity": "takes two tensors",
    "PairwiseDistance": "takes two tensors",
    "MaxUnpool1d": "needs the indices of a MaxPool1d as a second input",
    "MaxUnpool2d": "needs the indices of a MaxPool2d as a second input",
    "MaxUnpool3d": "needs the indices of a MaxPool3d as a second input",
    "AdaptiveLogSoftmaxWithLoss": "takes inputs and targets and returns a named tuple",
    "EmbeddingBag": "takes bags of indices with offsets; use `embedding` then `mean 1` or `sum 1`",
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
# Why a spec value cannot be a parameter ("True or False"), or None when it fits.
Mismatch = Callable[[str, Expr], "str | None"]


def _layer_registry() -> dict[str, type[nn.Module]]:
    reg = {}
    for name in dir(nn):
        obj = getattr(nn, name)
        if isinstance(obj, type) and issubclass(obj, nn.Module) and not name.startswith("_"):
            reg[name.lower()] = obj
    return reg


_REGISTRY = _layer_registry()


def registry() -> dict[str, type[nn.Module]]:
    """torch.nn's module classes by lower-case name."""
    return _REGISTRY


def layer_names() -> list[str]:
    """Every torch.nn class name a spec may use."""
    return sorted(c.__name__ for c in _REGISTRY.values() if c.__name__ not in REFUSED)


def resolve_layer(layer: LayerSpec) -> type[nn.Module]:
    """The torch.nn.Module subclass a layer line names (case-insensitive)."""
    cls = _REGISTRY.get(layer.name.lower())
    if cls is None:
        close = difflib.get_close_matches(layer.name.lower(), list(_REGISTRY), n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(repr(_REGISTRY[c].__name__.lower()) for c in close)}?"
            if close
            else "layer names are torch.nn class names, e.g. conv2d, relu, linear"
        )
        raise TraceError(f"unknown layer {layer.name!r}", location=layer.loc, hint=hint)
    name = cls.__name__
    if name in REFUSED:
        raise TraceError(
            f"{name} {REFUSED[name]}",
            location=layer.loc,
            hint="seqgen builds nn.Sequential stacks of one-tensor-in, one-tensor-out layers",
        )
    if name.endswith("Loss") or name == "NLLLoss2d":
        raise TraceError(
            f"{name} is a loss function: it takes predictions and targets",
            location=layer.loc,
            hint="apply the loss in your training loop",
        )
    if name.startswith("Lazy"):
        plain = name[4:].lower()
        raise TraceError(
            f"{name} infers its size at the first call; seqgen infers it for you",
            location=layer.loc,
            hint=f"use `{plain}` without its input size",
        )
    return cls


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


@class_cache
def signature(cls: type[nn.Module]) -> _Signature:
    init = cls.__init__
    if init is nn.Module.__init__:
        return _Signature((), (), (), (), False, False)
    params = list(inspect.signature(init).parameters.values())[1:]
    named = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in NOT_ARGS
    ]
    inferred = tuple(p.name for p in named if p.name in INFERRED)
    positional = tuple(
        p.name for p in named if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in INFERRED
    )
    required = tuple(p.name for p in named if p.default is p.empty and p.name not in INFERRED)
    return _Signature(
        positional,
        inferred,
        tuple(p.name for p in named),
        required,
        any(p.kind == p.VAR_POSITIONAL for p in params),
        any(p.kind == p.VAR_KEYWORD for p in params),
        _by_position(positional, required, any_required=bool(required or inferred)),
    )


def _by_position(positional: tuple[str, ...], required: tuple[str, ...], any_required: bool) -> int:
    """How many arguments a spec may give by position (README, "Arguments").

    Positional spec arguments fill the required parameters after the inferred sizes
    (`conv2d 16 3`); a class with no required parameter at all takes its first optional one
    (`dropout 0.5`, `flatten 1`). Everything else is a keyword, so a value written out of habit
    for a size seqgen infers cannot shift into kernel_size, stride, bias or eps unnoticed.
    """
    if not any_required:
        return min(1, len(positional))
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


def bind(cls: type[nn.Module], layer: LayerSpec, describe: Mismatch | None = None) -> Bound:
    """Spec arguments by constructor parameter; `describe` says why a value misfits a parameter."""
    sig = signature(cls)
    name = cls.__name__.lower()
    args: dict[str, Expr] = {}
    extra: list[Expr] = []
    for i, value in enumerate(layer.args):
        if i < sig.by_position:
            args[sig.positional[i]] = value
        elif i < len(sig.positional):
            raise _keyword_needed(name, sig, sig.positional[i], value, describe)
        elif sig.var_args:
            extra.append(value)
        else:
            want = ", ".join(sig.positional[: sig.by_position]) or "no positional arguments"
            raise TraceError(
                f"{name} takes {sig.by_position} positional argument(s) after the inferred "
                f"size, got {len(layer.args)}",
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


def _keyword_needed(
    name: str, sig: _Signature, pname: str, value: Expr, describe: Mismatch | None
) -> TraceError:
    """A positional argument beyond what the class takes by position: name the keyword to use."""
    taken = sig.positional[: sig.by_position]
    count = {0: "no arguments", 1: "1 argument"}.get(len(taken), f"{len(taken)} arguments")
    shown = f" ({', '.join(taken)})" if taken else ""
    inferred = f", seqgen infers {', '.join(sig.inferred)}" if sig.inferred else ""
    misfit = describe(pname, value) if describe is not None else None
    hint = (
        f"{pname} takes {misfit}" if misfit is not None else f"write {pname}={expr_source(value)}"
    )
    if sig.inferred:
        hint = f"seqgen infers {', '.join(sig.inferred)}: don't write it; " + (
            hint if misfit is not None else f"to set {pname}, {hint}"
        )
    return TraceError(
        f"{name} takes {count} by position{shown}{inferred}; give {pname} by keyword",
        location=value.loc,
        hint=hint,
    )


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
