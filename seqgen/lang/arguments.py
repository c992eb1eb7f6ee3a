"""The rest of a line after its first word: a layer's arguments, a `model` or `block` line's
parameters, and the `input` line's shape and dtype."""

from __future__ import annotations

import difflib
import re

from seqgen.errors import SpecSyntaxError
from seqgen.ir import BlockDef, Const, Expr, Keyword, LayerSpec, Name, Num, Param, Str
from seqgen.lang.hints import without_commas
from seqgen.lang.lexer import Line, Token
from seqgen.lang.names import ALIASES, check_identifier, parse_key
from seqgen.lang.values_parser import parse_unary, parse_value

_SHAPE_X = re.compile(r"\d+(?:x\d+)*")
PARAM_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
# Keywords whose values are words, which may be written unquoted (`lstm 64 take=last`): never
# parameter names
BARE_WORDS = {"take": ("all", "last", "hidden")}
# `input ... dtype=X`: the spellings seqgen reads, and the dtype each means
INPUT_DTYPES = {
    "long": "long",
    "int64": "long",
    "float": "float",
    "float32": "float",
    "bool": "bool",
}


# -- layer lines
def parse_layer(line: Line) -> LayerSpec:
    """A layer line: its name, then `ARG... KEY=VALUE...` (or a Python-style call, kept so that
    a later stage can refuse it with the right spelling)."""
    head = line.next()
    if head.kind != "name":
        raise line.error(
            f"expected a layer name, found {head.text!r}",
            head.col,
            len(head.text),
            hint="a layer line starts with a torch.nn class name, e.g. `linear 10`",
        )
    call_syntax = line.at("(") and not line.peek().space_before
    start = line.prefix.col if line.prefix is not None else head.col
    loc = line.loc(start, head.col + len(head.text) - start)
    if line.prefix is not None and not call_syntax:
        fixed = line.text[: start - 1] + line.text[head.col - 1 :]
        raise SpecSyntaxError(
            f"`{line.prefix.text}{head.text}` is Python; a layer line starts with the torch.nn "
            "class name alone",
            location=loc,
            hint=f"write `{fixed.strip()}`",
            fix=fixed,
        )
    if call_syntax:  # `Linear(784, 10)`: read the call, refused later with the right spelling
        open_tok = line.next()
        args, kwargs, key = _arguments(line, open_tok)
        if line.at(",") and line.peek(1).kind == "end":
            line.next()  # `nn.Conv2d(3, 16, 3),` pasted from an nn.Sequential: refused anyway
        line.expect_end(f"`{head.text}(...)`")
    else:
        args, kwargs, key = _arguments(line, None)
    return LayerSpec(
        head.text,
        tuple(args),
        tuple(kwargs),
        loc,
        key=key,
        call_syntax=call_syntax,
    )


def _arguments(line: Line, open_tok: Token | None) -> tuple[list[Expr], list[Keyword], str | None]:
    """`ARG... KEY=VALUE...` up to the end of the line, or up to `)` after `open_tok`."""
    args: list[Expr] = []
    kwargs: list[Keyword] = []
    key: str | None = None

    def done() -> bool:
        if open_tok is None:
            return line.peek().kind == "end"
        if line.peek().kind == "end":
            raise line.unclosed(open_tok)
        if line.at(")"):
            line.next()
            return True
        return False

    while not done():
        tok = line.peek()
        if open_tok is not None and args + kwargs and not line.at(","):
            raise line.error(f"expected ',' or ')', found {tok.text!r}", tok.col, len(tok.text))
        if open_tok is not None and line.at(","):
            line.next()
            if done():
                break
            tok = line.peek()
        if tok.kind == "name" and line.peek(1).kind == "op" and line.peek(1).text == "=":
            line.next()
            eq = line.next()
            if line.peek().kind == "end" or (
                line.peek().kind == "name" and line.peek(1).text == "="
            ):
                raise line.error(
                    f"dangling '=': {tok.text!r} has no value",
                    eq.col,
                    hint=f"write `{tok.text}=VALUE`",
                )
            if tok.text == "name":
                if key is not None:
                    raise line.error("argument 'name' is given twice", tok.col, 4)
                key = parse_key(line)
                continue
            kw = ALIASES.get(tok.text, tok.text)
            if any(k.name == kw for k in kwargs):
                raise line.error(f"argument {kw!r} is given twice", tok.col, len(tok.text))
            value = parse_value(line, top_level=open_tok is None)
            if kw in BARE_WORDS and isinstance(value, Name):
                value = Str(value.id, value.loc)  # `take=hidden` reads as `take="hidden"`
            kwargs.append(Keyword(kw, value, line.loc(tok.col, len(tok.text)), tok.text))
            continue
        if tok.kind == "op" and tok.text == "=":
            raise line.error(
                "dangling '=': no argument name before it",
                tok.col,
                hint="write `NAME=VALUE` with no space before '='",
            )
        if tok.kind == "op" and tok.text == ")":
            raise line.error("unbalanced parenthesis: ')' without a matching '('", tok.col)
        if open_tok is None and tok.kind == "op" and tok.text == ",":
            fixed = without_commas(line)
            raise SpecSyntaxError(
                "arguments are separated by spaces, not commas",
                location=line.loc(tok.col),
                hint=f"write `{fixed.strip()}`",
                fix=fixed,
            )
        value = parse_value(line, top_level=open_tok is None)
        if kwargs:
            raise SpecSyntaxError(
                "positional argument after a keyword argument",
                location=value.loc,
                hint="put positional arguments first",
            )
        args.append(value)
    return args, kwargs, key


# -- `model NAME(...)` and `block NAME(...):` parameters
def parse_params(line: Line, block: bool) -> list[Param]:
    """`(p: int = 1, q=2)` after a model or block name; a block's may lack defaults."""
    params: list[Param] = []
    if not line.at("("):
        return params
    open_tok = line.next()
    while not line.at(")"):
        ptok = line.next()
        if ptok.kind == "end":
            raise line.unclosed(open_tok)
        if ptok.kind != "name":
            raise line.error(
                f"expected a parameter name, found {ptok.text!r}", ptok.col, len(ptok.text)
            )
        ploc = line.loc(ptok.col, len(ptok.text))
        annotation = _annotation(line, ptok.text)
        value: int | float | bool | str | None = None
        if line.at("="):
            line.next()
            value = _literal(line, ptok.text)
            if annotation is not None:
                value = _check_annotation(line, ptok.text, annotation, value)
        elif not block:
            typed = f": {annotation[0]}" if annotation else ""
            raise line.error(
                f"parameter {ptok.text!r} needs a default value",
                line.peek().col,
                hint=f"write `{ptok.text}{typed} = VALUE`",
            )
        params.append(
            Param(
                check_identifier(ptok.text, "parameter name", ploc),
                value,
                ploc,
                annotation=annotation[0] if annotation and block else None,
            )
        )
        line.separator(open_tok)
    line.next()
    return params


def _annotation(line: Line, pname: str) -> tuple[str, int] | None:
    """An optional `: int` after a parameter name: (type name, column), Python's own form."""
    if not line.at(":"):
        return None
    line.next()
    tok = line.next()
    if tok.kind != "name" or tok.text not in PARAM_TYPES:
        shown = repr(tok.text) if tok.kind != "end" else "nothing"
        raise line.error(
            f"parameter {pname!r} is annotated with {shown}",
            tok.col,
            len(tok.text) or 1,
            hint="parameters are int, float, bool or str (the annotation is "
            f"optional: `{pname}=VALUE` takes the default's type)",
        )
    return tok.text, tok.col


def _check_annotation(
    line: Line, pname: str, annotation: tuple[str, int], value: int | float | bool | str
) -> int | float | bool | str:
    """The default, if it has the annotated type (an int default of a float is widened)."""
    name, col = annotation
    if name == "float" and type(value) is int:
        return float(value)
    if type(value) is not PARAM_TYPES[name]:
        raise line.error(
            f"parameter {pname!r} is annotated {name} but its default {value!r} is a "
            f"{type(value).__name__}",
            col,
            len(name),
            hint=f"give a {name} default, or drop the annotation",
        )
    return value


def _literal(line: Line, pname: str) -> int | float | bool | str:
    """A parameter's default: a literal, possibly signed."""
    tok = line.peek()
    if tok.kind == "end" or line.at(",") or line.at(")"):
        raise line.error(f"dangling '=': parameter {pname!r} has no value", tok.col)
    value = parse_unary(line)
    if isinstance(value, Num | Str) or (isinstance(value, Const) and value.value is not None):
        return value.value  # type: ignore[return-value]
    hint = None
    if isinstance(value, Name) and value.id.lower() in ("true", "false"):
        hint = f"did you mean {value.id.capitalize()}?"
    raise line.error(
        f"the default of {pname!r} must be a literal int, float, bool or string",
        value.loc.col,
        hint=hint,
    )


# -- `input SHAPE [dtype=D]`
def parse_dims(line: Line, empty: bool = False) -> tuple[tuple[Expr, ...], list[Param]]:
    """A shape (`3x32x32`, `(3, 32, 32)`, `(1, seq_len=28)`): its dims, and the parameters its
    named dims declare. With `empty`, `()` is one too: a sample of one number, (N,) with the
    batch (an input beside the trunk's, e.g. each sequence's length)."""
    rest = line.text[line.peek().col - 1 : line.tokens[-1].col - 1].split("#", 1)[0].strip()
    start = line.peek()
    if _SHAPE_X.fullmatch(rest):
        sizes = tuple(
            Num(line.whole(Token("number", d, start.col, True)), line.loc(start.col))
            for d in rest.split("x")
        )
        return sizes, []
    if start.kind == "end":
        raise line.error(
            "`input` needs a shape",
            start.col,
            hint="e.g. `input 3x32x32` or `input (1, seq_len=28)`",
        )
    if not line.at("("):
        raise line.error(
            f"cannot read the shape {rest!r}",
            start.col,
            len(rest),
            hint="write `3x32x32` or `(3, 32, 32)`; a named dim is `(1, seq_len=28)`",
        )
    open_tok = line.next()
    dims: list[Expr] = []
    new: list[Param] = []
    while not line.at(")"):
        tok = line.peek()
        if tok.kind == "end":
            raise line.unclosed(open_tok)
        if tok.kind == "name" and line.peek(1).text == "=" and line.peek(1).kind == "op":
            line.next()
            line.next()
            loc = line.loc(tok.col, len(tok.text))
            vtok = line.peek()
            if vtok.kind != "number" or not vtok.text.isdigit():
                raise line.error(
                    f"named dim {tok.text!r} needs a positive whole sample size",
                    vtok.col,
                    len(vtok.text) or 1,
                    hint=f"e.g. `{tok.text}=28`",
                )
            line.next()
            new.append(
                Param(
                    check_identifier(tok.text, "parameter name", loc),
                    line.whole(vtok),
                    loc,
                    from_input=True,
                )
            )
            dims.append(Name(tok.text, loc))
        else:
            dims.append(parse_value(line))
        line.separator(open_tok)
    line.next()
    line.expect_end("the shape")
    if not dims and not empty:
        raise line.error(
            "the input shape is empty",
            open_tok.col,
            hint="give one sample's shape, batch excluded, e.g. `(10,)`; `()` is one number "
            "per sample, for an input of `dtype=long` (an id to embed, each sequence's length) "
            "or an input after the first",
        )
    return tuple(dims), new


def dtype_option(line: Line) -> str:
    """A trailing `dtype=long` (or int64, float, float32, bool) on the input line, taken off it."""
    toks = line.tokens
    if len(toks) < 4 or toks[-4].text != "dtype" or toks[-3].text != "=":
        return "float"
    value = toks[-2]
    dtype = INPUT_DTYPES.get(value.text)
    if dtype is None:
        raise line.error(
            f"unknown input dtype {value.text!r}",
            value.col,
            len(value.text),
            hint="write dtype=long for integer token ids (an embedding's input) or lengths, "
            "dtype=bool for a padding mask; the default is float",
        )
    line.tokens = [*toks[:-4], Token("end", "", toks[-4].col, True)]
    return dtype


# -- block uses
def bind_use(block: BlockDef, layer: LayerSpec) -> None:
    """A block use's arguments must fit the block's parameters."""
    params = [p.name for p in block.params]
    if len(layer.args) > len(params):
        extra = layer.args[len(params)]
        raise SpecSyntaxError(
            f"block {block.name!r} takes {len(params)} argument{'s' * (len(params) != 1)} "
            f"({', '.join(params) or 'none'}), {len(layer.args)} given",
            location=extra.loc,
        )
    given = set(params[: len(layer.args)])
    for kw in layer.kwargs:
        if kw.written not in params:
            close = difflib.get_close_matches(kw.written, params, n=1)
            raise SpecSyntaxError(
                f"block {block.name!r} has no parameter {kw.written!r}",
                location=kw.loc,
                hint=f"did you mean {close[0]!r}?"
                if close
                else f"its parameters: {', '.join(params) or 'none'}",
            )
        if kw.written in given:
            raise SpecSyntaxError(
                f"argument {kw.written!r} is given twice (by position and by name)",
                location=kw.loc,
            )
        given.add(kw.written)
    missing = [p.name for p in block.params if p.required and p.name not in given]
    if missing:
        raise SpecSyntaxError(
            f"block {block.name!r} needs {', '.join(repr(m) for m in missing)}",
            location=layer.loc,
            hint=f"e.g. `{block.name} " + " ".join(f"{m}=..." for m in missing) + "`",
        )
