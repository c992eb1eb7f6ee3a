"""The registry every stage asks about a layer line: seqgen's own kinds by name.

A layer line names one of seqgen's own ops (layers/ops/, one `Op` subclass each) or a torch.nn
class as is (layers/torch_nn.py); `weight_norm=True` wraps a torch.nn layer (layers/weight_norm.py).
Every module of layers/ops/ is imported here, so defining an op class registers it.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Mapping

from seqgen.ir import LayerSpec
from seqgen.layers import ops
from seqgen.layers.kind import Op, registered


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


def sequence_classes() -> frozenset[str]:
    """The class names (as traced layers carry them) after which a tensor is a sequence."""
    return frozenset(op.title for op in OPS.values() if op.sequence)
