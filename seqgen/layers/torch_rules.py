"""Exact output-size formulas and argument rules per layer family (part of the trace stage).

torch's symbolic kernels decide branches (ceil_mode's last-window rule, `padding='same'`,
broadcasting) at the sample values and keep the result only as a guard, so their output sizes
hold for the sample's side of each branch only. For every layer family whose size depends on its
arguments, seqgen therefore computes the output itself, from the documented formula written as
arithmetic that holds for every value, and lists every condition the arguments and input sizes
must meet (the layer's own checks, not only "every size >= 1").

A rule sees sizes as ints or SymInts; plain Python arithmetic on them builds the expressions, and
`Check`s hold sympy conditions. It never allocates and never runs a kernel.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Any

import sympy
import torch
from torch import nn

from seqgen.trace import symbolic as S

Size = Any  # int | torch.SymInt


@dataclass(frozen=True)
class Check:
    """A condition a layer needs, and what it says when it fails (`kernel_size must be >= 1`)."""

    condition: sympy.Basic
    text: str  # a format string: each `{}` is one of `values`, shown as a number or expression
    values: tuple[sympy.Expr, ...] = ()

    def message(self, show: Callable[[sympy.Expr], str]) -> str:
        """The text with each value shown by `show`."""
        return self.text.format(*(show(v) for v in self.values))


class RuleError(Exception):
    """The arguments cannot work whatever the parameter values (a literal out of range)."""


class RankError(Exception):
    """The input has the wrong rank for this layer; the tracer words the message."""

    def __init__(self, rank: int) -> None:
        super().__init__(rank)
        self.rank = rank


class NeedsLiteral(Exception):
    """An argument must be a literal for seqgen to know the output size."""

    def __init__(self, arg: str, why: str) -> None:
        super().__init__(arg)
        self.arg = arg
        self.why = why


@dataclass(frozen=True)
class Outcome:
    """What a rule computes: the output shape (batch first) and the conditions it needs."""

    shape: tuple[Size, ...]
    checks: tuple[Check, ...]


class _Args:
    """A layer's argument values by name, with the constructor's defaults filled in."""

    def __init__(self, cls: type[nn.Module], values: dict[str, Any]) -> None:
        self.values = dict(values)
        sig = inspect.signature(cls.__init__)
        for p in list(sig.parameters.values())[1:]:
            if p.name not in self.values and p.default is not p.empty:
                self.values[p.name] = p.default

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)


def _expr(v: Size) -> sympy.Expr:
    return v if isinstance(v, sympy.Basic) else S.expr_of(v)


def _mod(a: Size, b: Size) -> sympy.Expr:
    """`a % b` for a divisibility check. The dividend is expanded first: sympy 1.14 folds
    `Mod(18*(a + 6)*(b + 6), 726)` to 0, while the expanded form is exact."""
    return sympy.Mod(sympy.expand(_expr(a)), _expr(b))


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, torch.SymInt)


class _Checks:
    """Collects conditions; a literal that fails is a RuleError at once."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def need(self, condition: Any, text: str, *values: Size) -> None:
        cond = sympy.sympify(condition)
        if cond is sympy.true:
            return
        check = Check(cond, text, tuple(_expr(v) for v in values))
        if cond is sympy.false:
            raise RuleError(check.message(str))
        self.items.append(check)

    def at_least(self, v: Size, low: int, what: str) -> None:
        self.need(sympy.Ge(_expr(v), low), f"{what} ({{}}) must be at least {low}", v)


def _ints(value: Any, n: int, name: str) -> list[Size]:
    """An int or an n-tuple of ints, as a list of n sizes."""
    if _is_int(value):
        return [value] * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(_is_int(v) for v in value):
        return list(value)
    raise RuleError(f"{name} must be a whole number or a tuple of {n}, got {value!r}")


def _tuples(a: _Args, n: int, checks: _Checks, low: int, *names: str) -> list[list[Size]]:
    """Each named argument as n sizes, every one required >= low."""
    out = []
    for name in names:
        vals = _ints(a[name], n, name)
        for v in vals:
            checks.at_least(v, low, name)
        out.append(vals)
    return out


def _ceil_div(a: Size, b: Size) -> Size:
    return (a + b - 1) // b


def _spatial(shape: Sequence[Size], n: int) -> list[Size]:
    if len(shape) != n + 2:
        raise RankError(n + 2)
    return list(shape[2:])


def _pad_mode_checks(
    checks: _Checks, mode: str, pads: Sequence[tuple[Size, Size]], sizes: Sequence[Size], what: str
) -> None:
    """What torch's padding kernels need besides a size >= 1 (pads may be negative: a crop).

    constant: a crop never goes past the input; reflect: each pad below the size it pads;
    circular: each pad at most that size, and a side that wraps around has the other side's
    crop still inside the input (torch copies from there; beyond it, only some sizes work).
    """
    for (left, right), size in zip(pads, sizes):
        n, l, r = _expr(size), _expr(left), _expr(right)
        if mode == "constant":
            if not all(isinstance(v, int) and v >= 0 for v in (left, right)):
                checks.need(
                    sympy.Ge(n + sympy.Min(l, 0) + sympy.Min(r, 0), 0),
                    f"cropping by {what} ({{}}, {{}}) must leave the input size ({{}}) "
                    "non-negative",
                    left,
                    right,
                    size,
                )
            continue
        for pad in (left, right):
            if mode == "reflect":
                checks.need(
                    sympy.Lt(_expr(pad), n),
                    f"{what} ({{}}) must be smaller than the input size ({{}})",
                    pad,
                    size,
                )
            elif mode == "circular":
                checks.need(
                    sympy.Le(_expr(pad), n),
                    f"{what} ({{}}) must be at most the input size ({{}})",
                    pad,
                    size,
                )
        if mode == "circular":
            for pad, other in ((l, r), (r, l)):
                checks.need(
                    sympy.Or(sympy.Le(pad, 0), sympy.Ge(n + sympy.Min(other, 0), 0)),
                    f"circular {what} ({{}}, {{}}) may not crop past the input size ({{}}) "
                    "on the side opposite a wrap",
                    left,
                    right,
                    size,
                )


# ------------------------------------------------------------------------------- families


def _conv(n: int, a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    spatial = _spatial(shape, n)
    cin, cout, groups = shape[1], a["out_channels"], a["groups"]
    _divides(checks, cin, "in_channels", groups, "groups")
    _divides(checks, cout, "out_channels", groups, "groups")
    k, s, d = _tuples(a, n, checks, 1, "kernel_size", "stride", "dilation")
    padding = a["padding"]
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise RuleError(f"padding must be 'same', 'valid' or a number, got {padding!r}")
        if padding == "same":
            for v in s:
                checks.need(sympy.Eq(_expr(v), 1), "padding='same' needs stride 1, got {}", v)
            pads = []
            for dd, kk in zip(d, k):
                total = dd * (kk - 1)
                pads.append((total // 2, total - total // 2))
            if a["padding_mode"] != "zeros":
                _pad_mode_checks(checks, a["padding_mode"], pads, spatial, "padding")
            return [shape[0], cout, *spatial]
        a.values["padding"] = 0  # 'valid'
    if a["padding_mode"] == "zeros":
        (p,) = _tuples(a, n, checks, 0, "padding")
    else:  # torch pads with F.pad first: a negative padding crops, as in the padding layers
        p = _ints(a["padding"], n, "padding")
        _pad_mode_checks(checks, a["padding_mode"], [(v, v) for v in p], spatial, "padding")
    out = [
        (size + 2 * pp - dd * (kk - 1) - 1) // ss + 1
        for size, pp, dd, kk, ss in zip(spatial, p, d, k, s)
    ]
    return [shape[0], cout, *out]


def _conv_transpose(n: int, a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    spatial = _spatial(shape, n)
    cin, cout, groups = shape[1], a["out_channels"], a["groups"]
    _divides(checks, cin, "in_channels", groups, "groups")
    _divides(checks, cout, "out_channels", groups, "groups")
    if isinstance(a["padding"], str):
        raise RuleError(f"{a['padding']!r} padding is not supported by transposed convolutions")
    k, s = _tuples(a, n, checks, 1, "kernel_size", "stride")
    p, op, d = _tuples(a, n, checks, 0, "padding", "output_padding", "dilation")
    for dd, kk in zip(d, k):  # torch accepts dilation 0 only where it changes nothing
        checks.need(
            sympy.Or(sympy.Ge(_expr(dd), 1), sympy.Eq(_expr(kk), 1)),
            "dilation ({}) must be at least 1 unless kernel_size ({}) is 1",
            dd,
            kk,
        )
    for oo, ss, dd in zip(op, s, d):
        checks.need(
            sympy.Or(sympy.Lt(_expr(oo), _expr(ss)), sympy.Lt(_expr(oo), _expr(dd))),
            "output_padding ({}) must be smaller than stride ({}) or dilation ({})",
            oo,
            ss,
            dd,
        )
    out = [
        (size - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1
        for size, ss, pp, dd, kk, oo in zip(spatial, s, p, d, k, op)
    ]
    return [shape[0], cout, *out]


def _pool_size(size: Size, k: Size, s: Size, p: Size, d: Size, ceil_mode: bool) -> Size:
    """torch's pooling_output_shape, branch-free.

    With ceil_mode, the last window must start inside the input (or its left padding), which
    is `min(ceil(a / s), (size + p - 1) // s) + 1`; exact whenever padding <= kernel_size // 2.
    """
    a = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return a // s + 1
    if sympy.Le(_expr(p + s), _expr(d * (k - 1) + 1)) is sympy.true:
        return _ceil_div(a, s) + 1  # the last window always starts inside: no correction
    # torch.sym_min has no annotations
    return torch.sym_min(_ceil_div(a, s), (size + p - 1) // s) + 1  # type: ignore[no-untyped-call]


def _pool(n: int, a: _Args, shape: Sequence[Size], checks: _Checks, *, kind: str) -> list[Size]:
    if len(shape) not in (n + 1, n + 2):
        raise RankError(n + 2)
    spatial = list(shape[-n:])
    k = _ints(a["kernel_size"], n, "kernel_size")
    stride = a["stride"]
    s = k if stride is None or stride == () else _ints(stride, n, "stride")
    p = _ints(a["padding"] if a["padding"] is not None else 0, n, "padding")
    d = _ints(a["dilation"] if kind == "max" else 1, n, "dilation")
    ceil_mode = a["ceil_mode"]
    if not isinstance(ceil_mode, bool):
        raise RuleError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    for name, vals in (("kernel_size", k), ("stride", s), ("dilation", d)):
        for v in vals:
            checks.at_least(v, 1, name)
    for kk, pp in zip(k, p):
        checks.at_least(pp, 0, "padding")
        checks.need(
            sympy.Le(2 * _expr(pp), _expr(kk)),
            "padding ({}) must be at most half of kernel_size ({})",
            pp,
            kk,
        )
    if kind == "avg" and n == 3:
        # the CPU kernel of avg_pool3d wants each input size >= the kernel, padding or not
        for size, kk in zip(spatial, k):
            checks.need(
                sympy.Ge(_expr(size), _expr(kk)),
                "each input size ({}) must be at least kernel_size ({}) (the CPU "
                "kernel of avg_pool3d needs it, padding or not)",
                size,
                kk,
            )
    out = [
        _pool_size(size, kk, ss, pp, dd, ceil_mode)
        for size, kk, ss, pp, dd in zip(spatial, k, s, p, d)
    ]
    return [*shape[:-n], *out]


def _adaptive(n: int, a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    if len(shape) not in (n + 1, n + 2):
        raise RankError(n + 2)
    spatial = list(shape[-n:])
    size = a["output_size"]
    sizes = [size] * n if _is_int(size) or size is None else list(size)
    if len(sizes) != n:
        raise RuleError(f"output_size must be a number or a tuple of {n}, got {size!r}")
    out = [spatial[i] if v is None else v for i, v in enumerate(sizes)]
    for v in out:
        if not _is_int(v):
            raise RuleError(f"output_size must hold whole numbers or None, got {size!r}")
    return [*shape[:-n], *out]


def _upsample(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    n = len(shape) - 2
    if n < 1:
        raise RankError(3)
    spatial = list(shape[2:])
    size, scale = a["size"], a["scale_factor"]
    if size is not None:
        out = _ints(size, n, "size") if not _is_int(size) else [size] * n
        return [shape[0], shape[1], *out]
    if scale is None:
        raise RuleError("give size or scale_factor")
    scales = list(scale) if isinstance(scale, (tuple, list)) else [scale] * n
    if len(scales) != n:
        raise RuleError(f"scale_factor must be a number or a tuple of {n}, got {scale!r}")
    out = []
    for v, sc in zip(spatial, scales):
        if _is_int(sc):
            out.append(v * sc)
            continue
        frac = Fraction(sc) if isinstance(sc, float) else None
        if frac is None or frac.denominator > 1024:
            raise NeedsLiteral(
                "scale_factor",
                "a whole number or a float with few binary "
                "digits (1.5, 0.25, 2.5) keeps the output size exact",
            )
        # torch computes floor(size * scale) in double precision: exact for such a scale
        out.append(v * frac.numerator // frac.denominator)
    return [shape[0], shape[1], *out]


def _flatten(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    given_start = _literal_dim(a["start_dim"], "start_dim")
    given_end = _literal_dim(a["end_dim"], "end_dim")
    rank = len(shape)
    start = given_start % rank if -rank <= given_start < rank else None
    end = given_end % rank if -rank <= given_end < rank else None
    if start is None or end is None or start > end:
        raise RuleError(f"flatten dims out of range for a tensor of rank {rank}")
    product = 1
    for v in shape[start : end + 1]:
        product = product * v
    return [*shape[:start], product, *shape[end + 1 :]]


def _unflatten(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    rank = len(shape)
    dim = _literal_dim(a["dim"], "dim")
    if not -rank <= dim < rank:
        raise RuleError(f"dim {dim} is out of range for a tensor of rank {rank}")
    dim %= rank
    sizes = a["unflattened_size"]
    if not isinstance(sizes, (tuple, list)) or not sizes or not all(_is_int(v) for v in sizes):
        raise RuleError(f"unflattened_size must be a tuple of whole numbers, got {sizes!r}")
    holes = [i for i, v in enumerate(sizes) if isinstance(v, int) and v == -1]
    if len(holes) > 1:
        raise RuleError("only one size may be -1")
    known = 1
    for i, v in enumerate(sizes):
        if i not in holes:
            checks.at_least(v, 1, "each unflattened size")
            known = known * v
    total = shape[dim]
    if holes:
        checks.need(
            sympy.Eq(_mod(total, known), 0),
            "the size {} must be divisible by {} to unflatten it",
            total,
            known,
        )
        out = [total // known if i in holes else v for i, v in enumerate(sizes)]
    else:
        checks.need(
            sympy.Eq(_expr(total), _expr(known)),
            "the unflattened sizes must multiply to {}, got {}",
            total,
            known,
        )
        out = list(sizes)
    return [*shape[:dim], *out, *shape[dim + 1 :]]


def _pad(n: int, mode: str, a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    if len(shape) < n + 1:
        raise RankError(n + 2)
    padding = a["padding"]
    pads = [padding] * (2 * n) if _is_int(padding) else padding
    if (
        not isinstance(pads, (tuple, list))
        or len(pads) != 2 * n
        or not all(_is_int(v) for v in pads)
    ):
        raise RuleError(f"padding must be a number or a tuple of {2 * n}, got {padding!r}")
    out = list(shape)
    pairs = []
    for i in range(n):  # (left, right) of the last dim first
        dim = len(shape) - 1 - i
        left, right = pads[2 * i], pads[2 * i + 1]
        pairs.append(((left, right), shape[dim]))
        out[dim] = shape[dim] + left + right
    _pad_mode_checks(checks, mode, [p for p, _ in pairs], [s for _, s in pairs], "padding")
    return out


def _pixel_shuffle(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    if len(shape) < 3:
        raise RankError(4)
    r = a["upscale_factor"]
    checks.at_least(r, 1, "upscale_factor")
    c = shape[-3]
    checks.need(
        sympy.Eq(_mod(c, r * r), 0),
        "channels ({}) must be divisible by upscale_factor squared ({})",
        c,
        r * r,
    )
    return [*shape[:-3], c // (r * r), shape[-2] * r, shape[-1] * r]


def _pixel_unshuffle(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    if len(shape) < 3:
        raise RankError(4)
    r = a["downscale_factor"]
    for v in shape[-2:]:
        _divides(checks, v, "height and width", r, "downscale_factor")
    return [*shape[:-3], shape[-3] * r * r, shape[-2] // r, shape[-1] // r]


def _channel_shuffle(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    if len(shape) < 3:
        raise RankError(4)
    _divides(checks, shape[1], "channels", a["groups"], "groups")
    return list(shape)


def _unfold(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    if len(shape) != 4:
        raise RankError(4)
    k, blocks = _blocks(a, shape[2:], checks)
    return [shape[0], shape[1] * k[0] * k[1], blocks[0] * blocks[1]]


def _fold(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    if len(shape) != 3:
        raise RankError(3)
    out = _ints(a["output_size"], 2, "output_size")
    k, blocks = _blocks(a, out, checks)
    per = k[0] * k[1]
    checks.need(
        sympy.Eq(_mod(shape[1], per), 0),
        "the size {} must be divisible by the kernel's {} positions",
        shape[1],
        per,
    )
    checks.need(
        sympy.Eq(_expr(shape[2]), _expr(blocks[0] * blocks[1])),
        "the number of blocks ({}) must equal {}",
        shape[2],
        blocks[0] * blocks[1],
    )
    return [shape[0], shape[1] // per, *out]


def _blocks(a: _Args, sizes: Sequence[Size], checks: _Checks) -> tuple[list[Size], list[Size]]:
    k, s, d = _tuples(a, 2, checks, 1, "kernel_size", "stride", "dilation")
    (p,) = _tuples(a, 2, checks, 0, "padding")
    blocks = [
        (size + 2 * pp - dd * (kk - 1) - 1) // ss + 1
        for size, pp, dd, kk, ss in zip(sizes, p, d, k, s)
    ]
    for b in blocks:
        checks.at_least(b, 1, "the number of sliding blocks in each dim")
    return k, blocks


def _instance_norm(n: int, a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    if len(shape) not in (n + 1, n + 2):
        raise RankError(n + 2)
    spatial = 1
    for v in shape[-n:]:
        spatial = spatial * v
    checks.need(
        sympy.Gt(_expr(spatial), 1), "instance norm needs more than 1 spatial element when training"
    )
    return list(shape)


def _group_norm(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    _divides(checks, shape[1], "num_channels", a["num_groups"], "num_groups")
    return list(shape)


def _divides(checks: _Checks, size: Size, what: str, by: Size, by_what: str) -> None:
    """`by` >= 1 (a group count, a stride) and `size` a multiple of it."""
    checks.at_least(by, 1, by_what)
    if not _is_one(by):
        checks.need(
            sympy.Eq(_mod(size, by), 0),
            f"{what} ({{}}) must be divisible by {by_what} ({{}})",
            size,
            by,
        )


def _linear(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    if len(shape) < 2:
        raise RankError(2)
    return [*shape[:-1], a["out_features"]]


def _same(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    """Elementwise layers, dropout and normalisation: the output has the input's shape."""
    return list(shape)


def _glu(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    rank = len(shape)
    dim = _literal_dim(a["dim"], "dim")
    if not -rank <= dim < rank:
        raise RuleError(f"dim {dim} is out of range for a tensor of rank {rank}")
    dim %= rank
    checks.need(
        sympy.Eq(_mod(shape[dim], 2), 0), "GLU halves a size ({}) that must be even", shape[dim]
    )
    return [*shape[:dim], shape[dim] // 2, *shape[dim + 1 :]]


def _prelu(a: _Args, shape: Sequence[Size], checks: _Checks) -> list[Size]:
    n = a["num_parameters"]
    if not _is_one(n):
        channels = shape[1] if len(shape) >= 2 else 1
        checks.need(
            sympy.Or(sympy.Eq(_expr(n), 1), sympy.Eq(_expr(n), _expr(channels))),
            "num_parameters ({}) must be 1 or the number of channels ({})",
            n,
            channels,
        )
    return list(shape)


def _shape_preserving() -> list[str]:
    """torch.nn's activations, dropouts and normalisations (those without a rule of their own)."""
    from torch.nn.modules import activation, batchnorm, dropout, normalization

    names = []
    for module in (activation, batchnorm, dropout, normalization):
        for name in dir(module):
            obj = getattr(module, name)
            if (
                isinstance(obj, type)
                and issubclass(obj, nn.Module)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                names.append(name)
    # GLU halves a dim (its own rule); CrossMapLRN2d's kernel fixes the batch (torch traces it)
    return [n for n in names if n not in ("GLU", "CrossMapLRN2d")] + ["Identity"]


def _is_one(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v == 1


def _literal_dim(v: Any, name: str) -> int:
    if isinstance(v, torch.SymInt):
        raise NeedsLiteral(name, "it picks which dimension, so seqgen must know it")
    if not _is_int(v):
        raise RuleError(f"{name} must be a whole number, got {v!r}")
    return int(v)


RuleFn = Callable[[_Args, Sequence[Size], _Checks], list[Size]]


def _rules() -> dict[str, RuleFn]:
    rules: dict[str, RuleFn] = dict.fromkeys(_shape_preserving(), _same)
    rules |= {
        "PReLU": _prelu,
        "GLU": _glu,
        "Linear": _linear,
        "Upsample": _upsample,
        "UpsamplingNearest2d": _upsample,
        "UpsamplingBilinear2d": _upsample,
        "Flatten": _flatten,
        "Unflatten": _unflatten,
        "PixelShuffle": _pixel_shuffle,
        "PixelUnshuffle": _pixel_unshuffle,
        "ChannelShuffle": _channel_shuffle,
        "Fold": _fold,
        "Unfold": _unfold,
        "GroupNorm": _group_norm,
    }
    for n in (1, 2, 3):
        rules[f"Conv{n}d"] = partial(_conv, n)
        rules[f"ConvTranspose{n}d"] = partial(_conv_transpose, n)
        rules[f"MaxPool{n}d"] = partial(_pool, n, kind="max")
        rules[f"AvgPool{n}d"] = partial(_pool, n, kind="avg")
        rules[f"LPPool{n}d"] = partial(_pool, n, kind="lp")
        rules[f"AdaptiveAvgPool{n}d"] = partial(_adaptive, n)
        rules[f"AdaptiveMaxPool{n}d"] = partial(_adaptive, n)
        rules[f"InstanceNorm{n}d"] = partial(_instance_norm, n)
        for prefix, mode in (
            ("Zero", "constant"),
            ("Constant", "constant"),
            ("Reflection", "reflect"),
            ("Replication", "replicate"),
            ("Circular", "circular"),
        ):
            rules[f"{prefix}Pad{n}d"] = partial(_pad, n, mode)
    return rules


RULES = _rules()
# Arguments that decide sizes or parameter counts: a float, bool or str model parameter cannot
# stand for them (seqgen's expressions would hold for its default only).
SHAPE_ARGS = frozenset(
    {
        "bias",
        "affine",
        "elementwise_affine",
        "num_parameters",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "output_padding",
        "groups",
        "ceil_mode",
        "output_size",
        "size",
        "scale_factor",
        "start_dim",
        "end_dim",
        "dim",
        "unflattened_size",
        "upscale_factor",
        "downscale_factor",
        "num_groups",
        "padding_mode",
        "out_features",
        "out_channels",
    }
)


def has_rule(cls: type[nn.Module]) -> bool:
    """True when seqgen computes this layer's output size itself."""
    return cls.__name__ in RULES


def apply(cls: type[nn.Module], values: dict[str, Any], shape: Sequence[Size]) -> Outcome:
    """The output shape of `cls` built with `values` on an input of `shape`, and its conditions."""
    checks = _Checks()
    out = RULES[cls.__name__](_Args(cls, values), shape, checks)
    for i, v in enumerate(out[1:], start=1):
        if not _is_int(v):
            raise RuleError(f"output size {i} is not a whole number: {v!r}")
    return Outcome(tuple(out), tuple(checks.items))
