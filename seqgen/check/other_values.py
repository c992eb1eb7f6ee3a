"""Differential self-check of a trace (trace stage): the written code against torch itself.

Every size and parameter count seqgen writes is an expression of the constructor's int
parameters. Before anything is written, this module picks parameter values other than the
defaults that the generated `__init__` accepts, builds the same layers concretely at those values
(for real on the CPU when the model is small, else on the `meta` device, where nothing is
allocated), and compares each layer's output shape and
parameter count with what the printed expressions compute there. A difference is a seqgen bug,
reported as an error instead of a wrong file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from seqgen.check.realize import Memo, head_input, run_node, runs_short
from seqgen.errors import InternalError, SeqgenError, TraceError
from seqgen.ir import (
    SAMPLE_BATCH,
    Constraint,
    Dim,
    LayerSpec,
    TracedLayer,
    TracedModel,
    TracedNode,
    expr_names,
    node_values,
    walk,
)
from seqgen.layers.input_reads import TORCH_DTYPES
from seqgen.layers.registry import kind_for
from seqgen.layers.torch_nn import first_line
from seqgen.safe_eval import evaluate_source
from seqgen.trace.sizes import sample_device

MAX_POINTS = 4
MAX_NUMEL = 1 << 26  # meta tensors cost nothing, but keep the arithmetic of huge specs away


def accepts(constraints: tuple[Constraint, ...], values: Mapping[str, int]) -> bool:
    """Whether the generated `__init__` accepts `values` (its checks, evaluated in order)."""
    for c in constraints:
        try:
            if c.minimum is not None and values[c.symbol] < c.minimum:  # type: ignore[index]
                return False
            if c.maximum is not None and values[c.symbol] > c.maximum:  # type: ignore[index]
                return False
            if c.minimum is None and c.maximum is None and not evaluate_source(c.condition, values):
                return False
        except ZeroDivisionError:
            return False
    return True


def candidate_points(traced: TracedModel) -> Iterator[dict[str, int]]:
    """Values of the int parameters other than the defaults, nearest first.

    A free input dim (one that sizes no weight, `traced.free_dims`) is not grown with the
    others: the model must work at every size of it that the constraints accept, so each point
    takes the next of its smallest accepted sizes instead (min, then the next accepted value,
    ...). That checks it where sizes are smallest, and keeps sequence layers cheap to build
    (torch's meta LSTM loops once per time step).
    """
    defaults = {p.name: p.default for p in traced.spec.params if type(p.default) is int}
    free = [n for n in sorted(defaults) if n in traced.free_dims]
    names = [n for n in sorted(defaults) if n not in traced.free_dims]
    # far values first: a size like `c // 4` only moves once c has moved by 4
    moves: tuple[Callable[[int], int], ...] = (
        lambda v: 2 * v + 1,
        lambda v: v + 1,
        lambda v: 3 * v + 2,
        lambda v: v + 7,
        lambda v: v - 1,
        lambda v: v + 2,
    )
    index = 0
    for move in moves:
        points = [{**defaults, **{n: move(defaults[n]) for n in names}}]
        points += [{**defaults, n: move(defaults[n])} for n in names]
        points += [dict(defaults)] if free else []  # only the free dims move
        for point in points:
            if free:
                point = _free_dims_near_minimum(traced, point, free, index)
                index += 1
            yield point


FREE_DIM_SCAN = 64  # sizes above a free dim's minimum searched for accepted ones


def _free_dims_near_minimum(
    traced: TracedModel, point: dict[str, int], free: list[str], index: int
) -> dict[str, int]:
    """`point` with each free input dim at its `index`-th smallest accepted size (cycling
    through the ones found), the other values as given. The free dims are chosen one after the
    other, those not chosen yet at their defaults; one keeps its default when no size in the
    scanned range is accepted."""
    defaults = {p.name: p.default for p in traced.spec.params if type(p.default) is int}
    point = {**point, **{name: defaults[name] for name in free}}
    flags = {p.name: p.default for p in traced.spec.params if type(p.default) is bool}
    for name in free:
        low = max(
            [1]
            + [c.minimum for c in traced.constraints if c.symbol == name and c.minimum is not None]
        )
        found = [
            v
            for v in range(low, low + FREE_DIM_SCAN)
            if accepts(traced.constraints, {**flags, **point, name: v})
        ]
        if found:
            point[name] = found[index % len(found)]
    return point


# Values tried for a float parameter that is a scale factor (`int(h * sf)`): below 1, between
# whole numbers, whole, and ones whose product rounds in double precision (1.7 * 10 is 17.0,
# 0.1 * 30 is 3.0000000000000004)
SCALE_POINTS = (1.5, 0.5, 3.0, 2.5, 1.7, 0.1)


def _with_flags(traced: TracedModel) -> Iterator[dict[str, Any]]:
    """The candidate points with the bool parameters at their defaults, then each bool flipped
    at the int defaults (a `bias=b` count is written for both values); a float parameter that
    the checks name (a scale factor) alternates between its default and SCALE_POINTS."""
    flags = {p.name: p.default for p in traced.spec.params if type(p.default) is bool}
    ints = {p.name: p.default for p in traced.spec.params if type(p.default) is int}
    named = {n for c in traced.constraints for n in c.names}
    scales = {
        p.name: p.default
        for p in traced.spec.params
        if type(p.default) is float and p.name in named and p.name not in _read_elsewhere(traced)
    }
    # the other floats stay at their defaults, where the checks may still read them
    floats = {p.name: p.default for p in traced.spec.params if type(p.default) is float}
    for name, value in flags.items():
        yield {**floats, **ints, **flags, name: not value}
    others = [v for v in SCALE_POINTS if v not in scales.values()]
    for v in others[:2] if scales else []:  # two with the ints at their defaults
        yield {**floats, **ints, **flags, **dict.fromkeys(scales, v)}
    for i, point in enumerate(candidate_points(traced)):
        yield {**floats, **flags, **point}
        if scales:
            yield {**floats, **flags, **dict.fromkeys(scales, others[i % len(others)]), **point}


def _read_elsewhere(traced: TracedModel) -> set[str]:
    """The names a line reads other than as a `scale_factor` (a float that is also a dropout's
    `p` is varied only as far as its other uses allow: not at all, since torch range-checks
    them; its scale formula is checked against torch on its own, tests/test_float_params.py)."""
    spec = traced.spec
    stacks = [spec.layers, spec.head_nodes, *(b.body for b in spec.blocks)]
    out: set[str] = set()
    for node in (n for nodes in stacks for n in walk(nodes)):
        if isinstance(node, LayerSpec):
            values = [*node.args, *(kw.value for kw in node.kwargs if kw.name != "scale_factor")]
        else:
            values = list(node_values(node))
        out |= {name.id for value in values for name in expr_names(value)}
    return out


def verify_at_other_values(traced: TracedModel) -> None:
    """Build the layers concretely at a few accepted non-default values; compare."""
    if not any(type(p.default) in (int, bool, float) for p in traced.spec.params):
        return
    done = 0
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for point in _with_flags(traced):
        key = tuple(sorted(point.items()))
        if key in seen or not accepts(traced.constraints, point):
            continue
        seen.add(key)
        if _compare(traced, point):
            done += 1
        if done >= MAX_POINTS:
            return


def _compare(traced: TracedModel, point: dict[str, int]) -> bool:
    """Compare at one point; False when the point is too large to check."""
    values = {**point, "N": SAMPLE_BATCH}
    shape = tuple(evaluate_source(d.code, values) for d in traced.input_shape)
    if _numel(shape) > MAX_NUMEL:
        return False
    env = {p.name: point.get(p.name, p.default) for p in traced.spec.params}
    blocks = {b.class_name: b for b in traced.blocks}

    def visit(
        node: TracedNode, scope: Mapping[str, Any], y: torch.Tensor, modules: list[nn.Module]
    ) -> None:
        at = {**scope, "N": SAMPLE_BATCH}
        want = tuple(evaluate_source(d.code, at) for d in node.out_shape)
        got = tuple(int(s) for s in y.shape)
        if got != want:
            raise _mismatch(node, point, f"torch gives {got}, the generated code says {want}")
        params = sum(p.numel() for m in modules for p in m.parameters())
        if params != evaluate_source(node.params.code, at):
            raise _mismatch(
                node,
                point,
                f"torch counts {params} parameters, the generated "
                f"code says {evaluate_source(node.params.code, at)}",
            )
        if _numel(got) > MAX_NUMEL:
            raise _TooLarge

    memo: Memo = {}  # a block used again with the same values is checked once per point
    with sample_device(*_cost(traced, values)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = torch.zeros(  # zeros: valid token ids when run for real
            shape, dtype=torch.int64 if traced.spec.input_dtype == "long" else torch.float32
        )
        inputs = {  # several inputs: each by name, for the merges that read them
            i.name: torch.zeros(
                tuple(evaluate_source(d.code, values) for d in i.shape),
                dtype=TORCH_DTYPES[i.dtype],
            )
            for i in traced.inputs
        }
        outputs: list[torch.Tensor] = []  # of each trunk node, for the heads
        first = x
        for stack, start in [(traced.layers, None), *((h.layers, h) for h in traced.heads)]:
            if start is not None:  # a head reads the trunk's output, its point's or a branch's
                with torch.no_grad():
                    x = head_input(traced, start, outputs, first, inputs, env, blocks)
            for layer in stack:
                try:
                    with torch.no_grad():
                        _, x = run_node(layer, env, x, blocks, visit, memo, inputs)
                except _TooLarge:
                    return False
                except SeqgenError:
                    raise
                except Exception as e:
                    raise _mismatch(layer, point, f"torch rejects it there: {first_line(e)}") from e
                if start is None:
                    outputs.append(x)
    return True


def _cost(traced: TracedModel, at: Mapping[str, int]) -> tuple[int, int, int]:
    """What building and running the model at `at` costs, for sizes.sample_device (the CPU for
    a small model): work (parameters, multiply-adds, output elements), parameters, and the
    largest output."""
    params = evaluate_source(traced.total_params.code, at)
    work, largest = params, _numel(_shape_at(traced.input_shape, at))
    for node in traced.layers:
        out = _numel(_shape_at(node.out_shape, at))
        work, largest = work + out, max(largest, out)
        spec = node.spec if isinstance(node, TracedLayer) and node.repeat is None else None
        if not (isinstance(spec, LayerSpec) and runs_short(kind_for(spec))):
            work += evaluate_source(node.macs.code, at) * SAMPLE_BATCH
    return int(work), int(params), int(largest)


def _shape_at(dims: Sequence[Dim], at: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(evaluate_source(d.code, {**at, "N": SAMPLE_BATCH}) for d in dims)


class _TooLarge(Exception):
    """A shape too large to check at this point."""


def _mismatch(layer: TracedNode, point: Mapping[str, int], what: str) -> SeqgenError:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(point.items()))
    use = getattr(layer.spec, "use", None)
    if use is not None:  # a class of the user's own: its code, not seqgen, decides
        return TraceError(
            f"{use.import_path}: at {shown} (values the generated __init__ accepts, on the "
            f"meta device), {what}",
            location=layer.spec.loc,
            hint="seqgen checks a class of your own at other values as it traced it; write "
            "its sizes as numbers, or make its code size-generic (no int(), .item() or Python "
            "branch on a size)",
        )
    return InternalError(
        f"{layer.class_name}: at {shown} (values the generated __init__ accepts), {what}",
        location=layer.spec.loc,
        hint="seqgen cannot write exact sizes for this spec; writing this argument as a number "
        "avoids it",
    )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= max(d, 0)
    return n
