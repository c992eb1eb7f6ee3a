"""Every use of torch's private symbolic-shape API lives here (ShapeEnv, FakeTensorMode, sympy).

The trace stage asks this module for symbolic sizes, builds modules on fake tensors without
initialising weights, and turns sympy size expressions back into plain Python source.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import sympy
import torch
from torch._dispatch.python import enable_python_dispatcher, no_python_dispatcher
from torch._guards import GuardSource, SLoc, Source
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv
from torch.utils._sympy import functions as symfn

from seqgen._typing import class_cache

# torch 2.10 made Source.name and Source.guard_source properties; before, they are methods.
_SOURCE_PROPERTIES = not callable(inspect.getattr_static(Source, "name"))


@dataclass(frozen=True)
class _ParamSource(Source):
    """Names a symbol after the model parameter it stands for (as dynamo's ConstantSource does)."""

    param: str

    if _SOURCE_PROPERTIES:

        @property
        def guard_source(self) -> GuardSource:
            return GuardSource.CONSTANT

        @property
        def _name_template(self) -> str:
            return self.param
    else:  # torch < 2.10

        def guard_source(self) -> GuardSource:
            return GuardSource.CONSTANT

        def name(self) -> str:  # type: ignore[override]
            return self.param

    def reconstruct(self, codegen: Any) -> None:  # pragma: no cover - only dynamo calls this
        raise NotImplementedError

    def make_guard(self, fn: Any) -> Any:  # pragma: no cover - only dynamo calls this
        raise NotImplementedError


class Session:
    """A ShapeEnv and a FakeTensorMode: tensors made inside `active()` have no storage."""

    def __init__(self) -> None:
        # duck_shape=False: two parameters that happen to share a sample value stay two symbols.
        # specialize_zero_one=False: a parameter whose sample is 1 still gets a symbol.
        self.env = ShapeEnv(duck_shape=False, specialize_zero_one=False)
        # ShapeEnv labels each guard with the user's source line; finding it imports
        # torch.export, torch._inductor and dynamo's guards (0.2 s, 19 MB) for a label seqgen
        # never reads (see BENCHMARKS.md).
        self.env._get_stack_summary = _no_stack_summary  # type: ignore[method-assign]
        self.mode = FakeTensorMode(shape_env=self.env, allow_non_fake_inputs=True)
        self.names: dict[sympy.Symbol, str] = {}

    def symbol(self, name: str, hint: int, size: bool = True) -> torch.SymInt | int:
        """A symbolic int that prints as `name` and behaves like `hint`.

        A size is known positive; any other int (a padding, a channel count written as
        `ch * 2 + 1`) may be zero or negative, so sympy must not assume a sign for it.
        """
        source = _ParamSource(name)
        sym = self.env.create_symbol(
            hint, source, dynamic_dim=DimDynamic.DYNAMIC, positive=True if size else None
        )
        self.names[sym] = name
        return self.env.create_symintnode(sym, hint=hint, source=source)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Run torch code on fake tensors, with symbolic-shape-aware Python decompositions.

        torch logs a traceback when a fake kernel rejects its input; seqgen reports that error
        itself, so the fake-tensor logger is silenced meanwhile.
        """
        logger = logging.getLogger("torch._subclasses.fake_tensor")
        level = logger.level
        logger.setLevel(logging.CRITICAL)
        try:
            with self.mode, enable_python_dispatcher(), _symbolic_composites():
                yield
        finally:
            logger.setLevel(level)

    def specialized(self) -> dict[str, str]:
        """Parameters whose symbol torch replaced during the trace, with what it became."""
        out = {}
        for sym, name in self.names.items():
            repl = self.env.replacements.get(sym)
            if repl is not None and repl != sym:
                out[name] = to_python(repl, self.names)
        return out


@contextlib.contextmanager
def real_tensors() -> Iterator[None]:
    """Inside `Session.active()`, make real tensors again (for a small CPU or meta check).

    The Python dispatcher is off for them too: it exists for symbolic sizes, and under it torch
    2.8's meta LSTM returns h_n with an extra dim ((layers * dirs, 1, N, H)).
    """
    with unset_fake_temporarily(), no_python_dispatcher():
        yield


def _no_stack_summary(is_debug: bool = False, framework_loc: Any = None) -> tuple[SLoc, str]:
    return SLoc(framework_loc, None), ""


def expr_of(value: Any) -> sympy.Expr:
    """The sympy expression of an int or SymInt."""
    if isinstance(value, torch.SymInt):
        return value.node.expr
    return sympy.Integer(int(value))


def simplify(session: Session, expr: sympy.Expr) -> sympy.Expr:
    """Apply the ShapeEnv's replacements (what the trace proved equal)."""
    return session.env.replace(expr)


def construct(
    cls: type[torch.nn.Module], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> torch.nn.Module:
    """Instantiate `cls` without initialising weights: initialisers would specialise sizes."""
    return _no_init_subclass(cls)(*args, **kwargs)


@class_cache
def _no_init_subclass(cls: type[torch.nn.Module]) -> type[torch.nn.Module]:
    if not hasattr(cls, "reset_parameters"):
        return cls
    return type(
        cls.__name__, (cls,), {"reset_parameters": lambda self: None, "__module__": cls.__module__}
    )


@contextlib.contextmanager
def _symbolic_composites() -> Iterator[None]:
    """Route composite ops whose C++ kernels read sizes as plain ints to size-generic ones."""
    orig = {name: getattr(torch, name) for name in _COMPOSITES}
    try:
        for name, fn in _COMPOSITES.items():
            setattr(torch, name, fn)
        yield
    finally:
        for name, fn in orig.items():
            setattr(torch, name, fn)


def _max_pool1d(
    input: torch.Tensor,
    kernel_size: Any,
    stride: Any = (),
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> torch.Tensor:
    # torch.max_pool1d's CPU path checks sizes with concrete ints; the with_indices op is symbolic.
    out = torch.ops.aten.max_pool1d_with_indices(
        input, kernel_size, stride, padding, dilation, ceil_mode
    )  # torch.ops is untyped
    return cast(torch.Tensor, out[0])


_COMPOSITES = {"max_pool1d": _max_pool1d}

# ------------------------------------------------------------------ sympy -> Python source

# Python's binding strength, loosest first: `or`, `and`, `not`, comparisons, `+ -`, `* // %`,
# unary minus, atoms (names, numbers, calls, parenthesised text).
_PREC_OR, _PREC_AND, _PREC_NOT, _PREC_CMP, _PREC_ADD, _PREC_MUL, _PREC_UNARY, _PREC_ATOM = range(8)
_RELATIONS = {  # each relation's operator, and its negation's
    sympy.Ge: (">=", "<"),
    sympy.Gt: (">", "<="),
    sympy.Le: ("<=", ">"),
    sympy.Lt: ("<", ">="),
    sympy.Eq: ("==", "!="),
    sympy.Ne: ("!=", "=="),
}


MAXES = (sympy.Max, symfn.Max)
MIN_MAX = (*MAXES, sympy.Min, symfn.Min)
CEIL_DIV = symfn.CeilDiv  # -(-a // b)
FLOOR_DIVISIONS = (symfn.FloorDiv, CEIL_DIV)  # a // b and -(-a // b)
MODS = (symfn.Mod, symfn.PythonMod, sympy.Mod)  # a % b


class Unprintable(Exception):
    """A size expression that plain Python arithmetic cannot express."""


def to_python(expr: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> str:
    """Render a size expression (or a condition on sizes) as Python source over the names.

    Every operand of `//` and `%` that is not atomic is parenthesised, and so is every `//` or
    `%` inside a product: `2 * (h // 2)`, never `2 * h // 2`. Terms and factors are ordered by
    their rendered text, so the output never depends on torch's internal symbol names.
    """
    return _emit(sympy.sympify(expr), names)[0]


def to_python_negated(cond: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> str:
    """The simplest Python that is true exactly when `cond` is false (`a != b` for `a == b`).
    Parts of `and`/`or` keep `to_python`'s order: the same sizes are read in the same order."""
    return _emit_negated(sympy.sympify(cond), names)[0]


def _emit_negated(e: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> tuple[str, int]:
    if type(e) in _RELATIONS:
        return _emit_relation(e, names, _RELATIONS[type(e)][1])
    if isinstance(e, sympy.Not):
        return _emit(e.args[0], names)
    if isinstance(e, (sympy.And, sympy.Or)):  # not (a and b) is (not a) or (not b)
        own = _PREC_AND if isinstance(e, sympy.And) else _PREC_OR
        op, prec = ("or", _PREC_OR) if own == _PREC_AND else ("and", _PREC_AND)
        parts = sorted(e.args, key=lambda a: _wrap(_emit(a, names), own + 1))
        return f" {op} ".join(_wrap(_emit_negated(a, names), prec + 1) for a in parts), prec
    return f"not {_wrap(_emit(e, names), _PREC_NOT)}", _PREC_NOT


def _wrap(text_prec: tuple[str, int], min_prec: int) -> str:
    text, prec = text_prec
    return f"({text})" if prec < min_prec else text


def _atom(e: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> str:
    """`e` as an atom: parenthesised unless it is a name, a non-negative number or a call."""
    return _wrap(_emit(e, names), _PREC_ATOM)


def _emit(e: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> tuple[str, int]:
    if e is sympy.true or e is sympy.false:
        return ("True" if e is sympy.true else "False"), _PREC_ATOM
    if isinstance(e, sympy.Integer):
        v = int(e)
        return (str(v), _PREC_ATOM) if v >= 0 else (str(v), _PREC_UNARY)
    if isinstance(e, sympy.Symbol):
        if e not in names:
            raise Unprintable(f"unknown symbol {e}")
        return names[e], _PREC_ATOM
    if isinstance(e, sympy.Add):
        return _emit_sum(e, names)
    if isinstance(e, sympy.Mul):
        coeff, rest = e.as_coeff_Mul()
        if coeff == -1:
            return f"-{_wrap(_emit(rest, names), _PREC_UNARY)}", _PREC_UNARY
        if not isinstance(coeff, sympy.Integer):
            raise Unprintable(f"non-integer coefficient in {e}")
        factors = sorted(
            (_emit_factor(f, names) for f in sympy.Mul.make_args(rest)),
            key=lambda text: (text.lstrip("("), text),
        )
        if coeff != 1:
            factors.insert(0, str(int(coeff)))
        return " * ".join(factors), _PREC_MUL
    if isinstance(e, (sympy.Pow, symfn.PowByNatural)):
        base, exp = e.args
        if not (isinstance(exp, sympy.Integer) and int(exp) > 0):
            raise Unprintable(f"power {e}")
        return " * ".join([_emit_factor(base, names)] * int(exp)), _PREC_MUL
    if isinstance(e, symfn.FloorDiv):
        a, b = e.args
        return f"{_atom(a, names)} // {_atom(b, names)}", _PREC_MUL
    if isinstance(e, symfn.CeilDiv):
        a, b = e.args
        return f"-(-{_atom(a, names)} // {_atom(b, names)})", _PREC_UNARY
    if isinstance(e, (symfn.Mod, symfn.PythonMod, sympy.Mod)):
        a, b = e.args
        return f"{_atom(a, names)} % {_atom(b, names)}", _PREC_MUL
    if isinstance(e, (sympy.Max, symfn.Max, sympy.Min, symfn.Min)):
        fn = "max" if isinstance(e, (sympy.Max, symfn.Max)) else "min"
        args = sorted(_emit(a, names)[0] for a in e.args)
        return f"{fn}({', '.join(args)})", _PREC_ATOM
    if type(e) in _RELATIONS:
        return _emit_relation(e, names, _RELATIONS[type(e)][0])
    if isinstance(e, sympy.Not):
        return f"not {_wrap(_emit(e.args[0], names), _PREC_NOT)}", _PREC_NOT
    if isinstance(e, (sympy.And, sympy.Or)):
        op, prec = ("and", _PREC_AND) if isinstance(e, sympy.And) else ("or", _PREC_OR)
        parts = sorted(_wrap(_emit(a, names), prec + 1) for a in e.args)
        return f" {op} ".join(parts), prec
    raise Unprintable(f"{type(e).__name__}: {e}")


def _emit_relation(e: sympy.Basic, names: Mapping[sympy.Symbol, str], op: str) -> tuple[str, int]:
    lhs, rhs = (_wrap(_emit(a, names), _PREC_ADD) for a in e.args)
    return f"{lhs} {op} {rhs}", _PREC_CMP


def _emit_factor(f: sympy.Basic, names: Mapping[sympy.Symbol, str]) -> str:
    """A factor of a product: a sum, `//`, `%` or negative number inside it is parenthesised."""
    text, prec = _emit(f, names)
    return (
        text if prec == _PREC_ATOM or (prec == _PREC_MUL and not _has_division(f)) else f"({text})"
    )


def _has_division(f: sympy.Basic) -> bool:
    return isinstance(f, (symfn.FloorDiv, symfn.Mod, symfn.PythonMod, sympy.Mod))


def _emit_sum(e: sympy.Add, names: Mapping[sympy.Symbol, str]) -> tuple[str, int]:
    """`16 * n - k + 2`: positive symbolic terms first, then negative ones, the constant last."""
    rendered = []
    for term in e.args:
        coeff, rest = term.as_coeff_Mul()
        negative = coeff < 0
        text = _wrap(_emit(-term if negative else term, names), _PREC_ADD + 1)
        key = _emit(rest, names)[0].lstrip("(") if not term.is_number else ""
        rendered.append((2 if term.is_number else (1 if negative else 0), key, text, negative))
    rendered.sort()
    if rendered[0][3] and rendered[-1][0] == 2 and not rendered[-1][3]:
        rendered.insert(0, rendered.pop())  # `16 - k`, not `-k + 16`
    out = ""
    for i, (_, _, text, negative) in enumerate(rendered):
        if i == 0 and negative:
            # `-(h // 2)`: Python reads `-h // 2` as `(-h) // 2`
            out = f"-({text})" if " // " in text or " % " in text else f"-{text}"
        elif i == 0:
            out = text
        else:
            out += f" - {text}" if negative else f" + {text}"
    return out, _PREC_ADD


_COMPARE = {
    sympy.Ge: operator.ge,
    sympy.Gt: operator.gt,
    sympy.Le: operator.le,
    sympy.Lt: operator.lt,
    sympy.Eq: operator.eq,
    sympy.Ne: operator.ne,
}


def evaluate(expr: sympy.Basic, values: Mapping[sympy.Symbol, int]) -> Any:
    """Evaluate a size expression (int) or condition (bool) at integer values, exactly."""
    e = sympy.sympify(expr)
    if e is sympy.true or e is sympy.false:
        return e is sympy.true
    if isinstance(e, sympy.Integer):
        return int(e)
    if isinstance(e, sympy.Symbol):
        return int(values[e])
    args = [evaluate(a, values) for a in e.args]
    if isinstance(e, sympy.Add):
        return sum(args)
    if isinstance(e, sympy.Mul):
        out = 1
        for a in args:
            out *= a
        return out
    if isinstance(e, (sympy.Pow, symfn.PowByNatural)):
        return args[0] ** args[1]
    if isinstance(e, symfn.FloorDiv):
        return args[0] // args[1]
    if isinstance(e, symfn.CeilDiv):
        return -(-args[0] // args[1])
    if isinstance(e, (symfn.Mod, symfn.PythonMod, sympy.Mod)):
        return args[0] % args[1]
    if type(e) in _RELATIONS:
        return _COMPARE[type(e)](args[0], args[1])
    if isinstance(e, sympy.Not):
        return not args[0]
    if isinstance(e, sympy.And):
        return all(args)
    if isinstance(e, sympy.Or):
        return any(args)
    if isinstance(e, (sympy.Max, symfn.Max)):
        return max(args)
    if isinstance(e, (sympy.Min, symfn.Min)):
        return min(args)
    raise Unprintable(f"{type(e).__name__}: {e}")


def free_symbols(expr: sympy.Expr) -> frozenset[sympy.Symbol]:
    """The symbols an expression depends on."""
    return frozenset(s for s in sympy.sympify(expr).free_symbols if isinstance(s, sympy.Symbol))
