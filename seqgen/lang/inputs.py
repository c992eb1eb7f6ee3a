"""Several inputs: `input NAME SHAPE [dtype=long]` lines, and merges whose branches read them.

The first `input` line is the trunk's input. Each further one must be named, as must the first
then, and is read by a `branch from=NAME:` of a concat/add/multiply at the trunk's top level:
the branch's stack starts from that input instead of the merge's. `branch from=NAME shares=B:`
has no stack: it runs branch B's modules on input NAME (siamese towers). The unnamed single
`input SHAPE` reads as it always has.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any, Protocol

from seqgen.errors import Location, SeqgenError, SpecSyntaxError
from seqgen.ir import (
    BlockDef,
    Expr,
    HeadSpec,
    InputSpec,
    LayerSpec,
    MergeSpec,
    Name,
    Node,
    Param,
    RepeatSpec,
    expr_names,
    walk,
)
from seqgen.lang.arguments import dtype_option, parse_dims
from seqgen.lang.lexer import Line, Token
from seqgen.lang.names import check_identifier

# Names an input cannot take: forward's own locals and the modules the generated file imports.
RESERVED = frozenset({"self", "x", "out", "torch", "nn", "features"})

# Names the generated tests of a model with named inputs use as arguments and locals beside the
# int parameters (keyword arguments there): a parameter cannot take one.
TEST_NAMES = frozenset(
    {
        "shapes", "device", "inputs", "out", "trained", "name", "key", "shape", "exported",
        "program", "dynamic_shapes", "input_shapes", "sample_inputs", "expected_output_shape",
        "training", "every", "TRAIN_ONLY", "output_shapes", "expected_output_shapes",
    }
)  # fmt: skip


class InputsState(Protocol):
    """What reading the `input` lines needs of the parser, and sets on it."""

    input: tuple[Expr, ...] | None
    input_loc: Location | None
    input_dtype: str
    input_name: tuple[str, Location] | None
    extra_inputs: list[InputSpec]
    heads: list[HeadSpec]
    blocks: dict[str, BlockDef]
    params: list[Param]
    loose_names: set[str]  # names that lines with errors seem to declare or read


def read_input(state: InputsState, line: Line, head: Token) -> list[Param]:
    """An `input` line (its word read): the only input, the first of several, or another one;
    return the parameters its named sizes declare."""
    named = input_name(line)
    if state.input is not None:
        first = None if state.input_name is None else state.input_name[0]
        another_input(first, state.extra_inputs, named, line, head)
    dtype = dtype_option(line)
    if dtype == "bool" and state.input is None:
        raise line.error(
            "the first input cannot be dtype=bool: the trunk starts from it",
            head.col,
            5,
            hint="a bool input is a mask that a layer reads (`key_padding_mask=NAME`): "
            "declare it after the trunk's input",
        )
    try:  # `()`: one number per sample, (N,); ids the trunk embeds, or lengths beside it
        dims, new = parse_dims(line, empty=state.input is not None or dtype == "long")
    except SpecSyntaxError:
        if state.input is None:  # a bad first input is still the first: no cascade below
            state.input, state.input_loc, state.input_name = (), line.loc(head.col, 5), named
        raise
    if state.input is not None and named is not None:
        state.extra_inputs.append(InputSpec(named[0], dims, named[1], dtype))
    else:
        state.input_dtype = dtype
        state.input, state.input_loc = dims, line.loc(head.col, 5)
        state.input_name = named
    return new


def layer_reads(state: InputsState, layer: LayerSpec, top: bool) -> LayerSpec:
    """`lstm 64 take=hidden lengths=lengths`: a keyword whose value is the name of an input
    declared above reads that input; it moves from the layer's `kwargs` to its `reads` (the
    trace checks that the kind takes it). Only a layer of the trunk's top level, or of the body
    of a `repeat` there, reads one: the generated forward passes the input to it there."""
    names = {i.name for i in state.extra_inputs}
    if state.input_name is not None:
        names.add(state.input_name[0])
    reads = tuple(k for k in layer.kwargs if isinstance(k.value, Name) and k.value.id in names)
    params = {p.name for p in state.params}
    for kw in layer.kwargs:  # `lengths=lenght`: a misspelt input, not a missing parameter
        written = getattr(kw.value, "id", "")
        close = difflib.get_close_matches(written, sorted(names), n=1)
        if difflib.get_close_matches(written, sorted(params), n=1):
            continue  # rather a misspelt parameter: check_names says so
        if isinstance(kw.value, Name) and kw.value.id not in names | params and close:
            raise SpecSyntaxError(
                f"`{kw.written}={kw.value.id}`: the model has no parameter or input named "
                f"{kw.value.id!r}",
                location=kw.value.loc,
                hint=f"did you mean input {close[0]!r}?",
            )
    for value in (*layer.args, *(k.value for k in layer.kwargs if k not in reads)):
        for ref in expr_names(value):  # `linear lengths`: a tensor where a number goes
            if ref.id in names:
                raise SpecSyntaxError(
                    f"{ref.id!r} is an input of the model, not a parameter",
                    location=ref.loc,
                    hint="a layer reads another input by a keyword that takes one, e.g. "
                    f"`lstm 64 take=hidden lengths={ref.id}`",
                )
    if not reads:
        return layer
    if not top:
        read, name = reads[0], next(expr_names(reads[0].value)).id
        state.loose_names.add(name)  # read, though not here: not also "input is not read"
        raise SpecSyntaxError(
            f"`{read.written}={name}` reads input {name!r} (a layer that reads "
            "another input is only supported at the trunk's top level or in a `repeat` there, "
            "not inside a block, a head or a merge)",
            location=read.loc,
            hint="move the layer to the top level of the model",
        )
    kwargs = tuple(k for k in layer.kwargs if k not in reads)
    return replace(layer, kwargs=kwargs, reads=reads)


def reads_of(layer: LayerSpec) -> list[Name]:
    """The inputs a layer reads by its keywords (`lengths=lengths`), as written."""
    return [n for k in layer.reads for n in expr_names(k.value)]


def inputs_fields(state: InputsState) -> dict[str, Any]:
    """ModelSpec's fields for the inputs after the first: `input_name`, `extra_inputs`."""
    name = None if state.input_name is None else state.input_name[0]
    return {"input_name": name, "extra_inputs": tuple(state.extra_inputs)}


def spec_input_errors(
    state: InputsState, layers: Sequence[Node], class_name: str
) -> list[SpecSyntaxError]:
    """input_errors for the parser's inputs, once the whole spec is read."""
    inputs = named_inputs(state.input_name, state.input, state.input_dtype, state.extra_inputs)
    blocks = list(state.blocks.values())
    return input_errors(
        inputs, layers, state.heads, blocks, state.params, class_name, state.loose_names
    )


def input_name(line: Line) -> tuple[str, Location] | None:
    """The name of `input NAME SHAPE` (taken off the line), or None for `input SHAPE`."""
    tok = line.peek()
    if tok.kind != "name":
        return None
    line.next()
    loc = line.loc(tok.col, len(tok.text))
    name = check_identifier(tok.text, "input name", loc)
    if name in RESERVED or name.startswith("_"):
        raise SpecSyntaxError(
            f"input name {name!r} is taken: the generated forward uses it",
            location=loc,
            hint="choose another name, e.g. `image`",
        )
    return name, loc


def named_inputs(
    first: tuple[str, Location] | None,
    shape: tuple[Expr, ...] | None,
    dtype: str,
    extra: Sequence[InputSpec],
) -> tuple[InputSpec, ...]:
    """Every named input, the first first; () for a single unnamed one."""
    if first is None:
        return ()
    return (InputSpec(first[0], shape or (), first[1], dtype), *extra)


def another_input(
    first: str | None,
    extra: Sequence[InputSpec],
    named: tuple[str, Location] | None,
    line: Line,
    head: Token,
) -> None:
    """Refuse a second `input` line that cannot join the first: either is unnamed, or the name
    is taken by an input above."""
    if first is None:
        raise line.error(
            "a spec has one `input` line unless every input is named: the first has no name",
            head.col,
            5,
            hint="name every input, e.g. `input image 3x32x32` and `input meta (16,)`",
        )
    if named is None:
        raise line.error(
            "a second `input` needs a name",
            head.col,
            5,
            hint="e.g. `input meta (16,)`; a `branch from=meta:` reads it",
        )
    name, loc = named
    if name == first or any(i.name == name for i in extra):
        raise SpecSyntaxError(f"input {name!r} is defined twice", location=loc)


def input_errors(
    inputs: Sequence[InputSpec],
    layers: Sequence[Node],
    heads: Sequence[HeadSpec],
    blocks: Sequence[BlockDef],
    params: Sequence[Param],
    class_name: str,
    loose: Collection[str] = (),
) -> list[SpecSyntaxError]:
    """What only the whole spec shows: every `from=` names an input (not a mask) and sits in a
    top-level trunk merge, every input after the first is read (by a merge's branch or a
    layer's keyword, or in `loose`, on a line that had an error of its own), and no name is
    used twice."""
    names = [i.name for i in inputs]
    extra = inputs[1:]
    errors: list[SpecSyntaxError] = []
    top = {id(n) for n in layers}
    nested = [*walk(layers), *(n for h in heads for n in walk(h.layers))]
    nested += [n for b in blocks for n in walk(b.body)]
    bools = {i.name for i in inputs if i.dtype == "bool"}
    looped = [n for node in layers if isinstance(node, RepeatSpec) for n in node.layers]
    read = {
        n.id for node in [*layers, *looped] if isinstance(node, LayerSpec) for n in reads_of(node)
    }
    for node in nested:
        if not isinstance(node, MergeSpec) or not node.branch_from:
            continue
        for source in node.branch_from:
            if source is None:
                continue
            if id(node) not in top:
                errors.append(
                    SpecSyntaxError(
                        "`branch from=INPUT:` is only supported in a merge of the trunk's top "
                        "level (not inside a block, a repeat, a head or another merge)",
                        location=node.loc,
                        hint="move the merge to the top level of the model",
                    )
                )
            elif source in bools:
                errors.append(
                    SpecSyntaxError(
                        f"`from={source}`: input {source!r} is dtype=bool, a mask that a layer "
                        "reads by a keyword, not a branch's input",
                        location=node.loc,
                        hint=f"e.g. `transformerencoderlayer 4 key_padding_mask={source}`",
                    )
                )
            elif source not in names:
                errors.append(
                    SpecSyntaxError(
                        f"`from={source}`: the model has no input named {source!r}",
                        location=node.loc,
                        hint=f"declare it before the layers: `input {source} SHAPE`"
                        if names
                        else f"name the inputs: `input image SHAPE`, `input {source} SHAPE`",
                    )
                )
            read.add(source)
    errors += [
        SpecSyntaxError(
            f"input {i.name!r} is not read by any layer",
            location=i.loc,
            hint=f"read it in a merge (`branch from={i.name}:` under `concat:`, `add:`, "
            f"`multiply:` or `bmm:`) or by a layer's keyword "
            f"(`lstm 64 take=hidden lengths={i.name}`)",
        )
        for i in extra
        if i.name not in read and i.name not in loose
    ]
    if inputs:
        errors += [
            SpecSyntaxError(
                f"parameter {p.name!r} is taken in a model with named inputs: its generated "
                "tests use it",
                location=p.loc,
                hint="choose another name",
            )
            for p in params
            if p.name in TEST_NAMES
        ]
    taken = {p.name for p in params} | {class_name} | {b.name for b in blocks}
    taken |= {h.name for h in heads} | {h.point for h in heads if h.point is not None}
    taken |= {p for h in heads for p in h.inner[::2]}
    errors += [
        SpecSyntaxError(
            f"input name {i.name!r} is also a parameter, block, head, point or the model's name",
            location=i.loc,
            hint="choose another name",
        )
        for i in inputs
        if i.name in taken
    ]
    return errors


def shared_branches(
    merge: MergeSpec, shares: Sequence[str | None], errors: list[SeqgenError]
) -> MergeSpec:
    """`branch from=b shares=left:` (no body): the branch runs the modules of the branch named
    `left` on input b, so its stack is a copy of left's and its weights are left's (siamese
    towers). Errors go to `errors`; the merge comes back with the copies in place."""
    if not any(s is not None for s in shares):
        return merge
    keys = list(merge.branch_keys) or [None] * len(merge.branches)
    sources = list(merge.branch_from) or [None] * len(merge.branches)
    branches = list(merge.branches)
    for j, share in enumerate(shares):
        if share is None:
            continue
        if share not in keys or shares[keys.index(share)] is not None:
            errors.append(
                SpecSyntaxError(
                    f"`shares={share}`: no branch of this merge with a stack is named {share!r}",
                    location=merge.loc,
                    hint=f"name the branch whose layers it reuses: `branch name={share}:`",
                )
            )
        elif sources[j] is None:
            errors.append(
                SpecSyntaxError(
                    f"`shares={share}` runs the same layers on another input: add `from=INPUT`",
                    location=merge.loc,
                )
            )
        elif branches[j]:
            errors.append(
                SpecSyntaxError(
                    f"a branch with `shares={share}` has no stack of its own",
                    location=branches[j][0].loc,
                    hint="drop its indented layers: it runs the shared branch's",
                )
            )
        else:
            branches[j] = branches[keys.index(share)]
    return replace(merge, branches=tuple(branches), branch_shares=tuple(shares))
