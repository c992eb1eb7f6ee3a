"""Repeated submodule classes become blocks, with parameters for the sizes that vary.

Uses are grouped by class and by structure (the same lines, merges and literal arguments; only
int sizes may differ), innermost classes first. A group of two or more uses becomes a block; a
lone use is inlined. Each int that varies between the uses becomes an expression a person would
write: the block's input size (`in_channels`, `in_channels * 6`, `in_channels // 4`), another
parameter (`kernel // 2`), or a parameter of its own.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace

from torch import nn

from seqgen.importer.nodes import Arg, Layer, Merge, Node, Stack, Use

RESERVED = {
    "name",
    "in_channels",
    "in_features",
    "x",
    "N",
    "H",
    "W",
    "D",
    "self",
    "torch",
    "nn",
    "math",
}
RESERVED |= {"model", "batch", "pytest", "sys", "Path", "input_shape", "expected_shapes"}
WORDS = {"residual", "shortcut", "concat", "add", "multiply", "branch", "repeat", "block", "model"}
WIDTHS = {"out_channels", "out_features"}
TAKEN_KEYS = set(dir(nn.Sequential())) | set(dir(nn.ModuleDict()))  # attributes, not keys
DIMS = {"dim", "start_dim", "end_dim", "dim0", "dim1", "dims"}  # literals, never parameters
# attribute names that say nothing about a width: a block's one width is then `out`
GENERIC = re.compile(r"(conv|fc|linear|bn|norm|layer|block|proj|features|branch)?_?\d*")


@dataclass(frozen=True)
class Sym:
    """A size written as an expression of the block's parameters and input sizes."""

    text: str


@dataclass(frozen=True)
class Param:
    name: str
    default: int | None


@dataclass(frozen=True)
class Block:
    """A block definition: its name, parameters and body (sizes as `Sym`s where they vary)."""

    name: str
    params: tuple[Param, ...]
    body: Stack


@dataclass(frozen=True)
class Slot:
    """An int argument that may vary between the uses of a block, and a name for it."""

    value: int
    hint: str
    width: bool


def _is_size(a: Arg) -> bool:
    return isinstance(a.value, int) and not isinstance(a.value, bool) and a.name not in DIMS


def _uses(stack: Stack) -> Iterator[Use]:
    for node in stack:
        if isinstance(node, Merge):
            for b in node.branches:
                yield from _uses(b)
        elif isinstance(node, Use):
            yield from _uses(node.body)
            yield node


def _height(use: Use) -> int:
    return 1 + max((_height(u) for u in _uses(use.body)), default=0)


def _signature(stack: Stack) -> tuple[object, ...]:
    out: list[object] = []
    for node in stack:
        if isinstance(node, Layer):
            out.append(
                (
                    node.word,
                    tuple((a.key, a.name, "#" if _is_size(a) else a.value) for a in node.args),
                )
            )
        elif isinstance(node, Merge):
            out.append((node.kind, node.dim, tuple(_signature(b) for b in node.branches)))
        elif node.block is not None:
            out.append(("use", node.block))
        else:
            out.append(("inline", _signature(node.body)))
    return tuple(out)


def _relative(origin: str | None, base: str) -> str:
    if origin is None:
        return ""
    return origin[len(base) + 1 :] if origin.startswith(base + ".") else origin


def _slots(stack: Stack, base: str) -> list[Slot]:
    out: list[Slot] = []
    for node in stack:
        if isinstance(node, Layer):
            for a in node.args:
                if _is_size(a):
                    width = a.name in WIDTHS
                    hint = _relative(node.origin, base) if width else a.name
                    out.append(Slot(a.value, hint, width))  # type: ignore[arg-type]
        elif isinstance(node, Merge):
            for b in node.branches:
                out += _slots(b, base)
        elif node.block is not None:
            rel = _relative(node.origin, base)
            for i, v in enumerate(node.values):
                # a width is named after where it is used, another size after the inner block's
                # parameter it is given to (`kernel`, `stride`)
                name, width = node.params[i] if i < len(node.params) else (f"{rel}_{i}", True)
                hint = rel if width and i == 0 else name if not width else f"{rel}_{i}"
                out.append(Slot(v, hint, width))  # type: ignore[arg-type]
        else:
            out += _slots(node.body, base)
    return out


def _substitute(stack: Stack, exprs: Iterator[Sym | None]) -> Stack:
    """The stack with each size slot replaced by its expression (None: kept as is)."""
    out: list[Node] = []
    for node in stack:
        if isinstance(node, Layer):
            args = []
            for a in node.args:
                e = next(exprs) if _is_size(a) else None
                args.append(a if e is None else replace(a, value=e, is_default=False))
            out.append(replace(node, args=tuple(args)))
        elif isinstance(node, Merge):
            out.append(replace(node, branches=tuple(_substitute(b, exprs) for b in node.branches)))
        elif node.block is not None:
            values = tuple(e if (e := next(exprs)) is not None else v for v in node.values)
            out.append(replace(node, values=values))
        else:
            out += _substitute(node.body, exprs)
    return tuple(out)


def _name(hint: str, width: bool, taken: set[str]) -> str:
    base = hint.replace(".", "_").replace("#", "_").strip("_") or "size"
    if not width:
        base = {"kernel_size": "kernel", "out_channels": "out", "out_features": "out"}.get(
            base, base
        )
    if not base.isidentifier() or base[0].isdigit():
        base = f"c_{base}"
    name, n = base, 2
    while name in taken or name in RESERVED or keyword.iskeyword(name) or hasattr(builtins, name):
        name, n = f"{base}{n}", n + 1
    return name


def _kind(slot: Slot) -> str:
    """What a size is, for relations: widths relate to widths, a padding to a kernel size."""
    if slot.width or slot.hint == "groups":
        return "width"
    return "kernel_size" if slot.hint == "padding" else slot.hint


def _relation(v: list[int], kind: str, named: list[tuple[str, list[int], str]]) -> str | None:
    """An expression of a named vector of the same kind that gives `v` at every use."""
    same = [(n, w) for n, w, k in named if k == kind]
    for name, w in same:
        if v == w:
            return name
    for name, w in same:
        for c in range(2, 17):
            if v == [x * c for x in w]:
                return f"{name} * {c}"
    for name, w in same:  # `kernel // 2`: true at every use, which is what the spec needs
        for c in range(2, 17):
            if v == [x // c for x in w]:
                return f"{name} // {c}"
    return None


def _parameterize(instances: list[Use], name: str) -> Block:
    first = instances[0]
    per_use = [_slots(u.body, u.origin) for u in instances]
    named: list[tuple[str, list[int], str]] = []
    if first.in_name is not None and all(u.in_name == first.in_name for u in instances):
        named.append((first.in_name, [u.in_size for u in instances], "width"))  # type: ignore[misc]
    new: list[tuple[Slot, list[int]]] = []  # parameters of the block's own, named `#i` for now
    exprs: list[str | None] = []
    for j, slot in enumerate(per_use[0]):
        v = [p[j].value for p in per_use]
        found = None if len(set(v)) == 1 else _relation(v, _kind(slot), named)
        if found is None and len(set(v)) > 1:
            found = f"#{len(new)}"
            named.append((found, v, _kind(slot)))
            new.append((slot, v))
        exprs.append(found)
    widths = sum(1 for slot, _ in new if slot.width)
    # a width is named after its module's path in the block without the Sequential indices
    # (`conv.0` -> `conv`) where that stays unique, else the whole path (`branch2_0`)
    short = {s.hint: ".".join(c for c in s.hint.split(".") if not c.isdigit()) for s, _ in new}
    shorts = Counter(short[s.hint] for s, _ in new if s.width)
    taken: set[str] = set()
    names: list[str] = []
    for slot, _ in new:
        lone = slot.width and widths == 1 and GENERIC.fullmatch(slot.hint.split(".")[-1])
        hint = slot.hint if not slot.width or shorts[short[slot.hint]] > 1 else short[slot.hint]
        names.append(_name("out" if lone else hint or slot.hint, slot.width, taken))
        taken.add(names[-1])

    def named_expr(text: str | None) -> Sym | None:
        if text is None:
            return None
        for i in reversed(range(len(new))):  # `#12` before `#1`
            text = text.replace(f"#{i}", names[i])
        return Sym(text)

    body = _substitute(first.body, iter([named_expr(e) for e in exprs]))
    ordered = [i for i, (s, _) in enumerate(new) if s.width] + [
        i for i, (s, _) in enumerate(new) if not s.width
    ]
    params = tuple(
        Param(names[i], None if new[i][0].width else Counter(new[i][1]).most_common(1)[0][0])
        for i in ordered
    )
    for k, u in enumerate(instances):
        u.values = tuple(new[i][1][k] for i in ordered)
    return Block(name, params, body)


def _block_name(class_name: str, taken: set[str]) -> str:
    base = class_name.lstrip("_") or "Block"
    lower = {n.lower() for n in dir(nn)} | WORDS
    if base.lower() in lower:
        base += "Block"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    return name


def make_blocks(stack: Stack, model_name: str) -> list[Block]:
    """Decide, innermost class first, which uses become blocks; return the blocks in order of
    definition (a block after those it uses). Uses are updated in place."""
    uses = list(_uses(stack))
    blocks: list[Block] = []
    taken = {model_name}
    for height in sorted({_height(u) for u in uses}):
        level = [u for u in uses if _height(u) == height]
        groups: dict[tuple[str, tuple[object, ...]], list[Use]] = {}
        for u in level:
            groups.setdefault((u.class_name, _signature(u.body)), []).append(u)
        for (class_name, _), instances in groups.items():
            if len(instances) < 2 or (len(instances[0].body) < 2 and not _deep(instances[0])):
                continue  # a lone use, or one layer: inlined
            if len({u.origin for u in instances}) != len(instances):
                continue  # one module called twice: its weights are shared, kept inline
            name = _block_name(class_name, taken)
            taken.add(name)
            block = _parameterize(instances, name)
            block = replace(block, body=name_layers(block.body, instances[0].origin))
            for u in instances:
                u.block = name
                u.params = tuple((p.name, p.default is None) for p in block.params)
            blocks.append(block)
    return blocks


def _deep(use: Use) -> bool:
    return any(not isinstance(n, Layer) for n in use.body)


def _layers(stack: Stack) -> Iterator[Layer]:
    """The layers written in this scope: through merges and inlined uses, not into blocks."""
    for node in stack:
        if isinstance(node, Layer):
            yield node
        elif isinstance(node, Merge):
            for b in node.branches:
                yield from _layers(b)
        elif node.block is None:
            yield from _layers(node.body)


def name_layers(stack: Stack, base: str) -> Stack:
    """Each layer with weights named after its attribute in the original module (`conv1`,
    `bn1`, `fc`), where that is one identifier, unique in the scope and free as a key: the
    generated state_dict keys then read like the original's. Indices (`features.0`) stay."""
    candidates = Counter(_relative(layer.origin, base) for layer in _layers(stack) if layer.weights)
    usable = {
        c
        for c, n in candidates.items()
        if n == 1
        and c.isidentifier()
        and not c.startswith("_")
        and c not in TAKEN_KEYS
        and not keyword.iskeyword(c)
    }

    def walk(nodes: Stack) -> Stack:
        out: list[Node] = []
        for node in nodes:
            if isinstance(node, Layer):
                rel = _relative(node.origin, base)
                out.append(replace(node, name=rel) if node.weights and rel in usable else node)
            elif isinstance(node, Merge):
                out.append(replace(node, branches=tuple(walk(b) for b in node.branches)))
            elif node.block is None:
                node.body = walk(node.body)
                out.append(node)
            else:
                out.append(node)
        return tuple(out)

    return walk(stack)
