"""The diagram as a tree of boxes, forks and groups, and the flat nodes and edges it stands for.

A stack is drawn top to bottom; a fork runs its branches side by side from the item before it
and joins them in a merge box; a group is a labelled frame around a stack (a block definition,
an expanded block use, a `repeat`). Every writer reads this one model, so the formats agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """One node: a layer (or a collapsed run of them), a block use, a merge, or the input."""

    id: str
    label: str  # the layer as generated code writes it, `Conv2d(3, 16, kernel_size=3)`
    shape: str  # its output shape, `(N, 16, 32, 32)`
    kind: str  # "input" | "layer" | "block" | "merge"


@dataclass(frozen=True)
class Fork:
    """Branches that all read the item before the fork, joined by a merge box; an empty branch
    is the input itself (a residual without a shortcut)."""

    branches: tuple[Stack, ...]
    join: Box


@dataclass(frozen=True)
class Group:
    """A labelled frame around a stack."""

    id: str
    title: str
    body: Stack
    kind: str  # "block" (a definition) | "use" (an expanded use) | "repeat"


Item = Box | Fork | Group
Stack = tuple[Item, ...]


@dataclass(frozen=True)
class Edge:
    """Data flows from the box `source` to the box `target`."""

    source: str
    target: str


@dataclass(frozen=True)
class Head:
    """A head of a model with several outputs: a frame whose data comes from the box `entry`
    (the trunk's last box, or its `from=` point's)."""

    entry: str
    frame: Group


@dataclass(frozen=True)
class Diagram:
    """A model's diagram: the data flow from its input, and each block's definition, once."""

    title: str
    flow: Stack  # starts with the input box
    blocks: tuple[Group, ...] = ()  # definitions of the blocks the flow uses (none with expand)
    heads: tuple[Head, ...] = ()  # several outputs: each head's frame, fed from the flow

    @property
    def stacks(self) -> tuple[Stack, ...]:
        """The flow, then each head and each block definition (as a one-group stack)."""
        return (self.flow, *((h.frame,) for h in self.heads), *((b,) for b in self.blocks))

    @property
    def entries(self) -> tuple[str | None, ...]:
        """Where the data of each of `stacks` comes from: a head's entry box, else nowhere."""
        return (None, *(h.entry for h in self.heads), *(None for _ in self.blocks))


def boxes(stack: Stack) -> Iterator[Box]:
    """Every box of a stack, in drawing order (branches left to right, then their join)."""
    for item in stack:
        if isinstance(item, Box):
            yield item
        elif isinstance(item, Fork):
            for branch in item.branches:
                yield from boxes(branch)
            yield item.join
        else:
            yield from boxes(item.body)


def all_boxes(diagram: Diagram) -> list[Box]:
    """Every box of the diagram, the flow's first."""
    return [box for stack in diagram.stacks for box in boxes(stack)]


def edges(stack: Stack, entry: str | None = None) -> tuple[list[Edge], str | None]:
    """The edges of a stack whose data comes from box `entry`, and the box its data leaves
    from (`entry` itself for an empty stack)."""
    found: list[Edge] = []
    last = entry
    for item in stack:
        if isinstance(item, Box):
            if last is not None and item.kind != "input":  # a model input starts its own flow
                found.append(Edge(last, item.id))
            last = item.id
        elif isinstance(item, Fork):
            for branch in item.branches:
                inner, out = edges(branch, last)
                found += inner
                if out is not None:
                    found.append(Edge(out, item.join.id))
            last = item.join.id
        else:
            inner, last = edges(item.body, last)
            found += inner
    return found, last


def all_edges(diagram: Diagram) -> list[Edge]:
    """Every edge of the diagram, in drawing order."""
    pairs = zip(diagram.stacks, diagram.entries, strict=True)
    return [e for stack, entry in pairs for e in edges(stack, entry)[0]]


INDENT = "    "


def declare(
    stack: Stack,
    depth: int,
    box: Callable[[Box], str],
    group: Callable[[Group], tuple[list[str], list[str]]],
) -> Iterator[str]:
    """The lines that declare a stack's boxes, for a text format (Mermaid, dot): each box as
    `box` writes it, a fork's branches before its join, and a group's body between the lines
    `group` opens and closes it with, indented one level deeper."""
    pad = INDENT * depth
    for item in stack:
        if isinstance(item, Box):
            yield pad + box(item)
        elif isinstance(item, Fork):
            for branch in item.branches:
                yield from declare(branch, depth, box, group)
            yield pad + box(item.join)
        else:
            opening, closing = group(item)
            yield from (pad + line for line in opening)
            yield from declare(item.body, depth + 1, box, group)
            yield from (pad + line for line in closing)
