"""Every use of torch's private symbolic-shape API lives here (ShapeEnv, FakeTensorMode).

The trace stage asks this module for symbolic sizes and builds modules on fake tensors without
initialising weights. Most traces never get here: they run on seqgen's own sizes
(sizes.LightSession), and only what those cannot decide exactly comes back to a `Session`
(model.py). Size expressions become Python source in expressions.py (re-exported here).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sympy
import torch
from torch._dispatch.python import enable_python_dispatcher, no_python_dispatcher
from torch._guards import GuardSource, SLoc, Source
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily

from seqgen._typing import class_cache
from seqgen.trace.expressions import (
    CEIL_DIV,
    FLOOR_DIVISIONS,
    MAXES,
    MIN_MAX,
    MODS,
    Unprintable,
    evaluate,
    free_symbols,
    to_python,
    to_python_negated,
)
from seqgen.trace.sizes import LightSession, NeedsShapeEnv, Size, one_thread, sym_min

__all__ = [
    "CEIL_DIV",
    "FLOOR_DIVISIONS",
    "MAXES",
    "MIN_MAX",
    "MODS",
    "AnySession",
    "LightSession",
    "NeedsShapeEnv",
    "Session",
    "Size",
    "Unprintable",
    "construct",
    "evaluate",
    "expr_of",
    "free_symbols",
    "is_symbolic",
    "one_thread",
    "real_tensors",
    "simplify",
    "sym_min",
    "to_python",
    "to_python_negated",
]

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
        # imported here: most traces never need a ShapeEnv (sizes.py), and its module costs
        # about 60 ms on top of sympy
        from torch.fx.experimental.symbolic_shapes import ShapeEnv

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
        from torch.fx.experimental.symbolic_shapes import DimDynamic

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

    def size(self, expr: sympy.Expr, hint: int) -> torch.SymInt | int:
        """The SymInt (or int) of a size expression."""
        return int(expr) if expr.is_number else self.env.create_symintnode(expr, hint=hint)

    def concrete_device(self, work: int, params: int, largest: int) -> torch.device | None:
        """None: layers built at the sample values stay fake (torch allocates nothing)."""
        return None

    def tensor(self, sizes: Sequence[Any], dtype: torch.dtype | None = None) -> torch.Tensor:
        """A tensor of these sizes; a fake one inside `active()`."""
        return torch.empty(list(sizes), dtype=dtype)

    def simplify(self, expr: sympy.Expr) -> sympy.Expr:
        """Apply the ShapeEnv's replacements (what the trace proved equal)."""
        return self.env.replace(expr)

    def require_shape_env(self, why: str) -> None:
        """This session is torch's ShapeEnv: it can trace anything."""

    def specialized(self) -> dict[str, str]:
        """Parameters whose symbol torch replaced during the trace, with what it became."""
        out = {}
        for sym, name in self.names.items():
            repl = self.env.replacements.get(sym)
            if repl is not None and repl != sym:
                out[name] = to_python(repl, self.names)
        return out


AnySession = Session | LightSession


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


def is_symbolic(value: Any) -> bool:
    """A size with symbols: a SymInt (torch's trace) or a Size (seqgen's own)."""
    return isinstance(value, (torch.SymInt, Size))


def expr_of(value: Any) -> sympy.Expr:
    """The sympy expression of an int, SymInt or Size."""
    if isinstance(value, torch.SymInt):
        return value.node.expr
    if isinstance(value, Size):
        return value.expr
    return sympy.Integer(int(value))


def simplify(session: AnySession, expr: sympy.Expr) -> sympy.Expr:
    """What the trace proved equal, applied (torch's ShapeEnv may have fixed a symbol)."""
    return session.simplify(expr)


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
