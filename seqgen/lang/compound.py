"""The lines that open an indented body: merges (`residual:`, `concat:`, ...), `repeat N:` and
`block NAME(...):`. The parser calls these; they call back its `stack` to parse each body."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from seqgen.errors import SeqgenError, SpecSyntaxError
from seqgen.ir import MERGE_ARITY, BlockDef, Expr, MergeSpec, Name, Node, Param, RepeatSpec, walk
from seqgen.lang.arguments import parse_params
from seqgen.lang.inputs import shared_branches
from seqgen.lang.lexer import MAX_NESTING, Line, Token
from seqgen.lang.names import ALL_INPUT_NAMES, KEYWORDS, check_identifier, parse_key
from seqgen.lang.values_parser import parse_value

# A bound that keeps hostile specs from exhausting memory (`repeat` multiplies layers).
MAX_LAYERS = 10_000  # layers after unrolling `repeat`


@dataclass(frozen=True)
class StackContext:
    """Where a stack of lines sits: at the top level, inside merges or repeats, in a block."""

    top: bool
    depth: int
    block: str | None  # the block being defined, if any
    params: tuple[Param, ...]  # the block's parameters (the model's are read from the parser)
    reads: bool = False  # a layer may read inputs: the top level, or a `repeat` body there


def body_end(items: list[tuple[int, Line]], i: int, stop: int, ind: int) -> int:
    """The index after the line items[i] and the lines indented under it."""
    end = i + 1
    while end < stop and items[end][0] > ind:
        end += 1
    return end


def is_header(line: Line) -> bool:
    """A line that ends with ':' opens an indented block."""
    tokens = line.tokens
    return len(tokens) >= 2 and tokens[-2].kind == "op" and tokens[-2].text == ":"


class Parser(Protocol):
    """What these need of the parser: its declarations so far, its errors, and `stack`."""

    errors: list[SeqgenError]
    params: list[Param]
    class_name: str | None
    blocks: dict[str, BlockDef]

    def stack(
        self, items: list[tuple[int, Line]], start: int, stop: int, scope: StackContext
    ) -> list[Node]: ...


def merge(
    parser: Parser,
    items: list[tuple[int, Line]],
    i: int,
    end: int,
    stop: int,
    line: Line,
    scope: StackContext,
    nodes: list[Node],
) -> int:
    """A merge at items[i] (and a `shortcut:` after a `residual:`); return the next index."""
    head = line.next()
    kind = head.text.lower()
    inner = StackContext(False, scope.depth + 1, scope.block, scope.params)
    dim: Expr | None = None
    key: str | None = None
    try:
        if scope.depth >= MAX_NESTING:
            raise line.error(
                f"blocks are nested more than {MAX_NESTING} deep", head.col, len(head.text)
            )
        options = _header(line, kind)
        dim, key = options.dim, options.key
    except SpecSyntaxError as e:
        parser.errors.append(e)
    if end == i + 1:
        parser.errors.append(
            line.error(f"`{kind}:` needs an indented block after it", head.col, len(head.text))
        )
        return end
    loc = line.loc(head.col, len(head.text))
    if kind == "residual":
        body = parser.stack(items, i + 1, end, inner)
        branches = [tuple(body)]
        if end < stop and items[end][0] == items[i][0]:
            sline = items[end][1]
            stok = sline.peek()
            if stok.kind == "name" and stok.text.lower() == "shortcut" and is_header(sline):
                send = body_end(items, end, stop, items[end][0])
                sline.next()
                try:
                    if _header(sline, "shortcut").key is not None:
                        raise sline.error(
                            "a shortcut is keyed `shortcut` already: it takes no name=",
                            stok.col,
                            8,
                            hint="name the residual itself: `residual name=...:`",
                        )
                    if send == end + 1:
                        raise sline.error(
                            "`shortcut:` needs an indented block after it", stok.col, 8
                        )
                except SpecSyntaxError as e:
                    parser.errors.append(e)
                branches.append(tuple(parser.stack(items, end + 1, send, inner)))
                end = send
        nodes.append(MergeSpec(kind, tuple(branches), loc, key=key))
        return end
    branches = []
    keys: dict[str, int] = {}  # branch names so far, with their line
    branch_keys: list[str | None] = []
    sources: list[str | None] = []  # `branch from=INPUT:` (lang/inputs.py checks them)
    shares: list[str | None] = []  # `branch from=INPUT shares=NAME:` (lang/inputs.py)
    strays = 0
    j = i + 1
    while j < end:
        bind, bline = items[j]
        bend = body_end(items, j, end, bind)
        btok = bline.peek()
        if not (btok.kind == "name" and btok.text.lower() == "branch" and is_header(bline)):
            parser.errors.append(
                bline.error(
                    f"inside `{kind}:`, each line at this level must be `branch:`",
                    btok.col,
                    len(btok.text) or 1,
                    hint="put the layers of each branch, indented, under its own `branch:`",
                )
            )
            strays += 1
            j = bend
            continue
        bline.next()
        bkey: str | None = None
        source = share = None
        try:
            options = _header(bline, "branch")
            bkey, source, share = options.key, options.source, options.shares
            if bkey is not None and bkey in keys:
                raise bline.error(
                    f"branch name {bkey!r} is already used on line {keys[bkey]}",
                    btok.col,
                    6,
                    hint="branch names must be unique in their merge",
                )
            if bkey is not None:
                keys[bkey] = bline.lineno
            if bend == j + 1 and share is None:
                raise bline.error(
                    "`branch:` needs an indented block after it",
                    btok.col,
                    6,
                    hint="a branch that passes its input on is `identity`",
                )
        except SpecSyntaxError as e:
            parser.errors.append(e)
        branches.append(tuple(parser.stack(items, j + 1, bend, inner)))
        branch_keys.append(bkey)
        sources.append(source)
        shares.append(share)
        j = bend
    count, what = MERGE_ARITY.get(kind, (0, ""))
    if count and len(branches) != count and not strays:
        parser.errors.append(
            SpecSyntaxError(
                f"`{kind}:` takes exactly {count} `branch:` stacks, found {len(branches)}",
                location=loc,
                hint=what,
            )
        )
    elif len(branches) < 2 and not strays:
        parser.errors.append(
            SpecSyntaxError(
                f"`{kind}:` needs two or more `branch:` stacks, found {len(branches)}",
                location=loc,
                hint="a single stack needs no merge: write its layers directly",
            )
        )
    named = tuple(branch_keys) if any(k is not None for k in branch_keys) else ()
    read = tuple(sources) if any(s is not None for s in sources) else ()
    made = MergeSpec(kind, tuple(branches), loc, dim, key, named, read)
    nodes.append(shared_branches(made, shares, parser.errors))
    return end


@dataclass(frozen=True)
class _Options:
    """What a merge, `branch` or `shortcut` line sets before its ':'."""

    dim: Expr | None
    key: str | None
    source: str | None  # a branch's `from=INPUT`
    shares: str | None = None  # a branch's `shares=NAME`


def _header(line: Line, kind: str) -> _Options:
    """The options of a merge, `branch` or `shortcut` line after its word, up to its ':':
    `name=N` (its key), for `concat` `dim=D`, for `branch` `from=INPUT`."""
    dim: Expr | None = None
    key: str | None = None
    source: str | None = None
    shares: str | None = None
    allowed = {
        "concat": "`dim=D` and `name=N`",
        "branch": "`name=N`, `from=INPUT`, `shares=B`",
    }.get(kind, "`name=N`")
    while not line.at(":") and line.peek().kind != "end":
        tok = line.peek()
        word = tok.text if tok.kind == "name" and line.peek(1).text == "=" else ""
        if word == "name" and key is None:
            line.next()
            line.next()
            key = parse_key(line, f"{kind} name")
        elif word == "from" and kind == "branch" and source is None:
            line.next()
            line.next()
            source = parse_key(line, "`from=` input name")
        elif word == "shares" and kind == "branch" and shares is None:
            line.next()
            line.next()
            shares = parse_key(line, "`shares=` branch name")
        elif word == "dim" and kind == "concat" and dim is None:
            line.next()
            line.next()
            dim = parse_value(line)
        elif word in ("name", "dim", "from", "shares") and (
            word == "name"
            or (kind, word) in (("concat", "dim"), ("branch", "from"), ("branch", "shares"))
        ):
            raise line.error(f"argument {word!r} is given twice", tok.col, len(word))
        else:
            raise line.error(
                f"`{kind}` takes only {allowed}, found {tok.text!r}",
                tok.col,
                len(tok.text) or 1,
                hint=f"write `{kind}:`" if kind != "concat" else "e.g. `concat dim=1 name=skip:`",
            )
    line.expect(":", f"':' after `{kind}`")
    line.expect_end(f"`{kind}:`")
    return _Options(dim, key, source, shares)


def block_def(
    parser: Parser, items: list[tuple[int, Line]], i: int, end: int, line: Line, scope: StackContext
) -> None:
    """`block NAME(p, q=default):` and its indented body."""
    head = line.next()
    tok = line.next()
    loc = line.loc(tok.col, len(tok.text))
    if not scope.top:
        raise line.error(
            "a `block` is defined at the top level, not inside another block", head.col, 5
        )
    name = check_identifier(tok.text, "block name", loc)
    if name.lower() in KEYWORDS:
        raise SpecSyntaxError(
            f"block name {name!r} is a keyword of the spec language",
            location=loc,
            hint="choose another name",
        )
    if name in parser.blocks:
        raise SpecSyntaxError(
            f"block {name!r} is defined twice (first on line {parser.blocks[name].loc.line})",
            location=loc,
        )
    if name == parser.class_name or any(p.name == name for p in parser.params):
        raise SpecSyntaxError(
            f"block name {name!r} is already the model's name or one of its parameters",
            location=loc,
        )
    params: list[Param] = []
    for param in parse_params(line, block=True):
        if param.name in ALL_INPUT_NAMES:
            raise SpecSyntaxError(
                f"{param.name!r} names the block's input size; a parameter cannot take it",
                location=param.loc,
                hint="seqgen passes it; choose another name",
            )
        if any(p.name == param.name for p in params):
            raise SpecSyntaxError(f"parameter {param.name!r} is defined twice", location=param.loc)
        if param.required and params and not params[-1].required:
            raise SpecSyntaxError(
                f"parameter {param.name!r} without a default follows one with a default",
                location=param.loc,
                hint="put parameters without defaults first",
            )
        params.append(param)
    line.expect(":", f"':' after `block {name}`")
    line.expect_end(f"`block {name}:`")
    if end == i + 1:
        raise line.error(f"block {name!r} needs an indented body", head.col, 5)
    body = parser.stack(items, i + 1, end, StackContext(False, 1, name, tuple(params)))
    parser.blocks[name] = BlockDef(name, tuple(params), tuple(body), loc)


def repeat(
    parser: Parser,
    items: list[tuple[int, Line]],
    i: int,
    stop: int,
    ind: int,
    line: Line,
    head: Token,
    layers: list[Node],
    scope: StackContext,
) -> int:
    """Unroll the `repeat N:` block at items[i] into `layers` (or, with an int parameter as
    its count, add it as a RepeatSpec); return the index after it."""
    end = body_end(items, i, stop, ind)
    try:
        count = _repeat_header(parser, line, scope)
    except SpecSyntaxError as e:
        parser.errors.append(e)
        count = 0  # still parse the body, for its own errors
    if end == i + 1:
        raise line.error(
            "`repeat` needs an indented block after it",
            head.col,
            6,
            hint="indent the layers to repeat under `repeat N:`",
        )
    if scope.depth >= MAX_NESTING:
        raise line.error(f"`repeat` blocks are nested more than {MAX_NESTING} deep", head.col, 6)
    inner = replace(scope, top=False, depth=scope.depth + 1)  # `reads` as where it is
    body = parser.stack(items, i + 1, end, inner)
    if isinstance(count, Name):  # a loop in the generated model
        nested = next((b for b in walk(body) if isinstance(b, RepeatSpec)), None)
        if nested is not None:
            parser.errors.append(
                SpecSyntaxError(
                    "a `repeat` with a parameter count cannot hold another one",
                    location=nested.loc,
                    hint="give one of them a literal count",
                )
            )
        else:
            layers.append(RepeatSpec(count, tuple(body), count.loc))
        return end
    if len(layers) + len(body) * count > MAX_LAYERS:
        parser.errors.append(
            line.error(
                f"the spec unrolls to more than {MAX_LAYERS} layers",
                head.col,
                6,
                hint="repeat fewer times",
            )
        )
        return end
    layers.extend(body * count)
    return end


def _repeat_header(parser: Parser, line: Line, scope: StackContext) -> int | Name:
    """The count of `repeat N:`: a whole number, or an int model parameter (a loop)."""
    line.next()  # `repeat`
    tok = line.next()
    if tok.kind == "name" and line.at(":"):
        params = scope.params if scope.block is not None else parser.params
        param = next((p for p in params if p.name == tok.text), None)
        if param is not None and param.required and param.type_name == "int":
            param = replace(param, default=1)
        loc = line.loc(tok.col, len(tok.text))
        if param is None or type(param.default) is not int or param.default < 1:
            raise SpecSyntaxError(
                f"`repeat {tok.text}:` needs a whole number, or an int model parameter with a "
                "default of 1 or more",
                location=loc,
                hint=f"declare it: `model {parser.class_name or 'Net'}"
                f"({tok.text}=2)`, or write a number",
            )
        line.next()
        line.expect_end("`repeat N:`")
        return Name(tok.text, loc)
    if tok.kind != "number" or not tok.text.isdigit():
        raise line.error(
            "`repeat` needs a whole number of times or an int parameter, like "
            "`repeat 3:` or `repeat depth:`",
            tok.col,
            len(tok.text) or 1,
        )
    count = line.whole(tok)
    if not 1 <= count <= 10_000:
        raise line.error(
            f"repeat count must be between 1 and 10000, got {count}", tok.col, len(tok.text)
        )
    if not line.at(":"):
        t = line.peek()
        raise line.error(
            "expected ':' after the repeat count", t.col, hint=f"write `repeat {count}:`"
        )
    line.next()
    line.expect_end("`repeat N:`")
    return count
