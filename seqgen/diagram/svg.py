"""A standalone SVG, laid out here (no graphviz, no binary): a stack is a column, a fork's
branches are columns side by side that meet in their merge box, a group is a frame.

Edges are drawn as the layout places the boxes: each keeps its path so far, so the input of a
residual runs down its own column beside the body to the join, never through a box. Text goes
through xml.sax.saxutils (escaped, characters XML cannot hold dropped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from seqgen.diagram.graph import Box, Diagram, Fork, Group, Item, Stack

CHAR_W = 7.2  # a 12px monospace character
LINE_H = 15
BOX_H = 2 * LINE_H + 10
PAD_X = 10
GAP_Y = 26  # between items of a stack
GAP_X = 24  # between branches, and between the flow and the block definitions
SKIP_W = 16  # the column of a branch that is the input itself
FRAME_PAD = 12
TITLE_H = 26  # room under a frame's title for the paths that fan out below it
MARGIN = 16
FILL = {"input": "#e8f0fe", "layer": "#ffffff", "block": "#fff4e5", "merge": "#e6f4ea"}

Point = tuple[float, float]
Path = tuple[Point, ...]


def _box_size(box: Box) -> tuple[float, float]:
    return math.ceil(max(len(box.label), len(box.shape)) * CHAR_W) + 2 * PAD_X, BOX_H


def size(item: Item | Stack) -> tuple[float, float]:
    """Width and height of an item or a stack as laid out."""
    if isinstance(item, tuple):
        sizes = [size(i) for i in item]
        height = sum(h for _, h in sizes) + GAP_Y * max(0, len(sizes) - 1)
        return max((w for w, _ in sizes), default=0), height
    if isinstance(item, Box):
        return _box_size(item)
    if isinstance(item, Fork):
        sizes = [size(b) if b else (SKIP_W, 0) for b in item.branches]
        width = sum(w for w, _ in sizes) + GAP_X * (len(sizes) - 1)
        join_w, join_h = _box_size(item.join)
        return max(width, join_w), max(h for _, h in sizes) + GAP_Y + join_h
    w, h = size(item.body)
    return w + 2 * FRAME_PAD, h + TITLE_H + 2 * FRAME_PAD


@dataclass
class _Canvas:
    """The SVG elements, in drawing order: frames first, then edges, then boxes."""

    frames: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    boxes: list[str] = field(default_factory=list)

    def edge(self, path: Path, to: Point) -> None:
        """Draws `path` on to the top of a box at `to`, turning just above it."""
        x, (tx, ty) = path[-1][0], to
        turn = ty - GAP_Y / 2
        points = _dedup((*path, (x, turn), (tx, turn), (tx, ty)))
        shown = " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
        self.edges.append(f'<polyline class="edge" points="{shown}" marker-end="url(#arrow)"/>')

    def box(self, box: Box, cx: float, top: float) -> None:
        w, h = _box_size(box)
        x = cx - w / 2
        rx = 14 if box.kind == "input" else 3
        self.boxes.append(
            f"<g class={quoteattr(box.kind)} id={quoteattr(box.id)}>"
            f'<rect x="{_n(x)}" y="{_n(top)}" width="{_n(w)}" height="{_n(h)}" rx="{rx}" '
            f'fill="{FILL[box.kind]}" stroke="#444"/>'
            f'<text class="box" x="{_n(cx)}" y="{_n(top + LINE_H + 1)}" text-anchor="middle">'
            f"{_text(box.label)}"
            f'<tspan x="{_n(cx)}" dy="{LINE_H}" fill="#555">{_text(box.shape)}</tspan></text></g>'
        )

    def frame(self, group: Group, cx: float, top: float) -> None:
        w, h = size(group)
        dash = ' stroke-dasharray="5,3"' if group.kind == "repeat" else ""
        self.frames.append(
            f'<rect class="frame" x="{_n(cx - w / 2)}" y="{_n(top)}" width="{_n(w)}" '
            f'height="{_n(h)}" rx="6" fill="#fafafa" stroke="#999"{dash}/>'
            f'<text class="title" x="{_n(cx - w / 2 + FRAME_PAD)}" y="{_n(top + 15)}" '
            f'font-weight="bold">{_text(group.title)}</text>'
        )


def _n(v: float) -> str:
    """A coordinate, without float noise: `12`, `12.5`."""
    return f"{round(v, 1):g}"


def _text(text: str) -> str:
    kept = "".join(c for c in text if c.isprintable() and c not in "\ufffe\uffff")
    return escape(kept)


def _dedup(points: Path) -> Path:
    out: list[Point] = []
    for p in points:
        if not out or out[-1] != p:
            out.append(p)
    return tuple(out)


def _place_stack(
    stack: Stack, cx: float, top: float, into: list[Path], canvas: _Canvas
) -> list[Path]:
    """Places a stack; `into` are the paths arriving at it; returns the paths leaving it."""
    y = top
    for item in stack:
        into = _place(item, cx, y, into, canvas)
        y += size(item)[1] + GAP_Y
    return into


def _place(item: Item, cx: float, top: float, into: list[Path], canvas: _Canvas) -> list[Path]:
    if isinstance(item, Box):
        for path in into:
            canvas.edge(path, (cx, top))
        canvas.box(item, cx, top)
        return [((cx, top + BOX_H),)]
    if isinstance(item, Group):
        canvas.frame(item, cx, top)
        return _place_stack(item.body, cx, top + TITLE_H + FRAME_PAD, into, canvas)
    height = size(item)[1]
    join_top = top + height - BOX_H
    widths = [size(b)[0] if b else SKIP_W for b in item.branches]
    left = cx - (sum(widths) + GAP_X * (len(widths) - 1)) / 2
    leaving: list[Path] = []
    bar = top - GAP_Y / 2  # where the paths fan out to the branches' columns
    for branch, w in zip(item.branches, widths, strict=True):
        bx = left + w / 2
        fanned = [_dedup((*p, (p[-1][0], bar), (bx, bar))) for p in into]
        if branch:
            leaving += _place_stack(branch, bx, top, fanned, canvas)
        else:  # the input itself: down its own column
            leaving += [(*p, (bx, join_top - GAP_Y / 2)) for p in fanned]
        left += w + GAP_X
    return _place(item.join, cx, join_top, leaving, canvas)


def svg(diagram: Diagram) -> str:
    """The diagram as a standalone SVG document: the flow, and each block's definition to
    its right."""
    canvas = _Canvas()
    stacks = diagram.stacks
    sizes = [size(s) for s in stacks]
    top = MARGIN + TITLE_H + 8
    left: float = MARGIN
    for stack, (w, _) in zip(stacks, sizes, strict=True):
        _place_stack(stack, left + w / 2, top, [], canvas)
        left += w + GAP_X
    width = max(left - GAP_X, MARGIN + len(diagram.title) * 9) + MARGIN  # 15px bold title
    height = top + max(h for _, h in sizes) + MARGIN
    head = (
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{_n(width)}" height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" '
        'font-family="monospace" font-size="12">'
    )
    defs = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>'
        "<style>.edge{fill:none;stroke:#555;stroke-width:1.2}</style>"
    )
    title = (
        f'<text class="title" x="{MARGIN}" y="{MARGIN + 14}" font-size="15" '
        f'font-weight="bold">{_text(diagram.title)}</text>'
    )
    body = [head, defs, title, *canvas.frames, *canvas.edges, *canvas.boxes, "</svg>"]
    return "\n".join(body) + "\n"
