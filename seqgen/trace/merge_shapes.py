"""How a merge combines its branches' shapes (trace stage; sympy only, no tensors).

Each branch reads the merge's input. A residual needs equal shapes (torch would broadcast
`body(x) + x`, but a residual that changes its input's shape is a bug), `concat` equal shapes
except along its dim (whose size is the sum), `add:` and `multiply:` shapes that broadcast as
torch broadcasts them, `bmm:` a (N, n, m) and a (N, m, p), giving (N, n, p), `reparameterize:`
equal shapes (the mean's and the log-variance's). A size that agrees only for some parameter
values becomes a condition, checked in `__init__` like any other; a size that disagrees at the
defaults is an error that names every branch's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import sympy

from seqgen.errors import TraceError
from seqgen.ir import MergeSpec, Name
from seqgen.layers.torch_nn import Values
from seqgen.trace import symbolic as S
from seqgen.trace.residues import multiple_rule

Shape = Sequence[sympy.Expr]  # batch first


class MergeMismatch(Exception):
    """The branches cannot be merged at the defaults; `hint` suggests a fix when one is known,
    `sizes` are the first two sizes that disagree (a rule on them may say it better)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        sizes: tuple[sympy.Expr, sympy.Expr] | None = None,
    ) -> None:
        super().__init__(message)
        self.hint = hint
        self.sizes = sizes


@dataclass(frozen=True)
class MergeFacts:
    """A merge's branch shapes, kept with its conditions: at a block's use whose values break
    one, the error names every branch's shape there (and a shortcut), as at the top level."""

    kind: str
    site: str  # `residual (spec line 4)`
    labels: tuple[str, ...]
    shapes: tuple[tuple[sympy.Expr, ...], ...]
    dim: int | None
    where: str = ""  # `block B (used on line 8): `, one per use it is seen through

    def at_use(self, mapping: dict[sympy.Symbol, sympy.Expr], where: str) -> MergeFacts:
        """The same facts in the caller's names, seen from a use of the block."""
        shapes = tuple(tuple(e.xreplace(mapping) for e in s) for s in self.shapes)
        return replace(self, shapes=shapes, where=where + self.where)

    def mismatch(
        self,
        value: Callable[[sympy.Expr], int],
        show_size: Callable[[sympy.Expr], str],
        hints: Mapping[sympy.Symbol, int],
    ) -> MergeMismatch | None:
        """What is wrong at the values `value` gives, in the words of a top-level merge; None
        when a size has a name that `hints` lacks (not expected)."""
        if not {s for shape in self.shapes for e in shape for s in S.free_symbols(e)} <= set(hints):
            return None

        def show(shape: Sequence[sympy.Expr]) -> str:
            return "(" + ", ".join(show_size(e) for e in shape) + ")"

        try:
            combine(self.kind, self.shapes, self.dim, value, show, self.labels)
        except MergeMismatch as e:
            text = str(e).removeprefix(f"{self.kind}: ")
            return MergeMismatch(f"{self.where}{self.site}: {text}", e.hint, e.sizes)
        return None


def merge_hint(
    mismatch: MergeMismatch,
    known: Sequence[sympy.Basic],
    hints: Mapping[sympy.Symbol, int],
    names: Mapping[sympy.Symbol, str],
) -> str | None:
    """A mismatch's hint; the divisibility rule instead when that is what makes its sizes
    agree (`make h a multiple of 8`, not "padding"), given the conditions `known` so far."""
    if mismatch.sizes is not None:
        found = multiple_rule(*mismatch.sizes, known, hints, names)
        if found is not None:
            return found
    return mismatch.hint


@dataclass(frozen=True)
class Merged:
    """The merged shape, and the conditions under which the branches agree."""

    shape: tuple[sympy.Expr, ...]
    conditions: tuple[tuple[sympy.Basic, str], ...]  # (condition, what it keeps true)


def same(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Whether two sizes are provably the same expression."""
    return a == b or bool(sympy.expand(a - b) == 0)


def combine(
    kind: str,
    shapes: Sequence[Shape],
    dim: int | None,
    value: Callable[[sympy.Expr], int],
    show: Callable[[Sequence[sympy.Expr]], str],
    labels: Sequence[str],
) -> Merged:
    """The shape a merge of `kind` gives for branch outputs `shapes` (labelled for messages)."""
    if kind == "bmm":
        return _bmm(shapes, value, show, labels)
    ranks = {len(s) for s in shapes}
    if kind != "multiply" and len(ranks) > 1:  # add: the batch would meet another dim
        raise MergeMismatch(f"{kind}: {_listing(shapes, show, labels)}: the ranks differ")
    if kind == "concat":
        return _concat(shapes, dim or 1, value, show, labels)
    if kind in ("add", "multiply", "subtract"):
        return _broadcast(kind, shapes, value, show, labels)
    return _equal(kind, shapes, value, show, labels)


def meant_shape(kind: str, shapes: Sequence[Shape], dim: int | None) -> tuple[sympy.Expr, ...]:
    """The shape to continue a trace with after a merge whose branches disagree: the first
    branch's (a residual's body), with a concat's dim summed over the branches of its rank."""
    first = tuple(shapes[0])
    if kind == "bmm" and len(shapes) == 2 and len(first) == len(shapes[1]) == 3:
        return (first[0], first[1], shapes[1][2])
    if kind != "concat":
        return first
    at = (dim or 1) % len(first)
    same_rank = [s for s in shapes if len(s) == len(first)]
    return (*first[:at], sympy.Add(*(s[at] for s in same_rank)), *first[at + 1 :])


def merge_macs(kind: str, shapes: Sequence[Shape]) -> sympy.Expr:
    """The mult-adds a merge computes itself for one sample, beside its branches': `n * m * p`
    for a bmm of (N, n, m) by (N, m, p) (torchinfo counts a Linear's `in * out` per row so),
    none for the others (torchinfo counts no elementwise op)."""
    if kind == "bmm" and len(shapes) == 2 and len(shapes[0]) == 3:
        return sympy.Mul(*shapes[0][1:], shapes[1][-1])
    return sympy.Integer(0)


def _bmm(
    shapes: Sequence[Shape],
    value: Callable[[sympy.Expr], int],
    show: Callable[[Sequence[sympy.Expr]], str],
    labels: Sequence[str],
) -> Merged:
    """torch.bmm's rule: two rank-3 tensors, a (N, n, m) and b (N, m, p), give (N, n, p); the
    inner sizes m must agree (a condition where they agree only for some parameter values)."""
    if len(shapes) != 2:
        raise MergeMismatch(f"bmm: {_listing(shapes, show, labels)}; bmm takes two branches")
    a, b = shapes
    if len(a) != 3 or len(b) != 3:
        raise MergeMismatch(
            f"bmm: {_listing(shapes, show, labels)}; bmm needs two rank-3 tensors, "
            "(N, n, m) and (N, m, p)",
            "e.g. `unflatten 1 (3, 3)` makes (N, 9) a batch of 3x3 matrices",
        )
    conditions: list[tuple[sympy.Basic, str]] = []
    what = f"{labels[0]}'s dim 2 and {labels[1]}'s dim 1 must agree (bmm's inner size)"
    left, right = (b[1], a[2]) if a[2].is_number else (a[2], b[1])  # `c != 3`, not `3 != c`
    if not _agree(left, right, value, what, conditions):
        raise MergeMismatch(
            f"bmm: {_listing(shapes, show, labels)}; bmm's inner sizes must agree: "
            f"{labels[0]} ends with {_size_text(a[2], show, value)}, {labels[1]} starts with "
            f"{_size_text(b[1], show, value)} (after the batch)",
            "bmm multiplies (N, n, m) by (N, m, p): `transpose 1 2` turns a branch's (N, m, n) "
            "into (N, n, m)",
            (a[2], b[1]),
        )
    return Merged((a[0], a[1], b[2]), tuple(conditions))


def _size_text(
    size: sympy.Expr,
    show: Callable[[Sequence[sympy.Expr]], str],
    value: Callable[[sympy.Expr], int],
) -> str:
    """One size as `show` writes it in a shape, with its value at the defaults where it has a
    name: `64`, `m=3`, `c * c (9 here)`."""
    text = show((size,)).removeprefix("(").removesuffix(")").removesuffix(",")
    if size.is_number or not text.isidentifier():
        return text if size.is_number else f"{text} ({value(size)} here)"
    return f"{text}={value(size)}"


def _listing(
    shapes: Sequence[Shape], show: Callable[[Sequence[sympy.Expr]], str], labels: Sequence[str]
) -> str:
    return ", ".join(f"{label} gives {show(s)}" for label, s in zip(labels, shapes))


def _agree(
    a: sympy.Expr,
    b: sympy.Expr,
    value: Callable[[sympy.Expr], int],
    what: str,
    conditions: list[tuple[sympy.Basic, str]],
) -> bool:
    """Whether sizes a and b agree at the defaults; a condition when only for some values."""
    if same(a, b):
        return True
    if value(a) != value(b):
        return False
    conditions.append((sympy.Eq(a, b), what))
    return True


def _equal(
    kind: str,
    shapes: Sequence[Shape],
    value: Callable[[sympy.Expr], int],
    show: Callable[[Sequence[sympy.Expr]], str],
    labels: Sequence[str],
) -> Merged:
    conditions: list[tuple[sympy.Basic, str]] = []
    first = shapes[0]
    for j, other in enumerate(shapes[1:], start=1):
        for i, (a, b) in enumerate(zip(first, other)):
            if i == 0:
                continue  # the batch
            what = f"{labels[0]} and {labels[j]} must agree in dim {i}"
            if not _agree(a, b, value, what, conditions):
                hint = None
                if kind == "residual":
                    hint = _shortcut_hint(shapes, value)
                need = "adding needs" if kind == "residual" else "the two must have"
                raise MergeMismatch(
                    f"{kind}: {_listing(shapes, show, labels)}; {need} equal shapes",
                    hint,
                    (a, b),
                )
    return Merged(tuple(first), tuple(conditions))


def _shortcut_hint(shapes: Sequence[Shape], value: Callable[[sympy.Expr], int]) -> str:
    body, given = shapes[0], shapes[1]
    if len(shapes) == 2 and len(body) == len(given) and len(body) in (3, 4, 5):
        channels = value(body[1])
        strides = {
            value(g) // max(value(b), 1)
            for b, g in zip(body[2:], given[2:])
            if value(b) and value(g) % value(b) == 0
        }
        stride = f" s={strides.pop()}" if len(strides) == 1 and 1 not in strides else ""
        n = len(body) - 2
        return (
            f"add a `shortcut:` right after the body that gives the same shape, e.g. "
            f"`conv{n}d {channels} k=1{stride}` and `batchnorm{n}d`"
        )
    return "add a `shortcut:` right after the body that gives the body's shape"


def _concat(
    shapes: Sequence[Shape],
    dim: int,
    value: Callable[[sympy.Expr], int],
    show: Callable[[Sequence[sympy.Expr]], str],
    labels: Sequence[str],
) -> Merged:
    rank = len(shapes[0])
    if not -rank < dim < rank or dim % rank == 0:
        raise MergeMismatch(
            f"concat: dim={dim} is outside dims 1..{rank - 1} of "
            f"{show(shapes[0])} (dim 0 is the batch)"
        )
    dim %= rank
    conditions: list[tuple[sympy.Basic, str]] = []
    out = list(shapes[0])
    for j, other in enumerate(shapes[1:], start=1):
        for i, (a, b) in enumerate(zip(shapes[0], other)):
            if i in (0, dim):
                continue
            what = f"{labels[0]} and {labels[j]} must agree in dim {i}"
            if not _agree(a, b, value, what, conditions):
                raise MergeMismatch(
                    f"concat: {_listing(shapes, show, labels)}; they must agree in every dim "
                    f"but dim {dim}",
                    "change the branches so their sizes agree outside the concat dim (padding, "
                    "or the same strides)",
                    (a, b),
                )
    out[dim] = sympy.Add(*(s[dim] for s in shapes))
    return Merged(tuple(out), tuple(conditions))


def _broadcast(
    kind: str,
    shapes: Sequence[Shape],
    value: Callable[[sympy.Expr], int],
    show: Callable[[Sequence[sympy.Expr]], str],
    labels: Sequence[str],
) -> Merged:
    """torch's broadcasting, dims aligned from the right: in each dim the sizes are equal or 1,
    and the merged size is the larger one. Sizes that broadcast only for some parameter values
    (`hid - 1` against 3: hid is 2 or 4) become a condition, and the merged size is what every
    accepted value gives (3 there; `max(a, b)` when both are parameters)."""
    conditions: list[tuple[sympy.Basic, str]] = []
    rank = max(len(s) for s in shapes)
    out: list[sympy.Expr] = []
    for i in range(rank):
        sized = [(j, s[len(s) - rank + i]) for j, s in enumerate(shapes) if len(s) - rank + i >= 0]
        j0, merged = sized[0]
        for j, d in sized[1:]:
            if same(merged, d) or _is_one(d):
                continue
            if _is_one(merged):
                j0, merged = j, d
                continue
            a, b = value(merged), value(d)
            if a != b and 1 not in (a, b):
                raise MergeMismatch(
                    f"{kind}: {_listing(shapes, show, labels)}; sizes {a} and {b} in dim {i} "
                    "do not broadcast",
                    "broadcasting needs equal sizes or 1 in each dim (e.g. "
                    "`adaptiveavgpool2d 1` for a per-channel gate)",
                )
            options = [sympy.Eq(merged, d), sympy.Eq(merged, 1), sympy.Eq(d, 1)]
            live = [o for o in options if o is not sympy.false]
            what = f"{labels[j0]} and {labels[j]} must broadcast in dim {i} (equal, or one is 1)"
            conditions.append((sympy.Or(*live), what))
            if merged.is_number:
                continue  # a literal size other than 1: the other is equal or 1
            merged = d if d.is_number else sympy.Max(merged, d)
        out.append(merged)
    return Merged(tuple(out), tuple(conditions))


def _is_one(size: sympy.Expr) -> bool:
    return bool(size.is_number and int(size) == 1)


def concat_dim(merge: MergeSpec, rank: int, concrete: Values) -> int:
    """`concat dim=D`: a literal int (default 1), not the batch dim."""
    if merge.dim is None:
        return 1
    value = concrete.eval(merge.dim) if not isinstance(merge.dim, Name) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TraceError(
            "concat's dim must be a whole number",
            location=merge.dim.loc,
            hint="e.g. `concat dim=1:` (channels)",
        )
    if not -rank < value < rank or value % rank == 0:
        raise TraceError(
            f"concat dim={value} is outside dims 1..{rank - 1} of its rank-{rank} "
            "input (dim 0 is the batch)",
            location=merge.dim.loc,
        )
    return value
