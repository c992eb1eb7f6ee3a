"""Spec values: the arithmetic, literals, names and tuples of one line, parsed into Expr nodes."""

from __future__ import annotations

from seqgen.ir import BinOp, Const, Expr, Name, Neg, Num, Str, TupleExpr
from seqgen.lang.lexer import Line, Token, unquote


def parse_value(line: Line, top_level: bool = False) -> Expr:
    """Parse `term (('+'|'-') term)*`; at top level a glued sign starts a new argument."""
    depth = line.depth
    left = _term(line)
    while line.at("+") or line.at("-"):
        if top_level and _is_sign(line, line.peek()):
            break
        op = line.next()
        line.deeper(op)  # a chain of operators is a left-leaning tree: each one nests
        right = _term(line)
        left = BinOp(op.text, left, right, line.loc(op.col))
    line.depth = depth
    return left


def _is_sign(line: Line, tok: Token) -> bool:
    nxt = line.peek(1)
    return tok.text == "-" and tok.space_before and not nxt.space_before and nxt.kind == "number"


def _term(line: Line) -> Expr:
    depth = line.depth
    left = parse_unary(line)
    while line.at("*") or line.at("//"):
        op = line.next()
        line.deeper(op)
        right = parse_unary(line)
        left = BinOp(op.text, left, right, line.loc(op.col))
    line.depth = depth
    return left


def parse_unary(line: Line) -> Expr:
    """A value with its leading signs (`-x`, `+3`): an atom, or a sign applied to one."""
    if line.at("-") or line.at("+"):
        depth = line.depth
        tok = line.next()
        line.deeper(tok)
        operand = parse_unary(line)
        line.depth = depth
        if tok.text == "+":
            return operand
        if isinstance(operand, Num):  # fold `-1` into a literal
            return Num(-operand.value, line.loc(tok.col))
        return Neg(operand, line.loc(tok.col))
    return _atom(line)


def _atom(line: Line) -> Expr:
    tok = line.next()
    loc = line.loc(tok.col, len(tok.text))
    if tok.kind == "number":
        text = tok.text
        number: int | float = line.whole(tok) if text.isdigit() else float(text)
        if isinstance(number, float) and number in (float("inf"), float("-inf")):
            raise line.error(f"number {text} is too large", tok.col, len(text))
        return Num(number, loc)
    if tok.kind == "string":
        return Str(unquote(tok.text), loc)
    if tok.kind == "name":
        if tok.text in ("True", "False", "None"):
            return Const({"True": True, "False": False, "None": None}[tok.text], loc)
        return Name(tok.text, loc)
    if tok.kind == "op" and tok.text == "(":
        depth = line.depth
        line.deeper(tok)
        value = _paren(line, tok)
        line.depth = depth
        return value
    if tok.kind == "end":
        raise line.error("expected a value, found end of line", tok.col)
    raise line.error(f"expected a value, found {tok.text!r}", tok.col, len(tok.text))


def _paren(line: Line, open_tok: Token) -> Expr:
    items: list[Expr] = []
    trailing_comma = False
    while not line.at(")"):
        if line.peek().kind == "end":
            raise line.unclosed(open_tok)
        items.append(parse_value(line))
        trailing_comma = line.at(",")
        line.separator(open_tok)
    line.next()
    if len(items) == 1 and not trailing_comma:
        return items[0]
    return TupleExpr(tuple(items), line.loc(open_tok.col))
