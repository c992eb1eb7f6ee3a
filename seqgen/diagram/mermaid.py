"""Mermaid flowchart text, as GitHub renders it in Markdown (`flowchart TD`).

Every label is quoted, and every character of it outside a small safe set is written as a
Mermaid entity (`#34;`), so no text from a spec (a string argument, a name) can end a label,
open HTML, or start a statement.
"""

from __future__ import annotations

import re

from seqgen.diagram.graph import INDENT, Box, Diagram, Group, all_edges, declare

_SAFE = re.compile(r"[A-Za-z0-9 _.,=:+\-*/()\[\]']")
_SHAPES = {
    "input": ('(["', '"])'),
    "layer": ('["', '"]'),
    "block": ('[["', '"]]'),
    "merge": ('{{"', '"}}'),
}
_PLAIN_NAME = re.compile(r"[\w.+-]+")


def escape(text: str) -> str:
    """Label text as Mermaid shows it literally: unsafe characters as `#NNN;` entities."""
    return "".join(c if _SAFE.fullmatch(c) else f"#{ord(c)};" for c in text)


def mermaid(diagram: Diagram) -> str:
    """The diagram as a Mermaid flowchart, top to bottom."""
    lines = ["flowchart TD"]
    for stack in diagram.stacks:
        lines += declare(stack, 1, _box, _group)
    lines += [f"{INDENT}{e.source} --> {e.target}" for e in all_edges(diagram)]
    return "\n".join(lines) + "\n"


def _group(group: Group) -> tuple[list[str], list[str]]:
    return [f'subgraph {group.id}["{escape(group.title)}"]'], ["end"]


def _box(box: Box) -> str:
    open_, close = _SHAPES[box.kind]
    return f"{box.id}{open_}{escape(box.label)}<br/>{escape(box.shape)}{close}"


def markdown(diagram: Diagram, spec_name: str) -> str:
    """A Markdown file with the diagram in a ```mermaid block, drawn from the spec file
    `spec_name` (shown only when it is a plain file name)."""
    source = f" from `{spec_name}`" if _PLAIN_NAME.fullmatch(spec_name) else ""
    return (
        f"# {diagram.title}\n\n"  # a class name: a Python identifier
        f"Drawn by `seqgen diagram`{source}; regenerate it rather than editing it.\n\n"
        f"```mermaid\n{mermaid(diagram)}```\n"
    )
