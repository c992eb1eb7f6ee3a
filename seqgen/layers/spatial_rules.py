"""Exact output sizes of the spatial torch.nn families: convolutions, pooling, padding,
upsampling, pixel shuffles, fold/unfold (part of torch_rules' table)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import sympy

from seqgen.layers.formulas import (
    Args,
    Checks,
    NeedsLiteral,
    RankError,
    RuleError,
    Size,
    as_expr,
    divides,
    is_int,
    mod,
)
from seqgen.trace import symbolic as S
from seqgen.trace.float_scale import FloatScale


def _ints(value: Any, n: int, name: str) -> list[Size]:
    """An int or an n-tuple of ints, as a list of n sizes."""
    if is_int(value):
        return [value] * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(is_int(v) for v in value):
        return list(value)
    raise RuleError(f"{name} must be a whole number or a tuple of {n}, got {value!r}")


def _tuples(a: Args, n: int, checks: Checks, low: int, *names: str) -> list[list[Size]]:
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
    checks: Checks, mode: str, pads: Sequence[tuple[Size, Size]], sizes: Sequence[Size], what: str
) -> None:
    """What torch's padding kernels need besides a size >= 1 (pads may be negative: a crop).

    constant: a crop never goes past the input; reflect: each pad below the size it pads;
    circular: each pad at most that size, and a side that wraps around has the other side's
    crop still inside the input (torch copies from there; beyond it, only some sizes work).
    """
    for (left, right), size in zip(pads, sizes):
        n, l, r = as_expr(size), as_expr(left), as_expr(right)
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
                    sympy.Lt(as_expr(pad), n),
                    f"{what} ({{}}) must be smaller than the input size ({{}})",
                    pad,
                    size,
                )
            elif mode == "circular":
                checks.need(
                    sympy.Le(as_expr(pad), n),
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


def conv(n: int, a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    spatial = _spatial(shape, n)
    cin, cout, groups = shape[1], a["out_channels"], a["groups"]
    divides(checks, cin, "in_channels", groups, "groups")
    divides(checks, cout, "out_channels", groups, "groups")
    k, s, d = _tuples(a, n, checks, 1, "kernel_size", "stride", "dilation")
    padding = a["padding"]
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise RuleError(f"padding must be 'same', 'valid' or a number, got {padding!r}")
        if padding == "same":
            for v in s:
                checks.need(sympy.Eq(as_expr(v), 1), "padding='same' needs stride 1, got {}", v)
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


def conv_params(n: int, transposed: bool, a: Args) -> dict[str, tuple[Size, ...]] | None:
    """ConvNd's and ConvTransposeNd's parameter shapes, as torch's _ConvNd makes them."""
    cin, cout, groups, bias = a["in_channels"], a["out_channels"], a["groups"], a["bias"]
    if not isinstance(bias, bool):
        return None
    k = _ints(a["kernel_size"], n, "kernel_size")
    weight = (cin, cout // groups, *k) if transposed else (cout, cin // groups, *k)
    return {"weight": weight, "bias": (cout,)} if bias else {"weight": weight}


def conv_transpose(n: int, a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    spatial = _spatial(shape, n)
    cin, cout, groups = shape[1], a["out_channels"], a["groups"]
    divides(checks, cin, "in_channels", groups, "groups")
    divides(checks, cout, "out_channels", groups, "groups")
    if isinstance(a["padding"], str):
        raise RuleError(f"{a['padding']!r} padding is not supported by transposed convolutions")
    k, s = _tuples(a, n, checks, 1, "kernel_size", "stride")
    p, op, d = _tuples(a, n, checks, 0, "padding", "output_padding", "dilation")
    for dd, kk in zip(d, k):  # torch accepts dilation 0 only where it changes nothing
        checks.need(
            sympy.Or(sympy.Ge(as_expr(dd), 1), sympy.Eq(as_expr(kk), 1)),
            "dilation ({}) must be at least 1 unless kernel_size ({}) is 1",
            dd,
            kk,
        )
    for oo, ss, dd in zip(op, s, d):
        checks.need(
            sympy.Or(sympy.Lt(as_expr(oo), as_expr(ss)), sympy.Lt(as_expr(oo), as_expr(dd))),
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
    if sympy.Le(as_expr(p + s), as_expr(d * (k - 1) + 1)) is sympy.true:
        return _ceil_div(a, s) + 1  # the last window always starts inside: no correction
    return S.sym_min(_ceil_div(a, s), (size + p - 1) // s) + 1


def pool(n: int, a: Args, shape: Sequence[Size], checks: Checks, *, kind: str) -> list[Size]:
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
            sympy.Le(2 * as_expr(pp), as_expr(kk)),
            "padding ({}) must be at most half of kernel_size ({})",
            pp,
            kk,
        )
    if kind == "avg" and n == 3:
        # the CPU kernel of avg_pool3d wants each input size >= the kernel, padding or not
        for size, kk in zip(spatial, k):
            checks.need(
                sympy.Ge(as_expr(size), as_expr(kk)),
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


def adaptive_pool(n: int, a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    if len(shape) not in (n + 1, n + 2):
        raise RankError(n + 2)
    spatial = list(shape[-n:])
    size = a["output_size"]
    sizes = [size] * n if is_int(size) or size is None else list(size)
    if len(sizes) != n:
        raise RuleError(f"output_size must be a number or a tuple of {n}, got {size!r}")
    out = [spatial[i] if v is None else v for i, v in enumerate(sizes)]
    for v in out:
        if not is_int(v):
            raise RuleError(f"output_size must hold whole numbers or None, got {size!r}")
    return [*shape[:-n], *out]


def upsample(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    n = len(shape) - 2
    if n < 1:
        raise RankError(3)
    spatial = list(shape[2:])
    size, scale = a["size"], a["scale_factor"]
    if size is not None:
        out = _ints(size, n, "size") if not is_int(size) else [size] * n
        return [shape[0], shape[1], *out]
    if scale is None:
        raise RuleError("give size or scale_factor")
    scales = list(scale) if isinstance(scale, (tuple, list)) else [scale] * n
    if len(scales) != n:
        raise RuleError(f"scale_factor must be a number or a tuple of {n}, got {scale!r}")
    out = []
    for v, sc in zip(spatial, scales):
        if isinstance(sc, FloatScale):  # a float model parameter: `int(h * sf)`, as torch
            checks.need(
                sympy.Gt(sc.symbol, 0),
                "scale_factor ({}) must be positive",
                sc.symbol,
                subject="scale_factor",
            )
            size = sc.times(v)
            checks.at_least(size, 1, "the upsampled size")
            out.append(size)
            continue
        if is_int(sc):
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


def pad(n: int, mode: str, a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    if len(shape) < n + 1:
        raise RankError(n + 2)
    padding = a["padding"]
    pads = [padding] * (2 * n) if is_int(padding) else padding
    if (
        not isinstance(pads, (tuple, list))
        or len(pads) != 2 * n
        or not all(is_int(v) for v in pads)
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


def pixel_shuffle(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    if len(shape) < 3:
        raise RankError(4)
    r = a["upscale_factor"]
    checks.at_least(r, 1, "upscale_factor")
    c = shape[-3]
    checks.need(
        sympy.Eq(mod(c, r * r), 0),
        "channels ({}) must be divisible by upscale_factor squared ({})",
        c,
        r * r,
    )
    return [*shape[:-3], c // (r * r), shape[-2] * r, shape[-1] * r]


def pixel_unshuffle(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    if len(shape) < 3:
        raise RankError(4)
    r = a["downscale_factor"]
    for v in shape[-2:]:
        divides(checks, v, "height and width", r, "downscale_factor")
    return [*shape[:-3], shape[-3] * r * r, shape[-2] // r, shape[-1] // r]


def unfold(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    if len(shape) != 4:
        raise RankError(4)
    k, blocks = _blocks(a, shape[2:], checks)
    return [shape[0], shape[1] * k[0] * k[1], blocks[0] * blocks[1]]


def fold(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    if len(shape) != 3:
        raise RankError(3)
    out = _ints(a["output_size"], 2, "output_size")
    k, blocks = _blocks(a, out, checks)
    per = k[0] * k[1]
    checks.need(
        sympy.Eq(mod(shape[1], per), 0),
        "the size {} must be divisible by the kernel's {} positions",
        shape[1],
        per,
    )
    checks.need(
        sympy.Eq(as_expr(shape[2]), as_expr(blocks[0] * blocks[1])),
        "the number of blocks ({}) must equal {}",
        shape[2],
        blocks[0] * blocks[1],
    )
    return [shape[0], shape[1] // per, *out]


def _blocks(a: Args, sizes: Sequence[Size], checks: Checks) -> tuple[list[Size], list[Size]]:
    k, s, d = _tuples(a, 2, checks, 1, "kernel_size", "stride", "dilation")
    (p,) = _tuples(a, 2, checks, 0, "padding")
    blocks = [
        (size + 2 * pp - dd * (kk - 1) - 1) // ss + 1
        for size, pp, dd, kk, ss in zip(sizes, p, d, k, s)
    ]
    for b in blocks:
        checks.at_least(b, 1, "the number of sliding blocks in each dim")
    return k, blocks
