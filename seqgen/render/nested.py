"""How forward computes a branch a head reads inside (`head p4 from=p3.down.p4`): as plain
statements, recursively, so that each point on the way is a local.

A branch of a split top-level merge (render/multi_inputs.py) that a head reads into is cut into
nn.Sequential segments after each node a head reads (the segment named after that node, its
output a local of that name) and around each merge the path goes through; such a merge is split
in turn, each of its branches an nn.Sequential `MERGE_BRANCH` (or cut again, where a head reads
further in), its output combined by a plain expression. The other segments are `BRANCH`, or
`BRANCH_0`, `BRANCH_1`, ... where there are several, their output the local `BRANCH` (the
branch's `MERGE_BRANCH` name). An FPN's top-down pathway:

    p3_lat: torch.Tensor = self.p3_lat(c3)
    p3_down: torch.Tensor = self.p3_down_0(c3)
    p4_lat: torch.Tensor = self.p4_lat(p3_down)
    p5: torch.Tensor = self.p5(p3_down)
    p4_down: torch.Tensor = self.p4_down(p5)
    p4: torch.Tensor = p4_lat + p4_down
    p3_down = self.p3_down_1(p4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from seqgen.errors import InternalError
from seqgen.ir import Dim, TracedMerge, TracedModel, TracedNode, head_route
from seqgen.render.layers import layer_items, named

# a head's route inside a branch (lang's `from=` path as (node, branch) indices) and its source
Reads = list[tuple[tuple[tuple[int, int | None], ...], str]]
_OPERATORS = {"add": " + ", "multiply": " * ", "subtract": " - "}


@dataclass
class Out:
    """What writing a branch adds to forward: submodules, statements, the locals declared, the
    local each head reads (by its `from=`), and the node stacks of the new nn.Sequentials."""

    modules: list[dict[str, Any]]
    statements: list[str]
    declared: set[str]
    found: dict[str, str] = field(default_factory=dict)
    stacks: list[tuple[TracedNode, ...]] = field(default_factory=list)
    merges: list[TracedMerge] = field(default_factory=list)

    def assign(self, local: str, value: str) -> None:
        typed = local if local in self.declared else f"{local}: torch.Tensor"
        self.declared.add(local)
        self.statements.append(f"{typed} = {value}")

    def sequential(
        self, attribute: str, nodes: tuple[TracedNode, ...], shape: tuple[Dim, ...]
    ) -> None:
        self.stacks.append(nodes)
        self.modules.append(
            {
                "attribute": attribute,
                "named": named(nodes),
                "layers": layer_items(nodes, shape),
                "single": None,
                "list": None,
            }
        )


def deeper_reads(traced: TracedModel) -> dict[tuple[int, int], Reads]:
    """For each (top-level merge, branch) a head reads inside (`from=p3.down.p4`), the routes
    of those heads inside that branch."""
    out: dict[tuple[int, int], Reads] = {}
    for head in traced.heads:
        route = head_route(traced.spec.layers, head.spec)
        if head.spec.inner and len(route) > 1 and route[0][1] is not None and head.source:
            out.setdefault((route[0][0], route[0][1]), []).append((route[1:], head.source))
    return out


def _pieces(count: int, points: set[int], splits: set[int]) -> list[tuple[int, int] | int]:
    """A branch's segments (start, stop) and its split merges' indices, in order."""
    pieces: list[tuple[int, int] | int] = []
    start = 0
    for i in range(count):
        if i in splits:
            if start < i:
                pieces.append((start, i))
            pieces.append(i)
            start = i + 1
        elif i in points or i == count - 1:
            pieces.append((start, i + 1))
            start = i + 1
    return pieces


def write_branch(
    out: Out,
    nodes: Sequence[TracedNode],
    source: str,
    shape: tuple[Dim, ...],
    base: str,
    reads: Reads,
) -> str:
    """Write branch `nodes` (reading local `source` of `shape`) as statements; returns the local
    that holds its output. `base` is its `MERGE_BRANCH` name."""
    points = {t[0][0] for t, _ in reads if len(t) == 1 and t[0][1] is None}
    splits = {t[0][0] for t, _ in reads if t[0][1] is not None}
    pieces = _pieces(len(nodes), points, splits)
    numbered = [p for p in pieces if isinstance(p, tuple) and p[1] - 1 not in points]
    count, current = 0, source
    for piece in pieces:
        if isinstance(piece, tuple):
            start, end = piece[0], piece[1] - 1
            before = nodes[start - 1].out_shape if start else shape
            if end in points:
                attribute = local = str(nodes[end].spec.key)
            else:
                attribute = base if len(numbered) == 1 else f"{base}_{count}"
                local, count = base, count + 1
            out.sequential(attribute, tuple(nodes[start : end + 1]), before)
            value = f"self.{attribute}({current})"
        else:
            end, merge = piece, nodes[piece]
            if not isinstance(merge, TracedMerge):
                raise InternalError(f"node {piece} of {base} is no merge")  # lang refuses it
            out.merges.append(merge)
            before = nodes[end - 1].out_shape if end else shape
            calls = []
            for j, branch in enumerate(merge.branches):
                keys = merge.spec.branch_keys
                name = f"{merge.spec.key}_{keys[j] if keys and keys[j] is not None else j}"
                sub: Reads = [(t[1:], s) for t, s in reads if t[0] == (end, j) and len(t) > 1]
                if sub:
                    name = write_branch(out, branch, current, before, name, sub)
                else:
                    out.sequential(name, branch, before)
                    out.assign(name, f"self.{name}({current})")
                out.found.update((s, name) for t, s in reads if t == ((end, j),))
                calls.append(name)
            local = str(merge.spec.key) if end in points else base
            value = combined(merge, calls)
        out.assign(local, value)
        current = local
        out.found.update((s, local) for t, s in reads if t == ((end, None),))
    return current


def combined(node: TracedMerge, calls: list[str]) -> str:
    """A split merge's output from its branches' (`calls`): an operator, `torch.cat`,
    `torch.bmm`, or for a reparameterize the sample its helper class draws (randn_like(mu)
    draws what randn_like(std) does: the same shape, dtype and device)."""
    if node.spec.kind == "concat":
        return f"torch.cat([{', '.join(calls)}], dim={node.dim})"
    if node.spec.kind == "bmm":
        return f"torch.bmm({', '.join(calls)})"
    if node.spec.kind == "reparameterize":
        mu, logvar = calls
        return (
            f"{mu} + torch.randn_like({mu}) * torch.exp(0.5 * {logvar}) if self.training else {mu}"
        )
    return _OPERATORS[node.spec.kind].join(calls)


def nested_parts(traced: TracedModel) -> Out:
    """The nn.Sequential stacks and split merges of every branch a head reads inside, as
    forward writes them (for module_stacks and the helper classes a file needs)."""
    out = Out([], [], set())
    for (index, j), reads in deeper_reads(traced).items():
        merge = traced.layers[index]
        if isinstance(merge, TracedMerge):
            write_branch(out, merge.branches[j], "x", traced.input_shape, "b", reads)
    return out
