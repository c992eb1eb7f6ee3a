"""`seqgen diagram`: the network drawn from its trace (no torch, nothing run or allocated).

`build` turns a TracedModel into one graph model (graph.py); mermaid.py, svg.py and dot.py each
write it in their format. The output depends only on the trace, so it can be committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from seqgen.diagram.build import build
from seqgen.diagram.dot import dot
from seqgen.diagram.graph import Diagram
from seqgen.diagram.mermaid import markdown, mermaid
from seqgen.diagram.svg import svg
from seqgen.ir import TracedModel

__all__ = ["FORMATS", "Diagram", "build", "draw", "markdown"]

FORMATS: dict[str, Callable[[Diagram], str]] = {"mermaid": mermaid, "svg": svg, "dot": dot}


def draw(
    traced: TracedModel, fmt: str = "mermaid", at: Sequence[str] = (), expand: bool = False
) -> str:
    """The diagram of a traced model in `fmt` (mermaid, svg or dot)."""
    return FORMATS[fmt](build(traced, at, expand))
