"""seqgen's own symbolic sizes: a trace without torch's ShapeEnv (and without torch._dynamo).

Every layer family with an exact rule (layers/formulas.py and the rules beside it) computes its
output sizes, conditions and parameter shapes by plain arithmetic on sizes; torch itself only
runs the layer at the sample values, on `meta`. Such a trace needs no fake tensors with
symbolic sizes, so it runs on a `LightSession`: a `Size` is a sympy expression with the value it
has at the sample, and its arithmetic builds the expressions torch's SymInt would build (the
same symbol names, `FloorDiv`, `Mod`/`PythonMod`, `Min`). Creating a ShapeEnv or a
FakeTensorMode imports torch._dynamo, which costs about as much as `import torch` itself
(BENCHMARKS.md, "Where the time goes").

Whatever the light trace cannot decide exactly (a layer without a rule, a size compared with
another, a size torch must see as an int) raises `NeedsShapeEnv`, and the model is traced again
on torch's symbolic shapes (symbolic.Session), which is what every trace did before.
"""

from __future__ import annotations

import contextlib
import hashlib
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sympy
import torch
from torch.utils._sympy.functions import FloorDiv, Min, Mod, PythonMod
from torch.utils._sympy.numbers import int_oo
from torch.utils._sympy.value_ranges import ValueRanges, bound_sympy

# Layers built and run at concrete values (the trace's check at the sample, the self-check at
# other values) run for real on the CPU while that stays cheap, else on `meta`, where many
# kernels are written in Python: the first call of one imports torch._dynamo (see above), and
# a meta batch norm decomposes into dozens of Python-level prims. Work counts parameters,
# multiply-adds and tensor elements (one thread does ~1e9 in a fraction of a second). Memory is
# bounded apart: the parameters, and the largest input or output (what `summary` keeps small).
CPU_WORK = 1 << 30  # per trace, and per point of the self-check
CPU_PARAMS = 1 << 25  # 128 MB of float32 weights (zeros)
CPU_TENSOR = 1 << 21  # 8 MB: a 2x16x256x256 activation


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one CPU thread meanwhile: the checks are small, and on a busy machine torch's
    thread pool spins (a ResNet-50 trace took 4 s of CPU on 2 threads, 0.3 s on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def sample_device(work: int, params: int, largest: int) -> torch.device:
    """Where to build and run layers at concrete values that cost `work`, with `params`
    parameters and no tensor larger than `largest` elements."""
    cheap = work <= CPU_WORK and params <= CPU_PARAMS and largest <= CPU_TENSOR
    return torch.device("cpu") if cheap else torch.device("meta")


class NeedsShapeEnv(Exception):
    """The light trace cannot decide this exactly; trace the model on torch's ShapeEnv."""


class Size:
    """A symbolic int: its sympy expression and its value at the sample (`hint`).

    Arithmetic gives a `Size` (or an int when no symbol is left); anything that would make
    torch's SymInt guard on the sample value (a comparison that holds there, `bool`, `int`,
    `/`) raises NeedsShapeEnv instead, so a light trace never depends on the sample's side of a
    branch.
    """

    __slots__ = ("expr", "hint", "session")

    def __init__(self, expr: sympy.Expr, hint: int, session: LightSession) -> None:
        self.expr = expr
        self.hint = hint
        self.session = session

    def _wrap(self, expr: sympy.Expr, hint: int) -> Size | int:
        return int(expr) if expr.is_number else Size(expr, hint, self.session)

    def _binary(
        self, other: Any, build: Callable[[sympy.Expr, sympy.Expr], sympy.Expr], op: Any
    ) -> Size | int:
        if isinstance(other, bool) or not isinstance(other, (int, Size)):
            return NotImplemented  # type: ignore[no-any-return]
        b, hb = (
            (other.expr, other.hint) if isinstance(other, Size) else (sympy.Integer(other), other)
        )
        return self._wrap(build(self.expr, b), op(self.hint, hb))

    def _rbinary(
        self, other: Any, build: Callable[[sympy.Expr, sympy.Expr], sympy.Expr], op: Any
    ) -> Size | int:
        if isinstance(other, bool) or not isinstance(other, int):
            return NotImplemented  # type: ignore[no-any-return]
        return self._wrap(build(sympy.Integer(other), self.expr), op(other, self.hint))

    def __add__(self, other: Any) -> Size | int:
        return self._binary(other, operator.add, operator.add)

    def __radd__(self, other: Any) -> Size | int:
        return self._rbinary(other, operator.add, operator.add)

    def __sub__(self, other: Any) -> Size | int:
        return self._binary(other, operator.sub, operator.sub)

    def __rsub__(self, other: Any) -> Size | int:
        return self._rbinary(other, operator.sub, operator.sub)

    def __mul__(self, other: Any) -> Size | int:
        return self._binary(other, operator.mul, operator.mul)

    def __rmul__(self, other: Any) -> Size | int:
        return self._rbinary(other, operator.mul, operator.mul)

    def __floordiv__(self, other: Any) -> Size | int:
        return self._binary(other, FloorDiv, operator.floordiv)

    def __rfloordiv__(self, other: Any) -> Size | int:
        return self._rbinary(other, FloorDiv, operator.floordiv)

    def __mod__(self, other: Any) -> Size | int:
        return self._binary(other, self.session.mod, operator.mod)

    def __rmod__(self, other: Any) -> Size | int:
        return self._rbinary(other, self.session.mod, operator.mod)

    def __neg__(self) -> Size | int:
        return self._wrap(-self.expr, -self.hint)

    def __pos__(self) -> Size:
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Size) and other.expr == self.expr:
            return True
        if isinstance(other, bool) or not isinstance(other, (int, Size)):
            return NotImplemented
        hint = other.hint if isinstance(other, Size) else other
        if hint == self.hint:  # torch would take it as true here and fix the symbol
            raise NeedsShapeEnv(f"{self.expr} == {hint} at the sample")
        return False

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.expr)

    def _undecided(self, *_: Any) -> Any:
        raise NeedsShapeEnv(f"a size ({self.expr}) is compared or used as a plain int")

    __lt__ = __le__ = __gt__ = __ge__ = _undecided
    __bool__ = __int__ = __index__ = __float__ = _undecided
    __truediv__ = __rtruediv__ = __pow__ = __rpow__ = _undecided

    def _sympy_(self) -> sympy.Expr:
        return self.expr

    def __repr__(self) -> str:
        return f"Size({self.expr}, hint={self.hint})"


def sym_min(a: Any, b: Any) -> Any:
    """`min(a, b)` for ints, SymInts or Sizes (torch.sym_min's expression, `Min`)."""
    if isinstance(a, Size) or isinstance(b, Size):
        ea = a.expr if isinstance(a, Size) else sympy.Integer(a)
        eb = b.expr if isinstance(b, Size) else sympy.Integer(b)
        session = a.session if isinstance(a, Size) else b.session
        hint = min(a.hint if isinstance(a, Size) else a, b.hint if isinstance(b, Size) else b)
        out = Min(ea, eb)  # type: ignore[no-untyped-call]
        return int(out) if out.is_number else Size(out, hint, session)
    return torch.sym_min(a, b)  # type: ignore[no-untyped-call]


class LightSession:
    """The symbols of one light trace; tensors are `meta` tensors at the sample sizes."""

    def __init__(self) -> None:
        self.names: dict[sympy.Symbol, str] = {}
        self._ids: set[int] = set()
        self._ranges: dict[sympy.Symbol, ValueRanges[sympy.Expr]] = {}
        self._cpu_work = 0  # spent so far on real CPU checks

    def symbol(self, name: str, hint: int, size: bool = True) -> Size:
        """A symbol named as torch's ShapeEnv names it (`s` and a number derived from `name`),
        so both traces build the same sympy expressions."""
        ident = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 100
        while ident in self._ids:
            ident += 1
        self._ids.add(ident)
        sym = sympy.Symbol(f"s{ident}", positive=True if size else None, integer=True)
        if size:
            self._ranges[sym] = ValueRanges(0, int_oo)
        self.names[sym] = name
        return Size(sym, hint, self)

    def mod(self, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
        """`a % b` as a SymInt builds it: sympy's Mod when both sides are known >= 0."""
        if all(e.is_nonnegative or bound_sympy(e, self._ranges).lower >= 0 for e in (a, b)):
            return Mod(a, b)
        return PythonMod(a, b)

    def size(self, expr: sympy.Expr, hint: int) -> Size | int:
        return int(expr) if expr.is_number else Size(expr, hint, self)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Tensors and modules made meanwhile live on `meta` (nothing is allocated) unless a
        cheap check asks for the CPU (`concrete_device`)."""
        with torch.device("meta"):
            yield

    def concrete_device(self, work: int, params: int, largest: int) -> torch.device:
        """Where torch builds and runs a layer at the sample values (nothing fake here): the
        CPU until the trace's checks there have cost CPU_WORK in all."""
        device = sample_device(self._cpu_work + work, params, largest)
        if device.type == "cpu":
            self._cpu_work += work
        return device

    def tensor(self, sizes: Sequence[Any], dtype: torch.dtype | None = None) -> torch.Tensor:
        hints = [s.hint if isinstance(s, Size) else int(s) for s in sizes]
        return torch.empty(hints, dtype=dtype, device="meta")

    def simplify(self, expr: sympy.Expr) -> sympy.Expr:
        return expr  # nothing was specialised

    def specialized(self) -> dict[str, str]:
        return {}

    def require_shape_env(self, why: str) -> None:
        raise NeedsShapeEnv(why)
