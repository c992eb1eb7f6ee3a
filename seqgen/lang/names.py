"""The names of the spec language: its keywords, the names generated code reserves, a block's
input sizes, and the checks that every name a spec uses is defined and every `name=` key unique."""

from __future__ import annotations

import builtins
import difflib
import keyword
import re
from collections.abc import Iterable, Sequence

from seqgen.errors import Location, SpecSyntaxError
from seqgen.ir import (
    BlockDef,
    Expr,
    MergeSpec,
    Name,
    Node,
    RepeatSpec,
    expr_names,
    node_key,
    node_values,
    walk,
)

# the words of the spec language live with the tokenizer, which needs them too
from seqgen.lang.lexer import KEYWORDS as KEYWORDS
from seqgen.lang.lexer import MERGES as MERGES
from seqgen.lang.lexer import Line, unquote
from seqgen.runtime import helper_names

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
    | set(helper_names())  # the classes a generated model file may define (seqgen/runtime/)
    | {name for name in dir(builtins) if not name.startswith("_")}
)


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


def parse_key(line: Line, what: str = "layer name") -> str:
    """The value of `name=` (the `name` and `=` read already): a key in an nn.Sequential or a
    merge's branches, a plain identifier that is no Python keyword or dunder name."""
    tok = line.next()
    text = tok.text if tok.kind == "name" else unquote(tok.text) if tok.kind == "string" else ""
    loc = line.loc(tok.col, len(tok.text) or 1)
    if not text or not text.isidentifier() or not text.isascii():
        raise SpecSyntaxError(
            f"{what} {tok.text!r} is not a valid Python identifier",
            location=loc,
            hint="e.g. `name=stem`: letters, digits and _",
        )
    if keyword.iskeyword(text) or (text.startswith("__") and text.endswith("__")):
        raise SpecSyntaxError(
            f"{what} {text!r} is a Python keyword or dunder name",
            location=loc,
            hint="choose another name",
        )
    return text


def check_keys(items: Sequence[Node], blocks: Iterable[BlockDef]) -> list[SpecSyntaxError]:
    """`name=` keys must be unique in the nn.Sequential that holds them (the model's, a block's,
    a branch's), also after `repeat` unrolls a named node, and none inside a loop; beside a
    `repeat depth:` loop, which is one entry (an nn.Sequential of its passes), names are fine."""
    errors: list[SpecSyntaxError] = []
    for stack in [items, *(b.body for b in blocks)]:
        _stack_keys(stack, False, errors)
    return errors


def _stack_keys(stack: Sequence[Node], in_loop: bool, errors: list[SpecSyntaxError]) -> None:
    """Check the keys of one stack, then of the stacks inside its merges and loops."""
    first: dict[str, Node] = {}
    for node in dict.fromkeys(stack):  # each line once; `repeat` repeats the objects
        key = node_key(node)
        if key is not None:
            seen = first.setdefault(key, node)
            if seen is node and (in_loop or stack.count(node) > 1):
                errors.append(
                    SpecSyntaxError(
                        f"name {key!r} is inside a `repeat` block, so it would be used "
                        "more than once",
                        location=node.loc,
                        hint="names must be unique: name the layers outside `repeat`",
                    )
                )
            elif seen is not node:
                errors.append(
                    SpecSyntaxError(
                        f"name {key!r} is already used on line {seen.loc.line}",
                        location=node.loc,
                        hint="names must be unique in the stack that holds them",
                    )
                )
        if isinstance(node, MergeSpec):
            for branch in node.branches:
                _stack_keys(branch, False, errors)
        elif isinstance(node, RepeatSpec):
            _stack_keys(node.layers, True, errors)


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
