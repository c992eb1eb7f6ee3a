"""The registry every stage asks about a layer line: `kind_for(layer)`.

A layer line names one of seqgen's own ops (layers/ops/, one `Op` subclass each, registered by
being defined: every module of layers/ops/ is imported here) or an nn.Module class as is
(`TorchModule`, resolved from torch.nn by layers/torch_classes.py), which `weight_norm=...` may wrap
(`WeightNormed`, layers/weight_norm.py). The parser's preflight, the tracer and the real-tensor
checks each match on the kind this returns, one case per kind. A line whose name a `use` line
declares is the user's own class (`UserModule`, imported by layers/user.py where allowed).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

from seqgen.errors import TraceError
from seqgen.ir import Expr, LayerSpec, UseSpec
from seqgen.layers import ops, user, weight_norm
from seqgen.layers.kind import Op, registered
from seqgen.layers.torch_classes import resolve_layer


def _load() -> Mapping[str, Op]:
    for module in sorted(m.name for m in pkgutil.iter_modules(ops.__path__)):
        importlib.import_module(f"{ops.__name__}.{module}")
    return registered()


OPS: Mapping[str, Op] = _load()


def op_for(layer: LayerSpec) -> Op | None:
    """The op a layer line names, or None for a torch.nn class."""
    return OPS.get(layer.name.lower())


def op_names() -> list[str]:
    """The layer names seqgen adds to torch.nn's."""
    return sorted(OPS)


def close_op_name(name: str) -> str | None:
    """One of seqgen's own layer names that `name` is probably a typo of (`permut`, `clstoken`)."""
    close = difflib.get_close_matches(name.lower(), sorted(OPS), n=1, cutoff=0.75)
    return close[0] if close else None


def input_readers() -> str:
    """The keywords that read another input, for a hint: `lstm's lengths=, ...`."""
    return ", ".join(f"{op.name}'s {k}=" for op in OPS.values() for k in op.reads)


def sequence_classes() -> frozenset[str]:
    """The class names (as traced layers carry them) after which a tensor is a sequence."""
    return frozenset(op.title for op in OPS.values() if op.sequence)


@dataclass(frozen=True)
class TorchModule:
    """An nn.Module class used as is: traced on fake tensors, sizes from its family's rule."""

    cls: type[nn.Module]
    layer: LayerSpec  # the line as the class binds it (without weight_norm=)


@dataclass(frozen=True)
class WeightNormed:
    """`weight_norm=...` around a torch.nn layer (layers/weight_norm.py)."""

    inner: TorchModule
    value: Expr  # the written weight_norm= value (True or False; anything else is an error)


@dataclass(frozen=True)
class UserModule:
    """A class of the user's own (`use mypkg.layers:Gate`): traced like a torch.nn class,
    symbolically where torch allows and concretely at the sample otherwise."""

    cls: type[nn.Module]
    layer: LayerSpec
    use: UseSpec  # its `use` line: the import path and the arguments seqgen infers

    @property
    def as_torch(self) -> TorchModule:
        """The class as the torch.nn machinery binds, builds and runs it."""
        return TorchModule(self.cls, self.layer)


Kind = Op | TorchModule | WeightNormed | UserModule


def kind_for(layer: LayerSpec) -> Kind:
    """What a layer line is; a located error for a name that is neither an op nor a class."""
    if layer.use is not None:
        return UserModule(user.load_class(layer.use), layer, layer.use)
    op = op_for(layer)
    if op is not None:
        return op
    plain, norm = weight_norm.split(layer)
    try:
        module = TorchModule(resolve_layer(plain), plain)
    except TraceError as e:
        own = close_op_name(plain.name)
        if own is None or "unknown layer" not in e.diagnostic.message:
            raise
        raise TraceError(
            e.diagnostic.message, location=plain.loc, hint=f"did you mean {own!r}?"
        ) from e
    return module if norm is None else WeightNormed(module, norm)
