"""Spec value nodes -> Python source, rebuilt from the parsed nodes (never from spec text)."""

from __future__ import annotations

from seqgen.ir import BinOp, Const, Expr, Name, Neg, Num, Str, TupleExpr

_PREC = {"+": 1, "-": 1, "*": 2, "//": 2}


def expr_source(e: Expr) -> str:
    """Python source for a spec value: literals through repr(), names as checked identifiers."""
    return _source(e, 0)


def _source(e: Expr, min_prec: int) -> str:
    """`e` as source, parenthesised when it binds less tightly than `min_prec` asks."""
    match e:
        case Num() | Str() | Const():
            text = repr(e.value)
            return f"({text})" if isinstance(e, Num) and e.value < 0 and min_prec > 0 else text
        case Name():
            return e.id
        case Neg():
            text = "-" + _source(e.operand, 3)
            return f"({text})" if min_prec > 0 else text
        case TupleExpr():
            items = [_source(i, 0) for i in e.items]
            return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        case BinOp():
            prec = _PREC[e.op]
            text = f"{_source(e.left, prec)} {e.op} {_source(e.right, prec + 1)}"
            return f"({text})" if prec < min_prec else text
        case _:
            raise TypeError(f"not a spec value: {e!r}")
