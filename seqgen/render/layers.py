"""How the layers inside a generated nn.Sequential are written: one item per call, and the shape
comments between them.

Shape comments read top to bottom, as a reader follows the data: a `# (N, ...)` line is the
output shape of the call below it and of every call after it up to the next comment, so one is
written only where the shape differs from the one last shown (at first, the input shape in the
class docstring). A comment sits on its own line, so black never splits a call to fit it, and a
shape that ten layers keep is written once. A merge that ends with a shape its last branch does
not show (a Concat, a broadcasting Multiply) has its comment on its closing line, where its
output appears: above the call it would read as its first branch's shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seqgen.ir import Dim, TracedLayer, TracedMerge, TracedNode, walk_traced

Item = dict[str, Any]

# how to read them, for the module docstring; the second sentence where a merge has one
SHAPE_NOTE = (
    "A `# (N, ...)` line is the output shape of the layer below it and of the layers after "
    "it, up to the next one."
)
MERGE_NOTE = "`),  # (N, ...)` is the output shape of the merge that ends there."


def shape_text(dims: tuple[Dim, ...]) -> str:
    """`(N, 16, seq_len - 2)`: a traced shape as comments and docstrings show it."""
    return "(" + ", ".join(d.shown for d in dims) + ("," if len(dims) == 1 else "") + ")"


def layer_items(nodes: tuple[TracedNode, ...], input_shape: tuple[Dim, ...]) -> list[Item]:
    """The items of a class's nn.Sequential, which gets `input_shape`; `("key", call)` pairs
    of an OrderedDict when one of them is named (see `named`), a loop's passes then in one
    nn.Sequential under its key."""
    return _stack_items(nodes, shape_text(input_shape))[0]


def named(nodes: Sequence[TracedNode]) -> bool:
    """Whether a stack's nn.Sequential keys its items by name: one of them has `name=`. The
    others keep their index as key ("0", "1", ...), as in a plain nn.Sequential."""
    return any(node.spec.key is not None for node in nodes)


def uses_ordered_dict(stacks: Sequence[Sequence[TracedNode]]) -> bool:
    """Whether some nn.Sequential among these stacks (at any depth) is built from an
    OrderedDict."""
    return any(node.spec.key is not None for nodes in stacks for node in walk_traced(nodes))


def _stack_items(nodes: tuple[TracedNode, ...], shown: str) -> tuple[list[Item], str]:
    """A stack's items, and the shape last shown: `("key", call)` pairs when it is named (a
    node that writes several items, a loop, goes in one nn.Sequential under its key)."""
    if not named(nodes):
        return _items(nodes, shown)
    out = []
    for i, node in enumerate(nodes):
        group, shown = _node_items(node, shown)
        item = (
            group[0]
            if len(group) == 1 and not _loop(node)
            else _holder("nn.Sequential(", group, None)
        )
        out.append(
            {**item, "prefix": f"({_key(node.spec.key, i)!r}, " + item["prefix"], "suffix": ")"}
        )
    return out, shown


def _key(key: str | None, index: int) -> str:
    return str(index) if key is None else key


def closes_with_comment(items: list[Item]) -> bool:
    """Whether a merge among these items (at any depth) has its comment after its `)`."""
    return any(
        item["children"] is not None
        and (item["comment"] is not None or closes_with_comment(item["children"]))
        for item in items
    )


def _leaf(code: str, comment: str | None) -> Item:
    return {"children": None, "code": code, "comment": comment, "prefix": "", "suffix": ""}


def _holder(
    open_: str,
    children: list[Item],
    comment: str | None,
    trailing: tuple[str, ...] = (),
    close: str = ")",
) -> Item:
    return {
        "children": children,
        "open": open_,
        "close": close,
        "trailing": list(trailing),
        "comment": comment,
        "prefix": "",
        "suffix": "",
    }


def _items(nodes: tuple[TracedNode, ...], shown: str) -> tuple[list[Item], str]:
    """The items of one stack, in the order they are written, and the shape last shown."""
    items = []
    for node in nodes:
        group, shown = _node_items(node, shown)
        items += group
    return items, shown


def _loop(node: TracedNode) -> bool:
    return isinstance(node, TracedLayer) and node.repeat is not None


def _node_items(node: TracedNode, shown: str) -> tuple[list[Item], str]:
    """A node's items: one, or for a loop whose first pass changes the shape, that pass's
    nn.Sequential and the loop over the others (so pass k is still item k of the loop)."""
    if not (isinstance(node, TracedLayer) and node.repeat is not None and node.first):
        item, shown = _item(node, shown)
        return [item], shown
    first, shown = _items(node.first, shown)
    # the later passes give back the first's shape (`__init__` checks where it is not plain),
    # so the loop's `]` needs no comment: a call split for one would be black's doing
    body, shown = _items(node.body, shown)
    close = f") for _ in range({node.repeat} - 1)]"
    return [
        _holder("nn.Sequential(", first, None),
        _holder("*[nn.Sequential(", body, None, close=close),
    ], shown


def _item(node: TracedNode, shown: str) -> tuple[Item, str]:
    """How one traced node is written, and the shape shown after it: a call, or a merge or
    `repeat depth:` that holds the items of its stacks."""
    out = shape_text(node.out_shape)
    if isinstance(node, TracedMerge):
        branches = []
        for branch in node.branches:
            item, shown = _stack(branch, shown)
            branches.append(item)
        comment = None if out == shown else out
        if node.spec.kind == "residual":
            if len(branches) == 2:
                branches[1] = {**branches[1], "prefix": "shortcut="}
            return _holder("Residual(", branches, comment), out
        if node.spec.branch_keys:  # one dict of the branches, by name
            keys = [_key(k, i) for i, k in enumerate(node.spec.branch_keys)]
            pairs = [{**b, "prefix": f"{k!r}: "} for k, b in zip(keys, branches, strict=True)]
            branches = [_holder("{", pairs, None, close="}")]
        trailing = (f"dim={node.dim}",) if node.spec.kind == "concat" else ()
        return _holder(f"{node.class_name}(", branches, comment, trailing), out
    if isinstance(node, TracedLayer) and node.repeat is not None:
        body, shown = _items(node.body, shown)  # a repeated body gives back its input's shape
        comment = None if out == shown else out
        close = f") for _ in range({node.repeat})]"
        return _holder("*[nn.Sequential(", body, comment, close=close), out
    return _leaf(node.call, None if out == shown else out), out


def _stack(nodes: tuple[TracedNode, ...], shown: str) -> tuple[Item, str]:
    """A branch: its one unnamed node as is (not a `repeat depth:` loop, whose items would
    become branches), or an nn.Sequential of its nodes (which ends with its last node's shape,
    so it never needs a comment of its own), from an OrderedDict when one of them is named."""
    if len(nodes) == 1 and not named(nodes) and not _loop(nodes[0]):
        return _item(nodes[0], shown)
    children, shown = _stack_items(nodes, shown)
    if named(nodes):
        return _holder("nn.Sequential(OrderedDict([", children, None, close="]))"), shown
    return _holder("nn.Sequential(", children, None), shown


def loop_list_item(node: TracedLayer, input_shape: tuple[Dim, ...]) -> Item:
    """The argument of the nn.ModuleList that a `repeat depth:` loop whose body reads another
    input becomes, one entry per pass: a pass of one layer is that layer, of several an
    nn.ModuleList of them; a first pass that
    changes the shape is written apart, so pass k is still entry k."""
    shown = shape_text(input_shape)
    first: Item | None = None
    if node.first:
        first, shown = _pass(node.first, shown, "", "")
    count = f"{node.repeat} - 1" if node.first else str(node.repeat)
    body, shown = _pass(node.body, shown, "*[" if node.first else "[", f" for _ in range({count})]")
    return body if first is None else _holder("[", [first, body], None, close="]")


def _pass(nodes: tuple[TracedNode, ...], shown: str, open_: str, close: str) -> tuple[Item, str]:
    if len(nodes) == 1:
        item, shown = _item(nodes[0], shown)
        if item["children"] is None:
            return {**item, "code": open_ + item["code"] + close}, shown
        return {**item, "open": open_ + item["open"], "close": item["close"] + close}, shown
    children, shown = _items(nodes, shown)  # no `name=` inside a repeat: a list of them
    return _holder(f"{open_}nn.ModuleList([", children, None, close="])" + close), shown
