"""One torch.nn layer (or a functional call with a torch.nn equivalent) as a spec line.

Every argument is read back from the module, sizes that seqgen infers are left out, defaults are
marked, and the line is checked by building the layer again from what will be written: a layer
whose `extra_repr` differs (an attribute the constructor does not take back) is refused rather
than written differently.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from seqgen.importer.nodes import Arg, ImportRefused, Layer

INFERRED = {"in_channels", "in_features", "num_features", "num_channels", "input_size", "d_model"}
SKIPPED = {"inplace", "device", "dtype"}  # inplace changes no output or weight
ALIASES = {"kernel_size": "k", "stride": "s", "padding": "p"}

# functional call -> (torch.nn class, its positional parameter names after the input)
FUNCTIONAL: dict[Callable[..., Any], tuple[type[nn.Module], tuple[str, ...]]] = {
    F.relu: (nn.ReLU, ("inplace",)),
    torch.relu: (nn.ReLU, ()),
    F.relu6: (nn.ReLU6, ("inplace",)),
    F.silu: (nn.SiLU, ("inplace",)),
    F.gelu: (nn.GELU, ("approximate",)),
    F.elu: (nn.ELU, ("alpha", "inplace")),
    F.leaky_relu: (nn.LeakyReLU, ("negative_slope", "inplace")),
    F.hardswish: (nn.Hardswish, ("inplace",)),
    F.hardsigmoid: (nn.Hardsigmoid, ("inplace",)),
    torch.sigmoid: (nn.Sigmoid, ()),
    F.sigmoid: (nn.Sigmoid, ()),
    torch.tanh: (nn.Tanh, ()),
    F.tanh: (nn.Tanh, ()),
    F.softmax: (nn.Softmax, ("dim",)),
    torch.softmax: (nn.Softmax, ("dim",)),
    F.log_softmax: (nn.LogSoftmax, ("dim",)),
    F.adaptive_avg_pool1d: (nn.AdaptiveAvgPool1d, ("output_size",)),
    F.adaptive_avg_pool2d: (nn.AdaptiveAvgPool2d, ("output_size",)),
    F.adaptive_max_pool2d: (nn.AdaptiveMaxPool2d, ("output_size", "return_indices")),
    F.max_pool1d: (nn.MaxPool1d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    F.max_pool2d: (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    F.avg_pool1d: (nn.AvgPool1d, ("kernel_size", "stride", "padding", "ceil_mode")),
    F.avg_pool2d: (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode")),
    F.dropout: (nn.Dropout, ("p", "training", "inplace")),
    torch.flatten: (nn.Flatten, ("start_dim", "end_dim")),
}
METHODS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "relu": (nn.ReLU, ()),
    "sigmoid": (nn.Sigmoid, ()),
    "tanh": (nn.Tanh, ()),
    "softmax": (nn.Softmax, ("dim",)),
    "flatten": (nn.Flatten, ("start_dim", "end_dim")),
}
# tensor ops that are seqgen's own layers: spec word -> (its arguments, torch's names for them)
OPS: dict[str, tuple[str, ...]] = {
    "mean": ("dim", "keepdim"),
    "sum": ("dim", "keepdim"),
    "amax": ("dim", "keepdim"),
    "transpose": ("dim0", "dim1"),
    "unsqueeze": ("dim",),
    "squeeze": ("dim",),
    "permute": ("dims",),
}
OP_FUNCTIONS = {
    torch.mean: "mean",
    torch.sum: "sum",
    torch.amax: "amax",
    torch.transpose: "transpose",
    torch.unsqueeze: "unsqueeze",
    torch.squeeze: "squeeze",
    torch.permute: "permute",
}
ADD = {operator.add, operator.iadd, torch.add}
MUL = {operator.mul, operator.imul, torch.mul}
CAT = {torch.cat, torch.concat, torch.concatenate}


def is_torch_layer(module: nn.Module) -> bool:
    """A torch.nn class used as is (not a container, not the user's own class)."""
    cls = type(module)
    return cls.__module__.startswith("torch.nn.") and not isinstance(
        module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    )


def _normal(value: object) -> object:
    """(3, 3) -> 3: a tuple whose entries are equal is written once, as the spec writes it."""
    if isinstance(value, (tuple, list)):
        items = tuple(_normal(v) for v in value)
        if items and all(v == items[0] for v in items) and isinstance(items[0], int):
            return items[0]
        return items
    return value


def _value(module: nn.Module, param: inspect.Parameter) -> object:
    if param.name == "bias" and isinstance(param.default, bool):
        return getattr(module, "bias", None) is not None
    if param.name == "stride" and param.default is None and hasattr(module, "kernel_size"):
        stride = getattr(module, "stride", None)
        return None if _normal(stride) == _normal(module.kernel_size) else stride
    return getattr(module, param.name)


def _parameters(cls: type[nn.Module]) -> list[inspect.Parameter]:
    sig = inspect.signature(cls.__init__)
    return [
        p
        for p in list(sig.parameters.values())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in SKIPPED
    ]


def layer_of(module: nn.Module, origin: str | None, where: str) -> Layer:
    """The spec line for a torch.nn module, checked by building the layer again."""
    cls = type(module)
    kwargs: dict[str, object] = {}
    args: list[Arg] = []
    params = _parameters(cls)
    if "inplace" in inspect.signature(cls.__init__).parameters and hasattr(module, "inplace"):
        kwargs["inplace"] = module.inplace  # built as it was, for the check; never written
    for p in params:
        if not hasattr(module, p.name) and p.name != "bias":
            if p.default is inspect.Parameter.empty:
                raise _unreadable(cls, p.name, origin, where)
            continue
        value = _value(module, p)
        kwargs[p.name] = value
        if p.name in INFERRED or (p.name == "normalized_shape" and len(value) == 1):  # type: ignore[arg-type]
            continue
        optional = p.default is not inspect.Parameter.empty
        args.append(Arg(None, p.name, _normal(value), optional and _same(value, p.default)))
    _same_layer(module, kwargs, origin, where)
    word = cls.__name__.lower()
    return Layer(word, _keyed(args, params), origin, where, bool(module.state_dict()))


def _keyed(args: list[Arg], params: list[inspect.Parameter]) -> tuple[Arg, ...]:
    """The first required argument (after the inferred ones) is positional, as is the first
    optional one of a class with none required, inferred sizes counting as required (`dropout
    0.2`, but `batchnorm2d eps=0.001`); the others are keywords."""
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    given = [n for n in required if n not in INFERRED]
    first = given[0] if given else None if required else (args[0].name if args else None)
    return tuple(
        Arg(None if a.name == first else ALIASES.get(a.name, a.name), a.name, a.value, a.is_default)
        for a in args
    )


def _same(value: object, default: object) -> bool:
    return type(_normal(value)) is type(_normal(default)) and _normal(value) == _normal(default)


def _same_layer(
    module: nn.Module, kwargs: dict[str, object], origin: str | None, where: str
) -> None:
    """Build the layer from the arguments that will be written; refuse what differs."""
    try:
        with torch.device("meta"):
            again = type(module)(**kwargs)
    except Exception as e:
        raise _unreadable(type(module), str(e), origin, where) from e
    if again.extra_repr() != module.extra_repr():
        raise ImportRefused(
            f"{_at(where, origin)}nn.{type(module).__name__} cannot be written exactly: "
            f"`{module.extra_repr()}` becomes `{again.extra_repr()}`",
            hint="set the attribute through the constructor, or replace the layer",
        )


def _unreadable(cls: type[nn.Module], what: str, origin: str | None, where: str) -> ImportRefused:
    return ImportRefused(
        f"{_at(where, origin)}nn.{cls.__name__}: its arguments cannot be read back ({what})"
    )


def _at(where: str, origin: str | None) -> str:
    place = f"{where}: " if where else ""
    return place + (f"module `{origin}`: " if origin else "")


def op_layer(
    target: object, args: tuple[object, ...], kwargs: dict[str, object], where: str
) -> Layer | None:
    """`x.mean((2, 3))`, `x.permute(0, 2, 1)`, `torch.transpose(x, 1, 2)`, ... as seqgen's own
    ops (`mean (2, 3)`, `permute 0 2 1`); None if unknown or not given literally."""
    word = target if isinstance(target, str) and target in OPS else OP_FUNCTIONS.get(target)  # type: ignore[call-overload]
    if word is None:
        return None
    names = OPS[word]
    rest = args[1:]
    if word == "permute" and len(rest) > 1:  # x.permute(0, 2, 1)
        rest = (tuple(rest),)
    given = dict(zip(names, rest, strict=False)) | dict(kwargs)
    if names[0] not in given or set(given) - set(names):
        return None  # a full reduction, or an argument the op does not take
    values = [(n, _normal_dims(given[n])) for n in names if n in given]
    if not all(isinstance(v, (int, bool, tuple)) for _, v in values):
        return None
    out = []
    for n, v in values:
        if n == "keepdim":
            out.append(Arg("keepdim", n, v, v is False))
        elif n == "dims" and isinstance(v, tuple):
            out += [Arg(None, n, d, False) for d in v]
        else:
            out.append(Arg(None, n, v, False))
    return Layer(word, tuple(out), None, where)


def _normal_dims(value: object) -> object:
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], int):
        return value[0]
    return value


def functional_layer(
    target: object, args: tuple[object, ...], kwargs: dict[str, object], where: str
) -> Layer | None:
    """The spec line for `F.relu(x)`, `torch.flatten(x, 1)`, `x.relu()`, ...; None if unknown."""
    entry = METHODS.get(target) if isinstance(target, str) else FUNCTIONAL.get(target)  # type: ignore[call-overload]
    if entry is None:
        return None
    cls, names = entry
    given = dict(zip(names, args[1:], strict=False)) | dict(kwargs)
    for key in ("inplace", "training", "input"):
        given.pop(key, None)
    if cls is nn.Flatten:
        given.setdefault("start_dim", 0)  # torch.flatten's and Tensor.flatten's default
    if cls in (nn.Softmax, nn.LogSoftmax) and "dim" not in given:
        return None
    if any(
        not isinstance(v, (int, float, bool, str, tuple, list, type(None))) for v in given.values()
    ):
        return None
    module = cls(**given)
    return layer_of(module, None, where)
