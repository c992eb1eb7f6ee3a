"""`seqgen import`: a spec from an existing nn.Module, and the mapping that carries its weights.

This package runs the user's code (it imports and calls MODULE:CALLABLE and runs one forward on
a sample input), so only `seqgen import` ever imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from torch import nn

from seqgen.errors import SeqgenError
from seqgen.importer.blocks import Block, Sym, make_blocks, name_layers
from seqgen.importer.emit import Line, spec_text
from seqgen.importer.graph import capture_stack
from seqgen.importer.keys import check_outputs, key_mapping, keys_json, load_generated, remap
from seqgen.importer.load import instantiate, parse_args
from seqgen.importer.nodes import ImportRefused, Layer, Node, Stack, Use

__all__ = [
    "Draft",
    "ImportRefused",
    "capture",
    "check_outputs",
    "key_mapping",
    "keys_json",
    "load_generated",
    "parse_args",
    "remap",
]

WIDTHS = {"out_channels", "out_features"}


@dataclass(frozen=True)
class Draft:
    """A captured model written as spec text, before seqgen has traced it."""

    target: str
    model: nn.Module
    class_name: str
    stack: Stack
    blocks: tuple[Block, ...]
    lines: tuple[Line, ...]
    how: str  # "torch.fx", or which modules were read from forward hooks and why

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines) + "\n"

    def relocate(self, error: SeqgenError) -> ImportRefused:
        """A problem seqgen found in the written spec, told at the user's source line."""
        loc = error.location
        line = (
            self.lines[loc.line - 1]
            if loc is not None and 0 < loc.line <= len(self.lines)
            else None
        )
        where = f"{line.where}: " if line is not None and line.where else ""
        text = f"`{line.text.strip()}`: " if line is not None else ""
        return ImportRefused(
            f"{where}{text}{error.diagnostic.message}",
            hint=error.diagnostic.hint or "this layer has no exact spec equivalent",
        )


def _class_name(model: nn.Module, callable_name: str) -> str:
    name = type(model).__name__
    if type(model) in (nn.Sequential, nn.Module) or not name.isidentifier():
        name = "".join(p[:1].upper() + p[1:] for p in callable_name.split("_") if p)
        name = name if name.isidentifier() else "Imported"
    return name.lstrip("_") or "Imported"


def _flat(stack: Stack) -> list[Node]:
    out: list[Node] = []
    for node in stack:
        out += _flat(node.body) if isinstance(node, Use) and node.block is None else [node]
    return out


def _num_classes(stack: Stack) -> tuple[Stack, dict[str, int]]:
    """The last layer's output size as the model parameter `num_classes`, when the model is a
    classifier (its output is (N, classes)) whose last layer with weights is a top-level linear
    or conv."""
    flat = _flat(stack)
    for i in range(len(flat) - 1, -1, -1):
        node = flat[i]
        if not isinstance(node, Layer):
            return stack, {}
        width = [a for a in node.args if a.name in WIDTHS]
        if width and isinstance(width[0].value, int):
            args = tuple(
                replace(a, value=Sym("num_classes")) if a is width[0] else a for a in node.args
            )
            return (*flat[:i], replace(node, args=args), *flat[i + 1 :]), {
                "num_classes": width[0].value
            }
        if node.word not in {
            "relu",
            "flatten",
            "dropout",
            "adaptiveavgpool2d",
            "adaptiveavgpool1d",
        }:
            return stack, {}
    return stack, {}


def _how(hooked: dict[str, str]) -> str:
    """How the modules not read with torch.fx alone were read; modules read in eval mode for
    the same op (one per residual block, say) are told once, with the first one's reason."""
    if not hooked:
        return "torch.fx"
    parts: list[str] = []
    evals: dict[str, list[str]] = {}
    for q, how in sorted(hooked.items()):
        if " in eval mode (" in how and len(hooked) > 2:
            op = re.sub(r"^.*?\): ", "", how.split(" in eval mode (", 1)[1])
            evals.setdefault(op, []).append(q)
            if len(evals[op]) > 1:
                continue
        parts.append(f"`{q or 'the model'}` read with {how}")
    for names in evals.values():
        if len(names) > 1:
            i = next(i for i, p in enumerate(parts) if p.startswith(f"`{names[0]}`"))
            parts[i] += f"; so were {len(names) - 1} more: " + ", ".join(
                f"`{q}`" for q in names[1:]
            )
    return "; ".join(parts)


def capture(target: str, input_shape: tuple[int, ...], kwargs: dict[str, object]) -> Draft:
    """Build MODULE:CALLABLE, capture its forward, and write it as a spec."""
    model, callable_name = instantiate(target, kwargs)
    stack, captured = capture_stack(model, input_shape)
    class_name = _class_name(model, callable_name)
    blocks = make_blocks(stack, class_name)
    stack = name_layers(stack, "")
    root = captured.calls.get("")
    stack, params = _num_classes(stack) if root is not None and root.out_rank == 2 else (stack, {})
    hooked = {q: how for q, how in captured.how.items() if how != "torch.fx"}
    how = _how(hooked)
    shape = "x".join(map(str, input_shape))
    how_short = "torch.fx"
    if any(h.startswith("forward hooks") for h in hooked.values()):
        how_short += " and forward hooks"
    if any("in eval mode" in h for h in hooked.values()):
        how_short += ", in eval mode where training mode was refused"
    header = [f"imported from {target} by `seqgen import` (--input {shape}, {how_short})"]
    lines = spec_text(header, class_name, params, input_shape, list(blocks), stack)
    return Draft(target, model, class_name, stack, tuple(blocks), tuple(lines), how)
