"""Spec text from the captured nodes: blocks first, `repeat N:` for runs of identical lines,
`identity` for an empty branch, and defaults left out, as a person writes a spec."""

from __future__ import annotations

from dataclasses import dataclass

from seqgen.importer.blocks import Block, Param, Sym
from seqgen.importer.nodes import Layer, Merge, Node, Stack, Use

INDENT = "    "


@dataclass(frozen=True)
class Line:
    """One line of spec text and, for a layer, where in the user's code it comes from."""

    text: str
    where: str = ""


def value_text(value: object) -> str:
    """A value as the spec writes it (tuples with their parentheses, strings quoted)."""
    if isinstance(value, Sym):
        return value.text
    if isinstance(value, tuple):
        items = ", ".join(value_text(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    return repr(value)  # strings quoted, as the spec reads them


def layer_text(layer: Layer) -> str:
    written = [a for a in layer.args if not a.is_default or isinstance(a.value, Sym)]
    positional = [value_text(a.value) for a in written if a.key is None]
    keywords = [f"{a.key}={value_text(a.value)}" for a in written if a.key is not None]
    named = [f"name={layer.name}"] if layer.name else []
    return " ".join([layer.word, *positional, *keywords, *named])


def use_text(name: str, params: tuple[Param, ...], values: tuple[object, ...]) -> str:
    parts = [name]
    for p, v in zip(params, values, strict=True):
        if p.default is None:
            parts.append(value_text(v))
        elif isinstance(v, Sym) or v != p.default:
            parts.append(f"{p.name}={value_text(v)}")
    return " ".join(parts)


class Writer:
    """Writes stacks with the blocks' parameter lists at hand."""

    def __init__(self, blocks: list[Block]) -> None:
        self.params = {b.name: b.params for b in blocks}

    def node(self, node: Node) -> list[Line]:
        if isinstance(node, Layer):
            return [Line(layer_text(node), node.where)]
        if isinstance(node, Use):
            if node.block is None:
                return self.stack(node.body)
            return [Line(use_text(node.block, self.params[node.block], node.values))]
        return self.merge(node)

    def merge(self, merge: Merge) -> list[Line]:
        if merge.kind == "residual":
            out = [Line("residual:"), *self._indented(merge.branches[0])]
            if len(merge.branches) > 1:
                out += [Line("shortcut:"), *self._indented(merge.branches[1])]
            return out
        head = f"concat dim={merge.dim}:" if merge.kind == "concat" and merge.dim != 1 else ""
        out = [Line(head or f"{merge.kind}:")]
        for branch in merge.branches:
            out += [Line(INDENT + "branch:"), *(_indent(self._indented(branch)))]
        return out

    def _indented(self, stack: Stack) -> list[Line]:
        return _indent(self.stack(stack))

    def stack(self, stack: Stack) -> list[Line]:
        """The lines of a stack, runs of identical nodes (or groups of nodes) as `repeat N:`."""
        return _collapse([p for p in (self.node(n) for n in stack) if p])

    def block(self, block: Block) -> list[Line]:
        params = ", ".join(
            p.name if p.default is None else f"{p.name}={p.default}" for p in block.params
        )
        head = f"block {block.name}({params}):" if params else f"block {block.name}:"
        return [Line(head), *self._indented(block.body)]


def _collapse(parts: list[list[Line]]) -> list[Line]:
    out: list[Line] = []
    i = 0
    while i < len(parts):
        size, count = _run(parts, i)
        if count < 2:
            out += parts[i]
            i += 1
            continue
        out += [Line(f"repeat {count}:"), *_indent(_collapse(parts[i : i + size]))]
        i += size * count
    return out


def _texts(part: list[Line]) -> tuple[str, ...]:
    return tuple(line.text for line in part)


def _run(parts: list[list[Line]], i: int) -> tuple[int, int]:
    """The window size and repeat count that cover the most lines from `i` (count 1: none)."""
    best, best_cover = (1, 1), 0
    for size in range(1, 9):
        window = [_texts(p) for p in parts[i : i + size]]
        if len(window) < size:
            break
        count = 1
        while [_texts(p) for p in parts[i + size * count : i + size * (count + 1)]] == window:
            count += 1
        cover = size * count if count > 1 else 0
        if cover > best_cover:
            best, best_cover = (size, count), cover
    return best


def _indent(lines: list[Line]) -> list[Line]:
    return [Line(INDENT + line.text, line.where) for line in lines]


def spec_text(
    header: list[str],
    model: str,
    params: dict[str, int],
    input_shape: tuple[int, ...],
    blocks: list[Block],
    stack: Stack,
) -> list[Line]:
    """The whole spec: header comments, `model`, `input`, the blocks, the model's stack."""
    writer = Writer(blocks)
    args = ", ".join(f"{k}={v}" for k, v in params.items())
    lines = [Line(f"# {h}") for h in header]
    lines += [Line(f"model {model}({args})" if args else f"model {model}")]
    lines += [Line("input " + "x".join(str(d) for d in input_shape)), Line("")]
    for b in blocks:
        lines += [*writer.block(b), Line("")]
    return lines + writer.stack(stack)
