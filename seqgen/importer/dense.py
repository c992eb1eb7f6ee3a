"""Dense connectivity, as torchvision's DenseNet writes it: a block keeps the list of all the
features so far and calls each layer on that list, and the layer concatenates it first
(`torch.cat(inputs, 1)`). A spec writes the same as one `concat:` per layer ([x, layer(x)]).

`list_calls_as_concats` rewrites a traced forward so that a submodule called with a list of
tensors is called with their concatenation instead (along the dim its own forward concatenates
them), and each concatenation that extends an earlier one by new tensors reads that earlier one:
cat([x, a, b]) after cat([x, a]) becomes cat([cat([x, a]), b]), which concatenation's
associativity makes the same tensor. The layer's own `torch.cat(input, dim)` then reads one
tensor: the identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import fx

from seqgen.importer.layers import CAT


def input_cat_dim(graph: fx.Graph) -> int | None:
    """The dim along which a forward concatenates its input itself (`torch.cat(input, dim)`: the
    input is a list of tensors), or None."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    for n in graph.nodes:
        if is_input_cat(n) and n.args[0] is placeholders[0]:
            dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
            return dim if isinstance(dim, int) else None
    return None


def is_input_cat(node: fx.Node, dim: int | None = None) -> bool:
    """`torch.cat(input, dim)` on the forward's input itself (not on a list written out), along
    `dim` when one is given."""
    if not (
        node.op == "call_function"
        and node.target in CAT
        and bool(node.args)
        and isinstance(node.args[0], fx.Node)
        and node.args[0].op == "placeholder"
    ):
        return False
    along = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return dim is None or (isinstance(along, int) and along == dim)


def list_calls_as_concats(graph: fx.Graph, cat_dim: Callable[[str], int | None]) -> dict[str, int]:
    """Rewrite `graph` in place (see the module docstring); return the targets of the submodule
    calls that took a list, with the dim. `cat_dim(target)` is the dim the called module
    concatenates its list input along (None: it does not; the reader refuses the call)."""
    listed: dict[str, int] = {}
    for n in list(graph.nodes):
        if n.op != "call_module" or len(n.args) != 1 or not isinstance(n.args[0], (list, tuple)):
            continue
        items = n.args[0]
        dim = cat_dim(str(n.target))
        if dim is None or len(items) < 1 or not all(isinstance(i, fx.Node) for i in items):
            continue
        with graph.inserting_before(n):
            joined = graph.call_function(torch.cat, (list(items), dim))
        n.args = (joined,)
        listed[str(n.target)] = dim
    _chain(graph)
    return listed


def _chain(graph: fx.Graph) -> None:
    """Each concatenation of a list written out reads the longest earlier concatenation (same
    dim) whose list is a prefix of its own; a concatenation of one tensor is that tensor."""
    seen: list[tuple[fx.Node, tuple[fx.Node, ...], object]] = []
    for n in list(graph.nodes):
        if n.op != "call_function" or n.target not in CAT or not n.args:
            continue
        items = n.args[0]
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, fx.Node) for i in items):
            continue
        dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
        flat = tuple(items)
        if len(flat) == 1:
            n.replace_all_uses_with(flat[0])
            graph.erase_node(n)
            continue
        best = max(
            (
                s
                for s in seen
                if s[2] == dim and len(s[1]) < len(flat) and flat[: len(s[1])] == s[1]
            ),
            key=lambda s: len(s[1]),
            default=None,
        )
        if best is not None:
            n.args = ([best[0], *flat[len(best[1]) :]], *n.args[1:])
        seen.append((n, flat, dim))
