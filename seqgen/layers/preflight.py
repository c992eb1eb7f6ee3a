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
from seqgen.layers.registry import TorchModule, UserModule, WeightNormed, kind_for
from seqgen.layers.torch_classes import registry
from seqgen.layers.torch_nn import bind, reading, signature, word


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
            if layer.call_syntax:
                raise _op_call_syntax(kind, layer)
            kind.bind(layer)
            return
        case WeightNormed(inner=module) | (TorchModule() as module):
            cls, layer = module.cls, module.layer
        case UserModule():
            cls, layer = kind.cls, kind.layer
    if layer.call_syntax:
        # a Python call fills torch's order; `conv2d(16, 3)` is seqgen's order in parentheses
        line = reading(cls, layer, pytorch=True) or reading(cls, layer, pytorch=False)
        named = replace(line, name=word(cls, layer)) if line is not None else None
        message, hint, fix = call_syntax_hint(layer, named, signature(cls).inferred)
        raise TraceError(message, location=layer.loc, hint=hint, fix=fix)
    try:
        bind(cls, layer)
    except TraceError:
        if _meant_without_size(cls, layer) is not None:
            return  # `conv2d 3 16 3`: the trace knows the incoming size and says so precisely
        raise


def _op_call_syntax(op: Op, layer: LayerSpec) -> TraceError:
    """`LSTM(8, 16)` for one of seqgen's own layers: the line it means, where one binds (its
    arguments as written, or without the first, the input size seqgen infers)."""
    plain = replace(layer, name=op.name, call_syntax=False)
    tries = [plain, replace(plain, args=plain.args[1:])] if op.inferred and plain.args else [plain]
    line = None
    for candidate in tries:
        try:
            op.bind(candidate)
        except TraceError:
            continue
        line = candidate
        break
    inferred = (op.inferred,) if op.inferred else ()
    message, hint, fix = call_syntax_hint(layer, line, inferred, op.usage)
    return TraceError(message, location=layer.loc, hint=hint, fix=fix)


def _meant_without_size(cls: type[nn.Module], layer: LayerSpec) -> LayerSpec | None:
    """The line as meant when its first value, a literal number, is the size seqgen infers
    written out of PyTorch habit: without it (`conv2d 3 16 3` as `conv2d 16 3`), or read in
    PyTorch's order (`conv2d 1 32 3 1` as `conv2d 32 3 stride=1`); None when neither binds."""
    if not signature(cls).inferred or not layer.args or not isinstance(layer.args[0], Num):
        return None
    dropped = replace(layer, args=layer.args[1:])
    try:
        bind(cls, dropped)
    except TraceError:
        return reading(cls, layer, pytorch=True)
    return dropped


def without_written_size(layer: LayerSpec) -> LayerSpec | None:
    """`linear 784 256` as the line meant it (`linear 256`), when its first value is the size
    seqgen infers written out (PyTorch's habit) and the line binds without it; else None.

    After reporting the habit, the trace continues with this line, so a pasted MLP's every
    `linear IN OUT` line is reported in one run."""
    kind = kind_for(layer)
    if not isinstance(kind, TorchModule):  # weight_norm= lines: reported, not continued
        return None
    return _meant_without_size(kind.cls, layer)


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
