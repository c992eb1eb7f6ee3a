"""Graphviz dot text (for `dot -Tpng`; seqgen itself never runs graphviz).

Labels are double-quoted dot strings: backslashes and quotes are escaped and control
characters dropped, so no text from a spec can end a string.
"""

from __future__ import annotations

from seqgen.diagram.graph import INDENT, Box, Diagram, Group, all_edges, declare

_SHAPES = {
    "input": 'shape=box, style="rounded,filled", fillcolor="#e8f0fe"',
    "layer": "shape=box",
    "block": 'shape=box, style=filled, fillcolor="#fff4e5", peripheries=2',
    "merge": 'shape=hexagon, style=filled, fillcolor="#e6f4ea"',
}


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
        lines += declare(stack, 1, _box, _cluster)
    lines += [f"{INDENT}{e.source} -> {e.target};" for e in all_edges(diagram)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _cluster(group: Group) -> tuple[list[str], list[str]]:
    style = "dashed" if group.kind == "repeat" else "rounded"
    return [
        f"subgraph cluster_{group.id} {{",
        f"{INDENT}label={quote(group.title)}; style={style};",
    ], ["}"]


def _box(box: Box) -> str:
    return f"{box.id} [label={quote(box.label, box.shape)}, {_SHAPES[box.kind]}];"
