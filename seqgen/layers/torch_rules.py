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

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import sympy
from torch import nn

from seqgen.layers.formulas import (
    Args,
    Checks,
    Outcome,
    RankError,
    RuleError,
    Size,
    as_expr,
    divides,
    is_int,
    is_one,
    literal_dim,
    mod,
)
from seqgen.layers.spatial_rules import (
    adaptive_pool,
    conv,
    conv_params,
    conv_transpose,
    fold,
    pad,
    pixel_shuffle,
    pixel_unshuffle,
    pool,
    unfold,
    upsample,
)

# ------------------------------------------------------------------------------- families


def _flatten(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    given_start = literal_dim(a["start_dim"], "start_dim")
    given_end = literal_dim(a["end_dim"], "end_dim")
    rank = len(shape)
    start = given_start % rank if -rank <= given_start < rank else None
    end = given_end % rank if -rank <= given_end < rank else None
    if start is None or end is None or start > end:
        raise RuleError(f"flatten dims out of range for a tensor of rank {rank}")
    product = 1
    for v in shape[start : end + 1]:
        product = product * v
    return [*shape[:start], product, *shape[end + 1 :]]


def _unflatten(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    rank = len(shape)
    dim = literal_dim(a["dim"], "dim")
    if not -rank <= dim < rank:
        raise RuleError(f"dim {dim} is out of range for a tensor of rank {rank}")
    dim %= rank
    sizes = a["unflattened_size"]
    if not isinstance(sizes, (tuple, list)) or not sizes or not all(is_int(v) for v in sizes):
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
            sympy.Eq(mod(total, known), 0),
            "the size {} must be divisible by {} to unflatten it",
            total,
            known,
        )
        out = [total // known if i in holes else v for i, v in enumerate(sizes)]
    else:
        checks.need(
            sympy.Eq(as_expr(total), as_expr(known)),
            "the unflattened sizes must multiply to {}, got {}",
            total,
            known,
        )
        out = list(sizes)
    return [*shape[:dim], *out, *shape[dim + 1 :]]


def _channel_shuffle(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    if len(shape) < 3:
        raise RankError(4)
    divides(checks, shape[1], "channels", a["groups"], "groups")
    return list(shape)


def _instance_norm(n: int, a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    if len(shape) not in (n + 1, n + 2):
        raise RankError(n + 2)
    spatial = 1
    for v in shape[-n:]:
        spatial = spatial * v
    checks.need(
        sympy.Gt(as_expr(spatial), 1),
        "instance norm needs more than 1 spatial element when training",
    )
    return list(shape)


def _group_norm(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    divides(checks, shape[1], "num_channels", a["num_groups"], "num_groups")
    return list(shape)


def _linear(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    if len(shape) < 2:
        raise RankError(2)
    return [*shape[:-1], a["out_features"]]


def _same(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    """Elementwise layers, dropout and normalisation: the output has the input's shape."""
    return list(shape)


def _glu(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    rank = len(shape)
    dim = literal_dim(a["dim"], "dim")
    if not -rank <= dim < rank:
        raise RuleError(f"dim {dim} is out of range for a tensor of rank {rank}")
    dim %= rank
    checks.need(
        sympy.Eq(mod(shape[dim], 2), 0), "GLU halves a size ({}) that must be even", shape[dim]
    )
    return [*shape[:dim], shape[dim] // 2, *shape[dim + 1 :]]


def _prelu(a: Args, shape: Sequence[Size], checks: Checks) -> list[Size]:
    n = a["num_parameters"]
    if not is_one(n):
        channels = shape[1] if len(shape) >= 2 else 1
        checks.need(
            sympy.Or(sympy.Eq(as_expr(n), 1), sympy.Eq(as_expr(n), as_expr(channels))),
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


RuleFn = Callable[[Args, Sequence[Size], Checks], list[Size]]
ParamShapes = dict[str, tuple[Size, ...]]
ParamFn = Callable[[Args], "ParamShapes | None"]


def _rules() -> dict[str, RuleFn]:
    rules: dict[str, RuleFn] = dict.fromkeys(_shape_preserving(), _same)
    rules |= {
        "PReLU": _prelu,
        "GLU": _glu,
        "Linear": _linear,
        "Upsample": upsample,
        "UpsamplingNearest2d": upsample,
        "UpsamplingBilinear2d": upsample,
        "Flatten": _flatten,
        "Unflatten": _unflatten,
        "PixelShuffle": pixel_shuffle,
        "PixelUnshuffle": pixel_unshuffle,
        "ChannelShuffle": _channel_shuffle,
        "Fold": fold,
        "Unfold": unfold,
        "GroupNorm": _group_norm,
    }
    for n in (1, 2, 3):
        rules[f"Conv{n}d"] = partial(conv, n)
        rules[f"ConvTranspose{n}d"] = partial(conv_transpose, n)
        rules[f"MaxPool{n}d"] = partial(pool, n, kind="max")
        rules[f"AvgPool{n}d"] = partial(pool, n, kind="avg")
        rules[f"LPPool{n}d"] = partial(pool, n, kind="lp")
        rules[f"AdaptiveAvgPool{n}d"] = partial(adaptive_pool, n)
        rules[f"AdaptiveMaxPool{n}d"] = partial(adaptive_pool, n)
        rules[f"InstanceNorm{n}d"] = partial(_instance_norm, n)
        for prefix, mode in (
            ("Zero", "constant"),
            ("Constant", "constant"),
            ("Reflection", "reflect"),
            ("Replication", "replicate"),
            ("Circular", "circular"),
        ):
            rules[f"{prefix}Pad{n}d"] = partial(pad, n, mode)
    return rules


RULES = _rules()

# ------------------------------------------------------------------------------- parameters


def _shape_of(value: Any) -> tuple[Size, ...] | None:
    """normalized_shape as torch's LayerNorm reads it: a size, or a tuple of sizes."""
    if is_int(value):
        return (value,)
    if isinstance(value, (tuple, list)) and all(is_int(v) for v in value):
        return tuple(value)
    return None


def _affine(size: str, flag: str | None, bias: str | bool = True) -> ParamFn:
    """A weight (and a bias) of the shape `size` gives, when the argument `flag` (if any) is on;
    `bias` is whether there is a bias, or the argument that says so."""

    def params(a: Args) -> ParamShapes | None:
        shape = _shape_of(a[size])
        on = a[flag] if flag is not None else True
        with_bias = a[bias] if isinstance(bias, str) else bias
        if shape is None or not isinstance(on, bool) or not isinstance(with_bias, bool):
            return None  # torch builds the layer on symbolic sizes instead
        if not on:
            return {}
        return {"weight": shape, "bias": shape} if with_bias else {"weight": shape}

    return params


def _linear_params(a: Args) -> ParamShapes | None:
    out, bias = a["out_features"], a["bias"]
    if not isinstance(bias, bool):
        return None
    weight = (out, a["in_features"])
    return {"weight": weight, "bias": (out,)} if bias else {"weight": weight}


def _param_rules() -> dict[str, ParamFn]:
    rules: dict[str, ParamFn] = {
        "Linear": _linear_params,
        "LayerNorm": _affine("normalized_shape", "elementwise_affine", "bias"),
        "RMSNorm": _affine("normalized_shape", "elementwise_affine", bias=False),
        "GroupNorm": _affine("num_channels", "affine"),
        "PReLU": _affine("num_parameters", None, bias=False),
    }
    for n in (1, 2, 3):
        rules[f"Conv{n}d"] = partial(conv_params, n, False)
        rules[f"ConvTranspose{n}d"] = partial(conv_params, n, True)
        rules[f"BatchNorm{n}d"] = _affine("num_features", "affine")
        rules[f"InstanceNorm{n}d"] = _affine("num_features", "affine")
    return rules


PARAM_RULES = _param_rules()
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


# Of those, the bools a bool model parameter may stand for: the counts they decide are written
# for both of its values (`4 * bias` counts 4 or 0), and so are the sizes (`ceil_mode`).
COUNT_FLAGS = frozenset({"bias", "affine", "elementwise_affine"})
SIZE_FLAGS = frozenset({"ceil_mode"})


def has_rule(cls: type[nn.Module]) -> bool:
    """True when seqgen computes this layer's output size itself."""
    return cls.__name__ in RULES


def param_shapes(
    cls: type[nn.Module], values: dict[str, Any], shape: Sequence[Size]
) -> ParamShapes | None:
    """Each parameter's shape, by name in torch's order, for `cls` built with `values` (after its
    rule accepted them); None where seqgen has no formula, and torch must build the layer on
    symbolic sizes to count them. The tracer compares them with torch's at the defaults."""
    fn = PARAM_RULES.get(cls.__name__)
    return fn(Args(cls, values)) if fn is not None else None


def apply(cls: type[nn.Module], values: dict[str, Any], shape: Sequence[Size]) -> Outcome:
    """The output shape of `cls` built with `values` on an input of `shape`, and its conditions."""
    checks = Checks()
    out = RULES[cls.__name__](Args(cls, values), shape, checks)
    for i, v in enumerate(out[1:], start=1):
        if not is_int(v):
            raise RuleError(f"output size {i} is not a whole number: {v!r}")
    return Outcome(tuple(out), tuple(checks.items))
