"""The context of the generated `test_exports_with_dynamic_dims`: which input dims torch.export
gets as dynamic, in which ranges, and why the others stay static."""

from __future__ import annotations

import math
import re
from typing import Any

from seqgen.ir import Constraint, Dim, TracedLayer, TracedModel, walk_traced
from seqgen.render.budget import SAMPLE_BATCH
from seqgen.safe_eval import NotArithmetic, evaluate_source

# The batch the export traces at: torch.export specialises a dim whose example size is 0 or 1.
EXPORT_BATCH = 2
# recurrent layers: torch.export specialises their sequence length
# the warning torch.export gives on torch's own recurrent layers, as a pytest filter
FLAT_WEIGHTS = "ignore:The tensor attributes .*_flat_weights:UserWarning"
RECURRENT = frozenset({"RNN", "LSTM", "GRU"})
# why a model with `lstm ... lengths=NAME` has its export test marked xfail (strict: it fails
# once torch can export it, and the mark goes)
PACKING_REASON = (
    "torch.export cannot trace pack_padded_sequence (a recurrent layer's lengths=): the "
    "packed batch sizes depend on the values of lengths, not on shapes alone"
)
# the largest input size _export_minimum looks at
SEARCH_LIMIT = 1 << 24
_DIM = "torch.export.Dim({})"
# why a free size of a model with ceil_mode pooling is Dim.DYNAMIC rather than a named Dim
_CEIL_NOTE = "DYNAMIC: torch.export cannot prove ceil_mode pooling's (true) guard"


def _pins(c: Constraint, name: str, free: set[str]) -> bool:
    """Whether a rule fixes the free dim `name` once the model is built: an equality (not a
    divisibility) whose other names are constructor arguments (`wd == 37` after `unflatten 2
    (1, 37)`, `t == 2 * (l // 3)`); torch.export then specialises it."""
    return (
        name in c.names
        and " == " in c.condition
        and re.fullmatch(r".+ % .+ == 0", c.condition) is None
        and not (set(c.names) - {name}) & free
    )


def export_context(traced: TracedModel, batches: list[int]) -> dict[str, Any]:
    """The dynamic dims of `test_exports_with_dynamic_dims`, each a `torch.export.Dim` call.

    The batch is dynamic from 1 (torch.export accepts a range from 1 as long as the example
    input's size is at least 2). So is each named input size that sizes no weight (a free dim),
    from seqgen's minimum, raised where an inner size would be 1 (_export_minimum), to seqgen's
    maximum where it has one. A free dim with a divisibility rule (`h % 4 == 0`) is a derived
    dim, `4 * Dim("h_div_4")`, so export proves what the rule promises. Static, with the reason
    in a comment: a named size that sizes a weight (a constructor argument: the model is built at
    its default), every free dim of a model with a recurrent layer, and a free dim whose inner
    sizes stay 1. `checks`: the input sizes the exported program is run at, small and large, from
    the sizes the test file builds; `batches`: the test file's sample batches.
    """
    free = set(traced.free_dims)
    recurrent = any(
        isinstance(n, TracedLayer) and n.class_name in RECURRENT
        for stack in [*traced.stacks, *(b.layers for b in traced.blocks)]
        for n in walk_traced(stack)
    )
    ceil = _ceil_mode(traced)
    dims: list[dict[str, Any]] = [
        {"input": None, "index": 0, "name": "batch", "call": _DIM.format('"batch", min=1')}
        | {"notes": []}
    ]
    static: list[str] = []
    small: list[str] = []
    large: list[str] = []
    example: list[str] = []
    for name, sizes, _below in traced.dim_sizes:
        if name not in free:
            static.append(f"{name} sizes weights: static (the model is built at the defaults)")
            continue
        if recurrent:
            static.append(f"{name}: static, torch.export specialises a recurrent layer's length")
            continue
        pin = next((c for c in traced.constraints if _pins(c, name, free)), None)
        if pin is not None:
            static.append(f"{name}: static, the built model fixes it ({pin.condition})")
            continue
        rules = [c for c in traced.constraints if c.names == (name,)]
        low = max([c.minimum for c in rules if c.minimum is not None], default=1)
        high = min([c.maximum for c in rules if c.maximum is not None], default=None)
        step = 1
        for c in rules:
            found = re.fullmatch(rf"{re.escape(name)} % (\d+) == 0", c.condition)
            if found:
                step = math.lcm(step, int(found.group(1)))
        low = -(-low // step) * step  # the first multiple of step at or above the minimum
        start = _export_minimum(traced, name, low, step, high)
        if start is None:
            static.append(f"{name}: static, an inner size stays 1, which torch.export specialises")
            continue
        notes = []
        if step > 1:
            notes.append(f"{name}: a multiple of {step}, so a derived dim")
        if start > low:
            notes.append(f"from {start}, not {low}: torch.export specialises an inner size of 1")
        bounds = [f"min={start // step}"] + ([f"max={high // step}"] if high is not None else [])
        (where, index), *others = _where(traced, name)
        if step > 1:  # `name` is a checked identifier: it needs no escaping inside the quotes
            call = f"{step} * " + _DIM.format(", ".join([f'"{name}_div_{step}"', *bounds]))
        elif ceil and not others:
            notes.append(_CEIL_NOTE)
            call = f"torch.export.Dim.DYNAMIC({', '.join(bounds)})"
        else:
            call = _DIM.format(", ".join([f'"{name}"', *bounds]))
        dims.append(
            {
                "input": where,
                "index": index,
                "also": others,  # several inputs: where else the same size is read
                "name": name,
                "call": call,
                "notes": notes,
            }
        )
        fits = [s for s in sizes if s >= start and (high is None or s <= high)] or [start]
        small.append(f"{name}={fits[0]}")
        large.append(f"{name}={fits[-1]}")
        default = next(p.default for p in traced.spec.params if p.name == name)
        if not isinstance(default, int) or default < max(start, 2):  # torch would specialise it
            example.append(f"{name}={max(start, 2 * step)}")
    what = "the batch and the free input sizes" if len(dims) > 1 else "the batch"
    packs = any(
        isinstance(n, TracedLayer) and n.reads and n.class_name in RECURRENT
        for n in walk_traced(traced.layers)
    )
    return {
        # a model that packs sequences cannot export (yet): the test says so, strictly
        "xfail": repr(PACKING_REASON) if packs else None,
        # torch.export warns that nn.RNN/LSTM/GRU assign their own _flat_weights: torch's code,
        # harmless to the exported program; filtered so that `-W error` runs stay green
        "filters": [repr(FLAT_WEIGHTS)] if recurrent else [],
        "docstring": f"torch.export with {what} dynamic, in seqgen's bounds.",
        "dims": dims,
        "example": ", ".join([str(EXPORT_BATCH), *example]),
        "checks": [", ".join([str(batches[0]), *small]), ", ".join([str(SAMPLE_BATCH), *large])],
        "static": static,
    }


def _ceil_mode(traced: TracedModel) -> bool:
    """Whether a pooling layer of the model (its blocks too) may have `ceil_mode=True`: a
    written True or a parameter."""
    return any(
        isinstance(n, TracedLayer)
        and "Pool" in n.class_name
        and any(k == "ceil_mode" and v != "False" for k, v in n.call_kwargs)
        for stack in [*traced.stacks, *(b.layers for b in traced.blocks)]
        for n in walk_traced(stack)
    )


def _where(traced: TracedModel, name: str) -> list[tuple[str | None, int]]:
    """Each input (None: the single unnamed one) and dim index a named size is read at."""
    shapes: list[tuple[str | None, tuple[Dim, ...]]] = [(i.name, i.shape) for i in traced.inputs]
    shapes = shapes or [(None, traced.input_shape)]
    return [(n, i) for n, shape in shapes for i, d in enumerate(shape) if d.code == name]


def _export_minimum(
    traced: TracedModel, name: str, low: int, step: int, high: int | None
) -> int | None:
    """The smallest size of free dim `name`, a multiple of `step` from `low`, at which no layer's
    output dim that depends on it is below 2 (torch.export specialises a size of 0 or 1, then
    refuses the range); None when there is none up to `high` (or SEARCH_LIMIT). Layer output
    sizes grow with the input size, so it searches by doubling, then bisects. Inner layers of
    block classes are not looked at, only a use's output."""
    defaults = {p.name: int(p.default) for p in traced.spec.params if isinstance(p.default, int)}
    codes = {
        d.code
        for stack in traced.stacks
        for node in walk_traced(stack)
        for d in node.out_shape
        if d.symbolic and re.search(rf"\b{re.escape(name)}\b", d.code)
    }
    limit = min(high, SEARCH_LIMIT) if high is not None else SEARCH_LIMIT

    def fits(size: int) -> bool:
        values = {**defaults, "N": EXPORT_BATCH, name: size}
        return all(evaluate_source(code, values) >= 2 for code in codes)

    try:
        if fits(low):
            return low
        below, gap = low, step  # `below` does not fit; look for one that does
        while not fits(below + gap):
            below, gap = below + gap, gap * 2
            if below + gap > limit:
                return None
        above = below + gap
        while above - below > step:
            middle = below + (above - below) // step // 2 * step
            below, above = (below, middle) if fits(middle) else (middle, above)
        return above
    except NotArithmetic:
        return None
