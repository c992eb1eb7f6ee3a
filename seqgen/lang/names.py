"""The names of the spec language: its keywords, the names generated code reserves, a block's
input sizes, and the checks that every name a spec uses is defined and every layer key unique."""

from __future__ import annotations

import builtins
import difflib
import keyword
import re
from collections.abc import Iterable, Sequence

from seqgen.errors import Location, SpecSyntaxError
from seqgen.ir import (
    MERGE_CLASSES,
    BlockDef,
    Expr,
    LayerSpec,
    MergeSpec,
    Name,
    Node,
    RepeatSpec,
    expr_names,
    flat_layers,
    node_values,
    walk,
)
from seqgen.runtime import helper_classes

ALIASES = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation", "g": "groups"}
# Names generated code uses itself; a parameter or class with one of these names would shadow it.
# Builtins are reserved too: generated code calls several (sum, tuple, ValueError, ...), and a
# custom template may call any.
RESERVED = frozenset(
    {
        "self",
        "torch",
        "nn",
        "math",
        "pytest",
        "sys",
        "Path",
        "x",
        "N",
        "batch",
        "model",
        # helpers the generated test file defines
        "PARAM_COUNT",
        "input_shape",
        "expected_shapes",
        "expected_param_count",
        "layer_shapes",
        "sample_input",
    }
    | set(helper_classes())  # the classes a generated model file may define (seqgen/runtime/)
    | {name for name in dir(builtins) if not name.startswith("_")}
)


MERGES = frozenset(MERGE_CLASSES)
# Words of the spec language: a block may not take one as its name.
KEYWORDS = frozenset({"model", "input", "repeat", "block", "branch", "shortcut", *MERGES})
# Inside a block, the names of its input sizes, by the input's rank (batch included): dim 1 is
# `in_channels` from rank 3 on, the last dim is `in_features` up to rank 3, and the spatial dims
# of an image or volume are H, W and D.
INPUT_NAMES: dict[int, tuple[str, ...]] = {
    2: ("in_features",),
    3: ("in_channels", "in_features"),
    4: ("in_channels", "H", "W"),
    5: ("in_channels", "D", "H", "W"),
}
ALL_INPUT_NAMES = frozenset(n for names in INPUT_NAMES.values() for n in names)


def input_names(rank: int) -> tuple[str, ...]:
    """The names of a block's input sizes (dims 1..rank-1) for an input of `rank`."""
    return INPUT_NAMES.get(rank, tuple(f"in_dim{i}" for i in range(1, rank)))


def check_identifier(name: str, what: str, loc: Location) -> str:
    """Return `name` if it is safe to place in generated code as `what`, else raise."""
    if not name.isidentifier() or not name.isascii():
        raise SpecSyntaxError(f"{what} {name!r} is not a valid Python identifier", location=loc)
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise SpecSyntaxError(
            f"{what} {name!r} is a Python keyword", location=loc, hint="choose another name"
        )
    if name.startswith("__") and name.endswith("__"):
        raise SpecSyntaxError(
            f"{what} {name!r} is a dunder name, which seqgen refuses", location=loc
        )
    if name in RESERVED:
        raise SpecSyntaxError(
            f"{what} {name!r} is reserved: generated code uses it",
            location=loc,
            hint="Python builtins and the names generated code defines are reserved; "
            "choose another name",
        )
    return name


def camel_case(stem: str) -> str:
    """`variable_input` -> `VariableInput`; the class name when a spec has no `model` line."""
    parts = re.split(r"[^A-Za-z0-9]+", stem)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not name or name[0].isdigit():
        name = "Model" + name
    return name


def check_keys(items: Sequence[Node], blocks: Iterable[BlockDef]) -> list[SpecSyntaxError]:
    """Layer names must be unique, also after `repeat` unrolls a named layer; they key the
    model's own nn.Sequential, so only its top-level layers take one."""
    errors: list[SpecSyntaxError] = []
    nested = [n for m in items if isinstance(m, MergeSpec) for n in flat_layers([m])]
    nested += [n for b in blocks for n in flat_layers(b.body)]
    for layer in dict.fromkeys(nested):
        if layer.key is not None:
            errors.append(
                SpecSyntaxError(
                    "name= is only supported on the model's top-level layers",
                    location=layer.loc,
                    hint="drop name=... inside blocks and merges",
                )
            )
    loops = dict.fromkeys(r for r in items if isinstance(r, RepeatSpec))
    for loop, layer in ((r, n) for r in loops for n in dict.fromkeys(flat_layers(r.layers))):
        if layer.key is not None:
            errors.append(
                SpecSyntaxError(
                    f"layer name {layer.key!r} is inside a `repeat {loop.count.id}:` loop, so "
                    "it would be used more than once",
                    location=layer.loc,
                    hint="layer names must be unique: name the layers outside `repeat`",
                )
            )
    first: dict[str, LayerSpec] = {}
    layers = list(flat_layers([n for n in items if not isinstance(n, (MergeSpec, RepeatSpec))]))
    for layer in dict.fromkeys(layers):  # each line once; `repeat` repeats the objects
        if layer.key is None:
            continue
        seen = first.setdefault(layer.key, layer)
        if seen is layer and layers.count(layer) > 1:
            errors.append(
                SpecSyntaxError(
                    f"layer name {layer.key!r} is inside a `repeat` block, so it would be used "
                    "more than once",
                    location=layer.loc,
                    hint="layer names must be unique: name the layers outside `repeat`",
                )
            )
        elif seen is not layer:
            errors.append(
                SpecSyntaxError(
                    f"layer name {layer.key!r} is already used on line {seen.loc.line}",
                    location=layer.loc,
                    hint="layer names must be unique",
                )
            )
    return errors


def check_names(
    layers: Sequence[Node],
    block: BlockDef | None,
    model: set[str],
    class_name: str | None,
    input_shape: Sequence[Expr] = (),
) -> list[SpecSyntaxError]:
    """Every Name in the input and the layers must be a defined parameter: the model's, or
    inside a block, the block's own and its input sizes. `model`: the model's parameter names."""
    defined = model if block is None else {p.name for p in block.params} | ALL_INPUT_NAMES
    values = list(input_shape) if block is None else []
    for node in dict.fromkeys(walk(layers)):  # `repeat` repeats the same objects
        values += node_values(node)
    return [
        _undefined(name, defined, model, block, class_name)
        for value in values
        for name in expr_names(value)
        if name.id not in defined
    ]


def _undefined(
    name: Name, defined: set[str], model: set[str], block: BlockDef | None, class_name: str | None
) -> SpecSyntaxError:
    """The error for a name that is not among the `defined` ones, with what to write instead."""
    if block is not None and name.id in model:
        return SpecSyntaxError(
            f"model parameter {name.id!r} is used inside block {block.name!r}, "
            "which sees only its own parameters and input sizes",
            location=name.loc,
            hint=f"pass it as a block parameter: `block {block.name}(..., {name.id})`",
        )
    close = difflib.get_close_matches(name.id, sorted(defined), n=1)
    if name.id.lower() in ("true", "false", "none"):
        hint = f"did you mean {name.id.capitalize()}?"
    elif close:
        hint = f"did you mean {close[0]!r}?"
    elif block is not None:
        hint = f"add it to the block's parameters: `block {block.name}(..., {name.id})`"
    else:
        hint = (
            f"declare it in the model line: `model {class_name or 'Net'}"
            f"({name.id}=...)`, or quote it if it is a string"
        )
    return SpecSyntaxError(f"undefined parameter {name.id!r}", location=name.loc, hint=hint)
