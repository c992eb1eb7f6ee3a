"""Which torch.nn classes a spec may name (part of the trace stage): the lower-case names,
and the located refusal of a name that is no layer, or a class that cannot sit in
nn.Sequential."""

from __future__ import annotations

import difflib
from dataclasses import replace

from torch import nn

from seqgen.errors import TraceError
from seqgen.ir import LayerSpec
from seqgen.lang.hints import other_name
from seqgen.layers.torch_nn import bind

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
    other = other_name(layer, _REGISTRY) if cls is None else None
    if other is not None:
        name, hint, fix = other
        # `fc 10` is `linear 10`; `fc` alone is no line (`gap` is: `adaptiveavgpool2d 1`)
        if fix is not None and (layer.args or layer.kwargs or fix.strip() == name):
            try:
                bind(_REGISTRY[name], replace(layer, name=name, call_syntax=False))
            except TraceError as e:
                hint, fix = f"torch.nn calls it {name!r}; {e.diagnostic.hint}", e.diagnostic.fix
        raise TraceError(f"unknown layer {layer.name!r}", location=layer.loc, hint=hint, fix=fix)
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
