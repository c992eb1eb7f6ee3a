"""Argument checks (part of the trace stage): no spec value is silently reinterpreted.

Every value, positional or keyword, is checked against the constructor parameter it binds to:
its type from torch's annotations on the class's `__init__` (`_size_2_t` is
`int | tuple[int, int]`, `Optional[...]`, `Literal[...]`), else from a table, else from the
default's type; then the ranges of a few parameters whose typos torch accepts (`eps`,
`momentum`, dropout's `p`, `negative_slope`). Values are evaluated at the parameter defaults, so
an int parameter and arithmetic over int parameters are ints. A size seqgen infers, written out
of PyTorch habit (`conv2d 3 16 3` on a 3-channel input), is named before anything else.
"""

from __future__ import annotations

import collections.abc
import difflib
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from seqgen._typing import class_cache
from seqgen.errors import Location
from seqgen.ir import BinOp, Const, Expr, Neg, Num, Str, TupleExpr
from seqgen.lang.values import expr_source

# ------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class _Type:
    """What a constructor parameter accepts, as far as a spec value can express it."""

    scalars: frozenset[str] = frozenset()  # among "bool", "int", "float", "str", "None"
    items: _Type | None = None  # what a tuple's items must be; None: no tuple
    lengths: frozenset[int] | None = None  # a tuple's allowed lengths; None: any
    choices: frozenset[str] | None = None  # allowed strings; None: any
    anything: bool = False  # a type spec values cannot express (a Tensor, a callable): unchecked

    def __or__(self, other: _Type) -> _Type:
        if self.items is None or other.items is None:
            items, lengths = (
                (other.items, other.lengths) if self.items is None else (self.items, self.lengths)
            )
        else:
            items = self.items | other.items
            lengths = (
                None
                if self.lengths is None or other.lengths is None
                else self.lengths | other.lengths
            )
        strs = [t for t in (self, other) if "str" in t.scalars]
        choices = (
            None
            if not strs or any(t.choices is None for t in strs)
            else frozenset().union(*(t.choices or () for t in strs))
        )
        return _Type(
            self.scalars | other.scalars, items, lengths, choices, self.anything or other.anything
        )


def _scalar(*names: str) -> _Type:
    return _Type(frozenset(names))


ANY_TYPE = _Type(anything=True)
_BOOL = _scalar("bool")
_INT = _scalar("int")
_FLOAT = _scalar("float")
_SIZE = _INT | _Type(items=_INT)
_BY_CLASS: dict[type, _Type] = {
    bool: _BOOL,
    int: _INT,
    float: _FLOAT,
    str: _scalar("str"),
    type(None): _scalar("None"),
}

# Where torch has no annotation (older releases, some classes): what a parameter name means.
BY_NAME: dict[str, _Type] = {
    **dict.fromkeys(
        [
            "bias",
            "inplace",
            "affine",
            "track_running_stats",
            "ceil_mode",
            "count_include_pad",
            "return_indices",
            "elementwise_affine",
        ],
        _BOOL,
    ),
    **dict.fromkeys(["eps", "p", "negative_slope", "alpha", "beta", "lambd"], _FLOAT),
    "momentum": _FLOAT | _scalar("None"),
    **dict.fromkeys(["kernel_size", "stride", "padding", "dilation", "output_padding"], _SIZE),
    **dict.fromkeys(
        [
            "out_features",
            "out_channels",
            "groups",
            "num_groups",
            "start_dim",
            "end_dim",
            "upscale_factor",
            "downscale_factor",
        ],
        _INT,
    ),
}
# Strings torch accepts where its annotation says only `str`: class name prefix, parameter.
CHOICES: dict[tuple[str, str], frozenset[str]] = {
    ("Conv", "padding"): frozenset({"same", "valid"}),
    ("Conv", "padding_mode"): frozenset({"zeros", "reflect", "replicate", "circular"}),
    ("GELU", "approximate"): frozenset({"none", "tanh"}),
    ("Upsample", "mode"): frozenset(
        {"nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact"}
    ),
}
# Sizes of a `...Nd` layer whose annotation allows tuples of any length (`_size_any_t`).
SPATIAL = frozenset(
    {"kernel_size", "stride", "padding", "dilation", "output_size", "output_padding"}
)


def _from_hint(hint: Any) -> _Type:
    """A typing annotation as a _Type (`Union[int, tuple[int, int]]` -> int or 2-tuple)."""
    if hint in _BY_CLASS:
        return _BY_CLASS[hint]
    if hint is None:
        return _scalar("None")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(lambda a, b: a | b, (_from_hint(a) for a in args))
    if origin is typing.Literal:
        if all(isinstance(a, str) for a in args):
            return _Type(frozenset({"str"}), choices=frozenset(args))
        return ANY_TYPE
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _Type(items=_from_hint(args[0]))
        if not args or args == ((),):
            return _Type(items=ANY_TYPE, lengths=frozenset({0}))
        items = functools.reduce(lambda a, b: a | b, (_from_hint(a) for a in args))
        return _Type(items=items, lengths=frozenset({len(args)}))
    if hint is tuple:
        return _Type(items=ANY_TYPE)
    if origin in (list, collections.abc.Sequence) or (
        isinstance(hint, type) and issubclass(hint, tuple)
    ):
        # torch.Size, list[int]: a spec writes them as tuples
        return _Type(items=_from_hint(args[0]) if args else _INT)
    return ANY_TYPE


@class_cache
def parameter_types(cls: type[nn.Module]) -> dict[str, _Type]:
    """What each constructor parameter of `cls` accepts."""
    init = cls.__init__
    if init is nn.Module.__init__:
        return {}
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # an annotation that does not resolve in this torch: use the fallbacks
        hints = {}
    nd = re.search(r"([123])d$", cls.__name__)
    out = {}
    for p in list(inspect.signature(init).parameters.values())[1:]:
        if p.name in hints:
            t = _from_hint(hints[p.name])
        elif p.name in BY_NAME:
            t = BY_NAME[p.name]
        elif p.default is not p.empty and type(p.default) in _BY_CLASS:
            t = _BY_CLASS[type(p.default)] | (_FLOAT if type(p.default) is int else _Type())
        else:
            t = ANY_TYPE
        if p.default is None:
            t = t | _scalar("None")  # `stride: _size_1_t = None`
        if nd and p.name in SPATIAL and t.items is not None and t.lengths is None:
            t = replace(t, lengths=frozenset({1, int(nd.group(1))}))
        for (prefix, pname), choices in CHOICES.items():
            if p.name == pname and cls.__name__.startswith(prefix) and "str" in t.scalars:
                t = replace(t, choices=choices)
        out[p.name] = t
    return out


def fits(value: Any, t: _Type) -> bool:
    if t.anything:
        return True
    if value is None:
        return "None" in t.scalars
    if isinstance(value, bool):
        return "bool" in t.scalars
    if isinstance(value, int):
        return bool({"int", "float"} & t.scalars)  # an int is a float too
    if isinstance(value, float):
        return "float" in t.scalars
    if isinstance(value, str):
        return "str" in t.scalars and (t.choices is None or value in t.choices)
    if isinstance(value, tuple):
        return (
            t.items is not None
            and (t.lengths is None or len(value) in t.lengths)
            and all(fits(v, t.items) for v in value)
        )
    return False


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_ITEM_WORDS = {
    frozenset({"int"}): ("int", "ints"),
    frozenset({"float"}): ("number", "numbers"),
    frozenset({"int", "float"}): ("number", "numbers"),
    frozenset({"int", "None"}): ("size (int or None)", "sizes (int or None)"),
}


def describe(t: _Type) -> str:
    """What a parameter takes, in words: `an int or a tuple of 2 ints`."""
    if t.scalars == {"bool"} and t.items is None:
        return "True or False"
    parts = []
    if "int" in t.scalars and "float" not in t.scalars:
        parts.append("an int")
    if "float" in t.scalars:
        parts.append("a number")
    if "bool" in t.scalars:
        parts.append("True/False")
    if "str" in t.scalars:
        parts.append(
            "one of " + ", ".join(map(repr, sorted(t.choices)))
            if t.choices is not None
            else "a string"
        )
    if t.items is not None:
        one, many = _ITEM_WORDS.get(t.items.scalars, ("value", "values"))
        counts = sorted((t.lengths or frozenset()) - {1}) or sorted(t.lengths or ())
        if not counts:
            parts.append(f"a tuple of {many}")
        else:
            n = " or ".join(map(str, counts))
            parts.append(f"a tuple of {n} {one if counts == [1] else many}")
    if "None" in t.scalars:
        parts.append("None")
    return ", ".join(parts[:-1]) + f" or {parts[-1]}" if len(parts) > 1 else parts[0]


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return {bool: "a bool", int: "an int", float: "a float", str: "a string"}[type(value)]


def _is_literal(e: Expr) -> bool:
    if isinstance(e, (Num, Str, Const)):
        return True
    if isinstance(e, Neg):
        return isinstance(e.operand, Num)
    if isinstance(e, TupleExpr):
        return all(_is_literal(i) for i in e.items)
    return False


def value_span(node: Expr) -> Location:
    """Where a value is written: all of `hidden * 0.5`, not just its operator."""
    if not isinstance(node, BinOp):
        return node.loc
    left: Expr = node
    right: Expr = node
    while isinstance(left, BinOp):
        left = left.left
    while isinstance(right, BinOp):
        right = right.right
    start, end = value_span(left), value_span(right)
    if start.line != end.line or end.col < start.col:
        return node.loc
    return replace(start, width=end.col + end.width - start.col)


def got_text(node: Expr, value: Any) -> str:
    """How a message shows the value a spec gave: `128`, or `k * 2`, a float."""
    if _is_literal(node):
        return (
            expr_source(node)
            if isinstance(value, bool) or value is None
            else f"{expr_source(node)} ({_kind(value)})"
        )
    return f"`{expr_source(node)}`, {_kind(value)} ({value!r} at the defaults)"


def type_hint(pname: str, t: _Type, node: Expr, value: Any) -> str | None:
    """How to write a value that fits, when there is an obvious one."""
    if t.scalars == {"bool"} and t.items is None:
        return f"write {pname}=True or {pname}=False"
    if isinstance(value, float) and "int" in t.scalars and "float" not in t.scalars:
        if not _is_literal(node):
            return "arithmetic with a float gives a float: use `//` and int parameters"
        if value.is_integer():
            return f"write {pname}={int(value)}: sizes are whole numbers"
        return "sizes are whole numbers"
    if (
        isinstance(value, str)
        and re.fullmatch(r"-?\d+(\.\d*)?", value)
        and ({"int", "float"} & t.scalars)
    ):
        return f"write {pname}={value} without quotes"
    if isinstance(value, str) and t.choices:
        close = difflib.get_close_matches(value, sorted(t.choices), n=1, cutoff=0.6)
        return f"did you mean {close[0]!r}?" if close else None
    if (
        isinstance(value, tuple)
        and t.items is not None
        and t.lengths
        and len(value) not in t.lengths
    ):
        n = max(t.lengths)
        also = ", or one int for all" if "int" in t.scalars else ""
        return f"give {_plural(n, 'size')}, one per dimension{also}"
    return None


# ------------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class _Range:
    applies: str  # regex on the class name
    param: str
    ok: Callable[[Any], bool]
    rule: str  # what holds, in words
    why: str


RANGES = (
    _Range(
        r".",
        "eps",
        lambda v: v is None or v > 0,
        "greater than 0",
        "eps keeps a division away from zero",
    ),
    _Range(
        r"Norm",
        "momentum",
        lambda v: v is None or 0 <= v <= 1,
        "between 0 and 1 (or None)",
        "momentum weighs each batch in the running statistics",
    ),
    _Range(
        r"Dropout",
        "p",
        lambda v: 0 <= v <= 1,
        "between 0 and 1",
        "p is the probability of zeroing an element",
    ),
    _Range(
        r"LeakyReLU",
        "negative_slope",
        lambda v: 0 <= v < 1,
        "at least 0 and below 1",
        "negative_slope is the slope for x < 0; 1 makes the layer the identity",
    ),
)


def broken_range(cls: type[nn.Module], pname: str, value: Any) -> _Range | None:
    """The range rule that `value`, given as `cls`'s `pname`, breaks (None: it breaks none)."""
    for r in RANGES:
        applies = r.param == pname and re.search(r.applies, cls.__name__)
        if applies and isinstance(value, int | float | type(None)) and not r.ok(value):
            return r
    return None
