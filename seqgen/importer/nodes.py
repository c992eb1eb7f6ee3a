"""What the importer captures from a model, before it is written as spec text: layers, merges and
uses of submodules, each remembering where it came from (the original module's qualified name and
the source line), so a refusal can point at the user's code and the weights can follow."""

from __future__ import annotations

from dataclasses import dataclass, field

from seqgen.errors import SeqgenError


class ImportRefused(SeqgenError):
    """The model cannot be imported: its code failed to load or run, or an op in its forward has
    no spec equivalent (the message names the op and its source line)."""


@dataclass(frozen=True)
class Arg:
    """One argument of a spec line: its key (None: positional), its value, and whether it is the
    constructor's default (then it is not written unless a block parameter stands for it)."""

    key: str | None
    name: str  # the constructor's parameter name (`kernel_size` for key `k`)
    value: object
    is_default: bool = False


@dataclass(frozen=True)
class Layer:
    """A torch.nn layer (or a functional call written as one): the spec word and its arguments."""

    word: str
    args: tuple[Arg, ...]
    origin: str | None  # the original module's qualified name; None for a functional call
    where: str  # `file:line` of the call in the original forward ("" when unknown)
    weights: bool = False  # whether the module has parameters or buffers
    name: str | None = None  # its `name=` in the spec: the attribute it was in the original


@dataclass(frozen=True)
class Merge:
    """`residual:` (branches: body[, shortcut]), `concat:`, `add:` or `multiply:`."""

    kind: str
    branches: tuple[Stack, ...]
    dim: int = 1


@dataclass
class Use:
    """A call of a submodule that is not a torch.nn layer: inlined, or a use of a block."""

    origin: str
    class_name: str
    body: Stack
    in_size: int | None  # in_channels (rank >= 3) or in_features (rank 2) of its input
    in_name: str | None  # which of the two, or None
    block: str | None = None  # the block it became (None: inlined)
    values: tuple[object, ...] = field(default=())  # the block's parameter values at this use
    params: tuple[tuple[str, bool], ...] = ()  # the block's parameters: (name, is a width)


Node = Layer | Merge | Use
Stack = tuple[Node, ...]


def layers_in_order(stack: Stack) -> list[Layer]:
    """Every layer of a stack in spec text order, with each use expanded (its own body)."""
    out: list[Layer] = []
    for node in stack:
        if isinstance(node, Layer):
            out.append(node)
        elif isinstance(node, Merge):
            for branch in node.branches:
                out += layers_in_order(branch)
        else:
            out += layers_in_order(node.body)
    return out
