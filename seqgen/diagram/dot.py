"""Graphviz dot text (for `dot -Tpng`; seqgen itself never runs graphviz).

Labels are double-quoted dot strings: backslashes and quotes are escaped and control
characters dropped, so no text from a spec can end a string.
"""

from __future__ import annotations

from seqgen.diagram.graph import Box, Diagram, Fork, Group, Stack, all_edges

_SHAPES = {
    "input": 'shape=box, style="rounded,filled", fillcolor="#e8f0fe"',
    "layer": "shape=box",
    "block": 'shape=box, style=filled, fillcolor="#fff4e5", peripheries=2',
    "merge": 'shape=hexagon, style=filled, fillcolor="#e6f4ea"',
}
INDENT = "    "


def quote(*lines: str) -> str:
    """A dot string literal showing `lines` as written, one under the other."""
    return '"' + "\\n".join(_escape(line) for line in lines) + '"'


def _escape(text: str) -> str:
    kept = "".join(c for c in text if c.isprintable())
    return kept.replace("\\", "\\\\").replace('"', '\\"')


def dot(diagram: Diagram) -> str:
    """The diagram as a dot digraph, top to bottom; groups are clusters."""
    lines = [
        f"digraph {quote(diagram.title)} {{",
        f"{INDENT}rankdir=TB;",
        f'{INDENT}node [fontname="monospace", fontsize=10];',
        f'{INDENT}graph [fontname="monospace", fontsize=10];',
    ]
    for stack in diagram.stacks:
        _declare(stack, 1, lines)
    lines += [f"{INDENT}{e.source} -> {e.target};" for e in all_edges(diagram)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _declare(stack: Stack, depth: int, lines: list[str]) -> None:
    pad = INDENT * depth
    for item in stack:
        if isinstance(item, Box):
            lines.append(pad + _box(item))
        elif isinstance(item, Fork):
            for branch in item.branches:
                _declare(branch, depth, lines)
            lines.append(pad + _box(item.join))
        else:
            _cluster(item, depth, lines)


def _cluster(group: Group, depth: int, lines: list[str]) -> None:
    pad = INDENT * depth
    style = "dashed" if group.kind == "repeat" else "rounded"
    lines.append(f"{pad}subgraph cluster_{group.id} {{")
    lines.append(f"{pad}{INDENT}label={quote(group.title)}; style={style};")
    _declare(group.body, depth + 1, lines)
    lines.append(f"{pad}}}")


def _box(box: Box) -> str:
    return f"{box.id} [label={quote(box.label, box.shape)}, {_SHAPES[box.kind]}];"
