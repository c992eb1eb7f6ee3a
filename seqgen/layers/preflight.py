"""Before the trace: every layer line resolves to a torch.nn class and binds to its constructor.

Part of the trace stage (imports torch). Binding needs no tensors, so every layer is checked up
front and all such errors are reported together, instead of the trace stopping at the first.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace

from torch import nn

from seqgen.errors import SeqgenError, TraceError
from seqgen.ir import (
    BlockDef,
    LayerSpec,
    MergeSpec,
    Node,
    Num,
    flat_layers,
    node_key,
    walk,
)
from seqgen.lang.hints import call_syntax_hint
from seqgen.layers.kind import Op
from seqgen.layers.registry import TorchModule, WeightNormed, kind_for
from seqgen.layers.torch_nn import bind, registry, signature


def check_layer(layer: LayerSpec, blocks: Sequence[BlockDef] = ()) -> None:
    """Raise the first problem of one layer line that needs no trace to find."""
    try:
        kind = kind_for(layer)
    except TraceError as e:
        block = next((b for b in blocks if b.name.lower() == layer.name.lower()), None)
        if block is None:
            raise
        raise TraceError(
            f"unknown layer {layer.name!r}",
            location=layer.loc,
            hint=f"did you mean the block {block.name!r}? block names are matched exactly",
        ) from e
    match kind:
        case Op():
            kind.bind(layer)
            return
        case WeightNormed(inner=module) | (TorchModule() as module):
            cls, layer = module.cls, module.layer
    if layer.call_syntax:
        sig = signature(cls)
        order = [p for p in sig.order if p in sig.positional or p in sig.inferred]
        message, hint = call_syntax_hint(layer, order, sig.inferred, cls.__name__.lower())
        raise TraceError(message, location=layer.loc, hint=hint)
    try:
        bind(cls, layer)
    except TraceError:
        if _binds_without_its_first_size(cls, layer):
            return  # `conv2d 3 16 3`: the trace knows the incoming size and says so precisely
        raise


def _binds_without_its_first_size(cls: type[nn.Module], layer: LayerSpec) -> bool:
    """The line binds once its first value, a literal number, is dropped: PyTorch habit of
    writing the size seqgen infers."""
    if not signature(cls).inferred or not layer.args or not isinstance(layer.args[0], Num):
        return False
    try:
        bind(cls, replace(layer, args=layer.args[1:]))
    except TraceError:
        return False
    return True


def without_written_size(layer: LayerSpec) -> LayerSpec | None:
    """`linear 784 256` as the line meant it (`linear 256`), when its first value is the size
    seqgen infers written out (PyTorch's habit) and the line binds without it; else None.

    After reporting the habit, the trace continues with this line, so a pasted MLP's every
    `linear IN OUT` line is reported in one run."""
    kind = kind_for(layer)
    if not isinstance(kind, TorchModule):  # weight_norm= lines: reported, not continued
        return None
    if not _binds_without_its_first_size(kind.cls, layer):
        return None
    return replace(layer, args=layer.args[1:])


def layer_errors(layers: Sequence[Node], blocks: Sequence[BlockDef] = ()) -> list[SeqgenError]:
    """The binding error of each layer line (each line once, however often `repeat` uses it),
    in block bodies too, and a block named like a torch.nn class."""
    errors: list[SeqgenError] = []
    for block in blocks:
        if block.name.lower() in registry():
            errors.append(
                TraceError(
                    f"block name {block.name!r} is also the torch.nn class "
                    f"{registry()[block.name.lower()].__name__!r}",
                    location=block.loc,
                    hint="choose another name: a layer line could mean either",
                )
            )
    stacks = [*(b.body for b in blocks), layers]
    for layer in dict.fromkeys(layer for nodes in stacks for layer in flat_layers(nodes)):
        try:
            check_layer(layer, blocks)
        except TraceError as e:
            errors.append(e)
    for node in dict.fromkeys(node for nodes in stacks for node in walk(nodes)):
        errors += _taken_keys(node)
    return errors


def _taken_keys(node: Node) -> list[SeqgenError]:
    """A `name=` that its container already has as an attribute (`forward`, `training`): an
    nn.Sequential's for a node's own key, the merge's nn.ModuleDict's for a branch's."""
    found: list[tuple[str | None, type[nn.Module], str]] = [(node_key(node), nn.Sequential, "")]
    if isinstance(node, MergeSpec):
        found += [(key, nn.ModuleDict, "branch ") for key in node.branch_keys]
    return [
        TraceError(
            f"{what}name {key!r} is taken by nn.{holder.__name__} itself",
            location=node.loc,
            hint="choose another name",
        )
        for key, holder, what in found
        if key is not None and hasattr(holder, key)
    ]


@contextlib.contextmanager
def quiet_torch_warnings() -> Iterator[None]:
    """torch's warnings about a spec (softmax without dim) are seqgen's located lint warnings;
    torch's own copy, pointing into torch's source, is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Implicit dimension choice", category=UserWarning)
        yield
